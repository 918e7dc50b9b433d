"""LoRA fine-tuning of a causal LM or LLaVA-style VLM, selected by a score on *generated* text.

Every --eval-steps (and once before training, so the base model is measured too) the GenEvalTrainer
computes eval_loss, then generates answers for --eval-size dev records (batched, left-padded, greedy,
with pixel_values), scores them (--metrics) and logs eval_<metric> next to eval_loss; the checkpoint
with the best --best-metric is kept (load_best_model_at_end). The dev subset is a seeded random
sample (--seed), the same at every evaluation and after a resume; its ids are in eval_ids.json.

LoRA targets only the language model by default (a plain q_proj list would also hit the CLIP tower);
--train-projector / --train-vision train those modules fully; --full trains every weight (for tiny
models built from random weights, where LoRA has nothing to adapt).

Inputs (as dependencies in a run bundle): --model (a bundles.models folder), --data (a bundles.prepare
folder), --nli-model (a bundles.nli_train folder), --resume (a previous finetune output or checkpoint).
Outputs: adapter/ (or model/ with --full), args.json, metrics.json, log_history.json, eval_ids.json,
predictions/eval-step<N>.jsonl, checkpoints/ (each with the processor, so infer can use one).

Resuming: --resume <dir> continues from the last *complete* checkpoint under <dir> (e.g. the
checkpoints/ of a run that was killed). That checkpoint and the best one so far are copied into this
run's checkpoints/, so the best-checkpoint choice (metric, step, weights) carries over and the new
output is complete on its own; args.json and metrics.json say what was resumed from.

Example:
  python -m bundles.finetune --model model --data data --nli-model nli --lora-r 8 --steps 60 --eval-steps 30
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

from bundles.common import ArgParser, csv_list, existing_path, fail, log, model_ref, quiet, save_args, set_threads, write_json

LM_ONLY = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def parse_args(argv=None):
    p = ArgParser(prog="bundles.finetune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=model_ref, help="base model folder or hub id")
    p.add_argument("--data", required=True, type=existing_path, help="prepared data folder (train.jsonl, dev.jsonl)")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--nli-model", type=model_ref, help="NLI model folder (needed by the 'nli' metric)")
    p.add_argument("--resume", "--resume-from", type=existing_path,
                   help="resume from this checkpoint, or the last complete one inside it")
    g = p.add_argument_group("adapter")
    g.add_argument("--lora-r", type=int, default=8, help="LoRA rank")
    g.add_argument("--lora-alpha", type=float, help="LoRA alpha (default: 2 x rank)")
    g.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout")
    g.add_argument("--target-modules", help="regex or comma list of module names for LoRA "
                   "(default: the language model's attention+MLP projections; 'all-linear' for text-only LMs)")
    g.add_argument("--train-projector", action="store_true", help="also train the VLM projector fully")
    g.add_argument("--train-vision", action="store_true", help="also train the vision tower fully")
    g.add_argument("--full", action="store_true", help="train every weight, no LoRA (tiny random models)")
    g.add_argument("--freeze-vision", action="store_true",
                   help="keep the vision tower as built (e.g. pretrained by bundles.models --pretrain-vision-steps)")
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimizer steps (default 100 unless --epochs)")
    g.add_argument("--epochs", type=float, help="passes over the training data (steps derived from its size)")
    g.add_argument("--batch-size", type=int, default=16, help="training batch size")
    g.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    g.add_argument("--scheduler", default="cosine", help="transformers lr scheduler type")
    g.add_argument("--warmup", type=int, default=5, help="warm-up steps")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    g.add_argument("--train-size", type=int, help="use only the first N training records")
    g.add_argument("--max-length", type=int, help="truncate answers so prompt+answer fit this many tokens (a prompt is "
                   "never cut; metrics.json counts train_answers_cut and train_prompts_over_max_length)")
    g.add_argument("--seed", type=int, default=0, help="seed (LoRA init, data order)")
    g.add_argument("--bf16", action="store_true", help="bf16 mixed precision: fp32 weights, bf16 autocast")
    g.add_argument("--load-dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"],
                   help="dtype to load the base model in ('auto': the checkpoint's, e.g. fp16 for "
                        "llava-1.5-7b-hf, which breaks bf16 autocast in the vision tower)")
    g.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations to save memory")
    g.add_argument("--fsdp", help="under torchrun: Trainer's FSDP options, e.g. 'full_shard auto_wrap'")
    g.add_argument("--fsdp-version", type=int, default=2, choices=[1, 2], help="FSDP1 (wrapper) or FSDP2 (fully_shard)")
    g.add_argument("--deepspeed", type=existing_path, help="under torchrun: a DeepSpeed config json (e.g. ZeRO-3)")
    g.add_argument("--full-head-loss", dest="fast_loss", action="store_false",
                   help="compute the loss with labels= over every position (the plain Trainer way) instead of "
                        "only the answer positions")
    g = p.add_argument_group("generation-based evaluation")
    g.add_argument("--eval-steps", type=int, default=50, help="evaluate every N steps (0: never)")
    g.add_argument("--eval-size", type=int, default=64,
                   help="dev records to generate for at each evaluation (a random subset fixed by --seed)")
    g.add_argument("--no-eval-on-start", dest="eval_on_start", action="store_false",
                   help="skip the evaluation of the base model before training")
    g.add_argument("--metrics", type=csv_list, default=["exact", "token_f1", "nli"],
                   help="comma list of: exact, token_f1, nli")
    g.add_argument("--best-metric", default="nli_bidir", help="metric that picks the checkpoint (eval_ prefix optional)")
    g.add_argument("--gen-batch-size", type=int, default=32, help="generation batch size")
    g.add_argument("--compile-generation", action="store_true",
                   help="fast eval generation: static KV cache + torch.compile'd decoding (CUDA graphs); "
                        "give infer --compile-generation too")
    g.add_argument("--merge-for-eval", action="store_true",
                   help="generate each evaluation from a merged copy of the LoRA model (faster decoding; costs a "
                        "second copy of the weights during the eval; not bit-identical under --bf16): give infer "
                        "--merge too")
    g.add_argument("--max-new-tokens", type=int, default=256,
                   help="generation length cap (LLaVA descriptions run 80-200 tokens); eval_gen_hit_limit "
                        "counts the answers it cut")
    g.add_argument("--save-total-limit", type=int, default=2, help="checkpoints to keep")
    args = p.parse_args(argv)
    if "nli" in args.metrics and not args.nli_model:
        p.error("metric 'nli' needs --nli-model (or drop it: --metrics exact,token_f1)")
    bad = set(args.metrics) - {"exact", "token_f1", "nli"}
    if bad:
        p.error(f"unknown metric(s) {sorted(bad)}; choose from exact, token_f1, nli")
    if not (Path(args.data) / "train.jsonl").exists():
        p.error(f"no train.jsonl in {args.data}")
    if args.eval_steps and not (Path(args.data) / "dev.jsonl").exists():
        p.error(f"no dev.jsonl in {args.data} (or use --eval-steps 0)")
    if args.steps is not None and args.epochs is not None:
        p.error("give --steps or --epochs, not both")
    if args.steps is None and args.epochs is None:
        args.steps = 100
    if (args.steps is not None and args.steps < 1) or (args.epochs is not None and args.epochs <= 0):
        p.error("--steps must be >= 1 and --epochs > 0")
    if args.freeze_vision and args.train_vision:
        p.error("--freeze-vision and --train-vision contradict each other")
    if args.merge_for_eval and args.full:
        p.error("--merge-for-eval merges a LoRA adapter; --full trains no adapter")
    for name in ("batch_size", "lora_r", "grad_accum", "gen_batch_size", "max_new_tokens", "eval_size",
                 "save_total_limit", "train_size", "max_length"):
        # 0 is no "none" or "all" here: --train-size 0 / --eval-size 0 used to mean every record, silently
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("eval_steps", "warmup", "lr"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    produced = ("loss", "gen_len") + tuple("nli_" if m == "nli" else m for m in args.metrics)
    if args.eval_steps and not args.best_metric.removeprefix("eval_").startswith(produced):
        p.error(f"--best-metric {args.best_metric} is not produced by --metrics {','.join(args.metrics)}")
    return args


def intact(f):
    """False for a weights/state file that is cut short (a full disk, a copy interrupted): safetensors
    must be exactly header + the tensors its header lists; torch .pt/.pth/.bin files are zip archives,
    whose directory sits at the very end of the file."""
    import zipfile
    try:
        if f.suffix == ".safetensors":
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
            return f.stat().st_size == 8 + n + end
        if f.suffix in (".pt", ".pth", ".bin"):
            return zipfile.is_zipfile(f)
        if f.suffix == ".json":
            json.loads(f.read_text())
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
    return True


def complete(ckpt):
    """A checkpoint Trainer finished writing: trainer_state.json is written last, after the weights and
    optimizer; a kill during the rotation of an older checkpoint can leave it without weights; and no
    file of it may be cut short (resuming from one would crash, or load garbage)."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        files = list(ckpt.iterdir())
    except (OSError, ValueError):
        return False
    names = [p.name for p in files]
    has = lambda *prefixes: any(n.startswith(prefixes) for n in names)
    return (has("adapter_model", "model", "pytorch_model", "global_step") and has("optimizer", "global_step")
            and all(intact(f) for f in files if f.is_file()))


