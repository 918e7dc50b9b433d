"""Generated differential tests: a few hundred `cl search` queries and a few dozen worksheets, drawn
with a fixed seed from CodaLab's grammar, given to the real CodaLab 1.7.5 server (REST `/bundles`
search and `/interpret/worksheet`) and to codalite over the same bundles (same uuids on both sides,
built as tests/codalab/test_differential.py builds them, plus a few datasets with awkward names,
tags and descriptions).

Any difference fails unless it is a deliberate one listed in docs/worksheets.md (KNOWN in
test_differential.py), or codalite refuses the query in one line for a documented reason
(REFUSALS below, each pointing at docs/codalab.md "Differences from CodaLab").
"""

import json
import os
import random
import re
import time

import pytest

from codalite.errors import CodaliteError, UsageError
from codalite.search import search
from codalite.codalab.errors import RemoteError
from codalite.worksheets import interpret, model

from test_differential import (FUNCS, build_world, cl_form, differences, lite_form, recorded_runs,  # noqa: I001
                               report, unexplained)

SEED = int(os.environ.get("CODALITE_FUZZ_SEED", "20240605"))  # another seed draws other cases (to hunt, not for CI)
N_QUERIES = 320
N_WORKSHEETS = 40

# codalite refuses these where CodaLab answers (docs/codalab.md, "Differences from CodaLab", item 10
# and 7): each refusal must say one of these, or the case is a difference
REFUSALS = [
    r"unknown option",                                   # 10: an unknown `.option` (CodaLab: a bare word)
    r"invalid field",                                    # 10: a key outside the name grammar
    r"\.count and =\.sum cannot be combined",            # 10
    r"sorting or summing by (dependency|worksheet)",     # 10
    r"takes one (value|date), not a list",               # 10
    r"selects bundles by CodaLab user or group",         # 7: owner=, group=
]


# --- the world -----------------------------------------------------------------------------------

EXTRA = [  # name, description, extra tags, file contents
    ("x_y", "50% off", ["1", "2"], "xy\n"),
    ("UPPER_case", "under_score", ["10"], "upper\n"),
    ("a.b-c", "", ["1"], "abc\n"),
    ("trainer", "a Run too", [], "trainer\n"),
]


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    w = build_world(tmp, stack)
    lite, tag = w["lite"], w["tag"]
    for i, (name, desc, tags, text) in enumerate(EXTRA):
        f = tmp / f"extra{i}.txt"
        f.write_text(text)
        args = ["upload", str(f), "-n", name, "-d", desc, "--tags", tag]
        for t in tags:
            args += ["--tags", t]
        w[name] = lite.out(*args)
        lite("push", w[name], "--remote", "lab")
    # a push adds the bundle to the remote's home worksheet: empty it (they stay floating on both sides)
    client = w["client"]
    client.request("POST", f"/worksheets/{client.worksheet_uuid(tag + '-home')}/raw", content=b"",
                   headers={"Content-Type": "text/plain"}, ok=(200, 204))
    # the server's view of every bundle of this world: sort values as the server holds them
    body = client.json("GET", "/bundles", params={"keywords": [f"tags={tag}", ".limit=1000"]})
    w["held"] = {d["id"]: dict(d["attributes"], **d["attributes"]["metadata"]) for d in body["data"]}
    w["names"] = {b.uuid: b.name for b in w["store"].query()}
    assert len(w["held"]) == len(EXTRA) + 6, sorted(h["name"] for h in w["held"].values())
    yield w
    client.close()


# --- the query generator -------------------------------------------------------------------------

def pools(w):
    data, notes, train = w["data"], w["notes"], w["train"]
    mid = train[10:16]
    return {
        "name": ["train", "TRAIN", "notes", "data", "tr%", "%a%", ".*ai.*", "%_%", "x_y", "x%y", "upper_case",
                 "a.b-c", "a_b-c", "%\\_%", "train,notes", "train,train", "tr%,notes", "trainer", "%er",
                 "", "alone", "combo,broken,x_y", "train ", "train ,notes"],
        "state": ["ready", "failed", "READY", "ready,failed", "running", "staged", "%a%"],
        "bundle_type": ["run", "make", "dataset", "program", "run,make", "RUN"],
        "type": ["run", "dataset"],
        "exitcode": ["0", "3", "0,3", "00", "1", "%3%"],
        "command": ["echo alone > alone.txt", "%exit%", "%echo%", "ECHO%", "%d/stats.json%"],
        "description": ["a run", "the data", "%run%", "50%", "50\\%%", "under_score", "under%", "%RUN%", "",
                        "A RUN", "a run,the data", "a run  "],
        "tags": ["input", "1", "10", "1,10", "INPUT", "%1%", "2", "nosuch", "1%"],
        "request_memory": ["1g", "1G", "1g,2g"],
        "request_time": ["1y", "1Y"],
        "request_priority": ["2", "0", "2,0"],
        "request_network": ["True", "true", "1", "False"],
        "request_gpus": ["0", "1"],
        "request_cpus": ["1"],
        "request_disk": ["1g"],
        "license": ["", "x"],
        "nosuchkey": ["1", ""],
        "uuid": [data, data[:8] + "%", data.upper(), f"{data},{notes}", data[:12], "%" + mid + "%", "0x%"],
        "dependency": [data, notes, f"{data},{notes}", data[:10] + "%", "0x" + "0" * 32],
        "dependency/d": [data, notes],
        "dependency/s": [data],
        "dependency/n": [notes, data],
        "host_worksheet": ["WS", "PICK", "WS,PICK"],
        "worksheet": ["WS"],
        "": ["trained", "partial", "input", "True", "1g", "run", "50% o", "ALONE", "d/stats", "x\\_"],
        "NAME": ["train", "TRAIN ", "tr%"],
        "Tags": ["input", "1,10"],
    }


