"""Paper tables tried as a demanding reviewer and a careless user would: every edit of an exported
file is caught by verify (and a deleted provenance, an edited declaration), export never overwrites
a user's file and is all or nothing, values that have no mean are refused, labels stay unambiguous,
and the statistics equal independent closed-form computations."""

import hashlib
import json
import math
import os
import resource
import shlex
import signal
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from paper_helpers import DECL, GRID, drain, make_study

from codalite import paper
from codalite.cli import cli
from codalite.errors import UsageError
from codalite.paper import stats
from codalite.paper.declare import TableSpec
from codalite.paper.table import TableError, mark_best, tabulate
from codalite.search import search


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def exported(store, tmp_path):
    """The study's table exported into paper/, verified clean."""
    make_study(store, tmp_path, GRID)
    (tmp_path / "nli.yaml").write_text(DECL)
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "nli.yaml", "-o", out).exit_code == 0
    r = invoke("verify", out)
    assert r.exit_code == 0, r.output
    return out


def edit(path, old, new):
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new, 1))


EDITS = {
    # a number in the Markdown (never checked before)
    "md-number": lambda out: edit(out / "nli.md", "[0.542 ± 0.001]", "[0.552 ± 0.001]"),
    # the CSV's mean column (only its text column was checked)
    "csv-mean": lambda out: edit(out / "nli.csv", "0.542 ± 0.001,0.542,", "0.542 ± 0.001,0.552,"),
    # a row the provenance does not know
    "csv-row-added": lambda out: open(out / "nli.csv", "a").write("huge,4,0.990,0.99,,3,1,,,,,\n"),
    # the bold moved to another cell of the column: every number is still somewhere in the file
    "tex-bold-moved": lambda out: (edit(out / "nli.tex", r"\textbf{0.742 $\pm$ 0.001}", r"0.742 $\pm$ 0.001"),
                                   edit(out / "nli.tex", r"{0.542 $\pm$ 0.001}", r"{\textbf{0.542 $\pm$ 0.001}}")),
    "tex-caption": lambda out: edit(out / "nli.tex", "NLI entailment", "Strong NLI entailment"),
    "md-deleted": lambda out: os.remove(out / "nli.md"),
}


@pytest.mark.parametrize("name", EDITS)
def test_verify_catches_every_edit_of_an_exported_file(exported, name):
    EDITS[name](exported)
    r = invoke("verify", exported)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == "Error: 1 problem(s) in 4 cells"
    assert r.output.startswith("nli: nli.")


def test_verify_catches_a_file_edited_together_with_its_recorded_hash(exported):
    edit(exported / "nli.md", "[0.542 ± 0.001]", "[0.552 ± 0.001]")
    prov = json.loads((exported / "nli.provenance.json").read_text())
    prov["files"]["nli.md"] = hashlib.sha256((exported / "nli.md").read_bytes()).hexdigest()
    (exported / "nli.provenance.json").write_text(json.dumps(prov))
    r = invoke("verify", exported)
    assert r.exit_code == 1
    assert "nli: nli.md is not what export writes from the store now" in r.output


def test_verify_names_exported_files_whose_provenance_is_gone(exported, tmp_path):
    (tmp_path / "two.yaml").write_text(DECL.replace("name: nli", "name: nli2"))
    assert invoke("export", tmp_path / "two.yaml", "-o", exported).exit_code == 0
    (exported / "doc.tex").write_text("\\documentclass{article}\n")  # the author's own files are left alone
    (exported / "notes.csv").write_text("a,b\n1,2\n")
    os.remove(exported / "nli2.provenance.json")
    r = invoke("verify", exported)
    assert r.exit_code == 1
    assert "nli2: nli2.csv was written by `codalite export` but nli2.provenance.json is missing" in r.output
    assert "nli2: nli2.tex was written" in r.output and "doc.tex" not in r.output and "notes" not in r.output
    os.remove(exported / "nli.provenance.json")  # none left: still the same lines, not "no exported table"
    r = invoke("verify", exported)
    assert r.exit_code == 1 and "nli: nli.csv was written by `codalite export`" in r.output


