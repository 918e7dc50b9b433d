"""Plan and run a recipe: which step x cell is done, missing, stale, failed or running, and
submitting only what is missing or stale (memoization returns the rest at once).

A cell is *done* when a ready bundle has the memo key its current inputs give; *stale* when an
earlier bundle of that cell exists but its inputs (code, data, environment) have changed since;
*failed* when the newest try with these inputs failed (only --retry-failed reruns it).
"""

from __future__ import annotations

import enum
import itertools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import memo, spec
from ..bundle import FAILED, KILLED, READY, Bundle
from ..errors import UsageError
from ..hashing import hash_path
from .schema import Recipe, RecipeError, cell_name, render

if TYPE_CHECKING:
    from ..store import Store

DONE, MISSING, STALE, FAILED_, RUNNING, BLOCKED = "done", "missing", "stale", "failed", "running", "blocked"


class Dep(NamedTuple):
    """A cell's dependency: ./key is an upload (kind "upload", cell = the upload's name) or a cell
    of another step (kind "step", name = the step, cell = that cell's name), at subpath."""
    key: str
    kind: str
    name: str
    cell: str
    subpath: str


@dataclass
class GridCell:
    """One cell of a recipe's grid: a step with one combination of its variables, and its status."""

    step: str
    values: dict[str, Any]
    name: str
    command: str
    status: str = MISSING
    bundle: Bundle | None = None  # the bundle behind the status, if any
    deps: list[Dep] = field(default_factory=list)
    inputs: dict[str, Any] | None = None  # the memo inputs, once plan knows them (every upstream cell done)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())


class Outcome(enum.Enum):
    """What `submit` did with a cell."""
    NOT_SUBMITTED = "not submitted"  # failed or blocked without --retry-failed, or a step left out by `only`
    MEMO_HIT = "memo hit"  # done already (the plan found it, or memoization returned a twin)
    NEW = "new"  # a new run was created


class Submitted(NamedTuple):
    cell: GridCell
    bundle: Bundle | None  # None only when the cell was not submitted and never ran
    outcome: Outcome

    @property
    def submitted(self) -> bool:
        return self.outcome is not Outcome.NOT_SUBMITTED


def _render(recipe: Recipe, step: str, field: str, text: str, values: dict[str, Any]) -> str:
    """A template of a step for one cell; what fails while evaluating it (a division by zero, an
    undefined attribute, a sandbox limit, a loop that does not end, gigabytes built) is the recipe's
    mistake, named with step and cell."""
    try:
        return render(text, values)
    except Exception as e:  # noqa: BLE001 (any error raised by the user's template expression)
        cell = _shown(values) if values else "its only cell"
        raise _cell_error(recipe, step, field, f"the template fails for {cell}: {type(e).__name__}: {e}") from None


def _deps(recipe: Recipe, step: str, values: dict[str, Any]) -> list[Dep]:
    out = []
    for key, target in recipe.steps[step].deps.items():
        base, _, sub = target.partition("/")
        if base in recipe.uploads:
            out.append(Dep(key, "upload", base, base, sub))
        else:
            proj = {v: values[v] for v in recipe.step_vars[base]}
            out.append(Dep(key, "step", base, cell_name(base, proj), sub))
    return out


# a command runs as `bash -c COMMAND`: Linux refuses one argument longer than this (MAX_ARG_STRLEN)
MAX_COMMAND_BYTES = 131_071


def _recipe_error(recipe: Recipe, key: str, message: str) -> RecipeError:
    """A mistake the planner finds, named as the loader names its own: the recipe file, then the key."""
    return RecipeError(os.path.relpath(recipe.path) if recipe.path else recipe.name, None, key, message)


def _cell_error(recipe: Recipe, step: str, field: str, message: str) -> RecipeError:
    return _recipe_error(recipe, f"steps.{step}.{field}", message)


def _shown(values: dict[str, Any]) -> str:
    """A cell's values for a message: quoted when blank or spaced, long ones cut."""
    def one(v: Any) -> str:
        text = repr(v) if isinstance(v, str) and (not v.strip() or not v.isprintable() or " " in v) else str(v)
        return text if len(text) <= 40 else text[:30] + f"... ({len(text):,} characters)"
    return " ".join(f"{k}={one(v)}" for k, v in values.items()) or "(its only cell)"


def _whose(step: str, values: dict[str, Any]) -> str:
    return f"step {step} {_shown(values)}"


