"""Score predictions against references -> scores.json (means overall and per question type + rows).

Metrics: exact (normalized string match), token_f1, nli (any sequence-classification NLI model, label
order from config.id2label, both directions, sentence-level SummaC-ZS for multi-sentence texts).
Empty predictions score worst (NLI: entailment 0, contradiction 1; counted in n_empty). The NLI
model runs on the GPU when one is visible (--device overrides). Example:
  python -m bundles.score --predictions infer/predictions.jsonl --nli-model nli
"""
import argparse
from pathlib import Path

from bundles.cli import ArgParser, csv_list, existing_path, fail, log, model_ref, quiet, read_jsonl, save_args, set_threads, write_json


def main(argv=None):
    p = ArgParser(prog="bundles.score", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", required=True, type=existing_path,
                   help="predictions.jsonl (rows with prediction, reference, qtype?) or a folder holding it")
    p.add_argument("--nli-model", type=model_ref, help="NLI model folder or hub id (needed by 'nli')")
    p.add_argument("--metrics", type=csv_list, default=["exact", "token_f1", "nli"],
                   help="comma list of: exact, token_f1, nli")
    p.add_argument("--device", help="device of the NLI model, e.g. cpu, cuda:1 (default: the GPU if visible)")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--baseline", type=existing_path,
                   help="baseline.json from bundles.prepare, copied into scores.json for comparison")
    args = p.parse_args(argv)
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
    for i, r in enumerate(rows):
        if "prediction" not in r or "reference" not in r:
            fail("bundles.score", f"{path}:{i + 1}: needs 'prediction' and 'reference'")
    try:
        fns = build_metrics(args.metrics, args.nli_model, device=args.device)
    except ValueError as e:
        p.error(str(e))
    preds = [r["prediction"] or "" for r in rows]
    _, scores = score_rows(fns, preds, [r["reference"] for r in rows])
    scored = [{**r, **s} for r, s in zip(rows, scores)]
    means = summarize([{k: v for k, v in r.items() if k in s or k == "qtype"} for r, s in zip(scored, scores)])
    result = {"n": len(rows), "n_empty": sum(not p.strip() for p in preds), **means, "rows": scored}
    if args.baseline:
        result["baseline"] = json.loads(Path(args.baseline).read_text())
    out = Path(args.out)
    write_json(out / "scores.json", result)
    save_args(out, args)
    log("scores:", json.dumps({k: round(v, 4) for k, v in means.items()}))


if __name__ == "__main__":
    main()
