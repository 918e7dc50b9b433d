"""CLI commands for worksheets, paper tables and the web UI: thin click layers over
codalite.worksheets, codalite.paper and codalite.web. Registered by codalite/cli.py from COMMANDS."""

import json
import os
import sys

import click

from .cli_common import (
    cannot_write, check_output, current_worksheet, expand_specs, library_errors, on_worksheet, print_table, read_text, refuse,
    resolve_all,
)
from .errors import UsageError
from .hashing import write_atomic
from .store import Store


def worksheet_option(f):
    f = click.option("--dest-worksheet", "dest", metavar="WS", help="The worksheet to add to (CodaLab's name for -w).")(f)
    return click.option("-w", "--worksheet", "ws", help="Worksheet (name or uuid) to add to (default: the current "
                        "one, `codalite work`).")(f)


def target_worksheet(store, ws, dest):
    """-w / --dest-worksheet, else the current worksheet; instances are refused in one line."""
    from .worksheets import model

    if ws and dest and ws != dest:
        raise UsageError("give the worksheet once (-w or --dest-worksheet)")
    name = ws or dest or current_worksheet(store)
    if name is None:
        raise UsageError("Missing option '-w' WS (or --dest-worksheet WS): no current worksheet; "
                         "choose one with `codalite work WS`")
    if "::" in name:
        raise refuse(f"another instance's worksheet ({name})", "push bundles with `codalite push --remote NAME`")
    return model.get(store, name)


# --- worksheets ----------------------------------------------------------------------------------

@click.command()
@click.argument("name")
@click.option("-t", "--title", default="", help="Title shown above the worksheet.")
@library_errors
def new(name, title):
    """Create an empty worksheet; prints its uuid."""
    from .worksheets import model

    click.echo(model.new(Store.find(), name, title).uuid)


@click.group()
def add():
    """Append to a worksheet: `add bundle SPEC... [-w WS]`, `add text TEXT`, `add worksheet WS2`."""


@add.command("bundle")
@click.argument("bundles", nargs=-1, required=True)
@worksheet_option
@click.option("-d", "--copy-dependencies", is_flag=True, help="Also add the bundles' dependencies (before them).")
@library_errors
def add_bundle(bundles, ws, dest, copy_dependencies):
    """Append bundle lines (uuid, prefix, name, name^N, ^N, ^1-3); names count the current worksheet."""
    from .worksheets import model

    store = Store.find()
    target = target_worksheet(store, ws, dest)
    found = resolve_all(store, bundles)
    if copy_dependencies:
        with_deps = []
        for b in found:
            with_deps += [p for p in store.get_many(d.parent_uuid for d in b.dependencies) if p not in with_deps]
            with_deps.append(b)
        found = with_deps
    model.add_bundles(store, target, found)


@add.command("text")
@click.argument("text")
@worksheet_option
@library_errors
def add_text(text, ws, dest):
    """Append markup or a directive (e.g. '% display table run'); newlines make several lines."""
    from .worksheets import model

    store = Store.find()
    model.add_text(store, target_worksheet(store, ws, dest), text)


@add.command("worksheet")
@click.argument("worksheets", nargs=-1, required=True)
@worksheet_option
@library_errors
def add_worksheet(worksheets, ws, dest):
    """Append worksheet lines (subworksheets) to a worksheet."""
    from .worksheets import model
    from .worksheets.parse import WORKSHEET, Item

    store = Store.find()
    target = target_worksheet(store, ws, dest)
    subs = [model.get(store, w, with_items=False) for w in worksheets]
    model.add_items(store, target, [Item(WORKSHEET, s.uuid, 0, subworksheet_uuid=s.uuid) for s in subs])


@click.command()
@click.argument("bundles", nargs=-1, required=True)
@click.option("-n", "--index", type=click.IntRange(min=1), help="Which occurrence of the bundle (1 = the last).")
@click.option("-w", "--worksheet-spec", "ws", help="The worksheet (default: the current one).")
@library_errors
def detach(bundles, index, ws):
    """Take bundles off a worksheet without deleting them (`cl detach B`; -n N: its N-th last occurrence)."""
    store = Store.find()
    target = target_worksheet(store, ws, None)
    found = [store.resolve(on_worksheet(store, b, target.name)) for b in expand_specs(bundles)]
    with store.tx():
        for b in found:
            rows = store.bundle_item_ids(target.uuid, b.uuid)
            if not rows:
                raise UsageError(f"bundle {b.uuid} ({b.name}) is not on worksheet {target.name}")
            if index is not None and index > len(rows):
                raise UsageError(f"bundle {b.uuid} is on {target.name} {len(rows)} time(s), not {index}")
            if index is None and len(rows) > 1:
                raise UsageError(f"bundle {b.uuid} is on {target.name} {len(rows)} times; say which with -n N "
                                 "(1 = the last)")
            store.delete_worksheet_item(rows[(index or 1) - 1])
    for b in found:
        click.echo(b.uuid)


