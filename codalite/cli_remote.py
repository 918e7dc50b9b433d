"""`codalite remote add/ls/rm`, `push`, `pull`: the CodaLab backend's commands (a thin click layer)."""

import importlib
import sys

import click

from .cli_common import open_store


class _Lazy:
    """Import a codalab module on first use: httpx costs a tenth of a second at every CLI start."""

    def __init__(self, name):
        self.name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(f"codalite.codalab.{self.name}"), attr)


remotes, sync = _Lazy("remotes"), _Lazy("sync")


def _prompt(name, url):
    if not sys.stdin.isatty():
        return None
    click.echo(f"Log in to {name} ({url})", err=True)
    user = click.prompt("Username", err=True)
    password = click.prompt("Password", hide_input=True, err=True)
    return user, password


def _store():
    return open_store()


@click.group("remote")
def remote():
    """CodaLab servers this store pushes to and pulls from."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-w", "--worksheet", help="Worksheet to put pushed bundles on (default: your home worksheet).")
def remote_add(name, url, worksheet):
    """Add a CodaLab server (REST URL such as https://worksheets.codalab.org) and log in.

    Credentials come from CODALAB_USERNAME/CODALAB_PASSWORD, else a prompt; the token is cached
    (mode 0600) in the store."""
    store = _store()
    r = remotes.add(store, name, url, worksheet, prompt=_prompt)
    click.echo(f"remote {name}: {r['url']} as {r.get('username') or '?'}")


@remote.command("ls")
def remote_ls():
    """List remotes."""
    store = _store()
    for name, r in sorted(remotes.load(store).items()):
        ws = f"  worksheet {r['worksheet']}" if r.get("worksheet") else ""
        click.echo(f"{name}\t{r['url']}\t{r.get('username') or ''}{ws}")


@remote.command("rm")
@click.argument("name")
def remote_rm(name):
    """Forget a remote and its cached token."""
    remotes.remove(_store(), name)


def _progress(kind, obj):
    if kind == "upload":
        click.echo(f"push {obj.uuid} ({obj.name})", err=True)
    elif kind == "download":
        click.echo(f"pull {obj['uuid']} ({(obj.get('metadata') or {}).get('name')})", err=True)
    elif kind == "state":
        md = obj.get("metadata") or {}
        detail = md.get("run_status") or md.get("staged_status") or ""
        click.echo(f"{obj['uuid'][:10]} {obj['state']}{': ' + detail if detail else ''}", err=True)
    elif kind == "push":
        click.echo("pushing dependencies", err=True)


@click.command("push")
@click.argument("bundles", nargs=-1)
@click.option("--remote", "remote_name", required=True, help="Remote name (see `codalite remote ls`).")
@click.option("-w", "--worksheet", help="Push this worksheet (stored, or a .ws file) and its bundles.")
def push(bundles, remote_name, worksheet):
    """Push bundles and all their ancestors to a CodaLab server, with the same uuids."""
    store = _store()
    if worksheet:
        from .codalab.worksheet import push_worksheet

        uuid, result = push_worksheet(store, remote_name, worksheet, on_progress=_progress, prompt=_prompt)
        click.echo(f"pushed {len(result['pushed'])}, already there {len(result['skipped'])}", err=True)
        click.echo(uuid)
        if not bundles:  # the worksheet was all that was asked for: no second, empty bundle push
            return
    elif not bundles:
        raise click.UsageError("give bundles to push, or --worksheet")
    found = [store.resolve(b) for b in bundles]
    result = sync.push(store, remote_name, found, on_progress=_progress, prompt=_prompt)
    click.echo(f"pushed {len(result['pushed'])}, already there {len(result['skipped'])}", err=True)
    for b in found:
        click.echo(b.uuid)


@click.command("pull")
@click.argument("uuids", nargs=-1, required=True)
@click.option("--remote", "remote_name", required=True, help="Remote name (see `codalite remote ls`).")
def pull(uuids, remote_name):
    """Bring bundles (uuids on the server) and their missing ancestors into this store."""
    from .spec import UUID_RE
    from .errors import UsageError

    bad = [u for u in uuids if not UUID_RE.match(u)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a full bundle uuid (0x + 32 hex digits)")
    store = _store()
    for b in sync.pull(store, remote_name, list(uuids), prompt=_prompt, on_progress=_progress):
        click.echo(f"{b.uuid} {b.state}")


def run_remote(store, remote_name, command, deps, name, description, tags, requests, force, wait):
    """`codalite run --remote NAME`: the run happens on the server; returns (bundle or uuid, memo_hit)."""
    return sync.remote_run(store, remote_name, command, deps, name, description, tags, requests, force,
                           wait=wait, on_progress=_progress, prompt=_prompt)


COMMANDS = [remote, push, pull]
