"""CodaLab's `cl` verbs on a real store through the real CLI (issue 13): memo on/off, edit, work,
add/detach, download, cp, mimic A X B, macro, ^1-3, info -v, wedit -T / -f -, help, refusals."""

import json
import os
import subprocess
import sys

import pytest


def lines(text):
    return [x for x in text.split("\n") if x]


@pytest.fixture
def seeded(cl, tmp_path):
    (tmp_path / "a.txt").write_text("1\n")
    (tmp_path / "b.txt").write_text("22\n")
    cl("upload", "a.txt", "-n", "A")
    cl("upload", "b.txt", "-n", "B")
    return cl


def one_error(r, code, fragment):
    err = r.stderr.rstrip("\n").split("\n")
    assert r.returncode == code and len(err) == 1 and err[0].startswith("Error: "), r.stderr
    assert fragment in err[0], r.stderr


# --- memo: per run and per store ------------------------------------------------------------

def test_memo_is_visible_and_no_memo_runs_are_never_reused(seeded):
    cl = seeded
    first = cl.out("run", "date +%N > t", "--no-desugar", "-W")
    r = cl("run", "date +%N > t", "--no-desugar", "-W")
    assert r.stdout.strip() == first and "memo hit" in r.stderr  # the design, said every time
    fresh = cl.out("run", "date +%N > t", "--no-desugar", "--no-memo", "-W")
    assert fresh != first
    info = json.loads(cl.out("info", fresh, "--json"))
    assert info["memoize"] is False and info["memo_key"] is None  # recorded; never a memo target
    # a later memoized run still gets the first (memoized) bundle, never the no-memo one
    assert cl.out("run", "date +%N > t", "--no-desugar") == first
    one_error(cl("run", "true", "--no-memo", "-m", ok=False), 2, "--no-memo cannot be combined")


def test_store_memo_off_is_codalab_and_m_opts_back_in(seeded):
    cl = seeded
    first = cl.out("run", "echo hi > o", "-W")
    assert cl.out("config", "memo") == "on"
    cl("config", "memo", "off")
    second = cl.out("run", "echo hi > o", "-W")
    third = cl.out("run", "echo hi > o", "-W")
    assert len({first, second, third}) == 3  # CodaLab: a new bundle each time
    assert cl.out("run", "echo hi > o", "-m") == first  # CodaLab's -m: the memoized one
    up = cl.out("upload", "a.txt", "-n", "A")  # uploads too are new bundles, as `cl upload`
    assert up not in cl.out("search", "name=A", "-u").split("\n")[1:]
    one_error(cl("config", "memo", "maybe", ok=False), 2, "memo is on or off")
    one_error(cl("config", "nope", "x", ok=False), 2, "unknown setting 'nope'")
    cl("config", "memo", "on")
    assert cl.out("run", "echo hi > o") == first


# --- edit ---------------------------------------------------------------------------------------

def test_edit_changes_metadata_not_contents_or_memo_key(seeded):
    cl = seeded
    run = cl.out("run", ":A", "cat A > o", "-n", "r", "-W")
    before = json.loads(cl.out("info", run, "--json"))
    r = cl("edit", "r", "-n", "renamed", "-d", "new text", "-T", "x", "y", "-f", "license", "MIT")
    assert f"Saved metadata for bundle {run}" in r.stdout
    after = json.loads(cl.out("info", run, "--json"))
    assert (after["name"], after["description"], after["tags"], after["license"]) == ("renamed", "new text", ["x", "y"], "MIT")
    for k in ("content_hash", "memo_key", "command", "dependencies", "state"):
        assert after[k] == before[k]
    assert cl.out("run", ":A", "cat A > o") == run  # still the memo target
    assert cl.out("search", "tags=y", "-u") == run
    cl("edit", run, "-T")
    assert json.loads(cl.out("info", run, "--json"))["tags"] == []
    one_error(cl("edit", run, "-f", "command", "rm -rf /", ok=False), 2, "'command' is not editable")
    one_error(cl("edit", run, "-n", "bad name", ok=False), 2, "bad name")
    one_error(cl("edit", run, ok=False), 2, "nothing to edit")
    one_error(cl("edit", run, "--freeze", ok=False), 2, "CodaLab server feature")


# --- work, add, detach, ^N ranges ----------------------------------------------------------------

def test_work_current_worksheet_like_codalab(seeded):
    cl = seeded
    a = cl.out("info", "A", "-f", "uuid")
    one_error(cl("work", ok=False), 2, "no current worksheet")
    ws = cl.out("new", "exp")
    assert cl.out("work", "exp", "-u") == ws
    up = cl.out("upload", "b.txt", "-n", "B", "--force")  # lands on exp
    run = cl.out("run", ":B", "cat B > o", "-n", "r", "-W")  # B is exp's B (the newest item)
    assert cl.out("print", "exp", "-r").count("{0x") == 2
    assert cl.out("info", "^1", "-f", "uuid") == run and cl.out("info", "^2", "-f", "uuid") == up
    assert lines(cl.out("info", "^1-2", "-f", "uuid")) == [run, up]
    # names count the current worksheet's bundles, as CodaLab: A is not on exp
    one_error(cl("info", "A", ok=False), 1, "exp//A")
    cl("add", "bundle", a)  # no -w: the current worksheet (a uuid is found wherever it is)
    cl("add", "bundle", a, "--dest-worksheet", "exp")
    assert cl.out("print", "exp", "-r").count("{0x") == 4
    one_error(cl("detach", "A", ok=False), 2, "2 times")
    cl("detach", "A", "-n", "1")
    cl("detach", "A")
    assert cl.out("print", "exp", "-r").count("{0x") == 2
    cl.out("new", "other")
    cl("add", "worksheet", "other")
    assert "[worksheet other]" in cl.out("print", "exp", "-r")
    cl("work", "--clear")
    assert cl.out("info", "A", "-f", "name") == "A"  # across the store again


