"""Worksheets: CodaLab's worksheet markup, interpreted against a store and rendered.

    items = parse(text)                      # or model.get(store, name).items
    result = interpret(store, items)         # blocks: markup, tables, records, ...
    render.to_text(result) / render.to_html(store, result, title)
"""

from . import model, render
from .interpret import interpret
from .parse import parse

__all__ = ["interpret", "model", "parse", "render"]
