"""Interpretation against a real store: CodaLab's §3.4 worksheet sources render the same rows and
cells; errors are inline with their source line and never stop the rest."""

import getpass

from ws_helpers import cells

from codalite.worksheets import interpret, parse
from codalite.worksheets.interpret import ContentsBlock, GraphBlock, MarkupBlock, RecordBlock, SchemaBlock, TableBlock


def run(store, text):
    return interpret(store, parse(text)).blocks


def test_nli_tutorial_worksheet(store, study):
    """codalab/worksheets-examples/01-nli/README.md, with our uuids."""
    src, data, runs = study["src"], study["data"], study["runs"]
    text = f"""% schema run
% add uuid uuid '[0:8]'
% add name
% add epoch /stats.json:epoch %d
% add '#epochs' /args.json:n_epochs %d
% add train_frac /args.json:train_frac %s
% add train_accuracy /stats.json:train_accuracy %.1f
% add test_accuracy /stats.json:test_accuracy %.1f
% add time time duration
% add state
% add description

[dataset SNLI]{{{data.uuid}}}
[dataset src]{{{src.uuid}}}

% display table run
""" + "\n".join(f"[run run-python -- :src,:SNLI : {b.command}]{{{b.uuid}}}" for b in runs) + "\n"
    blocks = run(store, text)
    assert [type(b) for b in blocks] == [SchemaBlock, TableBlock, TableBlock]
    schema, datasets, table = blocks
    assert schema.name == "run" and schema.rows[1] == ("name", "name", None, "run")
    assert schema.rows[2] == ("epoch", "/stats.json:epoch", "%d", "run")
    assert datasets.header == ["uuid[0:8]", "name", "summary[0:1024]", "data_size", "state", "description"]
    assert cells(datasets)[0][:3] == [data.uuid[:8], "SNLI", "[uploaded]"]
    assert cells(datasets)[0][4] == "ready"
    assert table.header == ["uuid", "name", "epoch", "#epochs", "train_frac", "train_accuracy",
                            "test_accuracy", "time", "state", "description"]
    rows = cells(table)
    assert [r[0] for r in rows] == [b.uuid[:8] for b in runs]
    assert rows[0][1:7] == ["train-0.1", "3", "3", "0.1", "81.0", "71.0"]
    assert rows[2][1:7] == ["train-0.5", "3", "3", "0.5", "83.0", "75.0"]
    assert rows[0][7].endswith("s") and rows[0][8] == "ready"
    assert rows[0][9] == ""  # empty description (not missing)
    # every cell links to its bundle
    assert {c.uuid for c in table.rows[1].cells} == {runs[1].uuid}


def test_dashboard_searches_make_one_table_and_aggregates_are_text(store, study):
    """codalab/objects/dashboard.ws verbatim."""
    text = """## **My running bundles**
These are bundles that are currently running or queued to be run.
% schema r
% add uuid uuid '[0:8]'
% add name
% add owner owner_name
% add created created date
% add time time duration
% add state
% display table r
% search state=ready created=.sort- .limit=10000 .mine
% search state=staged created=.sort- .limit=10000 .mine

## **My floating bundles**
% search .mine .floating
## **Basic statistics**
Number of bundles owned by me:
% search .mine .count
My disk usage:
% search .mine size=.sum .format=size
"""
    blocks = run(store, text)
    kinds = [type(b).__name__ for b in blocks]
    assert kinds == ["MarkupBlock", "SchemaBlock", "TableBlock", "MarkupBlock", "TableBlock", "MarkupBlock"]
    blocks.pop(1)
    assert blocks[0].text.startswith("## **My running bundles**\nThese are")
    table = blocks[1]
    assert table.header == ["uuid", "name", "owner", "created", "time", "state"]
    assert len(table.rows) == 5  # newest first: 3 runs then 2 uploads
    assert [r[1] for r in cells(table)][:3] == ["train-0.5", "train-0.2", "train-0.1"]
    assert cells(table)[0][2] == getpass.getuser()
    assert len(cells(table)[0][3]) == 26 or len(cells(table)[0][3]) == 19  # "YYYY-MM-DD HH:MM:SS"
    assert cells(table)[0][3][:2] == "20"
    assert blocks[2].text == "## **My floating bundles**"
    # `% search .mine .floating` (limit 10): default schema
    assert blocks[3].header[0] == "uuid[0:8]" and len(blocks[3].rows) == 5
    total = sum(b.metadata["data_size"] for b in store.query())
    from codalite.worksheets.genpath import size_str
    assert blocks[4].text == ("## **Basic statistics**\nNumber of bundles owned by me:\n5\n"
                              f"My disk usage:\n{size_str(total)}")