SORTABLE = ["name", "NAME", "Tags", "id", "exitcode", "request_priority", "state", "uuid", "command", "description", "tags",
            "time", "bundle_type", "request_gpus", "request_memory"]
SUMMABLE = ["exitcode", "request_priority", "request_gpus", "time", "tags", "request_cpus"]  # (ids differ)
BARE = ["train", "ai", "TRAIN", "x_y", "_", "a.b", "%", "er", "ALONE", "rain,notes", "name:train", "-name=train",
        "0x", "nosuch"]
FORMATS = ["%d", "size", "%.1f", "duration", "[0:2]", "s/0/O", "nosuchfunc"]
DATES = ["2020-01-01", "2999-01-01", "2020", "2020-01-01T10:00", "yesterday"]


def gen_keyword(rng, w, p):
    r = rng.random()
    if r < 0.40:
        key = rng.choice(list(p))
        return f"{key}={rng.choice(p[key])}"
    if r < 0.55:
        return rng.choice(BARE if rng.random() < 0.6 else [w["train"][2:9], w["data"][5:12], w["notes"][-6:]])
    if r < 0.70:
        return f"{rng.choice(SORTABLE)}={rng.choice(['.sort', '.sort-'])}"
    if r < 0.78:
        return rng.choice([".mine", ".floating", ".last", ".count", ".shared"])
    if r < 0.88:
        return rng.choice([f".limit={rng.randint(0, 5)}", f".offset={rng.randint(0, 4)}"])
    if r < 0.93:
        return f"{rng.choice(['.before', '.after'])}={rng.choice(DATES)}"
    if r < 0.97:
        return f"{rng.choice(SUMMABLE)}=.sum"
    return rng.choice(["name==train", "=", "name=train ", "name=.sort,x", ".limit=x", "dependency=.sort",
                       "name:train", "NAME=train", "size=.sort", "worksheet=.sort"])


def gen_query(rng, w, p):
    kws = [gen_keyword(rng, w, p) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))]
    if any(k == ".count" or k.endswith("=.sum") for k in kws) and rng.random() < 0.5:
        kws.append(f".format={rng.choice(FORMATS)}")
    if rng.random() < 0.05:
        kws.append(kws[0])  # a duplicate
    return kws


# --- comparing one query -------------------------------------------------------------------------

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)")


def mysql_number(v):
    """MySQL's `value * 1` over the text CodaLab stores: the leading number, else 0."""
    if v is None:
        return None
    if isinstance(v, bool):
        v = str(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, list):
        return [mysql_number(x) for x in v]
    m = _NUMBER.match(str(v))
    return float(m.group(0)) if m else 0.0


def sort_value(held, key, uuid):
    exact = key
    key = {"type": "bundle_type", "size": "data_size"}.get(key, key.lower())  # metadata keys: any case
    v = held.get(uuid, {}).get(key)
    if key == "id":
        return None  # creation order: the lists themselves are compared
    if exact == "name":  # CodaLab sorts every other key as a number (`NAME` too)
        return (v or "").lower()
    return mysql_number(v)


