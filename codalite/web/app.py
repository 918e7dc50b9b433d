"""`codalite serve`: a local web UI over the same library calls as the CLI.

The stdlib HTTP server and Jinja2 templates: no framework, no JavaScript from outside (nothing
outside can be reached); a few lines of inline JS refresh live tables and tail stdout/stderr.
Bound to 127.0.0.1 unless asked otherwise: the store is readable by whoever can reach the port.
"""

import json
import mimetypes
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import markupsafe

from ..errors import CodaliteError
from ..store import Store
from ..worksheets import interpret, model, parse, render
from ..worksheets.genpath import apply_func
from . import graph

WEB_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
MAX_VIEW = 1 << 20  # show at most 1 MiB of a file inline


class NotFound(Exception):
    pass


class App:
    """Routes: path -> (status, content type, body, headers)."""

    def __init__(self, home):
        self.home = home
        self.local = threading.local()
        self.env = render.environment([WEB_TEMPLATES])
        self.links = render.Links("")

    @property
    def store(self):
        # one connection per server thread: sqlite3 connections are not shared between threads
        if getattr(self.local, "store", None) is None:
            self.local.store = Store(self.home)
        return self.local.store

    def page(self, template, **ctx):
        return self.env.get_template(template).render(links=self.links, **ctx)

    def handle(self, path, query):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if not parts:
            return self.index()
        if parts[0] == "search":
            return self.search(query.get("q", [""])[0])
        if parts[0] == "worksheets" and len(parts) >= 2:
            return self.worksheet(parts[1], fragment=parts[2:] == ["blocks"])
        if parts[0] == "bundles" and len(parts) >= 2:
            uuid, rest = parts[1], parts[2:]
            if not rest:
                return self.bundle(uuid)
            if rest == ["graph.svg"]:
                return 200, "image/svg+xml", graph.svg(self.store, self.bundle_of(uuid).uuid, self.links), {}
            if rest[0] == "files":
                return self.files(uuid, "/".join(rest[1:]), raw="raw" in query)
            if rest[0] == "tail" and len(rest) == 2:
                return self.tail(uuid, rest[1], int(query.get("offset", ["0"])[0] or 0))
        raise NotFound(path)

    # pages ------------------------------------------------------------------------------------
    def index(self):
        s = self.store
        files = [(os.path.basename(p)[:-3], os.path.relpath(p, model.project_dir(s))) for p in model.worksheet_files(s)]
        recent = interpret(s, parse("% search .limit=20"))
        body = self.page("index.html", worksheets=model.list_worksheets(s), files=files, recent=recent)
        return 200, "text/html", body, {}

    def worksheet(self, key, fragment=False):
        s = self.store
        try:
            ws = model.open_worksheet(s, key)
        except CodaliteError as e:
            raise NotFound(str(e)) from None
        result = interpret(s, ws.items)
        blocks = render.to_html(s, result, ws.title, standalone=False, env=self.env)
        headers = {"X-Live": "1" if result.live else "0"}
        if fragment:
            return 200, "text/html", blocks, headers
        body = self.page("worksheet.html", ws=ws, key=key, blocks=markupsafe.Markup(blocks), live=result.live)
        return 200, "text/html", body, headers

    def search(self, q):
        s = self.store
        result = interpret(s, parse("% search " + q)) if q.strip() else None
        blocks = markupsafe.Markup(render.to_html(s, result, "", standalone=False, env=self.env)) if result else ""
        return 200, "text/html", self.page("search.html", q=q, blocks=blocks), {}

    def bundle_of(self, text):
        try:
            return self.store.resolve(text)
        except CodaliteError as e:
            raise NotFound(str(e)) from None

    def bundle(self, uuid):
        s = self.store
        b = self.bundle_of(uuid)
        parents = []
        for d in b.dependencies:
            found = s.query("uuid = ?", (d.parent_uuid,))
            parents.append((d, found[0].name if found else "(missing)"))
        children = s.query(f"uuid IN ({','.join('?' * len(s.children(b.uuid)))})", s.children(b.uuid)) \
            if s.children(b.uuid) else []
        metadata = sorted((k, pretty(k, v)) for k, v in b.metadata.items())
        body = self.page("bundle.html", b=b, parents=parents, children=children, metadata=metadata,
                         environment=b.runspec.get("environment"), graph=markupsafe.Markup(graph.svg(s, b.uuid, self.links)),
                         hosts=model.host_worksheets(s, b.uuid), entries=self.listing(b, ""),
                         stdout=self.head(b, "stdout"), stderr=self.head(b, "stderr"))
        return 200, "text/html", body, {}

    def listing(self, b, subpath):
        try:
            path = self.store.path_in(b, subpath)
        except CodaliteError:
            return None
        if not os.path.isdir(path):
            return None
        out = []
        for e in sorted(os.scandir(path), key=lambda e: e.name):
            kind = "link" if e.is_symlink() else "dir" if e.is_dir() else "file"
            size = e.stat(follow_symlinks=False).st_size if kind == "file" else None
            out.append((e.name, kind, size, (subpath + "/" + e.name).lstrip("/")))
        return out

    def head(self, b, name):
        try:
            with open(self.store.path_in(b, name), "rb") as f:
                data = f.read(MAX_VIEW)
            return data.decode(errors="replace"), len(data)
        except (CodaliteError, OSError):
            return None, 0

    def files(self, uuid, subpath, raw=False):
        b = self.bundle_of(uuid)
        try:
            path = self.store.path_in(b, subpath)
        except CodaliteError as e:
            raise NotFound(str(e)) from None
        if os.path.isdir(path):
            body = self.page("files.html", b=b, subpath=subpath, entries=self.listing(b, subpath), text=None)
            return 200, "text/html", body, {}
        with open(path, "rb") as f:
            data = f.read() if raw else f.read(MAX_VIEW)
        if raw:
            return 200, mimetypes.guess_type(path)[0] or "application/octet-stream", data, {}
        body = self.page("files.html", b=b, subpath=subpath, entries=None, text=data.decode(errors="replace"),
                         truncated=os.path.getsize(path) > MAX_VIEW)
        return 200, "text/html", body, {}

    def tail(self, uuid, name, offset):
        """New bytes of stdout/stderr from offset, and whether more may come."""
        if name not in ("stdout", "stderr"):
            raise NotFound(name)
        b = self.bundle_of(uuid)
        data = b""
        try:
            with open(os.path.join(self.store.location(b), name), "rb") as f:
                f.seek(offset)
                data = f.read(MAX_VIEW)
        except OSError:
            pass
        body = json.dumps({"data": data.decode(errors="replace"), "offset": offset + len(data),
                           "state": b.state, "final": b.final})
        return 200, "application/json", body, {}


FORMATS = {"created": "date", "started": "date", "last_updated": "date", "time": "duration",
           "time_user": "duration", "time_system": "duration", "data_size": "size", "memory_max": "size"}


def pretty(key, value):
    """Metadata as CodaLab's UI shows it: dates, durations and sizes readable."""
    return apply_func(FORMATS.get(key), value) if isinstance(value, (int, float)) else value


class Handler(BaseHTTPRequestHandler):
    app = None  # set by make_server

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        try:
            status, ctype, body, headers = self.app.handle(url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True))
        except NotFound as e:
            status, ctype, headers = 404, "text/html", {}
            body = self.app.page("error.html", message=str(e) or "not found")
        except Exception as e:  # one broken page must not take the server down
            status, ctype, headers = 500, "text/html", {}
            body = self.app.page("error.html", message=f"{type(e).__name__}: {e}")
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype.startswith("text/") or "json" in ctype else ""))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass  # quiet: the terminal shows the URL, not every request


def make_server(store, host="127.0.0.1", port=8765):
    """A server for the store (call serve_forever()); port 0 picks a free port."""
    handler = type("BoundHandler", (Handler,), {"app": App(store.home)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
