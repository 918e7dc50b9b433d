"""`codalite recipe plan|run|export-cl`: the CLI face of codalite.recipes (imported lazily: pydantic
and Jinja2 cost a tenth of a second that other commands need not pay)."""

import os

import click

from .cli_common import check_output, open_store
from .hashing import write_atomic
from .store import Store
from .table import print_table

STATUS_STYLE = {"done": "green", "missing": "yellow", "stale": "magenta", "failed": "red", "running": "cyan",
                "blocked": "red"}


@click.group()
def recipe():
    """Experiment recipes (cl_recipes/*.yaml): grids that run only what is missing."""


def _plan_table(cells):
    rows = [(c.step, c.label or "-", c.status, c.bundle.uuid[:10] if c.bundle else "",
             c.bundle.state if c.bundle else "") for c in cells]
    print_table(["step", "cell", "status", "bundle", "state"], rows,
                styles={2: lambda v: {"fg": STATUS_STYLE[v]}})
    counts = {}
    for c in cells:
        counts[c.status] = counts.get(c.status, 0) + 1
    click.echo(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


@recipe.command()
@click.argument("path", type=click.Path())
@click.option("--profile", metavar="NAME", help="Apply the recipe's profile NAME (e.g. smoke: tiny models, CPU).")
@click.option("--why", "why", is_flag=True, help="Say why each stale, failed or blocked cell is not done.")
def plan(path, profile, why):
    """Show each step x cell as done / missing / stale / failed / running."""
    from . import recipes
    from .recipes.plan import explain

    r = recipes.load(path, profile)
    store = Store.find()
    cells = recipes.plan(store, r, os.environ.get("PATH", ""))
    _plan_table(cells)
    if why:
        for name, lines in explain(store, cells).items():
            click.echo(f"{name}:")
            for line in lines:
                click.echo(f"  {line}")


@recipe.command("run")
@click.argument("path", type=click.Path())
@click.option("--retry-failed", is_flag=True, help="Also rerun cells whose last try failed.")
@click.option("--only", multiple=True, help="Only this step (repeatable); its inputs must be done.")
@click.option("--dry-run", is_flag=True, help="Show the plan; submit nothing.")
@click.option("--no-wait", is_flag=True, help="Submit and return without waiting.")
@click.option("--remote", metavar="NAME", help="Run the missing cells on this CodaLab remote, then pull them.")
@click.option("--profile", metavar="NAME", help="Apply the recipe's profile NAME (e.g. smoke: tiny models, CPU).")
def run_recipe(path, retry_failed, only, dry_run, no_wait, remote, profile):
    """Submit what is missing or stale, wait with progress; exit 1 if any cell failed."""
    from . import recipes

    r = recipes.load(path, profile)
    bad = [s for s in only if s not in r.steps]
    if bad:
        raise click.BadParameter(f"no step {bad[0]!r} in {path}; steps: {', '.join(r.order)}", param_hint="--only")

    path_env = os.environ.get("PATH", "")
    # a dry run changes nothing, not even a new store (like `recipe plan`); a remote lives in a store
    store = Store.find() if dry_run or remote else open_store(create=True)
    if remote:
        from .codalab import remotes

        remotes.get(store, remote)  # an unknown remote stops the run before anything is planned or stored
    if dry_run:
        if remote:  # the plan a remote run makes: the server's environment (its image) in the memo keys
            from .codalab.recipe import server_environment

            _plan_table(recipes.plan(store, r, "", environment=server_environment))
        else:
            _plan_table(recipes.plan(store, r, path_env))
        return
    if remote:
        from .codalab.recipe import run_recipe as run_remote

        results = run_remote(store, r, remote, retry_failed, set(only),
                             on_progress=lambda what, n: click.echo(f"{remote}: {what} {n}", err=True))
    else:
        results = recipes.submit(store, r, path_env, retry_failed, set(only))
    submitted = [(c, b, o) for c, b, o in results if o is not recipes.Outcome.NOT_SUBMITTED]
    hits = sum(1 for _, _, o in submitted if o is recipes.Outcome.MEMO_HIT)
    ws = recipes.record_on_worksheet(store, r, [b for _, b, _ in results])
    click.echo(f"{len(results)} cells: {hits} memo hits, {len(submitted) - hits} "
               f"{'ran on ' + remote if remote else 'to run'} (worksheet {ws.name})", err=True)
    if no_wait:
        if not remote and any(not b.final for _, b, _ in submitted):  # they run in the background, as `codalite run`'s do
            from .launch import ensure_worker

            ensure_worker(store.home)
        return
    if remote or not submitted:  # nothing to wait for here (and no progress bar to import)
        states = {b.uuid: b for _, b, _ in submitted}
    else:
        states = _wait(store, [b for _, b, _ in submitted])
    failed = [f"{c.name} ({states[b.uuid].state})" for c, b, _ in submitted if states[b.uuid].state != "ready"]
    not_run = [f"{c.name} (not run)" for c, b, o in results
               if o is recipes.Outcome.NOT_SUBMITTED and (not only or c.step in only) and not (b and b.state == "ready")]
    click.echo(f"{len(results) - len(failed) - len(not_run)} cells ready"
               + (f", {len(failed)} failed" if failed else "") + (f", {len(not_run)} not run" if not_run else ""))
    if failed or not_run:
        names = failed + not_run
        raise click.ClickException(f"{len(names)} cell(s) did not finish ready: {', '.join(names[:8])}"
                                   + ("; rerun with --retry-failed" if failed else ""))


def _wait(store, bundles):
    """Wait for the cells. On a terminal: a live bar with cells done/running/failed and the running
    cells' names. Otherwise (a log, a pipe): one line per cell as it finishes, on stderr."""
    import sys
    import time

    from . import recipes

    if not sys.stderr.isatty():
        # memo hits are final already: only the cells that run get a line
        return recipes.wait_all(store, bundles, _finished_lines(time.time(), {b.uuid for b in bundles if b.final}))
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task("waiting", total=len(bundles))

        def update(done, total, states):
            running = sorted(b.name for b in states.values() if b.state == "running")
            failed = sum(1 for b in states.values() if b.final and b.state != "ready")
            what = f"{done - failed} done, {len(running)} running, {failed} failed"
            if running:
                what += ": " + ", ".join(running[:3]) + (f" +{len(running) - 3}" if len(running) > 3 else "")
            progress.update(task, completed=done, description=what)

        return recipes.wait_all(store, bundles, update)


def _finished_lines(t0, already):
    """on_progress for wait_all that prints one line per cell when it becomes final:
    `[k/n] state name (time since the wait began)`, n = the cells that were not final at the start."""
    import time

    seen = set()

    def update(done, total, states):
        for u, b in states.items():
            if b.final and u not in seen and u not in already:
                seen.add(u)
                m, sec = divmod(int(time.time() - t0), 60)
                click.echo(f"[{len(seen)}/{total - len(already)}] {b.state:<7} {b.name}  ({m}m{sec:02d}s)",
                           err=True)

    return update


@recipe.command("export-cl")
@click.argument("path", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the script here (default: stdout).")
@click.option("--profile", metavar="NAME", help="Apply the recipe's profile NAME (e.g. smoke: tiny models, CPU).")
def export_cl(path, output, profile):
    """Write the recipe as a `cl upload` / `cl run` script for the official CodaLab CLI."""
    from . import recipes

    script = recipes.export_cl(recipes.load(path, profile))
    if output:
        check_output(output, "-o", path, "the recipe")
        try:
            write_atomic(output, script)  # whole or not at all
            os.chmod(output, 0o755)
        except OSError as e:
            raise click.BadParameter(f"cannot write {output}: {e.strerror or e}", param_hint="-o") from None
    else:
        click.echo(script, nl=False)


COMMANDS = [recipe]
