"""`cl` verbs a CodaLab user types that are not about running: edit, download, cp, work, config,
help, and one-line refusals for server-only features. Registered by cli.py from COMMANDS."""

import os
import shutil

import click

from . import hashing, spec
from .cli_common import (
    CURRENT, current_worksheet, fail, library_errors, on_worksheet, open_store, refuse, resolve_all,
    worksheet_spec_option,
)
from .errors import UsageError
from .store import Store, owner_alive, remove_tree


@click.command()
@click.argument("bundle_text", metavar="BUNDLE")
@click.option("-n", "--name", help="New name.")
@click.option("-d", "--description", help="New description.")
@click.option("-T", "--tags", "--tag", "tags", multiple=True, help="New tags: `edit B -T a b` (every word up to the "
              "next option, as CodaLab); `-T` alone clears them.")
@click.option("-f", "--field", nargs=2, multiple=True, metavar="KEY VALUE", help="Set any editable metadata field.")
@click.option("--freeze", is_flag=True, hidden=True)
@click.option("--unfreeze", is_flag=True, hidden=True)
@click.option("--anonymous", is_flag=True, hidden=True)
@click.option("--not-anonymous", is_flag=True, hidden=True)
@worksheet_spec_option
@library_errors
def edit(bundle_text, name, description, tags, field, freeze, unfreeze, anonymous, not_anonymous, worksheet_spec):
    """Edit a bundle's metadata (`cl edit B -n NAME -d TEXT -T TAG...`, `-f KEY VALUE`); its contents,
    command and dependencies are immutable, and its memo key does not change."""
    if freeze or unfreeze:
        raise refuse("freezing a bundle (--freeze/--unfreeze)", "a codalite bundle's contents are always frozen; "
                     "its metadata stays editable")
    if anonymous or not_anonymous:
        raise refuse("anonymous bundles (--anonymous)", "a codalite store has one user and no sharing")
    changes = {}
    if name is not None:
        changes["name"] = spec.check_name(name) or name
    if description is not None:
        changes["description"] = description
    if tags:
        changes["tags"] = [t for t in tags if t]
    for key, value in field:
        changes[key] = value
    if not changes:
        raise UsageError("nothing to edit: give -n NAME, -d TEXT, -T TAG..., or -f KEY VALUE (codalite opens no editor)")
    store = Store.find()
    found = resolve_all(store, [bundle_text], worksheet_spec)
    if len(found) != 1:  # `edit ^1-3`: one bundle at a time, as `cl edit`
        raise UsageError(f"{bundle_text!r} names {len(found)} bundles; `edit` changes one: name it alone")
    (bundle,) = found
    b = store.edit_metadata(bundle, changes)
    click.echo(f"Saved metadata for bundle {b.uuid}.")


@click.command()
@click.argument("target")
@click.option("-o", "--output-path", help="Where to write (default: the bundle's name, or the path's base name, here).")
@click.option("-f", "--force", is_flag=True, help="Replace what is already at the output path.")
@worksheet_spec_option
@library_errors
def download(target, output_path, force, worksheet_spec):
    """Copy a bundle, or a path in it, out of the store (`cl download B[/path] -o OUT`)."""
    store = Store.find()
    bundle, subpath = store.resolve_target(on_worksheet(store, target, worksheet_spec))
    if not bundle.final and bundle.state != "ready":
        raise UsageError(f"bundle {bundle.uuid} ({bundle.name}) is {bundle.state}; wait for it (`codalite wait`)")
    subpath = os.path.normpath(subpath).lstrip("/") if subpath else ""  # `B/sub/.` is B/sub, `B/.` is B
    subpath = "" if subpath == "." else subpath
    src = store.path_in(bundle, subpath)
    out = output_path or (os.path.basename(subpath) if subpath else bundle.name or bundle.uuid)
    check_output_path(store, out)
    clean_download_debris(out)
    if os.path.lexists(out) and not force:
        raise UsageError(f"{out} already exists; pass -f to replace it, or -o another path")
    tmp, old = (f"{out.rstrip(os.sep)}.codalite-{kind}-{os.getpid()}" for kind in ("download", "replaced"))
    try:  # assembled beside, then renamed: a failed download leaves OUT as it was (-f: replaced only at the end)
        if os.path.isdir(src):
            shutil.copytree(src, tmp, symlinks=True)
            for root, dirs, files in os.walk(tmp):  # the store's copies are read-only; yours are not
                for n in dirs + files:
                    p = os.path.join(root, n)
                    if not os.path.islink(p):
                        os.chmod(p, os.stat(p).st_mode | 0o200)
            os.chmod(tmp, os.stat(tmp).st_mode | 0o200)
        else:
            shutil.copyfile(src, tmp)
        if os.path.lexists(out):
            os.rename(out, old)
        try:
            os.rename(tmp, out)
        except OSError:
            if os.path.lexists(old):
                os.rename(old, out)  # put what was there back
            raise
        remove_tree(old)
    except OSError as e:
        remove_tree(tmp)
        if isinstance(e, shutil.Error):  # copytree's list of (src, dst, why): the first says enough
            first = e.args[0][0] if e.args and isinstance(e.args[0], list) and e.args[0] else None
            message = f"{first[2]}: {hashing.shown(first[0])}" if first else str(e)
        else:
            message = e.strerror or str(e)
        raise click.ClickException(f"download failed: {message} (writing {hashing.shown(out)})") from None
    click.echo(f"Downloaded {bundle.uuid}{'/' + subpath if subpath else ''} to {out}")


