"""Load a base model folder (or hub id) with its processor/tokenizer, optionally with a LoRA adapter."""
from pathlib import Path


def is_vlm(path):
    from transformers import AutoConfig
    return hasattr(AutoConfig.from_pretrained(path), "vision_config")


def load_base(path, dtype=None, device=None):
    """(model, processor): AutoModelForImageTextToText + AutoProcessor for VLMs, causal LM + tokenizer otherwise."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    kwargs = {"dtype": dtype} if dtype is not None else {}
    if is_vlm(path):
        model, processor = AutoModelForImageTextToText.from_pretrained(path, **kwargs), AutoProcessor.from_pretrained(path)
    else:
        model, processor = AutoModelForCausalLM.from_pretrained(path, **kwargs), AutoTokenizer.from_pretrained(path)
    if device:
        model.to(device)
    return model, processor


def adapter_dir(path):
    """A finetune output folder holds its adapter in adapter/; accept either."""
    path = Path(path)
    if (path / "adapter_config.json").exists():
        return path
    if (path / "adapter" / "adapter_config.json").exists():
        return path / "adapter"
    raise FileNotFoundError(f"no LoRA adapter (adapter_config.json) in {path} or {path / 'adapter'}")


def load_model(path, adapter=None, dtype=None, device=None):
    model, processor = load_base(path, dtype, device)
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, str(adapter_dir(adapter)))
    return model.eval(), processor
