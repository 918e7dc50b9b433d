"""Metrics on generated text: exact match, token F1, and NLI entailment with any NLI model.

Every metric maps (predictions, references) to one dict of per-example scores in [0, 1]. Pick them by
name (`--metrics exact,token_f1,nli,answer_acc`); `score_rows` adds means overall and per question type.

answer_acc: answer-level accuracy. The answer word (yes/no, a color, a shape: `ANSWER_WORDS`) is taken
from the prediction and from the reference, each the first answer word in the text, so "Yes, there is
no red shape." and "yes" both answer "yes"; a text without one keeps its whole normalized text (so
on other data answer_acc is normalized exact match). It scores sentence and one-word answers alike,
and a blind prior's one-word answers the same way (`answer_accuracy` aggregates: k, n, mean and a
95% Wilson interval, overall and per question type).

NLI (`NLIScorer`): any AutoModelForSequenceClassification NLI model; the entailment and contradiction
columns are read from `config.id2label` (models disagree on label order). Both directions are scored:
  nli_entail      P(entail | premise=reference, hypothesis=prediction)   is the prediction supported?
  nli_entail_rev  P(entail | premise=prediction, hypothesis=reference)   is the reference covered?
  nli_bidir       min of the two (soft semantic equivalence, Kuhn et al. 2023)
  nli_contra      max P(contradiction) over the two directions
Texts of several sentences are scored SummaC-ZS style: each hypothesis sentence takes its best
premise sentence, then the mean over hypothesis sentences (no 512-token truncation of paragraphs).
A pair longer than the model's limit loses premise tokens first (see `NLIScorer.encode`).
Empty predictions score worst on every NLI metric (entailment 0, contradiction 1) without calling
the model, and `nli_empty` (1 per empty prediction) counts them.
The model runs on the GPU when one is visible (this process's LOCAL_RANK device), else on the CPU.
"""
import os
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


# RoBERTa-family models number positions from pad_token_id + 1: that many fewer fit
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text")


def default_device():
    """This process's GPU when one is visible (LOCAL_RANK under torchrun), else the CPU."""
    import torch
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


class NLIScorer:
    def __init__(self, path, batch_size=64, max_length=256, device=None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
        if info["missing_keys"]:
            # transformers would initialise them at random with a warning: every score would be noise
            raise ValueError(f"NLI model {path} has no trained classification head (its weights lack "
                             f"{', '.join(sorted(info['missing_keys'])[:4])}); it was saved as "
                             f"{(model.config.architectures or ['?'])[0]}, not as a sequence classifier")
        labels = {i: l.lower() for i, l in model.config.id2label.items()}
        self.entail = self._label_index(labels, "entail")
        self.contra = self._label_index(labels, "contra")
        self.device = torch.device(device) if device else default_device()
        self.model = model.to(self.device).eval()
        self.max_length = min(max_length, self.model_limit(model.config, self.tokenizer))
        self.batch_size, self.torch = batch_size, torch

    @staticmethod
    def model_limit(config, tokenizer):
        """The most tokens one input may have: position embeddings, and the tokenizer's own limit."""
        limit = getattr(config, "max_position_embeddings", None) or 10 ** 6
        if config.model_type in _OFFSET_POSITIONS and config.pad_token_id is not None:
            limit -= config.pad_token_id + 1
        return min(limit, tokenizer.model_max_length or limit)

    @staticmethod
    def _label_index(labels, prefix):
        hits = [int(i) for i, l in labels.items() if l.startswith(prefix)]
        if len(hits) != 1:
            raise ValueError(f"NLI model's id2label {labels} has no single '{prefix}*' label; "
                             "set config.id2label to names such as entailment/neutral/contradiction")
        return hits[0]

    def encode(self, premises, hypotheses):
        """Token batches for pairs, each at most max_length tokens. The premise is cut first: the
        score is whether the hypothesis (a claim that was made) follows, so the hypothesis must stay
        whole; cutting the premise only removes evidence, which can lower entailment but never makes
        a cut-off claim look supported. A hypothesis too long on its own is cut too (longest first),
        instead of crashing. Yields (indices, encoding)."""
        room = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True) - 1  # >= 1 premise token
        hyp_lens = [len(x) for x in self.tokenizer(hypotheses, add_special_tokens=False)["input_ids"]]
        groups = {"only_first": [i for i, n in enumerate(hyp_lens) if n <= room],
                  "longest_first": [i for i, n in enumerate(hyp_lens) if n > room]}
        for strategy, idx in groups.items():
            if idx:
                # right padding whatever the saved tokenizer says: encoders with absolute positions (BERT)
                # number from column 0, so left padding would make a score depend on its batch-mates
                yield idx, self.tokenizer([premises[i] for i in idx], [hypotheses[i] for i in idx], padding=True,
                                          padding_side="right", truncation=strategy, max_length=self.max_length,
                                          return_tensors="pt")

    def probs(self, premises, hypotheses):
        """(P(entail), P(contradict)) per pair, batched."""
        pe, pc = [0.0] * len(premises), [0.0] * len(premises)
        with self.torch.no_grad():
            for s in range(0, len(premises), self.batch_size):
                for idx, enc in self.encode(premises[s:s + self.batch_size], hypotheses[s:s + self.batch_size]):
                    p = self.model(**enc.to(self.device)).logits.float().softmax(-1).cpu()
                    for k, i in enumerate(idx):
                        pe[s + i], pc[s + i] = p[k, self.entail].item(), p[k, self.contra].item()
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
        # an empty prediction is the worst answer: nothing entailed, and no "no contradiction" credit
        out = {k: [0.0] * len(preds) for k in ("nli_entail", "nli_entail_rev", "nli_bidir")}
        out["nli_contra"] = [1.0] * len(preds)
        out["nli_empty"] = [1.0] * len(preds)
        for slot, i in enumerate(keep):
            fwd, rev = e[slot], e[n + slot]
            out["nli_entail"][i] = fwd
            out["nli_entail_rev"][i] = rev
            out["nli_bidir"][i] = min(fwd, rev)
            out["nli_contra"][i] = max(c[slot], c[n + slot])
            out["nli_empty"][i] = 0.0
        return out