def cells(recipe: Recipe) -> list[GridCell]:
    """Every step x cell, in dependency order. Refuses (before anything runs) what would fail or
    mix cells up halfway through a run: two cells with one bundle name (names keep only letters,
    digits, _ and ., so `a b` and `a_b` meet), a name too long, an empty or too long command."""
    out: list[GridCell] = []
    owner: dict[str, str | dict[str, Any]] = {name: f"upload {name}" for name in recipe.uploads}  # name -> whose
    for step in recipe.order:
        for values in recipe.step_cells(step):
            cell = GridCell(step, values, cell_name(step, values),
                            _render(recipe, step, "command", recipe.steps[step].command, {**recipe.vars, **values}),
                            deps=_deps(recipe, step, values))
            if cell.name in owner:
                other = owner[cell.name]
                other = other if isinstance(other, str) else f"step {other['step']} {_shown(other['values'])}"
                raise _cell_error(recipe, step, "command", f"{other} and {_whose(step, values)} would both be "
                                  f"named {cell.name} (bundle names keep only letters, digits, _ and .), and each "
                                  "would be taken for the other; give them values or names that differ there")
            owner[cell.name] = {"step": step, "values": values}
            try:
                spec.check_name(cell.name)
            except UsageError as e:
                raise _cell_error(recipe, step, "command", f"{_whose(step, values)}: {e}; shorten its values") from None
            if not cell.command.strip():
                raise _cell_error(recipe, step, "command", f"the command is empty for {_whose(step, values)}")
            if len(cell.command.encode()) > MAX_COMMAND_BYTES:
                raise _cell_error(recipe, step, "command", f"the command for {_whose(step, values)} is "
                                  f"{len(cell.command.encode()):,} bytes; a shell command can have at most "
                                  f"{MAX_COMMAND_BYTES:,}")
            if recipe.steps[step].env:
                env_vars(recipe, cell)  # its templates fail now, not after other cells were submitted
            out.append(cell)
    return out


def cell_labels(recipe: Recipe, cell: GridCell) -> tuple[str, list[str]]:
    """(description, tags) of a cell's bundle: the tags say which recipe, step and cell made it
    (`verify` finds the recipe by them)."""
    description = recipe.steps[cell.step].description or f"recipe {recipe.name}: {cell.step} {cell.label}".strip()
    tags = [f"recipe:{recipe.name}", f"step:{cell.step}"] + [f"{k}={v}" for k, v in cell.values.items()]
    if recipe.profile:  # `verify` plans the cell with the same profile
        tags.append(f"profile:{recipe.profile}")
    return description, tags


def env_vars(recipe: Recipe, cell: GridCell) -> dict[str, str]:
    values, out = {**recipe.vars, **cell.values}, {}
    for k, v in recipe.steps[cell.step].env.items():
        out[k] = _render(recipe, cell.step, f"env.{k}", str(v), values)
        if len(f"{k}={out[k]}".encode()) > MAX_COMMAND_BYTES:  # the same kernel limit as an argument
            raise _cell_error(recipe, cell.step, f"env.{k}", f"the value for {_shown(cell.values)} is "
                              f"{len(out[k].encode()):,} bytes; an environment variable can have at most "
                              f"{MAX_COMMAND_BYTES - len(k) - 1:,}")
    return out


def cell_status(key: str | None, match: Bundle | None, previous: Bundle | None,
                upstream_failed: bool) -> tuple[str, Bundle | None]:
    """A cell's status and the bundle behind it.

    key: the cell's memo key, None while an upstream cell is not done (its inputs are not known).
    match: the ready (else live) bundle with that key. previous: the newest bundle of the cell's
    name. upstream_failed: an upstream cell is failed or blocked.
    """
    if key is None:  # it will (re)run after its upstream cells
        if previous and not previous.final:
            return RUNNING, previous
        if upstream_failed:
            return BLOCKED, previous
        return (STALE, previous) if previous else (MISSING, None)
    if match:
        return (DONE if match.state == READY else RUNNING), match
    if previous and previous.state in (FAILED, KILLED) and previous.memo_key == key:
        return FAILED_, previous  # the newest try with these very inputs failed
    return (STALE, previous) if previous else (MISSING, None)


