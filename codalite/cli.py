"""The `codalite` command line: a thin click layer that parses, calls the library, and formats.

Exit codes: 2 for what the user typed wrong (click's usage errors, malformed targets, sizes,
durations), 1 for failures found while working (unknown bundle, failed run, corrupt store).
"""

import datetime
import json
import logging
import math
import os
import shlex
import shutil
import sqlite3
import stat
import sys
import time

import click

from . import db as sqlite_db, hashing, sandbox, spec
from .cli_common import (  # noqa: F401  (fail, open_store, ... stay importable from here)
    bad as _bad, check_name, dep_on_worksheet, echo_uuid, expand_specs, fail, land, metadata_options, on_worksheet,
    open_store, os_error, print_table, refuse, resolve_all, worksheet_spec_option,
)
from .errors import CodaliteError, UsageError
from .search import search as search_bundles
from .store import NO_MEMO, Store, default_name, validate_requests


def main():
    # the library's notices (e.g. the store's first run recording its python) as `codalite: ...` on stderr
    notices = logging.StreamHandler()
    notices.setFormatter(logging.Formatter("codalite: %(message)s"))
    logging.getLogger("codalite").addHandler(notices)
    logging.getLogger("codalite").propagate = False
    argv = sys.argv[1:]
    # `codalite run key:b ... --- python train.py --lr 0.1`: the rest of argv is the command
    if "---" in argv:
        i = argv.index("---")
        argv = argv[:i] + ["--command", shlex.join(argv[i + 1 :])]
    argv = tags_args(argv)
    try:
        check_utf8(argv)
        code = cli.main(args=argv, prog_name="codalite", standalone_mode=False)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as e:  # bare `codalite` or `codalite recipe`: help
        e.show()
        sys.exit(e.exit_code)
    except click.ClickException as e:
        # one line, whatever click would add (usage, hint) or the message holds (YAML, OS errors)
        message = e.format_message()
        if isinstance(e, click.UsageError) and e.ctx is not None and not getattr(e, "codalite", False):
            message = f"{message.rstrip('.')}; see `{e.ctx.command_path} --help`"
        click.echo(f"Error: {' '.join(message.split())}", err=True)
        sys.exit(e.exit_code)
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (click.Abort, KeyboardInterrupt):
        click.echo("Error: interrupted; runs already submitted keep running (`codalite kill` stops them)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def tags_args(argv):
    """`cl edit B -T a b` / `cl wedit WS -T a b`: -T takes every word up to the next option (argparse's
    nargs), which click cannot say: it becomes `--tag a --tag b` (`-T` alone: `--tag ''`, no tags)."""
    if argv[:1] not in (["edit"], ["wedit"]):
        return argv
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("-T", "--tags"):
            j = i + 1
            while j < len(argv) and not argv[j].startswith("-"):
                j += 1
            out += [x for t in (argv[i + 1:j] or [""]) for x in ("--tag", t)]
            i = j
        else:
            out.append(argv[i])
            i += 1
    return out


def check_utf8(argv):
    """Names, commands, keywords and worksheet text are stored as UTF-8 text: refuse other bytes in
    them in one line. Existing file paths may hold any bytes (they are uploaded, read or written),
    and so may what `cat` reads inside a bundle (a run may name its files anyhow)."""
    if argv[:1] == ["cat"]:
        return
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            if not os.path.lexists(arg):
                shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
                raise fail(UsageError(f"argument {shown!r} is not valid UTF-8 text: names, commands, targets "
                                      "and keywords must be UTF-8 (only existing file paths may hold other bytes)"))


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodaliteError as e:
            raise fail(e) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except BrokenPipeError:  # `codalite cat x | head`: main() ends quietly
            raise
        # the safety net: what the library did not foresee still ends in one line (exit 1)
        except OSError as e:
            raise click.ClickException(os_error(e)) from None
        except UnicodeError as e:
            raise click.ClickException(f"a name or file is not valid UTF-8 text ({e})") from None
        except sqlite3.DatabaseError as e:
            db = os.path.join(Store.locate() or ".codalite", "codalite.db")
            if "disk is full" in str(e) or _no_space(db):
                raise click.ClickException(f"the disk holding {db} is full ({e}); free space and retry") from None
            home = os.path.dirname(db)
            if "readonly" in str(e) or ("unable to open" in str(e) and not os.access(home, os.W_OK)):
                # not damaged: the advice below (restore, init) would be wrong and dangerous here
                if sqlite_db.read_only_filesystem(db):
                    raise click.ClickException(f"the store {home} is on a read-only file system: it can be read (ls, "
                                               "info, cat, search, download, print, fsck) but not changed") from None
                raise click.ClickException(f"the store {home} is not writable by you (its owner's uid is "
                                           f"{os.stat(home).st_uid}); work in a store of your own") from None
            if any(w in str(e) for w in ("not a database", "malformed", "unable to open")):
                raise click.ClickException(f"the store's database {db} cannot be used ({e}); restore .codalite/ "
                                           "from a backup or `codalite init` a new store") from None
            raise click.ClickException(f"the store's database {db} refused the query: {e}") from None


def _no_space(path):
    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free < (1 << 20)
    except OSError:
        return False


@click.group(cls=Group)
@click.version_option(package_name="codalite")
def cli():
    """codalite: CodaLab's bundle model, embedded. Every step is an immutable bundle; runs are
    memoized by content; the store is .codalite/ in your project (like .git)."""


# --- creating bundles ---------------------------------------------------------------------------

def memo_options(f):
    """CodaLab makes a new bundle every time unless -m; codalite reuses an identical one unless
    --no-memo (or `codalite config memo off`, which makes -m CodaLab's opt-in again)."""
    f = click.option("-m", "--memoize", is_flag=True, help="Reuse an identical bundle even if `codalite config memo` "
                     "is off (CodaLab's -m).")(f)
    f = click.option("--no-memo", is_flag=True, help="Always a new bundle, never reused by later ones (CodaLab's "
                     "plain `cl run`); for commands that are not functions of their inputs.")(f)
    return f


def memo_mode(store, force, no_memo, memoize):
    """The store.run/make/upload force argument: NO_MEMO, True (rerun, reusable later) or False."""
    if no_memo and (memoize or force):
        raise click.UsageError("--no-memo cannot be combined with -m/--memoize or --force")
    if no_memo or (not memoize and not force and store.config_value("memo", "on") == "off"):
        return NO_MEMO
    return bool(force)


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory):
    """Create an empty store (.codalite/) in DIRECTORY."""
    store = Store.init(directory)
    click.echo(f"Initialized an empty codalite store in {store.home}")


