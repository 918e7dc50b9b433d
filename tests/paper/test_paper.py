"""Paper tables from real runs: aggregation, exports (LaTeX compiled by pdflatex), provenance,
verify failing on every kind of drift, and trace."""

import csv
import json
import shutil
import statistics
import subprocess

import pytest
from click.testing import CliRunner
from paper_helpers import DECL, GRID, make_study

from codalite import paper
from codalite.cli import cli
from codalite.errors import UsageError


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def study(store, tmp_path):
    src, runs = make_study(store, tmp_path, GRID)
    (tmp_path / "nli.yaml").write_text(DECL)
    return src, runs


def test_compute_aggregates_over_seeds_and_marks_best(store, study, tmp_path):
    (spec,) = paper.load(str(tmp_path / "nli.yaml"))
    t = paper.compute(store, spec)
    assert t.rows == [("small",), ("tiny",)] and t.columns == [("4",), ("8",)]
    c = t.cells[(("tiny",), ("8",))]
    vals = [0.5 + 0.08 + s / 1000 for s in (1, 2, 3)]
    assert c.n == 3 and c.mean == pytest.approx(statistics.fmean(vals))
    assert c.text == f"{statistics.fmean(vals):.3f} ± {statistics.stdev(vals):.3f}" == "0.582 ± 0.001"
    assert [cell.best for (r, col), cell in sorted(t.cells.items())] == [True, True, False, False]


def test_export_files_and_provenance(store, study, tmp_path):
    src, runs = study
    r = invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper", "--base-url", "https://worksheets.codalab.org")
    assert r.exit_code == 0, r.output
    out = tmp_path / "paper"
    tex = (out / "nli.tex").read_text()
    for piece in (r"\toprule", r"\midrule", r"\bottomrule", r"\cmidrule(lr){2-3}", r"\multicolumn{2}{c}{rank}",
                  r"\textbf{0.742 $\pm$ 0.001}", "https://worksheets.codalab.org/search?q=uuid=0x",
                  r"Mean $\pm$ sd over seed (n=3 unless marked)."):
        assert piece in tex, piece
    md = (out / "nli.md").read_text()
    # a mean over three seeds links to a page listing all three bundles, not to one of them
    three = ",".join(b.uuid for b in runs if b.name.startswith("train-small-r8-"))
    link = f"https://worksheets.codalab.org/search?q=uuid={three}"
    assert "| model | 4 | 8 |" in md and f"[**0.782 ± 0.001**]({link})" in md
    assert rf"\href{{{link}}}{{\textbf{{0.782 $\pm$ 0.001}}}}" in tex
    rows = list(csv.DictReader(open(out / "nli.csv")))
    assert [(x["row"], x["column"], x["text"], x["n"]) for x in rows][0] == ("small", "4", "0.742 ± 0.001", "3")
    prov = json.loads((out / "nli.provenance.json").read_text())
    cell = next(c for c in prov["cells"] if c["row"] == "tiny" and c["column"] == "4")
    assert len(cell["bundles"]) == 3
    b = cell["bundles"][0]
    assert b["command"] == "python3 code/train.py tiny 4 1" and b["value"] == pytest.approx(0.541)
    assert b["inputs"] == [{"uuid": src.uuid, "name": "code", "content_hash": src.content_hash}]
    assert [a["bundle_type"] for a in b["ancestors"]] == ["dataset", "run"]
    assert b["ancestors"][-1]["environment"] and b["ancestors"][-1]["dependencies"][0]["parent_uuid"] == src.uuid
    assert b["content_hash"] and b["environment"].startswith("local:") or b["environment"]


@pytest.mark.skipif(not shutil.which("pdflatex"),
                    reason="pdflatex is absent: apt-get install -y texlive-latex-recommended")