def test_rm_and_kill_take_ranges(seeded):
    cl = seeded
    r1 = cl.out("run", "echo 1 > o", "-W")
    r2 = cl.out("run", "echo 2 > o", "-W")
    assert set(lines(cl.out("rm", "^1-2", "-i"))) == {r1, r2}


# --- wedit: title, tags, stdin ----------------------------------------------------------------

def test_wedit_title_tags_and_stdin(seeded, tmp_path):
    cl = seeded
    cl("new", "exp")
    cl("wedit", "exp", "-t", "My title", "-T", "paper", "ml")
    assert "My title" in cl.out("wls", "tag=paper")
    assert "exp" not in cl.out("wls", "tag=other")
    r = subprocess.run([sys.executable, "-m", "codalite", "wedit", "exp", "-f", "-"], cwd=cl.cwd, env=cl.env,
                       input="# from stdin\n{A}\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    src = cl.out("print", "exp", "-r")
    assert "# from stdin" in src and "[dataset A]" in src
    assert cl.out("wsearch", "exp", "-u") == cl.out("wls", "exp", "-u")
    r = subprocess.run([sys.executable, "-m", "codalite", "wedit", "exp", "-f", "-"], cwd=cl.cwd, env=cl.env,
                       input=b"\xff\xfe", capture_output=True, timeout=60)
    assert r.returncode == 2 and b"not UTF-8" in r.stderr
    assert "# from stdin" in cl.out("print", "exp", "-r")  # nothing half-written


# --- download, cp ------------------------------------------------------------------------------

def test_download_bundle_and_path(seeded, tmp_path):
    cl = seeded
    run = cl.out("run", ":A", "mkdir d; cp A d/copy", "-n", "r", "-W")
    cl("download", "r")
    assert (tmp_path / "r" / "d" / "copy").read_text() == "1\n"
    cl("download", f"{run}/d/copy", "-o", "got.txt")
    assert (tmp_path / "got.txt").read_text() == "1\n"
    one_error(cl("download", "r", ok=False), 2, "already exists")
    cl("download", "r", "-f")
    (tmp_path / "r" / "new").write_text("writable")  # the copy is yours, not read-only
    one_error(cl("download", "r/nope", "-o", "x", ok=False), 1, "no such path")
    assert not (tmp_path / "x").exists()
    one_error(cl("cp", "A", "lab::", ok=False), 2, "codalite push")


# --- mimic, macro --------------------------------------------------------------------------------

def test_mimic_a_x_b_and_macro(seeded):
    cl = seeded
    x1 = cl.out("run", ":A", "cat A > x", "-n", "X1", "-W")
    x = cl.out("run", ":X1", "cat X1/x > y", "-n", "X", "-W")
    z = cl.out("run", ":A", "cat A > z", "-n", "Z", "-W")
    dry = cl.out("mimic", "A", "X", "B", "-i")
    assert x1 in dry and x in dry and z not in dry
    new = lines(cl.out("mimic", "A", "X", "B", "-n", "Y", "-W"))
    assert len(new) == 2
    assert cl.out("cat", "Y/y") == "22"
    assert len(lines(cl.out("mimic", "A", "B", "-W"))) == 3  # everything downstream of A
    one_error(cl("mimic", "Z", "X", "B", ok=False), 2, "was not made from")
    cl("upload", "a.txt", "-n", "M-in1")
    cl("run", ":M-in1", "wc -c < M-in1 > o", "-n", "M-out", "-W")
    out = cl.out("macro", "M", "B", "-n", "out2", "-W")
    assert cl.out("cat", f"{out}/o") == "3"
    one_error(cl("macro", "Q", "B", ok=False), 1, "Q-in1")


# --- info -v, help, refusals ----------------------------------------------------------------------

def test_info_verbose_help_and_refusals(seeded):
    cl = seeded
    run = cl.out("run", ":A", "echo out; cat A > o", "-n", "r", "-W")
    v = cl.out("info", "A", "-v")
    assert f"children:\n  {run} (r)" in v
    v = cl.out("info", run, "-v")
    assert "contents:" in v and "  o" in v and "stdout (last lines):\n  out" in v
    assert "Usage: codalite run" in cl.out("help", "run")
    assert "Usage: codalite add bundle" in cl.out("help", "add", "bundle")
    assert "Commands:" in cl.out("help")
    one_error(cl("help", "nope", ok=False), 2, "no command 'nope'")
    for verb in ("gls", "perm", "mount", "write"):
        one_error(cl(verb, "x", ok=False), 2, "CodaLab server feature")


def test_cli_modules_do_not_import_cli_back():
    """The command groups import cli_common, never cli.py: no import cycle (issue 13)."""
    code = ("import sys, codalite.cli_common, codalite.cli_worksheets, codalite.cli_remote, codalite.cli_recipes, "
            "codalite.cli_env, codalite.cli_codalab; assert 'codalite.cli' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
