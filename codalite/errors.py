"""The library's exceptions. Each builds a one-line message that says what went wrong and what to do.

The CLI maps `UsageError` (the user typed something wrong) to exit code 2 and every other
`CodaliteError` (a failure found while working) to exit code 1.
"""


class CodaliteError(Exception):
    """Base class: a failure found while working (exit code 1 in the CLI)."""


class UsageError(CodaliteError):
    """Something the user typed is malformed: a target, size, duration, name or flag value."""


class StoreNotFound(CodaliteError):
    def __init__(self, start):
        super().__init__(
            f"no codalite store in {start} or any parent directory; "
            "run `codalite init` here or set CODALITE_HOME"
        )


class BundleNotFound(CodaliteError):
    def __init__(self, spec):
        super().__init__(f"no bundle matches {spec!r}; list bundles with `codalite ls`")


class AmbiguousBundle(CodaliteError):
    def __init__(self, spec, uuids):
        shown = ", ".join(u[:10] for u in uuids[:5])
        super().__init__(f"{spec!r} matches {len(uuids)} bundles ({shown}); give more of the uuid")


class PathEscape(CodaliteError):
    def __init__(self, target):
        super().__init__(f"path {target!r} points outside its bundle; paths must stay inside the bundle")


class DependencyError(CodaliteError):
    """A dependency is missing, failed, or would make a cycle."""


class BundleStateError(CodaliteError):
    """The bundle is in a state that does not allow the operation (e.g. rm while running)."""


class RunFailed(CodaliteError):
    def __init__(self, uuid, state, message):
        detail = f": {message}" if message else ""
        super().__init__(f"bundle {uuid} ended {state}{detail}")
