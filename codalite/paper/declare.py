r"""Paper table declarations: YAML beside a worksheet (`*.yaml`), or fenced ```paper blocks in it.

    name: nli                      # file names: nli.tex, nli.md, nli.csv, nli.provenance.json
    caption: NLI entailment by model and LoRA rank
    bundles: [name=train%]         # which bundles: `codalite search` keywords (ready ones only)
    rows: {model: /args.json:model}          # independent variables: label -> genpath
    columns: {rank: /args.json:lora_r}
    value: /scores.json:nli_entail           # the number in each cell
    over: {seed: /args.json:seed}  # optional: the variables aggregated over (newest bundle wins
                                   # when two share every variable, e.g. a forced rerun)
    aggregate: mean_sd             # mean ± sample sd, n shown; or mean
    format: "%.3f"
    best: max                      # bold the best per column: max, min, or none
    examples:                      # optional: per-example values behind each bundle's value
      file: /per_example.jsonl     #   a JSON-lines file in the bundle (bundles.score writes it)
      value: exact                 #   the column holding each example's value
      where: {qtype: color}        #   only the rows whose columns equal these
    interval: bootstrap            # 95% interval in each cell: bootstrap (over examples, and over
                                   # seeds where a cell has several), wilson (0/1 values, one
                                   # bundle per cell), or none
    baseline: blind                # optional: mark cells that differ from this row's cell
    test: paired_bootstrap         # the paired test over the same examples: or mcnemar

Figures (training curves) are declared beside the tables, under `figures:`:

    figures:
      - name: curves               # curves.svg (Markdown embeds it), curves.tex (\input it), curves.csv
        caption: Training loss     # LaTeX, passed through
        bundles: [name=finetune-%] # which bundles, as for tables (ready ones only)
        file: /log_history.json    # a JSON log in each bundle (curves.py reads it)
        x: step
        y: [loss, eval_loss]       # one line per bundle and key
        label: name                # the legend's name of each bundle: a genpath (newest bundle wins
                                   # when two share a label, e.g. a forced rerun)
"""

import os
import re
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import spec
from ..errors import UsageError


