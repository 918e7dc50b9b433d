"""`codalite serve`: a local web UI over the same library calls as the CLI.

The stdlib HTTP server and Jinja2 templates (autoescaped): no framework, nothing loaded from
outside; one static script (static/app.js) refreshes live tables and tails stdout/stderr.
Bound to 127.0.0.1 unless asked otherwise: the store is readable by whoever can reach the port.

What a page may do is fenced in on every response: a Host check (a page on another origin can
rebind its own name to 127.0.0.1 and read us, so only names that cannot be rebound are served),
a CSP without inline script, nosniff, no referrer. Bundle files are a run's output, anything at
all: they are served as text, images or downloads, never as HTML or SVG in our origin, and only
when their realpath stays inside the bundle. An SVG is an image only where an <img> asks for it
(`?raw=1&image=1`: image/svg+xml under the sandboxing FILE_CSP, inert in an <img>, and its script
blocked if opened on its own); opened plainly it is text, like HTML. Worksheets come only from the store or the
project's worksheets/ folder, never from a path in the URL.
"""

import errno
import heapq
import ipaddress
import json
import os
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import markupsafe

from ..errors import CodaliteError, UsageError
from ..hashing import NotRegular, open_regular
from ..store import Store
from ..search import search as search_bundles
from ..worksheets import curves, examples, interpret, model, parse, plot, render
from ..worksheets.genpath import apply_func
from . import graph

WEB_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
STATIC = {"app.js": (os.path.join(os.path.dirname(__file__), "static", "app.js"), "text/javascript"),
          "web.css": (os.path.join(os.path.dirname(__file__), "static", "web.css"), "text/css"),
          "style.css": (os.path.join(render.TEMPLATES, "style.css"), "text/css")}
MAX_VIEW = 1 << 20  # show at most 1 MiB of a file inline, and of stdout/stderr only the last MiB
# A page lists at most this many of a folder's entries (a run can write 100,000 files) or of a
# bundle's dependents, and says how many it left out.
MAX_ENTRIES = 1000
MAX_CHILDREN = 100
# A table on a page (a worksheet's, search results) shows at most this many rows, and says so: a
# 100,000-row table is tens of MB, re-sent every 2 s while a run it shows is live.
MAX_ROWS = 1000
MAX_QUERY = 4096  # characters of search keywords (a search box, not a document)
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# Raster images cannot carry script; everything else a run wrote (HTML, SVG, ...) is text or a download.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
# A bundle file opened on its own is a sandboxed document: even a mislabelled one cannot run script.
FILE_CSP = "default-src 'none'; sandbox; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


class NotFound(Exception):
    pass


class WebLinks(render.Links):
    """File links with their path percent-encoded (bytes: names need not be UTF-8; `#` or `?` in a
    name must not end the path); `App.handle` decodes them back with surrogateescape."""

    def file(self, uuid, path):
        return super().file(uuid, urllib.parse.quote(os.fsencode(path.lstrip("/"))))


def shown(name):
    """A file name as text: bytes that are not UTF-8 become U+FFFD (the link keeps the bytes)."""
    return name.encode(errors="surrogateescape").decode(errors="replace")


