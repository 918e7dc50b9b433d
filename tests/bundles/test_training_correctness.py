"""Training and generation correctness on tiny real models: gradient accumulation, load dtype and bf16,
checkpoints as model folders, infer == eval loop, stop tokens, eval subset, length cap, --epochs."""
import json

import pytest
import torch

from bundles import finetune, infer
from bundles.batching import Batcher, load_records
from bundles.common import read_jsonl
from bundles.generation import generate
from bundles.loading import load_model


def history(out):
    return json.loads((out / "log_history.json").read_text())


@pytest.mark.parametrize("loss_flag", [[], ["--full-head-loss"]], ids=["answer-loss", "full-head-loss"])
def test_grad_accum_2x4_equals_one_batch_of_8(tiny_vlm, data_dir, tmp_path, loss_flag):
    logged = {}
    for ga, bs in [(2, 4), (1, 8)]:
        out = tmp_path / f"ga{ga}"
        finetune.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--out", str(out), "--lora-r", "4",
                       "--steps", "2", "--batch-size", str(bs), "--grad-accum", str(ga), "--eval-steps", "0",
                       "--metrics", "exact", *loss_flag])
        logged[ga] = [(h["loss"], h["grad_norm"]) for h in history(out) if "loss" in h]
    assert len(logged[1]) == 2
    for (loss2, norm2), (loss1, norm1) in zip(logged[2], logged[1]):
        assert loss2 == pytest.approx(loss1, rel=1e-4) and norm2 == pytest.approx(norm1, rel=1e-3)