def check_output_path(store, out):
    """`download -o OUT [-f]` writes (and with -f replaces) OUT: never the directory you stand in or
    one above it (`B/sub/.` named OUT '.'), and never anything in the store (as root, modes would not
    stop it from writing into a ready bundle)."""
    real = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(out))), os.path.basename(os.path.abspath(out)))
    real = os.path.realpath(real) if os.path.basename(out) in ("", ".", "..") else real
    cwd = os.path.realpath(os.getcwd())
    if os.path.commonpath([real, cwd]) == real:
        raise UsageError(f"cannot download to {hashing.shown(out)}: it is the current directory or one above it; "
                         "give -o a new path")
    if store.overlaps(real):
        raise UsageError(f"cannot download to {hashing.shown(out)}: it is, holds or is inside the codalite store "
                         f"({store.home}); give -o a path outside it")


def clean_download_debris(out):
    """What a killed download to OUT left beside it (named with its pid, which is gone): a partial
    copy is deleted; what -f had moved aside when OUT is missing goes back (the kill came between
    the two renames)."""
    import glob
    import re

    base = out.rstrip(os.sep)
    for entry in sorted(glob.glob(glob.escape(base) + ".codalite-*-*")):
        m = re.fullmatch(re.escape(base) + r"\.codalite-(download|replaced)-(\d+)", entry)
        if not m or owner_alive(f"{m[2]}-"):
            continue
        if m[1] == "replaced" and not os.path.lexists(out):
            os.rename(entry, out)
            click.echo(f"put back {hashing.shown(out)} (a download killed while replacing it had moved it aside)",
                       err=True)
        elif m[1] == "download":
            remove_tree(entry)


@click.command()
@click.argument("args", nargs=-1)
@library_errors
def cp(args):
    """`cl cp` copies bundles between CodaLab instances: codalite does it with push and pull."""
    raise UsageError("`cp` (copy bundles between CodaLab instances) is `codalite push BUNDLE --remote NAME` "
                     "(this store -> a server) or `codalite pull UUID --remote NAME` (a server -> this store)")


@click.command()
@click.argument("worksheet", required=False)
@click.option("-u", "--uuid-only", is_flag=True, help="Print only the worksheet's uuid.")
@click.option("--clear", is_flag=True, help="No current worksheet: names resolve across the store again.")
@library_errors
def work(worksheet, uuid_only, clear):
    """Show or set the current worksheet (`cl work WS`): new uploads, runs and makes land on it, and
    bundle names and ^N count its bundles, as in CodaLab."""
    from .worksheets import model

    store = open_store()
    if clear:
        store.set_config_value(CURRENT, None)
        click.echo("no current worksheet: bundle names resolve across the store", err=True)
        return
    if worksheet is None:
        name = current_worksheet(store)
        if name is None:
            raise UsageError("no current worksheet; choose one with `codalite work WS` (`codalite new WS` makes one)")
        ws = model.get(store, name, with_items=False)
    else:
        if "::" in worksheet:
            raise refuse(f"another instance's worksheet ({worksheet})", "a store is one instance; "
                         "bring bundles here with `codalite pull UUID --remote NAME`")
        ws = model.get(store, worksheet, with_items=False)
        store.set_config_value(CURRENT, ws.uuid)
    click.echo(ws.uuid if uuid_only else f"Switched to worksheet: {ws.name} ({ws.uuid})" if worksheet
               else f"Currently on worksheet: {ws.name} ({ws.uuid})")


