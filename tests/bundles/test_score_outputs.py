"""bundles.score writes n for every mean and a per-example file holding every metric the scorer
produced (whatever metrics/ defines), from which the means can be re-derived."""
import json

from bundles import score
from bundles.common import read_jsonl, write_jsonl
from bundles.metrics import build_metrics, score_rows

ROWS = [
    {"id": "t-0", "qtype": "color", "prediction": "red", "reference": "red"},
    {"id": "t-1", "qtype": "color", "prediction": "blue", "reference": "green"},
    {"id": "t-2", "qtype": "shape", "prediction": "circle", "reference": "circle"},
    {"id": "t-3", "qtype": "shape", "prediction": "", "reference": "square"},
    {"id": "t-4", "qtype": "shape", "prediction": "a square", "reference": "square"},
]


def test_per_example_file_and_n(tmp_path):
    write_jsonl(tmp_path / "predictions.jsonl", ROWS)
    score.main(["--predictions", str(tmp_path), "--metrics", "exact,token_f1", "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "scores.json").read_text())
    per = read_jsonl(tmp_path / "out" / "per_example.jsonl")
    # whatever the metric functions return per example is written: the set is not hard-coded
    _, expected = score_rows(build_metrics(["exact", "token_f1"]), [r["prediction"] for r in ROWS],
                             [r["reference"] for r in ROWS])
    assert [r["id"] for r in per] == [r["id"] for r in ROWS] and [r["qtype"] for r in per] == [r["qtype"] for r in ROWS]
    assert [{k: v for k, v in r.items() if k not in ("id", "qtype")} for r in per] == expected
    assert set(expected[0]) >= {"exact", "token_f1"}
    for metric in expected[0]:
        assert result["n_per"][metric] == 5
        assert result["n_per"][f"{metric}_color"] == 2 and result["n_per"][f"{metric}_shape"] == 3
        # every mean is the mean of the per-example file's values
        shape = [r[metric] for r in per if r["qtype"] == "shape"]
        assert abs(result[f"{metric}_shape"] - sum(shape) / 3) < 1e-12
    assert result["exact_color"] == 0.5 and result["exact_shape"] == 1 / 3
    assert set(result["n_per"]) <= {k for k, v in result.items() if isinstance(v, float)}


def test_scores_json_is_a_summary_whose_size_does_not_grow_with_the_examples(tmp_path):
    # Worksheet genpaths read at most 10,000 lines of a file (CodaLab's cap): rows written inline made
    # scores.json ~16 lines per example, so a few more fields per row would silently empty a value.
    rows = [{**r, "id": f"{r['id']}-{k}"} for k in range(200) for r in ROWS]  # 1,000 examples
    write_jsonl(tmp_path / "predictions.jsonl", rows)
    score.main(["--predictions", str(tmp_path), "--metrics", "exact,token_f1", "--out", str(tmp_path / "out")])
    text = (tmp_path / "out" / "scores.json").read_text()
    result = json.loads(text)
    assert "rows" not in result and result["n"] == 1000
    assert len(text.splitlines()) < 100
    assert len(read_jsonl(tmp_path / "out" / "per_example.jsonl")) == 1000  # the rows live here