def test_verify_sees_the_declaration_edited_since_export(exported, tmp_path):
    edit(tmp_path / "nli.yaml", "value: /scores.json:nli_entail", "value: /scores.json:other")
    r = invoke("verify", exported)
    assert r.exit_code == 1
    assert f"nli: stale: its declaration in {tmp_path / 'nli.yaml'} changed since export (value); re-export" in r.output
    (tmp_path / "nli.yaml").write_text(DECL.replace("name: nli", "name: renamed"))
    r = invoke("verify", exported)
    assert r.exit_code == 1 and "no longer declares nli" in r.output


def test_export_refuses_to_overwrite_a_file_it_did_not_write(exported, tmp_path):
    paper_tex = exported / "main.tex"
    paper_tex.write_text("\\documentclass{article} the author's paper\n")
    (tmp_path / "main.yaml").write_text(DECL.replace("name: nli", "name: main"))
    r = invoke("export", tmp_path / "main.yaml", "-o", exported)
    assert r.exit_code == 2
    assert f"{paper_tex} exists and was not written by `codalite export`" in r.output
    assert paper_tex.read_text() == "\\documentclass{article} the author's paper\n"
    assert not (exported / "main.csv").exists() and not (exported / "main.provenance.json").exists()
    # its own files it replaces, as before
    assert invoke("export", tmp_path / "nli.yaml", "-o", exported).exit_code == 0


TWO = """tables:
  - name: t1
    bundles: name=train-%
    rows: {model: /args.json:model}
    columns: {rank: /args.json:lora_r}
    value: /scores.json:nli_entail
    over: {seed: /args.json:seed}
    format: "FMT"
  - name: t2
    bundles: name=train-%
    rows: {model: /args.json:model}
    columns: {rank: /args.json:lora_r}
    value: /scores.json:nli_entail
    over: {seed: /args.json:seed}
    format: "FMT"
"""


