"""`codalite serve` against hostile content, in a real headless browser and with raw HTTP requests.

A store whose bundle names, descriptions, commands, file names and worksheet markdown carry HTML
and script, a run whose outputs are `x.html` / `x.svg` with script and links to /etc/passwd
(one of them replacing its stdout), and worksheet files that try to leave `worksheets/`. Every
payload sets `window.__pwned` (or the title) if it ever runs; the tests assert it never does, that
the security headers are on every response, that the Host header is checked and that no route
reads a file outside the store's bundles or the project's worksheets/ folder."""

import http.client
import os
import shlex
import shutil
import threading

import pytest

from codalite import Store, Worker
from codalite.web import make_server
from codalite.worksheets import model

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
browser_only = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                  reason="chromium is absent: apt-get install -y chromium (browser tests need it)")

PWN = "window.__pwned = 1; document.title = 'PWNED'"
HOSTILE = [f"<script>{PWN}</script>", f'"><img src=x onerror="{PWN}">', f"'><svg onload=\"{PWN}\">"]
PASSWD = "root:x:0:0"  # the first line of /etc/passwd


def plant_link(store, bundle, name, target):
    """A link the run did not leave (a future sandbox may drop it): plant it, as a pulled bundle could carry it."""
    path = os.path.join(store.location(bundle), name)
    if not os.path.islink(path):
        d = store.location(bundle)
        mode = os.stat(d).st_mode
        os.chmod(d, mode | 0o200)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)
        os.chmod(d, mode)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    old = os.getcwd()
    os.chdir(root)
    os.environ.pop("CODALITE_HOME", None)
    store = Store.init(root)
    # A run with active-content outputs, a link out of the bundle, and its stdout replaced by a link.
    cmd = (f"printf '%s' '<html><script>{PWN}</script></html>' > x.html; "
           "printf '%s' '<svg xmlns=\"http://www.w3.org/2000/svg\"><script>window.__pwned = 1</script></svg>' > x.svg; "
           "printf 'GIF89a' > pic.gif; "
           "ln -s /etc/passwd leak; ln -s .. up; rm -f stdout; ln -s /etc/passwd stdout; true")
    run, _ = store.run(cmd, name="hostile", description=HOSTILE[1], start_worker=False)
    echo, _ = store.run(f"echo {shlex.quote(HOSTILE[0])} > {shlex.quote('a' + HOSTILE[2] + '.txt')}", name="echo",
                        description=HOSTILE[0], start_worker=False)
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()
    run, echo = store.get(run.uuid), store.get(echo.uuid)
    assert run.state == "ready" and echo.state == "ready", (run.metadata, echo.metadata)
    plant_link(store, run, "leak", "/etc/passwd")
    plant_link(store, run, "stdout", "/etc/passwd")
    d = store.location(run)  # a FIFO: opening it would block a server thread forever
    mode = os.stat(d).st_mode
    os.chmod(d, mode | 0o200)
    os.mkfifo(os.path.join(d, "fifo"))
    os.chmod(d, mode)
    # Names come from CodaLab servers too (pull), where they are not checked as ours are.
    with store.tx():
        for b, name in ((run, HOSTILE[0]), (echo, HOSTILE[1])):
            store.db.execute("UPDATE bundle SET name = ?, metadata = json_set(metadata, '$.name', ?) WHERE uuid = ?",
                             (name, name, b.uuid))
    leaky = model.new(store, "leaky")  # genpaths through links out of the bundle, shown by the UI
    model.set_source(store, leaky, f"% schema s\n% add leak /leak\n% add out /stdout\n% display table s\n"
                     f"{{{run.uuid}}}\n% display contents /leak\n{{{run.uuid}}}\n")
    ws = model.new(store, "evil", title=HOSTILE[0])
    model.set_source(store, ws, f"# {HOSTILE[0]}\n\n{HOSTILE[1]}\n\n[click](javascript:{PWN})\n\n"
                     f"% schema s\n% add name\n% add description\n% display table s\n{{{run.uuid}}}\n{{{echo.uuid}}}\n")
    # Worksheet files: one inside worksheets/, one link that stays inside, one link that leaves.
    (root / "worksheets").mkdir()
    (root / "worksheets" / "good.ws").write_text("# good file worksheet\n")
    (root / "outside.ws").write_text("# outside secret\n")
    os.symlink("good.ws", root / "worksheets" / "alias.ws")
    os.symlink(root / "outside.ws", root / "worksheets" / "leak.ws")
    os.symlink("/etc/passwd", root / "worksheets" / "passwd.ws")
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    yield {"store": store, "run": run, "echo": echo, "root": root, "port": port, "url": f"http://127.0.0.1:{port}"}
    server.shutdown()
    server.server_close()
    os.chdir(old)