UPLOAD_REFUSED = {  # CodaLab upload flags that need its server, each with what to do instead
    "git": ("uploading with --git (the server clones)", "git clone it here and upload the directory"),
    "link": ("uploading with --link (the server reads the path in place)",
             "codalite copies uploads into the store: upload the path"),
    "ignore": ("uploading with --ignore FILE (GNU tar's exclude file)", "give the patterns with -x PATTERN"),
    "store": ("uploading to a named --store", "codalite has one store: .codalite/"),
    "use_azure_blob_beta": ("uploading to Azure Blob Storage (-a)", "codalite stores bundles in .codalite/"),
}


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-c", "--contents", help="Upload this text as a one-file bundle (`cl upload -c TEXT`).")
@metadata_options
@click.option("-L", "--follow-symlinks", is_flag=True, help="Copy what symlinks point to.")
@click.option("-p", "--pack", is_flag=True, help="Keep an archive (.zip, .tar.gz, .tgz, .tar.bz2, .gz, .bz2) "
              "packed: by default one uploaded archive is unpacked and its name loses the extension, as CodaLab.")
@click.option("-x", "--exclude-patterns", multiple=True, metavar="PATTERN",
              help="Leave out what `tar --exclude=PATTERN` would, as CodaLab: a name, or a path's last parts "
              "(sub/b.log); repeat -x for several.")
