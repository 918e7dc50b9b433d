"""Examples side by side: each test question with its image, the reference and every model's answer,
right or wrong, filterable by question type and verdict (`% display examples`, `codalite serve`'s
/examples page).

Built from score bundles (bundles.score or anything writing the same files), following their
dependencies, nothing copied: the score bundle's per_example.jsonl (id, qtype, the metric per
example), the dependency holding predictions.jsonl (id, prediction, reference), and that bundle's
(or the score bundle's) dependency holding the split's records (<split>.jsonl with id, question,
image: bundles.prepare's folder, the split named by the predictions bundle's args.json).
An answer is right when its metric value is 1 (answer_acc and exact are 0/1 per example).
"""

import json
import os
from dataclasses import dataclass, field

from ..errors import CodaliteError
from ..table import format_table

MAX_ROWS = 100_000
MAX_BYTES = 256 << 20  # per file: a page never reads an unbounded run output
MAX_MODELS = 20  # score bundles compared on one page: each costs reading three such files
METRICS = ("answer_acc", "exact")  # the default verdict metric: the first one the file has
VERDICTS = ("all", "right", "wrong", "disagree")


@dataclass
class Model:
    uuid: str
    label: str
    answers: dict  # id -> (prediction, value of the metric or None)
    shuffled: dict = field(default_factory=dict)  # id -> the image the model was shown instead (control)
    problem: str | None = None  # why it has no answers (shown, never silent)


@dataclass
class Example:
    id: str
    qtype: str | None
    question: str
    reference: str
    image: tuple | None  # (bundle uuid, path inside it)
    answers: list  # per model: (prediction, right: True/False/None)


@dataclass
class ExamplesBlock:
    models: list
    examples: list  # the page shown (filtered, offset, limit)
    total: int  # how many match the filters
    count: int  # how many there are
    qtypes: list
    metric: str | None
    filters: dict
    mode: str = "examples"


def read_jsonl(store, bundle, path):
    """The objects of a JSON-lines file in the bundle: at most MAX_ROWS of them and MAX_BYTES read;
    lines that are not JSON objects (half-written, nested past the parser's depth) are skipped."""
    full = store.path_in(bundle, path)
    rows, left = [], MAX_BYTES
    with open(full, "rb") as f:
        while len(rows) < MAX_ROWS and left > 0:
            line = f.readline(left)
            if not line:
                break
            left -= len(line)
            try:
                r = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(r, dict):
                rows.append(r)
    return rows


def text(v):
    """A value from a run's JSON as text: records are a run's output and may hold anything (a list,
    a number, null); everything shown, filtered and sorted is a string."""
    if v is None:
        return ""
    return v if isinstance(v, str) else json.dumps(v)


def inside(base, image):
    """base/image when it names a file under the data bundle's own folder, else None: an image path
    recorded by a run (`../other`, `/etc/passwd`) must not make a page show another bundle's file."""
    if not isinstance(image, str) or not image or image.startswith("/"):
        return None
    path = os.path.normpath(os.path.join(base, image))
    return None if path == ".." or path.startswith(("../", "/")) else path


def dep_with(store, bundle, name):
    """(parent bundle, path of `name` in it) for the first dependency whose target holds `name`."""
    for d in bundle.dependencies:
        try:
            parent = store.get(d.parent_uuid)
        except CodaliteError:
            continue
        path = os.path.join(d.parent_path or "", name)
        try:
            if os.path.isfile(store.path_in(parent, path)):
                return parent, path
        except CodaliteError:
            continue
    return None


def split_of(store, preds_bundle, preds_path):
    try:
        with open(store.path_in(preds_bundle, os.path.join(os.path.dirname(preds_path), "args.json")), "rb") as f:
            args = json.loads(f.read(1 << 20))
        return str(args.get("split") or "test")
    except (CodaliteError, OSError, ValueError, AttributeError, RecursionError):
        return "test"


def load(store, bundles, metric=None):
    """(models, examples in the order of the first model's predictions, metric used)."""
    models, records, order = [], {}, []
    for b in bundles:
        m = Model(b.uuid, b.name or b.uuid[:10], {})
        models.append(m)
        try:
            per = read_jsonl(store, b, "per_example.jsonl")
        except (CodaliteError, OSError):
            m.problem = "no per_example.jsonl"
            continue
        if metric is None:
            metric = next((k for k in METRICS if per and k in per[0]), None)
        found = dep_with(store, b, "predictions.jsonl")
        if found is None:
            m.problem = "no dependency holding predictions.jsonl"
            continue
        preds_bundle, preds_path = found
        preds = {str(r.get("id")): r for r in read_jsonl(store, preds_bundle, preds_path)}
        values = {str(r.get("id")): r.get(metric) for r in per}
        for pid, r in preds.items():
            m.answers[pid] = (text(r.get("prediction")), values.get(pid))
            if pid not in records:
                records[pid] = {"id": pid, "qtype": text(r.get("qtype")) or None, "reference": text(r.get("reference"))}
                order.append(pid)
        try:
            m.shuffled = {str(r.get("id")): text(r.get("image")) for r in
                          read_jsonl(store, preds_bundle, os.path.join(os.path.dirname(preds_path), "shuffled_images.jsonl"))}
        except (CodaliteError, OSError):
            pass
        split = split_of(store, preds_bundle, preds_path)
        data = dep_with(store, preds_bundle, f"{split}.jsonl") or dep_with(store, b, f"{split}.jsonl")
        if data:
            data_bundle, data_path = data
            base = os.path.dirname(data_path)
            for r in read_jsonl(store, data_bundle, data_path):
                rec = records.get(str(r.get("id")))
                if rec is not None and "question" not in rec:
                    rec["question"] = text(r.get("question"))
                    rec["reference"] = rec["reference"] or text(r.get("reference"))
                    rec["qtype"] = rec["qtype"] or text(r.get("qtype")) or None
                    image = inside(base, r.get("image"))
                    if image:
                        rec["image"] = (data_bundle.uuid, image)
    examples = []
    for pid in order:
        rec = records[pid]
        answers = []
        for m in models:
            pred, v = m.answers.get(pid, (None, None))
            answers.append((pred, None if not isinstance(v, (int, float)) or isinstance(v, bool) else v >= 1))
        examples.append(Example(pid, rec.get("qtype"), rec.get("question", ""), rec.get("reference", ""),
                                rec.get("image"), answers))
    return models, examples, metric


