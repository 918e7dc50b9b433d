"""Batched greedy generation: left-padded prompts (+ pixel_values), prompt stripped, cut at a stop token.

This is the one generation routine of the package: the eval loop inside training, `bundles.infer`
and the benchmarks all call `generate` (inside `precision(...)`), so what is selected on dev is
generated on test with the same numerics.
"""
import contextlib

import torch


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def precision(model, bf16):
    """--bf16 means fp32 weights under bf16 autocast, as Trainer trains: the eval loop generates this
    way, so infer must too (bf16 *weights*, or an adapter merged into them, round differently)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=torch.bfloat16)


@torch.no_grad()
def generate(model, batcher, records, batch_size=32, max_new_tokens=256, sort=True, synced_gpus=False):
    """Returns one dict per record: {"prediction": text, "tokens": generated ids (stop token excluded),
    "hit_limit": True when max_new_tokens ran out before a stop token (the answer is truncated)}.

    Records are sorted by prompt length so each batch pads little; results come back in input order.
    synced_gpus: every rank keeps stepping until all ranks are done (sharded models gather layers
    collectively, so a rank that stopped early would leave the others waiting forever).
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()  # LLaVA-NeXT pads inside the model by mode; dropout off
    stops = batcher.stop_ids(getattr(model, "generation_config", None))
    texts = [batcher.prompt_text(r) for r in records]  # rendered once: the chat template costs ~0.25 ms each
    order = list(range(len(records)))
    if sort:
        order.sort(key=lambda i: -len(texts[i]))
    device = next(model.parameters()).device
    results = [None] * len(records)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = batcher.prompts([records[i] for i in idx], [texts[i] for i in idx])
        batch = {k: v.to(device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        out = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                             pad_token_id=batcher.pad_id, eos_token_id=stops, use_cache=True,
                             synced_gpus=synced_gpus)
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        for i, tokens in zip(idx, new):
            cut = next((k for k, t in enumerate(tokens) if t in stops), None)
            hit_limit = cut is None and len(tokens) >= max_new_tokens
            tokens = tokens if cut is None else tokens[:cut]
            text = batcher.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            results[i] = {"prediction": text, "tokens": tokens, "hit_limit": hit_limit}
    if was_training:
        model.train()
    return results