@click.option("-z", "--force-compression", is_flag=True, help="Accepted for `cl` scripts; nothing is sent over a network.")
@click.option("--license", help="The license metadata field.")
@click.option("--source-url", help="Where the data came from (metadata).")
@click.option("-g", "--git", is_flag=True, hidden=True)
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.option("-i", "--ignore", hidden=True)
@click.option("--store", hidden=True)
@click.option("-a", "--use-azure-blob-beta", is_flag=True, hidden=True)
@click.option("--force", is_flag=True, help="Make a new bundle even if identical contents exist.")
@memo_options
@worksheet_spec_option
def upload(paths, contents, name, description, tags, follow_symlinks, pack, exclude_patterns, force_compression,
           license, source_url, force, no_memo, memoize, worksheet_spec, **server_only):
    """Upload files or directories as a dataset bundle; prints its uuid.

    Example: codalite upload data/ -n raw"""
    import tempfile

    from . import archives

    for flag, value in server_only.items():
        if value:
            raise refuse(*UPLOAD_REFUSED[flag])
    if bool(paths) == (contents is not None):
        raise click.UsageError("Missing argument 'PATHS...': give the paths to upload, or -c TEXT (not both)")
    for p in paths:
        if "://" in p:
            raise refuse(f"uploading from a URL ({p}: the server downloads it)", "download it here and upload the file")
        if not os.path.exists(p):  # a dangling link too
            raise click.BadParameter(f"Path {p!r} does not exist.", param_hint="'[PATHS]...'")
    store = open_store(create=True)
    force = memo_mode(store, force, no_memo, memoize)
    # staged in the store's tmp/ as <pid>-...: what a killed upload unpacked or copied there is
    # deleted by the next command that writes (a system temp directory would keep it forever)
    with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-upload-", dir=os.path.join(store.home, "tmp")) as d:
        if contents is not None:  # as CodaLab: a file bundle holding the text, named `contents` by default
            paths = [os.path.join(d, "contents")]
            with open(paths[0], "w", encoding="utf-8") as f:
                f.write(contents)
        elif len(paths) == 1 and not pack and archives.extension(paths[0]) and os.path.isfile(paths[0]):
            # (a directory named data.zip is a directory, as in CodaLab's pack_files_for_upload)
            base = os.path.basename(os.path.normpath(paths[0]))  # named as a plain upload would be: made valid
            name = name or default_name(archives.strip_extension(base) or base)
            paths = [archives.unpack(paths[0], os.path.join(d, "unpacked"))]
        if exclude_patterns:  # CodaLab's: a file or directory is left out when its name matches
            paths = [copy_excluding(p, os.path.join(d, "x", os.path.basename(os.path.normpath(p))), exclude_patterns,
                                    follow_symlinks) for p in paths]  # same base names: same default name
        bundle, reused = store.upload(paths, name, description, tags, follow_symlinks, bool(force))
    extra = {k: v for k, v in (("license", license), ("source_url", source_url)) if v}
    if extra and not reused:
        bundle = store.edit_metadata(bundle, extra)
    echo_uuid(bundle, reused)
    land(store, [bundle], worksheet_spec)


def copy_excluding(src, dest, patterns, follow_symlinks):
    """A copy of src without the entries that one of the patterns matches (see ignore)."""
    import fnmatch

    if any(fnmatch.fnmatch(os.path.basename(os.path.normpath(src)), p) for p in patterns):
        raise click.UsageError(f"-x leaves nothing of {src} to upload")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    def ignore(directory, names):
        # as CodaLab's `tar --exclude=PATTERN`: a pattern matches an entry's name, or its path's last
        # components (`sub/b.log` is ./sub/b.log and ./deep/sub/b.log), or its ./path, `*` matching '/'
        rel = os.path.relpath(directory, src)
        parts = [] if rel == "." else rel.split(os.sep)
        return {n for n in names for path in [parts + [n]]
                if any(fnmatch.fnmatchcase(x, p) for p in patterns
                       for x in ["/".join(path[i:]) for i in range(len(path))] + ["./" + "/".join(path)])}

    if os.path.isdir(src) and (follow_symlinks or not os.path.islink(src)):
        shutil.copytree(src, dest, symlinks=not follow_symlinks, ignore=ignore)
    else:
        shutil.copy2(src, dest, follow_symlinks=follow_symlinks)
    return dest


SUGAR_NOTE = ("comes from %...% in the command, CodaLab's inline dependency sugar; "
              "--no-desugar keeps % signs as typed")


def parse_deps(targets):
    return [spec.parse_key_target(t) for t in targets]