SETTINGS = {"memo": ("on", "off")}


@click.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@library_errors
def config(key, value):
    """Show or set a store setting. `codalite config memo off`: every upload, run and make is a new
    bundle, as CodaLab does (-m reuses one again); `memo on` (the default) reuses identical ones."""
    store = open_store()
    if key is None:
        for k, (default, *_) in SETTINGS.items():
            click.echo(f"{k} = {store.config_value(k, default)}")
        return
    if key not in SETTINGS:
        raise UsageError(f"unknown setting {key!r}; settings: {', '.join(SETTINGS)}")
    if value is None:
        click.echo(store.config_value(key, SETTINGS[key][0]))
        return
    if value not in SETTINGS[key]:
        raise UsageError(f"{key} is {' or '.join(SETTINGS[key])}, not {value!r}")
    store.set_config_value(key, value)
    click.echo(f"{key} = {value}")


@click.command(name="help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_(ctx, command):
    """Show help for codalite or one of its commands (`cl help run`)."""
    ctx = ctx.parent  # `codalite`
    for name in command:
        sub = ctx.command.get_command(ctx, name) if isinstance(ctx.command, click.Group) else None
        if sub is None:
            raise click.UsageError(f"no command {name!r}; `codalite help` lists them")
        ctx = click.Context(sub, info_name=name, parent=ctx)
    click.echo(ctx.get_help())


# CodaLab server features with no local meaning: one line each, naming what to use.
REFUSED = {
    "write": ("writing into a running bundle (`cl write`)", "a local run's files are in .codalite/runs/UUID while it runs"),
    "mount": ("mounting a bundle (`cl mount`)", "read it in place with `codalite cat`, or copy it out with `codalite download`"),
    "netcat": ("sending data to a running bundle's port (`cl netcat`)", "local runs have no exposed ports"),
    "store": ("bundle stores (`cl store`)", "a codalite store is the .codalite/ directory of your project"),
    "gls": ("groups (`cl gls`)", "a codalite store has one user"),
    "gnew": ("groups (`cl gnew`)", "a codalite store has one user"),
    "grm": ("groups (`cl grm`)", "a codalite store has one user"),
    "ginfo": ("groups (`cl ginfo`)", "a codalite store has one user"),
    "uadd": ("group members (`cl uadd`)", "a codalite store has one user"),
    "urm": ("group members (`cl urm`)", "a codalite store has one user"),
    "perm": ("bundle permissions (`cl perm`)", "a codalite store has one user; share bundles with `codalite push`"),
    "wperm": ("worksheet permissions (`cl wperm`)", "a codalite store has one user"),
    "chown": ("changing owners (`cl chown`)", "a codalite store has one user"),
    "uinfo": ("user accounts (`cl uinfo`)", "a codalite store has one user"),
    "uedit": ("user accounts (`cl uedit`)", "a codalite store has one user"),
    "ufarewell": ("user accounts (`cl ufarewell`)", "a codalite store has one user"),
    "workers": ("the server's workers (`cl workers`)", "`codalite worker` runs this store's local worker"),
    "bs-add-partition": ("bundle store partitions", "a codalite store is the .codalite/ directory of your project"),
    "alias": ("instance aliases (`cl alias`)", "`codalite remote add NAME URL` names a CodaLab server"),
    "logout": ("logging out (`cl logout`)", "`codalite remote rm NAME` forgets a server and its token"),
    "status": ("the server's status (`cl status`)", "`codalite work` shows the current worksheet"),
    "events": ("the server's event log (`cl events`)", "`codalite ls` lists the newest bundles"),
}


def _refusal(verb, feature, instead):
    @click.command(name=verb, context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
                   add_help_option=False, hidden=True)
    def refused():
        raise fail(UsageError(f"{feature} is a CodaLab server feature that codalite does not have; {instead}"))
    return refused


COMMANDS = [edit, download, cp, work, config, help_] + [_refusal(v, *r) for v, r in REFUSED.items()]