class App:
    """Routes: path -> (status, content type, body, headers)."""

    def __init__(self, home):
        self.home = home
        self.local = threading.local()
        self.env = render.environment([WEB_TEMPLATES])
        self.env.globals["max_rows"] = MAX_ROWS
        # render.environment autoescapes every template; Markup only wraps HTML we escaped ourselves
        self.links = WebLinks("")

    @property
    def store(self):
        # one connection per server thread: sqlite3 connections are not shared between threads
        if getattr(self.local, "store", None) is None:
            self.local.store = Store(self.home)
        return self.local.store

    def page(self, template, **ctx):
        return self.env.get_template(template).render(links=self.links, **ctx)

    def handle(self, path, query):
        parts = [urllib.parse.unquote(p, errors="surrogateescape") for p in path.strip("/").split("/")] \
            if path.strip("/") else []
        if not parts:
            return self.index()
        if parts[0] == "static" and len(parts) == 2 and parts[1] in STATIC:
            file, ctype = STATIC[parts[1]]
            with open(file, "rb") as f:
                return 200, ctype + "; charset=utf-8", f.read(), {}
        if parts[0] == "search":
            return self.search(query.get("q", [""])[0])
        if parts == ["examples"]:
            return self.examples(query)
        if parts[0] == "worksheets" and (len(parts) == 2 or parts[2:] == ["blocks"]):
            return self.worksheet(parts[1], fragment=len(parts) == 3)
        if parts[0] == "bundles" and len(parts) >= 2:
            uuid, rest = parts[1], parts[2:]
            if not rest:
                return self.bundle(uuid)
            if rest == ["graph.svg"]:
                return 200, "image/svg+xml", graph.svg(self.store, self.bundle_of(uuid).uuid, self.links), {}
            if rest == ["curves.svg"]:
                return self.curves_svg(uuid, query.get("panel", ["loss"])[0])
            if rest[0] == "files":
                return self.files(uuid, "/".join(rest[1:]), raw="raw" in query, image="image" in query)
            if rest[0] == "tail" and len(rest) == 2:
                try:
                    offset = int(query.get("offset", ["0"])[0] or 0)
                except ValueError:
                    offset = -1
                if not 0 <= offset < 1 << 62:  # a file offset: f.seek overflows past 2**63
                    raise NotFound("offset must be a number of bytes from 0")
                return self.tail(uuid, rest[1], offset)
        raise NotFound(path)

    # worksheets: only from the store or the project's worksheets/ folder, never a path -------
    def worksheet_files(self):
        """{name: path} of worksheets/*.ws whose realpath stays inside worksheets/ (a link there may
        point anywhere: /etc/passwd.ws, ../secret.ws)."""
        folder = os.path.realpath(os.path.join(model.project_dir(self.store), "worksheets"))
        out = {}
        for path in model.worksheet_files(self.store):
            real = os.path.realpath(path)
            if real.startswith(folder + os.sep) and os.path.isfile(real):
                out[os.path.basename(path)[: -len(model.EXT)]] = path
        return out

    def open_worksheet(self, key):
        # not model.open_worksheet: it also opens any .ws path, which a URL must never name.
        # NAME.ws is the project's worksheets/NAME.ws file: a recipe's stored worksheet often has the
        # same name as the file that presents it, and the file must stay reachable.
        if key.endswith(model.EXT) and key[: -len(model.EXT)] in self.worksheet_files():
            key = key[: -len(model.EXT)]
        else:
            try:
                return model.get(self.store, key)
            except (CodaliteError, UnicodeError):  # UnicodeError: bytes from the URL that are not UTF-8
                pass
        path = self.worksheet_files().get(key)
        if path is None and key.endswith(model.EXT):  # a stored worksheet may be named NAME.ws too
            try:
                return model.get(self.store, key)
            except (CodaliteError, UnicodeError):
                pass
        if path is None:
            raise NotFound(f"no worksheet {key!r} in the store or in the project's worksheets/ folder")
        return model.load_file(path)

    # pages ------------------------------------------------------------------------------------
    def index(self):
        s = self.store
        files = [(name, os.path.relpath(p, model.project_dir(s))) for name, p in self.worksheet_files().items()]
        recent = interpret(s, parse("% search .limit=20"))
        body = self.page("index.html", worksheets=model.list_worksheets(s), files=files, recent=recent)
        return 200, "text/html", body, {}

    def worksheet(self, key, fragment=False):
        s = self.store
        ws = self.open_worksheet(key)
        result = interpret(s, ws.items)
        # blocks.html is an autoescaping template: the fragment is safe HTML
        blocks = render.to_html(s, result, ws.title, standalone=False, env=self.env)
        headers = {"X-Live": "1" if result.live else "0"}
        if fragment:
            return 200, "text/html", blocks, headers
        body = self.page("worksheet.html", ws=ws, key=key, blocks=markupsafe.Markup(blocks), live=result.live)
        return 200, "text/html", body, headers

    def search(self, q):
        s = self.store
        # one directive line: a line break in q would otherwise add worksheet markup of the URL's choosing
        q = " ".join(q.splitlines())
        if len(q) > MAX_QUERY:  # SQLite refuses a LIKE pattern over 50,000 bytes: a 500, not an answer
            raise NotFound(f"search keywords are at most {MAX_QUERY} characters, not {len(q)}")
        result = interpret(s, parse("% search " + q)) if q.strip() else None
        blocks = markupsafe.Markup(render.to_html(s, result, "", standalone=False, env=self.env)) if result else ""
        return 200, "text/html", self.page("search.html", q=q, blocks=blocks), {}

    def bundle_of(self, text):
        try:
            return self.store.resolve(text)
        except (CodaliteError, UnicodeError) as e:
            raise NotFound(str(e)) from None

    def bundle(self, uuid):
        s = self.store
        b = self.bundle_of(uuid)
        parents = []
        for d in b.dependencies[:MAX_ENTRIES]:  # a run can have thousands: the rest are counted
            name = s.name_of(d.parent_uuid)
            parents.append((d, name if name is not None else "(missing)"))
        # thousands of runs can use one dataset: the newest MAX_CHILDREN are listed, the rest counted
        child_uuids = s.children(b.uuid)
        children = sorted(s.get_many(child_uuids), key=lambda c: -c.id)[:MAX_CHILDREN]
        metadata = sorted((k, pretty(k, v)) for k, v in b.metadata.items())
        # graph.svg builds its SVG by hand and escapes every name and attribute it writes
        recs = self.training_log(b)
        panels = [p for p, keys in zip(("loss", "metrics"), curves.default_panels(recs.rows)) if keys] if recs else []
        listing = self.listing(b, "")
        body = self.page("bundle.html", b=b, parents=parents, children=children, metadata=metadata, curves=panels,
                         more_children=len(child_uuids) - len(children),
                         more_parents=len(b.dependencies) - len(parents),
                         environment=b.runspec.get("environment"), graph=markupsafe.Markup(graph.svg(s, b.uuid, self.links)),
                         hosts=model.host_worksheets(s, b.uuid), entries=listing and listing[0],
                         total=listing and listing[1], logs=[(name, *self.last(b, name)) for name in ("stdout", "stderr")])
        return 200, "text/html", body, {}

    # bundle files: only inside the bundle ------------------------------------------------------
    def path_of(self, b, subpath):
        """bundle/subpath, refused (NotFound) unless its realpath stays inside the bundle: no `..`,
        absolute paths or links out (store.path_in), and the bundle entry itself is no link out."""
        try:
            path = self.store.path_in(b, subpath)
        except (CodaliteError, ValueError) as e:  # ValueError: a NUL byte in the path
            raise NotFound(str(e)) from None
        if os.path.islink(self.store.location(b)):
            raise NotFound(f"bundle {b.uuid} is a link; its contents are not shown")
        return path

    def listing(self, b, subpath):
        """(the first MAX_ENTRIES entries by name, how many there are in all), or None if no folder."""
        try:
            path = self.path_of(b, subpath)
        except NotFound:
            return None
        if not os.path.isdir(path):
            return None
        total = 0

        def counted(it):
            nonlocal total
            for e in it:
                total += 1
                yield e
        try:
            with os.scandir(path) as it:  # nsmallest: 100,000 files are counted, not all held and sorted
                first = heapq.nsmallest(MAX_ENTRIES, counted(it), key=lambda e: e.name)
        except OSError:  # removed by its running bundle meanwhile, or unreadable
            return None
        out = []
        for e in first:
            try:
                kind = "link" if e.is_symlink() else "dir" if e.is_dir(follow_symlinks=False) else \
                    "file" if e.is_file(follow_symlinks=False) else "other"
                size = e.stat(follow_symlinks=False).st_size if kind == "file" else None
            except OSError:  # a running bundle removed it since the folder was read (a rotated checkpoint)
                total -= 1
                continue
            out.append((shown(e.name), kind, size, (subpath + "/" + e.name).lstrip("/")))
        return out, total

    def open(self, b, subpath):
        """A regular file inside the bundle, open. Opened without blocking and checked once open: a
        FIFO would block the server thread, and a running bundle can swap a file for one after
        path_in looked."""
        path = self.path_of(b, subpath)
        try:
            return open_regular(path)
        except NotRegular:
            raise NotFound(f"{b.uuid}/{subpath} is not a regular file") from None
        except OSError as e:
            raise NotFound(f"{b.uuid}/{subpath}: {e.strerror}") from None

    def read(self, b, subpath, limit, offset=0):
        """At most limit bytes of a regular file inside the bundle, from offset."""
        with self.open(b, subpath) as f:
            f.seek(offset)
            return f.read(limit)

    def last(self, b, name):
        """(text, offset after it, whether earlier output was left out): the last MAX_VIEW bytes of
        stdout/stderr, where a log's news is (an error at the end of 50 MB of progress bars)."""
        try:
            with self.open(b, name) as f:
                data, start, end = tail_bytes(f, 0, whole=b.final)
        except (NotFound, OSError):
            return None, 0, False
        return data.decode(errors="replace"), end, start > 0

    def files(self, uuid, subpath, raw=False, image=False):
        b = self.bundle_of(uuid)
        path = self.path_of(b, subpath)
        if os.path.isdir(path):
            listing = self.listing(b, subpath)
            if listing is None:
                raise NotFound(f"{b.uuid}/{subpath}: the folder cannot be read (removed by its run?)")
            entries, total = listing
            body = self.page("files.html", b=b, subpath=subpath, entries=entries, total=total, text=None)
            return 200, "text/html", body, {}
        if raw:
            return self.raw(path, self.open(b, subpath), image)
        data = self.read(b, subpath, MAX_VIEW)
        body = self.page("files.html", b=b, subpath=subpath, entries=None, text=data.decode(errors="replace"),
                         truncated=os.path.getsize(path) > MAX_VIEW)
        return 200, "text/html", body, {}

    def raw(self, path, f, image=False):
        """A bundle file's bytes, inert: raster images as images, text (HTML and SVG included) as
        text/plain, anything else as a download; sandboxed by FILE_CSP whatever it is. An SVG asked
        for as an image (image=1, from an <img>) is image/svg+xml: an <img> never runs its script,
        and FILE_CSP (no script, sandbox) keeps it inert if the URL is opened on its own."""
        headers = {"Content-Security-Policy": FILE_CSP}
        ext = os.path.splitext(path)[1].lower()
        ctype = IMAGE_TYPES.get(ext) or ("image/svg+xml" if image and ext == ".svg" else None)
        if ctype is None and b"\0" in f.peek(8192)[:8192]:
            ctype = "application/octet-stream"
            headers["Content-Disposition"] = "attachment; filename*=UTF-8''" + \
                urllib.parse.quote(os.fsencode(os.path.basename(path)))
        # streamed (Handler.reply): a run's 14 GB checkpoint must not be read into the server's memory
        return 200, ctype or "text/plain; charset=utf-8", f, headers

    # pictures: training curves, examples side by side ------------------------------------------
    def training_log(self, b):
        """The bundle's Hugging Face log (log_history.json, or while it runs its newest checkpoint's)."""
        return curves.read_records(self.store, b, curves.LIVE_FALLBACK)

    def curves_svg(self, uuid, panel):
        """The loss or metric curves of one fine-tune, as an image (the bundle page reloads it while live)."""
        b = self.bundle_of(uuid)
        recs = self.training_log(b)
        if recs is None:
            raise NotFound(f"bundle {b.uuid} has no log_history.json (nor a checkpoint's trainer_state.json)")
        losses, metrics = curves.default_panels(recs.rows)
        keys = losses if panel == "loss" else metrics
        live = not b.final
        trajectories = [{"uuid": b.uuid, "name": b.name, "key": k, "live": live, "truncated": recs.truncated,
                         "points": curves.points(recs.rows, "step", k)} for k in keys]
        title = f"{b.name}: {'loss' if panel == 'loss' else 'metrics'} per step ({recs.source})"
        return 200, "image/svg+xml", plot.svg(trajectories, "step", None, title=title), {}

    def examples(self, query):
        def arg(name, default=""):
            return query.get(name, [default])[0]
        s = self.store
        bundles = [self.bundle_of(u) for u in query.get("b", [])]
        q = arg("q")
        if q.strip():
            try:
                found = search_bundles(s, q.split())
            except CodaliteError as e:  # bad keywords (.limit=x) are the URL's mistake, not the server's
                raise NotFound(str(e)) from None
            if not isinstance(found, list):
                raise NotFound(f"{q!r} is a count, not a list of score bundles")
            bundles += found
        if not bundles:
            return 200, "text/html", self.page("examples.html", block=None, q=q), {}
        try:
            model_index = int(arg("model")) if arg("model") else None
            offset = max(0, int(arg("offset") or 0))
            block = examples.block(s, bundles, arg("metric") or None, arg("qtype") or None, arg("verdict") or "all",
                                   model_index, offset, 50)
        except ValueError as e:
            raise NotFound(str(e)) from None
        body = self.page("examples.html", block=block, q=q,
                         table=examples.to_html(block, self.links, lambda im: self.links.image(im.uuid, im.path),
                                                more_link=False),
                         prev=examples.page_url(self.links, block, offset=max(0, offset - 50)) if offset else None,
                         next=examples.page_url(self.links, block, offset=offset + 50)
                         if offset + 50 < block.total else None)
        return 200, "text/html", body, {}

    def tail(self, uuid, name, offset):
        """New text of stdout/stderr from offset, the offset to ask from next, whether output was
        skipped (more than MAX_VIEW new bytes: only their last MAX_VIEW are sent), and the bundle's
        state. A refused file (a link out, a FIFO) is a 404 that still says the state: the page
        must learn that the run ended."""
        if name not in ("stdout", "stderr"):
            raise NotFound(name)
        b = self.bundle_of(uuid)
        state = {"state": b.state, "final": b.final}
        try:
            with self.open(b, name) as f:
                data, start, end = tail_bytes(f, offset)
        except NotFound as e:
            if os.path.lexists(os.path.join(self.store.location(b), name)):
                # a link out, a FIFO: refused, not "nothing yet"
                return 404, "application/json", json.dumps({"error": str(e), **state}), {}
            data, start, end = b"", offset, offset  # not written yet
        except OSError:
            data, start, end = b"", offset, offset
        # reset: the file is shorter than offset (truncated): the page starts its view again
        reset = start < offset
        body = json.dumps({"data": data.decode(errors="replace"), "offset": end, "reset": reset,
                           "skipped": start - (0 if reset else offset), **state})
        return 200, "application/json", body, {}


