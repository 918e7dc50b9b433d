"""A small REST client for a CodaLab server (codalab-worksheets 1.7.x), over httpx.

Auth is CodaLab's OAuth password grant with the public CLI client (`codalab_cli_client`, empty
secret). Tokens are cached per remote in a file of mode 0600 inside the store and refreshed when
they expire; they are never printed or logged (error messages carry status and server text only).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from ..hashing import write_atomic
from .errors import AuthError, RemoteError, RemoteUnreachable

CLIENT_ID = "codalab_cli_client"
CHUNK = 1 << 20
# asks for (username, password) of a remote (name, url) when no token or env vars work
Prompt = Callable[[str, str], "tuple[str, str] | None"]


def rest_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/rest") else url + "/rest"


class TokenCache:
    """{remote name: {username, access_token, refresh_token, expires_at}} in a 0600 file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}

    def get(self, name: str) -> dict[str, Any] | None:
        return self.load().get(name)

    def put(self, name: str, entry: dict[str, Any] | None) -> None:
        data = self.load()
        if entry is None:
            data.pop(name, None)
        else:
            data[name] = entry
        write_atomic(self.path, json.dumps(data), private=True)


def env_credentials() -> tuple[str, str] | None:
    user, password = os.environ.get("CODALAB_USERNAME"), os.environ.get("CODALAB_PASSWORD")
    return (user, password) if user and password else None


