"""Turn a dataset into train/dev/test.jsonl + images/ (the records every other step reads).

A record: {"id", "image": "images/x.png" (optional), "messages": [chat turns without the answer],
"reference": answer as a sentence, "answer": short answer, "qtype": question type}.

Sources:
  easy-vqa  PyPI `easy-vqa`: 64x64 shapes, questions of three types (yes/no, shape, color).
            References are sentences ("The shape is a circle.") so an NLI model can compare them.
            --answer-style word makes the reference the one-word answer (what the demo trains on).
            Also writes baseline.json: the blind question prior (most frequent train answer per
            question string), scored with answer_acc on dev and test (n, Wilson 95% intervals,
            uniform chance per type); blind_<split>.jsonl holds its per-example answers. easy-vqa's yes/no questions are mostly answerable from text alone,
            so only shape/color accuracy above this prior shows that a model uses the image.
  jsonl     your own annotations: --train/--dev/--test jsonl files with {"id"?, "image"?, "question"
            or "prompt" or "messages", "reference" or "answer", "qtype"?} and --image-root for images.
            Images are copied to images/<content hash>-<file name>: two pictures with the same file
            name in different folders stay two pictures (and one picture used twice is one file).

Example:
  python -m bundles.prepare easy-vqa --train-size 2000 --dev-size 96 --test-size 150
"""
import argparse
import collections
import hashlib
import json
import random
import re
import shutil
from pathlib import Path

from bundles.common import ArgParser, existing_path, fail, log, save_args, write_json, write_jsonl

COLORS = ["red", "green", "blue", "black", "gray", "teal", "brown", "yellow"]
SHAPES = ["circle", "rectangle", "triangle"]


def user_turn(question, has_image):
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": question}]
    return [{"role": "user", "content": content}]


def question_type(question, answer):
    if answer in ("yes", "no"):
        return "yesno"
    return "color" if answer in COLORS else "shape"


def answer_sentence(question, answer):
    """easy-vqa's one-word answer as a sentence that states the fact, so NLI can compare texts.

    'is there not a red shape?' + 'yes' -> 'Yes, there is no red shape.'
    """
    if answer in COLORS:
        return f"The shape is {answer}."
    if answer in SHAPES:
        return f"The shape is a {answer}."
    color = next((c for c in COLORS if re.search(rf"\b{c}\b", question)), None)
    shape = next((s for s in SHAPES if re.search(rf"\b{s}\b", question)), None)
    thing = f"{color} shape" if color else shape
    negated = bool(re.search(r"\b(not|no)\b", question))
    exists = (answer == "yes") != negated
    return f"{answer.capitalize()}, there is {'a' if exists else 'no'} {thing}."


def sample_balanced(rows, n, rng):
    """n rows with the question types as equal as possible (easy-vqa is 74% yes/no)."""
    by_type = collections.defaultdict(list)
    for r in rows:
        by_type[r["qtype"]].append(r)
    types = sorted(by_type)
    for t in types:
        rng.shuffle(by_type[t])
    out = []
    i = 0
    while len(out) < n and any(by_type.values()):
        t = types[i % len(types)]
        if by_type[t]:
            out.append(by_type[t].pop())
        i += 1
    rng.shuffle(out)
    return out


def easy_vqa_rows(split):
    import easy_vqa
    questions, answers, image_ids = (easy_vqa.get_train_questions() if split == "train"
                                     else easy_vqa.get_test_questions())
    paths = easy_vqa.get_train_image_paths() if split == "train" else easy_vqa.get_test_image_paths()
    rows = []
    for i, (q, a, img) in enumerate(zip(questions, answers, image_ids)):
        rows.append({"id": f"{split}-{i}", "question": q, "answer": a, "image_id": img,
                     "image_src": paths[img], "qtype": question_type(q, a)})
    return rows


def to_record(row, image_name, answer_style="sentence"):
    """answer_style 'word': the reference (what a model is trained on and scored against) is the
    one-word answer; 'sentence': the answer as a sentence, which NLI can compare but which buries the
    one image-bearing word among tokens copied from the question."""
    sentence = answer_sentence(row["question"], row["answer"])
    return {"id": row["id"], "image": image_name, "messages": user_turn(row["question"], True),
            "question": row["question"], "reference": row["answer"] if answer_style == "word" else sentence,
            "reference_sentence": sentence, "answer": row["answer"], "qtype": row["qtype"]}