def get(site, path, host=None):
    """A raw request: the path goes out exactly as written (no client-side normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{site['port']}")
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


# --- worksheet names: only the store or worksheets/ --------------------------------------------

@pytest.mark.parametrize("path", [
    "/worksheets/%2Fetc%2Fpasswd", "/worksheets/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/worksheets/%2Fetc%2Fpasswd/blocks", "/worksheets/..%2Foutside", "/worksheets/..%2Foutside.ws",
    "/worksheets/leak", "/worksheets/passwd", "/worksheets/leak.ws", "/worksheets/passwd.ws",
    "/worksheets/worksheets%2Fgood.ws", "/worksheets/..%2Fworksheets%2Fgood.ws",
])
def test_worksheet_routes_refuse_file_paths(site, path):
    status, _, body = get(site, path)
    assert status == 404, body[:200]
    assert PASSWD.encode() not in body and b"outside secret" not in body


def test_worksheet_route_refuses_an_absolute_path_to_a_ws_file(site):
    path = "/worksheets/" + str(site["root"] / "outside.ws").replace("/", "%2F")
    status, _, body = get(site, path)
    assert status == 404 and b"outside secret" not in body


def test_worksheets_from_store_and_folder_still_open(site):
    for path, text in [("/worksheets/evil", b"&lt;script&gt;"), ("/worksheets/good", b"good file worksheet"),
                       ("/worksheets/good.ws", b"good file worksheet"), ("/worksheets/alias", b"good file worksheet")]:
        status, _, body = get(site, path)
        assert status == 200 and text in body, path
    status, _, body = get(site, "/")
    assert b'/worksheets/good.ws"' in body
    assert not any(f'/worksheets/{n}{e}"'.encode() in body for n in ("leak", "passwd") for e in ("", ".ws"))


def test_a_file_worksheet_named_like_a_stored_one_stays_reachable(site):
    """A recipe's stored worksheet and the worksheets/NAME.ws file that presents it share a name
    (the demo's shapes_vqa): NAME is the stored one, NAME.ws the file, and the index links each."""
    model.set_source(site["store"], model.new(site["store"], "twin"), "# the stored twin\n")
    (site["root"] / "worksheets" / "twin.ws").write_text("# the file twin\n")
    assert b"the stored twin" in get(site, "/worksheets/twin")[2]
    assert b"the file twin" in get(site, "/worksheets/twin.ws")[2]
    assert b"the file twin" in get(site, "/worksheets/twin.ws/blocks")[2]  # the live refresh
    index = get(site, "/")[2]
    assert b'href="/worksheets/twin"' in index and b'href="/worksheets/twin.ws"' in index


# --- bundle files never leave the bundle ---------------------------------------------------------

@pytest.mark.parametrize("rest", [
    "files/leak", "files/leak?raw=1", "files/up/codalite.db?raw=1", "files/..%2F..%2Fcodalite.db?raw=1",
    "files/%2Fetc%2Fpasswd?raw=1", "files/../../../../etc/passwd?raw=1", "files/up", "tail/stdout",
    "files/stdout?raw=1", "files/x%00y?raw=1", "files/fifo?raw=1", "files/fifo",
])
def test_bundle_files_never_resolve_outside_the_bundle(site, rest):
    status, _, body = get(site, f"/bundles/{site['run'].uuid}/{rest}")
    assert status == 404, (status, body[:200])
    assert PASSWD.encode() not in body and b"SQLite format" not in body


def test_bundle_page_does_not_show_a_linked_stdout(site):
    status, _, body = get(site, f"/bundles/{site['run'].uuid}")
    assert status == 200 and PASSWD.encode() not in body
    assert b">fifo</a>" in body  # listed, never opened


def test_worksheet_genpaths_do_not_follow_links_out_of_the_bundle(site):
    # genpaths are read by codalite/worksheets/genpath.py (its realpath check); the UI shows them
    status, _, body = get(site, "/worksheets/leaky")
    assert status == 200 and PASSWD.encode() not in body


# --- bundle files are served inert ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["x.html", "x.svg"])
def test_active_outputs_are_served_as_text_or_download(site, name):
    status, headers, body = get(site, f"/bundles/{site['run'].uuid}/files/{name}?raw=1")
    assert status == 200 and b"<script>" in body
    inert = headers["content-type"] == "text/plain; charset=utf-8" or \
        headers.get("content-disposition", "").startswith("attachment")
    assert inert, headers
    assert "sandbox" in headers["content-security-policy"]


def test_images_are_served_as_images(site):
    status, headers, body = get(site, f"/bundles/{site['run'].uuid}/files/pic.gif?raw=1")
    assert status == 200 and headers["content-type"] == "image/gif" and body == b"GIF89a"


@pytest.mark.parametrize("path", ["/", "/worksheets/evil", "/worksheets/evil/blocks", "/search?q=x",
                                  "/bundles/RUN", "/bundles/RUN/graph.svg", "/bundles/RUN/files/x.html",
                                  "/bundles/RUN/files/x.html?raw=1", "/bundles/RUN/tail/stderr",
                                  "/static/app.js", "/nowhere", "/worksheets/%2Fetc%2Fpasswd"])
def test_security_headers_on_every_response(site, path):
    status, headers, _ = get(site, path.replace("RUN", site["run"].uuid))
    assert headers["x-content-type-options"] == "nosniff", (path, status)
    assert headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    for directive in ("object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"):
        assert directive in csp, (path, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


# --- the Host header -----------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["evil.example", "evil.example:PORT", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "", "[::2]:PORT"])
def test_host_header_rejects_other_names(site, host):
    status, headers, body = get(site, "/", host=host.replace("PORT", str(site["port"])) or " ")
    assert status in (421, 403), status
    assert body.count(b"\n") <= 1 and b"<" not in body and body.strip()
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("host", ["localhost", "localhost:PORT", "127.0.0.1", "127.0.0.1:PORT", "[::1]", "[::1]:PORT",
                                  "LOCALHOST:PORT"])
def test_host_header_accepts_loopback_names(site, host):
    status, _, _ = get(site, "/", host=host.replace("PORT", str(site["port"])))
    assert status == 200


def test_host_header_accepts_the_bound_host_when_not_loopback(site):
    server = make_server(site["store"], host="0.0.0.0", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        other = {"port": port}
        assert get(other, "/", host=f"0.0.0.0:{port}")[0] == 200
        assert get(other, "/", host=f"192.0.2.7:{port}")[0] == 200  # an address literal cannot be rebound
        assert get(other, "/", host="evil.example")[0] in (421, 403)
    finally:
        server.shutdown()
        server.server_close()


# --- in the browser: no script from bundle content runs -----------------------------------------

@pytest.fixture
def page(browser):
    pg = browser.new_page()
    pg.csp_errors = []
    pg.on("console", lambda m: "Content Security Policy" in m.text and pg.csp_errors.append(m.text))
    pg.on("dialog", lambda d: d.dismiss())
    yield pg
    pg.close()


def assert_not_pwned(page):
    assert page.evaluate("window.__pwned") is None
    assert page.title() != "PWNED"


@browser_only
@pytest.mark.parametrize("path", ["/", "/worksheets/evil", "/search?q=.limit=10", "/bundles/RUN", "/bundles/ECHO",
                                  "/bundles/ECHO/files/", "/bundles/RUN/files/x.html", "/bundles/RUN/files/x.svg",
                                  "/bundles/RUN/files/x.html?raw=1", "/bundles/RUN/files/x.svg?raw=1",
                                  "/bundles/RUN/graph.svg"])
def test_no_script_from_bundle_content_runs(site, page, path):
    path = path.replace("RUN", site["run"].uuid).replace("ECHO", site["echo"].uuid)
    resp = page.goto(site["url"] + path)
    assert resp.status == 200
    page.wait_for_timeout(100)
    assert_not_pwned(page)
    if path.endswith(("x.html?raw=1", "x.svg?raw=1")):
        assert "<script>" in page.inner_text("body")  # shown as text: the source, not its effect


@browser_only
def test_hostile_names_show_as_text_and_the_ui_works_under_its_csp(site, page):
    page.goto(site["url"] + "/worksheets/evil")
    assert page.inner_text("h1.ws-title") == HOSTILE[0]
    cells = page.locator("table.table tbody td").all_inner_texts()
    assert HOSTILE[0] in cells and HOSTILE[1] in cells
    assert page.locator("a[href^='javascript:']").count() == 0
    page.goto(f"{site['url']}/bundles/{site['echo'].uuid}")
    assert HOSTILE[1] in page.inner_text("h1")
    assert page.locator("#graph g.node text").first.text_content() == HOSTILE[1][:24]  # the hand-built SVG
    assert page.locator("#files a").first.inner_text() == f"a{HOSTILE[2]}.txt"
    page.locator("#files a").first.click()
    assert page.inner_text("#file").strip() == HOSTILE[0]
    assert_not_pwned(page)
    # the UI's own stylesheet and script load under the policy; nothing is blocked (after the page's load
    # event: #file is there once the HTML is parsed, the stylesheet may still be on its way on a busy machine)
    page.wait_for_load_state("load")
    assert page.evaluate("getComputedStyle(document.querySelector('nav form')).display") == "inline"
    assert page.csp_errors == []
