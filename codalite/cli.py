"""The `codalite` command line: a thin click layer that parses, calls the library, and formats.

Exit codes: 2 for what the user typed wrong (click's usage errors, malformed targets, sizes,
durations), 1 for failures found while working (unknown bundle, failed run, corrupt store).
"""

import datetime
import json
import math
import os
import shlex
import shutil
import sqlite3
import stat
import sys
import time

import click

from . import hashing, sandbox, spec
from .errors import CodaliteError, UsageError
from .search import search as search_bundles
from .store import Store, validate_requests
from .table import print_table


def main():
    argv = sys.argv[1:]
    # `codalite run key:b ... --- python train.py --lr 0.1`: the rest of argv is the command
    if "---" in argv:
        i = argv.index("---")
        argv = argv[:i] + ["--command", shlex.join(argv[i + 1 :])]
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


def fail(e):
    """Library errors become one-line click errors: usage (exit 2) or failure (exit 1)."""
    if isinstance(e, UsageError):
        err = click.UsageError(str(e))
        err.codalite = True  # says what to do already: no `--help` hint
        return err
    return click.ClickException(str(e))


def os_error(e):
    where = " -> ".join(os.fsencode(f).decode("utf-8", "backslashreplace") if isinstance(f, (str, bytes)) else str(f)
                        for f in (e.filename, e.filename2) if f is not None)
    return f"{e.strerror or e}" + (f": {where}" if where else "")


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


def open_store(create=False):
    home = Store.locate()
    if home is None and create:
        store = Store.init(".")
        click.echo(f"Initialized an empty codalite store in {store.home}", err=True)
        return store
    return Store.find()


def _bad(message):
    raise click.BadParameter(message)


def echo_uuid(bundle, reused):
    if reused:
        click.echo(f"memo hit: {bundle.uuid} ({bundle.name}) is {bundle.state}, reusing it; --force reruns", err=True)
    click.echo(bundle.uuid)


# --- creating bundles ---------------------------------------------------------------------------

@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory):
    """Create an empty store (.codalite/) in DIRECTORY."""
    store = Store.init(directory)
    click.echo(f"Initialized an empty codalite store in {store.home}")


def check_name(ctx, param, value):
    """-n: an empty or malformed name is refused (not silently replaced by the default)."""
    if value is not None:
        try:
            spec.check_name(value)
        except UsageError as e:
            raise click.BadParameter(str(e)) from None
    return value


def metadata_options(f):
    f = click.option("--tags", multiple=True, help="Tags (repeat the flag for several).")(f)
    f = click.option("-d", "--description", default="", help="Description.")(f)
    f = click.option("-n", "--name", callback=check_name, help="Name (letters, digits, _ . -).")(f)
    return f


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@metadata_options
@click.option("-L", "--follow-symlinks", is_flag=True, help="Copy what symlinks point to.")
@click.option("--force", is_flag=True, help="Make a new bundle even if identical contents exist.")
def upload(paths, name, description, tags, follow_symlinks, force):
    """Upload files or directories as a dataset bundle; prints its uuid.

    Example: codalite upload data/ -n raw"""
    store = open_store(create=True)
    bundle, reused = store.upload(paths, name, description, tags, follow_symlinks, force)
    echo_uuid(bundle, reused)


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
@click.option("--force", is_flag=True, help="Rerun even if an identical run is ready (no memo).")
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until it finishes; exit 1 unless ready.")
@click.option("-t", "--tail", is_flag=True, help="Wait and print its stdout/stderr as it runs.")
@click.option("--remote", "remote", metavar="NAME", help="Run it on this CodaLab remote (same uuid), then pull it.")
@click.option("--no-desugar", is_flag=True,
              help="Keep %...% in the command as typed (not CodaLab's inline dependencies).")
def run(args, command_opt, name, description, tags, env, force, wait_, tail, remote, no_desugar, **requests):
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
    store = open_store(create=True)
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
                                    requests, force, wait=True)
        echo_uuid(bundle, reused)
        if bundle.state != "ready":
            raise click.ClickException(f"{bundle.uuid} ({bundle.name}) {bundle.state} on {remote}: "
                                       f"{bundle.metadata.get('failure_message', '')}".rstrip(": "))
        return
    bundle, reused = store.run(command_opt, deps, name, description, tags, requests, env_vars, force)
    echo_uuid(bundle, reused)
    notice = None if requests.get("request_docker_image") else sandbox.notice_once(store.home)
    if notice:
        click.echo(notice, err=True)
    if wait_ or tail:
        wait_and_report(store, [bundle], tail)


@cli.command()
@click.argument("targets", nargs=-1, required=True)
@metadata_options
@click.option("--force", is_flag=True, help="Make a new bundle even if an identical one exists.")
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until it is ready.")
def make(targets, name, description, tags, force, wait_):
    """Make a bundle out of other bundles' paths: `key:bundle/path ...`, or one `bundle/path`."""
    deps = [spec.parse_key_target(t) if ":" in t else ("", spec.parse_target(t)) for t in targets]
    store = open_store(create=True)
    bundle, reused = store.make(deps, name, description, tags, force)
    echo_uuid(bundle, reused)
    if wait_:
        wait_and_report(store, [bundle], False)


