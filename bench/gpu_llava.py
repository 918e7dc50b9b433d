"""GPU benchmark: LoRA training and eval-loop generation on a LLaVA-1.5-7B-shaped model (random weights).

No downloads: the model is built from a config with the llava-1.5-7b-hf shapes (Llama-2-7B LM, CLIP
ViT-L/14-336 tower, 2-layer MLP projector) directly on the GPU in bf16. LoRA r=16 on the language
model's attention + MLP projections (the finetune step's default targets). Training is timed per --runs mode
(eager, gradient-checkpointed, torch.compile'd layers); the top-level numbers are the fastest run's, all are
in train_runs.

Reports (JSON, bench/results/gpu_llava.json):
  train_tokens_s     LM tokens (576 image + text tokens per sample) processed per second in training
  mfu                train_tokens_s * 4N / peak, N = language-model parameters, peak = 989e12 (H100/H200
                     SXM dense bf16). 4N = forward 2N + activation gradients 2N: LoRA computes no weight
                     gradients for the frozen 7B weights, so the usual 6N would overstate the work.
                     Recompute from gradient checkpointing is real work but is not counted (as usual).
  mfu_with_attention the same plus attention score FLOPs (12 * layers * hidden * seq per token)
  peak_mem_gib       torch.cuda.max_memory_allocated during that training run
  gen_tokens_s_b1 / gen_tokens_s_b32: greedy generation with KV cache, same prompts, batch 1 vs 32

  python bench/gpu_llava.py                 # one GPU, ~3-6 minutes
  python bench/gpu_llava.py --tiny          # CPU check of the script's logic (seconds)
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_FLOPS = 989e12
LM_ONLY = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def llava_config(tiny):
    from transformers import LlavaConfig
    if tiny:
        text = dict(model_type="llama", vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)
        vision = dict(model_type="clip_vision_model", image_size=56, patch_size=14, hidden_size=32,
                      intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
        image_tokens, image_token = 16, 319
    else:  # llava-hf/llava-1.5-7b-hf
        text = dict(model_type="llama", vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                    num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                    max_position_embeddings=4096, rms_norm_eps=1e-5)
        vision = dict(model_type="clip_vision_model", image_size=336, patch_size=14, hidden_size=1024,
                      intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, projection_dim=768)
        image_tokens, image_token = 576, 32000
    return LlavaConfig(text_config=text, vision_config=vision, image_token_index=image_token,
                       vision_feature_select_strategy="default", vision_feature_layer=-2,
                       image_seq_length=image_tokens, projector_hidden_act="gelu"), image_tokens


def make_batch(cfg, image_tokens, batch_size, text_len, device, dtype, left_pad_to=None):
    """Random text ids with the image placeholder tokens up front, like a processed LLaVA prompt."""
    import torch
    img = cfg.image_token_index
    text = torch.randint(3, img, (batch_size, text_len), device=device)
    ids = torch.cat([torch.full((batch_size, image_tokens), img, device=device), text], dim=1)
    side = cfg.vision_config.image_size
    pixels = torch.randn(batch_size, 3, side, side, device=device, dtype=dtype)
    labels = ids.clone()
    labels[:, :image_tokens] = -100
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": pixels, "labels": labels}


def build(cfg, device, dtype, lora_r):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlavaForConditionalGeneration
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(cfg, dtype=dtype)
    n_lm = sum(p.numel() for n, p in model.named_parameters() if "language_model" in n or "lm_head" in n)
    n_total = sum(p.numel() for p in model.parameters())
    model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, target_modules=LM_ONLY,
                                             task_type="CAUSAL_LM"))
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, n_lm, n_total, n_trainable


def bench_training(model, cfg, image_tokens, args, device, dtype, mode):
    """Timed LoRA steps at the largest batch (from --batch-size down) that fits.

    mode: eager (no recompute: fits a 139 GiB card), checkpointed (gradient checkpointing, the memory-lean
    setting), compiled (no recompute, each decoder layer torch.compile'd; irreversible, so it runs last).
    """
    import torch
    model.train()
    checkpointing = mode == "checkpointed"
    if mode == "compiled":
        for m in model.modules():
            if type(m).__name__.endswith("DecoderLayer"):
                m.compile()  # regional compilation: one compile, reused by the 32 identical layers
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    else:
        model.gradient_checkpointing_disable()
    model.config.use_cache = False
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            fused=device == "cuda")
    batch_size = args.batch_size
    while True:
        try:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            batch = make_batch(cfg, image_tokens, batch_size, args.text_len, device, dtype)
            times = []
            for step in range(args.warmup + args.steps):
                sync(device)
                t = time.perf_counter()
                with autocast(device):
                    loss = model(**batch, use_cache=False).loss  # the config flag does not reach the LM
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync(device)
                times.append(time.perf_counter() - t)
            break
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            loss = batch = None
            opt.zero_grad(set_to_none=True)
            batch_size //= 2
            torch.cuda.empty_cache()
            print(f"out of memory; retrying with batch {batch_size}", flush=True)
    step_s = statistics.median(times[args.warmup:])
    seq = image_tokens + args.text_len
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device == "cuda" else None
    del batch, opt
    if device == "cuda":
        torch.cuda.empty_cache()
    return {"mode": mode, "gradient_checkpointing": checkpointing, "batch_size": batch_size, "seq_len": seq,
            "step_s_median": step_s, "train_tokens_s": batch_size * seq / step_s,
            "train_samples_s": batch_size / step_s, "peak_mem_gib": peak, "loss": loss.item()}


def bench_generation(model, cfg, image_tokens, args, device, dtype):
    """Greedy generation of the same prompts at batch 1 and batch 32 (min_new_tokens keeps lengths equal)."""
    import torch
    model.eval()
    model.config.use_cache = True
    prompts = make_batch(cfg, image_tokens, args.gen_prompts, args.gen_prompt_len, device, dtype)
    prompts.pop("labels")
    kw = dict(do_sample=False, max_new_tokens=args.gen_tokens, min_new_tokens=args.gen_tokens, use_cache=True,
              pad_token_id=0)
    out = {}
    with torch.no_grad():
        for bs in (1, 32):
            chunks = [{k: v[i:i + bs] for k, v in prompts.items()} for i in range(0, args.gen_prompts, bs)]
            with autocast(device):
                model.generate(**chunks[0], **{**kw, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
            sync(device)
            t = time.perf_counter()
            with autocast(device):
                for c in chunks:
                    model.generate(**c, **kw)
            sync(device)
            secs = time.perf_counter() - t
            out[f"gen_tokens_s_b{bs}"] = args.gen_prompts * args.gen_tokens / secs
            out[f"gen_seconds_b{bs}"] = secs
    out["gen_speedup_b32_vs_b1"] = out["gen_tokens_s_b32"] / out["gen_tokens_s_b1"]
    return out


def autocast(device):
    """bf16 autocast, as `finetune --bf16` (Trainer) runs: peft keeps the LoRA weights in fp32, and without
    autocast every adapter call would cast its bf16 input to fp32 and multiply in fp32 (a third of the step
    time on an H200, measured)."""
    import torch
    return torch.autocast(device, dtype=torch.bfloat16)


def sync(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny config on CPU: checks the script, numbers mean nothing")
    p.add_argument("--batch-size", type=int, default=16,
                   help="largest training micro-batch tried (halved on out-of-memory)")
    p.add_argument("--text-len", type=int, default=448, help="text tokens per sample (576 image tokens are added)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps")
    p.add_argument("--runs", default="eager,checkpointed,compiled",
                   help="training runs, in order, from eager, checkpointed, compiled (compiled must be last)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank")
    p.add_argument("--gen-prompts", type=int, default=32, help="prompts generated for, at batch 1 and at batch 32")
    p.add_argument("--gen-prompt-len", type=int, default=32, help="text tokens per generation prompt")
    p.add_argument("--gen-tokens", type=int, default=32, help="new tokens per prompt")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "gpu_llava.json"),
                   help="result file")
    args = p.parse_args()
    runs = args.runs.split(",")
    if set(runs) - {"eager", "checkpointed", "compiled"} or "compiled" in runs[:-1]:
        p.error("--runs: a comma list of eager, checkpointed, compiled, with compiled last")
    import peft
    import torch
    import transformers
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.tiny:
        sys.exit("gpu_llava: error: no CUDA device; use --tiny to check the script on CPU")
    if args.tiny:
        args.text_len, args.steps, args.warmup, args.gen_tokens = min(args.text_len, 16), min(args.steps, 2), 1, 4
        args.batch_size = min(args.batch_size, 2)
    dtype = torch.bfloat16
    torch.manual_seed(0)
    t0 = time.time()
    cfg, image_tokens = llava_config(args.tiny)
    model, n_lm, n_total, n_trainable = build(cfg, device, dtype, args.lora_r)
    build_s = time.time() - t0
    L, h = cfg.text_config.num_hidden_layers, cfg.text_config.hidden_size
    flops_4n = 4 * n_lm
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (--tiny: logic check only)",
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "dtype": "bfloat16", "lora_r": args.lora_r, "attention": model.config.text_config._attn_implementation,
        "params_total": n_total, "params_lm": n_lm, "params_trainable": n_trainable, "build_s": build_s,
        "flops_per_token_4n": flops_4n, "peak_flops": PEAK_FLOPS,
        "gen_prompts": args.gen_prompts, "gen_new_tokens": args.gen_tokens, "train_runs": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Generation first: it needs no training, and a compiled run below cannot be undone.
    result.update(bench_generation(model, cfg, image_tokens, args, device, dtype))
    out.write_text(json.dumps(result, indent=2) + "\n")
    for mode in args.runs.split(","):
        r = bench_training(model, cfg, image_tokens, args, device, dtype, mode)
        r["mfu"] = r["train_tokens_s"] * flops_4n / PEAK_FLOPS
        r["mfu_with_attention"] = r["train_tokens_s"] * (flops_4n + 12 * L * h * r["seq_len"]) / PEAK_FLOPS
        print(json.dumps(r), flush=True)
        args.batch_size = r["batch_size"]  # the next run starts at the batch that fitted
        result["train_runs"].append(r)
        best = max(result["train_runs"], key=lambda r: r["mfu"])  # the top-level numbers: the fastest run
        result.update({k: best[k] for k in ("mode", "batch_size", "seq_len", "train_tokens_s", "mfu",
                                            "mfu_with_attention", "peak_mem_gib")})
        result["total_s"] = time.time() - t0
        out.write_text(json.dumps(result, indent=2) + "\n")  # after each run: a timeout keeps what finished
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