def test_addschema_and_display_reset(store, study):
    """docs/Executable-Papers.md: `% addschema run` + extra columns; a blank line resets display."""
    r = study["runs"][0]
    text = f"""% schema custom
% addschema run
% add trainError /stats.json:train_accuracy %.3f
% add missing /stats.json:nope
% display table custom
{{{r.uuid}}}

{{{r.uuid}}}
"""
    schema, custom, default = run(store, text)
    assert schema.name == "custom" and schema.rows[0] == ("uuid[0:8]", "uuid", "[0:8]", None)  # from `run`
    assert schema.rows[-1] == ("missing", "/stats.json:nope", None, "custom")
    assert custom.header == ["uuid[0:8]", "name", "summary[0:1024]", "data_size", "time", "state",
                             "description", "trainError", "missing"]
    assert cells(custom)[0][7] == "81.000" and cells(custom)[0][8] == ""  # missing: empty, as CodaLab
    assert cells(custom)[0][2] == "! " + r.command
    assert default.header[0] == "uuid[0:8]" and len(default.header) == 6


def test_record_contents_graph_hidden_and_file_formats(store, study):
    r = study["runs"][1]
    text = f"""% schema s
% add acc /metrics.tsv:acc
% add layers /cfg.yaml:model/layers
% add second /stats.json:nested/acc/1
% add deps dependencies
% add src dependencies/src
% add args args
% add stdout uuid "key uuid | add path /stdout | add text StandardOutput"
% display record s
{{{r.name}}}
% display contents /stdout maxlines=2
{{{r.uuid}}}
% display graph /stdout xlabel=epoch
{{{r.uuid}}}
% display hidden
{{{r.uuid}}}
% display contents /
{{{r.uuid}}}
"""
    blocks = run(store, text)
    assert [type(b) for b in blocks] == [SchemaBlock, RecordBlock, ContentsBlock, GraphBlock, ContentsBlock]
    blocks.pop(0)
    rec = dict((k, c) for k, c in blocks[0].rows)
    assert rec["acc:"].text == "0.9" and rec["layers:"].text == "2" and rec["second:"].text == "0.75"
    assert rec["deps:"].text == ":SNLI,:src"
    assert rec["src:"].text == "src"
    assert rec["args:"].text.startswith(f"run SNLI:{study['data'].uuid} src:{study['src'].uuid} \"python3 src/train.py")
    assert "--request-memory 2g" in rec["args:"].text
    assert rec["stdout:"].text == "StandardOutput" and rec["stdout:"].path == "/stdout"
    assert blocks[1].lines == ["epoch\tloss\n", "0\t1.000\n"]
    assert blocks[2].trajectories[0]["points"] == [(0.0, 1.0), (1.0, 0.5), (2.0, 0.333)]
    assert blocks[2].xlabel == "epoch"
    assert blocks[3].lines == ["<directory>"]


def test_errors_are_inline_with_line_numbers_and_the_rest_renders(store, study):
    r = study["runs"][0]
    text = f"""# Results
% add x /stats.json:epoch
% frobnicate
% display html
{{{r.uuid}}}
after the bad display
% schema
{{no_such_bundle}}
% display table default
{{{r.uuid}}}
% display contents stdout
{{{r.uuid}}}
% add 'unclosed
[missing]{{0x{"0" * 32}}}
"""
    blocks = run(store, text)
    texts = [b.text for b in blocks if isinstance(b, MarkupBlock)]
    assert "Error in source line 2: `add` must be preceded by `schema` directive" in texts
    assert "Error in source line 3: unknown directive `frobnicate`" in texts
    # CodaLab reports a bad display mode on the line after its bundles; we name the display line
    assert "Error in source line 4: Unknown display mode: html" in texts
    assert "Error in source line 7: `schema` missing name" in texts
    assert any(t.startswith("Error in source line 8: no bundle matches 'no_such_bundle'") for t in texts)
    assert "Error in source line 11: Not file genpath: stdout" in texts
    assert any(t.startswith("Error in source line 13: No closing quotation") for t in texts)
    tables = [b for b in blocks if isinstance(b, TableBlock)]
    assert cells(tables[0])[0][1] == r.name  # the table after the errors still renders
    assert cells(tables[-1])[0][1] == "<invalid>"  # a uuid whose bundle is gone (CodaLab's row)
    assert cells(tables[-1])[0][0] == "0x000000"


def test_running_bundle_reads_its_working_directory(store, study):
    b, _ = store.run("sleep 30", name="slow", start_worker=False)
    (_, blocks) = run(store, f"% schema s\n% add state\n% add out /x.json:v\n% display table s\n{{{b.uuid}}}")
    assert cells(blocks) == [["staged", ""]]
    assert interpret(store, parse(f"{{{b.uuid}}}")).live