def plan(store: Store, recipe: Recipe, path_env: str,
         environment: Callable[[Any], str] | None = None) -> list[GridCell]:
    """The status of every cell, without changing anything. environment(step) gives the memo
    key's environment of a step (default: where a local run would run, the store's recorded
    interpreter or the step's docker image, whatever path_env; remote runs differ)."""
    env_of = environment or (lambda step: store.run_environment(step.request.docker_image, path_env))
    for name in recipe.uploads:  # hashing the store itself would take long, and the upload refuses it anyway
        real = os.path.realpath(recipe.upload_path(name))
        if store.overlaps(real):
            raise _recipe_error(recipe, f"uploads.{name}", f"{real} is, holds or is inside the codalite store "
                                f"({store.home}); upload the files you mean, not the store")
    for step_name, step in recipe.steps.items():  # known now for uploads: else the run fails after its siblings
        for dep_key, target in step.deps.items():  # were submitted
            base, _, sub = target.partition("/")
            if base in recipe.uploads and sub and not os.path.lexists(os.path.join(recipe.upload_path(base), sub)):
                raise _cell_error(recipe, step_name, f"deps.{dep_key}",
                                  f"no such path {sub!r} in upload {base} ({recipe.upload_path(base)})")
    upload_hash = {name: hash_path(recipe.upload_path(name)) for name in recipe.uploads}
    done: dict[str, Bundle] = {}  # cell name -> ready bundle with current inputs
    status: dict[str, str] = {}  # cell name -> its status
    result = []
    for step_name, group in itertools.groupby(cells(recipe), key=lambda c: c.step):
        step, group_cells = recipe.steps[step_name], list(group)
        keys = _memo_keys(recipe, step_name, group_cells, upload_hash, done, lambda: env_of(step))
        matches = store.memo_matches(keys.values())  # one query per step, not per cell
        for cell in group_cells:  # a step's cells never depend on each other
            key = keys.get(cell.name)
            match = matches.get(key) if key else None
            previous = None if match else store.newest(cell.name)
            upstream_failed = any(status.get(d.cell) in (FAILED_, BLOCKED) for d in cell.deps if d.kind == "step")
            cell.status, cell.bundle = cell_status(key, match, previous, upstream_failed)
            if cell.status == DONE and match:
                done[cell.name] = match
            status[cell.name] = cell.status
            result.append(cell)
    return result


def _memo_keys(recipe: Recipe, step_name: str, group: list[GridCell], upload_hash: dict[str, str],
               done: dict[str, Bundle], environment: Callable[[], str]) -> dict[str, str]:
    """cell name -> memo key, for the cells of one step whose inputs are all known (every upstream
    cell done); the step's environment is asked for once, and only when a key needs it."""
    step, keys, env = recipe.steps[step_name], {}, None
    for cell in group:
        hashes: list[tuple[str, str | None, str]] = []
        for d in cell.deps:
            if d.kind == "upload":
                hashes.append((d.key, upload_hash[d.name], d.subpath))
            elif d.cell in done:
                hashes.append((d.key, done[d.cell].content_hash, d.subpath))
        if len(hashes) < len(cell.deps):
            continue
        env = env if env is not None else environment()
        cell.inputs = memo.memo_inputs("run", cell.command, hashes, env, env_vars(recipe, cell), step.exclude_patterns)
        keys[cell.name] = memo.memo_key(cell.inputs)
    return keys


def explain(store: Store, planned: list[GridCell]) -> dict[str, list[str]]:
    """cell name -> lines saying why a stale, failed or blocked cell of a plan is not done: what
    differs from the cell's last bundle (command, a dependency's content, the environment and its
    packages, env vars), as `codalite why` says it for a run."""
    by_name = {c.name: c for c in planned}
    out: dict[str, list[str]] = {}
    for cell in planned:
        b = cell.bundle
        if cell.status == BLOCKED:
            bad = [d.cell for d in cell.deps if d.kind == "step" and by_name[d.cell].status in (FAILED_, BLOCKED)]
            out[cell.name] = [f"upstream cell {', '.join(bad)} failed (--retry-failed reruns it)"]
        elif cell.status == FAILED_ and b is not None:
            out[cell.name] = [f"the last try with these inputs, {b.uuid}, ended {b.state}: "
                              + (str(b.metadata.get("failure_message") or "no message").splitlines() or [""])[0]]
        elif cell.status == STALE and cell.inputs is None:
            waiting = [d.cell for d in cell.deps if d.kind == "step" and by_name[d.cell].status != DONE]
            out[cell.name] = [f"its inputs are known once {', '.join(waiting)} {'is' if len(waiting) == 1 else 'are'}"
                              " done, which will rerun first"]
        elif cell.status == STALE and b is not None:
            earlier = (b.runspec or {}).get("memo_inputs")
            lines = memo.explain(cell.inputs, earlier, store.packages_of) if earlier and cell.inputs else []
            out[cell.name] = ([f"changed since {b.uuid} ({b.state}):"] + ["  " + line for line in lines] if lines else []) or [
                f"{b.uuid} ({b.state}) has no memo inputs to compare (pulled or made by an older codalite)"
                if not earlier else f"same inputs as {b.uuid}, which is {b.state}"]
    return out