class Client:
    """One CodaLab server. `prompt()` returns (username, password) when no token or env vars work."""

    def __init__(self, name: str, url: str, tokens: TokenCache,
                 prompt: Prompt | None = None, timeout: float = 60.0) -> None:
        self.name, self.url, self.base = name, url, rest_base(url)
        self.tokens = tokens
        self.prompt = prompt
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0),
                                 headers={"X-Requested-With": "XMLHttpRequest"})
        self._user: dict[str, Any] | None = None

    def close(self) -> None:
        self.http.close()

    # --- auth ---------------------------------------------------------------------------------

    def _token_request(self, form: dict[str, str]) -> dict[str, Any] | None:
        try:
            r = self.http.post(self.base + "/oauth2/token", data=form, auth=(CLIENT_ID, ""))
        except httpx.TransportError as e:
            raise RemoteUnreachable(self.url, type(e).__name__) from None
        if r.status_code != 200:
            return None
        body = r.json()
        if "access_token" not in body:
            return None
        return {"access_token": body["access_token"], "refresh_token": body.get("refresh_token"),
                "expires_at": time.time() + float(body.get("expires_in", 3600))}

    def login(self, username: str | None = None, password: str | None = None) -> dict[str, Any]:
        """Password grant; credentials from the arguments, CODALAB_USERNAME/PASSWORD, or the prompt."""
        if not (username and password):
            creds = env_credentials()
            if creds is None and self.prompt is not None:
                creds = self.prompt(self.name, self.url)
            if creds is None:
                raise AuthError(f"no credentials for remote {self.name!r}: set CODALAB_USERNAME and "
                                "CODALAB_PASSWORD, or run interactively to be asked")
            username, password = creds
        entry = self._token_request({"grant_type": "password", "username": username, "password": password})
        if entry is None:
            raise AuthError(f"the server at {self.url} refused the login of user {username!r}; "
                            "check CODALAB_USERNAME/CODALAB_PASSWORD")
        entry["username"] = username
        self.tokens.put(self.name, entry)
        return entry

    def _refresh(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        if not entry.get("refresh_token"):
            return None
        new = self._token_request({"grant_type": "refresh_token", "refresh_token": entry["refresh_token"]})
        if new is None:
            return None
        new["username"] = entry.get("username")
        new["refresh_token"] = new["refresh_token"] or entry["refresh_token"]
        self.tokens.put(self.name, new)
        return new

    def access_token(self, force_new: bool = False) -> str:
        entry = self.tokens.get(self.name)
        if entry and not force_new and entry.get("expires_at", 0) - 60 > time.time():
            return entry["access_token"]
        if entry:
            new = self._refresh(entry)
            if new:
                return new["access_token"]
        return self.login()["access_token"]

    # --- requests -----------------------------------------------------------------------------

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, json_body: Any = None,
                content: Any = None, headers: dict[str, str] | None = None, ok: Sequence[int] = (200, 201, 204),
                stream: bool = False, timeout: float | None = None) -> httpx.Response:
        url = self.base + path
        for attempt in (0, 1):
            h = {"Authorization": "Bearer " + self.access_token(force_new=attempt == 1)}
            h.update(headers or {})
            try:
                req = self.http.build_request(method, url, params=params, json=json_body, content=content,
                                              headers=h, timeout=timeout or httpx.USE_CLIENT_DEFAULT)
                r = self.http.send(req, stream=stream)
            except httpx.TransportError as e:
                raise RemoteUnreachable(self.url, f"{type(e).__name__} on {method} {path}") from None
            if r.status_code == 401 and attempt == 0 and (content is None or isinstance(content, (bytes, str))):
                r.close()
                continue  # expired or revoked token: get a new one and try once more
            break
        if r.status_code not in ok:
            if stream:
                r.read()
            raise RemoteError(f"{method} {path} failed on {self.name}: HTTP {r.status_code}: {_message(r)}")
        return r

    def json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        return r.json() if r.content else None

    # --- resources ----------------------------------------------------------------------------

    def user(self) -> dict[str, Any]:
        if self._user is None:
            self._user = self.json("GET", "/user")["data"]
        return self._user

    def worksheet_uuid(self, spec: str) -> str:
        """A worksheet's uuid from a name, uuid or '/' (the user's home worksheet)."""
        body = self.json("GET", "/worksheets", params={"specs": spec})
        return body["data"][0]["id"]

    def ensure_worksheet(self, name: str) -> str:
        try:
            return self.worksheet_uuid(name)
        except RemoteError:
            body = self.json("POST", "/worksheets",
                             json_body={"data": [{"type": "worksheets", "attributes": {"name": name}}]})
            return body["data"][0]["id"]

    def bundle(self, uuid: str) -> dict[str, Any] | None:
        """The bundle's JSON API document (attributes: state, metadata, dependencies, ...), or None."""
        try:
            r = self.request("GET", f"/bundles/{uuid}", ok=(200,))
        except RemoteError as e:
            if "HTTP 404" in str(e) or "HTTP 403" in str(e) and "not found" in str(e).lower():
                return None
            raise
        return r.json()["data"]

    def bundles_info(self, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{uuid: attributes} for those of the given uuids the server has (one request per 100)."""
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(uuids), 100):
            chunk = uuids[i:i + 100]
            body = self.json("GET", "/bundles", params={"keywords": ["uuid=" + ",".join(chunk),
                                                                     f".limit={len(chunk) + 1}"]})
            for d in body.get("data", []):
                if d.get("type") == "bundles" and d.get("id") in chunk:
                    found[d["id"]] = d["attributes"]
        return found

    def create_bundles(self, docs: Sequence[dict[str, Any]], worksheet: str,
                       wait_for_upload: bool = False) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"worksheet": worksheet}
        if wait_for_upload:
            params["wait_for_upload"] = 1
        body = self.json("POST", "/bundles", params=params,
                         json_body={"data": [{"type": "bundles", "attributes": d} for d in docs]})
        return body["data"]

    def upload_contents(self, uuid: str, path: str, filename: str, unpack: bool, state_on_success: str = "ready") -> None:
        """PUT a file's bytes as the bundle's contents, streamed in 1 MiB chunks (chunked transfer)."""
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while True:
                    b = f.read(CHUNK)
                    if not b:
                        return
                    yield b

        params = {"filename": filename, "unpack": int(unpack), "state_on_success": state_on_success,
                  "finalize_on_success": 1, "finalize_on_failure": 0}
        self.request("PUT", f"/bundles/{uuid}/contents/blob/", params=params, content=chunks(),
                     headers={"Content-Type": "application/octet-stream"}, timeout=3600)

    def download(self, uuid: str, dest: str) -> str:
        """Save the bundle's contents (a .tar.gz for a directory, else the file). Returns 'directory'/'file'."""
        with self.http.stream("GET", self.base + f"/bundles/{uuid}/contents/blob/",
                              headers={"Authorization": "Bearer " + self.access_token()}, timeout=3600) as r:
            if r.status_code != 200:
                r.read()
                raise RemoteError(f"download of {uuid} from {self.name} failed: HTTP {r.status_code}: {_message(r)}")
            kind = r.headers.get("Target-Type", "file")
            with open(dest, "wb") as f:
                for b in r.iter_bytes(CHUNK):
                    f.write(b)
        return kind

    def kill(self, uuid: str) -> None:
        self.json("POST", "/bundle-actions",
                  json_body={"data": [{"type": "bundle-actions", "attributes": {"type": "kill", "uuid": uuid}}]})


def _message(r: httpx.Response) -> str:
    text = r.text or ""
    try:
        body = json.loads(text)
        text = body.get("error") or body.get("message") or text
    except ValueError:
        pass
    text = " ".join(str(text).split())
    return text[:300] or r.reason_phrase
