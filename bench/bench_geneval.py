"""Benchmarks of the generation-based eval loop (CPU is fine; run one benchmark process at a time).

  throughput  batched left-padded generation (the GenEvalTrainer / bundles.infer routine, batch 32 and 64) vs
              one example at a time (the usual workaround), same model, same questions; checks that the
              outputs are token-identical. Models: the tiny VLM and the SmolLM2-135M VLM (goals: >= 8x
              and >= 5x on 2 CPU cores).
  overhead    training-step time of GenEvalTrainer vs plain transformers.Trainer with evaluation off,
              same model, collator and loss (goal: <= 5% overhead); also the answer-only loss speed-up.

  python bench/bench_geneval.py                      # everything (~6 min on 2 cores)
  python bench/bench_geneval.py --only throughput --models tiny
Results: bench/results/geneval_<part>.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def machine():
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "platform": platform.platform()}


def prepare_data(work, n):
    from bundles import prepare
    prepare.main(["easy-vqa", "--out", str(work / "data"), "--train-size", "512", "--dev-size", str(n),
                  "--test-size", "3", "--seed", "123"])
    return work / "data"


def build_model(kind, work, data, smollm2_dir=None, args_patch=16):
    from bundles import models
    if kind == "smollm2" and smollm2_dir:
        return Path(smollm2_dir)
    out = work / kind
    if kind == "tiny":  # the default tiny VLM: Llama 256x4, CLIP patch 16 (16 image tokens)
        models.main(["tiny-vlm", "--out", str(out), "--data", str(data), "--patch-size", str(args_patch)])
    else:
        models.main(["smollm2-vlm", "--out", str(out)])
    return out


def timed_rounds(model, batcher, records, batch_sizes, max_new_tokens, repeat=1):
    """{batch size: (outputs, best seconds)}. The sizes take turns within each round, so drifting load
    on a shared machine hits them alike; the best of `repeat` rounds counts (others only add time)."""
    from bundles.generation import generate
    best = {}
    for bs in batch_sizes:
        generate(model, batcher, records[:2], bs, max_new_tokens)  # warm-up
    for _ in range(repeat):
        for bs in batch_sizes:
            t = time.perf_counter()
            out = generate(model, batcher, records, bs, max_new_tokens)
            secs = time.perf_counter() - t
            best[bs] = (out, min(secs, best.get(bs, (None, float("inf")))[1]))
    return best


def bench_throughput(args, work, data):
    from bundles.batching import Batcher, load_records
    from bundles.loading import load_model
    results = {"machine": machine(), "max_new_tokens": args.max_new_tokens, "tiny_patch_size": args.patch_size,
               "models": {}}
    for kind in args.models:
        path = build_model(kind, work, data, args.smollm2, args.patch_size)
        model, processor = load_model(path)
        batcher = Batcher(processor, data)
        n = args.n if kind == "tiny" else args.n_smollm2
        records = load_records(data, "dev", n)
        repeat = 5 if kind == "tiny" else 1  # the tiny model's batched pass takes ~1 s: noise-prone
        timed = timed_rounds(model, batcher, records, [1, *args.batch_sizes], args.max_new_tokens, repeat)
        single, t_single = timed[1]
        row = {"n": len(records), "best_of": repeat, "one_at_a_time_s": t_single,
               "one_at_a_time_examples_per_s": len(records) / t_single,
               "generated_tokens": sum(len(a["tokens"]) for a in single),
               "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "batched": {}}
        for bs in args.batch_sizes:
            batched, t_batched = timed[bs]
            row["batched"][bs] = {"seconds": t_batched, "examples_per_s": len(records) / t_batched,
                                  "speedup": t_single / t_batched,
                                  "identical": sum(a["tokens"] == b["tokens"] for a, b in zip(batched, single))}
        results["models"][kind] = row
        print(kind, json.dumps(row), flush=True)
    return results


class StepTimer:
    """A TrainerCallback that records wall time per optimizer step."""
    def __init__(self):
        self.times, self._t = [], None

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)

    def __getattr__(self, name):  # every other callback event: do nothing
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


def train_step_times(model_dir, data, trainer_kind, steps, batch_size, fast_loss=False, seed=0):
    import torch
    from transformers import Trainer, TrainingArguments, set_seed
    from bundles.batching import Batcher, load_records
    from bundles.gen_eval import GenEvalTrainer
    from bundles.loading import load_base
    set_seed(seed)
    model, processor = load_base(model_dir)
    batcher = Batcher(processor, data)
    train = load_records(data, "train")
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, max_steps=steps, per_device_train_batch_size=batch_size,
                                  learning_rate=1e-3, eval_strategy="no", save_strategy="no", report_to=[],
                                  logging_steps=10 ** 6, remove_unused_columns=False, label_names=["labels"],
                                  disable_tqdm=True, use_cpu=not torch.cuda.is_available(), seed=seed, data_seed=seed)
        timer = StepTimer()
        kwargs = dict(model=model, args=targs, train_dataset=train, data_collator=batcher, callbacks=[timer])
        if trainer_kind == "plain":
            trainer = Trainer(**kwargs)
        else:
            trainer = GenEvalTrainer(**kwargs, batcher=batcher, fast_loss=fast_loss)
        trainer.train()
    return timer.times[3:]  # drop warm-up steps


def bench_overhead(args, work, data):
    """Alternate plain / subclass runs so machine noise hits both alike. Each run's median step time;
    across repetitions the minimum (the least-disturbed run) is compared: other processes on a shared
    machine only ever add time."""
    model_dir = build_model("tiny", work, data)
    runs = {"plain": [], "geneval": [], "geneval_answer_loss": []}
    for rep in range(args.reps):
        for kind in runs:
            t = train_step_times(model_dir, data, "plain" if kind == "plain" else "geneval", args.steps,
                                 args.train_batch_size, fast_loss=kind == "geneval_answer_loss", seed=rep)
            runs[kind].append(statistics.median(t))
            print(f"rep {rep} {kind}: median step {runs[kind][-1] * 1000:.1f} ms", flush=True)
    med = {k: min(v) for k, v in runs.items()}
    result = {"machine": machine(), "model": "tiny-vlm (Llama 256x4, CLIP patch 16)", "steps_per_run": args.steps,
              "batch_size": args.train_batch_size, "reps": args.reps, "best_median_step_s": med, "per_rep_median_s": runs,
              "overhead_pct": 100 * (med["geneval"] / med["plain"] - 1),
              "answer_loss_speedup_pct": 100 * (med["plain"] / med["geneval_answer_loss"] - 1)}
    print(json.dumps({k: result[k] for k in ("best_median_step_s", "overhead_pct", "answer_loss_speedup_pct")}), flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["throughput", "overhead"], help="run one part")
    p.add_argument("--models", default="tiny,smollm2", help="throughput: comma list of tiny, smollm2")
    p.add_argument("--smollm2", help="throughput: an already built bundles.models smollm2-vlm folder")
    p.add_argument("--patch-size", type=int, default=16,
                   help="tiny VLM vision patch (16: 16 image tokens; 8: 64, a 4x longer prefill per example)")
    p.add_argument("--n", type=int, default=200, help="throughput: dev questions for the tiny VLM")
    p.add_argument("--n-smollm2", type=int, default=96, help="throughput: dev questions for the SmolLM2 VLM")
    p.add_argument("--batch-sizes", default="32,64", help="throughput: comma list of batched generation sizes")
    p.add_argument("--max-new-tokens", type=int, default=8, help="throughput: generation length cap")
    p.add_argument("--steps", type=int, default=40, help="overhead: training steps per run")
    p.add_argument("--train-batch-size", type=int, default=32, help="overhead: training batch size")
    p.add_argument("--reps", type=int, default=3, help="overhead: alternating repetitions")
    p.add_argument("--tag", default="", help="suffix for the result file names")
    args = p.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    try:
        args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes: a comma list of integers, not {args.batch_sizes!r}")
    import torch
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = prepare_data(work, max(args.n, args.n_smollm2))
        for part, fn in [("throughput", bench_throughput), ("overhead", bench_overhead)]:
            if args.only in (None, part):
                result = fn(args, work, data)
                path = RESULTS / f"geneval_{part}{args.tag}.json"
                path.write_text(json.dumps(result, indent=2) + "\n")
                print("wrote", path, flush=True)


if __name__ == "__main__":
    main()
