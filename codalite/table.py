"""The one plain-text table writer: the listing commands' tables and the worksheet tables `print`
shows in a terminal (aligned columns; a table wider than the terminal gets its widest columns
narrowed and their cells wrapped onto continuation lines, so every value stays readable).

Plain string work on purpose: rich takes 1.5 s to lay out 1,000 rows, this takes milliseconds.
"""

import click

GAP = "  "
MIN_COL = 8  # narrowing stops here


def column_widths(headers, rows, width=None):
    """Each column's width: its longest value, the widest narrowed step by step to fit width."""
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            if len(c) > widths[i]:
                widths[i] = len(c)
    budget = None if width is None else width - len(GAP) * (len(widths) - 1)
    while budget is not None and sum(widths) > budget:  # narrow the widest column, one step at a time
        i = max(range(len(widths)), key=widths.__getitem__)
        if widths[i] <= MIN_COL:
            break
        widths[i] = max(MIN_COL, widths[i] - max(1, (sum(widths) - budget) // 2))
    return widths


def format_table(headers, rows, styles=None, width=None, rule=False, bold=True):
    """Lines of an aligned table. styles: {column index: fn(value) -> click style kwargs}; width: fit
    the table in it by wrapping cells; rule: a line of dashes under the header; bold: a bold header
    (click's escape codes, which click.echo drops when the output is not a terminal)."""
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = column_widths(headers, rows, width)
    out = []

    def emit(cells, style):
        chunks = [[c] if len(c) <= w else [c[j:j + w] for j in range(0, len(c), w)] for c, w in zip(cells, widths)]
        for k in range(max(len(ch) for ch in chunks) if chunks else 1):
            parts = []
            for i, (ch, w) in enumerate(zip(chunks, widths)):
                text = (ch[k] if k < len(ch) else "").ljust(w)
                kwargs = style(i, cells[i])
                parts.append(click.style(text, **kwargs) if kwargs else text)
            out.append(GAP.join(parts).rstrip())

    emit(list(headers), lambda i, v: {"bold": True} if bold else None)
    if rule:
        out.append(GAP.join("-" * w for w in widths))
    for r in rows:
        emit(r, lambda i, v: styles[i](v) if styles and i in styles else None)
    return out


def print_table(headers, rows, styles=None):
    click.echo("\n".join(format_table(headers, rows, styles)))