def test_schema_blocks_permission_and_metadata_as_codalab(store, study):
    """CodaLab's interpret_items: a schema still open at the end is a block too; a schema whose line
    failed is not; `permission` is the owner's ('all') and `metadata` the whole dict."""
    r = study["runs"][0]
    blocks = run(store, f"% schema s\n% add permission\n% add metadata\n% display table s\n{{{r.uuid}}}\n"
                        "% schema t\n% add name\n% addschema s\n% add x y z w\n% schema last\n% add name")
    assert [type(b) for b in blocks] == [SchemaBlock, TableBlock, MarkupBlock, SchemaBlock]
    table = blocks[1]
    assert cells(table)[0][0] == "all"
    assert table.rows[0].cells[1].value == r.metadata and cells(table)[0][1].startswith("{")
    assert blocks[2].text.startswith("Error in source line 9: Invalid number of arguments")
    assert blocks[3].name == "last" and blocks[3].rows == [("name", "name", None, "last")]


def test_durations_of_a_year_as_codalab():
    from codalite import spec

    assert spec.parse_duration("1y") == 365 * 86400
    assert spec.format_duration(400 * 86400) == "1y35d"  # CodaLab's duration_str
    assert spec.format_duration(2 * 86400 + 3600) == "2d1h"


def test_genpaths_read_through_a_dependency_key_and_args_as_codalab(store, study):
    """CodaLab's get_target_info: `run/KEY/file` missing from the run is KEY's file (`% add x
    /SNLI/train.txt:a`); never outside a bundle. `args` quotes as CodaLab's formatting.quote and lists
    request flags sorted, as its server returns them."""
    r = study["runs"][0]
    _, table = run(store, f"% schema s\n% add x /SNLI/train.txt:a\n% add up /SNLI/../../x\n% add args\n"
                          f"% display table s\n{{{r.uuid}}}\n% display contents /src/train.py maxlines=1\n{{{r.uuid}}}")[:2]
    x, up, args = cells(table)[0]
    assert x == "b\tentailment" and up == ""
    assert args.startswith(f'run SNLI:{study["data"].uuid} src:{study["src"].uuid} "python3 src/train.py 0.1 0.1"')
    flags = [a for a in args.split() if a.startswith("--")]
    assert flags == sorted(flags)
    contents = run(store, f"% display contents /src/train.py maxlines=1\n{{{r.uuid}}}")[0]
    assert contents.lines == ["import json, sys\n"]


def test_file_heads_as_codalab_reads_them(tmp_path):
    """summarize_file: a whole file's last line gets its newline; a file cut at 1 KiB per line
    drops its cut last line."""
    from codalite.worksheets.genpath import head_lines

    (tmp_path / "a").write_text("x\ny")
    assert head_lines(str(tmp_path / "a"), 10) == ["x\n", "y\n"]
    (tmp_path / "b").write_text("z" * 1500 + "\nrest\n")
    assert head_lines(str(tmp_path / "b"), 1) == []  # 1 KiB read, no whole line in it
    (tmp_path / "c").write_text("ok\n" + "z" * 3000)
    assert head_lines(str(tmp_path / "c"), 2) == ["ok\n"]


def test_schema_blocks_show_their_fields_in_html(store):
    """CodaLab's web UI shows a `% schema` block (collapsed): its fields, genpaths and post-processors."""
    from codalite.worksheets import render

    result = interpret(store, parse("% schema s\n% add acc /stats.json:acc %.3f\n% add name\n"))
    html = render.to_html(store, result, "t", standalone=False)
    assert "<summary>schema s</summary>" in html
    assert "<td>acc</td><td>/stats.json:acc</td><td>%.3f</td>" in html and "<td>name</td><td>name</td><td></td>" in html


def test_contents_maxlines_is_bounded_and_a_huge_search_is_one_error(store, study):
    """maxlines=-1 read the whole file (read(-n)), 10**9 as much; a 60,000-character `% search`
    made SQLite refuse its LIKE pattern and aborted the whole worksheet."""
    r = study["runs"][0]
    text = f"""% display contents /stdout maxlines=-1
{{{r.uuid}}}
% display contents /stdout maxlines=1000000000
{{{r.uuid}}}
% search {"x" * 60000}
% display contents /stdout maxlines=2
{{{r.uuid}}}
"""
    blocks = run(store, text)
    texts = [b.text for b in blocks if isinstance(b, MarkupBlock)]
    assert "Error in source line 1: maxlines must be between 0 and 10000" in texts
    assert "Error in source line 3: maxlines must be between 0 and 10000" in texts
    assert any(t.startswith("Error in source line 5: search: a keyword of 60000 characters") for t in texts)
    contents = [b for b in blocks if isinstance(b, ContentsBlock)]
    assert len(contents) == 1 and len(contents[0].lines) == 2  # the rest still renders
