"""Plan and run a recipe: which step x cell is done, missing, stale, failed or running, and
submitting only what is missing or stale (memoization returns the rest at once).

A cell is *done* when a ready bundle has the memo key its current inputs give; *stale* when an
earlier bundle of that cell exists but its inputs (code, data, environment) have changed since;
*failed* when the newest try with these inputs failed (only --retry-failed reruns it).
"""

import itertools
import os
import time
from dataclasses import dataclass, field

from .. import memo
from ..bundle import FAILED, FINAL_STATES, KILLED, READY
from ..hashing import hash_path
from .schema import RecipeError, cell_name, render

DONE, MISSING, STALE, FAILED_, RUNNING, BLOCKED = "done", "missing", "stale", "failed", "running", "blocked"


@dataclass
class Cell:
    step: str
    values: dict
    name: str
    command: str
    status: str = MISSING
    bundle: object = None  # the bundle behind the status, if any
    deps: list = field(default_factory=list)  # [(key, ("upload"|"step", name, cell name), subpath)]

    @property
    def label(self):
        return " ".join(f"{k}={v}" for k, v in self.values.items())


def _render(recipe, step, field, text, values):
    """A template of a step for one cell; what fails while evaluating it (a division by zero, an
    undefined attribute, a sandbox limit) is the recipe's mistake, named with step and cell."""
    try:
        return render(text, values)
    except Exception as e:  # noqa: BLE001 (any error raised by the user's template expression)
        cell = " ".join(f"{k}={v}" for k, v in values.items()) or "the only cell"
        raise RecipeError(os.path.relpath(recipe.path) if recipe.path else recipe.name, None, f"steps.{step}.{field}",
                          f"the template fails for {cell}: {type(e).__name__}: {e}") from None


def _deps(recipe, step, values):
    out = []
    for key, target in recipe.steps[step].deps.items():
        base, _, sub = target.partition("/")
        if base in recipe.uploads:
            out.append((key, ("upload", base, base), sub))
        else:
            proj = {v: values[v] for v in recipe.step_vars[base]}
            out.append((key, ("step", base, cell_name(base, proj)), sub))
    return out


def cells(recipe):
    """Every step x cell, in dependency order."""
    out = []
    for step in recipe.order:
        for values in recipe.step_cells(step):
            out.append(Cell(step, values, cell_name(step, values),
                            _render(recipe, step, "command", recipe.steps[step].command, {**recipe.vars, **values}),
                            deps=_deps(recipe, step, values)))
    return out


def cell_labels(recipe, cell):
    """(description, tags) of a cell's bundle: the tags say which recipe, step and cell made it
    (`verify` finds the recipe by them)."""
    description = recipe.steps[cell.step].description or f"recipe {recipe.name}: {cell.step} {cell.label}".strip()
    tags = [f"recipe:{recipe.name}", f"step:{cell.step}"] + [f"{k}={v}" for k, v in cell.values.items()]
    if recipe.profile:  # `verify` plans the cell with the same profile
        tags.append(f"profile:{recipe.profile}")
    return description, tags


def env_vars(recipe, cell):
    values = {**recipe.vars, **cell.values}
    return {k: _render(recipe, cell.step, f"env.{k}", str(v), values) for k, v in recipe.steps[cell.step].env.items()}


