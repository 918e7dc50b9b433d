"""Intervals, n and baseline tests from the bundles' own per-example files: computed like scipy
computes them, traced in the provenance, re-derived by verify; captions passed through; cells that
aggregate several bundles link to all of them; the worksheet `ci` post-processor."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from paper_helpers import drain
from scipy import stats as sst

from codalite import paper
from codalite.cli import cli
from codalite.errors import UsageError
from codalite.paper import stats
from codalite.paper.export import caption_note
from codalite.paper.table import TableError
from codalite.search import search

# base and twin draw the same answers (same seed, same p): identical per-example results; good
# answers right wherever base does and more often (p 0.9 on the same draws)
SCORE = (
    "import json, random, sys\n"
    "model, seed = sys.argv[1], int(sys.argv[2])\n"
    "p = {'base': 0.5, 'twin': 0.5, 'good': 0.9}[model]\n"
    "rng = random.Random(seed)\n"
    "rows = [{'id': f'q{i}', 'qtype': 'ab'[i % 2], 'exact': float(rng.random() < p)} for i in range(80)]\n"
    "with open('per_example.jsonl', 'w') as f:\n"
    "    f.writelines(json.dumps(r) + '\\n' for r in rows)\n"
    "mean = lambda v: sum(v) / len(v)\n"
    "scores = {'exact': mean([r['exact'] for r in rows])}\n"
    "scores.update({f'exact_{t}': mean([r['exact'] for r in rows if r['qtype'] == t]) for t in 'ab'})\n"
    "json.dump(scores, open('scores.json', 'w'))\n"
    "json.dump({'model': model, 'seed': seed}, open('cell.json', 'w'))\n"
)

DECL = """name: acc
caption: Accuracy by model (95\\% intervals; $\\pm$ is not used, $n$ is per seed)
bundles: name=score-%
rows: {model: /cell.json:model}
columns: {qtype: /cell.json:seed}
value: /scores.json:exact_a
over: {seed: /cell.json:seed}
examples: {file: /per_example.jsonl, value: exact, where: {qtype: a}}
interval: bootstrap
baseline: base
"""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def make_scores(store, tmp_path, grid):
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "score.py").write_text(SCORE)
    src, _ = store.upload([str(tmp_path / "code")], name="code")
    runs = [store.run(f"python3 code/score.py {m} {s}", [("code", src.uuid)], name=f"score-{m}-s{s}",
                      start_worker=False)[0] for m, s in grid]
    drain(store)
    return [store.get(b.uuid) for b in runs]


def per_example(store, b, qtype="a"):
    rows = [json.loads(x) for x in open(store.path_in(b, "per_example.jsonl"))]
    return {r["id"]: r["exact"] for r in rows if r["qtype"] == qtype}


def declare(tmp_path, text=DECL, **changes):
    for k, v in changes.items():
        lines = [line for line in text.splitlines() if not line.startswith(f"{k}:")]
        text = "\n".join(lines + [f"{k}: {v}"]) + "\n"
    (tmp_path / "acc.yaml").write_text(text)
    return paper.load(str(tmp_path / "acc.yaml"))[0]


@pytest.fixture
def one_seed(store, tmp_path):
    """One bundle per cell: columns are seeds (1 seed each), rows base/twin/good."""
    return make_scores(store, tmp_path, [(m, 1) for m in ("base", "twin", "good")])


def test_interval_matches_scipy_on_the_per_example_file(store, tmp_path, one_seed):
    t = paper.compute(store, declare(tmp_path))
    base = next(b for b in one_seed if b.name == "score-base-s1")
    vals = np.array([v for _, v in sorted(per_example(store, base).items())])
    c = t.cells[("base",), ("1",)]
    ref = sst.bootstrap((vals,), np.mean, method="percentile", n_resamples=stats.RESAMPLES, batch=stats.BATCH,
                        rng=np.random.default_rng(stats.SEED)).confidence_interval
    assert (c.low, c.high) == (pytest.approx(ref.low), pytest.approx(ref.high)) and c.high - c.low > 0.1
    assert c.n_examples == 40 and c.mean == pytest.approx(vals.mean())
    assert c.text == f"{vals.mean():.3f} [{ref.low:.3f}, {ref.high:.3f}]"
    # Wilson: scipy's binomial interval on the same 0/1 values
    c = paper.compute(store, declare(tmp_path, interval="wilson")).cells[("base",), ("1",)]
    ref = sst.binomtest(int(vals.sum()), len(vals)).proportion_ci(0.95, method="wilson")
    assert (c.low, c.high) == (pytest.approx(ref.low), pytest.approx(ref.high))


def test_paired_tests_flag_a_different_row_and_not_an_identical_one(store, tmp_path, one_seed):
    for test in ("paired_bootstrap", "mcnemar"):
        t = paper.compute(store, declare(tmp_path, test=test))
        cells = {r[0]: c for (r, _), c in t.cells.items()}
        assert cells["good"].differs is True and cells["twin"].differs is False, test
        assert cells["base"].differs is None
    assert cells["twin"].test == {"p": 1.0, "b": 0, "c": 0} and cells["good"].test["p"] < 0.001


def test_seeds_are_resampled_too(store, tmp_path):
    runs = make_scores(store, tmp_path, [(m, s) for m in ("base", "good") for s in (1, 2, 3)])
    spec = declare(tmp_path, columns="{metric: /cell.json:model}", rows="{all: /cell.json:model}")
    t = paper.compute(store, spec)
    c = t.cells[("base",), ("base",)]
    seeds = [b for b in runs if b.name.startswith("score-base-")]
    M = np.array([[v for _, v in sorted(per_example(store, b).items())] for b in seeds])
    assert c.n == 3 and c.n_examples == 40 and c.mean == pytest.approx(M.mean())

    def stat(s, e, axis=-1):
        return M[s[..., :, None], e[..., None, :]].mean(axis=(-2, -1))
    ref = sst.bootstrap((np.arange(3), np.arange(40)), stat, vectorized=True, method="percentile",
                        n_resamples=stats.RESAMPLES, batch=stats.BATCH,
                        rng=np.random.default_rng(stats.SEED)).confidence_interval
    assert (c.low, c.high) == (pytest.approx(ref.low), pytest.approx(ref.high))
    # resampling seeds as well as examples widens the interval over examples alone
    one = stats.interval(M.mean(axis=0, keepdims=True), "bootstrap")
    assert c.high - c.low > one[1] - one[0]
    assert "95% percentile bootstrap over examples and seed" in caption_note(t)
    with pytest.raises(TableError, match=r"Wilson interval is for one bundle per cell, this one has 3"):
        paper.compute(store, declare(tmp_path, interval="wilson", columns="{m: /cell.json:model}",
                                     rows="{a: /cell.json:model}"))


def test_export_traces_and_verify_rederives(store, tmp_path, one_seed):
    declare(tmp_path)
    out = tmp_path / "paper"
    r = invoke("export", tmp_path / "acc.yaml", "-o", out, "--base-url", "http://127.0.0.1:8765")
    assert r.exit_code == 0, r.output
    prov = json.loads((out / "acc.provenance.json").read_text())
    good = next(c for c in prov["cells"] if c["row"] == "good")
    base = next(c for c in prov["cells"] if c["row"] == "base")
    assert [e["uuid"] for e in good["examples"]] == [b["uuid"] for b in good["bundles"]]
    assert good["examples"][0]["file"] == "/per_example.jsonl" and good["examples"][0]["where"] == {"qtype": "a"}
    assert good["baseline_bundles"] == [b["uuid"] for b in base["bundles"]] and good["differs"] is True
    tex = (out / "acc.tex").read_text()
    assert r"$^\dagger$" in tex and r"(n=1 seed $\times$ 40 examples unless marked); $^\dagger$: differs from base (paired bootstrap" in tex
    assert invoke("verify", out).exit_code == 0
    r = invoke("trace", out / "acc.provenance.json", "good", "1")
    assert r.output.startswith(f"acc [good, 1] = {good['text']} (n=1 x 40 examples; /scores.json:exact_a)")

    # the per-example file of the baseline changes under the table (its scores.json does not)
    b = next(x for x in one_seed if x.name == "score-base-s1")
    path = store.path_in(b, "per_example.jsonl")
    rows = [json.loads(x) for x in open(path)]
    flip = next(r for r in rows if r["qtype"] == "a")
    flip["exact"] = 1.0 - flip["exact"]
    os.chmod(path, 0o644)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    r = invoke("verify", out)
    assert r.exit_code == 1
    assert f"bundle {b.uuid}: /scores.json:exact_a is" in r.output and "per_example.jsonl" in r.output


def test_caption_passed_through_and_aggregated_cells_link_to_all(store, tmp_path):
    runs = make_scores(store, tmp_path, [(m, s) for m in ("base", "good") for s in (1, 2)])
    declare(tmp_path, columns="{q: /cell.json:model}")
    out = tmp_path / "paper"
    assert invoke("export", tmp_path / "acc.yaml", "-o", out, "--base-url", "http://127.0.0.1:8765").exit_code == 0
    tex = (out / "acc.tex").read_text()
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption{"))
    # the author's LaTeX verbatim, then one generated clause
    assert caption.startswith(r"\caption{Accuracy by model (95\% intervals; $\pm$ is not used, $n$ is per seed). Mean over")
    assert caption.count("Mean") == 1 and r"\textbackslash" not in caption and r"\$" not in caption
    md = (out / "acc.md").read_text()
    assert md.startswith("**Accuracy by model (95% intervals; ± is not used, n is per seed).** Mean over seed")
    # a cell over two seeds links to a page listing both bundles
    seeds = [b.uuid for b in runs if b.name.startswith("score-good-")]
    url = "http://127.0.0.1:8765/search?q=uuid=" + ",".join(seeds)
    assert rf"\href{{{url}}}" in tex and f"]({url})" in md
    listed = search(store, ["uuid=" + ",".join(seeds)])
    assert sorted(b.uuid for b in listed) == sorted(seeds)
    if shutil.which("pdflatex"):
        (out / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{hyperref}\n"
                                     "\\begin{document}\n\\input{acc.tex}\n\\end{document}\n")
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                           cwd=out, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout[-2000:]


def test_declaration_needs_examples_for_intervals(store, tmp_path):
    with pytest.raises(UsageError, match=r"acc.yaml: .*declare `examples"):
        declare(tmp_path, DECL.replace("examples: {file: /per_example.jsonl, value: exact, where: {qtype: a}}\n", ""))
    with pytest.raises(UsageError, match=r"acc.yaml: interval: "):
        declare(tmp_path, interval="normal")
    r = invoke("export", tmp_path / "acc.yaml", "-o", tmp_path / "paper")
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1].startswith("Error: ") and "acc.yaml: interval:" in r.output


def test_worksheet_ci_post_processor(store, tmp_path, one_seed):
    from codalite.worksheets import interpret, parse

    ws = ("% schema s\n% add model /cell.json:model\n% add a /per_example.jsonl 'ci exact qtype=a'\n"
          "% add wilson /per_example.jsonl 'ci exact wilson %.2f'\n% add mean /scores.json:exact_a %.3f\n"
          "% display table s\n% search name=score-% .limit=10\n")
    (block,) = [b for b in interpret(store, parse(ws)).blocks if b.mode == "table"]
    base = next(b for b in one_seed if b.name == "score-base-s1")
    row = next(r for r in block.rows if r.cells[0].text == "base")
    vals = list(per_example(store, base).values())
    assert row.cells[1].text == stats.ci_text(vals) and row.cells[1].text.endswith("(n=40)")
    assert row.cells[1].text.startswith(row.cells[3].text + " [")
    assert row.cells[2].text.endswith("(n=80)") and row.cells[2].text.count(".") == 3


def test_demo_tables_declare_intervals_that_match_their_values():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tables = [t for t in paper.load(os.path.join(root, "worksheets", "shapes_vqa.yaml"))
              if isinstance(t, paper.TableSpec)]  # the figures are test_figures.py's
    assert {t.name for t in tables} >= {"shapes_vqa_nli", "shapes_vqa_color"}
    for t in tables:
        assert t.interval == "bootstrap" and t.examples.file == "/per_example.jsonl", t.name
        # bundles.score's mean key: metric, or metric_<qtype> for the rows of one question type
        key = t.examples.value + "".join(f"_{v}" for k, v in t.examples.where.items() if k == "qtype")
        assert t.value == f"/scores.json:{key}", t.name
        assert "$\\pm$" not in t.caption and "sd" not in t.caption.split()  # the generated clause says it
    # the baseline row is the control row the recipe's cells are labelled with
    recipe = open(os.path.join(root, "cl_recipes", "shapes_vqa.yaml")).read()
    for t in tables:
        if t.baseline:
            assert t.baseline == "tiny VLM, images shuffled" and "vlm: tiny" in recipe
            assert '"model": "{{ vlm }} VLM, images shuffled"' in recipe
