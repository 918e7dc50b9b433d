"""Errors of the CodaLab backend; each message is one line that says what to do."""

from ..errors import CodaliteError, UsageError


class RemoteError(CodaliteError):
    """The server answered with an error."""


class RemoteUnreachable(RemoteError):
    def __init__(self, url, detail=""):
        super().__init__(
            f"cannot reach the CodaLab server at {url} ({detail}); is it up? "
            "Nothing was lost: rerun the same command once it is"
        )


class AuthError(RemoteError):
    """Login failed or the credentials are missing."""


class UnknownRemote(UsageError):
    def __init__(self, name, known):
        shown = ", ".join(sorted(known)) or "none yet"
        super().__init__(f"no remote named {name!r} (known: {shown}); add one with `codalite remote add NAME URL`")


class PushIncomplete(RemoteError):
    def __init__(self, done, total, cause):
        super().__init__(
            f"push stopped after {done} of {total} bundles: {cause}; "
            "rerun the same push to continue where it stopped"
        )
