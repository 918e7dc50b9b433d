"""Paper tables: declared once, computed from the store, exported to LaTeX/Markdown/CSV with a
provenance JSON per table, verified and traced back to their executions."""

from .declare import TableSpec, load
from .export import export
from .table import compute
from .verify import trace, verify

__all__ = ["TableSpec", "compute", "export", "load", "trace", "verify"]