def request_options(f):
    opts = [
        click.option("--request-docker-image", help="Docker image to run in."),
        click.option("--request-time", help="Time limit, e.g. 30m, 2h, 1d."),
        click.option("--request-memory", help="Memory limit, e.g. 500m, 8g (default 2g)."),
        click.option("--request-disk", help="Disk to reserve, e.g. 20g."),
        click.option("--request-cpus", type=int, help="CPUs (default 1); also the run's thread count."),
        click.option("--request-gpus", type=int, help="GPUs (default 0)."),
        click.option("--request-queue", help="Worker queue (tag)."),
        click.option("--request-priority", type=int, help="Higher runs first."),
        click.option("--request-network", is_flag=True, default=None, help="Allow network access."),
        click.option("--exclude-patterns", multiple=True, help="Output paths to delete after the run."),
        click.option("--allow-failed-dependencies", is_flag=True, default=None,
                     help="Run even if a dependency failed."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def wait_and_report(store, bundles, tail):
    """-W/-t: wait for bundles; exit 1 if any did not end ready."""
    bad = []
    for b in bundles:
        b = store.wait(b, on_poll=Tail(store) if tail else None)
        if b.state != "ready":
            bad.append(f"{b.uuid} ({b.name}) {b.state}: {b.metadata.get('failure_message', '')}".rstrip(": "))
    if bad:
        raise click.ClickException("; ".join(bad))


class Tail:
    """Copy a running bundle's stdout/stderr to ours as they grow."""

    def __init__(self, store):
        self.store, self.offsets = store, {}

    def __call__(self, bundle):
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            try:  # through path_in: a run may have replaced its stdout with a link out of the bundle
                path = self.store.path_in(bundle, name)
                if not os.path.isfile(path):
                    continue
                with open(path, "rb") as f:
                    f.seek(self.offsets.get(name, 0))
                    data = f.read()
            except (OSError, CodaliteError):
                continue
            if data:
                self.offsets[name] = self.offsets.get(name, 0) + len(data)
                stream.write(data.decode(errors="replace"))
                stream.flush()


@cli.command()
@click.argument("args", nargs=-1, required=False)
@click.option("--command", "command_opt", hidden=True)
@metadata_options
@request_options
@click.option("--env", "env", multiple=True, metavar="NAME[=VALUE]",
              help="Set an env var in the run (NAME alone passes yours); part of the memo key.")
@click.option("--force", is_flag=True, help="Rerun even if an identical run is ready; later runs may reuse the new one.")
@memo_options
@worksheet_spec_option
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until it finishes; exit 1 unless ready.")
@click.option("-t", "--tail", is_flag=True, help="Wait and print its stdout/stderr as it runs.")
@click.option("--remote", "remote", metavar="NAME", help="Run it on this CodaLab remote (same uuid), then pull it.")
@click.option("--no-desugar", is_flag=True,
              help="Keep %...% in the command as typed (not CodaLab's inline dependencies).")
def run(args, command_opt, name, description, tags, env, force, no_memo, memoize, worksheet_spec, wait_, tail, remote,
        no_desugar, **requests):
    """Run a command in a new bundle where each dependency appears as ./KEY; prints its uuid.

    \b
    Example: codalite run :code data:raw 'python code/train.py --data data --out .' -n train
             codalite run :code --- python code/train.py --lr 0.1
             codalite run 'python %code%/train.py --data %data:raw%'   (b1:code, data:raw)"""
    args = list(args)
    if command_opt is None:
        if not args:
            raise click.UsageError("give the command as the last argument, quoted (or after ---)")
        command_opt = args.pop()
        # `cl run :raw` runs ':raw' as the command; a lone `key:bundle` last is almost surely a
        # forgotten command (a command that really looks like this goes after ---)
        if spec.looks_like_dependency(command_opt):
            raise click.UsageError(f"{command_opt!r} looks like a dependency, not a command: give the command "
                                   "as the last argument, quoted (or after ---)")
    bad = [a for a in args if not spec.looks_like_dependency(a)]
    if bad:
        raise click.UsageError(f"{bad[0]!r} is not a dependency (key:bundle[/path]); quote the whole command as one argument")
    # CodaLab's inline dependencies: `%target%`, `%key:target%`, `%:target%` in the command
    given, _ = spec.desugar_command(args, "")  # `:b` -> `b:b`, as CodaLab writes them
    targets, sugared = (given, command_opt) if no_desugar else spec.desugar_command(args, command_opt)
    sugar = targets[len(given):]
    env_vars = {}
    for item in env:
        key, eq, value = item.partition("=")
        if not spec.NAME_RE.match(key):
            raise click.BadParameter(f"{item!r}: use NAME=VALUE", param_hint="--env")
        env_vars[key] = value if eq else os.environ.get(key, "")
    requests = {k: v for k, v in requests.items() if v not in (None, ())}
    validate_requests(requests)  # before open_store: a refused run must not create a store
    store = Store.locate() and Store.find()  # names and ^N are read on the current worksheet, if any
    if store:
        args = [dep_on_worksheet(store, a, worksheet_spec) for a in args]
        sugar = [dep_on_worksheet(store, t, worksheet_spec) for t in sugar]
    deps = parse_deps(args)
    for t in sugar:
        try:
            deps.append(spec.parse_key_target(t))
        except UsageError as e:
            raise UsageError(f"{e} ({SUGAR_NOTE})") from None
    keys = [k for k, _ in deps]
    for i, k in enumerate(keys):  # as `cl run`: ./a and ./a/b cannot both be dependencies
        for other in keys[:i]:
            if k.startswith(other + "/") or other.startswith(k + "/"):
                raise click.UsageError(f"dependency key {k!r} is inside {other!r} (or the reverse); give them "
                                       "keys that do not nest")
    command_opt = sugared
    store = store or open_store(create=True)
    force = memo_mode(store, force, no_memo, memoize)
    for key, target in deps[len(args):]:  # say where a dependency from %...% came from if it is not found
        try:
            store.resolve_target(target)
        except CodaliteError as e:
            kind = UsageError if isinstance(e, UsageError) else CodaliteError
            raise kind(f"{e} (dependency {key}:{target.text} {SUGAR_NOTE})") from None
    if remote:
        from .cli_remote import run_remote
        if env_vars:
            raise click.UsageError("--env is not supported with --remote (CodaLab runs take no env vars)")
        bundle, reused = run_remote(store, remote, command_opt, deps, name, description, tags,
                                    requests, bool(force), wait=True)
        echo_uuid(bundle, reused)
        land(store, [bundle], worksheet_spec)
        if bundle.state != "ready":
            raise click.ClickException(f"{bundle.uuid} ({bundle.name}) {bundle.state} on {remote}: "
                                       f"{bundle.metadata.get('failure_message', '')}".rstrip(": "))
        return
    bundle, reused = store.run(command_opt, deps, name, description, tags, requests, env_vars, force)
    echo_uuid(bundle, reused)
    land(store, [bundle], worksheet_spec)
    notice = None if requests.get("request_docker_image") else sandbox.notice_once(store.home)
    if notice:
        click.echo(notice, err=True)
    if wait_ or tail:
        wait_and_report(store, [bundle], tail)


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@metadata_options
@click.option("--force", is_flag=True, help="Make a new bundle even if an identical one exists.")
@memo_options
@worksheet_spec_option
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until it is ready.")
def make(targets, name, description, tags, force, no_memo, memoize, worksheet_spec, wait_):
    """Make a bundle out of other bundles' paths: `key:bundle/path ...`, or one `bundle/path`."""
    store = Store.locate() and Store.find()
    if store:
        targets = [dep_on_worksheet(store, t, worksheet_spec) for t in targets]
    deps = [spec.parse_key_target(t) if ":" in t else ("", spec.parse_target(t)) for t in targets]
    store = store or open_store(create=True)
    bundle, reused = store.make(deps, name, description, tags, memo_mode(store, force, no_memo, memoize))
    echo_uuid(bundle, reused)
    land(store, [bundle], worksheet_spec)
    if wait_:
        wait_and_report(store, [bundle], False)


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-n", "--name", callback=check_name, help="Name of the new final bundle.")
@click.option("--depth", default=10, show_default=True, type=click.IntRange(min=1),
              help="How far downstream of the old inputs to rerun.")
@click.option("-i", "--dry-run", is_flag=True, help="Only print what would be rerun.")
@click.option("--force", is_flag=True, help="New bundles even where identical ones exist.")
@memo_options
@worksheet_spec_option
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until they finish.")
def mimic(bundles, name, depth, dry_run, force, no_memo, memoize, worksheet_spec, wait_):
    """Rerun by analogy, as `cl mimic`: `mimic RUN` reruns RUN; `mimic A B` reruns everything downstream
    of A with B in its place; `mimic A X B -n Y` only what X was made from (X's copy is named Y);
    several inputs: `mimic A1 A2 X B1 B2`."""
    store = Store.find()
    found = resolve_all(store, bundles, worksheet_spec)
    do_mimic(store, found, name, depth, dry_run, memo_mode(store, force, no_memo, memoize), worksheet_spec, wait_)


def do_mimic(store, found, name, depth, dry_run, force, worksheet_spec, wait_):
    n = len(found) // 2
    if len(found) == 1:
        if dry_run:
            click.echo(f"{found[0].uuid} ({found[0].name}) would be rerun")
            return
        pairs = store.mimic(found[0], None, name, depth)
    else:
        olds, output, news = found[:n], (found[n] if len(found) % 2 else None), found[len(found) - n:]
        if dry_run:
            for before, _ in store.mimic_analogy(olds, news, output, name, depth, force, dry_run=True):
                click.echo(f"{before.uuid} ({before.name}) would be rerun")
            return
        pairs = store.mimic_analogy(olds, news, output, name, depth, force)
    for before, after in pairs:
        click.echo(f"{before.uuid} -> {after.uuid} ({after.name})", err=True)
        click.echo(after.uuid)
    land(store, [after for _, after in pairs], worksheet_spec)
    if wait_:
        wait_and_report(store, [after for _, after in pairs], False)


@cli.command()
@click.argument("macro_name")
@click.argument("bundles", nargs=-1, required=True)
@click.option("-n", "--name", callback=check_name, help="Name of the new output bundle.")
@click.option("--depth", default=10, show_default=True, type=click.IntRange(min=1),
              help="How far upstream of MACRO-out to look for its inputs.")
@click.option("-i", "--dry-run", is_flag=True, help="Only print what would be rerun.")
@click.option("--force", is_flag=True, help="New bundles even where identical ones exist.")
@memo_options
@worksheet_spec_option
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until they finish.")
def macro(macro_name, bundles, name, depth, dry_run, force, no_memo, memoize, worksheet_spec, wait_):
    """`cl macro M A B name:C`: the same as `mimic M-in1 M-in2 M-in-name M-out A B C` (bundles named
    M-in1, ..., M-in-NAME and M-out show the macro by example)."""
    store = Store.find()
    # as `cl macro`: the output is named `new` unless -n; a copy named M-out would be what the next
    # `macro M` takes for the macro's own output
    name = name or "new"
    olds, news, numbered = [], [], 0
    for text in bundles:
        key, value = spec.split_key_target(text)  # `name:C` is the input named M-in-name
        if key is None:
            numbered += 1
            olds.append(f"{macro_name}-in{numbered}")
        else:
            if not spec.NAME_RE.match(key):
                raise UsageError(f"malformed macro input {text!r}: use BUNDLE or NAME:BUNDLE")
            olds.append(f"{macro_name}-in-{key}")
        news.append(value)
    specs = olds + [f"{macro_name}-out"] + news
    found = resolve_all(store, specs, worksheet_spec)
    do_mimic(store, found, name, depth, dry_run, memo_mode(store, force, no_memo, memoize), worksheet_spec, wait_)


# --- looking at bundles -------------------------------------------------------------------------

@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-t", "--tail", is_flag=True, help="Print stdout/stderr while waiting.")
@click.option("--timeout", type=float, callback=lambda ctx, p, v: v if v is None or (math.isfinite(v) and v >= 0)
              else _bad(f"{v} is not a number of seconds"), help="Give up after this many seconds (exit 1).")
def wait(bundles, tail, timeout):
    """Wait until bundles are ready, failed or killed; exit 1 unless all are ready."""
    store = Store.find()
    resolved = resolve_all(store, bundles)
    if timeout is not None:
        for b in resolved:
            b = store.wait(b, timeout=timeout)
            if not b.final:
                raise click.ClickException(f"{b.uuid} ({b.name}) is still {b.state} after {timeout:g}s")
    wait_and_report(store, resolved, tail)
    for b in resolved:
        click.echo(b.uuid)


@cli.command()
@click.argument("target")
@click.option("--head", type=click.IntRange(min=0), help="Only the first N lines.")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines.")
def cat(target, head, tail):
    """Print a file in a bundle (`bundle/path`), or list a directory."""
    store = Store.find()
    bundle, subpath = store.resolve_target(on_worksheet(store, target))
    path = store.path_in(bundle, subpath)
    if os.path.isdir(path):
        rows = []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)  # a link is listed as a link, never followed
            kind = ("link" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode)
                    else "file" if stat.S_ISREG(st.st_mode) else "special")
            rows.append((hashing.shown(entry.name), kind, spec.format_size(st.st_size) if kind == "file" else ""))
        print_table(["name", "type", "size"], rows)
        return
    with open(path, "rb") as f:
        data = f.read()
    if head is not None or tail is not None:
        lines = data.splitlines(keepends=True)
        lines = lines[:head] if head is not None else lines
        lines = lines[max(0, len(lines) - tail):] if tail is not None else lines  # --tail 0: nothing ([-0:] is all)
        data = b"".join(lines)
    sys.stdout.buffer.write(data)