def keep(e, verdict, model):
    marks = [a[1] for a in e.answers] if model is None else [e.answers[model][1]]
    if verdict == "right":
        return all(v is True for v in marks)
    if verdict == "wrong":
        return any(v is False for v in marks)
    if verdict == "disagree":
        return len({v for v in marks if v is not None}) > 1
    return True


def block(store, bundles, metric=None, qtype=None, verdict="all", model=None, offset=0, limit=50):
    """An ExamplesBlock: the filtered page. model: index of the model the verdict applies to (None: right =
    every model right, wrong = any model wrong, disagree = the models differ)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    if len(bundles) > MAX_MODELS:
        raise ValueError(f"at most {MAX_MODELS} score bundles, not {len(bundles)}: compare fewer models at once")
    models, examples, metric = load(store, bundles, metric)
    if model is not None and not 0 <= model < len(models):
        raise ValueError(f"model must be a number from 0 to {len(models) - 1}")
    qtypes = sorted({e.qtype for e in examples if e.qtype})
    chosen = [e for e in examples if (not qtype or e.qtype == qtype) and keep(e, verdict, model)]
    return ExamplesBlock(models, chosen[offset:offset + limit], len(chosen), len(examples), qtypes, metric,
                         {"qtype": qtype or "", "verdict": verdict, "model": model, "offset": offset, "limit": limit})


def text_lines(b, width=100):
    """The block in a terminal: one row per question, ✓/✗ after each model's answer."""
    def mark(a):
        pred, ok = a
        return "" if pred is None else f"{pred} {'✓' if ok else '✗' if ok is False else '?'}"
    header = ["id", "qtype", "question", "reference"] + [m.label for m in b.models]
    rows = [[e.id, e.qtype or "", e.question, e.reference] + [mark(a) for a in e.answers] for e in b.examples]
    notes = [f"{m.label}: {m.problem}" for m in b.models if m.problem]
    head = [f"[examples: {len(b.examples)} of {b.total} shown ({b.count} in all); right = {b.metric} is 1]"]
    return head + notes + format_table(header, rows, width=width, rule=True, bold=False)


class _Image:  # what render's image_src expects of a block
    def __init__(self, uuid, path):
        self.uuid, self.path = uuid, path


def page_url(links, b, **change):
    """The serve page of these models with these filters (and a change)."""
    from urllib.parse import urlencode
    f = {**b.filters, **change}
    q = [("b", m.uuid) for m in b.models] + [(k, f[k]) for k in ("qtype", "verdict", "model", "offset")
                                              if f.get(k) not in (None, "", "all", 0)]
    if b.metric:
        q.append(("metric", b.metric))
    return f"{links.base}/examples?{urlencode(q)}"


def to_html(b, links, image_src, more_link=True):
    """The block as an HTML table: every value escaped (questions and answers are a run's output)."""
    import markupsafe
    esc = markupsafe.escape
    out = [f"<div class='block examples'><p class='examples-note'>{len(b.examples)} of {b.total} shown "
           f"({b.count} in all); right: {esc(b.metric or '?')} = 1"]
    if more_link:
        out.append(f" · <a class='examples-link' href='{esc(page_url(links, b))}'>open filterable page</a>")
    out.append("</p>")
    out += [f"<p class='error'>{esc(m.label)}: {esc(m.problem)}</p>" for m in b.models if m.problem]
    out.append("<table class='examples'><thead><tr><th>image</th><th>question</th><th>reference</th>")
    out += [f"<th><a href='{esc(links.bundle(m.uuid))}'>{esc(m.label)}</a></th>" for m in b.models]
    out.append("</tr></thead><tbody>")
    for e in b.examples:
        img = ""
        if e.image:
            src = image_src(_Image(*e.image))
            img = f"<img src='{esc(src)}' alt='{esc(e.id)}' width='64' height='64'>" if src else ""
        out.append(f"<tr data-id='{esc(e.id)}' data-qtype='{esc(e.qtype or '')}'><td>{img}</td>"
                   f"<td>{esc(e.question)}<br><span class='qtype'>{esc(e.qtype or '')} {esc(e.id)}</span></td>"
                   f"<td class='reference'>{esc(e.reference)}</td>")
        for m, (pred, ok) in zip(b.models, e.answers):
            cls = "right" if ok else "wrong" if ok is False else "unknown"
            mark = "✓" if ok else "✗" if ok is False else ""
            seen = m.shuffled.get(e.id)
            note = f"<br><span class='shown'>shown {esc(os.path.basename(seen))}</span>" if seen else ""
            out.append(f"<td class='answer {cls}'>{esc('' if pred is None else pred)} {mark}{note}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return markupsafe.Markup("".join(out))