def model_fingerprint(path):
    """A cheap identity of a local base model: its config and, per weights file, the safetensors header
    and three 64 KiB samples of the tensor data (two random models of one shape differ there). Reading
    13 GB to hash a 7B model would take minutes; this takes milliseconds. None for a hub id."""
    import hashlib
    folder = Path(path)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.name == "config.json" or f.suffix == ".safetensors":
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                size = f.stat().st_size
                for offset in (0, size // 2, max(size - 65536, 0)):
                    fh.seek(offset)
                    h.update(fh.read(65536))
    return h.hexdigest()[:16]


# what must not change when a run is continued: a different value would crash on the weights, or
# silently change the adapter's scale, or compare metrics over different dev records / metrics
RESUME_KEEPS = ("model_fingerprint", "full", "lora_r", "lora_alpha", "target_modules", "train_projector",
                "train_vision", "freeze_vision", "best_metric", "metrics", "eval_ids")


def check_resume(resume, now):
    """Refuse (one line, exit 2) to continue a run under settings that differ from the resumed run's
    (its args.json and eval_ids.json, next to its checkpoints/, when they are there)."""
    run = Path(resume).parent.parent
    now["lora_alpha"] = float(now.get("lora_alpha") or 2 * now["lora_r"])  # the default, spelled out, compares equal
    try:
        then = json.loads((run / "args.json").read_text())
        then["eval_ids"] = json.loads((run / "eval_ids.json").read_text()) if (run / "eval_ids.json").exists() else None
    except (OSError, ValueError):
        log(f"finetune: warning: no args.json next to {Path(resume).parent}: cannot check that the resumed run "
            "used the same base model and settings")
        return
    if then.get("lora_r"):
        then["lora_alpha"] = float(then.get("lora_alpha") or 2 * then["lora_r"])
    evaluating = ("best_metric", "metrics", "eval_ids")  # matter only if this run evaluates (selects) at all
    for key in RESUME_KEEPS:
        if key in evaluating and not now.get("eval_steps"):
            continue
        if key in then and then[key] is not None and now.get(key) is not None and then[key] != now[key]:
            what = ("a different base model (its weights differ)" if key == "model_fingerprint" else
                    "a different dev subset (--eval-size, --seed or dev.jsonl changed)" if key == "eval_ids" else
                    f"--{key.replace('_', '-')} {then[key]!r}, not {now[key]!r}")
            fail("bundles.finetune", f"--resume {resume}: that run used {what}; a continued run must keep it")


def latest_checkpoint(path):
    """The checkpoint itself, or the highest-step complete checkpoint-* under path."""
    path = Path(path)
    if (path / "trainer_state.json").exists() and complete(path):
        return str(path)
    found = sorted(path.glob("**/checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    done = [p for p in found if complete(p)]
    if not done:
        raise SystemExit(f"bundles.finetune: error: no complete checkpoint-* under {path}")
    if done[-1] != found[-1]:
        log(f"finetune: skipping incomplete {', '.join(p.name for p in found if p not in done)}")
    return str(done[-1])


def adopt(src, ckpt_dir):
    """Copy the checkpoint to resume from, and the best one so far (which load_best_model_at_end may
    still pick), into this run's checkpoints/, and point the state's best checkpoint at the copy: the
    resumed state then finds its best checkpoint, and this output can itself be resumed."""
    src, ckpt_dir = Path(src), Path(ckpt_dir)
    state = json.loads((src / "trainer_state.json").read_text())
    best = state.get("best_global_step")
    names = [src.name] + ([f"checkpoint-{best}"] if best and best != state["global_step"] else [])
    for name in names:
        if (src.parent / name).is_dir() and (src.parent / name).resolve() != (ckpt_dir / name).resolve():
            shutil.copytree(src.parent / name, ckpt_dir / name, dirs_exist_ok=True)
    best_dir = ckpt_dir / f"checkpoint-{best}"
    state["best_model_checkpoint"] = str(best_dir) if best and best_dir.is_dir() else None
    if best and not best_dir.is_dir():
        log(f"finetune: warning: the best checkpoint so far (step {best}) is gone; its metric still counts")
    write_json(ckpt_dir / src.name / "trainer_state.json", state)
    return str(ckpt_dir / src.name), state["global_step"]


def eval_subset(dev, size, seed):
    """A seeded random subset of the dev records, in file order: the first N would be biased when the
    file is sorted (by type, by length...). The same at every evaluation and after a resume."""
    if not size or size >= len(dev):
        return dev
    keep = sorted(random.Random(seed).sample(range(len(dev)), size))
    return [dev[i] for i in keep]


def wrap_lora(model, args, vlm):
    from peft import LoraConfig, get_peft_model
    if args.target_modules:
        # a regex (PEFT full-matches it) or a comma list of name suffixes
        targets = csv_list(args.target_modules) if "," in args.target_modules else args.target_modules
    else:
        targets = LM_ONLY if vlm else "all-linear"
    to_save = (["multi_modal_projector"] if args.train_projector else []) + (["vision_tower"] if args.train_vision else [])
    cfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha or 2 * args.lora_r, lora_dropout=args.lora_dropout,
                     target_modules=targets, modules_to_save=to_save or None, task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def count_params(model):
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def build_trainer(args, model, processor, batcher, train, dev, metric_fns, out, trainer_cls=None):
    import torch
    from transformers import TrainingArguments
    from bundles.gen_eval import GenEvalTrainer
    best = args.best_metric if args.best_metric.startswith("eval_") else f"eval_{args.best_metric}"
    evaluating = bool(args.eval_steps) and bool(dev)
    targs = TrainingArguments(
        output_dir=str(out / "checkpoints"), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.gen_batch_size, gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr, lr_scheduler_type=args.scheduler, warmup_steps=args.warmup,
        weight_decay=args.weight_decay, logging_steps=max(1, min(10, args.steps // 10)),
        eval_strategy="steps" if evaluating else "no", eval_steps=args.eval_steps or None,
        eval_on_start=evaluating and args.eval_on_start,
        save_strategy="steps" if evaluating else "no", save_steps=args.eval_steps or None,
        # --full reloads the best checkpoint itself (see main): Trainer's in-place reload of a whole
        # LLaVA checkpoint misses keys silently in transformers 5 (saved names differ from module names)
        save_total_limit=args.save_total_limit, load_best_model_at_end=evaluating and not args.full,
        metric_for_best_model=best if evaluating else None,
        greater_is_better=not best.endswith(("loss", "contra", "gen_len")),
        remove_unused_columns=False, label_names=["labels"], prediction_loss_only=True, report_to=[],
        seed=args.seed, data_seed=args.seed, bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0, disable_tqdm=True,
        fsdp=args.fsdp or "", fsdp_config={"fsdp_version": args.fsdp_version} if args.fsdp else None,
        deepspeed=args.deepspeed,
        **({"gradient_checkpointing": True} if args.gradient_checkpointing else {}))
    trainer_cls = trainer_cls or GenEvalTrainer
    # processing_class: every checkpoint carries the processor, so a checkpoint is a usable model folder
    return trainer_cls(model=model, args=targs, train_dataset=train, eval_dataset=dev if evaluating else None,
                       data_collator=batcher, processing_class=processor, gen_records=dev if evaluating else (), batcher=batcher,
                       metric_fns=metric_fns, gen_batch_size=args.gen_batch_size,
                       max_new_tokens=args.max_new_tokens, predictions_dir=out / "predictions",
                       fast_loss=args.fast_loss, gen_compile=getattr(args, "compile_generation", False),
                       gen_merge=getattr(args, "merge_for_eval", False))


def final_metrics(trainer, extra):
    """metrics.json: the selected checkpoint's eval metrics, the base model's (step 0), and run facts."""
    history = trainer.state.log_history
    evals = [h for h in history if any(k.startswith("eval_") for k in h)]
    metrics = dict(extra)
    best = trainer.state.best_model_checkpoint
    if evals:
        best_step = trainer.state.best_global_step or (int(best.rsplit("-", 1)[-1]) if best else evals[-1]["step"])
        chosen = next((h for h in evals if h["step"] == best_step), evals[-1])
        metrics.update({k: v for k, v in chosen.items() if k.startswith("eval_")})
        metrics["best_step"] = best_step
        base = next((h for h in evals if h["step"] == 0), None)
        if base:
            metrics.update({f"base_{k}": v for k, v in base.items() if k.startswith("eval_")})
    train_logs = [h for h in history if "train_runtime" in h]
    if train_logs:
        metrics.update({k: train_logs[-1][k] for k in ("train_runtime", "train_loss") if k in train_logs[-1]})
    return metrics


def not_applied(args, trainer):
    """Why --fsdp / --deepspeed would be ignored, or None. accelerate 1.15 enables FSDP only when torchrun
    runs on several accelerators (accelerate/state.py:986-1013: the FSDP branch sits under
    `distributed_type in [MULTI_GPU, MULTI_NPU, ...]`, and CPU ranks are MULTI_CPU), so on CPU ranks or
    in one process Trainer trains with DDP or alone, saying nothing."""
    kind = trainer.accelerator.distributed_type
    if args.fsdp and not trainer.is_fsdp_enabled:
        return (f"--fsdp has no effect here: accelerate set up {kind}, FSDP needs torchrun over several "
                "GPUs (accelerate enables it for no CPU run; use DDP on CPU: drop --fsdp)")
    if args.deepspeed and not trainer.is_deepspeed_enabled:
        return f"--deepspeed has no effect here: accelerate set up {kind} (run it under torchrun)"
    return None


def planned_steps(args, n_train):
    """--steps, or --epochs over the training records at the effective batch (all ranks, accumulation)."""
    if args.epochs is None:
        return args.steps
    per_step = args.batch_size * args.grad_accum * int(os.environ.get("WORLD_SIZE", "1"))
    return max(1, math.ceil(args.epochs * n_train / per_step))


def main(argv=None):
    args = parse_args(argv)
    import torch
    from transformers import set_seed
    from bundles.batching import Batcher, load_records
    from bundles.loading import is_vlm, load_base
    from bundles.metrics import build_metrics
    threads = set_threads()
    quiet()
    set_seed(args.seed)
    main_process = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 writes files
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = load_records(args.data, "train", args.train_size)
    dev = eval_subset(load_records(args.data, "dev"), args.eval_size, args.seed) if args.eval_steps else []
    if not train:
        fail("bundles.finetune", f"{args.data}/train.jsonl has no records")
    if args.eval_steps and not dev:  # else no evaluation at all, and the last step would be kept silently
        fail("bundles.finetune", f"{args.data}/dev.jsonl has no records to evaluate on (or use --eval-steps 0)")
    if args.eval_steps and len(dev) < args.eval_size and int(os.environ.get("RANK", "0")) == 0:
        log(f"finetune: dev.jsonl has {len(dev)} records, fewer than --eval-size {args.eval_size}: each evaluation "
            f"generates for all {len(dev)} (eval_records in metrics.json)")
    args.steps = planned_steps(args, len(train))
    resume = latest_checkpoint(args.resume) if args.resume else None
    if resume:
        args.eval_on_start = False  # Trainer would re-evaluate the resumed step; its evals are in the history
    fingerprint = model_fingerprint(args.model)
    if resume:
        check_resume(resume, {**vars(args), "model_fingerprint": fingerprint, "eval_ids": [r["id"] for r in dev]})
    vlm = is_vlm(args.model)
    # fp32 master weights unless asked: a checkpoint's own dtype (fp16 for llava-1.5) breaks bf16 autocast
    dtype = "auto" if args.load_dtype == "auto" else getattr(torch, args.load_dtype)
    model, processor = load_base(args.model, dtype)
    model.config.use_cache = False
    if not args.full:
        model = wrap_lora(model, args, vlm)
    if args.freeze_vision:  # the tiny LM's noisy early gradients would undo a pretrained tower's shape features
        frozen = [p for n, p in model.named_parameters() if "vision_tower" in n]
        if not frozen:
            raise SystemExit("bundles.finetune: error: --freeze-vision: the model has no vision tower")
        for p in frozen:
            p.requires_grad_(False)
    trainable, total = count_params(model)
    log(f"finetune: {'VLM' if vlm else 'LM'} {total / 1e6:.2f}M params, {trainable / 1e6:.3f}M trainable, "
        f"{args.steps} steps, {threads} threads")
    batcher = Batcher(processor, args.data, args.max_length)
    length_cap = {}
    if args.max_length:  # say what the cap does to the training targets, instead of cutting them silently
        cut, over = batcher.over_length(train)
        length_cap = {"train_answers_cut": cut, "train_prompts_over_max_length": over}
        if cut and main_process:
            log(f"finetune: warning: --max-length {args.max_length} cuts the answer of {cut} of {len(train)} training "
                f"records (with their end-of-turn token){f'; {over} prompts are longer on their own' if over else ''}")
    metric_fns = build_metrics(args.metrics, args.nli_model) if dev else []
    trainer = build_trainer(args, model, processor, batcher, train, dev, metric_fns, out)
    ignored = not_applied(args, trainer)
    if ignored:  # accelerate decides, and would silently train with DDP or one process instead
        if main_process:
            print(f"bundles.finetune: error: {ignored}", file=sys.stderr)
        raise SystemExit(2)  # a flag that cannot apply: typed wrong for this machine
    if main_process:  # written once the run is known to start as asked
        save_args(out, args, resumed_from=resume, model_fingerprint=fingerprint)
        write_json(out / "eval_ids.json", [r["id"] for r in dev])
    if trainer.accelerator.num_processes > 1 and main_process:
        log(f"finetune: {trainer.accelerator.distributed_type} over {trainer.accelerator.num_processes} ranks"
            + (", parameters sharded: eval generates with synced_gpus" if trainer.sharded() else ""))
    resumed_step = None
    if resume:
        if trainer.is_world_process_zero():
            adopt(resume, out / "checkpoints")
        trainer.accelerator.wait_for_everyone()
        resumed_step = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"]
        log(f"finetune: resuming from {resume} (step {resumed_step})")

    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(out / "checkpoints" / Path(resume).name) if resume else None)
    seconds = time.time() - t0

    best = trainer.state.best_model_checkpoint
    if args.full and best:
        trainer.model = type(model).from_pretrained(best)
    final = out / ("model" if args.full else "adapter")
    trainer.save_model(str(final))  # with the processor (processing_class)
    if not main_process:
        return
    metrics = final_metrics(trainer, {"trainable_params": trainable, "total_params": total,
                                      "wall_seconds": seconds, "steps": trainer.state.global_step,
                                      "threads": threads, "resumed_from": resume, "resumed_from_step": resumed_step,
                                      "eval_records": len(dev),
                                      **length_cap})
    write_json(out / "metrics.json", metrics)
    write_json(out / "log_history.json", trainer.state.log_history)
    shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float) and "_" in k and not k.startswith("base_")}
    log("final metrics:", json.dumps(shown))


if __name__ == "__main__":
    main()