def tail_bytes(f, offset, whole=False):
    """(bytes, start, end) of an open file from offset: at most its last MAX_VIEW bytes (start is
    then past offset), starting and ending on whole UTF-8 characters, so that a character the run
    wrote in two pieces, or one cut by the skip, is not shown as two replacement characters
    (whole: the file is complete, keep its last bytes whatever they are). A file shorter than
    offset (the run truncated it) is read again from its start."""
    size = os.fstat(f.fileno()).st_size
    if offset > size:
        offset = 0
    start = max(offset, size - MAX_VIEW)
    f.seek(start)
    data = f.read(MAX_VIEW)
    if start > offset:
        lead = 0
        while lead < min(3, len(data)) and data[lead] & 0xC0 == 0x80:  # continuation bytes
            lead += 1
        data, start = data[lead:], start + lead
    if not whole:
        data = data[:complete_utf8(data)]
    return data, start, start + len(data)


def complete_utf8(data):
    """len(data) without a UTF-8 sequence cut short at its end (the rest of it is still to come)."""
    for i in range(1, min(4, len(data)) + 1):
        c = data[-i]
        if c & 0xC0 != 0x80:  # the last lead byte (or ASCII): does its sequence fit?
            need = 2 if c & 0xE0 == 0xC0 else 3 if c & 0xF0 == 0xE0 else 4 if c & 0xF8 == 0xF0 else 1
            return len(data) - i if need > i else len(data)
    return len(data)


