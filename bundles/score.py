"""Score predictions against references -> scores.json (means overall and per question type, with
n for each) and per_example.jsonl (one line per example: id, qtype and every metric's value).
scores.json is a summary only: its size does not grow with the number of examples, so worksheet
genpaths (which read at most 10,000 lines of a file, as CodaLab does) always reach its keys. The
rows themselves are per_example.jsonl (scores) and the predictions file (texts).

Metrics: exact (normalized string match), token_f1, nli (any sequence-classification NLI model, label
order from config.id2label, both directions, sentence-level SummaC-ZS for multi-sentence texts).
per_example.jsonl is what intervals and paired tests are computed from (codalite's paper tables and
worksheet `ci` post-processor): every metric the scorer produces is written, whatever its name.
`n_per` in scores.json holds, for each mean key (`exact`, `exact_color`, ...), how many examples it
averages. Empty predictions score worst (NLI: entailment 0, contradiction 1; counted in n_empty). The NLI
model runs on the GPU when one is visible (--device overrides). Example:
  python -m bundles.score --predictions infer/predictions.jsonl --nli-model nli
"""
import argparse
from pathlib import Path

from bundles.common import (ArgParser, csv_list, existing_path, fail, log, model_ref, quiet, read_jsonl, save_args,
                         set_threads, write_json, write_jsonl)


def counts(per_example, means):
    """n behind each mean (the same keys: `metric` over all examples with a number, `metric_<qtype>`
    over those of that type), so a table can show n next to any of them."""
    def numeric(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    metrics = {k for r in per_example for k, v in r.items() if k not in ("id", "qtype") and numeric(v)}
    qtypes = {r["qtype"] for r in per_example if r.get("qtype")}
    n = {}
    for m in metrics:
        n[m] = sum(numeric(r.get(m)) for r in per_example)
        for t in qtypes:
            n[f"{m}_{t}"] = sum(numeric(r.get(m)) and r.get("qtype") == t for r in per_example)
    return {k: v for k, v in n.items() if k in means}


def main(argv=None):
    p = ArgParser(prog="bundles.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", required=True, type=existing_path,
                   help="predictions.jsonl (rows with prediction, reference, qtype?) or a folder holding it")
    p.add_argument("--nli-model", type=model_ref, help="NLI model folder or hub id (needed by 'nli')")
    p.add_argument("--metrics", type=csv_list,
                   help="comma list of metrics (bundles.metrics: exact, token_f1, nli, ...); "
                        "default: every text metric bundles.metrics defines, and nli")
    p.add_argument("--device", help="device of the NLI model, e.g. cpu, cuda:1 (default: the GPU if visible)")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--baseline", type=existing_path,
                   help="baseline.json from bundles.prepare, copied into scores.json for comparison")
    args = p.parse_args(argv)
    if args.metrics is None:  # whatever metrics.py defines, so a new metric reaches every score step
        from bundles.metrics import TEXT_METRICS
        args.metrics = [*TEXT_METRICS, "nli"]
    if "nli" in args.metrics and not args.nli_model:
        p.error("metric 'nli' needs --nli-model (or drop it: --metrics exact,token_f1)")
    path = Path(args.predictions)
    if path.is_dir():
        path = path / "predictions.jsonl"
        if not path.exists():
            p.error(f"no predictions.jsonl in {args.predictions}")

    import json
    from bundles.gen_eval import summarize
    from bundles.metrics import build_metrics, score_rows
    set_threads()
    quiet()
    rows = read_jsonl(path)
    if not rows:  # a mean over nothing would be a scores.json of no numbers that looks like a result
        fail("bundles.score", f"{path}: no predictions")
    for i, r in enumerate(rows):
        if "prediction" not in r or "reference" not in r:
            fail("bundles.score", f"{path}:{i + 1}: needs 'prediction' and 'reference'")
        if not (r["prediction"] is None or isinstance(r["prediction"], str)) or not isinstance(r["reference"], str):
            fail("bundles.score", f"{path}:{i + 1}: 'prediction' and 'reference' must be strings "
                                  f"(prediction may be null), got {type(r['prediction']).__name__} and "
                                  f"{type(r['reference']).__name__}")
        if not r["reference"].strip():  # nothing to compare with: NLI would score a pair against ""
            fail("bundles.score", f"{path}:{i + 1}: empty 'reference'")
    try:
        fns = build_metrics(args.metrics, args.nli_model, device=args.device)
    except ValueError as e:
        p.error(str(e))
    preds = [r["prediction"] or "" for r in rows]
    _, scores = score_rows(fns, preds, [r["reference"] for r in rows])
    means = summarize([{"qtype": r.get("qtype"), **s} for r, s in zip(rows, scores)])
    per_example = [{"id": r.get("id", i), "qtype": r.get("qtype"), **s} for i, (r, s) in enumerate(zip(rows, scores))]
    result = {"n": len(rows), "n_empty": sum(not p.strip() for p in preds), "n_per": counts(per_example, means),
              **means}
    if args.baseline:
        try:
            result["baseline"] = json.loads(Path(args.baseline).read_text())
        except (OSError, ValueError) as e:  # a folder, not UTF-8, not JSON: one line, before anything is written
            fail("bundles.score", f"--baseline {args.baseline}: not a JSON file ({e})")
    out = Path(args.out)
    write_json(out / "scores.json", result)
    write_jsonl(out / "per_example.jsonl", per_example)
    save_args(out, args)
    log("scores:", json.dumps({k: round(v, 4) for k, v in means.items()}))


if __name__ == "__main__":
    main()
