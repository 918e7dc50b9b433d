"""The CodaLab backend: the same bundles, with the same uuids, on a CodaLab server over REST.

    from codalite.codalab import remotes, push, pull, remote_run
"""

from . import remotes
from .errors import AuthError, PushIncomplete, RemoteError, RemoteUnreachable, UnknownRemote
from .sync import import_bundle, pull, push, remote_run, wait_remote

__all__ = ["remotes", "push", "pull", "remote_run", "wait_remote", "import_bundle", "RemoteError",
           "RemoteUnreachable", "AuthError", "PushIncomplete", "UnknownRemote"]