def test_export_is_all_or_nothing_when_the_disk_fills(store, tmp_path):
    make_study(store, tmp_path, GRID)
    out = tmp_path / "paper"
    (tmp_path / "two.yaml").write_text(TWO.replace("FMT", "%.3f"))
    assert invoke("export", tmp_path / "two.yaml", "-o", out).exit_code == 0
    before = {f: (out / f).read_text() for f in os.listdir(out)}
    (tmp_path / "two.yaml").write_text(TWO.replace("FMT", "%.2f"))

    def full_disk():  # files over 8 KiB fail with EFBIG, as on a full disk: the .tex fits, the provenance not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODALITE_HOME", "CODALAB_"))}
    r = subprocess.run([sys.executable, "-m", "codalite", "export", "two.yaml", "-o", "paper"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, preexec_fn=full_disk, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("Error: cannot write paper/") and "nothing was written" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert {f: (out / f).read_text() for f in os.listdir(out)} == before  # old export whole, no temporary left
    assert invoke("verify", out).exit_code == 1  # (the declaration changed: the old export is stale)


CODE = (
    "import json, sys\n"
    "model, rank, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "json.dump({'model': model, 'lora_r': rank, 'seed': seed}, open('args.json', 'w'))\n"
    "v = {'nan': 'NaN', 'inf': 'Infinity'}.get(model, '0.5')\n"
    "open('scores.json', 'w').write('{\"nli_entail\": %s}' % v)\n"
)


def odd_study(store, tmp_path, grid):
    """Runs whose model names hold what a careless user types (spaces, ' / ', '|'), values NaN or Infinity."""
    (tmp_path / "code").mkdir(parents=True)
    (tmp_path / "code" / "train.py").write_text(CODE)
    src, _ = store.upload([str(tmp_path / "code")], name="code")
    for i, args in enumerate(grid, start=len(search(store, ["name=train-%", ".limit=1000"]))):
        store.run("python3 code/train.py " + shlex.join(map(str, args)), [("code", src.uuid)], name=f"train-{i}",
                  start_worker=False)
    drain(store)


@pytest.mark.parametrize("model, shown", [("nan", "nan"), ("inf", "inf")])
def test_a_value_that_is_not_finite_is_refused(store, tmp_path, model, shown):
    odd_study(store, tmp_path, [(model, "4", 1), (model, "4", 2), ("ok", "4", 1)])
    (tmp_path / "nli.yaml").write_text(DECL)
    r = invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper")
    assert r.exit_code == 1 and not (tmp_path / "paper" / "nli.tex").exists()
    assert f"value /scores.json:nli_entail is '{shown}', not a finite number" in r.output


def test_two_cells_that_print_the_same_label_are_refused(store, tmp_path):
    odd_study(store, tmp_path, [("c / d", "8", 1), ("c", "d / 8", 1), ("a|b*", "4", 1)])
    (tmp_path / "nli.yaml").write_text(DECL.replace("rows: {model: /args.json:model}",
                                                    "rows: {model: /args.json:model, r: /args.json:lora_r}")
                                       .replace("columns: {rank: /args.json:lora_r}", "columns: {s: /args.json:seed}"))
    r = invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper")
    assert r.exit_code == 1
    assert "table nli: rows ('c', 'd / 8') and ('c / d', '8') both print as 'c / d / 8'" in r.output


def test_markdown_labels_cannot_break_the_table(store, tmp_path):
    odd_study(store, tmp_path, [("a|b*", "4", 1), ("ok", "4", 1)])
    (tmp_path / "nli.yaml").write_text(DECL)
    assert invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper").exit_code == 0
    md = (tmp_path / "paper" / "nli.md").read_text().splitlines()
    row = next(line for line in md if line.startswith("| a"))
    assert row.startswith(r"| a\|b\* | [**0.500**](") and row.count(" | ") == 1  # two columns, as in the header
    assert invoke("verify", tmp_path / "paper").exit_code == 0


def spec(**kw):
    return TableSpec(**dict(dict(name="t", bundles=["x"], rows={"m": "/m"}, columns={"d": "/d"}, value="/v"), **kw))


def test_best_compares_printed_numbers_in_a_format_with_text_around_them():
    s = spec(format="%.1f%%", aggregate="mean")
    t = tabulate(s, [("0x1", ("a",), ("c",), (), 45.31), ("0x2", ("b",), ("c",), (), 45.34),
                     ("0x3", ("n",), ("c",), (), -45.4)])
    mark_best(t)  # a and b both print 45.3%: both are best
    assert {r[0]: c.best for (r, _), c in t.cells.items()} == {"a": True, "b": True, "n": False}
    t = tabulate(spec(format="%.1f%%", aggregate="mean", best="min"),
                 [("0x1", ("a",), ("c",), (), -2.04), ("0x2", ("b",), ("c",), (), -2.01)])
    mark_best(t)  # -2.0% both: a tie, not -2.04 alone
    assert all(c.best for c in t.cells.values())


def test_an_interval_needs_more_than_one_example_and_one_seed():
    one = np.array([[1.0]])
    with pytest.raises(stats.StatsError, match="at least 2 examples or 2 seeds"):
        stats.interval(one, "bootstrap")
    with pytest.raises(stats.StatsError, match="at least 2 examples or 2 seeds"):
        stats.paired(one, np.array([[0.0]]), "paired_bootstrap")  # one example is no evidence of a difference
    low, high = stats.interval(np.array([[1.0], [0.0], [1.0]]), "bootstrap")  # 3 seeds of 1 example: resampled
    assert 0.0 <= low < high <= 1.0
    with pytest.raises(stats.StatsError, match=r'example 1 has id \["q", 1\]'):
        stats.select([{"id": ["q", 1], "ok": 1}], "ok")


def wilson(k, n, z=1.959963984540054):
    """Wilson's score interval, closed form (Wilson 1927)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b, c):
    """Two-sided exact McNemar p: twice the binomial tail of the smaller discordant count, at most 1."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n) if n else 1.0


@pytest.mark.parametrize("k, n", [(0, 1), (1, 1), (0, 40), (40, 40), (1, 3), (25, 40), (599, 600)])
def test_wilson_equals_the_closed_form(k, n):
    low, high = stats.interval(np.array([[1.0] * k + [0.0] * (n - k)]), "wilson")
    assert (low, high) == (pytest.approx(wilson(k, n)[0], abs=1e-12), pytest.approx(wilson(k, n)[1], abs=1e-12))
    assert low <= k / n <= high  # all correct is [0.91, 1] at n=40, not the certainty of [1, 1]


@pytest.mark.parametrize("b, c", [(0, 0), (1, 0), (6, 0), (5, 1), (10, 3), (30, 12)])
def test_mcnemar_equals_the_exact_binomial_tail(b, c):
    same = 20
    M = np.array([[1.0] * b + [0.0] * c + [1.0] * same])
    B = np.array([[0.0] * b + [1.0] * c + [1.0] * same])
    differs, detail = stats.paired(M, B, "mcnemar")
    assert detail["b"] == b and detail["c"] == c
    assert detail["p"] == pytest.approx(mcnemar_exact(b, c), rel=1e-9) and differs == (mcnemar_exact(b, c) < 0.05)


def test_bootstrap_covers_the_mean_and_is_reproducible():
    rng = np.random.default_rng(7)
    M = rng.normal(-3.0, 1.0, size=(1, 200))  # negative numbers, continuous values
    low, high = stats.interval(M, "bootstrap")
    se = M.std(ddof=1) / math.sqrt(M.shape[1])  # the normal approximation's interval, ±1.96 se
    assert low < M.mean() < high and abs((high - low) - 2 * 1.96 * se) < 0.2 * (high - low)
    assert stats.interval(M, "bootstrap") == (low, high)
    seeds = rng.normal(0.5, 0.1, size=(3, 100))  # mixed: 3 seeds; resampling seeds widens it
    assert np.diff(stats.interval(seeds, "bootstrap")) > np.diff(stats.interval(seeds.mean(0, keepdims=True),
                                                                                "bootstrap"))


def test_declaration_with_no_bundle_keywords_is_refused(tmp_path):
    (tmp_path / "t.yaml").write_text(DECL.replace("bundles: name=train-%", "bundles: []"))
    with pytest.raises(UsageError, match=r"t.yaml: bundles: List should have at least 1 item"):
        paper.load(str(tmp_path / "t.yaml"))


def test_verify_summary_counts_cells_and_figure_lines_apart():
    from codalite.paper.verify import counted

    assert counted(4, 0) == "4 cells" and counted(0, 6) == "6 figure lines"
    assert counted(1, 1) == "1 cell and 1 figure line" and counted(0, 0) == "0 cells"
    with pytest.raises(TableError):
        tabulate(spec(rows={"a": "/a", "b": "/b"}), [("0x1", ("x / y", "z"), ("c",), (), 1.0),
                                                     ("0x2", ("x", "y / z"), ("c",), (), 2.0)])


def test_two_different_runs_in_one_cell_and_seed_are_refused_not_one_dropped(store, tmp_path):
    # the same model, rank and seed, but a learning rate the declaration does not name: `over` would keep
    # only the newest and show its number as the cell's
    odd_study(store, tmp_path, [("m", "4", 1), ("m", "4", 2), ("m", "4", 1, "--lr=2")])
    (tmp_path / "nli.yaml").write_text(DECL)
    r = invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "paper")
    assert r.exit_code == 1 and not (tmp_path / "paper" / "nli.tex").exists()
    assert "have the same model, rank, seed but ran different commands" in r.output
    # a rerun of the same command (a forced rerun, or new code under the same command) replaces its twin
    store.rm(search(store, ["name=train-2"]))
    odd_study(store, tmp_path / "again", [("m", "4", 1)])
    t = paper.compute(store, paper.load(str(tmp_path / "nli.yaml"))[0])
    assert [c.n for c in t.cells.values()] == [2]


@pytest.mark.parametrize("url", ["http://x/%7e", "not a url", "ftp://x", "http://x/{a}", "http://x/a b"])
def test_a_base_url_that_would_break_the_links_is_refused(exported, tmp_path, url):
    before = (exported / "nli.tex").read_text()
    r = invoke("export", tmp_path / "nli.yaml", "-o", exported, "--base-url", url)
    assert r.exit_code == 2 and f"--base-url {url!r} is not an http(s):// URL" in r.output
    assert (exported / "nli.tex").read_text() == before


def test_a_value_genpath_that_matches_nothing_says_so(exported, tmp_path):
    edit(tmp_path / "nli.yaml", "value: /scores.json:nli_entail", "value: /scores.json:nli_entail | %.1f")
    r = invoke("export", tmp_path / "nli.yaml", "-o", tmp_path / "other")
    assert r.exit_code == 1 and "has no value /scores.json:nli_entail | %.1f (no such file or key" in r.output


def test_a_figure_point_edited_with_its_recorded_hash_is_caught(store, tmp_path):
    from picture_helpers import fake_finetunes

    fake_finetunes(store, tmp_path, lrs=(0.5,))
    (tmp_path / "figs.yaml").write_text("figures:\n  - name: exact\n    bundles: name=ft-%\n    y: eval_exact\n")
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "figs.yaml", "-o", out).exit_code == 0
    lines = (out / "exact.csv").read_text().splitlines()
    cols = lines[1].split(",")
    cols[3] = "0.999"  # one point of the line, moved
    lines[1] = ",".join(cols)
    (out / "exact.csv").write_text("\n".join(lines) + "\n")
    prov = json.loads((out / "exact.provenance.json").read_text())
    prov["files"]["exact.csv"] = hashlib.sha256((out / "exact.csv").read_bytes()).hexdigest()
    (out / "exact.provenance.json").write_text(json.dumps(prov))
    r = invoke("verify", out)
    assert r.exit_code == 1 and r.output.splitlines() == [
        "exact: exact.csv is not what export writes from the store now (edited by hand, or exported by another "
        "codalite version); re-export", "Error: 1 problem(s) in 1 figure line"]


