"""`codalite env [set PYTHON]`: the Python interpreter this store's local runs use.

The store records it once (its first run records the python on PATH then), so runs, plans and
`verify` give the same answer from any shell; changing it is explicit, here. Importing this module
lists the command in COMMANDS; cli.py registers it.
"""

import click

from .cli_common import open_store
from .store import Store


@click.group(invoke_without_command=True)
@click.pass_context
def env(ctx):
    """Show the Python interpreter this store's runs use (part of every local run's memo key)."""
    if ctx.invoked_subcommand:
        return
    store = Store.find()
    recorded = store.recorded_interpreter()
    python = store.interpreter()  # fails in one line when the recorded one is gone
    fingerprint = store.local_environment(python)
    info = store.packages_of(fingerprint) or {}
    version = info.pop("python", "").split(" ")[0]
    if recorded:
        click.echo(f"python: {python}")
    else:
        click.echo(f"python: none recorded yet; the first local run will record {python} (the python on your PATH)")
    click.echo(f"environment: {fingerprint} (Python {version}, {len(info)} packages)")
    click.echo("change it with `codalite env set PATH_TO_PYTHON`; docker runs use their image instead")


@env.command("set")
@click.argument("python")
def set_python(python):
    """Make PYTHON (a path, or a command on PATH) the interpreter of this store's runs from now on.

    Runs whose environment changes are new runs; `codalite why` shows the change."""
    store = open_store(create=True)
    old, new = store.set_interpreter(python)
    fingerprint = store.local_environment(new)
    if old == new:
        click.echo(f"this store's runs already use {new} ({fingerprint})")
    else:
        click.echo(f"this store's runs use {new} from now on ({fingerprint})" + (f"; was {old}" if old else ""))


COMMANDS = [env]
