"""The worksheet verbs end to end through the real `codalite` click group and a real store."""

import json

from click.testing import CliRunner

from codalite.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_new_wedit_add_print_wls(store, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "stats.json").write_text(json.dumps({"acc": 0.91234}))
    b, _ = store.upload([str(tmp_path / "d")], name="stats")
    r = invoke("new", "demo", "-t", "Demo results")
    assert r.exit_code == 0 and r.output.startswith("0x") and len(r.output.strip()) == 34
    (tmp_path / "demo.ws").write_text("# Demo\n% schema s\n% add name\n% add acc /stats.json:acc %.2f\n"
                                      "% display table s\n{stats}\n")
    assert invoke("wedit", "demo", "-f", tmp_path / "demo.ws").exit_code == 0
    assert invoke("add", "text", "% display record s", "-w", "demo").exit_code == 0
    assert invoke("add", "bundle", "stats", "-w", "demo").exit_code == 0
    out = invoke("print", "demo").output
    lines = out.splitlines()
    assert "name   acc" in lines and "stats  0.91" in lines  # aligned columns
    assert "acc:   0.91" in lines  # the record
    raw = invoke("print", "demo", "-r").output
    assert raw.splitlines()[-3:] == [f"[dataset stats]{{{b.uuid}}}", "% display record s", f"[dataset stats]{{{b.uuid}}}"]
    assert "demo" in invoke("wls").output
    html = tmp_path / "demo.html"
    assert invoke("print", tmp_path / "demo.ws", "--html", html, "--base-url", "http://x").exit_code == 0
    page = html.read_text()
    assert f'<a href="http://x/bundles/{b.uuid}">0.91</a>' in page and "<h1>Demo</h1>" in page


def test_errors_are_one_line_with_exit_codes(store):
    r = invoke("print", "nope")
    assert r.exit_code == 1 and r.output == "Error: no worksheet matches 'nope'; list them with `codalite wls`\n"
    invoke("new", "w1")
    r = invoke("new", "w1")
    assert r.exit_code == 2 and "already exists" in r.output
    r = invoke("add", "bundle", "ghost", "-w", "w1")
    assert r.exit_code == 1 and "no bundle matches 'ghost'" in r.output
    r = invoke("print", "missing.ws")
    assert r.exit_code == 2 and "no such worksheet file" in r.output


def test_wide_tables_wrap_instead_of_cutting(store, tmp_path):
    from codalite.worksheets import interpret, parse, render

    long = "x" * 150
    b, _ = store.run(f"echo {long}", name="wide", start_worker=False)
    text = render.to_text(interpret(store, parse(f"% schema s\n% add name\n% add command\n% display table s\n{{{b.uuid}}}")), width=60)
    schema, table = text.split("\n\n")
    assert schema == "[SchemaBlock]"  # as `cl print` shows a `% schema`
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert "".join(line[6:].strip() for line in lines[2:]) == f"echo {long}"


def test_print_is_laid_out_as_cl_print(store, tmp_path):
    """`cl print`: the header lines (worksheet uuid and name, title, owner), then every block after a
    blank line; Markdown stays as typed; a `% schema` is [SchemaBlock]; an empty cell is empty."""
    import getpass

    b, _ = store.run("true", name="plain", start_worker=False)
    ws = invoke("new", "lay", "-t", "Layout study").output.strip()
    (tmp_path / "lay.ws").write_text("# Title **bold**\n- item one\n\n% schema s\n% add name\n% add nope /x.json:k\n"
                                     f"% display table s\n{{{b.uuid}}}\n")
    invoke("wedit", "lay", "-f", tmp_path / "lay.ws")
    out = invoke("print", "lay").output
    assert out.splitlines()[:5] == [f"### Worksheet: {ws} (lay)", "### Title: Layout study", "### Tags: ",
                                    f"### Owner: {getpass.getuser()}", "### Permissions: -"]
    body = out.split("\n", 5)[5]
    assert body.startswith("\n# Title **bold**\n- item one\n\n[SchemaBlock]\n\nname   nope\n")
    assert body.splitlines()[-1] == "plain"  # the missing file value leaves the cell empty
    # a worksheet file has no uuid: its path stands in
    out = invoke("print", tmp_path / "lay.ws").output
    assert out.splitlines()[0] == f"### Worksheet: {tmp_path / 'lay.ws'} (lay)"