INFO_FIELDS = ("uuid", "name", "bundle_type", "state", "command", "dependencies", "created", "time",
               "memory_max", "exitcode", "failure_message", "data_size", "content_hash", "memo_key",
               "memo_hit_of", "location")


def info_fields(store, b):
    md = b.metadata
    out = {"uuid": b.uuid, "bundle_type": b.bundle_type, "state": b.state, "command": b.command,
           "dependencies": [f"{d.child_path}:{d.target()}" for d in b.dependencies],
           "content_hash": b.content_hash, "memo_key": b.memo_key, "location": store.location(b)}
    out.update(md)
    for k in ("created", "started", "last_updated"):
        if isinstance(out.get(k), (int, float)):
            out[k] = datetime.datetime.fromtimestamp(out[k]).isoformat(timespec="seconds")
    return out


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-f", "--field", "fields", help="Comma-separated fields to print, one value a line.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Also its top-level contents, stdout/stderr tails, children "
              "and host worksheets (as `cl info -v`).")
@worksheet_spec_option
def info(bundles, fields, as_json, verbose, worksheet_spec):
    """Show a bundle's metadata, state, dependencies, memo key, times and exit code."""
    store = Store.find()
    for b in resolve_all(store, bundles, worksheet_spec):
        data = info_fields(store, b)
        if verbose:
            data.update(verbose_fields(store, b))
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        elif fields:
            for f in fields.split(","):
                value = data.get(f.strip())
                click.echo(" ".join(value) if isinstance(value, list) else ("" if value is None else value))
        else:
            order = [k for k in INFO_FIELDS if k in data] + sorted(k for k in data if k not in INFO_FIELDS
                                                                   and k not in VERBOSE_FIELDS)
            for k in order:
                value = data[k]
                if value in (None, "", []):
                    continue
                if k == "dependencies":
                    for d, dep in zip(value, b.dependencies):
                        parent = store.name_of(dep.parent_uuid)
                        click.echo(f"dependency: {d}" + (f" ({parent})" if parent is not None else " (missing)"))
                    continue
                if k in ("memory_max", "data_size"):
                    value = spec.format_size(value)
                elif k == "time":
                    value = spec.format_duration(value)
                click.echo(f"{k}: {value if not isinstance(value, list) else ' '.join(map(str, value))}")
        if verbose and not as_json and not fields:
            print_verbose(data)