@click.command()
@click.argument("worksheet", required=False)
@click.option("-f", "--file", "path", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Replace the worksheet's source with this file ('-' for stdin).")
@click.option("-n", "--name", help="Rename the worksheet.")
@click.option("-t", "--title", help="Set the title.")
@click.option("-T", "--tags", "--tag", "tags", multiple=True, help="New tags: `wedit WS -T a b` (every word up to "
              "the next option, as CodaLab); `-T` alone clears them.")
@click.option("-o", "--owner-spec", hidden=True)
@click.option("--freeze", is_flag=True, hidden=True)
@click.option("--unfreeze", is_flag=True, hidden=True)
@click.option("--anonymous", is_flag=True, hidden=True)
@click.option("--not-anonymous", is_flag=True, hidden=True)
@library_errors
def wedit(worksheet, path, name, title, tags, owner_spec, freeze, unfreeze, anonymous, not_anonymous):
    """Edit a worksheet (`cl wedit [WS] -f FILE|-`, `-n NAME`, `-t TITLE`, `-T TAG...`); WS defaults to the
    current one."""
    from .worksheets import model

    if owner_spec or freeze or unfreeze or anonymous or not_anonymous:
        raise refuse("worksheet owners, freezing and anonymity", "a codalite store has one user")
    store = Store.find()
    name_ = worksheet or current_worksheet(store)
    if name_ is None:
        raise UsageError("which worksheet? give its name, or choose one with `codalite work WS`")
    if path is None and name is None and title is None and not tags:
        raise UsageError("nothing to edit: give -f FILE (or - for stdin), -n NAME, -t TITLE or -T TAG... "
                         "(codalite opens no editor)")
    ws = model.get(store, name_)
    if name is not None:
        from . import spec
        spec.check_name(name)
    text = read_text(path, "-f") if path else None
    if name is not None and name != ws.name and store.worksheet_row(name) is not None:
        raise UsageError(f"a worksheet named {name!r} already exists; pick another name")
    with store.tx():  # all or nothing
        if text is not None:
            model.set_source(store, ws, text)
        store.edit_worksheet(ws.uuid, name=name, title=title)
        if tags:
            store.set_config_value(TAGS + ws.uuid, json.dumps([t for t in tags if t]))
    click.echo(ws.uuid)


TAGS = "worksheet_tags:"  # a worksheet's tags live in the store's config table (the schema has no column)


def worksheet_tags(store, uuid):
    return json.loads(store.config_value(TAGS + uuid, "[]"))


@click.command()
@click.argument("keywords", nargs=-1)
@click.option("-u", "--uuid-only", is_flag=True, help="Print only uuids.")
@library_errors
def wls(keywords, uuid_only):
    """List stored worksheets (and the project's worksheets/*.ws files)."""
    from .worksheets import model

    store = Store.find()
    tags = [k.partition("=")[2] for k in keywords if k.startswith(("tag=", "tags="))]
    keywords = [k for k in keywords if not k.startswith(("tag=", "tags="))]
    bad = [k for k in keywords if "=" in k and k.partition("=")[0] not in ("name", ".limit", ".offset")]
    if bad:
        raise UsageError(f"wls keyword {bad[0]!r} is not supported here: use words, name=, tag= and .limit= "
                         "(one user: owner= and group= have no meaning)")
    found = model.list_worksheets(store, keywords)
    for t in tags:  # tag=a,b: any of them, as CodaLab
        found = [w for w in found if set(t.split(",")) & set(worksheet_tags(store, w.uuid))]
    if uuid_only:
        click.echo("\n".join(w.uuid for w in found))
        return
    rows = [(w.uuid[:10], w.name, w.title, model.count_items(store, w.uuid)) for w in found]
    root = model.project_dir(store)
    rows += [("(file)", os.path.relpath(p, root), "", "") for p in model.worksheet_files(store)
             if not keywords or any(k in p for k in keywords)]
    print_table(["uuid", "name", "title", "items"], rows)


@click.command(name="print")
@click.argument("worksheet", required=False)
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write a static HTML page here.")
@click.option("-r", "--raw", is_flag=True, help="Print the source, bundle lines regenerated.")
@click.option("--base-url", default="http://127.0.0.1:8765", show_default=True,
              help="Where bundle links point in HTML (`codalite serve`, or a CodaLab instance).")
@library_errors
def print_(worksheet, html_out, raw, base_url):
    """Render a worksheet (stored name/uuid, or a .ws file; default: the current one) in the terminal or as HTML."""
    from rich.console import Console

    from .worksheets import interpret, model, render

    store = Store.find()
    worksheet = worksheet or current_worksheet(store)  # `cl print` prints the current worksheet
    if worksheet is None:
        raise UsageError("Missing argument 'WORKSHEET': no current worksheet; name one or choose it with "
                         "`codalite work WS`")
    try:
        ws = model.open_worksheet(store, worksheet)
    except UnicodeDecodeError as e:
        raise click.BadParameter(f"{worksheet} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                 f"{e.start}); save it as UTF-8", param_hint="WORKSHEET") from None
    if raw:
        click.echo(model.source(store, ws), nl=False)
        return
    if html_out == "":
        raise UsageError("--html needs a file name (e.g. --html page.html)")
    if html_out:
        check_output(html_out, "--html", getattr(ws, "path", None), "the worksheet's source file", store)
    result = interpret(store, ws.items)
    if html_out:
        # a value a run wrote may hold a lone surrogate ("\ud800" in its JSON): shown as U+FFFD, not fatal
        page = render.to_html(store, result, ws.title or ws.name, base_url).encode(errors="replace").decode()
        try:
            write_atomic(html_out, page)  # all or nothing: a full disk leaves the old page, not half a new one
        except OSError as e:
            raise cannot_write(html_out, e, "--html") from None
        click.echo(html_out)
        return
    sys.stdout.reconfigure(errors="replace")  # as above: one odd value must not abort the whole worksheet
    # Piped or logged output (make demo | tee) gets 120 columns rather than rich's 80, which wraps table cells.
    width = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    render.print_terminal(result, Console(file=sys.stdout, highlight=False, width=width),
                          header=render.worksheet_header(ws))  # `cl print`'s header lines



@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (local only by default).")
@click.option("--port", default=8765, show_default=True, help="Port (0 picks a free one).")
@library_errors
def serve(host, port):
    """Browse worksheets and bundles in a web browser (live tables, graphs, files, stdout tail)."""
    from .web.app import make_server

    server = make_server(Store.find(), host, port)  # a bad --host/--port: UsageError (2); port in use: 1
    click.echo(f"codalite serve: {server.url}  (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- paper tables --------------------------------------------------------------------------------

@click.command()
@click.argument("declaration", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", default="paper", show_default=True, help="Directory to write into.")
@click.option("--base-url", default="http://127.0.0.1:8765", show_default=True,
              help="Where cells link: `codalite serve`, or a CodaLab instance (its /bundles/<uuid> pages).")
@library_errors
def export(declaration, out_dir, base_url):
    """Export paper tables and figures declared in a YAML file (or ```paper blocks in a .ws) as LaTeX,
    Markdown, CSV (figures also SVG) and provenance JSON."""
    from . import paper

    store = Store.find()
    specs = paper.load(declaration)
    check_output(out_dir, "-o", declaration, "the declaration", store)
    try:  # an unwritable -o is the user's to fix: say so before computing anything
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise cannot_write(out_dir, e, "-o") from None
    computed = [paper.compute(store, spec) for spec in specs]  # all or nothing: a late failure writes no file
    for path in paper.export_all(store, computed, out_dir, base_url, source=os.path.abspath(declaration)):
        click.echo(path)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@library_errors
def verify(paths):
    """Re-derive every number of exported tables and figures (a directory such as paper/, or
    .provenance.json files) from the store; exit 1 naming each cell or figure line that no longer
    matches or is stale, and each file that is not what export wrote."""
    from . import paper
    from .paper.verify import counted

    store = Store.find()
    cells, lines, problems = 0, 0, []
    for path in paths:
        found = paper.verify(store, path)
        cells, lines, problems = cells + found.cells, lines + found.lines, problems + found.problems
    for p in problems:
        click.echo(p)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {counted(cells, lines)}")
    click.echo(f"{counted(cells, lines)} verified: every number re-derived from its bundles")


@click.command()
@click.argument("table")
@click.argument("row")
@click.argument("column")
@library_errors
def trace(table, row, column):
    """Print the chain of executions behind one cell: TABLE is a name in paper/ or a
    .provenance.json file; ROW and COLUMN are labels as printed (`a / b` for several variables).
    For a figure, ROW is a line's label and COLUMN its y key."""
    from .paper.verify import find_table, trace as trace_cell
    from .worksheets.model import project_dir

    store = Store.find()
    path = find_table(table, [os.getcwd(), project_dir(store)])
    for line in trace_cell(store, path, row, column):
        click.echo(line)


wsearch = click.Command("wsearch", callback=wls.callback, params=wls.params,
                        help="The same as `codalite wls` (CodaLab's alias).", short_help="The same as `codalite wls`.")

COMMANDS = [new, add, detach, wedit, wls, wsearch, print_, serve, export, verify, trace]
