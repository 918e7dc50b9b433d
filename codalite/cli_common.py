"""Helpers every command group shares (cli.py and cli_*.py import them from here, so no group
imports cli.py back: cli.py imports the groups and registers them, one direction only)."""

import functools
import os
import re

import click

from . import spec
from .errors import CodaliteError, StoreNotFound, UsageError
from .store import Store
from .table import print_table  # noqa: F401  (re-exported for the groups)


def fail(e):
    """Library errors become one-line click errors: usage (exit 2) or failure (exit 1)."""
    if isinstance(e, UsageError):
        err = click.UsageError(str(e))
        err.codalite = True  # says what to do already: no `--help` hint
        return err
    return click.ClickException(str(e))


def library_errors(f):
    """Library errors become one-line click errors (for commands outside the main Group's net)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except CodaliteError as e:
            raise fail(e) from None
    return wrapper


def refuse(feature, instead):
    """A CodaLab feature codalite does not have: one line naming it and what to use (exit 2)."""
    return fail(UsageError(f"{feature} is a CodaLab server feature that codalite does not have; {instead}"))


def os_error(e):
    where = " -> ".join(os.fsencode(f).decode("utf-8", "backslashreplace") if isinstance(f, (str, bytes)) else str(f)
                        for f in (e.filename, e.filename2) if f is not None)
    return f"{e.strerror or e}" + (f": {where}" if where else "")


def open_store(create=False):
    home = Store.locate()
    if home is None and create:
        store = Store.init(".")
        click.echo(f"Initialized an empty codalite store in {store.home}", err=True)
        return store
    return Store.find()


def bad(message):
    raise click.BadParameter(message)


def echo_uuid(bundle, reused):
    if reused:
        click.echo(f"memo hit: {bundle.uuid} ({bundle.name}) is {bundle.state}, reusing it; --no-memo makes a new "
                   "run (--force: a new run later runs may reuse)", err=True)
    click.echo(bundle.uuid)


def check_name(ctx, param, value):
    """-n: an empty or malformed name is refused (not silently replaced by the default)."""
    if value is not None:
        try:
            spec.check_name(value)
        except UsageError as e:
            raise click.BadParameter(str(e)) from None
    return value


def split_tags(tags):
    """--tags a --tags b, or CodaLab's `--tags a b` written as one quoted `--tags 'a b'`."""
    return [t for item in tags for t in item.split()]


def metadata_options(f):
    f = click.option("--tags", multiple=True, help="Tags (repeat the flag for several).")(f)
    f = click.option("-d", "--description", default="", help="Description.")(f)
    f = click.option("-n", "--name", callback=check_name, help="Name (letters, digits, _ . -).")(f)
    return f


def read_text(path, param_hint):
    """A file the user named ('-': stdin), as UTF-8 text; anything else is their mistake, in one line."""
    try:
        if path == "-":
            data = click.get_binary_stream("stdin").read()
            return data.decode("utf-8")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        shown = "stdin" if path == "-" else path
        raise click.BadParameter(f"{shown} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                                 "save it as UTF-8", param_hint=param_hint) from None


def cannot_write(path, e, param_hint):
    return click.BadParameter(f"cannot write {path}: {e.strerror or e}", param_hint=param_hint)


def check_output(path, flag, source=None, what="", store=None):
    """An output path the user typed (`--html`, `-o`) is replaced or written into: never `source`, the file
    the output is made from (`what` names it), nor anything in the store (as root, read-only bundle modes
    stop nothing): a typo there would destroy data. store: the one in use, else the one found here."""
    where = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    if store is None:
        try:
            store = Store.find()
        except StoreNotFound:
            pass
    if store is not None and store.overlaps(where, holding=False):  # files go into a folder holding it
        raise UsageError(f"{flag} {path}: that is inside the codalite store ({store.home}); write it elsewhere")
    if source and os.path.exists(path) and os.path.samefile(path, source):
        raise UsageError(f"{flag} {path}: that is {what} itself; write it elsewhere")


# --- CodaLab's current worksheet (`codalite work WS`) --------------------------------------------
# As in CodaLab, once one is chosen new uploads, runs and makes land on it, and bundle names and ^N
# count its bundles (newest item first); a uuid (prefix) or `ws//name` is found as before.

CURRENT = "current_worksheet"


def current_worksheet(store):
    """The name of the worksheet `codalite work` chose, or None when none is."""
    uuid = store.config_value(CURRENT)
    if not uuid:
        return None
    row = store.worksheet_row(uuid)
    if row is None:
        raise CodaliteError(f"the current worksheet {uuid} was deleted; choose one with `codalite work WS` "
                            "(or `codalite work --clear`)")
    return row["name"]


def on_worksheet(store, text, ws=None):
    """A bundle spec or target as CodaLab reads it: on the current (or given) worksheet unless it is
    a uuid (prefix) or names its worksheet already."""
    ws = ws or current_worksheet(store)
    if ws is None or not text or "//" in text or "::" in text:
        return text
    if spec.UUID_PREFIX_RE.match(text.split("/", 1)[0]):
        return text
    return f"{ws}//{text}"


def dep_on_worksheet(store, text, ws=None):
    """`key:target` with its target read on the current worksheet."""
    try:
        key, value = spec.split_key_target(text)
    except UsageError:
        return text
    if key is None:
        return on_worksheet(store, text, ws)
    return f"{key}:{on_worksheet(store, value, ws)}"


def expand_specs(specs):
    """CodaLab's `^1-3` (and `name^3-1`) ranges: ['a^1-3'] -> ['a^1', 'a^2', 'a^3'] (spec_util.expand_specs)."""
    out = []
    for s in specs:
        m = re.match(r"(.*\^)([0-9]+)-([0-9]+)$", s)
        if m:
            a, b = int(m.group(2)), int(m.group(3))
            if abs(a - b) > 10000:
                raise UsageError(f"bundle range {s!r} is too long (more than 10000 bundles)")
            out += [m.group(1) + str(i) for i in (range(a, b + 1) if a <= b else range(a, b - 1, -1))]
        else:
            out.append(s)
    return out


def resolve_all(store, specs, ws=None):
    """Bundles from what the user typed (ranges expanded, names on the current worksheet), all
    resolved before anything is done: ^1 ^2 are relative and an action could shift them."""
    return [store.resolve(on_worksheet(store, s, ws)) for s in expand_specs(specs)]


def land(store, bundles, ws=None):
    """New bundles go on the given or the current worksheet, as `cl upload/run/make` put them."""
    from .worksheets import model

    name = ws or current_worksheet(store)
    if name:
        model.add_bundles(store, model.get(store, name), bundles)


def worksheet_spec_option(f):
    return click.option("-w", "--worksheet-spec", "worksheet_spec", metavar="WS",
                        help="Operate on this worksheet instead of the current one (`codalite work`).")(f)