def test_paired_bootstrap_of_one_seed_is_scipys_bootstrap_of_the_differences():
    from scipy import stats as sst

    rng = np.random.default_rng(3)
    M = (rng.random((1, 120)) < 0.7).astype(float)
    B = (rng.random((1, 120)) < 0.6).astype(float)
    differs, detail = stats.paired(M, B, "paired_bootstrap")
    ref = sst.bootstrap(((M - B)[0],), np.mean, method="percentile", n_resamples=stats.RESAMPLES,
                        batch=stats.BATCH, rng=np.random.default_rng(stats.SEED)).confidence_interval
    assert (detail["low"], detail["high"]) == (pytest.approx(ref.low), pytest.approx(ref.high))
    assert differs == (ref.low > 0 or ref.high < 0)


# --- second pass ------------------------------------------------------------------------------------

@pytest.mark.parametrize("keyword", [".limit=2", ".offset=1", ".count", ".last", "seed=.sum", ".format=size",
                                     "state=failed", "state=ready,running"])
def test_search_options_that_narrow_the_table_are_refused(exported, tmp_path, keyword):
    """`bundles: name=train-% .limit=2` averaged 2 of 3 seeds and printed n as if that were all."""
    (tmp_path / "narrow.yaml").write_text(DECL.replace("name: nli", "name: narrow")
                                          .replace("bundles: name=train-%", f"bundles: name=train-% {keyword}"))
    r = invoke("export", tmp_path / "narrow.yaml", "-o", exported)
    assert r.exit_code == 2, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and keyword in last and "Traceback" not in r.output
    assert not (exported / "narrow.csv").exists()


