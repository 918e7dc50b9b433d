"""Paper figures from real (fake-)fine-tune runs: declared beside tables, exported as SVG, a LaTeX
picture that stock pdflatex compiles, Markdown and CSV, with provenance; verify re-derives the points
and fails when they change."""

import csv
import json
import os
import shutil
import subprocess

import pytest
from click.testing import CliRunner
from picture_helpers import fake_finetunes

from codalite import paper
from codalite.cli import cli
from codalite.errors import CodaliteError, UsageError

DEMO_YAML = os.path.join(os.path.dirname(__file__), "..", "..", "worksheets", "shapes_vqa.yaml")

DECL = r"""figures:
  - name: curves
    caption: Training loss and dev loss, $\pm$ nothing; 100\% of steps
    bundles: [name=ft-%]
    file: /log_history.json
    x: step
    y: [loss, eval_loss]
  - name: exact
    bundles: name=ft-%
    y: eval_exact
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def runs(store, tmp_path):
    runs = fake_finetunes(store, tmp_path, lrs=(0.5, 1.0))
    (tmp_path / "figs.yaml").write_text(DECL)
    return runs


def test_export_writes_svg_latex_markdown_csv_and_provenance(store, runs, tmp_path):
    out = tmp_path / "paper"
    r = invoke("export", tmp_path / "figs.yaml", "-o", out, "--base-url", "https://worksheets.codalab.org")
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out)) == sorted(f"{n}.{e}" for n in ("curves", "exact")
                                             for e in ("svg", "tex", "md", "csv", "provenance.json"))
    svg = (out / "curves.svg").read_text()
    assert svg.count("<polyline") == 4  # 2 bundles x 2 keys
    for name in ("ft-0.5 loss", "ft-0.5 eval_loss", "ft-1.0 loss", "ft-1.0 eval_loss"):
        assert f">{name}</text>" in svg
    tex = (out / "curves.tex").read_text()
    # the caption is the author's LaTeX, passed through
    assert r"\caption{Training loss and dev loss, $\pm$ nothing; 100\% of steps}" in tex
    assert r"\label{fig:curves}" in tex and r"\begin{picture}" in tex
    # in a picture, anything between objects (a space, an extra brace) shifts every later object:
    # each line is one balanced \put, or ends in % (a color group opening or closing), or is a comment
    body = tex.split("\\begin{picture}")[1].split("\\end{picture}")[0].splitlines()[1:]
    for line in body:
        assert (line.startswith("\\put(") and line.count("{") == line.count("}")) or line.endswith("%") \
            or line.startswith("%"), line
    a, b = runs
    assert rf"\href{{https://worksheets.codalab.org/bundles/{a.uuid}}}{{ft-0.5 loss}}" in tex
    md = (out / "curves.md").read_text()
    assert "![Training loss and dev loss, ± nothing; 100% of steps](curves.svg)" in md
    assert f"[ft-0.5](https://worksheets.codalab.org/bundles/{a.uuid})" in md
    rows = list(csv.DictReader(open(out / "exact.csv")))
    assert [(r["label"], r["x"], r["y"]) for r in rows if r["label"] == "ft-1.0"] == [
        ("ft-1.0", "5.0", "0.5"), ("ft-1.0", "10.0", "1.0"), ("ft-1.0", "15.0", "1.0"), ("ft-1.0", "20.0", "1.0")]
    prov = json.loads((out / "curves.provenance.json").read_text())
    assert prov["figure"] == "curves" and len(prov["points_sha256"]) == 64
    assert [(s["label"], s["key"], s["n_points"]) for s in prov["series"]] == [
        ("ft-0.5", "loss", 20), ("ft-0.5", "eval_loss", 4), ("ft-1.0", "loss", 20), ("ft-1.0", "eval_loss", 4)]
    assert [x["uuid"] for x in prov["bundles"]] == [a.uuid, b.uuid]
    assert prov["bundles"][0]["command"].startswith("python3 fake_ft.py 0.5 20 5")
    assert [x["name"] for x in prov["bundles"][0]["inputs"]] == ["fake_ft"]
    assert set(prov["files"]) == {"curves.svg", "curves.tex", "curves.md", "curves.csv"}


@pytest.mark.skipif(not shutil.which("pdflatex"),
                    reason="pdflatex is absent: apt-get install -y texlive-latex-recommended")
def test_latex_figure_compiles_in_stock_latex(store, runs, tmp_path):
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "figs.yaml", "-o", out).exit_code == 0
    (tmp_path / "doc.tex").write_text(  # the paper one directory up, as an author keeps it
        "\\documentclass[twocolumn]{article}\n\\usepackage{graphicx}\n\\usepackage{xcolor}\n\\usepackage{hyperref}\n"
        "\\begin{document}\nSee Figure~\\ref{fig:curves}.\n\\input{paper/curves.tex}\n\\input{paper/exact.tex}\n"
        "\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_verify_passes_then_fails_when_points_change(store, runs, tmp_path):
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "figs.yaml", "-o", out).exit_code == 0
    r = invoke("verify", out)
    assert r.exit_code == 0, r.output  # 4 + 2 series
    assert r.output == "6 figure lines verified: every number re-derived from its bundles\n"
    r = invoke("trace", out / "curves.provenance.json", "ft-0.5", "loss")  # a line: its label and key
    assert r.exit_code == 0 and r.output.startswith("curves [ft-0.5, loss] = "), r.output

    # a log changed in the store behind its back: the points no longer hash to the exported ones
    a = runs[0]
    log = os.path.join(store.location(a), "log_history.json")
    os.chmod(log, 0o644)
    hist = json.load(open(log))
    next(h for h in hist if "eval_exact" in h)["eval_exact"] = 0.99
    with open(log, "w") as f:
        json.dump(hist, f)
    r = invoke("verify", out)
    assert r.exit_code == 1
    problems = r.output.splitlines()
    assert problems[-1] == "Error: 1 problem(s) in 6 figure lines"
    assert problems[0].startswith(f"exact: eval_exact of bundle {a.uuid} (ft-0.5) changed: /log_history.json "
                                  "now gives 4 points (sha256 ")
    assert not any(p.startswith("curves:") for p in problems)  # loss and eval_loss did not change


def test_verify_names_a_new_run_a_deleted_one_and_an_edited_file(store, runs, tmp_path):
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "figs.yaml", "-o", out).exit_code == 0
    (c,) = fake_finetunes(store, tmp_path, lrs=(2.0,))  # a new seed the declaration selects
    r = invoke("verify", out / "curves.provenance.json")
    assert r.exit_code == 1
    assert f"curves: stale: the declaration now selects other bundles (new: {c.uuid}; no longer: -)" in r.output

    store.rm([c])
    gone = runs[1]
    store.rm([gone])
    r = invoke("verify", out / "curves.provenance.json")
    assert r.exit_code == 1 and f"curves: bundle {gone.uuid} (ft-1.0) is gone from the store" in r.output

    assert invoke("export", tmp_path / "figs.yaml", "-o", out).exit_code == 0
    assert invoke("verify", out).exit_code == 0
    (out / "exact.svg").write_text((out / "exact.svg").read_text().replace("ft-0.5", "ft-9.9"))
    r = invoke("verify", out)
    assert r.exit_code == 1 and "exact: exact.svg is not the file export wrote (edited since); re-export" in r.output


def test_figure_declaration_mistakes_are_one_line(store, runs, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("figures:\n  - name: f\n    bundles: name=ft-%\n")
    with pytest.raises(UsageError, match=r"bad.yaml: figure 0: y: Field required"):
        paper.load(str(p))
    p.write_text("figure:\n  - name: f\n    bundles: name=ft-%\n    y: loss\ntables: []\n")
    with pytest.raises(UsageError, match=r"unknown key 'figure' beside tables/figures"):
        paper.load(str(p))
    p.write_text("figures:\n  - {name: f, bundles: name=ft-%, y: loss}\n  - {name: f, bundles: name=ft-%, y: eval_loss}\n")
    with pytest.raises(UsageError, match=r"two tables or figures are named 'f'"):
        paper.load(str(p))
    # a key no log has: refused, naming the bundle, rather than an empty line in the paper
    p.write_text("figures:\n  - {name: f, bundles: name=ft-%, y: eval_bleu}\n")
    r = invoke("export", p, "-o", tmp_path / "out")
    assert r.exit_code == 1 and "\n" not in r.output.strip()
    assert f"figure f: bundle {runs[0].uuid} (ft-0.5): no record of /log_history.json has both 'step' and " \
           "'eval_bleu' as numbers" in r.output
    assert not (tmp_path / "out" / "f.svg").exists()
    # all or nothing: a good declaration before the bad one writes nothing either
    p.write_text("figures:\n  - {name: good, bundles: name=ft-%, y: loss}\n  - {name: f, bundles: name=ft-%, y: eval_bleu}\n")
    r = invoke("export", p, "-o", tmp_path / "out2")
    assert r.exit_code == 1 and os.listdir(tmp_path / "out2") == []


def test_a_rerun_replaces_its_twin_and_two_different_runs_with_one_label_are_refused(store, runs, tmp_path):
    (spec, _) = paper.load(str(tmp_path / "figs.yaml"))
    (again,) = fake_finetunes(store, tmp_path, lrs=(0.5,))  # the same command again (a forced rerun)
    fig = paper.compute(store, spec)
    assert [b.uuid for b in fig.bundles] == [again.uuid, runs[1].uuid]
    (other,) = fake_finetunes(store, tmp_path, lrs=(2.0,), names="ft-0.5")  # another run, the same name
    with pytest.raises(CodaliteError, match=rf"bundles {again.uuid} and {other.uuid} are both labelled 'ft-0.5' "
                                            r"\(name\) but ran different commands"):
        paper.compute(store, spec)


# the keys bundles.finetune logs with --metrics exact on easy-vqa (gen_eval: eval_exact_<qtype>)
DEMO_FT = r'''
import json, sys
seed = int(sys.argv[sys.argv.index("--seed") + 1])
hist = [{"loss": 3.0 - s / 400 - seed / 10, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": s / 800, "step": s}
        for s in range(80, 801, 80)]
for s in (400, 800):
    hist.append({"eval_loss": 2.0 - s / 1000, "eval_exact": s / 2000 + seed / 100, "eval_exact_shape": 0.34,
                 "eval_exact_color": s / 1600, "eval_exact_yesno": 0.6, "eval_runtime": 1.0, "step": s})
json.dump(hist, open("log_history.json", "w"))
'''


def test_the_demo_declares_its_fine_tunes_curves(store, tmp_path):
    """worksheets/shapes_vqa.yaml's figures: the tiny VLM's three seeds (not the smollm2 profile's
    fine-tune of the same name), loss and dev exact per evaluation."""
    from picture_helpers import drain, upload_script

    code = upload_script(store, tmp_path, "ft", DEMO_FT)
    cmds = [(f"python3 ft.py --seed {s} --full --lr 1e-3", f"finetune-seed{s}") for s in (0, 1, 2)]
    cmds.append(("python3 ft.py --seed 0 --lora-r 8 --train-projector", "finetune-seed0"))  # --profile smollm2
    made = [store.run(c, [("ft.py", code.uuid)], name=n, start_worker=False)[0] for c, n in cmds]
    drain(store)
    figs = [s for s in paper.load(DEMO_YAML) if isinstance(s, paper.FigureSpec)]
    assert [s.name for s in figs] == ["shapes_vqa_loss", "shapes_vqa_dev_exact"]
    out = tmp_path / "paper"
    for spec in figs:
        paper.export(store, paper.compute(store, spec), str(out), "http://127.0.0.1:8765")
    prov = json.loads((out / "shapes_vqa_dev_exact.provenance.json").read_text())
    assert [b["uuid"] for b in prov["bundles"]] == [b.uuid for b in made[:3]]
    assert [(s["label"], s["key"], s["n_points"]) for s in prov["series"]][:3] == [
        ("finetune-seed0", "eval_exact", 2), ("finetune-seed0", "eval_exact_shape", 2),
        ("finetune-seed0", "eval_exact_color", 2)]
    assert len(prov["series"]) == 9
    loss = json.loads((out / "shapes_vqa_loss.provenance.json").read_text())
    assert [s["n_points"] for s in loss["series"]] == [10, 2] * 3
    assert paper.verify(store, str(out)) == (0, 15, [])  # table cells, figure lines, problems