def prepare_easy_vqa(args, out):
    rng = random.Random(args.seed)
    train_all = easy_vqa_rows("train")
    # dev questions come from held-out train images, so dev never shares an image with train
    image_ids = sorted({r["image_id"] for r in train_all})
    rng.shuffle(image_ids)
    dev_images = set(image_ids[:args.dev_images])
    pool = {"train": [r for r in train_all if r["image_id"] not in dev_images],
            "dev": [r for r in train_all if r["image_id"] in dev_images],
            "test": easy_vqa_rows("test")}
    sizes = {"train": args.train_size, "dev": args.dev_size, "test": args.test_size}
    (out / "images").mkdir(parents=True, exist_ok=True)
    splits = {}
    for split, rows in pool.items():
        rows = sample_balanced(rows, sizes[split], rng) if args.balance else rng.sample(rows, min(sizes[split], len(rows)))
        records = []
        for r in rows:
            name = f"images/{'test' if split == 'test' else 'train'}-{r['image_id']}.png"
            if not (out / name).exists():
                shutil.copyfile(r["image_src"], out / name)
            records.append(to_record(r, name, args.answer_style))
        write_jsonl(out / f"{split}.jsonl", records)
        splits[split] = records
        log(f"{split}: {len(records)} records", dict(collections.Counter(x["qtype"] for x in records)))
    prior, per_example = question_prior(pool["train"], splits)
    write_json(out / "baseline.json", prior)
    for split, rows in per_example.items():  # the prior's answers, one per record, as score writes a model's
        write_jsonl(out / f"blind_{split}.jsonl", rows)
    return splits


CHANCE = {"yesno": 1 / 2, "shape": 1 / len(SHAPES), "color": 1 / len(COLORS)}


def question_prior(train_rows, splits):
    """Blind baseline: answer each question string with its most frequent train answer (no image),
    scored with answer_acc against the split's own references, exactly as a model's generated answers
    are: per split, answer_acc (+ _<qtype>), n, 95% Wilson intervals, and uniform chance per type.
    ("exact*" is the same number under its older name.)"""
    from bundles.metrics import answer_accuracy, answer_word
    per_example = {}
    counts = collections.defaultdict(collections.Counter)
    overall = collections.Counter(r["answer"] for r in train_rows)
    for r in train_rows:
        counts[r["question"]][r["answer"]] += 1
    result = {}
    for split in ("dev", "test"):
        recs = splits[split]
        guesses = [(counts.get(rec["question"]) or overall).most_common(1)[0][0] for rec in recs]
        agg = answer_accuracy(guesses, [rec["reference"] for rec in recs], [rec["qtype"] for rec in recs])
        res = {"answer_acc": agg["all"]["acc"], "n": agg["all"]["n"]}
        for t, a in agg.items():
            suffix = "" if t == "all" else f"_{t}"
            res.update({f"answer_acc{suffix}": a["acc"], f"n{suffix}": a["n"],
                        f"answer_acc{suffix}_ci_low": a["ci_low"], f"answer_acc{suffix}_ci_high": a["ci_high"]})
            res[f"exact{suffix}"] = a["acc"]
            if t in CHANCE:
                res[f"chance_{t}"] = CHANCE[t]
        res["ci_method"] = "wilson95"
        result[split] = res
        per_example[split] = [{"id": rec["id"], "qtype": rec["qtype"], "prediction": g,
                               "answer_acc": float(g == answer_word(rec["reference"]))} for rec, g in zip(recs, guesses)]
        log(f"blind question prior on {split} (answer_acc):",
            {k: round(v, 3) for k, v in res.items() if k.startswith("answer_acc") and "_ci_" not in k})
    return result, per_example


def read_annotations(src):
    """The rows of an annotation file: one JSON object per line (blank lines skipped). Bytes that are
    not UTF-8, a line that is not JSON, or JSON that is not an object is a one-line error naming the line."""
    rows = []
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        fail("bundles.prepare", f"{src}: cannot read: {e.strerror or e}")
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError as e:
            fail("bundles.prepare", f"{src}:{n}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                                    "save the file as UTF-8")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            fail("bundles.prepare", f"{src}:{n}: not a JSON object: {e}")
        if not isinstance(row, dict):
            fail("bundles.prepare", f"{src}:{n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    if not rows:
        fail("bundles.prepare", f"{src}: no records (the file is empty)")
    return rows


def has_image_part(messages):
    return any(isinstance(m.get("content"), list) and any(isinstance(c, dict) and c.get("type") == "image"
                                                        for c in m["content"]) for m in messages)


def check_image(src_img, where):
    """The file must be a picture PIL can decode: a broken one would only fail mid-training."""
    from PIL import Image, UnidentifiedImageError
    if not src_img.is_file():
        fail("bundles.prepare", f"{where}: image not found: {src_img}")
    try:
        with Image.open(src_img) as im:
            im.verify()
        with Image.open(src_img) as im:  # verify() does not decode the pixels; load() does
            im.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        fail("bundles.prepare", f"{where}: not a readable image: {src_img} ({e})")


def jsonl_record(row, where, split, i, root):
    """One annotation row -> (record, source image path or None); every problem is a one-line error."""
    def text(key):
        v = row.get(key)
        if v is not None and not isinstance(v, str):
            fail("bundles.prepare", f"{where}: '{key}' must be a string, got {json.dumps(v)} (quote it)")
        return v
    image = text("image")
    src_img = None
    if image:
        src_img = Path(root) / image
        check_image(src_img, where)
    if "messages" in row:
        messages = row["messages"]
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in messages)):
            fail("bundles.prepare", f"{where}: 'messages' must be a non-empty list of {{role, content}} turns")
        if messages[-1]["role"] == "assistant":
            fail("bundles.prepare", f"{where}: 'messages' ends with an assistant turn; give the turns before "
                                    "the answer, and the answer as 'reference'")
        if bool(image) != has_image_part(messages):
            fail("bundles.prepare", f"{where}: " + ("'image' is given but no message has an {\"type\": \"image\"} part"
                                                    if image else "a message has an image part but there is no 'image'"))
    else:
        question = text("question") or text("prompt")
        if not (question or "").strip():
            fail("bundles.prepare", f"{where}: needs 'messages', 'question' or 'prompt' (non-empty)")
        messages = user_turn(question, bool(image))
    reference = text("reference") if "reference" in row else text("answer")
    if not (reference or "").strip():
        fail("bundles.prepare", f"{where}: needs a non-empty 'reference' or 'answer'")
    answer, qtype = text("answer"), text("qtype")
    rid = row.get("id", f"{split}-{i}")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or not str(rid).strip():
        fail("bundles.prepare", f"{where}: 'id' must be a non-empty string or an integer, got {json.dumps(rid)}")
    rec = {"id": str(rid), "messages": messages, "reference": reference,
           "answer": reference if answer is None else answer, "qtype": qtype or "all"}
    return rec, src_img