def test_a_sort_keyword_is_allowed_and_changes_nothing(exported, tmp_path):
    (tmp_path / "sorted.yaml").write_text(DECL.replace("name: nli", "name: sorted")
                                          .replace("bundles: name=train-%", "bundles: name=train-% id=.sort-"))
    out = tmp_path / "sorted"
    assert invoke("export", tmp_path / "sorted.yaml", "-o", out).exit_code == 0
    assert (out / "sorted.csv").read_text() == (exported / "nli.csv").read_text()


def test_verify_refuses_a_narrowing_declaration_recorded_by_an_older_export(exported):
    prov = json.loads((exported / "nli.provenance.json").read_text())
    prov["declaration"]["bundles"].append(".limit=2")
    (exported / "nli.provenance.json").write_text(json.dumps(prov))
    r = invoke("verify", exported)
    assert r.exit_code == 1, r.output
    assert "its declaration is refused now" in r.output and ".limit=2" in r.output
    assert "Traceback" not in r.output


def test_verify_help_names_figures():
    r = invoke("verify", "--help")
    assert "tables and figures" in " ".join(r.output.split())
    docs = open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "commands.md")).read()
    assert "Re-derive every number of exported tables and figures" in docs


def test_a_foreign_provenance_file_is_one_problem_among_the_others(exported):
    (exported / "other.provenance.json").write_text('{"tool": "someone else", "cells": 3}\n')
    (exported / "broken.provenance.json").write_text("{not json\n")
    edit(exported / "nli.md", "[0.542 ± 0.001]", "[0.552 ± 0.001]")  # still caught beside them
    r = invoke("verify", exported)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert any(line.startswith(str(exported / "other.provenance.json") + ": not a provenance file") for line in lines)
    assert any(line.startswith(str(exported / "broken.provenance.json") + ": not a provenance file") for line in lines)
    assert any(line.startswith("nli: nli.md") for line in lines)
    assert lines[-1] == "Error: 3 problem(s) in 4 cells"