VERBOSE_FIELDS = ("children", "host_worksheets", "contents", "stdout", "stderr")


def verbose_fields(store, b):
    """`cl info -v`: children, host worksheets, the top-level contents and the tails of stdout/stderr."""
    from .worksheets.model import host_worksheets

    children = sorted(store.get_many(store.children(b.uuid)), key=lambda c: c.id)
    out = {"children": [f"{c.uuid} ({c.name})" for c in children],
           "host_worksheets": [f"{u} ({n})" for u, n in host_worksheets(store, b.uuid)]}
    try:
        path = store.path_in(b)
    except CodaliteError:
        return out
    if os.path.isdir(path):
        out["contents"] = sorted(hashing.shown(e) for e in os.listdir(path))
        for name in ("stdout", "stderr"):
            f = os.path.join(path, name)
            if os.path.isfile(f) and not os.path.islink(f):
                with open(f, "rb") as fh:
                    fh.seek(max(0, os.path.getsize(f) - 2000))
                    out[name] = fh.read().decode(errors="replace")
    return out


def print_verbose(data):
    for k in VERBOSE_FIELDS:
        value = data.get(k)
        if k in ("stdout", "stderr"):
            if value:
                click.echo(f"{k} (last lines):")
                click.echo("  " + "\n  ".join(value.rstrip("\n").split("\n")[-10:]))
        else:
            click.echo(f"{k}:" + "".join(f"\n  {v}" for v in value or []))