@pytest.fixture(scope="module")
def fp16_vlm(tmp_path_factory, tiny_vlm):
    """The tiny VLM saved in float16, as llava-1.5-7b-hf is: transformers 5 loads it in fp16 by default."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    out = tmp_path_factory.mktemp("vlm_fp16")
    AutoModelForImageTextToText.from_pretrained(tiny_vlm, dtype=torch.float16).save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_vlm).save_pretrained(out)
    assert json.loads((out / "config.json").read_text())["text_config"]["dtype"] == "float16"
    return out


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory, fp16_vlm, data_dir):
    out = tmp_path_factory.mktemp("ft_bf16")
    finetune.main(["--model", str(fp16_vlm), "--data", str(data_dir), "--out", str(out), "--bf16", "--lora-r", "4",
                   "--train-projector", "--steps", "4", "--batch-size", "8", "--eval-steps", "2", "--eval-size", "24",
                   "--max-new-tokens", "24", "--metrics", "exact,token_f1", "--best-metric", "token_f1",
                   "--lr", "2e-2", "--save-total-limit", "3"])
    return out


def test_bf16_lora_trains_from_an_fp16_checkpoint(bf16_run):
    assert [h["step"] for h in history(bf16_run) if "eval_loss" in h] == [0, 2, 4]
    from safetensors.torch import load_file
    weights = load_file(str(bf16_run / "adapter" / "adapter_model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float32}  # fp32 master weights, not fp16


@pytest.mark.parametrize("step", [2, 4])
def test_infer_bf16_on_a_checkpoint_equals_the_eval_loop(bf16_run, fp16_vlm, data_dir, tmp_path, step):
    """Merging the adapter (into bf16 weights, or into fp32 ones then autocast) changed 2-3 of these 24
    answers at step 2 when this test was written: infer must generate as the eval loop did."""
    ckpt = bf16_run / "checkpoints" / f"checkpoint-{step}"
    assert (ckpt / "tokenizer.json").exists() and (ckpt / "processor_config.json").exists()
    infer.main(["--model", str(fp16_vlm), "--adapter", str(ckpt), "--data", str(data_dir), "--split", "dev",
                "--bf16", "--max-new-tokens", "24", "--batch-size", "32", "--out", str(tmp_path)])
    during = {r["id"]: r for r in read_jsonl(bf16_run / "predictions" / f"eval-step{step}.jsonl")}
    preds = read_jsonl(tmp_path / "predictions.jsonl")
    assert len(preds) == len(during) == 24
    assert [p["prediction"] for p in preds] == [during[p["id"]]["prediction"] for p in preds]


def test_a_full_finetune_checkpoint_is_a_model_folder_for_infer(tiny_vlm, data_dir, tmp_path):
    run = tmp_path / "run"
    finetune.main(["--model", str(tiny_vlm), "--data", str(data_dir), "--out", str(run), "--full", "--steps", "2",
                   "--batch-size", "8", "--eval-steps", "2", "--eval-size", "24", "--max-new-tokens", "5",
                   "--metrics", "exact", "--best-metric", "exact", "--no-eval-on-start"])
    infer.main(["--model", str(run / "checkpoints" / "checkpoint-2"), "--data", str(data_dir), "--split", "dev",
                "--max-new-tokens", "5", "--out", str(tmp_path / "inf")])
    during = {r["id"]: r["prediction"] for r in read_jsonl(run / "predictions" / "eval-step2.jsonl")}
    assert [p["prediction"] for p in read_jsonl(tmp_path / "inf" / "predictions.jsonl")] == list(during.values())


EOT_TEMPLATE = (  # a Llama-3-like template: every turn ends with its own token, not with EOS
    "{% for m in messages %}{{ m['role'] }}: {% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot|>\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def test_generation_stops_at_the_templates_end_of_turn_token(tiny_lm, data_dir):
    model, tok = load_model(tiny_lm)
    tok.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    tok.chat_template = EOT_TEMPLATE
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    eot = tok.convert_tokens_to_ids("<|eot|>")
    batcher = Batcher(tok, data_dir)
    assert batcher.stop_ids() == [tok.eos_token_id, eot] and batcher.end_id == eot  # answers are trained to end so
    model.generation_config.eos_token_id = [tok.eos_token_id, 7]
    assert batcher.stop_ids(model.generation_config) == [tok.eos_token_id, eot, 7]
    model.generation_config.eos_token_id = tok.eos_token_id

    records = load_records(data_dir, "dev", 8)
    free = generate(model, batcher, records, batch_size=1, max_new_tokens=10)  # <|eot|> is never argmax yet
    # make <|eot|> the greedy choice wherever the most frequent generated token was (tied head: 1.05x its logit)
    top = max(set(t for f in free for t in f["tokens"]), key=lambda t: sum(f["tokens"].count(t) for f in free))
    with torch.no_grad():
        model.get_output_embeddings().weight[eot] = 1.05 * model.get_output_embeddings().weight[top]
    ours = generate(model, batcher, records, batch_size=1, max_new_tokens=10)
    stopped = 0
    for rec, o in zip(records, ours):
        enc = batcher.prompts([rec])
        raw = model.generate(**enc, do_sample=False, max_new_tokens=10, pad_token_id=batcher.pad_id,
                             eos_token_id=tok.eos_token_id)[0, enc["input_ids"].shape[1]:].tolist()
        if eot in raw:
            cut = raw.index(eot)
            assert o["tokens"] == raw[:cut] and not o["hit_limit"]
            stopped += cut < len(raw) - 1  # the single-EOS generate() would have gone on after the turn ended
        else:
            assert o["tokens"] == raw[:len(o["tokens"])]
    assert stopped > 0


def test_eval_subset_is_seeded_random_and_fixed(data_dir):
    dev = load_records(data_dir, "dev")
    a, b = finetune.eval_subset(dev, 8, 0), finetune.eval_subset(dev, 8, 0)
    assert a == b and len(a) == 8 and a != dev[:8]
    assert finetune.eval_subset(dev, 8, 1) != a
    assert [dev.index(r) for r in a] == sorted(dev.index(r) for r in a)  # file order kept
    assert finetune.eval_subset(dev, 100, 0) == dev


def test_epochs_subset_ids_and_length_cap_are_in_the_outputs(tiny_lm, data_dir, tmp_path):
    finetune.main(["--model", str(tiny_lm), "--data", str(data_dir), "--out", str(tmp_path), "--full",
                   "--epochs", "0.5", "--train-size", "32", "--batch-size", "4", "--grad-accum", "2",
                   "--eval-steps", "2", "--eval-size", "8", "--max-new-tokens", "2", "--metrics", "exact",
                   "--best-metric", "exact", "--seed", "3"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2  # ceil(0.5 * 32 / (4 * 2))
    assert json.loads((tmp_path / "args.json").read_text())["steps"] == 2
    ids = json.loads((tmp_path / "eval_ids.json").read_text())
    assert ids == [r["id"] for r in finetune.eval_subset(load_records(data_dir, "dev"), 8, 3)]
    rows = read_jsonl(tmp_path / "predictions" / "eval-step2.jsonl")
    assert [r["id"] for r in rows] == ids
    hit = sum(r["hit_limit"] for r in rows)
    assert hit == sum(r["gen_len"] == 2 for r in rows) and hit > 0  # a random model rarely stops within 2 tokens
    assert metrics["eval_gen_hit_limit"] == hit


def test_steps_and_epochs_are_exclusive(tiny_lm, data_dir, capsys):
    with pytest.raises(SystemExit) as e:
        finetune.parse_args(["--model", str(tiny_lm), "--data", str(data_dir), "--steps", "3", "--epochs", "1",
                            "--metrics", "exact"])
    assert e.value.code == 2 and "not both" in capsys.readouterr().err


TEMPLATES = {  # text-only templates as their models ship them (content rendered as a string), and VLM-style
    "llama3": ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}"
               "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
               "{% endif %}", ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>"),
    "gemma": ("{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
              "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n"
              "{% endif %}", ["<start_of_turn>", "<end_of_turn>"], "<end_of_turn>"),
    "phi3": ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|assistant|>\n{% endif %}", ["<|user|>", "<|assistant|>", "<|end|>"], "<|end|>"),
    "chatml_space": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }} <|im_end|>\n{% endfor %}",
                     ["<|im_start|>", "<|im_end|>"], "<|im_end|>"),
    "smollm2_vlm": (None, [], "<|im_end|>"),
    "tiny (plain-text turns)": ("", [], None),
}


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_end_of_turn_token_is_found_for_each_template(tiny_lm, name):
    """Text-only templates render list-of-parts content as its Python repr, so the first rendering put
    "'}]" after the marker and Llama-3/Gemma/Phi-3 templates got no end-of-turn token: generation ran on
    past <|eot_id|> to --max-new-tokens, and training ended answers with EOS, which the template never writes."""
    from transformers import AutoTokenizer
    from bundles.batching import turn_end_ids
    from bundles.models import SMOL_TEMPLATE
    template, specials, want = TEMPLATES[name]
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    if name == "smollm2_vlm":
        tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
        template = SMOL_TEMPLATE
    elif specials:
        tok.add_special_tokens({"additional_special_tokens": specials})
    if template:
        tok.chat_template = template
    got = turn_end_ids(tok, tok)
    assert got == ([tok.convert_tokens_to_ids(want)] if want else []), tok.convert_ids_to_tokens(got)


@pytest.mark.parametrize("name", ["llama3", "gemma", "phi3", "tiny (plain-text turns)"])
def test_text_only_templates_are_prompted_with_the_question_not_its_repr(tiny_lm, name):
    """prepare writes list-of-parts content; a text-only template renders a list as its Python repr, so a
    Llama-3-style LM was trained and evaluated on "[{'type': 'text', 'text': 'What is it?'}]" prompts."""
    from transformers import AutoTokenizer
    template, specials, _ = TEMPLATES[name]
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    if specials:
        tok.add_special_tokens({"additional_special_tokens": specials})
    if template:
        tok.chat_template = template
    rec = {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}]}], "reference": "A cat."}
    text = Batcher(tok, ".").prompt_text(rec)
    assert "What is it?" in text and "'type'" not in text and "{" not in text
    assert text == tok.apply_chat_template([{"role": "user", "content": "What is it?"}], add_generation_prompt=True,
                                           tokenize=False)


def test_max_length_says_how_many_training_answers_it_cuts(tiny_lm, data_dir, tmp_path):
    """--max-length cut answers (and their end-of-turn token, so those answers learn not to stop) without
    a word; now metrics.json counts them, and the count is that of rows longer than the cap."""
    _, tok = load_model(tiny_lm)
    train = load_records(data_dir, "train", 16)
    full = Batcher(tok, data_dir).training(train)["attention_mask"].sum(-1).tolist()
    cap = sorted(full)[len(full) // 2]
    expected = sum(n > cap for n in full)
    assert 0 < expected < len(full)
    finetune.main(["--model", str(tiny_lm), "--data", str(data_dir), "--out", str(tmp_path), "--lora-r", "2",
                   "--steps", "1", "--batch-size", "4", "--train-size", "16", "--eval-steps", "0", "--metrics", "exact",
                   "--max-length", str(cap)])
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["train_answers_cut"] == expected and m["train_prompts_over_max_length"] == 0