def test_verify_of_nothing_but_foreign_files_says_so_in_one_line(tmp_path, store):
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "x.provenance.json").write_text('{"tool": "someone else"}\n')
    for target in (d, d / "x.provenance.json"):
        r = invoke("verify", target)
        assert r.exit_code == 1, r.output
        assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1, r.output
        assert "not a provenance file" in r.output


LABELLED = (  # the row label comes from argv: a run anyone made (or pulled) names it
    "import json, sys\n"
    "json.dump({'model': sys.argv[1], 'lora_r': 4, 'seed': 1}, open('args.json', 'w'))\n"
    "json.dump({'nli_entail': 0.5}, open('scores.json', 'w'))\n"
)
FORMULAS = {"=1+1": "'=1+1", "+x": "'+x", "@SUM(A1)": "'@SUM(A1)", "-cmd|' /C calc'!A0": "'-cmd|' /C calc'!A0",
            "'q": "''q", "-2": "-2", "+3.5": "+3.5", "-1e-3": "-1e-3", "plain": "plain"}


def test_csv_labels_that_a_spreadsheet_would_run_are_neutralised_and_verify_still_passes(store, tmp_path):
    """A label `=1+1` or `@SUM(A1)` from a bundle's file was written as is: a formula when the CSV is
    opened in a spreadsheet (CSV injection). Numbers, negative ones too, stay numbers."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(LABELLED)
    src, _ = store.upload([str(tmp_path / "code")], name="code")
    for i, model in enumerate(FORMULAS):
        store.run(f"python3 code/train.py {shlex.quote(model)}", [("code", src.uuid)], name=f"train-{i}",
                  start_worker=False)
    drain(store)
    (tmp_path / "nli.yaml").write_text(DECL)
    out = tmp_path / "paper"
    r = invoke("export", tmp_path / "nli.yaml", "-o", out)
    assert r.exit_code == 0, r.output
    import csv
    with open(out / "nli.csv", newline="") as f:
        rows = sorted(line["row"] for line in csv.DictReader(f))
    assert rows == sorted(FORMULAS.values())
    assert "| =1+1 |" in (out / "nli.md").read_text()  # not a spreadsheet: the label as it is
    r = invoke("verify", out)
    assert r.exit_code == 0, r.output
    r = invoke("trace", out / "nli.provenance.json", "=1+1", "4")  # trace and the provenance keep the label
    assert r.exit_code == 0 and r.output.startswith("nli [=1+1, 4] = 0.500"), r.output
    edit(out / "nli.csv", "'@SUM(A1),4,0.500", "'@SUM(A1),4,0.600")  # still read back, and caught
    r = invoke("verify", out)
    assert r.exit_code == 1 and "nli [@SUM(A1), 4]: nli.csv says 0.600" in r.output, r.output


def test_figure_csv_labels_are_neutralised(store, tmp_path):
    from picture_helpers import fake_finetunes

    runs = fake_finetunes(store, tmp_path, lrs=(0.5,))
    store.edit_metadata(runs[0], {"description": "=HYPERLINK(\"http://x\")"})
    (tmp_path / "f.yaml").write_text("figures:\n  - name: f\n    bundles: name=ft-%\n    y: loss\n"
                                     "    label: description\n")
    out = tmp_path / "paper"
    r = invoke("export", tmp_path / "f.yaml", "-o", out)
    assert r.exit_code == 0, r.output
    import csv
    with open(out / "f.csv", newline="") as f:
        assert {line["label"] for line in csv.DictReader(f)} == {"'=HYPERLINK(\"http://x\")"}
    assert invoke("verify", out).exit_code == 0


def test_a_unanimous_bootstrap_cell_gets_wilsons_interval_not_a_zero_width_one():
    """40 of 40 correct printed [1.000, 1.000] under '95% percentile bootstrap': a certainty that
    40 examples do not give. Wilson's interval for a proportion at 1 (or 0) is what a reviewer expects."""
    ones, zeros = np.ones((1, 40)), np.zeros((3, 25))  # one seed all correct; three seeds all wrong
    assert stats.unanimous(ones, "bootstrap") and stats.unanimous(zeros, "bootstrap")
    assert np.allclose(stats.interval(ones, "bootstrap"), wilson(40, 40))  # n = examples, not seeds x examples
    assert np.allclose(stats.interval(zeros, "bootstrap"), wilson(0, 25))
    assert stats.interval(ones, "bootstrap")[0] < 0.92
    mixed = np.array([[1.0] * 39 + [0.0]])
    assert not stats.unanimous(mixed, "bootstrap") and not stats.unanimous(np.full((1, 9), 0.5), "bootstrap")
    assert stats.ci_text([1.0] * 40) == "1.000 [0.912, 1.000] (n=40, Wilson: every example scored the same)"
    with pytest.raises(stats.StatsError, match="at least 2 examples or 2 seeds"):
        stats.interval(np.ones((1, 1)), "bootstrap")


