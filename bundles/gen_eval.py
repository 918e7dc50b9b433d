"""GenEvalTrainer: a Hugging Face Trainer whose evaluation also generates and scores text.

`Trainer.compute_metrics` only sees logits (teacher-forced, and for a VLM without pixel_values), and a
callback's on_evaluate runs after the eval dict was logged, so neither can feed generated-text scores
to `metric_for_best_model`. This subclass overrides `evaluation_loop`: after the usual eval_loss pass
it runs batched, left-padded greedy generation (with pixel_values) on a fixed dev subset, strips the
prompt, scores the texts, and adds `eval_<metric>` (overall and per question type) to the same dict.
Checkpoint selection, early stopping and the logs then see them next to eval_loss.

Distributed: every rank gets the same number of records (the last one repeated; repeats are dropped
after the gather), so every rank makes the same number of generate() calls, as sharded models
(FSDP, ZeRO-3) need; those also generate with synced_gpus. Rows are gathered so every rank logs the
same means; only the main process writes files.

gen_compile (`finetune --compile-generation`): the fast decoding path of bundles.generation (static KV
cache + compiled decoding step); infer must then be run with --compile-generation too, so test is
generated as dev was. Each eval logs eval_gen_seconds and eval_gen_tokens_s (generated tokens per second).

gen_merge (`finetune --merge-for-eval`): each evaluation generates from a merged copy of the LoRA model
(bundles.generation.merged_copy; the trained adapter is untouched); infer must then be run with --merge.
Not with sharded parameters (a rank holds only its shard of each weight): the unmerged model is used.
"""
import contextlib
import time
from pathlib import Path

from transformers import Trainer

from bundles.batching import answer_loss
from bundles.common import log, write_jsonl
from bundles.generation import generate, merged_copy, precision
from bundles.metrics import score_rows


def padded_shard(n, rank, world):
    """Indices of rank's contiguous share of range(n), ceil(n / world) of them on every rank: a short
    share repeats index n-1 (dropped after the gather)."""
    per = -(-n // world)
    return [min(i, n - 1) for i in range(rank * per, (rank + 1) * per)]


class GenEvalTrainer(Trainer):
    def __init__(self, *args, gen_records=(), batcher=None, metric_fns=(), gen_batch_size=32, max_new_tokens=256,
                 predictions_dir=None, fast_loss=True, gen_compile=False, gen_merge=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.gen_records = list(gen_records)
        self.batcher = batcher
        self.metric_fns = list(metric_fns)
        self.gen_batch_size = gen_batch_size
        self.max_new_tokens = max_new_tokens
        self.predictions_dir = Path(predictions_dir) if predictions_dir else None
        self.fast_loss = fast_loss
        self.gen_compile = gen_compile
        self.gen_merge = gen_merge
        if fast_loss:
            # Have Trainer count the answer tokens of the whole accumulated batch (num_items_in_batch)
            # and treat our loss as already scaled for gradient accumulation: answer_loss divides by it.
            self.model_accepts_loss_kwargs = True
            self.loss_is_scaled_for_ga = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.fast_loss:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss = answer_loss(model, inputs, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # num_items counts every rank's tokens; DDP averages grads
        return (loss, {"loss": loss}) if return_outputs else loss

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        out = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if description == "Evaluation" and self.gen_records:
            out.metrics.update(self.generation_metrics(metric_key_prefix))
        return out

    def sharded(self):
        """True when parameters are sharded across ranks (FSDP, DeepSpeed ZeRO-3)."""
        ds = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return self.is_fsdp_enabled or (ds is not None and ds.zero_stage == 3)

    def generation_model(self):
        """(context, model to call generate on). FSDP1 wraps the model: calling the inner module
        skips the root wrapper's unsharding, so its own parameters are summoned (nested units unshard
        in their forward, collectively: hence synced_gpus). FSDP2 and ZeRO-3 unshard in forward hooks."""
        model = self.accelerator.unwrap_model(self.model_wrapped)
        wrapped = self.model_wrapped
        if self.is_fsdp_enabled and type(wrapped).__name__ == "FullyShardedDataParallel":
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
            return FSDP.summon_full_params(wrapped, recurse=False, writeback=False), model
        return contextlib.nullcontext(), model

    def generation_metrics(self, prefix="eval"):
        acc = self.accelerator
        idx = padded_shard(len(self.gen_records), acc.process_index, acc.num_processes)
        records = [self.gen_records[i] for i in idx]
        ctx, model = self.generation_model()
        if acc.is_main_process and acc.num_processes > 1:
            log(f"eval generation: {type(self.model_wrapped).__name__} -> {type(model).__name__}, {len(idx)} per rank")
        sharded = self.sharded() and acc.num_processes > 1
        merge = self.gen_merge and not sharded
        if self.gen_merge and sharded and acc.is_main_process:
            log("warning: --merge-for-eval is not used with sharded parameters; generating unmerged")
        t0 = time.perf_counter()  # the merge is timed too: it is part of what the option costs per evaluation
        with ctx:
            gen_model = merged_copy(model) if merge else model
            with precision(gen_model, self.args.bf16):  # --bf16: as training does, fp32 weights under autocast
                results = generate(gen_model, self.batcher, records, self.gen_batch_size, self.max_new_tokens,
                                   synced_gpus=sharded, compile=self.gen_compile)
            del gen_model  # the merged copy: a second set of weights
        gen_seconds = time.perf_counter() - t0
        preds = [r["prediction"] for r in results]
        _, scores = score_rows(self.metric_fns, preds, [r["reference"] for r in records])
        rows = [{"index": i, "id": rec["id"], "qtype": rec.get("qtype"), "prediction": p,
                 "reference": rec["reference"], "gen_len": len(res["tokens"]), "hit_limit": res["hit_limit"], **s}
                for i, rec, p, res, s in zip(idx, records, preds, results, scores)]
        if acc.num_processes > 1:
            from accelerate.utils import gather_object
            rows = gather_object(rows)
        rows = sorted({r["index"]: r for r in rows}.values(), key=lambda r: r["index"])  # drop the padding
        metrics = summarize(rows)
        metrics["gen_hit_limit"] = sum(r["hit_limit"] for r in rows)
        # this rank's generation time (ranks generate in parallel); tokens of every rank, padding included
        metrics["gen_seconds"] = gen_seconds
        metrics["gen_tokens_s"] = sum(len(r["tokens"]) for r in results) * acc.num_processes / gen_seconds
        if metrics["gen_hit_limit"] and acc.is_main_process:
            log(f"warning: {metrics['gen_hit_limit']} of {len(rows)} generations hit --max-new-tokens "
                f"{self.max_new_tokens} (truncated answers; raise it)")
        if self.predictions_dir and acc.is_main_process:
            write_jsonl(self.predictions_dir / f"eval-step{self.state.global_step}.jsonl", rows)
        return {f"{prefix}_{k}": v for k, v in metrics.items()}


def summarize(rows):
    """Means of every numeric score, overall and per question type (`<metric>_<qtype>`)."""
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            and k != "index"] if rows else []
    means = {k: sum(r[k] for r in rows) / len(rows) for k in keys}
    qtypes = sorted({r.get("qtype") for r in rows if r.get("qtype")})
    if len(qtypes) > 1:
        for t in qtypes:
            sub = [r for r in rows if r.get("qtype") == t]
            means.update({f"{k}_{t}": sum(r[k] for r in sub) / len(sub) for k in keys if k != "gen_len"})
    return means