FORMATS = {"created": "date", "started": "date", "last_updated": "date", "time": "duration",
           "time_user": "duration", "time_system": "duration", "data_size": "size", "memory_max": "size"}


def pretty(key, value):
    """Metadata as CodaLab's UI shows it: dates, durations and sizes readable."""
    return apply_func(FORMATS.get(key), value) if isinstance(value, (int, float)) else value


def host_name(header):
    """The name in a Host header, lowercased, without port or brackets: '[::1]:8765' -> '::1';
    None if malformed."""
    h = (header or "").strip().lower()
    if h.startswith("["):
        name, sep, rest = h[1:].partition("]")
        return name if sep and (not rest or rest[:1] == ":" and rest[1:].isdigit()) else None
    name, sep, port = h.rpartition(":")
    if not sep:
        name = h
    elif not port.isdigit():
        return None
    return name.rstrip(".") or None


class HostCheck:
    """DNS rebinding: a page on evil.example can point its own name at 127.0.0.1 and then read us
    as same-origin. Its requests still say `Host: evil.example`, so only names an attacker cannot
    rebind are served: loopback names, the --host the server was bound to, and, when bound to
    every address (0.0.0.0, ::), address literals (an IP address is its own origin)."""

    def __init__(self, bound):
        self.names = LOOPBACK_NAMES | {bound.lower().strip("[]").rstrip(".")}
        self.any_address = bound in ("", "0.0.0.0", "::")

    def allows(self, header):
        name = host_name(header)
        if name is None:
            return False
        if name in self.names:
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                pass
        return False