def bundle_rows(bundles):
    return [(b.uuid[:10], b.name, b.bundle_type, b.summary()[:60], spec.format_size(b.metadata.get("data_size")),
             b.state) for b in bundles]


BUNDLE_HEADERS = ["uuid", "name", "type", "summary", "size", "state"]


@cli.command()
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(0, spec.INDEX_MAX),
              help="How many of the newest bundles.")
@click.option("-u", "--uuid-only", is_flag=True, help="Print only uuids.")
def ls(limit, uuid_only):
    """List the newest bundles."""
    bundles = Store.find().ls(limit)
    if uuid_only:
        click.echo("\n".join(b.uuid for b in bundles))
    else:
        print_table(BUNDLE_HEADERS, bundle_rows(bundles))


@cli.command()
@click.argument("keywords", nargs=-1)
@click.option("-u", "--uuid-only", is_flag=True, help="Print only uuids.")
def search(keywords, uuid_only):
    """Search bundles with CodaLab's keywords: words (in uuid or name), key=value (state=failed,
    exitcode=0, name=train%, tags=a,b), host_worksheet=WS, dependency=B, .floating, .before=/.after=DATE,
    key=.sort/.sort-, .limit=N (10), .offset=N, .count, size=.sum, .format=size (of .count/.sum)."""
    result = search_bundles(Store.find(), keywords)
    if not isinstance(result, list):
        click.echo(str(result))  # as `cl search`: print(result), so a sum over nothing is None
    elif uuid_only:
        click.echo("\n".join(b.uuid for b in result))
    else:
        print_table(BUNDLE_HEADERS, bundle_rows(result))