def prepare_jsonl(args, out):
    """Users' own annotations -> the same record format; images are copied into images/.

    Every file is read and checked before anything is written, so a mistake on the last line of the
    test file leaves no half-prepared folder."""
    splits, sources = {}, {}
    for split in ("train", "dev", "test"):
        src = getattr(args, split)
        if not src:
            continue
        if not Path(src).is_file():
            fail("bundles.prepare", f"--{split} {src}: not a file")
        records, images, seen = [], [], {}
        for i, (n, row) in enumerate(read_annotations(src)):
            where = f"{src}:{n}"
            rec, src_img = jsonl_record(row, where, split, i, args.image_root or Path(src).parent)
            if rec["id"] in seen:  # per-example scores, eval_ids and paired tests join on the id
                fail("bundles.prepare", f"{where}: duplicate id {rec['id']!r} (also on line {seen[rec['id']]})")
            seen[rec["id"]] = n
            records.append(rec)
            images.append(src_img)
        if len({img is None for img in images}) > 1:
            n_with = sum(img is not None for img in images)
            fail("bundles.prepare", f"{src}: {n_with} of {len(images)} records have an image and the others do not; "
                                    "a split must be all with images or all without (batches cannot mix them)")
        splits[split], sources[split] = records, images
    for split, records in splits.items():
        for rec, src_img in zip(records, sources[split]):
            if src_img is not None:
                # named by content, not by basename: a/cat.png and b/cat.png must not overwrite each other
                digest = hashlib.sha256(src_img.read_bytes()).hexdigest()[:16]
                rec["image"] = f"images/{digest}-{src_img.name}"
                (out / "images").mkdir(parents=True, exist_ok=True)
                if not (out / rec["image"]).exists():
                    shutil.copyfile(src_img, out / rec["image"])
        write_jsonl(out / f"{split}.jsonl", records)
        log(f"{split}: {len(records)} records")
    return splits


def main(argv=None):
    p = ArgParser(prog="bundles.prepare", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", choices=["easy-vqa", "jsonl"], help="dataset to prepare")
    p.add_argument("--out", default=".", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--train-size", type=int, default=4000, help="easy-vqa: train questions to keep")
    p.add_argument("--dev-size", type=int, default=200, help="easy-vqa: dev questions to keep")
    p.add_argument("--test-size", type=int, default=200, help="easy-vqa: test questions to keep")
    p.add_argument("--dev-images", type=int, default=400, help="easy-vqa: train images held out for dev")
    p.add_argument("--answer-style", choices=["sentence", "word"], default="sentence",
                   help="easy-vqa: reference answers as sentences (NLI-comparable) or the one-word answer")
    p.add_argument("--no-balance", dest="balance", action="store_false",
                   help="easy-vqa: sample questions uniformly instead of equal numbers per question type")
    p.add_argument("--train", type=existing_path, help="jsonl: training annotations")
    p.add_argument("--dev", type=existing_path, help="jsonl: dev annotations")
    p.add_argument("--test", type=existing_path, help="jsonl: test annotations")
    p.add_argument("--image-root", type=existing_path,
                   help="jsonl: folder the 'image' paths are relative to (default: the jsonl's folder)")
    args = p.parse_args(argv)
    for name in ("train_size", "dev_size", "test_size", "dev_images"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.source == "jsonl" and not (args.train or args.dev or args.test):
        p.error("the jsonl source needs at least one of --train, --dev, --test")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = prepare_easy_vqa(args, out) if args.source == "easy-vqa" else prepare_jsonl(args, out)
    save_args(out, args)  # last: a folder with args.json was prepared completely
    return splits


if __name__ == "__main__":
    main()
