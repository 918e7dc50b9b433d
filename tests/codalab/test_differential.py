"""Differential tests: the same inputs given to CodaLab 1.7.5 (the real stack: its REST
`/interpret/worksheet` endpoint, its search, its `cl run`) and to codalite, compared block by block,
cell by cell and row by row, over the same bundles (uploaded and run here, pushed there with the
same uuids).

Any difference fails, unless it is one of the deliberate differences listed in docs/worksheets.md
("Differences from CodaLab", each tagged `diff:ID`). KNOWN below says how each one shows up; the
test also fails when the doc and KNOWN name different ids, so the list and the test cannot drift.
"""

import json
import os
import re
import subprocess
import sys
import uuid as uuidlib

import pytest

from codalite import Store
from codalite.codalab import remotes
from codalite.search import search
from codalite.worksheets import interpret, model

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "worksheets.md")


# --- the deliberate differences --------------------------------------------------------------------

def doc_ids():
    text = open(DOC, encoding="utf-8").read()
    section = text.split("## Differences from CodaLab", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`diff:([a-z0-9-]+)`", section))


# Each known difference: a predicate over one difference found, d = {"where", "what", "lite", "cl"}.
KNOWN = {
    # codalite has one user: owner is whoever runs it; CodaLab's is the server account (tester)
    "owner": lambda d: d["what"] == "cell" and d["genpath"] in ("owner", "owner_name"),
    # codalite fills host_worksheets in a table; CodaLab's /interpret leaves it empty there
    "host-worksheets": lambda d: d["what"] == "cell" and d["genpath"] == "host_worksheets" and d["cl"] == "",
    # data_size: codalite counts the files' bytes; CodaLab adds each directory's own size (4096 on ext4)
    "data-size": lambda d: (d["what"] == "cell" and d["genpath"] == "data_size"
                            and isinstance(d["lite"], (int, str)) and d["lite"] != "")
                           or (d["what"] == "markup" and _only_sizes_differ(d["lite"], d["cl"]))
                           or (d["what"] == "search" and any(k.lower().startswith(("data_size=", "size="))
                                                             for k in d["case"])),  # size: its shortcut
    # a bad `% display` is reported on the display line; CodaLab names the line after its bundles
    "display-error-line": lambda d: d["what"] == "markup" and _same_but_line(d) and _line(d["lite"]) < _line(d["cl"])
                                    and re.search(r"display|maxlines|Not file genpath|Expected <key>=<value>", d["lite"])
                                    or _no_mode(d),
    # after a `% search`, CodaLab counts error lines over the expanded items; codalite names the source line
    "search-shifts-lines": lambda d: d["what"] == "markup" and d.get("after_search") and _same_but_line(d),
    # a list index past the end is an empty cell; CodaLab's server fails the whole table (IndexError)
    # a bundle's dependencies are listed sorted by key; CodaLab keeps the order they were given in
    "dependency-order": lambda d: d["what"] == "run" and d["lite"]["command"] == d["cl"]["command"]
                                  and sorted(d["lite"]["dependencies"]) == sorted(d["cl"]["dependencies"]),
    # `run` on a failed dependency is refused at once (exit 1); CodaLab creates the run, which then fails
    "failed-dependency": lambda d: d["what"] == "run-exit" and d["cl"][0] == 0 and d["lite"][0] == 1
                                   and "--allow-failed-dependencies" in d["lite"][1],
    # `size` of 1024 TiB or more is '1024t'; CodaLab's size_str runs out of units and returns None
    "huge-size": lambda d: d["what"] == "post" and d["func"].startswith("size") and d["cl"] in ("None", "'None'")
                           and d["arg"] >= 1024 ** 5,
    # a %-format with a width or precision over 1,000 is named, not built; CodaLab builds it (1e9: a gigabyte)
    "printf-width": lambda d: (d["what"] == "post" and d["func"] == "%.1001f"
                               and d["lite"] == "'<invalid format: %.1001f: a width or precision over 1,000>'")
                              or (d["what"] == "cell"
                                  and d["lite"] == "<invalid format: %.1001f: a width or precision over 1,000>"),
    # a three-item list value (tags a b c) in a table or record is shown; CodaLab's server takes it for a
    # (uuid, genpath, post) file request (rest/interpret.py is_bundle_genpath_triple) and the block is an error
    "three-item-list": lambda d: d["what"] == "block" and (d["lite"] or {}).get("mode") in ("table", "record")
                                 and (d["cl"] or {}).get("mode") == "markup"
                                 and (d["cl"].get("text") or "").startswith("ERROR: Not file genpath: ")
                                 and any(isinstance(v, str) and re.fullmatch(r'\[("[^"]*", ){2}"[^"]*"\]', v)
                                         for row in d["lite"]["rows"] for v in row),
    "list-index-crash": lambda d: d["what"] == "block" and (d["lite"] or {}).get("mode") == "table"
                                  and (d["cl"] or {}).get("text") == "ERROR: Unexpected error interpreting item",
    # queries on which CodaLab's server fails with an SQL error (HTTP 500) are answered
    "search-server-error": lambda d: d["what"] == "search-error" and d["lite"] == "answers"
                                     and "HTTP 500" in d["cl"] and codalab_search_fails(d["case"]),
    # a list key (tags=.sort) lists each bundle once; CodaLab lists it once per value
    # `% addschema NAME` of an unknown schema names it; CodaLab: "Unexpected error while parsing line N"
    "addschema-unknown": lambda d: d["what"] == "markup" and re.match(r"^Error in source line \d+: unknown schema `",
                                                                       d["lite"] or "") is not None
                                   and re.match(r"^Unexpected error while parsing line \d+$", d["cl"] or "") is not None,
    "list-sort-once": lambda d: d["what"] == "search" and d.get("once_per_value"),
    # a dependency's path is recorded without a trailing `/` (`:data/sub/` -> sub); CodaLab keeps `sub/`
    "path-trailing-slash": lambda d: d["what"] == "run" and d["lite"]["command"] == d["cl"]["command"]
                                     and _no_slash(d["lite"]["dependencies"]) == _no_slash(d["cl"]["dependencies"]),
    # `run` on a path its dependency lacks is refused at once (exit 1); CodaLab creates the run, which then fails
    "missing-dependency-path": lambda d: d["what"] == "run-exit" and d["cl"][0] == 0 and d["lite"][0] == 1
                                         and re.match(r"Error: no such path '[^']*' in bundle 0x", d["lite"][1]) is not None,
    # `cl run --- -x ...`: CodaLab's argparse reads the joined command `-x ...` as an option (exit 2)
    "run-dash-command": lambda d: d["what"] == "run-exit" and d["cl"][0] in (1, 2) and d["lite"][0] == 0
                                  and "---" in d["args"] and d["args"][d["args"].index("---") + 1:][:1] != []
                                  and d["args"][d["args"].index("---") + 1].startswith("-"),
}


def _no_slash(deps):
    return sorted((k, u, p.rstrip("/")) for k, u, p in deps)


# keys search_bundles reads from the bundle table (or joins specially); any other key is a metadata key
NOT_METADATA = ("bundle_type", "id", "uuid", "state", "command", "owner_id", "group", "dependency", "host_worksheet",
                "uuid_name", "")


def codalab_search_fails(case):
    """Whether CodaLab 1.7.5's search_bundles builds SQL that MySQL refuses for these keywords (as a
    user other than root): the same table joined twice, a .sum ordered by a column it lacks, or a .count
    over two metadata .sort keys (both selected as `metadata_value` in the counted subquery: "Duplicate
    column name")."""
    kws = [k.replace(".*", "%") for k in case]
    metadata_sorts = sum(1 for k in kws if k.endswith(("=.sort", "=.sort-")) and not k.startswith(".")
                         and k.split("=", 1)[0] not in NOT_METADATA and not k.startswith("dependency/"))
    sort = any(k in (".last",) or k.endswith(("=.sort", "=.sort-")) for k in kws)
    summed = any(k.endswith("=.sum") for k in kws)
    joins_dep = sum(1 for k in kws if re.match(r"^dependency(/[^=]*)?=", k) and not k.endswith((".sort", ".sort-", ".sum")))
    joins_ws = sum(1 for k in kws if (k == ".floating" or (re.match(r"^(host_)?worksheet=", k)
                                                           and not k.endswith((".sort", ".sort-", ".sum")))))
    return (".shared" in kws or (sort and summed) or joins_dep >= 2 or joins_ws >= 2
            or (".count" in kws and metadata_sorts >= 2))

SIZE = re.compile(r"^\d+(\.\d+)?( bytes|[kmgt])$")


def _line(text):
    m = re.match(r"Error in source line (\d+): ", text or "")
    return int(m.group(1)) if m else None


def _no_mode(d):
    """`% display` without a mode: codalite says so on that line; CodaLab fails at the line after the
    bundles with "Unexpected error while parsing line N" (an IndexError)."""
    if d["what"] != "markup":
        return False
    m = re.match(r"^Unexpected error while parsing line (\d+)$", d["cl"] or "")
    return (bool(m) and _line(d["lite"]) is not None and _line(d["lite"]) < int(m.group(1))
            and d["lite"].endswith(": Unknown display mode: "))


def _same_but_line(d):
    strip = lambda t: re.sub(r"^Error in source line \d+: ", "", t or "")  # noqa: E731
    return _line(d["lite"]) is not None and strip(d["lite"]) == strip(d["cl"])


def _only_sizes_differ(a, b):
    la, lb = (a or "").split("\n"), (b or "").split("\n")
    return len(la) == len(lb) and a != b and all(x == y or (SIZE.match(x) and SIZE.match(y)) for x, y in zip(la, lb))


def test_known_differences_match_the_documented_list():
    assert doc_ids() == set(KNOWN), ("docs/worksheets.md's `diff:` ids and KNOWN differ: "
                                     f"doc only {doc_ids() - set(KNOWN)}, test only {set(KNOWN) - doc_ids()}")


# --- the same bundles on both sides ----------------------------------------------------------------

FILES = {
    "stats.json": json.dumps({"acc": 0.875, "loss": [0.5, 0.25], "nested": {"k": "v", "n": 3}, "flag": True}),
    "metrics.tsv": "acc\t0.9\nloss\t0.1\n",
    "cfg.yaml": "model:\n  name: tiny\n  layers: 2\nlr: 0.001\n",
    "list.json": "[10, 20, 30]\n",
    "notes.txt": "plain text\nsecond line\n",
    "curve.tsv": "0\t1.0\n1\t0.5\n2\t0.25\n",
    "empty.txt": "",
    "sub/deep.txt": "deep\n",
}


def worksheet_source(w):
    """Every directive, display mode, genpath kind and post-processor, and inline errors."""
    return f"""# Differential worksheet
Some *Markdown* that `cl print` keeps as typed,
over two lines.

// a comment line
% schema s
% add uuid uuid "[0:8]"
% add name
% add type bundle_type
% add command
% add state
% add exitcode
% add size data_size size
% add bytes data_size
% add time time duration
% add description
% add tags
% add deps dependencies
% add dep_d dependencies/d
% add dep_none dependencies/zzz
% add args
% add summary
% add permission
% add owner
% add host host_worksheets
% add acc /stats.json:acc %.2f
% add acc3 /stats.json:acc "%.3f | s/0\\\\./,/"
% add loss1 /stats.json:loss/1
% add nested /stats.json:nested/k
% add whole /stats.json:nested
% add flag /stats.json:flag
% add tsv /metrics.tsv:acc
% add yaml /cfg.yaml:model/layers %d
% add yamllr /cfg.yaml:lr
% add listidx /list.json:1
% add text /notes.txt
% add missing /nope.json:x
% add nokey /stats.json:nokey
% add empty /empty.txt
% add deep /sub/deep.txt
% add depfile /d/stats.json:acc
% add short name [0:3]
% add regex name s/a/A
% add badregex name s/a/b/
% add badfunc name nosuchfunc
% add strd exitcode str
% add pct /stats.json:acc %d
% add link uuid "key uuid | add path /stdout | add text out"
% add notdict name "add x y"
% display table s
{{{w['train']}}}
{{{w['broken']}}}
{{{w['data']}}}
{{{w['notes']}}}
{{{w['combo']}}}

% schema small
% add name
% add acc /stats.json:acc
% schema both
% addschema small
% add state
% display record both
{{{w['train']}}}
% display table both uuid
{{{w['combo']}}}
% display contents /stdout
{{{w['train']}}}
% display contents /stats.json maxlines=1
{{{w['data']}}}
% display contents /nope
{{{w['train']}}}
% display contents /sub
{{{w['data']}}}
% display image /curve.tsv width=100
{{{w['data']}}}
% display graph /curve.tsv xlabel=step ylabel=loss
{{{w['data']}}}
% display hidden
{{{w['train']}}}
% display table name state
{{{w['broken']}}}

% schema crash
% add loss9 /stats.json:loss/9
% display table crash
{{{w['train']}}}

% add orphan
% frobnicate now
% display nosuchmode
{{{w['train']}}}

% schema
% addschema nosuch
% display contents
{{{w['train']}}}

% display contents /stdout maxlines=x
{{{w['train']}}}

% display graph
{{{w['train']}}}


% display record small
% search tags={w['tag']} name=train
% search tags={w['tag']} .floating

% wsearch {w['pick_ws']}
% wsearch name={w['runs_ws']}
[a worksheet]{{{{{w['pick_ws']}}}}}
{{{{{w['runs_ws']}}}}}
% schema g
% add name
% add file /d/stats.json
% display graph /d/curve.tsv display_name=name
{{{w['train']}}}
% display contents /d/sub/deep.txt
{{{w['train']}}}

% display table small
% search tags={w['tag']} name=.sort
% search tags={w['tag']} .count
% search tags={w['tag']} data_size=.sum .format=size
% frobnicate after search
"""


class Lite:
    """The real `codalite` program in the world's project (as tests/conftest.py's CLI, module-wide)."""

    def __init__(self, cwd, env):
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CODALITE_HOME", "CODALAB_"))}
        self.env.update(env)

    def __call__(self, *args, ok=True):
        r = subprocess.run([sys.executable, "-m", "codalite", *map(str, args)], cwd=self.cwd, env=self.env,
                           capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if ok and r.returncode != 0:
            raise AssertionError(f"codalite {args} exited {r.returncode}: {r.stderr[-3000:]}")
        return r

    def out(self, *args, **kw):
        return self(*args, **kw).stdout.strip()


def build_world(tmp, stack):
    tag = "dt" + uuidlib.uuid4().hex[:10]  # this session's bundles, among the stack's others
    lite = Lite(tmp, dict(CODALAB_USERNAME=stack.username, CODALAB_PASSWORD=stack.password))
    lite("init")
    lite("remote", "add", "lab", stack.url, "--worksheet", f"{tag}-home")
    for rel, text in FILES.items():
        p = tmp / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (tmp / "notes.txt").write_text("a single file\n")
    w = {"tag": tag, "ws": f"{tag}-ws"}
    t = ["--tags", tag]
    w["data"] = lite.out("upload", "data", "-n", "data", "-d", "the data", *t, "--tags", "input")
    w["notes"] = lite.out("upload", "notes.txt", "-n", "notes", *t)
    w["train"] = lite.out("run", f"d:{w['data']}", "cp d/stats.json d/curve.tsv .; echo trained",
                          "-n", "train", "-d", "a run", *t, "--request-memory", "1g", "--request-time", "1y",
                          "--request-disk", "1g", "--request-priority", "2", "--request-network", "-W")
    w["broken"] = lite("run", ":notes", "echo partial; exit 3", "-n", "broken", *t, "-W", ok=False).stdout.strip()
    w["combo"] = lite.out("make", f"s:{w['data']}/stats.json", f"n:{w['notes']}", "-n", "combo", *t)
    w["floating"] = lite.out("run", "echo alone > alone.txt", "-n", "alone", *t, "-W")
    # worksheets stored on both sides with the same bundle items (their uuids differ: the server mints
    # them): what `ws//bundle`, `ws//^N`, `host_worksheet=` and `{{ws}}` lines resolve on
    # (`cl run` adds its runs to `runs`; `pick` stays as it is, for `pick//^N`)
    lines = "".join(f"{{{w[k]}}}\n" for k in ("data", "notes", "train", "broken", "combo"))
    (tmp / "items.ws").write_text(lines)
    for kind in ("runs", "pick"):
        w[f"{kind}_ws"] = f"{tag}-{kind}"
        w[f"{kind}_local"] = lite.out("new", w[f"{kind}_ws"])
        lite("wedit", w[f"{kind}_ws"], "-f", "items.ws")
    (tmp / "worksheets").mkdir()
    path = tmp / "worksheets" / f"{w['ws']}.ws"
    path.write_text(worksheet_source(w))
    r = lite("push", "--worksheet", str(path), "--remote", "lab")
    w["ws_uuid"] = r.stdout.strip()
    lite("push", w["floating"], "--remote", "lab")
    store = Store.find(str(tmp))
    client = remotes.client(store, "lab")

    def put(uuid, text):
        client.request("POST", f"/worksheets/{uuid}/raw", content=text.encode(),
                       headers={"Content-Type": "text/plain"}, ok=(200, 204))
    for kind in ("runs", "pick"):
        w[f"{kind}_remote"] = client.ensure_worksheet(w[f"{kind}_ws"])
        put(w[f"{kind}_remote"], lines)
    # the source as written (push binds `{{ws}}` lines to local uuids, which the server lacks)
    put(w["ws_uuid"], path.read_text())
    # pushed bundles also landed on the remote's worksheet: empty it, so that on both sides the
    # worksheet file (here) and the pushed worksheet (there) are what hosts them
    put(client.worksheet_uuid(f"{tag}-home"), "")
    w.update(store=store, client=client, path=str(path), lite=lite)
    return w


# --- one form for both sides' blocks ---------------------------------------------------------------

def value(v):
    """A cell's value as both sides can be compared: a missing value is empty, structures as JSON."""
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return v


def points(rows):
    out = []
    for r in rows:
        try:
            out.append((float(r[0]), float(r[1])))
        except (ValueError, IndexError, TypeError):
            continue
    return out


def lite_form(b, schema_of):
    mode = b.mode
    if mode == "markup":
        return {"mode": "markup", "text": b.text, "error": b.error}
    if mode == "schema":
        return {"mode": "schema", "name": b.name, "rows": [list(r) for r in b.rows]}
    if mode == "table":
        return {"mode": "table", "header": list(b.header), "uuids": [r.uuid for r in b.rows],
                "rows": [[value(c.value) for c in r.cells] for r in b.rows], "genpaths": schema_of(b.header)}
    if mode == "record":
        return {"mode": "record", "uuids": [b.uuid], "rows": [[k, value(c.value)] for k, c in b.rows]}
    if mode == "contents":
        return {"mode": "contents", "uuid": b.uuid, "path": b.path, "lines": b.lines}
    if mode == "image":
        return {"mode": "image", "uuid": b.uuid, "path": b.path, "width": b.width, "height": b.height}
    if mode == "graph":
        return {"mode": "graph", "xlabel": b.xlabel, "ylabel": b.ylabel,
                "trajectories": [[t["uuid"], t["name"], t["path"], t["points"]] for t in b.trajectories]}
    if mode == "worksheets":
        return {"mode": "worksheets", "worksheets": [list(w) for w in b.worksheets]}
    raise AssertionError(f"codalite block of unknown mode {mode}")


def cl_form(b):
    mode = b["mode"].replace("_block", "")
    if mode == "markup":
        return {"mode": "markup", "text": b["text"], "error": bool(b.get("error"))}
    if mode == "schema":
        return {"mode": "schema", "name": b["schema_name"],
                "rows": [[r["field"], r["generalized-path"], r["post-processor"], r["from_schema_name"]]
                         for r in b["field_rows"]]}
    uuids = [i["uuid"] for i in b.get("bundles_spec", {}).get("bundle_infos", [])]
    if mode == "table":
        return {"mode": "table", "header": list(b["header"]), "uuids": uuids,
                "rows": [[value(r.get(h)) for h in b["header"]] for r in b["rows"]]}
    if mode == "record":
        return {"mode": "record", "uuids": uuids, "rows": [[r["key"], value(r.get("value"))] for r in b["rows"]]}
    if mode == "contents":
        return {"mode": "contents", "uuid": uuids[0], "path": b["target_genpath"], "lines": b.get("lines")}
    if mode == "image":
        size = lambda v: None if v is None else str(v)  # noqa: E731  (the server makes 100 a number)
        return {"mode": "image", "uuid": uuids[0], "path": b["target_genpath"], "width": size(b.get("width")),
                "height": size(b.get("height"))}
    if mode == "graph":
        return {"mode": "graph", "xlabel": b.get("xlabel"), "ylabel": b.get("ylabel"),
                "trajectories": [[t["bundle_uuid"], t["display_name"], t["target_genpath"], points(t.get("points", []))]
                                 for t in b["trajectories"]]}
    if mode == "subworksheets":
        return {"mode": "worksheets", "worksheets": [[w["uuid"], w["name"], w.get("title") or ""]  # no title: None
                                                     for w in b["subworksheet_infos"]]}
    raise AssertionError(f"CodaLab block of unknown mode {mode}")


def differences(lite_blocks, cl_blocks, search_lines=()):
    """Every difference between the two sides' blocks, one dict each (block index, what, values)."""
    out = []
    for i in range(max(len(lite_blocks), len(cl_blocks))):
        a = lite_blocks[i] if i < len(lite_blocks) else None
        b = cl_blocks[i] if i < len(cl_blocks) else None
        base = {"block": i}
        if a is None or b is None or a["mode"] != b["mode"]:
            out.append(dict(base, what="block", lite=a, cl=b))
            if a is None or b is None:
                continue
            continue
        if a["mode"] == "markup":
            if a != b:
                # codalite's number is the source line (CodaLab's moves: after an empty search, back onto it)
                line = re.match(r"Error in source line (\d+)", a["text"] or "")
                after = bool(line) and any(int(line.group(1)) > n for n in search_lines)
                out.append(dict(base, what="markup", lite=a["text"], cl=b["text"], after_search=after))
            continue
        if a["mode"] in ("table", "record"):
            if a["uuids"] != b["uuids"]:
                out.append(dict(base, what="rows", lite=a["uuids"], cl=b["uuids"]))
            if a["mode"] == "table" and a["header"] != b["header"]:
                out.append(dict(base, what="header", lite=a["header"], cl=b["header"]))
            for r, (ra, rb) in enumerate(zip(a["rows"], b["rows"])):
                for c, (va, vb) in enumerate(zip(ra, rb)):
                    if va != vb:
                        genpath = a["genpaths"][c] if a["mode"] == "table" else ra[0].rstrip(":")  # a record's key
                        out.append(dict(base, what="cell", row=r, column=a["header"][c] if a["mode"] == "table" else ra[0],
                                        genpath=genpath, uuid=a["uuids"][r] if a["mode"] == "table" else a["uuids"][0],
                                        lite=va, cl=vb))
            continue
        if a != b:
            out.append(dict(base, what=a["mode"], lite=a, cl=b))
    return out


def unexplained(diffs):
    return [d for d in diffs if not any(pred(d) for pred in KNOWN.values())]


# --- the tests -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    w = build_world(tmp_path_factory.mktemp("differential"), stack)
    yield w
    w["client"].close()


def report(diffs):
    return "\n".join(json.dumps(d, default=str)[:600] for d in diffs)


def test_worksheet_renders_the_same_blocks_rows_and_cells(world):
    """(1) Every directive, display mode, genpath kind and post-processor, with inline errors: the
    blocks of CodaLab's /rest/interpret/worksheet against codalite's interpret(), cell by cell."""
    w = world
    cl_blocks = [cl_form(b) for b in w["client"].json("GET", f"/interpret/worksheet/{w['ws_uuid']}")["blocks"]]
    result = interpret(w["store"], model.open_worksheet(w["store"], w["path"]).items)
    genpaths = {"uuid[0:8]": "uuid", "summary[0:1024]": "summary"}
    lite_blocks = []
    for b in result.blocks:
        if b.mode == "schema":
            genpaths.update({r[0]: r[1] for r in b.rows})
        lite_blocks.append(lite_form(b, lambda header: [genpaths.get(h, h) for h in header]))
    same_ws = {w["runs_local"]: w["runs_remote"], w["pick_local"]: w["pick_remote"]}  # one worksheet, two uuids
    for b in lite_blocks:
        if b["mode"] == "worksheets":
            b["worksheets"] = [[same_ws.get(u, u), n, t] for u, n, t in b["worksheets"]]
    source = open(w["path"]).read().splitlines()
    searches = [i + 1 for i, line in enumerate(source) if line.startswith("% search")]
    diffs = differences(lite_blocks, cl_blocks, searches)
    assert len(cl_blocks) > 20 and not unexplained(diffs), report(unexplained(diffs))


def search_cases(w):
    """(2) Keywords over the same bundles; each query also carries this session's tag."""
    data = w["data"]
    return [
        [], ["name=train"], ["name=tr%"], ["name=%a%"], ["name=.*ai.*"], ["train"], ["ai"], ["=trained"],
        ["exitcode=0"], ["exitcode=3"], ["exitcode=0,3"], ["state=failed"], ["state=ready,failed"],
        ["bundle_type=run"], ["bundle_type=make"], ["request_memory=1g"], ["request_priority=2"],
        ["request_network=True"], ["request_time=1y"], ["tags=input"], ["description=a run"],
        ["description=%run%"], ["name=TRAIN"], [f"uuid={data}"], [f"uuid={data[:8]}.*"],
        ["name=.sort"], ["name=.sort-"], ["id=.sort"], ["id=.sort-"], [".last"], ["exitcode=.sort-", "name=.sort"],
        ["request_priority=.sort"], ["name=.sort", ".limit=2"], ["name=.sort", ".limit=2", ".offset=2"],
        ["name=.sort", ".offset=5"], [".count"], ["state=ready", ".count"], ["exitcode=.sum"],
        ["request_priority=.sum"], [".floating"], ["name=.sort", ".floating"], [".mine", "name=.sort"],
        [".after=2020-01-01"], [".before=2020-01-01"], [".after=2999-01-01"], [f"dependency={data}"],
        [f"dependency/d={data}"], ["host_worksheet=WS"], ["worksheet=WS"], ["host_worksheet=WS", "name=.sort-"],
        ["state=running"], ["data_size=.sum", ".format=size"], [".count", ".format=%d"],
        ["name=.sort", ".limit=0"], ["=partial"], ["command=%exit%"], ["name=train,notes"], ["request_gpus=0"],
        ["id=.sort", ".offset=1", ".limit=3"], ["time=.sort-"],  # (created: the server sets its own on push)
    ]


def test_search_finds_the_same_bundles(world):
    """(2) `cl search` (the server's search_bundles, over REST) and codalite's search, query by query:
    the same uuids (in the same order when the query sorts), the same counts and sums."""
    w = world
    diffs = []
    names = {b.uuid: b.name for b in w["store"].query()}
    for case in search_cases(w):
        keywords = [f"tags={w['tag']}", *case]
        # WS: the runs worksheet, by its uuid on each side
        body = w["client"].json("GET", "/bundles", params={
            "keywords": [k.replace("=WS", "=" + w["runs_remote"]) for k in keywords]})
        got = search(w["store"], [k.replace("=WS", "=" + w["runs_local"]) for k in keywords])
        if isinstance(got, list):
            ours = [b.uuid for b in got]
            theirs = [d["id"] for d in body.get("data", [])]
            same = sorted(ours) == sorted(theirs)
            sorts = [k.split("=")[0] for k in case if k.endswith((".sort", ".sort-"))]
            if same and ("id" in sorts or ".last" in case):  # creation order: one order only
                same = ours == theirs
            elif same and sorts:  # the same order, up to ties (CodaLab leaves their order to MySQL);
                # the values as the server holds them (created: whole seconds there)
                held = {d["id"]: dict(d["attributes"], **d["attributes"]["metadata"]) for d in body["data"]}
                same = [[held[u].get(k) for k in sorts] for u in ours] == [[held[u].get(k) for k in sorts] for u in theirs]
            if not same:
                diffs.append({"what": "search", "case": case, "lite": [names.get(u) for u in ours],
                              "cl": [names.get(u) for u in theirs]})
        else:
            theirs = body.get("meta", {}).get("result")
            if str(got) != str(theirs):
                diffs.append({"what": "search", "case": case, "lite": got, "cl": theirs})
    assert not unexplained(diffs), report(unexplained(diffs))


def run_cases(w):
    """(3) `run` argument lists: targets (key:target, :b/sub/path, ws//b, ws//^N, uuid prefix) and the
    %...% sugar, with and without `---`. RUNS is the worksheet both sides resolve `ws//` on."""
    runs, pick, data = w["runs_ws"], w["pick_ws"], w["data"]
    return [
        [f"last:{pick}//^1", "ls last"],
        [f"third:{pick}//^3", "ls third"],
        [f"second:{pick}//^2", "ls second"],  # broken: a failed dependency
        [f":{pick}//^4", "ls"],
        ["d:data", "cat d/stats.json"],
        [":data", "ls data"],
        [":data/sub/deep.txt", "cat sub/deep.txt"],
        ["x:data/sub", "ls x"],
        ["d:train/stats.json", "cat d"],
        [f"d:{data[:10]}", "ls d"],
        [f":{runs}//train", "ls train"],
        [f"n:{runs}//notes", "cat n"],
        [f":{runs}//data/sub", "ls sub"],
        ["cat %data%/stats.json %notes%"],
        ["cat %x:data%/metrics.tsv %x:data%/cfg.yaml"],
        ["ls %:data/sub% %y:train/stats.json%"],
        [f"cat %{runs}//notes%"],
        ["d:data", "---", "cat", "d/notes.txt", "|", "wc", "-l"],
        [":notes", "---", "cat", "%data%/notes.txt", "notes"],
        ["echo 100%"],
    ]


def cl_batch(stack, commands, session):
    env = dict(os.environ, **dict(stack.env, CODALAB_SESSION=session))
    python = os.path.join(os.path.dirname(stack.cl_bin), "python")
    r = subprocess.run([python, os.path.join(HERE, "cl_batch.py")], input=json.dumps(commands), env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_run_records_the_same_dependencies_and_command(world, stack):
    """(3) The same `run` argument lists to `cl run` (on the server's worksheet RUNS) and to
    `codalite run`: the same dependencies (key, parent uuid, parent path) and the same command."""
    w = world
    cases = run_cases(w)
    commands = [["work", f"{stack.url}::{w['runs_ws']}"]]
    commands += [["run", "-n", f"{w['tag']}-t{i}", *args] for i, args in enumerate(cases)]
    results = cl_batch(stack, commands, session=w["tag"])
    assert results[0]["rc"] == 0, results[0]
    diffs = []
    for i, (args, res) in enumerate(zip(cases, results[1:])):
        mine = w["lite"]("run", "-n", f"{w['tag']}-t{i}", *args, ok=False)
        if res["rc"] != 0 or mine.returncode != 0:
            if not (res["rc"] != 0 and mine.returncode != 0):  # both refusing is the same answer
                diffs.append({"what": "run-exit", "args": args, "cl": (res["rc"], res["stderr"][-300:]),
                              "lite": (mine.returncode, mine.stderr[-300:])})
            continue
        ours, theirs = recorded_runs(w, mine.stdout.strip(), res["stdout"].split()[-1])
        if ours != theirs:
            diffs.append({"what": "run", "args": args, "lite": ours, "cl": theirs})
    assert not unexplained(diffs), report(unexplained(diffs))


def recorded_runs(w, lite_uuid, cl_uuid):
    """The command and dependencies (key, parent, path) each side recorded for the same `run`."""
    theirs = w["client"].json("GET", f"/bundles/{cl_uuid}")["data"]["attributes"]
    b = w["store"].get(lite_uuid)
    return ({"command": b.command,
             "dependencies": [(d.child_path, d.parent_uuid, d.parent_path or "") for d in b.dependencies]},
            {"command": theirs["command"],
             "dependencies": [(d["child_path"], d["parent_uuid"], d["parent_path"] or "") for d in theirs["dependencies"]]})


FUNCS = ["size", "duration", "date", "%.3f", "%d", "%s", "%5.1f%%", "[0:3]", "[2:]", "[x:y]", "s/a/b", "s/a/b/",
         r"s/(.+)\/(.+)/\2\/\1", "str", "key k", "key k | add x y", "add x y", "nosuch", "duration | [0:2]",
         r"%.1f | s/\./,/", "size | str", "%d | duration", "%.1001f"]
ARGS = [None, 0, 1, 5.25, 59.9, 60, 61, 3599, 3600, 3723, 86399, 86400, 90000, 31536000, 31536000 * 3 + 86400 * 40,
        99.01, 100, 700.3, 1023, 1024, 1025, 3500, 1048576, 4000000000, 350000000000, 450000000000000,
        2 ** 60, -5, "12", "1427467247", "abc", "3/10", "banana", True, [1, 2], {"a": 1}]


def test_post_processors_give_what_codalab_gives(stack):
    """CodaLab's own apply_func (and so size_str, duration_str, date_str), run in the stack's venv,
    against codalite's over a grid of post-processors and values (dates: whole seconds, as CodaLab
    stores them)."""
    from codalite.worksheets.genpath import apply_func

    cases = [(f, a) for f in FUNCS for a in ARGS if not (f == "date" and isinstance(a, float))]
    code = ("import json, sys\nfrom codalab.lib.worksheet_util import apply_func\n"
            "print(json.dumps([repr(apply_func(f, a)) for f, a in json.load(sys.stdin)]))")
    python = os.path.join(os.path.dirname(stack.cl_bin), "python")
    r = subprocess.run([python, "-c", code], input=json.dumps(cases), capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert r.returncode == 0, r.stderr[-2000:]
    theirs = json.loads(r.stdout)
    ours = [repr(apply_func(f, a)) for f, a in cases]
    diffs = [{"what": "post", "func": f, "arg": a, "lite": o, "cl": t}
             for (f, a), o, t in zip(cases, ours, theirs) if o != t]
    assert not unexplained(diffs), report(unexplained(diffs))


def test_print_is_laid_out_as_cl_print(world, stack):
    """`cl print` and `codalite print` of the same worksheet: the same header lines, and the same
    Markdown (as typed), [SchemaBlock] and error lines in the same order (tables are laid out
    differently: codalite wraps wide cells); `print -r` regenerates the same bundle lines."""
    w = world
    theirs, raw = cl_batch(stack, [["print", w["ws_uuid"]], ["print", "-r", w["pick_remote"]]],
                           session=w["tag"] + "-print")
    assert theirs["rc"] == 0 and raw["rc"] == 0, theirs["stderr"] + raw["stderr"]
    # -r: the source with bundle lines regenerated (`[run train -- d:data : cp ...]{0x...}`)
    assert w["lite"]("print", "-r", w["pick_ws"]).stdout.rstrip("\n") == raw["stdout"].rstrip("\n")
    ours = w["lite"]("print", w["path"]).stdout

    def header(text):
        return [line.split(":")[0] for line in text.splitlines()[:5]]

    def landmarks(text):  # error lines without their numbers (see diff:display-error-line)
        keep = ("# Differential", "Some *Markdown*", "over two lines.", "[SchemaBlock]", "Error in source line")
        return [re.sub(r"line \d+", "line N", line) for line in text.splitlines() if line.startswith(keep)]

    assert header(ours) == header(theirs["stdout"]) == ["### Worksheet", "### Title", "### Tags", "### Owner",
                                                        "### Permissions"]
    assert landmarks(ours) == landmarks(theirs["stdout"]), (landmarks(ours), landmarks(theirs["stdout"]))
    assert theirs["stdout"].splitlines()[5] == "" and ours.splitlines()[5] == ""  # a blank line before each block
