"""Named CodaLab remotes of a store: `.codalite/remotes.json` (names, URLs, worksheets) and
`.codalite/remote_tokens.json` (mode 0600; OAuth tokens, never printed)."""

import json
import os

from ..errors import UsageError
from ..hashing import write_atomic
from .client import Client, TokenCache
from .errors import UnknownRemote

REMOTES = "remotes.json"
TOKENS = "remote_tokens.json"


def _path(store):
    return os.path.join(store.home, REMOTES)


def load(store):
    try:
        with open(_path(store)) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(store, remotes):
    write_atomic(_path(store), json.dumps(remotes, indent=2, sort_keys=True))


def add(store, name, url, worksheet=None, prompt=None, login=True):
    """Register a remote and log in once (so bad credentials or a down server show now)."""
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise UsageError(f"remote name {name!r}: use letters, digits, _ - .")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"remote URL {url!r} must start with http:// or https://")
    remotes = load(store)
    remotes[name] = {"url": url.rstrip("/"), "worksheet": worksheet}
    if login:
        c = Client(name, url, TokenCache(os.path.join(store.home, TOKENS)), prompt=prompt)
        try:
            c.tokens.put(name, None)
            c.login()
            user = c.user()
            remotes[name]["username"] = user.get("attributes", {}).get("user_name")
        finally:
            c.close()
    save(store, remotes)
    return remotes[name]


def get(store, name):
    remotes = load(store)
    if name not in remotes:
        raise UnknownRemote(name, remotes)
    return remotes[name]


def remove(store, name):
    remotes = load(store)
    if name not in remotes:
        raise UnknownRemote(name, remotes)
    del remotes[name]
    save(store, remotes)
    TokenCache(os.path.join(store.home, TOKENS)).put(name, None)


def client(store, name, prompt=None):
    r = get(store, name)
    return Client(name, r["url"], TokenCache(os.path.join(store.home, TOKENS)), prompt=prompt)
