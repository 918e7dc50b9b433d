"""Interpreted worksheets -> terminal text (aligned tables, via rich) and HTML (Jinja2).

Tables are laid out by codalite/table.py rather than with rich.table: rich takes ~8 s for 10,000
rows, it takes milliseconds.
"""

import base64
import functools
import mimetypes
import os

import jinja2
import markupsafe

from ..table import format_table
from . import interpret as I
from .examples import ExamplesBlock, text_lines
from .examples import to_html as examples_html

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


# --- terminal ------------------------------------------------------------------------------------

def table_lines(header, rows, width=100):
    """Aligned text lines under a line of dashes; a cell longer than its column wraps."""
    return format_table(header, rows, width=width, rule=True, bold=False)


def block_lines(block, width=100):
    if isinstance(block, I.MarkupBlock):
        return block.text.split("\n")
    if isinstance(block, I.TableBlock):
        return table_lines(block.header, [[c.text for c in r.cells] for r in block.rows], width)
    if isinstance(block, I.RecordBlock):
        # as `cl print`: a record is its rule and `key:  value` rows, without a header line
        return table_lines(["key", "value"], [[k, c.text] for k, c in block.rows], width)[1:]
    if isinstance(block, I.ContentsBlock):
        if block.lines is None:
            return [f"<none>  ({block.uuid[:10]}/{block.path} not found)"]
        return [line.rstrip("\n") for line in block.lines]
    if isinstance(block, I.ImageBlock):
        return [f"[image {block.uuid}/{block.path}]"]
    if isinstance(block, I.GraphBlock):
        return [graph_line(t) for t in block.trajectories]
    if isinstance(block, I.SchemaBlock):
        return ["[SchemaBlock]"]  # what `cl print` shows for one
    if isinstance(block, ExamplesBlock):
        return text_lines(block, width)
    if isinstance(block, I.WorksheetsBlock):
        return [f"[worksheet {name}]{{{{{uuid}}}}}" + (f"  {title}" if title and title != name else "")
                for uuid, name, title in block.worksheets]
    raise TypeError(block)


def graph_line(t):
    """A trajectory in a terminal: what it is, how many points, where it ends."""
    from .plot import finite
    what = t["name"] + (f" {t['key']}" if t.get("key") else "")
    (t,) = finite([t])  # as the picture: NaN and inf are not points
    last = f", last {t['points'][-1][1]:.4g} at {t['points'][-1][0]:g}" if t["points"] else ""
    live = " (live)" if t.get("live") else ""
    return f"[graph {what}: {len(t['points'])} points{last} from {t['uuid'][:10]}/{t['path']}{live}]"


def to_text(interpreted, width=100):
    """The whole worksheet as plain text, blocks separated by a blank line."""
    return "\n\n".join("\n".join(block_lines(b, width)) for b in interpreted.blocks) + "\n"


def worksheet_header(ws, owner=None):
    """The lines `cl print` starts with (CodaLab's _worksheet_description): worksheet, title, tags,
    owner, permissions. A worksheet file has no uuid: its path stands in."""
    import getpass

    from .genpath import NONE

    tags = getattr(ws, "tags", None) or []
    fields = [("Worksheet", f"{ws.uuid or ws.path} ({ws.name})"), ("Title", ws.title or NONE),
              ("Tags", " ".join(tags)), ("Owner", owner or getpass.getuser()),
              ("Permissions", "-")]  # no groups: CodaLab's group_permissions_str of none
    return [f"### {k}: {v}" for k, v in fields]


def print_terminal(interpreted, console, header=None):
    """Print to a rich console as `cl print` does: the header lines, then each block after a blank
    line; markup verbatim (Markdown is not rendered, as `cl print`), errors in red, tables aligned."""
    from rich.text import Text

    width = max(console.width, 60)
    if header:
        console.file.write("\n".join(header) + "\n")
    for i, b in enumerate(interpreted.blocks):
        if i or header:
            console.print()
        if isinstance(b, I.MarkupBlock):
            console.print(Text(b.text, style="bold red" if b.error else ""), soft_wrap=True)
        else:
            lines = block_lines(b, width)
            if isinstance(b, I.TableBlock):
                console.print(Text(lines[0], style="bold"), soft_wrap=True)
                lines = lines[1:]
            console.file.write("\n".join(lines) + "\n")


