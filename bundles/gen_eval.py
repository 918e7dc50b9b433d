"""GenEvalTrainer: a Hugging Face Trainer whose evaluation also generates and scores text.

`Trainer.compute_metrics` only sees logits (teacher-forced, and for a VLM without pixel_values), and a
callback's on_evaluate runs after the eval dict was logged, so neither can feed generated-text scores
to `metric_for_best_model`. This subclass overrides `evaluation_loop`: after the usual eval_loss pass
it runs batched, left-padded greedy generation (with pixel_values) on a fixed dev subset, strips the
prompt, scores the texts, and adds `eval_<metric>` (overall and per question type) to the same dict.
Checkpoint selection, early stopping and the logs then see them next to eval_loss.

Under DDP each rank generates and scores its shard; rows are gathered so every rank logs the same means.
"""
from pathlib import Path

from transformers import Trainer

from bundles.batching import answer_loss
from bundles.cli import write_jsonl
from bundles.generation import generate
from bundles.metrics import score_rows


class GenEvalTrainer(Trainer):
    def __init__(self, *args, gen_records=(), batcher=None, metric_fns=(), gen_batch_size=32, max_new_tokens=16,
                 predictions_dir=None, fast_loss=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.gen_records = list(gen_records)
        self.batcher = batcher
        self.metric_fns = list(metric_fns)
        self.gen_batch_size = gen_batch_size
        self.max_new_tokens = max_new_tokens
        self.predictions_dir = Path(predictions_dir) if predictions_dir else None
        self.fast_loss = fast_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.fast_loss:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = answer_loss(model, inputs)
        return (loss, {"loss": loss}) if return_outputs else loss

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if description == "Evaluation" and self.gen_records:
            out.metrics.update(self.generation_metrics(metric_key_prefix))
        return out

    def generation_metrics(self, prefix="eval"):
        acc = self.accelerator
        indices = list(range(len(self.gen_records)))
        with acc.split_between_processes(indices) as shard:
            records = [self.gen_records[i] for i in shard]
            with acc.autocast():  # --bf16: generate in bf16 as training does, not in the fp32 master weights
                results = generate(self.model, self.batcher, records, self.gen_batch_size, self.max_new_tokens)
            preds = [r["prediction"] for r in results]
            _, scores = score_rows(self.metric_fns, preds, [r["reference"] for r in records])
            rows = [{"id": rec["id"], "qtype": rec.get("qtype"), "prediction": p, "reference": rec["reference"],
                     "gen_len": len(res["tokens"]), **s}
                    for rec, p, res, s in zip(records, preds, results, scores)]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object
            rows = gather_object(rows)
        metrics = summarize(rows)
        if self.predictions_dir and acc.is_main_process:
            write_jsonl(self.predictions_dir / f"eval-step{self.state.global_step}.jsonl", rows)
        return {f"{prefix}_{k}": v for k, v in metrics.items()}


def summarize(rows):
    """Means of every numeric score, overall and per question type (`<metric>_<qtype>`)."""
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)] if rows else []
    means = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    qtypes = sorted({r.get("qtype") for r in rows if r.get("qtype")})
    if len(qtypes) > 1:
        for t in qtypes:
            sub = [r for r in rows if r.get("qtype") == t]
            means.update({f"{k}_{t}": sum(r[k] for r in sub) / len(sub) for k in keys if k != "gen_len"})
    return means
