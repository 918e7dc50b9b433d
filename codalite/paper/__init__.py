"""Paper tables and figures: declared once, computed from the store, exported to LaTeX/Markdown/CSV
(figures also SVG) with a provenance JSON each, verified and traced back to their executions."""

from . import figure, table
from .declare import FigureSpec, TableSpec, load
from .export import export, export_all
from .verify import trace, verify


def compute(store, spec):
    """The table or figure a declaration describes, from the store as it is now."""
    return (figure.compute if isinstance(spec, FigureSpec) else table.compute)(store, spec)


__all__ = ["FigureSpec", "TableSpec", "compute", "export", "export_all", "load", "trace", "verify"]