# --- changing and checking ----------------------------------------------------------------------

@cli.command()
@click.argument("bundles", nargs=-1, required=True)
def kill(bundles):
    """Stop running (or queued) bundles; they end killed."""
    store = Store.find()
    for b in resolve_all(store, bundles):
        store.kill(b)
        click.echo(b.uuid)


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Also delete every bundle that depends on them.")
@click.option("--force", is_flag=True, help="Delete even if other bundles depend on them.")
@click.option("-i", "--dry-run", is_flag=True, help="Only print what would be deleted.")
@click.option("-d", "--data-only", is_flag=True, hidden=True)
def rm(bundles, recursive, force, dry_run, data_only):
    """Delete bundles and their contents."""
    if data_only:
        raise click.UsageError("`rm -d` (keep a bundle's metadata, drop its contents) is a CodaLab feature codalite "
                               "does not have: a bundle is its contents (memo and fsck rely on them); "
                               "`codalite rm` deletes both")
    store = Store.find()
    for uuid in store.rm(resolve_all(store, bundles), recursive, force, dry_run):
        click.echo(uuid)


@cli.command()
@click.argument("bundle")
def why(bundle):
    """Explain why a run was not a memo hit: what differs from the nearest earlier run."""
    store = Store.find()
    b = store.resolve(on_worksheet(store, bundle))
    other, lines = store.why(b)
    if other:
        click.echo(f"{b.uuid} ({b.name}) vs {other.uuid} ({other.name}, {other.state}):")
    for line in lines:
        click.echo(f"  {line}")


@cli.command()
@click.option("--repair", is_flag=True, help="Delete what crashes left (and put back a killed rm's bundles).")
def fsck(repair):
    """Re-verify every ready bundle's content hash; exit 1 on any problem."""
    store = Store.find()
    if repair:
        for line in store.repair():
            click.echo(line)
    problems = store.fsck()
    for p in problems:
        click.echo(p)
    for entry in store.leftovers():
        click.echo(f"note: {entry}: left by an interrupted upload, make, rm or run; `codalite fsck --repair` deletes it")
    n = store.count("ready")
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) found in {n} ready bundles")
    click.echo(f"{n} ready bundles verified, no problems")


@cli.command()
@click.option("--cpus", type=click.IntRange(min=1), help="Use at most this many CPUs (default: all).")
@click.option("--gpus", type=click.IntRange(min=0), help="Use this many GPUs (default: all visible).")
@click.option("--memory", help="Memory to pack runs into (default: all), e.g. 16g.")
@click.option("--exit-when-idle", is_flag=True, help="Exit after 2 s with nothing to do.")
def worker(cpus, gpus, memory, exit_when_idle):
    """Run the local worker in the foreground (one per store)."""
    from .worker import Worker

    store = Store.find()
    size = spec.parse_size(memory) if memory is not None else None
    if size is not None and size < 1:  # 0 would silently mean "all of it"
        raise click.BadParameter(f"{memory!r} is not an amount of memory for runs; give e.g. 16g", param_hint="--memory")
    w = Worker(store, cpus=cpus, gpus=gpus, memory=size,
               exit_when_idle=exit_when_idle)
    stamp = time.strftime("%H:%M:%S")
    click.echo(f"[{stamp}] worker {os.getpid()}: {len(w.cpus)} CPUs, {len(w.gpus)} GPUs, "
               f"{spec.format_size(w.memory)} for runs in {store.home}", err=True)
    if not w.serve():
        raise click.ClickException("another worker is already running on this store")


# The other faces: each module lists its commands and imports only cli_common, never this module
from .cli_codalab import COMMANDS as _codalab  # noqa: E402
from .cli_env import COMMANDS as _env  # noqa: E402
from .cli_recipes import COMMANDS as _recipes  # noqa: E402
from .cli_remote import COMMANDS as _remote  # noqa: E402
from .cli_worksheets import COMMANDS as _worksheets  # noqa: E402

for _c in _recipes + _remote + _worksheets + _env + _codalab:
    cli.add_command(_c)