def run_case(w, case):
    """One query on both sides -> None if they agree, else a difference dict ("refused" when codalite
    refused it in one line)."""
    keywords = [f"tags={w['tag']}", *case]
    remote = [k.replace("=WS", "=" + w["runs_remote"]).replace("=PICK", "=" + w["pick_remote"])
              .replace(",PICK", "," + w["pick_remote"]) for k in keywords]
    local = [k.replace("=WS", "=" + w["runs_local"]).replace("=PICK", "=" + w["pick_local"])
             .replace(",PICK", "," + w["pick_local"]) for k in keywords]
    try:
        body = w["client"].json("GET", "/bundles", params={"keywords": remote})
        cl_err = None
    except RemoteError as e:
        body, cl_err = None, str(e)
    try:
        got, lite_err = search(w["store"], local), None
    except UsageError as e:
        got, lite_err = None, str(e)
    except CodaliteError as e:  # pragma: no cover - a failure while searching is a defect
        got, lite_err = None, "FAILED: " + str(e)
    if cl_err is not None or lite_err is not None:
        if cl_err is not None and lite_err is not None:
            return None
        if lite_err is not None and any(re.search(r, lite_err) for r in REFUSALS):
            return {"what": "refused", "case": case, "lite": lite_err, "cl": "answers"}
        return {"what": "search-error", "case": case, "lite": lite_err or "answers", "cl": cl_err or "answers"}
    names = w["names"]
    cl_aggregate = "result" in body.get("meta", {})
    if not isinstance(got, list) or cl_aggregate:
        theirs = body.get("meta", {}).get("result")
        if isinstance(got, list) or not cl_aggregate or str(got) != str(theirs):
            listed = any(k.lower().startswith("tags=.sort") for k in case) and ".count" in case  # one row per tag
            fewer = _count(got) is not None and _count(got) <= (_count(theirs) or 0)  # (.format=%d: as text)
            return {"what": "search", "case": case, "lite": got if not isinstance(got, list) else [b.name for b in got],
                    "cl": theirs, "once_per_value": listed and fewer}
        return None
    ours = [b.uuid for b in got]
    theirs = [d["id"] for d in body.get("data", [])]
    if ours == theirs:
        return None
    sorts = ["id" if k == ".last" else k.split("=")[0] for k in case if k == ".last" or k.endswith((".sort", ".sort-"))]
    held = w["held"]
    once = False
    if len(set(theirs)) < len(theirs) and any(isinstance(h.get(k.lower()), list) for k in sorts for h in held.values()):
        # a list key sorted, even before the sort that wins (.last): CodaLab lists a bundle once per value
        theirs, once = list(dict.fromkeys(theirs)), True
        ours = ours[:len(theirs)]  # its page holds fewer bundles
    if sorts and sorts[-1] != "id":  # the last sort wins: the same sort values at the same places
        key = sorts[-1]
        pick = max if case[[i for i, k in enumerate(case) if k.startswith(key + "=.sort")][-1]].endswith("-") else min
        value = lambda u: (lambda v: pick(v) if isinstance(v, list) else v)(sort_value(held, key, u))  # noqa: E731
        same = [value(u) for u in ours] == [value(u) for u in theirs]
        if not same and any(isinstance(h.get(key.lower()), list) for h in held.values()) and \
                any(k.startswith(".offset=") and k != ".offset=0" for k in case):
            # CodaLab's offset counts rows, one per value: only the order can be compared
            vs = [value(u) for u in ours]
            same = once = vs == sorted(vs, reverse=pick is max)
        if same and not any(k.startswith((".limit", ".offset")) for k in case) and not once:
            same = sorted(ours) == sorted(theirs)
    elif not sorts:  # no order asked for: the same bundles (the page cut by .limit/.offset may differ)
        same = sorted(ours) == sorted(theirs) or (any(k.startswith((".limit", ".offset")) for k in case)
                                                  and len(ours) == len(theirs))
    else:  # the last sort is by id: one order
        same = ours == theirs
    if same and not once:
        return None
    return {"what": "search", "case": case, "lite": [names.get(u, u) for u in ours],
            "cl": [names.get(u, u) for u in theirs], "once_per_value": same and once}


