"""codalite: CodaLab's bundle model, embedded. The library behind the `codalite` CLI."""

from .bundle import Bundle, Dependency
from .errors import CodaliteError, UsageError
from .search import search
from .store import Store
from .worker import Worker

__all__ = ["Bundle", "CodaliteError", "Dependency", "Store", "UsageError", "Worker", "search"]