def test_latex_compiles_in_stock_latex(store, study, tmp_path):
    assert invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper").exit_code == 0
    (tmp_path / "paper" / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{hyperref}\n"
        "\\begin{document}\n\\input{nli.tex}\n\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                       cwd=tmp_path / "paper", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "paper" / "doc.pdf").stat().st_size > 1000


def test_verify_passes_then_names_each_drifted_cell(store, study, tmp_path):
    src, runs = study
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "nli.yaml", "-o", out).exit_code == 0
    r = invoke("verify", out)
    assert r.exit_code == 0 and r.output == "4 cells verified: every number re-derived from its bundles\n"

    # a number edited by hand in the CSV
    text = (out / "nli.csv").read_text().replace("0.742 ± 0.001", "0.800 ± 0.001")
    (out / "nli.csv").write_text(text)
    r = invoke("verify", out)
    assert r.exit_code == 1
    assert "nli [small, 4]: nli.csv says 0.800 ± 0.001, the provenance says 0.742 ± 0.001" in r.output
    assert r.output.strip().endswith("Error: 1 problem(s) in 4 cells")

    # a bundle behind a cell deleted
    assert invoke("export", tmp_path / "nli.yaml", "-o", out).exit_code == 0
    gone = next(b for b in runs if b.name == "train-tiny-r8-s2")
    store.rm([gone])
    r = invoke("verify", out)
    assert r.exit_code == 1
    assert f"nli [tiny, 8]: bundle {gone.uuid} (train-tiny-r8-s2) is gone from the store" in r.output
    assert "nli [tiny, 8]: stale: the declaration now selects other bundles" in r.output
    assert "[tiny, 4]" not in r.output

    # a newer version of the code: every cell is stale
    assert invoke("export", tmp_path / "nli.yaml", "-o", out).exit_code == 0
    (tmp_path / "code" / "train.py").write_text((tmp_path / "code" / "train.py").read_text() + "# v2\n")
    new_src, _ = store.upload([str(tmp_path / "code")], name="code")
    r = invoke("verify", out)
    assert r.exit_code == 1
    for cell in ("[small, 4]", "[small, 8]", "[tiny, 4]", "[tiny, 8]"):
        assert f"nli {cell}: stale: input code ({src.uuid}) has a newer version {new_src.uuid}" in r.output


def test_verify_catches_a_changed_value(store, study, tmp_path):
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "nli.yaml", "-o", out).exit_code == 0
    prov = json.loads((out / "nli.provenance.json").read_text())
    prov["cells"][0]["bundles"][0]["value"] = 0.1  # as if the bundle had said 0.1 at export time
    (out / "nli.provenance.json").write_text(json.dumps(prov))
    r = invoke("verify", out / "nli.provenance.json")
    assert r.exit_code == 1 and "nli [small, 4]: bundle 0x" in r.output and "the table recorded 0.1" in r.output


def test_trace_prints_the_chain(store, study, tmp_path):
    src, runs = study
    assert invoke("export", tmp_path / "nli.yaml").exit_code == 0  # default: ./paper
    r = invoke("trace", "nli", "tiny", "8")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "nli [tiny, 8] = 0.582 ± 0.001 (n=3; /scores.json:nli_entail)"
    assert f"    dataset {src.uuid}  code  ready" in lines
    assert "            ! python3 code/train.py tiny 8 3" in lines
    assert lines.count("            [uploaded]") == 3
    r = invoke("trace", "nli", "huge", "8")
    assert r.exit_code == 2 and "has no cell [huge, 8]; rows: small, tiny; columns: 4, 8" in r.output


def test_declaration_errors_are_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: t\nbundles: x\nrows: {m: /a:m}\ncolumns: {}\nvalue: /s:v\nformat: '%q'\n")
    with pytest.raises(UsageError, match=r"bad.yaml: columns: .*at least 1 item"):
        paper.load(str(p))
    p.write_text("name: t\nbundles: x\nrows: {m: /a:m}\ncolumns: {r: /a:r}\nvalue: /s:v\nformat: '%q'\n")
    with pytest.raises(UsageError, match=r"bad.yaml: format: .*not a printf format"):
        paper.load(str(p))
    p.write_text("name: t\nbundles: x\nrows: {m: /a:m}\ncolumns: {r: /a:r}\nvalue: /s:v\nformat: '%.900000000f'\n")
    with pytest.raises(UsageError, match=r"bad.yaml: format: .*a width or precision over 1,000"):
        paper.load(str(p))  # checking it built 900 MB
    ws = tmp_path / "t.ws"
    ws.write_text("# Results\n```paper\n" + DECL + "```\n")
    assert paper.load(str(ws))[0].name == "nli"