def _count(v):
    """A count as a number, whether an int or formatted text ('10', '10.0'); None for anything else."""
    try:
        return float(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else None
    except ValueError:
        return None


def test_generated_searches_answer_as_codalab(world):
    """N_QUERIES generated queries: the same bundles (in the same order where one is asked for), the
    same counts and sums, or a documented one-line refusal."""
    rng = random.Random(SEED)
    p = pools(world)
    t0 = time.time()
    diffs, refused = [], []
    for _ in range(N_QUERIES):
        case = gen_query(rng, world, p)
        d = run_case(world, case)
        if d and d["what"] == "refused":
            refused.append(d)
        elif d:
            diffs.append(d)
    print(f"\n{N_QUERIES} queries in {time.time() - t0:.1f} s; {len(refused)} refused by codalite")
    if os.environ.get("CODALITE_FUZZ_DUMP"):  # every difference found, for a person to read
        with open(os.environ["CODALITE_FUZZ_DUMP"], "w") as f:
            json.dump({"diffs": diffs, "refused": refused}, f, indent=1, default=str)
    bad = unexplained(diffs)
    assert not bad, f"{len(bad)} of {N_QUERIES} differ:\n" + report(bad)


# --- the worksheet generator ---------------------------------------------------------------------

GENPATHS = ["name", "uuid", "state", "exitcode", "command", "description", "tags", "time", "dependencies",
            "dependencies/d", "dependencies/zz", "args", "summary", "bundle_type", "request_memory",
            "request_priority", "/stats.json:acc", "/stats.json:loss/1", "/stats.json:loss", "/stats.json:nested/k",
            "/stats.json:nested", "/metrics.tsv:acc", "/metrics.tsv:nope", "/cfg.yaml:model/name", "/cfg.yaml:lr",
            "/list.json:0", "/list.json:x", "/notes.txt", "/nope", "/nope.json:a", "/d/stats.json:acc", "/stdout",
            "/sub/deep.txt", "/sub", "/empty.txt", "nosuchkey", "uuid:name", "/", "/stats.json:",
            "/cfg.yaml:model", "/notes.txt:plain"]
POSTS = [p for p in FUNCS if p != "date"] + ["", "%.2f", "[0:4]", "s/t/T", "add k v", "key k"]
MODES = ["table", "record", "contents", "image", "graph", "hidden", "html", "bogus"]
FILE_ARGS = ["/stdout", "/stats.json", "/curve.tsv", "/nope", "/sub", "/notes.txt", "/d/curve.tsv", "stdout", ""]


def quote(text):
    return f'"{text}"' if (" " in text or text == "") else text


def gen_worksheet(rng, w):
    """A worksheet source: markup, comments, schemas (add, addschema), displays of every mode with
    good and bad arguments, bundle lines, searches and unknown directives."""
    bundles = [w[k] for k in ("data", "notes", "train", "broken", "combo", "floating", "x_y", "UPPER_case")]
    schemas = []
    lines = []
    for _ in range(rng.randint(3, 9)):
        r = rng.random()
        if r < 0.15:
            lines += rng.choice([["Some text"], ["# A title", "more text"], [""], ["// a comment"], ["%% note"],
                                 ["text", "", "after a blank"]])
        elif r < 0.40:
            name = f"s{len(schemas)}"
            lines.append(f"% schema {name}")
            for _ in range(rng.randint(0, 4)):
                if schemas and rng.random() < 0.2:
                    lines.append(f"% addschema {rng.choice(schemas + ['nosuch', 'default', 'run'])}")
                    continue
                gp = rng.choice(GENPATHS)
                field = f"f{rng.randint(0, 20)}"
                post = rng.choice(POSTS)
                args = [field, gp] + ([quote(post)] if post or rng.random() < 0.1 else [])
                if rng.random() < 0.1:
                    args = [gp]  # % add NAME: the genpath is the name
                lines.append("% add " + " ".join(args))
            schemas.append(name)
        elif r < 0.85:
            mode = rng.choice(MODES)
            if mode in ("table", "record"):
                pool = schemas + ["default", "run", "nosuch", "name", "uuid", "/stats.json:acc", "state"]
                args = rng.sample(pool, k=min(len(pool), rng.randint(0, 2)))
            elif mode in ("contents", "image", "graph"):
                args = [rng.choice(FILE_ARGS)] if rng.random() < 0.9 else []
                args += rng.sample(["maxlines=1", "maxlines=x", "width=50", "xlabel=step", "display_name=name",
                                    "junk", "height=3"], k=rng.randint(0, 2))
            else:
                args = []
            lines.append(" ".join(["% display", mode, *[a for a in args if a]]))
            if rng.random() < 0.3:
                q = rng.choice(["name=.sort", "state=ready", "name=.sort .limit=2", "type=run", "x_y", "id=.sort-",
                                "exitcode=3", ".count"])
                if ".sort" not in q and ".count" not in q:
                    q += " id=.sort"  # without a sort CodaLab's order is MySQL's (docs/codalab.md, 6)
                lines.append(f"% search tags={w['tag']} {q}")
            else:
                lines += [f"{{{b}}}" for b in rng.sample(bundles, k=rng.randint(1, 3))]
            # two blank lines end the bundles: CodaLab skips the line after bundles whose display
            # fails (diff:display-error-line), keeping that display until a line goes through
            lines += ["", ""]
        elif r < 0.93:
            lines.append(rng.choice(["% frobnicate", "% add orphan", "% addschema s0", "% schema", "% display",
                                     "%", "% wsearch nosuchworksheetname"]))
        elif r < 0.97:  # worksheet lines and `% wsearch` of one worksheet (several: their order differs;
            # `.limit=x`: CodaLab's server fails, HTTP 500)
            ws = [w["pick_ws"], w["runs_ws"]]
            lines += rng.sample([f"{{{{{rng.choice(ws)}}}}}", f"[a title]{{{{{rng.choice(ws)}}}}}",
                                 f"[]{{{{{rng.choice(ws)}}}}}", f"% wsearch {rng.choice(ws)}",
                                 f"% wsearch name={rng.choice(ws)}", f"% wsearch {w['tag']}-pi",
                                 f"% wsearch {rng.choice(ws)} .limit=0", f"% wsearch name={w['tag']}-pick,x",
                                 f"% wsearch {w['pick_ws']} .offset=1", f"% wsearch {w['tag']}-p.*k",
                                 f"% wsearch name={w['tag']}_pick", f"% wsearch name={w['tag']}-pi%",
                                 f"% wsearch {w['tag']}-runs .mine"], k=rng.randint(1, 3))
        else:
            lines += [f"{{{b}}}" for b in rng.sample(bundles, k=rng.randint(1, 2))] + ["", ""]
    return "\n".join(lines) + "\n"


def lite_blocks(store, path, same_ws=None):
    result = interpret(store, model.open_worksheet(store, path).items)
    genpaths = {"uuid[0:8]": "uuid", "summary[0:1024]": "summary"}
    out = []
    for b in result.blocks:
        if b.mode == "schema":
            genpaths.update({r[0]: r[1] for r in b.rows})
        out.append(lite_form(b, lambda header, g=dict(genpaths): [g.get(h, h) for h in header]))
        if b.mode == "worksheets" and same_ws:  # one worksheet, a uuid on each side
            out[-1]["worksheets"] = [[same_ws.get(u, u), n, t] for u, n, t in out[-1]["worksheets"]]
    return out


def test_generated_worksheets_render_as_codalab(world, tmp_path):
    """N_WORKSHEETS generated worksheets: CodaLab's /rest/interpret/worksheet blocks against codalite's
    interpret(), block by block and cell by cell (one server worksheet, rewritten for each)."""
    w = world
    client = w["client"]
    ws = client.ensure_worksheet(f"{w['tag']}-gen")
    rng = random.Random(SEED + 1)
    bad = []
    for i in range(N_WORKSHEETS):
        source = gen_worksheet(rng, w)
        path = tmp_path / f"gen{i}.ws"  # outside the project's worksheets/: .floating stays as it is
        path.write_text(source)
        client.request("POST", f"/worksheets/{ws}/raw", content=source.encode(),
                       headers={"Content-Type": "text/plain"}, ok=(200, 204))
        try:
            theirs = [cl_form(b) for b in client.json("GET", f"/interpret/worksheet/{ws}")["blocks"]]
        except RemoteError as e:
            bad.append({"worksheet": i, "source": source, "diffs": [{"what": "server", "cl": str(e)}]})
            continue
        ours = lite_blocks(w["store"], str(path), {w["runs_local"]: w["runs_remote"], w["pick_local"]: w["pick_remote"]})
        searches = [n + 1 for n, line in enumerate(source.splitlines()) if line.startswith(("% search", "% wsearch"))]
        found = unexplained(differences(ours, theirs, searches))
        if found:
            bad.append({"worksheet": i, "source": source, "diffs": found})
    # an empty worksheet again: these bundles go back to what the search test saw
    client.request("POST", f"/worksheets/{ws}/raw", content=b"", headers={"Content-Type": "text/plain"}, ok=(200, 204))
    assert not bad, f"{len(bad)} of {N_WORKSHEETS} worksheets differ:\n" + "\n\n".join(
        b["source"] + report(b["diffs"]) for b in bad[:8])


# --- named regressions: each difference the generated cases found, on a local store --------------
# (no stack needed; each is also among the generated cases above)

def _add(store, name, uuid=None, **md):
    from codalite import spec
    uuid = uuid or spec.new_uuid()
    metadata = {"name": name, "description": "", "tags": []}
    metadata.update(md)
    with store.tx():
        store._insert(uuid, "dataset", "ready", metadata, command=None, deps=[])
    return uuid


def _interpret(store, source):
    from codalite.worksheets.parse import parse
    return interpret(store, parse(source)).blocks


def test_an_empty_schema_shows_no_columns(store):
    """`% schema e` with no `% add`, then `% display table e`: CodaLab's schemas.get(e) is [] (a table
    with no columns); codalite read the name as a single column `e`."""
    u = _add(store, "x")
    blocks = _interpret(store, f"% schema e\n% display table e\n{{{u}}}\n% display record e\n{{{u}}}\n")
    table, record = [b for b in blocks if b.mode in ("table", "record")]
    assert list(table.header) == [] and [r.cells for r in table.rows] == [[]]
    assert record.rows == []


def _names(result):
    return [b.name for b in result]


def test_a_metadata_key_matches_whatever_its_case(store):
    """MySQL compares CodaLab's metadata_key without case: `NAME=train`, `TAGS=input` and
    `Data_Size=.sort` find what the lowercase keys find; codalite found nothing."""
    _add(store, "train", tags=["input"], data_size=5)
    _add(store, "other", data_size=1)
    assert _names(search(store, ["NAME=train"])) == ["train"]
    assert _names(search(store, ["Name=TRAIN"])) == ["train"]
    assert _names(search(store, ["TAGS=input"])) == ["train"]
    assert _names(search(store, ["Data_Size=.sort"])) == ["other", "train"]
    assert search(store, ["STATE=ready"]) == []  # a bundle column is matched by its exact name only
    assert search(store, ["Data_Size=.sum"]) == 6.0


def test_equality_ignores_trailing_spaces_as_mysql_does(store):
    """MySQL's PAD SPACE collation: `name=train ` equals 'train' (a LIKE pattern does not pad)."""
    _add(store, "train", description="a run")
    _add(store, "notes")
    assert _names(search(store, ["name=train "])) == ["train"]
    assert _names(search(store, ["description=a run  "])) == ["train"]
    assert sorted(_names(search(store, ["name=train ,notes"]))) == ["notes", "train"]
    assert search(store, ["name= train"]) == []  # leading spaces count
    assert search(store, ["name=train %"]) == []


def test_a_backslash_escapes_a_like_wildcard_as_in_mysql(store):
    r"""`name=%\_%` is a literal underscore (MySQL's LIKE escapes with a backslash); SQLite's LIKE had
    no escape, so it matched nothing."""
    _add(store, "x_y", description="50% off")
    _add(store, "xay", description="50 off")
    assert _names(search(store, [r"name=%\_%"])) == ["x_y"]
    assert _names(search(store, [r"description=50\%%"])) == ["x_y"]
    assert _names(search(store, [r"x\_"])) == ["x_y"]  # a bare word
    assert _names(search(store, [r"=50\%"])) == ["x_y"]  # any field


def test_a_list_key_sorts_by_its_smallest_value_or_largest_for_sort_minus(store):
    """CodaLab sorts one row per tag (`tags=.sort`), so a bundle first shows up at its smallest tag
    (largest with .sort-); codalite sorted by the first tag."""
    _add(store, "a", tags=["5", "1"])
    _add(store, "b", tags=["3"])
    _add(store, "c", tags=["2", "9"])
    assert _names(search(store, ["tags=.sort"])) == ["a", "c", "b"]
    assert _names(search(store, ["tags=.sort-"])) == ["c", "a", "b"]


def test_a_double_percent_line_is_a_comment(store):
    """`%% note` is a directive whose command is `%`: CodaLab's comment (it ends a schema, as any
    directive but add/addschema); codalite reported "unknown directive `%`"."""
    u = _add(store, "x")
    blocks = _interpret(store, f"%% a note\n% schema s\n% add name\n%% another\n% display table s\n{{{u}}}\n")
    assert [b.mode for b in blocks] == ["schema", "table"]
    assert list(blocks[1].header) == ["name"]


# --- `run` targets and `cl run` sugar ------------------------------------------------------------

N_RUNS = 48

# codalite refuses these run arguments where `cl run` goes on (docs/codalab.md, "Differences from
# CodaLab", item 5)
RUN_REFUSALS = [
    r"bundle name pattern '.*' is not resolved by codalite",   # 5: `tr%`, `tr.*` (CodaLab: the newest match)
    r"is not a dependency \(key:bundle",                      # 5: a positional target without `:` (CodaLab: b1:)
    r"invalid dependency key '[^']*' in",                     # 5: `d/:b`, `x y:b` (CodaLab: a child path `d/`)
    r"dependency key '(stdout|stderr)' is where the run's",   # 5: `:train/stdout` (the run's own stdout)
]


def run_targets(w):
    """(A short uuid prefix such as 0x0 is left out: the server holds other sessions' bundles too.)"""
    data = w["data"]
    return ["data", "notes", "train", "combo", data[:10], data, "data/sub", "data/sub/deep.txt", "data/stats.json",
            "data/", "data/sub/", "train/stdout", "PICK//^1", "PICK//^2", "PICK//^3", "PICK//^5", "PICK//^", "PICK//data",
            "PICK//notes/", "RUNS//notes", "RUNS//data/sub", "data^1", "data^2", "nosuch", "data//sub",
            "tr%", "tr.*", "data/nope", "PICK//" + data[:12]]


RUN_KEYS = [None, "", "", "d", "x", "k/sub", "a.b", "1", "-", "d/", "sub", "x y", "D"]


def gen_run(rng, w):
    """One `run` argument list: some key:target dependencies, then a command with %...% sugar, or
    `---` and its tokens."""
    targets = run_targets(w)

    def dep():
        key = rng.choice(RUN_KEYS)
        t = rng.choice(targets)
        return t if key is None else f"{key}:{t}"

    args = [dep() for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    words = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.45:
            words.append(f"%{dep()}%" + rng.choice(["", "", "/x", "/stats.json"]))
        elif r < 0.6:
            words.append(rng.choice(["100%", "%%", "%", "'%s'", "a%b", "%b1%"]))
        else:
            words.append(rng.choice(["ls", "cat", "echo", "a b", "$HOME", "'q'", "x;y", "-n"]))
    if rng.random() < 0.25:
        return args + ["---", *words]
    return args + [" ".join(words)]


def _run_ws(args, w):
    return [a.replace("PICK//", w["pick_ws"] + "//").replace("RUNS//", w["runs_ws"] + "//") for a in args]


def test_generated_runs_record_what_cl_run_records(world, stack):
    """N_RUNS generated `run` argument lists (keys, `:target`, `b/sub`, `ws//b`, `ws//^N`, `name^N`, uuid
    prefixes, %...% sugar, `---` and quoting): `cl run` (one batch; queued where no worker takes it) and
    `codalite run` record the same dependencies and command, or both refuse, or codalite refuses in
    one line for a documented reason."""
    w = world
    rng = random.Random(SEED + 2)
    cases = [gen_run(rng, w) for _ in range(N_RUNS)]
    from test_differential import cl_batch
    commands = [["work", f"{stack.url}::{w['runs_ws']}"]]
    commands += [["run", "-n", f"{w['tag']}-g{i}", "--request-queue", "codalite-never", *_run_ws(a, w)]
                 for i, a in enumerate(cases)]
    results = cl_batch(stack, commands, session=w["tag"] + "-runs")
    assert results[0]["rc"] == 0, results[0]
    diffs = []
    for i, (args, res) in enumerate(zip(cases, results[1:])):
        mine = w["lite"]("run", "-n", f"{w['tag']}-g{i}", *_run_ws(args, w), ok=False)
        if res["rc"] != 0 or mine.returncode != 0:
            if res["rc"] != 0 and mine.returncode != 0:
                continue
            if mine.returncode == 2 and any(re.search(r, mine.stderr) for r in RUN_REFUSALS):
                continue
            diffs.append({"what": "run-exit", "args": args, "cl": (res["rc"], res["stderr"][-300:]),
                          "lite": (mine.returncode, mine.stderr[-300:])})
            continue
        ours, theirs = recorded_runs(w, mine.stdout.strip(), res["stdout"].split()[-1])
        if ours != theirs:
            diffs.append({"what": "run", "args": args, "lite": ours, "cl": theirs})
    if os.environ.get("CODALITE_FUZZ_DUMP"):
        with open(os.environ["CODALITE_FUZZ_DUMP"] + ".runs", "w") as f:
            json.dump({"cases": cases, "diffs": diffs}, f, indent=1, default=str)
    assert not unexplained(diffs), report(unexplained(diffs))


def test_a_colon_target_with_a_trailing_slash_is_refused():
    """`:data/` is keyed by its empty subpath in CodaLab (its server refuses "child_path empty");
    codalite keyed it `data` and ran. `%:data/%` the same; `:data` and `k:data/` still work."""
    from codalite import spec
    for text in (":data/", ":ws//data/"):
        with pytest.raises(UsageError, match="empty path"):
            spec.parse_key_target(text)
    targets, _ = spec.desugar_command([], "cat %:data/%")
    with pytest.raises(UsageError, match="empty path"):
        spec.parse_key_target(targets[0])
    assert spec.parse_key_target(":data")[0] == "data"
    assert spec.parse_key_target("k:data/")[0] == "k"
    assert spec.parse_key_target(":data/sub/")[0] == "sub"


def test_a_colon_target_with_an_index_is_keyed_by_its_whole_spec_and_refused():
    """`cl run :data^1 ...` keys the dependency by its bundle spec as typed, `data^1`, which its server refuses
    ("child_path must match ..."); codalite dropped the `^1`, keyed it `data` and ran (seed 13 found it).
    `k:data^1` and `:data^1/sub` (keyed by the path) still work, as in CodaLab."""
    from codalite import spec
    for text in (":data^1", ":ws//data^2", ":^1"):
        with pytest.raises(UsageError, match=r"invalid dependency key '(data)?\^[12]'"):
            spec.parse_key_target(text)
    assert spec.parse_key_target("k:data^1")[0] == "k"
    assert spec.parse_key_target(":data^1/sub")[0] == "sub"


def test_a_bundle_name_pattern_as_a_run_target_is_refused_by_name(tmp_path, any_cl):
    """`cl run d:tr.* ...` takes the newest bundle named like `tr%`; codalite said "'d:tr.*' is not a
    dependency ... quote the whole command", which sends the user the wrong way."""
    from codalite import spec
    assert spec.looks_like_dependency("d:tr.*") and spec.looks_like_dependency(":tr%^2")
    with pytest.raises(UsageError, match="name pattern 'tr.\\*' is not resolved"):
        spec.parse_key_target("d:tr.*")
    any_cl("init")
    r = any_cl("run", "d:tr.*", "ls", ok=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "name pattern 'tr.*'" in r.stderr, r.stderr


def test_wsearch_and_wls_match_worksheets_as_codalab(store, cl):
    """`% wsearch name=a,b` is a list (CodaLab: name IN (a, b)); codalite looked for a worksheet named
    'a,b'. `name=a_b` is equal (`_` is no wildcard without a `%`), `.*` is `%`, a word matches a uuid
    anywhere; `wls .limit=1` cut nothing."""
    from codalite.worksheets import model as wsmodel
    for name in ("pick", "axb", "a_b", "runs"):
        wsmodel.new(store, name)
    names = lambda kws: [w.name for w in wsearch_of(store, kws)]  # noqa: E731
    assert names(["name=pick,x"]) == ["pick"]
    assert names(["name=PICK ,runs"]) == ["pick", "runs"]
    assert names(["name=a_b"]) == ["a_b"]
    assert names(["name=a%b"]) == ["axb", "a_b"]
    assert names(["name=a.*b"]) == ["axb", "a_b"]
    assert names(["IC"]) == ["pick"]
    pick = store.worksheets(["pick"])[0]["uuid"]
    assert names([pick[5:12]]) == ["pick"]
    assert names([".limit=2", ".offset=1"]) == ["axb", "a_b"]
    assert [w.name for w in wsmodel.list_worksheets(store, [".limit=1"])] == ["pick"]


def wsearch_of(store, keywords):
    from codalite.worksheets.interpret import wsearch
    return wsearch(store, keywords)


def test_a_json_graph_with_no_records_has_no_x_label(store):
    """`% display graph /stats.json` over bundles whose file holds no records: CodaLab's empty graph
    has no labels; codalite labelled the x axis `step`."""
    u = _add(store, "x")
    (graph,) = [b for b in _interpret(store, f"% display graph /stats.json\n{{{u}}}\n") if b.mode == "graph"]
    assert graph.xlabel is None and graph.ylabel is None


def test_a_graph_reports_a_bad_property_before_a_bad_genpath(store):
    """`% display graph stdout junk`: CodaLab parses the properties first ("Expected <key>=<value>, but
    got junk"); codalite reported the genpath ("Not file genpath: stdout")."""
    u = _add(store, "x")
    blocks = _interpret(store, f"% display graph stdout width=50 junk\n{{{u}}}\n")
    assert [b.text for b in blocks if b.mode == "markup"] == [
        "Error in source line 1: Expected <key>=<value>, but got junk"]
    blocks = _interpret(store, f"% display graph stdout width=50\n{{{u}}}\n")
    assert [b.text for b in blocks if b.mode == "markup"] == ["Error in source line 1: Not file genpath: stdout"]


def test_any_case_keys_where_a_bundle_holds_several_spellings(store):
    """The any-case key lookup reads a key's exact path unless the bundle's text holds another
    spelling (quicker at 10,000 bundles); bundles with one, the other or both spellings, and one whose
    description merely quotes the key, still match and sort as MySQL's any-case metadata_key does."""
    _add(store, "a", lr=0.5)
    _add(store, "b", LR=0.1)
    _add(store, "c", lr=0.9, Lr=0.05)
    _add(store, "d", lr=0.7, description='says "LR" and "Lr"')
    assert _names(search(store, ["lr=.sort"])) == ["c", "b", "a", "d"]
    assert _names(search(store, ["LR=.sort-"])) == ["c", "d", "a", "b"]
    assert _names(search(store, ["lr=0.1"])) == ["b"] and _names(search(store, ["LR=0.05"])) == ["c"]
    assert sorted(_names(search(store, ["Lr=0.9,0.7"]))) == ["c", "d"]
    assert search(store, ["lR=%", ".count"]) == 4
    _add(store, "e", acc=[3, 1])  # `acc` has one spelling: a sort or .count reads its path alone
    _add(store, "f", acc=2, description='"ACC"')
    assert _names(search(store, ["acc=.sort"])) == ["e", "f"] and _names(search(store, ["ACC=.sort-"])) == ["e", "f"]
    assert search(store, ["acc=1", ".count"]) == 1 and search(store, ["Acc=2", ".count"]) == 1
    assert search(store, ["acc=.sum"]) == 6.0


def test_print_of_a_table_with_no_columns_is_laid_out_as_cl_print(world, stack, tmp_path):
    """`% display table e` of an empty schema: `cl print` writes its header, rule and one line per
    bundle, each blank (two spaces); a record of it is a rule alone (no `key value` header: records
    never have one in `cl print`). codalite prints the same lines (without the indent)."""
    from test_differential import cl_batch
    w = world
    source = (f"% schema e\n% display table e\n{{{w['data']}}}\n{{{w['notes']}}}\n\n"
              f"% display record e\n{{{w['data']}}}\n\n% display record default\n{{{w['notes']}}}\n\ntext after\n")
    ws = w["client"].ensure_worksheet(f"{w['tag']}-print-empty")
    w["client"].request("POST", f"/worksheets/{ws}/raw", content=source.encode(),
                        headers={"Content-Type": "text/plain"}, ok=(200, 204))
    (theirs,) = cl_batch(stack, [["print", ws]], session=w["tag"] + "-print-empty")
    assert theirs["rc"] == 0, theirs["stderr"]
    path = tmp_path / "empty.ws"
    path.write_text(source)
    ours = w["lite"]("print", str(path)).stdout

    def shape(text):  # after the header lines: blank, rule, or the first word of a line
        out = []
        for line in text.splitlines()[5:]:
            s = line.strip()
            out.append("blank" if not s else "rule" if set(s) <= {"-", " "} else s.split()[0])
        return out

    assert shape(ours) == shape(theirs["stdout"]), (ours, theirs["stdout"])
    assert shape(ours)[:9] == ["blank", "[SchemaBlock]", "blank", "blank", "blank", "blank", "blank", "blank", "rule"]


def test_mimic_and_macro_name_copies_as_codalab(any_cl):
    """CodaLab's mimic_bundles: -n NAME goes to the output's copy and every other copy is NAME-OLDNAME
    (`mimic A B -n Z`: all of them); `cl macro` names its output `new` without -n. codalite named the
    other copies as the originals and a macro's output `M-out`, which the next `macro M` then took for
    the macro's own output ("was not made from M-in1")."""
    cl = any_cl
    cl("init")
    for name in ("A", "B", "C", "D", "M-in1"):
        cl("upload", "-c", name, "-n", name)
    cl("make", "a:A", "-n", "X1")
    cl("make", "x:X1", "-n", "X")
    names = lambda out: [cl.out("info", "-f", "name", u) for u in out.split()]  # noqa: E731
    assert names(cl.out("mimic", "A", "X", "B", "-n", "Y")) == ["Y-X1", "Y"]
    assert names(cl.out("mimic", "A", "C", "-n", "Z")) == ["Z-X1", "Z-X"]
    assert names(cl.out("mimic", "A", "D")) == ["X1", "X"]
    cl("make", "i:M-in1", "-n", "M-out")
    assert names(cl.out("macro", "M", "B")) == ["new"]
    assert names(cl.out("macro", "M", "C", "-n", "out2")) == ["out2"]