class Handler(BaseHTTPRequestHandler):
    app = None  # set by make_server
    hosts = None
    csp = CSP

    def do_GET(self):
        host = self.headers.get("Host")
        if not self.hosts.allows(host):
            port = self.server.server_address[1]
            return self.reply(421, "text/plain; charset=utf-8", f"codalite serve: Host {str(host)[:100]!r} refused "
                              f"(DNS rebinding guard); open http://127.0.0.1:{port}/ or the --host you chose\n", {})
        url = urllib.parse.urlsplit(self.path)
        try:
            status, ctype, body, headers = self.app.handle(url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True))
        except NotFound as e:
            status, ctype, headers = 404, "text/html", {}
            body = self.app.page("error.html", message=str(e) or "not found")
        except Exception as e:  # one broken page must not take the server down
            status, ctype, headers = 500, "text/html", {}
            body = self.app.page("error.html", message=f"{type(e).__name__}: {e}")
        if ctype in ("text/html", "image/svg+xml", "application/json"):
            ctype += "; charset=utf-8"
        try:
            self.reply(status, ctype, body, headers)
        except ConnectionError:  # the browser went away mid-download: nothing to say, no traceback
            self.close_connection = True

    def do_HEAD(self):  # what GET would answer, without the body (curl -I, link checkers)
        self.head_only = True
        self.do_GET()

    head_only = False

    def reply(self, status, ctype, body, headers):
        """Send a response; body is text, bytes or an open file (streamed in chunks, then closed)."""
        if hasattr(body, "read"):
            with body:
                size = os.fstat(body.fileno()).st_size
                self.start_reply(status, ctype, size, headers)
                while size > 0 and not self.head_only:  # at most the size announced: a running bundle's file may grow meanwhile
                    chunk = body.read(min(size, 1 << 20))
                    if not chunk:
                        break  # it shrank: the client sees a short body (HTTP/1.0: the connection closes)
                    self.wfile.write(chunk)
                    size -= len(chunk)
            return
        # errors="replace": a file name that is not UTF-8 must not break the page
        data = body if isinstance(body, bytes) else body.encode(errors="replace")
        self.start_reply(status, ctype, len(data), headers)
        if not self.head_only:
            self.wfile.write(data)

    def start_reply(self, status, ctype, length, headers):
        self.csp = headers.pop("Content-Security-Policy", CSP)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def end_headers(self):
        # every response, the stdlib's own error pages (400, 501) included
        self.send_header("Content-Security-Policy", self.csp)
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        super().end_headers()

    def log_message(self, fmt, *args):
        pass  # quiet: the terminal shows the URL, not every request


def make_server(store, host="127.0.0.1", port=8765):
    """A server for the store (call serve_forever()); port 0 picks a free port. A malformed host
    or port is a UsageError, a port in use (or any other failure to listen) a CodaliteError."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is a number from 0 to 65535 (0 picks a free one)")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as e:
        raise UsageError(f"--host {host!r}: cannot resolve it ({getattr(e, 'strerror', None) or e}); "
                         "give a name or address of this machine, such as 127.0.0.1") from None
    handler = type("BoundHandler", (Handler,), {"app": App(store.home), "hosts": HostCheck(host)})
    server_cls = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
    try:
        server = server_cls((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise CodaliteError(f"port {port} on {host} is in use; pick another with --port "
                                "(0 picks a free one)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host!r} is not an address of this machine") from None
        raise CodaliteError(f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    h, p = server.server_address[:2]
    server.url = f"http://{'[' + h + ']' if ':' in h else h}:{p}/"
    return server