PERFECT = (
    "import json, sys\n"
    "model = sys.argv[1]\n"
    "rows = [{'id': i, 'ok': 1.0 if model == 'perfect' else float(i % 2)} for i in range(40)]\n"
    "open('per_example.jsonl', 'w').writelines(json.dumps(r) + '\\n' for r in rows)\n"
    "json.dump({'model': model, 'acc': sum(r['ok'] for r in rows) / 40, 'split': 'test'}, open('s.json', 'w'))\n"
)


def test_a_unanimous_cell_is_marked_in_every_file_and_verifies(store, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "s.py").write_text(PERFECT)
    src, _ = store.upload([str(tmp_path / "code")], name="code")
    for m in ("perfect", "half"):
        store.run(f"python3 code/s.py {m}", [("code", src.uuid)], name=f"acc-{m}", start_worker=False)
    drain(store)
    (tmp_path / "acc.yaml").write_text("name: acc\nbundles: name=acc-%\nrows: {model: /s.json:model}\n"
                                       "columns: {split: /s.json:split}\nvalue: /s.json:acc\n"
                                       "examples: {file: /per_example.jsonl, value: ok}\ninterval: bootstrap\n")
    out = tmp_path / "paper"
    r = invoke("export", tmp_path / "acc.yaml", "-o", out)
    assert r.exit_code == 0, r.output
    md, tex = (out / "acc.md").read_text(), (out / "acc.tex").read_text()
    assert "[**1.000 [0.912, 1.000]**‡](" in md and "‡: every example scored the same" in md
    assert r"1.000 [0.912, 1.000]}$^\ddagger$}" in tex and r"$^\ddagger$: every example scored" in tex
    half = next(line for line in md.splitlines() if line.startswith("| half"))
    assert "‡" not in half and "[0.500 [" in half  # a cell that varies keeps its bootstrap
    import csv
    with open(out / "acc.csv", newline="") as f:
        assert {r["row"]: r["interval"] for r in csv.DictReader(f)} == {"perfect": "wilson", "half": "bootstrap"}
    prov = json.loads((out / "acc.provenance.json").read_text())
    assert {c["row"]: c["interval"] for c in prov["cells"]} == {"perfect": "wilson", "half": "bootstrap"}
    r = invoke("verify", out)
    assert r.exit_code == 0, r.output


