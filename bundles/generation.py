"""Batched greedy generation: left-padded prompts (+ pixel_values), prompt stripped, cut at EOS.

This is the one generation routine of the package: the eval loop inside training, `bundles.infer`
and the benchmarks all call `generate`, so what is selected on dev is what is reported on test.
"""
import torch


def unwrap(model):
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def generate(model, batcher, records, batch_size=32, max_new_tokens=16, sort=True):
    """Returns one dict per record: {"prediction": text, "tokens": generated ids (EOS excluded)}.

    Records are sorted by prompt length so each batch pads little; results come back in input order.
    """
    model = unwrap(model)
    was_training = model.training
    model.eval()  # LLaVA-NeXT pads inside the model by mode; dropout off
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
                             pad_token_id=batcher.pad_id, eos_token_id=batcher.eos_id, use_cache=True)
        new = out[:, batch["input_ids"].shape[1]:].tolist()
        for i, tokens in zip(idx, new):
            if batcher.eos_id in tokens:
                tokens = tokens[:tokens.index(batcher.eos_id)]
            text = batcher.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            results[i] = {"prediction": text, "tokens": tokens}
    if was_training:
        model.train()
    return results
