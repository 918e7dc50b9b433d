"""Batched greedy generation: left-padded prompts (+ pixel_values), prompt stripped, cut at a stop token.

This is the one generation routine of the package: the eval loop inside training, `bundles.infer`
and the benchmarks all call `generate` (inside `precision(...)`), so what is selected on dev is
generated on test with the same numerics.

compile=True is the fast decoding path (`finetune --compile-generation`, `infer --compile-generation`):
a static KV cache and a torch.compile'd decoding step (inductor; on CUDA mode "reduce-overhead", i.e.
CUDA graphs: one graph replay per new token instead of thousands of kernel launches from Python, which is
what bounds eager decoding of a 7B model with LoRA). Prefill stays eager. Every batch is padded to
batch_size (repeats of its last prompt, dropped after) and the cache is sized for the longest prompt seen,
so the decoding step keeps one shape and compiles once. The same tokens as the plain path in fp32 on the
tiny models (tests/bundles/test_fast_generation.py); NOT in bf16: attention over the longer masked static
cache (and compiled kernels) round differently (22/24 answers identical on a chaotic tiny model under CPU
bf16 autocast), so use the same setting for the eval loop and for infer (bench/bench_gpu.py counts them).

merged_copy is the other speed lever (`finetune --merge-for-eval`, `infer --merge`): generate from a copy
whose LoRA weights are folded into the base weights, one matmul per projection instead of three plus the
adapter's Python. Same tokens in fp32 on the tiny models (tests/bundles/test_merged_eval.py); not under
bf16 autocast (bf16(W + BA) x rounds differently from bf16(W) x + bf16(B) bf16(A) x), so again: the same
setting for the eval loop and for infer.
"""
import contextlib
import logging

import torch


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def precision(model, bf16):
    """--bf16 means fp32 weights under bf16 autocast, as Trainer trains: the eval loop generates this
    way, so infer must too (bf16 *weights*, or an adapter merged into them, round differently)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)


def is_lora(model):
    from peft import PeftModel
    return isinstance(unwrap(model), PeftModel)


def merged_copy(model):
    """A copy of a PEFT model with its adapter merged into the base weights (merge_and_unload on a deepcopy;
    the model itself is not touched). Not peft's merge_adapter()/unmerge_adapter() in place: unmerging
    subtracts the delta again, W + BA - BA != W in floating point, so every evaluation would nudge the frozen
    base weights of the model being trained. Costs a second copy of the weights while it lives (a 7B
    model in fp32: ~27 GB). A model without an adapter is returned as it is."""
    import copy
    model = unwrap(model)
    if not is_lora(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def compile_kwargs(model, backend=None):
    """generate() arguments of the fast path: static cache + compiled decoding step."""
    from transformers import CompileConfig
    cuda = next(model.parameters()).device.type == "cuda"
    cfg = CompileConfig(backend=backend or "inductor", mode="reduce-overhead" if cuda else None)
    cfg._compile_all_devices = True  # transformers compiles only on accelerators unless told (CPU: the tests)
    return {"cache_implementation": "static", "compile_config": cfg}


def _cache_len(prompt_len, max_new_tokens, step=64):
    """Static cache length, rounded up so that slightly longer later prompts reuse the cache (and the graph)."""
    return -(-(prompt_len + max_new_tokens) // step) * step


@torch.no_grad()
def generate(model, batcher, records, batch_size=32, max_new_tokens=256, sort=True, synced_gpus=False,
             compile=False, compile_backend=None):
    """Returns one dict per record: {"prediction": text, "tokens": generated ids (stop token excluded),
    "hit_limit": True when max_new_tokens ran out before a stop token (the answer is truncated)}.

    Records are sorted by prompt length so each batch pads little; results come back in input order.
    synced_gpus: every rank keeps stepping until all ranks are done (sharded models gather layers
    collectively, so a rank that stopped early would leave the others waiting forever).
    compile: the fast path (module docstring); not with synced_gpus (sharded parameters are gathered by
    hooks a compiled graph would bake in), which falls back to the plain path with a warning.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()  # LLaVA-NeXT pads inside the model by mode; dropout off
    stops = batcher.stop_ids(getattr(model, "generation_config", None))
    texts = [batcher.prompt_text(r) for r in records]  # rendered once: the chat template costs ~0.25 ms each
    order = list(range(len(records)))
    if sort:
        order.sort(key=lambda i: -len(texts[i]))
    if compile and synced_gpus:
        logging.getLogger(__name__).warning("compiled generation is not used with sharded models (synced_gpus)")
        compile = False
    extra = compile_kwargs(model, compile_backend) if compile else {}
    device = next(model.parameters()).device
    results = [None] * len(records)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        pad = [idx[-1]] * (batch_size - len(idx)) if compile else []  # one batch shape: one compiled graph
        batch = batcher.prompts([records[i] for i in idx + pad], [texts[i] for i in idx + pad])
        batch = {k: v.to(device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        if compile:
            extra["max_cache_len"] = _cache_len(batch["input_ids"].shape[1], max_new_tokens)
        out = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                             pad_token_id=batcher.pad_id, eos_token_id=stops, use_cache=True,
                             synced_gpus=synced_gpus, **extra)
        new = out[:len(idx), batch["input_ids"].shape[1]:].tolist()
        for i, tokens in zip(idx, new):
            cut = next((k for k, t in enumerate(tokens) if t in stops), None)
            hit_limit = cut is None and len(tokens) >= max_new_tokens
            tokens = tokens if cut is None else tokens[:cut]
            text = batcher.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            results[i] = {"prediction": text, "tokens": tokens, "hit_limit": hit_limit}
    if was_training:
        model.train()
    return results
