"""Tiny models built in code for tests/bundles (a module of its own: test files cannot import from
`conftest`, whose name pytest gives to every directory's conftest.py)."""
import torch


def build(kind, out, data_dir, *extra):
    from bundles import models
    models.main([kind, "--out", str(out), "--data", str(data_dir), "--hidden-size", "64", "--layers", "2",
                 "--vision-hidden", "32", "--patch-size", "16", *extra])
    return out


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
