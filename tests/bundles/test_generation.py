"""Batched left-padded generation equals one-at-a-time generation, token for token; training batches."""
import pytest
import torch

from bundles.batching import Batcher, answer_loss, load_records
from bundles.generation import generate
from bundles.loading import load_model


@pytest.fixture(scope="module", params=["tiny_vlm", "tiny_lm"])
def model_and_batcher(request, data_dir):
    model, processor = load_model(request.getfixturevalue(request.param))
    return model, Batcher(processor, data_dir)


def test_batched_generation_equals_per_example(model_and_batcher, data_dir):
    model, batcher = model_and_batcher
    records = load_records(data_dir, "dev")  # three question types -> prompts of different lengths
    assert len({len(batcher.prompt_text(r)) for r in records}) > 3
    batched = generate(model, batcher, records, batch_size=8, max_new_tokens=6)
    single = generate(model, batcher, records, batch_size=1, max_new_tokens=6)
    assert [b["tokens"] for b in batched] == [s["tokens"] for s in single]
    assert all(len(b["tokens"]) > 0 for b in batched)


def test_generation_strips_the_prompt(model_and_batcher, data_dir):
    model, batcher = model_and_batcher
    rec = load_records(data_dir, "dev")[0]
    enc = batcher.prompts([rec])
    out = model.generate(**enc, do_sample=False, max_new_tokens=4, pad_token_id=batcher.pad_id)
    ours = generate(model, batcher, [rec], max_new_tokens=4)[0]["tokens"]
    new = out[0, enc["input_ids"].shape[1]:].tolist()
    assert ours == new[:len(ours)] and len(ours) <= 4


def test_training_batch_puts_labels_on_the_answer_only(model_and_batcher, data_dir):
    model, batcher = model_and_batcher
    records = load_records(data_dir, "train", 6)
    batch = batcher.training(records)
    for i, rec in enumerate(records):
        answer = batcher.answer_ids(rec)
        labels = batch["labels"][i]
        assert labels[-len(answer):].tolist() == answer  # left padding: the answer ends every row
        assert (labels[:-len(answer)] == -100).all()
        assert batch["input_ids"][i, -len(answer):].tolist() == answer
        assert batcher.tokenizer.decode(answer, skip_special_tokens=True).strip() == rec["reference"]
    pos = batch["position_ids"]
    assert (pos[batch["attention_mask"].bool()].min() == 0) and pos[:, -1].tolist() == (batch["attention_mask"].sum(1) - 1).tolist()


def test_answer_loss_equals_full_head_loss(model_and_batcher, data_dir):
    model, batcher = model_and_batcher
    batch = batcher.training(load_records(data_dir, "train", 6))
    with torch.no_grad():
        fast = answer_loss(model, batch)
        full = model(**batch).loss
    assert torch.allclose(fast, full, atol=1e-5)
