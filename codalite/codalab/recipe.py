"""`codalite recipe run R --remote NAME`: a recipe's missing cells run on a CodaLab server.

The plan is the local one, with the server's environment in the memo keys (its docker image), so
cells that already ran there (and were pulled) are done. Cells to run get local uuids and are
created on the server in dependency order, each pointing at its parents' uuids (uploads and cells
done locally are pushed first); then all are waited for and pulled back, so worksheets and paper
tables read them like local runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .. import spec
from ..bundle import Bundle, Dependency
from ..errors import UsageError
from ..recipes.plan import DONE, GridCell, Outcome, Submitted, cell_labels, cell_parents, plan, skipped, upload
from ..recipes.schema import Recipe, Step
from ..store import Store, run_metadata
from . import remotes
from .client import Prompt
from .sync import DEFAULT_GPU_IMAGE, DEFAULT_IMAGE, Journal, _worksheet, bundle_doc, pull, push, wait_remote


def server_environment(step: Step) -> str:
    """The memo key's environment of a step run on the server: its image (the server's default)."""
    return f"docker:{step.request.docker_image or (DEFAULT_GPU_IMAGE if step.request.gpus else DEFAULT_IMAGE)}"


def run_recipe(store: Store, recipe: Recipe, name: str, retry_failed: bool = False, only: Iterable[str] | None = None,
               on_progress: Callable[[str, Any], None] | None = None,
               prompt: Prompt | None = None) -> list[Submitted]:
    """What happened to each cell, like recipes.submit, after waiting (NEW: ran on the server)."""
    only = set(only or ())
    for step_name, step in recipe.steps.items():
        if step.env:
            raise UsageError(f"step {step_name} sets env vars, which CodaLab runs cannot take; "
                             "put them in the command to run it with --remote")
    progress = on_progress or (lambda *a: None)
    remotes.get(store, name)
    cells = plan(store, recipe, "", environment=server_environment)  # first, as a local submit: nothing stored if it fails
    uploaded = upload(store, recipe)
    made: dict[str, str] = {}  # cell name -> uuid
    planned: list[tuple[GridCell, Bundle]] = []
    out: list[Submitted] = []
    for cell in cells:  # cells carry status and bundle
        if cell.status == DONE and cell.bundle:  # DONE always comes with its ready bundle
            made[cell.name] = cell.bundle.uuid
            out.append(Submitted(cell, cell.bundle, Outcome.MEMO_HIT))
            continue
        parents = cell_parents(cell, uploaded, made)
        if parents is None or skipped(cell, parents, retry_failed, only):
            out.append(Submitted(cell, cell.bundle, Outcome.NOT_SUBMITTED))
            continue
        deps = [Dependency(key, uuid, sub) for key, uuid, sub in parents]
        step = recipe.steps[cell.step]
        md = run_metadata(cell.command, cell.name, *cell_labels(recipe, cell),
                          requests=dict(step.request.metadata(), exclude_patterns=step.exclude_patterns))
        b = Bundle.planned(spec.new_uuid(), "run", cell.command, md, deps)
        made[cell.name] = b.uuid
        planned.append((cell, b))
        out.append(Submitted(cell, b, Outcome.NEW))
    if not planned:
        return out
    client = remotes.client(store, name, prompt)
    try:
        mine = {b.uuid for _, b in planned}
        local = {d.parent_uuid for _, b in planned for d in b.dependencies if d.parent_uuid not in mine}
        progress("push", len(local))
        push(store, name, [store.get(u) for u in sorted(local)], client=client)
        ws, journal = _worksheet(client, remotes.get(store, name)), Journal(store, name)
        for _, b in planned:  # parents before children: the server stages each when its parents are ready
            client.create_bundles([bundle_doc(b)], ws)
            journal.set(b.uuid, "remote-run")
        progress("created", len(planned))
        for _, b in planned:
            wait_remote(client, b.uuid)
            progress("finished", b.uuid)
        pulled = {p.uuid: p for p in pull(store, name, [b.uuid for _, b in planned], client=client)}
        for _, b in planned:
            journal.set(b.uuid, "pulled")
    finally:
        client.close()
    return [Submitted(c, pulled.get(b.uuid, store.get(b.uuid)) if b is not None and b.uuid in mine else b, outcome)
            for c, b, outcome in out]
