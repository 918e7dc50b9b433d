"""codalite: CodaLab's bundle model, embedded. The library behind the `codalite` CLI."""

from .bundle import Bundle, Dependency
from .errors import CodaliteError, UsageError
from .search import search
from .store import Store

__all__ = ["Bundle", "CodaliteError", "Dependency", "Store", "UsageError", "Worker", "search"]


def __getattr__(name):  # the worker (with psutil) loads on first use: most commands never start one
    if name == "Worker":
        from .worker import Worker
        return Worker
    raise AttributeError(f"module 'codalite' has no attribute {name!r}")
