"""Records -> model inputs, for one model's processor (VLM) or tokenizer (text-only LM).

Two views of the same records:
  prompts(records)   prompt-only, LEFT-padded, with pixel_values: what generate() needs. With left
                     padding every prompt ends at the same column, so the generated tokens of every
                     row start at input_ids.shape[1] and the prompt is stripped by slicing.
  training(records)  prompt + reference + end-of-turn token, also left-padded, labels = -100 except the answer,
                     explicit position_ids (= what generate() uses for left-padded rows, so training
                     and generation see the same positions). The answer sits at the end of every row,
                     which lets the loss look at the last few positions only (answer_loss).
"""
from pathlib import Path

import torch


def load_records(data_dir, split, limit=None):
    from bundles.common import read_jsonl
    records = read_jsonl(Path(data_dir) / f"{split}.jsonl")
    return records[:limit] if limit else records


class Batcher:
    def __init__(self, processor, data_dir=".", max_length=None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.is_vlm = hasattr(processor, "image_processor")
        self.data_dir = Path(data_dir)
        self.max_length = max_length
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.turn_ends = turn_end_ids(processor, self.tokenizer)
        self.flatten = not self.is_vlm and parts_render_as_repr(processor)

    @property
    def pad_id(self):
        return self.tokenizer.pad_token_id

    @property
    def eos_id(self):
        return self.tokenizer.eos_token_id

    @property
    def end_id(self):
        """The token that ends an answer: the chat template's end of turn, else EOS."""
        return self.turn_ends[0] if self.turn_ends else self.eos_id

    def stop_ids(self, generation_config=None):
        """Every token that ends a generated answer: EOS, the template's end of turn (Llama-3 ends
        turns with <|eot_id|>, not its EOS) and the model's generation_config EOS list."""
        extra = getattr(generation_config, "eos_token_id", None)
        extra = extra if isinstance(extra, list) else [extra]
        ids = [self.eos_id, *self.turn_ends, *extra]
        return list(dict.fromkeys(i for i in ids if i is not None))

    def prompt_text(self, rec):
        if "prompt" in rec and "messages" not in rec:
            return rec["prompt"]
        messages = rec["messages"]
        if self.flatten:  # a text-only template that takes string content only (see parts_render_as_repr)
            messages = [{**m, "content": m["content"] if isinstance(m["content"], str) else
                         "".join(c.get("text", "") for c in m["content"] if c.get("type") == "text")} for m in messages]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def image(self, rec):
        from PIL import Image
        return Image.open(self.data_dir / rec["image"]).convert("RGB")

    def prompts(self, records, texts=None):
        texts = texts or [self.prompt_text(r) for r in records]
        kwargs = dict(padding=True, padding_side="left", return_tensors="pt")
        if self.is_vlm:
            images = [self.image(r) for r in records if r.get("image")]
            if images and len(images) != len(records):
                raise ValueError("a batch mixes records with and without images")
            return dict(self.processor(text=texts, images=images or None, **kwargs))
        return dict(self.tokenizer(texts, **kwargs))

    def over_length(self, records, chunk=64):
        """(answers that --max-length cuts, prompts longer than it on their own) over these records: a
        cut answer loses its end-of-turn token too (so it is trained not to stop there), and a prompt
        over the limit is kept whole with one answer token, so its row exceeds the limit."""
        cut = over = 0
        for s in range(0, len(records), chunk):
            part = records[s:s + chunk]
            prompt_lens = self.prompts(part)["attention_mask"].sum(-1).tolist()
            for rec, n in zip(part, prompt_lens):
                cut += n + len(self.answer_ids(rec)) > self.max_length
                over += n >= self.max_length
        return cut, over

    def answer_ids(self, rec):
        return self.tokenizer(rec["reference"], add_special_tokens=False)["input_ids"] + [self.end_id]

    def training(self, records):
        enc = self.prompts(records)
        rows, labels = [], []
        for i, rec in enumerate(records):
            prompt = enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist()
            answer = self.answer_ids(rec)
            if self.max_length and len(prompt) + len(answer) > self.max_length:
                answer = answer[:max(self.max_length - len(prompt), 1)]  # keep the prompt: image tokens must stay whole
            rows.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        label_ids = torch.full((len(rows), width), -100, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (r, l) in enumerate(zip(rows, labels)):
            input_ids[i, width - len(r):] = torch.tensor(r)
            label_ids[i, width - len(l):] = torch.tensor(l)
            mask[i, width - len(r):] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask, "labels": label_ids,
                 "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
        if "pixel_values" in enc:
            batch["pixel_values"] = enc["pixel_values"]
        return batch

    __call__ = training  # a Trainer data_collator


def parts_render_as_repr(processor):
    """True when the chat template writes list-of-parts content ([{"type": "text", ...}], what prepare
    writes) as its Python repr: text-only templates (Llama-3, Gemma...) take string content only, and
    the model would be prompted with "[{'type': 'text', 'text': 'What is it?'}]"."""
    msgs = [{"role": "user", "content": [{"type": "text", "text": "Xq7Marker"}]}]
    try:
        text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    except Exception:  # a template that refuses lists takes strings
        return True
    return "'type'" in text or '"type"' in text


def turn_end_ids(processor, tokenizer):
    """The special token(s) the chat template writes right after an assistant message, found by
    rendering one with a marker text: [] when the template ends turns with plain text or has none.

    Both content forms are tried, list parts (VLM templates) and a plain string: a text-only template
    (Llama-3, Gemma, Phi-3...) renders list parts as their Python repr, "[{'type': 'text', ...}]", so
    the marker is followed by "'}]" and not by the end-of-turn token; the first form that puts a
    special token after the marker wins. Whitespace between the text and the token is skipped."""
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    marker = "Xq7Marker"
    for content in ([{"type": "text", "text": marker}], marker):
        msgs = [{"role": "user", "content": content}, {"role": "assistant", "content": content}]
        try:
            text = processor.apply_chat_template(msgs, tokenize=False)
        except Exception:  # no template, or one that only takes the other content form
            continue
        if not text or marker not in text:
            continue
        tail = tokenizer(text.rsplit(marker, 1)[1].lstrip(), add_special_tokens=False)["input_ids"]
        if tail and tail[0] in special:
            return tail[:1]
    return []


def answer_loss(model, batch, num_items=None):
    """Cross-entropy on the answer tokens, computing the vocabulary head only over the last K
    positions (K = longest answer + 1). Same value as `labels=` with the full head, which for a
    49k vocabulary over every image+prompt position costs ~20% of a step.

    num_items: answer tokens in the whole accumulated batch (Trainer's num_items_in_batch). The sum
    is divided by it, so gradient accumulation over micro-batches gives the loss of one big batch;
    without it, the mean over this batch."""
    labels = batch["labels"]
    answer_cols = (labels != -100).any(0).nonzero()
    keep = labels.shape[1] - int(answer_cols[0]) + 1 if len(answer_cols) else 1
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, logits_to_keep=keep).logits[:, :-1].float()
    target = labels[:, labels.shape[1] - keep + 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           ignore_index=-100, reduction="sum")
    return loss / (num_items if num_items is not None else (target != -100).sum())