class Examples(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field("/per_example.jsonl", pattern=r"^/")
    value: str
    where: dict[str, str] = {}
    id: str = "id"

    @field_validator("where", mode="before")
    @classmethod
    def as_text(cls, v):  # `{seed: 1}` in YAML is a number; the file's values are compared as text
        return {k: str(x) for k, x in v.items()} if isinstance(v, dict) else v


def _keywords(bundles: list[str]) -> list[str]:
    """The search, limited to finished bundles and not capped at CodaLab's default 10 (nor at any
    page: `_whole_set` refuses .limit/.offset)."""
    kws = list(bundles)
    if not any(k.startswith("state=") for k in kws):
        kws.append("state=ready")
    return kws + [f".limit={spec.INDEX_MAX}"]


def _whole_set(kws: list[str]) -> list[str]:
    """A table aggregates every bundle its keywords select. Search options that pick a page of them
    (.limit, .offset, .last: CodaLab's newest 10) or turn them into a number (.count, =.sum, .format)
    would make it average some runs and say all: refused. Sorting (key=.sort) cannot: rows and
    columns have their own order. Only ready bundles have numbers that cannot change."""
    for raw in kws:
        kw = raw.replace(".*", "%")
        key, eq, value = kw.partition("=")
        if kw in (".count", ".last") or (eq and (key in (".limit", ".offset", ".format") or value == ".sum")):
            raise ValueError(f"{raw!r} picks a page or a count of the search, not a set of bundles: the table would "
                             "average only some runs and not say so; select bundles with keywords (name=, tags=, "
                             ".after=, ...) instead (key=.sort is allowed: the table orders its rows itself)")
        if eq and key == "state" and value != "ready":
            raise ValueError(f"{raw!r}: a table's numbers come from ready bundles only (others change or have none); "
                             "drop it")
    return kws


def _words(v: str | list[str]) -> list[str]:
    return v.split() if isinstance(v, str) else v


class _Declared(BaseModel):
    """What tables and figures share: a name, a caption and the whole set of bundles they read."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    caption: str = ""
    bundles: list[str] = Field(min_length=1)  # none would select every ready bundle of the store

    @field_validator("bundles", mode="before")
    @classmethod
    def split_keywords(cls, v):
        return _words(v)

    @field_validator("bundles")
    @classmethod
    def whole_set(cls, v):
        return _whole_set(v)

    def keywords(self):
        return _keywords(self.bundles)


class TableSpec(_Declared):
    rows: dict[str, str] = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)
    value: str
    over: dict[str, str] = {}
    aggregate: Literal["mean_sd", "mean"] = "mean_sd"
    format: str = "%.3f"
    best: Literal["max", "min", "none"] = "max"
    examples: Examples | None = None
    interval: Literal["none", "bootstrap", "wilson"] = "none"
    baseline: str | None = None
    test: Literal["paired_bootstrap", "mcnemar"] = "paired_bootstrap"

    @model_validator(mode="after")
    def needs_examples(self):
        if self.examples is None and (self.interval != "none" or self.baseline is not None):
            raise ValueError("an interval or a baseline test is computed from per-example values: "
                             "declare `examples: {file: /per_example.jsonl, value: COLUMN}`")
        return self

    @field_validator("format")
    @classmethod
    def printf(cls, v):
        try:
            spec.check_printf(v)
        except UsageError as e:
            raise ValueError(str(e)) from None
        try:
            v % 1.5
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not a printf format for one number, like %.3f") from None
        return v


class FigureSpec(_Declared):
    """A training-curve figure: one line per selected bundle and y key, read from a JSON log."""

    file: str = Field("/log_history.json", pattern=r"^/.*\.(json|jsonl)$")
    x: str = "step"
    y: list[str] = Field(min_length=1)
    label: str = "name"
    xlabel: str | None = None
    ylabel: str | None = None

    @field_validator("y", mode="before")
    @classmethod
    def split_keys(cls, v):  # `y: loss,eval_loss` as in `% display graph`
        return [k.strip() for k in v.split(",") if k.strip()] if isinstance(v, str) else v


FENCE_RE = re.compile(r"^```paper\s*\n(.*?)^```\s*$", re.S | re.M)


def _validate(data: dict, where: str, kind: type[TableSpec] | type[FigureSpec] = TableSpec) -> TableSpec | FigureSpec:
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or ("table" if kind is TableSpec else "figure")
        raise UsageError(f"{where}: {loc}: {err['msg']}") from None


def parse_declarations(text: str, where: str) -> list[TableSpec | FigureSpec]:
    """YAML text (one table, or `tables: [...]` and/or `figures: [...]`) -> [TableSpec | FigureSpec]."""
    from ..recipes.schema import load_yaml

    try:
        data = load_yaml(text)  # refuses duplicated keys, which YAML would silently keep the last of
    except yaml.YAMLError as e:
        raise UsageError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    figures: list = []
    if isinstance(data, dict) and ("tables" in data or "figures" in data):
        other = sorted(set(data) - {"tables", "figures"})
        if other:  # a misspelt `figure:` would otherwise be dropped without a word
            raise UsageError(f"{where}: unknown key {other[0]!r} beside tables/figures")
        figures = data.get("figures") or []
        if not isinstance(figures, list) or not all(isinstance(d, dict) for d in figures):
            raise UsageError(f"{where}: `figures:` is a list of figures (mappings)")
        data = data.get("tables") or []
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(d, dict) for d in items):
        raise UsageError(f"{where}: expected a table (a mapping) or `tables:` with a list of them")
    specs = [_validate(d, f"{where}: table {i}" if len(items) > 1 else where) for i, d in enumerate(items)]
    specs += [_validate(d, f"{where}: figure {i}", FigureSpec) for i, d in enumerate(figures)]
    if not specs:
        raise UsageError(f"{where}: declares no table and no figure")
    return specs


def _unique(specs: list[TableSpec | FigureSpec], where: str) -> list[TableSpec | FigureSpec]:
    """Two declarations of one name would write the same files, the second silently replacing the first."""
    seen = set()
    for s in specs:
        if s.name in seen:
            raise UsageError(f"{where}: two tables or figures are named {s.name!r}; their files would collide")
        seen.add(s.name)
    return specs


def load(path: str) -> list[TableSpec | FigureSpec]:
    """Declarations from a .yaml file, or from ```paper fences in a .ws worksheet."""
    if not os.path.isfile(path):
        raise UsageError(f"no such declaration file: {path}")
    from ..recipes.schema import read_text

    text = read_text(path, lambda line, message: UsageError(f"{path}:{line}: {message}"))
    if path.endswith(".ws"):
        blocks = FENCE_RE.findall(text)
        if not blocks:
            raise UsageError(f"{path}: no ```paper block declares a table")
        return _unique([t for i, b in enumerate(blocks)
                        for t in parse_declarations(b, f"{path}: paper block {i + 1}")], path)
    return _unique(parse_declarations(text, path), path)