# --- HTML ----------------------------------------------------------------------------------------

@functools.cache
def _markdown():  # imported on first use: recording a recipe on a worksheet needs no renderer (75 ms)
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark", {"html": False})


class Links:
    """Where cells and worksheet lines point: `codalite serve` pages, or a CodaLab instance."""

    def __init__(self, base_url=""):
        self.base = base_url.rstrip("/")

    def bundle(self, uuid):
        return f"{self.base}/bundles/{uuid}"

    def file(self, uuid, path):
        return f"{self.base}/bundles/{uuid}/files/{path.lstrip('/')}"

    def raw(self, uuid, path):
        return self.file(uuid, path) + "?raw=1"

    def image(self, uuid, path):
        """For <img>: `codalite serve` serves an SVG as an image only when asked (else as text)."""
        return self.raw(uuid, path) + ("&image=1" if path.lower().endswith(".svg") else "")

    def worksheet(self, uuid):
        return f"{self.base}/worksheets/{uuid}"


def environment(extra_dirs=()):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([*extra_dirs, TEMPLATES]),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["markdown"] = lambda text: markupsafe.Markup(_markdown().render(text))
    env.globals["graph_svg"] = graph_svg
    env.globals["rows_html"] = rows_html
    env.globals["examples_html"] = examples_html
    env.globals["max_rows"] = None  # `codalite serve` shows at most this many rows of a table
    return env


def rows_html(block, links, max_rows=None):
    """A table's rows (the first max_rows), built in Python: a Jinja macro per cell costs ~1 s per
    10,000 rows."""
    esc = markupsafe.escape
    out = []
    for r in block.rows[:max_rows] if max_rows else block.rows:
        row_href = esc(links.bundle(r.uuid))
        tds = []
        for c in r.cells:
            text = esc(c.text)
            if c.uuid and c.path:
                tds.append(f'<td><a href="{esc(links.file(c.uuid, c.path))}">{text}</a></td>')
            elif c.uuid:
                tds.append(f'<td><a href="{row_href}">{text}</a></td>')
            else:
                tds.append(f"<td>{text}</td>")
        out.append(f'<tr class="state-{esc(r.state)}" data-uuid="{esc(r.uuid)}">{"".join(tds)}</tr>')
    return markupsafe.Markup("\n".join(out))


def graph_svg(block, width=560, height=300):
    """The block's trajectories as one SVG line chart (plot.py): axes, ticks, a legend, live marks."""
    from .plot import svg
    return markupsafe.Markup(svg(block.trajectories, block.xlabel, block.ylabel, width, height))


MAX_EMBED = 16 << 20  # an image larger than this is linked, not embedded (base64 makes it a third larger)


def image_data_uri(store, block):
    """A static page embeds images (it may be opened without a server); a huge one is linked instead,
    so one run's 2 GB "image" cannot exhaust memory or make a page no browser opens."""
    try:
        b = store.get(block.uuid)
        path = store.path_in(b, block.path)
        with open(path, "rb") as f:
            data = f.read(MAX_EMBED + 1)
    except Exception:
        return None
    if len(data) > MAX_EMBED:
        return None
    mime = mimetypes.guess_type(path)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def to_html(store, interpreted, title, base_url="", standalone=True, env=None):
    """A static HTML page (or, standalone=False, the blocks' fragment for the web UI)."""
    env = env or environment()
    links = Links(base_url)

    def image_src(block):
        return (standalone and image_data_uri(store, block)) or links.image(block.uuid, block.path)

    template = env.get_template("worksheet_page.html" if standalone else "blocks.html")
    return template.render(title=title, blocks=interpreted.blocks, links=links, image_src=image_src)
