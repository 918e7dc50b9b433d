"""Metrics on generated text: exact match, token F1, and NLI entailment with any NLI model.

Every metric maps (predictions, references) to one dict of per-example scores in [0, 1]. Pick them by
name (`--metrics exact,token_f1,nli`); `score_rows` adds means overall and per question type.

NLI (`NLIScorer`): any AutoModelForSequenceClassification NLI model; the entailment and contradiction
columns are read from `config.id2label` (models disagree on label order). Both directions are scored:
  nli_entail      P(entail | premise=reference, hypothesis=prediction)   is the prediction supported?
  nli_entail_rev  P(entail | premise=prediction, hypothesis=reference)   is the reference covered?
  nli_bidir       min of the two (soft semantic equivalence, Kuhn et al. 2023)
  nli_contra      max P(contradiction) over the two directions
Texts of several sentences are scored SummaC-ZS style: each hypothesis sentence takes its best
premise sentence, then the mean over hypothesis sentences (no 512-token truncation of paragraphs).
Empty predictions score 0 on every metric, without calling the model.
"""
import re
import string
from collections import Counter, defaultdict

_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text):
    return " ".join(text.lower().translate(_PUNCT).split())


def exact(preds, refs):
    return {"exact": [float(bool(p.strip()) and normalize(p) == normalize(r)) for p, r in zip(preds, refs)]}


def token_f1(preds, refs):
    scores = []
    for p, r in zip(preds, refs):
        pt, rt = normalize(p).split(), normalize(r).split()
        common = sum((Counter(pt) & Counter(rt)).values())
        scores.append(0.0 if common == 0 else 2 * common / (len(pt) + len(rt)))
    return {"token_f1": scores}


def sentences(text):
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    return parts or [text.strip()]


class NLIScorer:
    def __init__(self, path, batch_size=64, max_length=256, device=None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        if device:
            self.model.to(device)
        labels = {i: l.lower() for i, l in self.model.config.id2label.items()}
        self.entail = self._label_index(labels, "entail")
        self.contra = self._label_index(labels, "contra")
        self.batch_size, self.max_length, self.torch = batch_size, max_length, torch

    @staticmethod
    def _label_index(labels, prefix):
        hits = [int(i) for i, l in labels.items() if l.startswith(prefix)]
        if len(hits) != 1:
            raise ValueError(f"NLI model's id2label {labels} has no single '{prefix}*' label; "
                             "set config.id2label to names such as entailment/neutral/contradiction")
        return hits[0]

    def probs(self, premises, hypotheses):
        """(P(entail), P(contradict)) per pair, batched."""
        pe, pc = [], []
        device = next(self.model.parameters()).device
        with self.torch.no_grad():
            for s in range(0, len(premises), self.batch_size):
                enc = self.tokenizer(premises[s:s + self.batch_size], hypotheses[s:s + self.batch_size], padding=True,
                                     truncation="only_first", max_length=self.max_length, return_tensors="pt")
                p = self.model(**enc.to(device)).logits.float().softmax(-1)
                pe += p[:, self.entail].tolist()
                pc += p[:, self.contra].tolist()
        return pe, pc

    def directional(self, premises, hypotheses):
        """SummaC-ZS over sentences: for each hypothesis sentence the best-supporting premise sentence."""
        pairs, owners = [], []
        for k, (prem, hyp) in enumerate(zip(premises, hypotheses)):
            ps, hs = sentences(prem), sentences(hyp)
            for j, h in enumerate(hs):
                for p in ps:
                    pairs.append((p, h))
                    owners.append((k, j))
        pe, pc = self.probs([a for a, _ in pairs], [b for _, b in pairs]) if pairs else ([], [])
        best_e, best_c = defaultdict(float), defaultdict(float)
        for (k, j), e, c in zip(owners, pe, pc):
            best_e[k, j] = max(best_e[k, j], e)
            best_c[k, j] = max(best_c[k, j], c)
        entail, contra = [], []
        for k, hyp in enumerate(hypotheses):
            n = len(sentences(hyp))
            entail.append(sum(best_e[k, j] for j in range(n)) / n)
            contra.append(max(best_c[k, j] for j in range(n)))
        return entail, contra

    def __call__(self, preds, refs):
        keep = [i for i, p in enumerate(preds) if p.strip()]
        ps, rs = [preds[i] for i in keep], [refs[i] for i in keep]
        # one batched pass for both directions
        e, c = self.directional(rs + ps, ps + rs)
        n = len(keep)
        out = {k: [0.0] * len(preds) for k in ("nli_entail", "nli_entail_rev", "nli_bidir", "nli_contra")}
        for slot, i in enumerate(keep):
            fwd, rev = e[slot], e[n + slot]
            out["nli_entail"][i] = fwd
            out["nli_entail_rev"][i] = rev
            out["nli_bidir"][i] = min(fwd, rev)
            out["nli_contra"][i] = max(c[slot], c[n + slot])
        return out


TEXT_METRICS = {"exact": exact, "token_f1": token_f1}


def build_metrics(names, nli_model=None):
    """Metric callables by name; 'nli' needs the path of an NLI model."""
    fns = []
    for name in names:
        if name == "nli":
            if not nli_model:
                raise ValueError("metric 'nli' needs an NLI model (--nli-model)")
            fns.append(NLIScorer(nli_model))
        elif name in TEXT_METRICS:
            fns.append(TEXT_METRICS[name])
        else:
            raise ValueError(f"unknown metric {name!r}; choose from {sorted(TEXT_METRICS) + ['nli']}")
    return fns


def score_rows(metric_fns, preds, refs, qtypes=None):
    """Per-example scores and their means, overall and per question type (key suffix `_<type>`)."""
    per = {}
    for fn in metric_fns:
        per.update(fn(preds, refs))
    rows = [{k: v[i] for k, v in per.items()} for i in range(len(preds))]
    means = {k: sum(v) / max(len(v), 1) for k, v in per.items()}
    if qtypes and len(set(qtypes)) > 1:
        for t in sorted(set(qtypes)):
            idx = [i for i, q in enumerate(qtypes) if q == t]
            for k, v in per.items():
                means[f"{k}_{t}"] = sum(v[i] for i in idx) / len(idx)
    return means, rows
