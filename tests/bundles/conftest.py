"""Fixtures: a small prepared easy-vqa folder and tiny models built in code (seconds, no hub)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: builds the real SmolLM2 VLM from its GGUF (~1 min)")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    from bundles import prepare
    out = tmp_path_factory.mktemp("data")
    prepare.main(["easy-vqa", "--out", str(out), "--train-size", "96", "--dev-size", "24", "--test-size", "24",
                  "--dev-images", "50"])
    return out


def build(kind, out, data_dir, *extra):
    from bundles import models
    models.main([kind, "--out", str(out), "--data", str(data_dir), "--hidden-size", "64", "--layers", "2",
                 "--vision-hidden", "32", "--patch-size", "16", *extra])
    return out


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory, data_dir):
    return build("tiny-vlm", tmp_path_factory.mktemp("tiny_vlm"), data_dir)


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, data_dir):
    return build("tiny-lm", tmp_path_factory.mktemp("tiny_lm"), data_dir)


def tiny_nli(out, id2label):
    """A random 3-way BERT cross-encoder with the real MiniLM WordPiece tokenizer and a chosen label order."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from bundles.nli_train import encoder_path
    tok = AutoTokenizer.from_pretrained(encoder_path())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=37, num_labels=3, id2label=id2label,
                     label2id={v: k for k, v in id2label.items()})
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def nli_model(tmp_path_factory):
    return tiny_nli(tmp_path_factory.mktemp("nli"), {0: "contradiction", 1: "entailment", 2: "neutral"})


def with_adapter(model):
    """A random LoRA adapter on q/v (init_lora_weights=False: B is random too, so it changes the outputs)."""
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(1)
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))


def varied(model):
    """The saved tiny models (init std 0.02) answer every prompt with the same token; larger random
    weights make the tokens depend on the prompt, so comparisons of generated tokens can fail."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return model


def save_varied(src, out):
    from bundles.loading import load_model
    model, processor = load_model(src)
    varied(model).save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def varied_vlm(tiny_vlm, tmp_path_factory):
    """The tiny VLM with large random weights (answers that differ between prompts), saved."""
    return save_varied(tiny_vlm, tmp_path_factory.mktemp("varied_vlm"))


@pytest.fixture(scope="session")
def varied_lm(tiny_lm, tmp_path_factory):
    """The tiny LM with large random weights, saved."""
    return save_varied(tiny_lm, tmp_path_factory.mktemp("varied_lm"))