def test_trace_names_a_figure_line_and_its_executions(store, tmp_path):
    """trace refused every figure ("names table cells"): a figure's line had no way to its runs."""
    from picture_helpers import fake_finetunes

    run, = fake_finetunes(store, tmp_path, lrs=(0.5,))
    (tmp_path / "f.yaml").write_text("figures:\n  - name: f\n    bundles: name=ft-%\n    y: [loss, eval_loss]\n")
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "f.yaml", "-o", out).exit_code == 0
    r = invoke("trace", out / "f.provenance.json", "ft-0.5", "eval_loss")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].startswith("f [ft-0.5, eval_loss] = ") and "points (step, eval_loss from /log_history.json" in lines[0]
    assert lines[1] == f"  from {run.uuid} ({run.name})"
    assert any(run.uuid in x and "ready" in x for x in lines[2:]) and any(x.strip().startswith("! python3") for x in lines)
    assert any(x.strip().startswith("hash: ") for x in lines) and "[uploaded]" in r.output  # the code, upstream
    r = invoke("trace", out / "f.provenance.json", "ft-0.5", "accuracy")
    assert r.exit_code == 2 and "has no line [ft-0.5, accuracy]; labels: ft-0.5; keys: loss, eval_loss" in r.output


def test_a_figure_refuses_a_narrowing_search_too(tmp_path):
    from codalite.paper.declare import parse_declarations

    with pytest.raises(UsageError, match=r"figure 0: bundles: .*'\.limit=1' picks a page"):
        parse_declarations("figures:\n  - name: f\n    bundles: name=ft-% .limit=1\n    y: loss\n", "f.yaml")


def test_export_never_writes_into_the_store(store, tmp_path):
    """`export T -o .codalite/bundles/<uuid>` wrote the table's files into a ready bundle (as root, its read-only
    modes stop nothing): its contents no longer had their hash. Refused, nothing written."""
    make_study(store, tmp_path, GRID)
    (tmp_path / "nli.yaml").write_text(DECL)
    victim = store.ls(limit=1)[0]
    for out in (store.location(victim), store.home, os.path.join(store.home, "paper")):
        r = invoke("export", tmp_path / "nli.yaml", "-o", out)
        assert r.exit_code == 2 and "inside the codalite store" in r.output, r.output
    assert store.fsck() == [] and not os.path.exists(os.path.join(store.home, "paper"))
    r = invoke("export", tmp_path / "nli.yaml", "-o", os.path.dirname(store.home))  # the folder holding it is fine
    assert r.exit_code == 0 and os.path.exists(os.path.join(os.path.dirname(store.home), "nli.tex")), r.output