def cell_parents(cell: GridCell, uploaded: dict[str, str], made: dict[str, str]) -> list[tuple[str, str, str]] | None:
    """[(key, parent uuid, subpath)] of a cell, or None while a parent has no bundle to point at.
    uploaded: upload name -> uuid; made: cell name -> uuid."""
    out = []
    for d in cell.deps:
        parent = uploaded[d.name] if d.kind == "upload" else made.get(d.cell)
        if parent is None:
            return None
        out.append((d.key, parent, d.subpath))
    return out


def upload(store: Store, recipe: Recipe) -> dict[str, str]:
    """Upload (memoized by content) each of the recipe's uploads; upload name -> uuid."""
    uploaded = {}
    for name, u in recipe.uploads.items():
        description = getattr(u, "description", "") or f"recipe {recipe.name}: upload {name}"
        uploaded[name] = store.upload([recipe.upload_path(name)], name=name, description=description)[0].uuid
    return uploaded


def submit(store: Store, recipe: Recipe, path_env: str, retry_failed: bool = False,
           only: Iterable[str] | None = None) -> list[Submitted]:
    """Upload what changed and create the runs of every cell that is not done; memoization makes
    done cells free. Returns what happened to each cell, in dependency order."""
    only = set(only or ())
    planned = plan(store, recipe, path_env)  # first: a cell the recipe cannot make stops it before anything is stored
    uploaded = upload(store, recipe)
    made: dict[str, str] = {}  # cell name -> uuid
    out = []
    for cell in planned:  # the plan's cells carry their status and bundle
        parents = cell_parents(cell, uploaded, made)
        if cell.status == DONE and cell.bundle:  # the plan found the ready bundle for these exact inputs
            made[cell.name] = cell.bundle.uuid
        if parents is None or skipped(cell, parents, retry_failed, only):
            out.append(Submitted(cell, cell.bundle, Outcome.NOT_SUBMITTED))
            continue
        if cell.status == DONE:
            out.append(Submitted(cell, cell.bundle, Outcome.MEMO_HIT))
            continue
        step = recipe.steps[cell.step]
        requests = dict(step.request.metadata(), exclude_patterns=step.exclude_patterns)
        description, tags = cell_labels(recipe, cell)
        deps = [(key, uuid + (f"/{sub}" if sub else "")) for key, uuid, sub in parents]
        bundle, hit = store.run(cell.command, deps, name=cell.name,
                                description=description, tags=tags, requests=requests, env_vars=env_vars(recipe, cell),
                                path_env=path_env, start_worker=False)
        made[cell.name] = bundle.uuid
        out.append(Submitted(cell, bundle, Outcome.MEMO_HIT if hit else Outcome.NEW))
    return out


def skipped(cell: GridCell, parents: Sequence[Any] | None, retry_failed: bool, only: set[str]) -> bool:
    """Whether `submit` leaves a cell alone: a parent has no bundle, it failed or is blocked (unless
    retried), or its step is not among `only`."""
    return (parents is None or (cell.status in (FAILED_, BLOCKED) and not retry_failed)
            or bool(only and cell.step not in only))


def wait_all(store: Store, bundles: Sequence[Bundle],
             on_progress: Callable[[int, int, dict[str, Bundle]], None] | None = None,
             poll: float = 0.25) -> dict[str, Bundle]:
    """Wait until every bundle is final; on_progress(done_count, total, latest states)."""
    from ..launch import ensure_worker

    pending = {b.uuid for b in bundles if not b.final}
    states = {b.uuid: b for b in bundles}
    last_check = 0.0
    while True:
        if pending and time.time() - last_check > 1.0:  # a worker must be there to drain them
            ensure_worker(store.home)
            last_check = time.time()
        for u in list(pending):
            b = store.get(u)
            states[u] = b
            if b.final:
                pending.discard(u)
        if on_progress:
            on_progress(len(bundles) - len(pending), len(bundles), states)
        if not pending:
            return states
        time.sleep(poll)