def plan(store, recipe, path_env, environment=None):
    """The status of every cell, without changing anything. environment(step) gives the memo
    key's environment of a step (default: where a local run would run, the store's recorded
    interpreter or the step's docker image, whatever path_env; remote runs differ)."""
    environment = environment or (lambda step: store.run_environment(step.request.docker_image, path_env))
    uploads = {}
    for name in recipe.uploads:
        h = hash_path(recipe.upload_path(name))
        uploads[name] = (h, store.ready_upload(h, name))
    done = {}  # cell name -> ready bundle with current inputs
    environments = {}  # step name -> environment fingerprint
    result = []
    for step_name, group in itertools.groupby(cells(recipe), key=lambda c: c.step):
        step, group = recipe.steps[step_name], list(group)
        keys = {}  # cell name -> memo key, for the cells whose inputs are all known
        for cell in group:
            hashes = []
            for key, (kind, name, cname), sub in cell.deps:
                if kind == "upload":
                    hashes.append((key, uploads[name][0], sub))
                elif cname in done:
                    hashes.append((key, done[cname].content_hash, sub))
            if len(hashes) == len(cell.deps):
                if step_name not in environments:
                    environments[step_name] = environment(step)
                keys[cell.name] = memo.memo_key(memo.memo_inputs(
                    "run", cell.command, hashes, environments[step_name], env_vars(recipe, cell), step.exclude_patterns))
        matches = store.memo_matches(keys.values())  # one query per step, not per cell
        for cell in group:  # a step's cells never depend on each other
            key = keys.get(cell.name)
            match = matches.get(key) if key else None
            previous = None if match else store.newest(cell.name)
            if key is None:  # an upstream cell is not done: this one will (re)run after it
                blocked = any(c.status in (FAILED_, BLOCKED) for c in result if c.name in {d[1][2] for d in cell.deps})
                if previous and previous.state not in FINAL_STATES:
                    cell.status, cell.bundle = RUNNING, previous
                elif blocked:
                    cell.status, cell.bundle = BLOCKED, previous
                elif previous:
                    cell.status, cell.bundle = STALE, previous
            elif match and match.state == READY:
                cell.status, cell.bundle = DONE, match
                done[cell.name] = match
            elif match:
                cell.status, cell.bundle = RUNNING, match
            elif previous and previous.state in (FAILED, KILLED) and previous.memo_key == key:
                cell.status, cell.bundle = FAILED_, previous
            elif previous:
                cell.status, cell.bundle = STALE, previous
            result.append(cell)
    return result


def cell_parents(cell, uploaded, made):
    """[(key, parent uuid, subpath)] of a cell, or None while a parent has no bundle to point at.
    uploaded: upload name -> uuid; made: cell name -> uuid."""
    out = []
    for key, (kind, name, cname), sub in cell.deps:
        parent = uploaded[name] if kind == "upload" else made.get(cname)
        if parent is None:
            return None
        out.append((key, parent, sub))
    return out


def submit(store, recipe, path_env, retry_failed=False, only=None):
    """Upload what changed and create the runs of every cell that is not done; memoization makes
    done cells free. Returns [(cell, bundle or None, memo_hit)] in dependency order; memo_hit is
    None for cells not submitted (failed or blocked without retry, other steps with `only`)."""
    uploaded = {}  # upload name -> uuid
    for name, u in recipe.uploads.items():
        description = getattr(u, "description", "") or f"recipe {recipe.name}: upload {name}"
        uploaded[name] = store.upload([recipe.upload_path(name)], name=name, description=description)[0].uuid
    made, out = {}, []  # cell name -> uuid
    for cell in plan(store, recipe, path_env):  # the plan's cells carry their status and bundle
        status = cell.status
        parents = cell_parents(cell, uploaded, made)
        skip = parents is None or (status in (FAILED_, BLOCKED) and not retry_failed) or (only and cell.step not in only)
        if status == DONE:  # the plan found the ready bundle for these exact inputs
            made[cell.name] = cell.bundle.uuid
        if skip or status == DONE:  # memo_hit None: not submitted
            out.append((cell, cell.bundle, None if skip else True))
            continue
        step = recipe.steps[cell.step]
        requests = dict(step.request.metadata(), exclude_patterns=step.exclude_patterns)
        description, tags = cell_labels(recipe, cell)
        deps = [(key, uuid + (f"/{sub}" if sub else "")) for key, uuid, sub in parents]
        bundle, hit = store.run(cell.command, deps, name=cell.name,
                                description=description, tags=tags, requests=requests, env_vars=env_vars(recipe, cell),
                                path_env=path_env, start_worker=False)
        made[cell.name] = bundle.uuid
        out.append((cell, bundle, hit))
    return out


def wait_all(store, bundles, on_progress=None, poll=0.25):
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
