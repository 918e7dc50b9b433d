"""CLI commands for worksheets, paper tables and the web UI: thin click layers over
codalite.worksheets, codalite.paper and codalite.web. Registered by codalite/cli.py from COMMANDS."""

import functools
import os
import sys

import click

from .errors import CodaliteError
from .store import Store


def library_errors(f):
    """Library errors become one-line click errors: usage (exit 2) or failure (exit 1)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from .cli import fail

        try:
            return f(*args, **kwargs)
        except CodaliteError as e:
            raise fail(e) from None
    return wrapper


def read_text(path, param_hint):
    """A file the user named, as UTF-8 text; anything else is their mistake, said in one line."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise click.BadParameter(f"{path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                                 "save it as UTF-8", param_hint=param_hint) from None


def cannot_write(path, e, param_hint):
    return click.BadParameter(f"cannot write {path}: {e.strerror or e}", param_hint=param_hint)


def worksheet_option(f):
    return click.option("-w", "--worksheet", "ws", required=True, help="Worksheet (name or uuid) to add to.")(f)


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
    """Append to a worksheet: `add bundle SPEC... -w WS` or `add text TEXT -w WS`."""


@add.command("bundle")
@click.argument("bundles", nargs=-1, required=True)
@worksheet_option
@library_errors
def add_bundle(bundles, ws):
    """Append bundle lines (uuid, prefix, name, name^N, ^N)."""
    from .worksheets import model

    store = Store.find()
    model.add_bundles(store, model.get(store, ws), [store.resolve(b) for b in bundles])


@add.command("text")
@click.argument("text")
@worksheet_option
@library_errors
def add_text(text, ws):
    """Append markup or a directive (e.g. '% display table run'); newlines make several lines."""
    from .worksheets import model

    store = Store.find()
    model.add_text(store, model.get(store, ws), text)


@click.command()
@click.argument("worksheet")
@click.option("-f", "--file", "path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Replace the worksheet's source with this file ('-' for stdin).")
@click.option("-n", "--name", help="Rename the worksheet.")
@click.option("-t", "--title", help="Set the title.")
@library_errors
def wedit(worksheet, path, name, title):
    """Replace a worksheet's source with a file (`cl wedit WS -f FILE`)."""
    from .worksheets import model

    store = Store.find()
    text = read_text(path, "-f")
    ws = model.set_source(store, model.get(store, worksheet), text, name, title)
    click.echo(ws.uuid)


@click.command()
@click.argument("keywords", nargs=-1)
@click.option("-u", "--uuid-only", is_flag=True, help="Print only uuids.")
@library_errors
def wls(keywords, uuid_only):
    """List stored worksheets (and the project's worksheets/*.ws files)."""
    from .cli import print_table
    from .worksheets import model

    store = Store.find()
    found = model.list_worksheets(store, keywords)
    if uuid_only:
        click.echo("\n".join(w.uuid for w in found))
        return
    rows = [(w.uuid[:10], w.name, w.title, model.count_items(store, w.uuid)) for w in found]
    root = model.project_dir(store)
    rows += [("(file)", os.path.relpath(p, root), "", "") for p in model.worksheet_files(store)
             if not keywords or any(k in p for k in keywords)]
    print_table(["uuid", "name", "title", "items"], rows)


@click.command(name="print")
@click.argument("worksheet")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write a static HTML page here.")
@click.option("-r", "--raw", is_flag=True, help="Print the source, bundle lines regenerated.")
@click.option("--base-url", default="http://127.0.0.1:8765", show_default=True,
              help="Where bundle links point in HTML (`codalite serve`, or a CodaLab instance).")
@library_errors
def print_(worksheet, html_out, raw, base_url):
    """Render a worksheet (stored name/uuid, or a .ws file) in the terminal or as HTML."""
    from rich.console import Console

    from .worksheets import interpret, model, render

    store = Store.find()
    try:
        ws = model.open_worksheet(store, worksheet)
    except UnicodeDecodeError as e:
        raise click.BadParameter(f"{worksheet} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                                 f"{e.start}); save it as UTF-8", param_hint="WORKSHEET") from None
    if raw:
        click.echo(model.source(store, ws), nl=False)
        return
    result = interpret(store, ws.items)
    if html_out:
        page = render.to_html(store, result, ws.title or ws.name, base_url)
        try:
            with open(html_out, "w") as f:
                f.write(page)
        except OSError as e:
            raise cannot_write(html_out, e, "--html") from None
        click.echo(html_out)
        return
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
    """Export paper tables declared in a YAML file (or ```paper blocks in a .ws) as LaTeX,
    Markdown, CSV and provenance JSON."""
    from . import paper

    store = Store.find()
    specs = paper.load(declaration)
    try:  # an unwritable -o is the user's to fix: say so before computing anything
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise cannot_write(out_dir, e, "-o") from None
    for spec in specs:
        table = paper.compute(store, spec)
        for path in paper.export(store, table, out_dir, base_url, source=os.path.abspath(declaration)):
            click.echo(path)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@library_errors
def verify(paths):
    """Re-derive every number of exported tables (a directory such as paper/, or .provenance.json
    files) from the store; exit 1 naming each cell that no longer matches or is stale."""
    from . import paper

    store = Store.find()
    checked, problems = 0, []
    for path in paths:
        n, found = paper.verify(store, path)
        checked, problems = checked + n, problems + found
    for p in problems:
        click.echo(p)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s) in {checked} cells")
    click.echo(f"{checked} cells verified: every number re-derived from its bundles")


@click.command()
@click.argument("table")
@click.argument("row")
@click.argument("column")
@library_errors
def trace(table, row, column):
    """Print the chain of executions behind one cell: TABLE is a name in paper/ or a
    .provenance.json file; ROW and COLUMN are labels as printed (`a / b` for several variables)."""
    from .paper.verify import find_table, trace as trace_cell
    from .worksheets.model import project_dir

    store = Store.find()
    path = find_table(table, [os.getcwd(), project_dir(store)])
    for line in trace_cell(store, path, row, column):
        click.echo(line)


COMMANDS = [new, add, wedit, wls, print_, serve, export, verify, trace]