@cli.command()
@click.argument("old")
@click.argument("new", required=False)
@click.option("-n", "--name", help="Name of the new final bundle.")
@click.option("--depth", default=10, show_default=True, type=click.IntRange(min=1),
              help="How far downstream of OLD to rerun.")
@click.option("-W", "--wait", "wait_", is_flag=True, help="Wait until they finish.")
def mimic(old, new, name, depth, wait_):
    """Rerun OLD; or rerun everything downstream of OLD with NEW in its place (`cl mimic`)."""
    store = Store.find()
    pairs = store.mimic(store.resolve(old), store.resolve(new) if new else None, name, depth)
    for before, after in pairs:
        click.echo(f"{before.uuid} -> {after.uuid} ({after.name})", err=True)
        click.echo(after.uuid)
    if wait_:
        wait_and_report(store, [after for _, after in pairs], False)


# --- looking at bundles -------------------------------------------------------------------------

@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-t", "--tail", is_flag=True, help="Print stdout/stderr while waiting.")
@click.option("--timeout", type=float, callback=lambda ctx, p, v: v if v is None or (math.isfinite(v) and v >= 0)
              else _bad(f"{v} is not a number of seconds"), help="Give up after this many seconds (exit 1).")
def wait(bundles, tail, timeout):
    """Wait until bundles are ready, failed or killed; exit 1 unless all are ready."""
    store = Store.find()
    resolved = [store.resolve(b) for b in bundles]
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
    bundle, subpath = store.resolve_target(target)
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
        lines = lines[-tail:] if tail else lines
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
def info(bundles, fields, as_json):
    """Show a bundle's metadata, state, dependencies, memo key, times and exit code."""
    store = Store.find()
    for text in bundles:
        b = store.resolve(text)
        data = info_fields(store, b)
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        elif fields:
            for f in fields.split(","):
                value = data.get(f.strip())
                click.echo(" ".join(value) if isinstance(value, list) else ("" if value is None else value))
        else:
            order = [k for k in INFO_FIELDS if k in data] + sorted(k for k in data if k not in INFO_FIELDS)
            for k in order:
                value = data[k]
                if value in (None, "", []):
                    continue
                if k == "dependencies":
                    for d, dep in zip(value, b.dependencies):
                        parent = store.query("uuid = ?", (dep.parent_uuid,))
                        click.echo(f"dependency: {d}" + (f" ({parent[0].name})" if parent else " (missing)"))
                    continue
                if k in ("memory_max", "data_size"):
                    value = spec.format_size(value)
                elif k == "time":
                    value = spec.format_duration(value)
                click.echo(f"{k}: {value if not isinstance(value, list) else ' '.join(map(str, value))}")


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
    for text in bundles:
        b = store.resolve(text)
        store.kill(b)
        click.echo(b.uuid)


@cli.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Also delete every bundle that depends on them.")
@click.option("--force", is_flag=True, help="Delete even if other bundles depend on them.")
@click.option("-i", "--dry-run", is_flag=True, help="Only print what would be deleted.")
def rm(bundles, recursive, force, dry_run):
    """Delete bundles and their contents."""
    store = Store.find()
    for uuid in store.rm([store.resolve(b) for b in bundles], recursive, force, dry_run):
        click.echo(uuid)


@cli.command()
@click.argument("bundle")
def why(bundle):
    """Explain why a run was not a memo hit: what differs from the nearest earlier run."""
    store = Store.find()
    b = store.resolve(bundle)
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
@click.option("--cpus", type=int, help="Use at most this many CPUs (default: all).")
@click.option("--gpus", type=int, help="Use this many GPUs (default: all visible).")
@click.option("--memory", help="Memory to pack runs into (default: all), e.g. 16g.")
@click.option("--exit-when-idle", is_flag=True, help="Exit after 2 s with nothing to do.")
def worker(cpus, gpus, memory, exit_when_idle):
    """Run the local worker in the foreground (one per store)."""
    from .worker import Worker

    store = Store.find()
    w = Worker(store, cpus=cpus, gpus=gpus, memory=spec.parse_size(memory) if memory else None,
               exit_when_idle=exit_when_idle)
    stamp = time.strftime("%H:%M:%S")
    click.echo(f"[{stamp}] worker {os.getpid()}: {len(w.cpus)} CPUs, {len(w.gpus)} GPUs, "
               f"{spec.format_size(w.memory)} for runs in {store.home}", err=True)
    if not w.serve():
        raise click.ClickException("another worker is already running on this store")


# The other faces register last: they import helpers from this module.
from .cli_recipes import COMMANDS as _recipes  # noqa: E402
from .cli_remote import COMMANDS as _remote  # noqa: E402
from .cli_worksheets import COMMANDS as _worksheets  # noqa: E402
from . import cli_env  # noqa: E402,F401  (registers `codalite env` itself)

for _c in _recipes + _remote + _worksheets:
    cli.add_command(_c)