# easy-vqa's answers (bundles.prepare.COLORS / SHAPES): the words answer_acc extracts
ANSWER_WORDS = ("yes", "no", "red", "green", "blue", "black", "gray", "teal", "brown", "yellow",
                "circle", "rectangle", "triangle")


def answer_word(text, vocabulary=ANSWER_WORDS):
    """The first answer word of a text ("The shape is a circle." -> "circle"); a text without one
    gives its whole normalized form ("" for an empty text)."""
    words = normalize(text).split()
    return next((w for w in words if w in vocabulary), " ".join(words))


def answer_acc(preds, refs):
    """1 where the prediction's answer word is the reference's (an empty prediction is wrong)."""
    out = []
    for p, r in zip(preds, refs):
        pw = answer_word(p)
        out.append(float(bool(pw) and pw == answer_word(r)))
    return {"answer_acc": out}


def wilson(k, n, confidence=0.95):
    """Wilson score interval of k successes in n (scipy.stats.binomtest); (nan, nan) for n = 0."""
    if not n:
        return float("nan"), float("nan")
    from scipy.stats import binomtest
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def answer_accuracy(preds, refs, qtypes=None):
    """Aggregate of answer_acc: {"all": {...}, "<qtype>": {...}} with k, n, acc, ci_low, ci_high
    (95% Wilson interval over the examples)."""
    hits = answer_acc(preds, refs)["answer_acc"]
    qtypes = list(qtypes) if qtypes else ["all"] * len(hits)
    groups = {"all": list(range(len(hits)))}
    for t in sorted(set(qtypes) - {"all"}):
        groups[t] = [i for i, q in enumerate(qtypes) if q == t]
    out = {}
    for name, idx in groups.items():
        k, n = int(sum(hits[i] for i in idx)), len(idx)
        lo, hi = wilson(k, n)
        out[name] = {"k": k, "n": n, "acc": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi}
    return out


TEXT_METRICS = {"exact": exact, "token_f1": token_f1, "answer_acc": answer_acc}


def build_metrics(names, nli_model=None, device=None):
    """Metric callables by name; 'nli' needs the path of an NLI model (device: default_device())."""
    fns = []
    for name in names:
        if name == "nli":
            if not nli_model:
                raise ValueError("metric 'nli' needs an NLI model (--nli-model)")
            fns.append(NLIScorer(nli_model, device=device))
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
