"""The study (cl_recipes/llava_nli.yaml) at LLaVA-1.5-7B shapes on one GPU, every step, in bf16: the GPU check.

Runs the study's step programs (bundles.prepare jsonl, a random base model, a RoBERTa-large-shaped NLI
model, bundles.finetune with the NLI-scored generation eval loop, bundles.infer, bundles.score) in this
process, on the GPU, with random weights (no hub, no downloads), and measures:

  train_tokens_s      tokens (576 image + text tokens per record, no padding) trained per second:
                      samples x mean tokens / (train_runtime - the evals' eval_runtime); includes the
                      LoRA checkpoint saves. --gradient-checkpointing and --bf16, as the recipe trains.
  mfu                 train_tokens_s * 4N / 989e12 (N: language-model parameters; 4N: LoRA computes no
                      weight gradients of the frozen weights; H100/H200 SXM dense bf16 peak)
  peak_mem_gib        torch.cuda.max_memory_allocated during the finetune step
  eval_gen_tokens_s   generated tokens per second of the eval loop inside training (plain path)
  generation          the eval loop's generation routine on the trained adapter, same dev records, batch
                      --gen-batch-size: plain vs --compile-generation (static KV cache + compiled decoding,
                      CUDA graphs): tokens/s of each, the speedup, the compile time, and how many records
                      got exactly the same tokens (bf16: compiled kernels may round differently)
  nli_device          where the NLI model ran (the eval loop's scorer and the score step)
  generation_merged   the same on the adapter merged into the weights (finetune --merge-for-eval, infer --merge):
                      merged plain and merged + compiled, each against the unmerged plain path (speedup,
                      records with the same tokens: bf16 rounds W + BA differently). The last phase, as the
                      one a cut run may lose (it loads the model once more and compiles once more).

Model shapes: llava-hf/llava-1.5-7b-hf (Llama-2-7B LM, CLIP ViT-L/14-336 tower, 2-layer MLP projector,
vocabulary 32064) with a small BPE tokenizer trained on the data (the model's ids beyond it decode to
nothing); NLI: RoBERTa-large width and depth (1024 x 24 layers, 16 heads; MLP 2x, tiny vocabulary).

  bash bench/gpu_study.sh                 # on the GPU machine: one command, ~6-8 min on an H200
  python bench/bench_gpu.py --tiny        # CPU check of the whole script with tiny shapes (~2 min)
Results: --out (gpu_study.sh: $OUT/gpu_study.json on the device machine, else bench/results/), rewritten
after every phase. A phase that fails is recorded there (error, traceback tail) and the phases that do not
need it still run; --budget stops a phase that hangs (recorded), SIGTERM (the outer timeout) records
where it was. compile_graphs_first_call / _second_call count torch.compile captures (0: no recompile).
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PEAK_FLOPS = 989e12
COLORS = ["red", "green", "blue", "yellow", "black", "purple", "orange", "gray"]
SHAPES = ["circle", "square", "triangle"]


def annotations(folder, n_train, n_dev, n_test, side):
    """A researcher's annotation folder: pictures in sub-folders + train/dev/test jsonl."""
    from PIL import Image, ImageDraw
    rng = random.Random(0)
    folder.mkdir(parents=True)
    splits = {"train": n_train, "dev": n_dev, "test": n_test}
    for split, n in splits.items():
        rows = []
        for i in range(n):
            color, shape, bg = rng.choice(COLORS), rng.choice(SHAPES), rng.choice(["white", "black"])
            img = Image.new("RGB", (side, side), bg)
            d, a, b = ImageDraw.Draw(img), side // 4, 3 * side // 4
            {"circle": d.ellipse, "square": d.rectangle}.get(shape, lambda box, fill: d.polygon(
                [(side // 2, a), (a, b), (b, b)], fill=fill))([a, a, b, b], fill=color)
            rel = f"{split}/{i}.png"
            (folder / split).mkdir(exist_ok=True)
            img.save(folder / rel)
            rows.append({"id": f"{split}{i}", "image": rel, "question": "Describe the picture.",
                         "reference": f"A {color} {shape} on a {bg} background, drawn in the middle of the picture."})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def build_base(out, data, tiny, device):
    """A random LLaVA with llava-1.5-7b-hf's shapes (gpu_llava.llava_config), saved as a model folder."""
    import torch
    from transformers import LlavaForConditionalGeneration, LlavaProcessor
    from bundles.models import data_corpus, image_processor, train_tokenizer
    from gpu_llava import llava_config
    tok = train_tokenizer(data_corpus(data), 400)
    cfg, image_tokens = llava_config(tiny)
    cfg.image_token_index = cfg.image_token_id = tok.convert_tokens_to_ids("<image>")
    cfg.text_config.vocab_size = max(cfg.text_config.vocab_size, len(tok))
    for k in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(cfg.text_config, k, getattr(tok, k))
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = tok.eos_token_id
    side, patch = cfg.vision_config.image_size, cfg.vision_config.patch_size
    processor = LlavaProcessor(image_processor=image_processor(side), tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=tok.chat_template)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_lm = sum(p.numel() for n, p in model.named_parameters() if "language_model" in n or "lm_head" in n)
    n_total = sum(p.numel() for p in model.parameters())
    L, h = cfg.text_config.num_hidden_layers, cfg.text_config.hidden_size
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"params_total": n_total, "params_lm": n_lm, "lm_layers": L, "lm_hidden": h, "image_tokens": image_tokens,
            "vocab_size": cfg.text_config.vocab_size, "tokenizer_vocab": len(tok)}


def mean_tokens(base, data):
    """Tokens per training record (prompt with its image tokens + answer + end of turn), no padding."""
    from bundles.batching import Batcher, load_records
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(base)
    records = load_records(data, "train")
    mask = Batcher(processor, data).training(records)["attention_mask"]
    return mask.sum().item() / len(records)


def peak_reset(device):
    """Free what the previous phase left (Trainer holds reference cycles) before measuring this one."""
    import gc
    import torch
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak(device):
    import torch
    return torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None


def compare_generation(base, adapter, data, args, device, merge=False, reference=None):
    """The eval loop's routine (generate under bf16 autocast over fp32 weights, unmerged LoRA) on the dev
    records: plain, then compiled (first call compiles: timed apart), then compiled again (the timed one).
    merge: on the adapter merged into the fp32 weights, as infer --merge does; reference: the unmerged plain
    phase's result, which the speed-ups and token agreement are then measured against.
    Returns (the phase's numbers, the plain tokens per record)."""
    import torch
    from bundles.batching import Batcher, load_records
    from bundles.generation import generate, precision
    from bundles.loading import load_model
    model, processor = load_model(base, adapter, torch.float32, device)
    merge_s = None
    if merge:
        sync(device)
        t = time.perf_counter()
        model = model.merge_and_unload()
        sync(device)
        merge_s = time.perf_counter() - t
    batcher = Batcher(processor, data)
    records = load_records(data, "dev", args.eval_size)
    bf16 = not args.fp32

    def timed(**kw):
        sync(device)
        t = time.perf_counter()
        with precision(model, bf16):
            res = generate(model, batcher, records, args.gen_batch_size, args.max_new_tokens, **kw)
        sync(device)
        return res, time.perf_counter() - t

    backend = "eager" if args.tiny else None  # --tiny: dynamo capture without C++ codegen (CPU, seconds)
    generate(model, batcher, records[:2], 2, 2)  # warm-up (kernels, allocator)
    plain, plain_s = timed()
    g0 = dynamo_graphs()
    _, first_s = timed(compile=True, compile_backend=backend)
    g1 = dynamo_graphs()
    fast, fast_s = timed(compile=True, compile_backend=backend)
    g2 = dynamo_graphs()
    n_plain = sum(len(r["tokens"]) for r in plain)
    n_fast = sum(len(r["tokens"]) for r in fast)
    same = sum(a["tokens"] == b["tokens"] for a, b in zip(plain, fast))
    del model
    r = {"records": len(records), "batch_size": args.gen_batch_size, "max_new_tokens": args.max_new_tokens,
         "bf16_autocast": bf16, "plain_tokens": n_plain, "plain_seconds": plain_s, "plain_tokens_s": n_plain / plain_s,
         "compiled_tokens": n_fast, "compiled_seconds": fast_s, "compiled_tokens_s": n_fast / fast_s,
         "compile_first_call_seconds": first_s, "speedup": (n_fast / fast_s) / (n_plain / plain_s),
         "same_tokens_records": same, "compile_backend": backend or "inductor",
         # graphs captured by the first compiled call, and by the second (0 = no recompilation)
         "compile_graphs_first_call": g1 - g0, "compile_graphs_second_call": g2 - g1}
    if merge:
        r["merge_seconds"] = merge_s
    if reference is not None:  # against the unmerged plain path: what the options buy, and what they change
        ref_s, ref_tokens = reference["plain_tokens_s"], reference["tokens"]
        r.update({"merged_speedup": r["plain_tokens_s"] / ref_s, "merged_compiled_speedup": r["compiled_tokens_s"] / ref_s,
                  "merged_same_tokens_as_unmerged": sum(a["tokens"] == t for a, t in zip(plain, ref_tokens)),
                  "merged_compiled_same_tokens_as_unmerged": sum(a["tokens"] == t for a, t in zip(fast, ref_tokens))})
    return r, [x["tokens"] for x in plain]


def sync(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def dynamo_graphs():
    """Graphs torch.compile captured so far in this process (a recompile adds one)."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU: checks the script; numbers mean nothing")
    p.add_argument("--steps", type=int, default=12, help="finetune optimizer steps (one eval at the end)")
    p.add_argument("--batch-size", type=int, default=8, help="finetune micro-batch (the recipe's)")
    p.add_argument("--grad-accum", type=int, default=2, help="gradient accumulation (the recipe's)")
    p.add_argument("--train-size", type=int, default=96, help="training records")
    p.add_argument("--eval-size", type=int, default=64, help="dev records generated for in the eval loop")
    p.add_argument("--test-size", type=int, default=32, help="test records for infer and score")
    p.add_argument("--gen-batch-size", type=int, default=32, help="generation batch (the recipe's)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generated tokens per record (the random model "
                                                                   "rarely stops early, so about this many)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast (the --tiny CPU check uses it)")
    p.add_argument("--budget", type=int, default=int(os.environ.get("GPU_STUDY_BUDGET", 0)),
                   help="seconds for all phases (0: no limit); a phase still running then is stopped and "
                        "recorded as an error, and the JSON keeps every finished phase")
    p.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_study.json"), help="result file")
    args = p.parse_args(argv)
    import peft
    import torch
    import transformers
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if device == "cpu" and not args.tiny:
        sys.exit("bench_gpu: error: no CUDA device; use --tiny to check the script on the CPU")
    if args.tiny:
        args.steps, args.batch_size, args.train_size = min(args.steps, 2), min(args.batch_size, 2), min(args.train_size, 8)
        args.eval_size, args.test_size, args.gen_batch_size = min(args.eval_size, 6), min(args.test_size, 4), 4
        args.max_new_tokens, args.fp32 = min(args.max_new_tokens, 6), True
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_gpu_"))
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (--tiny: logic check only)",
              "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
              "python": platform.python_version(), "shapes": "tiny" if args.tiny else "llava-1.5-7b",
              "precision": "fp32" if args.fp32 else "bf16 autocast over fp32 weights (finetune --bf16)",
              "args": vars(args), "phases": {}}

    deadline = t_start + args.budget if args.budget else None
    running = {"phase": None}

    def save():
        result["total_s"] = time.time() - t_start
        out.write_text(json.dumps(result, indent=2) + "\n")

    def on_signal(signum, frame):
        """The outer `timeout` (gpu_study.sh) or the budget ran out: say where, keep what finished."""
        if signum == signal.SIGALRM:
            raise TimeoutError(f"--budget {args.budget}s ran out")
        result["interrupted"] = {"signal": signal.Signals(signum).name, "in_phase": running["phase"],
                                 "after_s": time.time() - t_start}
        save()
        os._exit(124)  # at once: not an exception a phase would catch and carry on from
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)

    def phase(name, fn, needs=()):
        """Run one phase; its numbers (or its error, with the traceback's tail) go into the JSON at once,
        so a failure, a hang cut by the budget or a kill still leaves every finished phase on disk.
        A phase whose inputs (`needs`) failed is skipped, the others still run."""
        missing = [n for n in needs if "error" in result["phases"].get(n, {"error": "not run"})]
        if missing:
            result["phases"][name] = {"error": f"skipped: needs {', '.join(missing)}"}
            save()
            return {}
        if deadline:
            left = int(deadline - time.time())
            if left < 5:
                result["phases"][name] = {"error": "skipped: --budget spent"}
                save()
                return {}
            signal.alarm(left)
        print(f"[bench_gpu] {name} ...", flush=True)
        running["phase"] = name
        t = time.time()
        peak_reset(device)
        graphs = dynamo_graphs()
        try:
            r = fn() or {}
        except (Exception, SystemExit) as e:  # noqa: BLE001 -- a step's one-line exit too: recorded, the next phases run
            import traceback
            r = {"error": f"{type(e).__name__}: {e}"[:2000],
                 "traceback": traceback.format_exc().splitlines()[-25:]}
            print(f"[bench_gpu] {name} FAILED: {r['error']}", flush=True)
        finally:
            signal.alarm(0)
            running["phase"] = None
        r.update(seconds=time.time() - t, peak_mem_gib=peak(device), dynamo_new_graphs=dynamo_graphs() - graphs)
        if device == "cuda":
            r["mem_still_allocated_gib"] = torch.cuda.memory_allocated() / 2 ** 30  # what the phase left behind
        result["phases"][name] = r
        save()
        print(f"[bench_gpu] {name}: {json.dumps(r)}", flush=True)
        return r

    from bundles import finetune, infer, models, prepare, score
    side = 56 if args.tiny else 336
    ann, data, base, nli, ft = work / "ann", work / "data", work / "base", work / "nli", work / "ft"
    try:
        phase("data", lambda: {k: len(v) for k, v in (annotations(ann, args.train_size, args.eval_size, args.test_size, side),
                                                     prepare.main(["jsonl", "--train", str(ann / "train.jsonl"), "--dev",
                                                                   str(ann / "dev.jsonl"), "--test", str(ann / "test.jsonl"),
                                                                   "--image-root", str(ann), "--out", str(data)]))[1].items()})
        shape = dict(phase("base", lambda: build_base(base, data, args.tiny, device), needs=["data"]))
        nli_shape = ["--hidden-size", "32", "--layers", "1", "--heads", "2"] if args.tiny else \
            ["--hidden-size", "1024", "--layers", "24", "--heads", "16", "--max-length", "512"]
        phase("nli", lambda: models.main(["tiny-nli", "--out", str(nli), "--data", str(data), *nli_shape]), needs=["data"])
        precision = [] if args.fp32 else ["--bf16"]
        ft_args = ["--model", str(base), "--data", str(data), "--out", str(ft), "--nli-model", str(nli),
                   "--lora-r", "16", "--lr", "2e-4", "--seed", "1", *precision, "--gradient-checkpointing",
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--grad-accum", str(args.grad_accum),
                   "--eval-steps", str(args.steps), "--no-eval-on-start", "--eval-size", str(args.eval_size),
                   "--metrics", "nli,exact,token_f1", "--best-metric", "nli_bidir",
                   "--gen-batch-size", str(args.gen_batch_size), "--max-new-tokens", str(args.max_new_tokens)]

        def run_finetune():
            finetune.main(ft_args)
            history = json.loads((ft / "log_history.json").read_text())
            runtime = next(h["train_runtime"] for h in history if "train_runtime" in h)
            evals = [h for h in history if "eval_runtime" in h]
            train_s = runtime - sum(h["eval_runtime"] for h in evals)
            samples = args.steps * args.batch_size * args.grad_accum
            tokens = mean_tokens(base, data)
            tok_s = samples * tokens / train_s
            last = evals[-1]
            return {"train_seconds": train_s, "samples": samples, "tokens_per_record": tokens, "train_tokens_s": tok_s,
                    "mfu": tok_s * 4 * shape["params_lm"] / PEAK_FLOPS, "step_s": train_s / args.steps,
                    "eval_runtime": last["eval_runtime"], "eval_gen_seconds": last.get("eval_gen_seconds"),
                    "eval_gen_tokens_s": last.get("eval_gen_tokens_s"), "eval_gen_len": last.get("eval_gen_len"),
                    "eval_nli_bidir": last.get("eval_nli_bidir"), "eval_gen_hit_limit": last.get("eval_gen_hit_limit")}
        phase("finetune", run_finetune, needs=["base", "nli"])
        unmerged = {}

        def run_generation():
            r, unmerged["tokens"] = compare_generation(base, ft / "adapter", data, args, device)
            unmerged["plain_tokens_s"] = r["plain_tokens_s"]
            return r
        phase("generation", run_generation, needs=["finetune"])
        phase("infer", lambda: infer.main(["--model", str(base), "--adapter", str(ft), "--data", str(data), "--split",
                                           "test", *precision, "--batch-size", str(args.gen_batch_size),
                                           "--max-new-tokens", str(args.max_new_tokens), "--out", str(work / "infer")])
              or json.loads((work / "infer" / "metrics.json").read_text()), needs=["finetune"])

        def run_score():
            score.main(["--predictions", str(work / "infer"), "--nli-model", str(nli), "--out", str(work / "score")])
            from bundles.metrics import default_device
            return {"nli_device": str(default_device()),
                    "scores": {k: v for k, v in json.loads((work / "score" / "scores.json").read_text()).items()
                               if isinstance(v, (int, float))}}
        phase("score", run_score, needs=["infer"])
        phase("generation_merged", lambda: compare_generation(base, ft / "adapter", data, args, device, merge=True,
                                                              reference=unmerged)[0], needs=["generation"])
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    f, g, m = (result["phases"].get(k, {}) for k in ("finetune", "generation", "generation_merged"))
    summary = {"train_tokens_s": f.get("train_tokens_s"), "mfu": f.get("mfu"), "peak_mem_gib": f.get("peak_mem_gib"),
               "eval_gen_tokens_s": f.get("eval_gen_tokens_s"), "gen_plain_tokens_s": g.get("plain_tokens_s"),
               "gen_compiled_tokens_s": g.get("compiled_tokens_s"), "gen_speedup": g.get("speedup"),
               "gen_same_tokens": f"{g['same_tokens_records']}/{g['records']}" if "records" in g else None}
    if "records" in m:
        summary.update({"gen_merged_speedup": m["merged_speedup"], "gen_merged_compiled_speedup": m["merged_compiled_speedup"],
                        "gen_merged_same_tokens": f"{m['merged_same_tokens_as_unmerged']}/{m['records']}",
                        "gen_merged_compiled_same_tokens": f"{m['merged_compiled_same_tokens_as_unmerged']}/{m['records']}"})
    result.update(summary, failed_phases=[k for k, v in result["phases"].items() if "error" in v],
                  **{k: v for k, v in shape.items() if k not in ("seconds", "peak_mem_gib", "dynamo_new_graphs",
                                                                 "mem_still_allocated_gib")})
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("phases", "args")}, indent=2))
    return result


if __name__ == "__main__":
    main()
