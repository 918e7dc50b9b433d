"""Siblings of issue 10's web defects, found by attacking what issue 12 added (training curves,
examples) and the commands around them (`print`, `print --html`, `serve`): logs a buggy experiment
writes (NaN, integers past float range, nesting past the parser's depth, values whose ticks cannot
be placed), records of any JSON type, image paths that leave the data bundle, a huge image, a search
box that took worksheet markup, a tail offset past a file offset, and `print --html` aimed at the
worksheet's own source or into the store. Real store, real worker, real processes and server."""

import http.client
import json
import os
import subprocess
import sys
import threading

import pytest

from picture_helpers import PNG_1x1, drain

from codalite.web import make_server
from codalite.worksheets import interpret, parse, render
from codalite.worksheets.examples import ExamplesBlock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWD = "root:x:0:0"


def cli(cwd, *args, timeout=60):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("CODALITE_HOME", None)
    return subprocess.run([sys.executable, "-m", "codalite", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def upload(store, tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for rel, content in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    return store.upload([str(d)], name=name)[0]


def jsonl(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


# --- training curves: what a buggy experiment's log holds -----------------------------------------

def test_graphs_of_logs_with_odd_numbers_render_in_text_and_html(store, tmp_path):
    """An integer past float's range (OverflowError), a NaN or inf in a TSV graph (ValueError /
    OverflowError while placing ticks) and JSON nested past the parser's depth (RecursionError) each
    crashed `print` and `print --html`; each is now a curve without those points."""
    b = upload(store, tmp_path, "logs", {
        "log_history.json": json.dumps([{"step": 1, "loss": 1.0}, {"step": 2, "loss": "nan"}])[:-1]
        + ', {"step": 3, "loss": ' + "9" * 400 + "}]",
        "deep.json": "[" * 100_000 + "]" * 100_000,
        "deep.jsonl": "[" * 100_000 + "]" * 100_000 + '\n{"step": 1, "loss": 2}\n',
        "nan.tsv": "1\tnan\n2\t3\n3\t4\n", "inf.tsv": "1\tinf\n2\t3\n3\t-inf\n"})
    for path, points in (("/log_history.json", [(1.0, 1.0)]), ("/deep.json", []), ("/deep.jsonl", [(1.0, 2.0)]),
                         ("/nan.tsv", [(2.0, 3.0), (3.0, 4.0)]), ("/inf.tsv", [(2.0, 3.0)])):
        result = interpret(store, parse(f"% display graph {path}\n{{{b.uuid}}}\n"))
        assert not any(getattr(x, "error", False) for x in result.blocks), (path, result.blocks)
        page = render.to_html(store, result, "t")
        assert page.count("<circle") == len(points), path  # NaN and inf are not drawn
        text = render.to_text(result)
        assert f"{len(points)} points" in text, (path, text)


def test_a_genpath_into_json_nested_past_the_parsers_depth_is_a_value_not_a_crash(store, tmp_path):
    """`% add d /deep.json:a` over `[[[[...` raised RecursionError out of `print` (a traceback)."""
    b = upload(store, tmp_path, "deep", {"deep.json": "[" * 100_000 + "]" * 100_000})
    result = interpret(store, parse(f"% schema s\n% add d /deep.json:a\n% display table s\n{{{b.uuid}}}\n"))
    assert render.to_text(result).count("\n") >= 2


def test_ticks_of_values_closer_than_their_float_resolution_end(tmp_path):
    """Steps of 1e16 and 1e16 + 4: the round tick step (1) does not move a float that large, and the
    tick loop never ended: `print --html` hung, and a serve thread spun forever. A real process."""
    assert cli(tmp_path, "init").returncode == 0
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "log.json").write_text(json.dumps([{"step": 1e16, "loss": 1}, {"step": 1e16 + 4, "loss": 2},
                                                           {"step": 5, "loss": -1e308}, {"step": 6, "loss": 1e308}]))
    assert cli(tmp_path, "upload", "big", "-n", "big").returncode == 0
    (tmp_path / "g.ws").write_text("% display graph /log.json y=loss\n{big}\n")
    try:
        p = cli(tmp_path, "print", "g.ws", "--html", tmp_path / "g.html", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("print --html hung on a graph whose x values are 1e16 and 1e16 + 4")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "g.html").read_text().count("<circle") == 4


def test_a_checkpoint_log_swapped_for_a_fifo_does_not_block_the_reader(tmp_path):
    """A running fine-tune can replace its trainer_state.json by a FIFO after path_in looked at it:
    opening it blocked the reader (a serve thread, `print`) forever. Reading refuses it at once."""
    fifo = tmp_path / "trainer_state.json"
    os.mkfifo(fifo)
    code = f"from codalite.worksheets import curves\ntry:\n    curves._load({str(fifo)!r})\nexcept Exception as e:\n    print(type(e).__name__)\n"
    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("reading a FIFO as a training log blocked")
    assert p.stdout.strip() == "CodaliteError", p.stderr


# --- examples: records of any type, images that leave their bundle ---------------------------------

@pytest.fixture
def odd_study(store, tmp_path):
    """A data bundle whose records hold lists, numbers and nulls where text belongs, and image paths
    that leave it (`../`, absolute, a link to /etc/passwd); predictions with HTML in them; a score
    run joining them (cp: the score bundle's dependencies are the predictions and the data)."""
    data = upload(store, tmp_path, "data", {
        "images/a.png": PNG_1x1,
        "test.jsonl": jsonl([
            {"id": "a", "image": "images/a.png", "question": ["what", "?"], "qtype": ["x"]},
            {"id": "b", "image": 5, "question": {"q": 1}, "qtype": 3},
            {"id": "c", "image": "../../../../../../../../etc/passwd", "question": "dotdot", "qtype": "s"},
            {"id": "d", "image": "/etc/passwd", "question": "absolute", "qtype": "s"},
            {"id": "e", "image": "images/../../" + "x.png", "question": "up", "qtype": None}])})
    preds = upload(store, tmp_path, "preds", {
        "predictions.jsonl": jsonl([{"id": i, "prediction": p, "reference": r} for i, p, r in (
            ("a", "<script>window.__pwned=1</script>", [1]), ("b", None, None), ("c", 7, "r"),
            ("d", {"x": "<b>"}, "r"), ("e", "\ud800", "r"))]),
        "shuffled_images.jsonl": jsonl([{"id": "a", "image": 7}, {"id": "b", "image": ["x"]}]),
        "per.jsonl": jsonl([{"id": i, "answer_acc": 1} for i in "abcde"])})
    score, _ = store.run("cp preds/per.jsonl per_example.jsonl", [("preds", preds.uuid), ("data", data.uuid)],
                         name="score", start_worker=False)
    drain(store)
    score = store.get(score.uuid)
    assert score.state == "ready", score.metadata
    return {"data": data, "score": score}


def test_examples_of_records_with_any_json_type_render(store, odd_study):
    """A list or number as qtype made `sorted` raise TypeError (unhashable / mixed types) and a
    number as an image path made os.path.join raise: the whole worksheet and /examples crashed."""
    text = f"% display examples\n{{{odd_study['score'].uuid}}}\n"
    result = interpret(store, parse(text))
    (b,) = [x for x in result.blocks if isinstance(x, ExamplesBlock)]
    assert b.qtypes == ['3', '["x"]', "s"] and b.count == 5
    assert [e.question for e in b.examples[:2]] == ['["what", "?"]', '{"q": 1}']
    page = render.to_html(store, result, "t")
    assert "<script>window" not in page and "&lt;script&gt;window" in page
    assert "examples:" in render.to_text(result)


def test_example_images_never_leave_the_data_bundle(store, odd_study):
    """`../` and absolute image paths recorded by a run made /examples point an <img> outside the data
    bundle (a browser normalizes `files/../../..`, so another bundle's picture could stand in)."""
    result = interpret(store, parse(f"% display examples\n{{{odd_study['score'].uuid}}}\n"))
    (b,) = [x for x in result.blocks if isinstance(x, ExamplesBlock)]
    images = {e.id: e.image for e in b.examples}
    assert images == {"a": (odd_study["data"].uuid, "images/a.png"), "b": None, "c": None, "d": None, "e": None}
    page = render.to_html(store, result, "t", base_url="")
    assert "etc/passwd" not in page and "/../" not in page


def test_a_huge_image_is_linked_not_embedded(store, tmp_path):
    big = upload(store, tmp_path, "big", {"big.png": PNG_1x1 + b"\0" * (16 << 20)})
    page = render.to_html(store, interpret(store, parse(f"% display image /big.png\n{{{big.uuid}}}\n")), "t")
    assert "data:image" not in page and f"/bundles/{big.uuid}/files/big.png?raw=1" in page
    assert len(page) < 100_000


# --- serve -------------------------------------------------------------------------------------

@pytest.fixture
def served(store, tmp_path):
    b = upload(store, tmp_path, "plain", {"stdout": "hello\n", "secret.txt": "SECRET-CONTENT\n"})
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        conn.close()
        return r.status, body
    yield {"get": get, "bundle": b}
    server.shutdown()
    server.server_close()


def test_search_box_takes_keywords_not_worksheet_markup(served):
    """/search?q= was pasted after `% search ` and parsed as a worksheet: a line break in q added any
    markup or directive (a heading, `% display contents` of any bundle file) to the page."""
    u = served["bundle"].uuid
    status, body = served["get"]("/search?q=plain%0A%23%20INJECTED%0A%25%20display%20contents%20/secret.txt%0A%7B"
                                 + u + "%7D")
    assert status == 200
    assert "INJECTED</h1>" not in body and "SECRET-CONTENT" not in body


@pytest.mark.parametrize("offset", ["99999999999999999999999", "-5", "x"])
def test_tail_offsets_past_a_file_offset_are_refused(served, offset):
    """offset=10**23 made f.seek raise OverflowError: a 500 naming a Python exception; -5 was
    answered with offset -5 (the client then re-read the start)."""
    status, body = served["get"](f"/bundles/{served['bundle'].uuid}/tail/stdout?offset={offset}")
    assert status == 404 and "offset must be" in body and "Error:" not in body


def test_examples_with_bad_search_keywords_is_not_a_server_error(served):
    status, body = served["get"]("/examples?q=.limit%3Dx")
    assert status == 404 and ".limit needs a number" in body and "UsageError" not in body


def test_a_huge_file_is_streamed_not_read_into_the_server(store, tmp_path):
    """`raw` read the whole file into memory: opening a run's multi-GB checkpoint could take the
    server (or the machine) down. A 512 MiB file (sparse: no disk used) now costs no 512 MiB."""
    import resource
    b = upload(store, tmp_path, "ckpt", {"small": "x"})
    d = store.location(b)
    mode = os.stat(d).st_mode
    os.chmod(d, mode | 0o200)
    with open(os.path.join(d, "model.bin"), "wb") as f:  # planted: an upload would hash 512 MiB
        f.truncate(512 << 20)
    os.chmod(d, mode)
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        conn.request("GET", f"/bundles/{b.uuid}/files/model.bin?raw=1")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("content-type") == "application/octet-stream"
        assert int(r.getheader("content-length")) == 512 << 20
        n = 0
        while chunk := r.read(1 << 20):
            n += len(chunk)
        conn.close()
        assert n == 512 << 20
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert grown < 128 << 10, f"the server's peak memory grew by {grown >> 10} MiB"
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=20)
        conn.request("HEAD", f"/bundles/{b.uuid}/files/model.bin?raw=1")  # was 501
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"" and r.getheader("x-content-type-options") == "nosniff"
        conn.close()
    finally:
        server.shutdown()
        server.server_close()


# --- print -------------------------------------------------------------------------------------

@pytest.fixture
def printable(tmp_path):
    assert cli(tmp_path, "init").returncode == 0
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "stats.json").write_text('{"name": "\\ud800odd", "acc": 0.5}')
    assert cli(tmp_path, "upload", "s", "-n", "s").returncode == 0
    (tmp_path / "worksheets").mkdir()
    src = "% schema t\n% add name /stats.json:name\n% add acc /stats.json:acc\n% display table t\n{s}\n"
    (tmp_path / "worksheets" / "w.ws").write_text(src)
    return tmp_path, src


def test_print_html_never_replaces_the_worksheet_source_or_writes_into_the_store(printable):
    root, src = printable
    for target in ("worksheets/w.ws", ".codalite/page.html", ".codalite", ""):
        p = cli(root, "print", "worksheets/w.ws", "--html", target)
        assert p.returncode == 2 and p.stderr.startswith("Error:") and "Traceback" not in p.stderr, (target, p.stderr)
    assert (root / "worksheets" / "w.ws").read_text() == src
    assert not (root / ".codalite" / "page.html").exists()
    p = cli(root, "print", "worksheets/w.ws", "--html", "w.html")  # a page beside it is fine, and replaceable
    assert p.returncode == 0 and cli(root, "print", "worksheets/w.ws", "--html", "w.html").returncode == 0


def test_one_unencodable_value_does_not_abort_the_whole_worksheet(printable):
    """A run's JSON holding a lone surrogate ("\\ud800") made `print` and `print --html` fail as a
    whole ("not valid UTF-8 text"); the value is shown with a replacement character instead."""
    root, _ = printable
    p = cli(root, "print", "worksheets/w.ws")
    assert p.returncode == 0 and "odd" in p.stdout and "0.5" in p.stdout, p.stderr
    p = cli(root, "print", "worksheets/w.ws", "--html", "w.html")
    assert p.returncode == 0, p.stderr
    assert "odd" in (root / "w.html").read_text() and "0.5" in (root / "w.html").read_text()


# --- second pass: what a chatty or busy run, and a careless `print`, make huge or wrong -----------

def test_print_refuses_a_file_that_is_not_a_worksheet(printable):
    """`print /etc/passwd` rendered any readable file as a worksheet (any text parses as markup);
    `cl print` refuses it. A worksheet file is a `.ws` file, as worksheets/*.ws everywhere else."""
    root, _ = printable
    (root / "notes.txt").write_text("# not a worksheet\n")
    for target in ("/etc/passwd", "./notes.txt", str(root / "notes.txt"), "/etc", "worksheets/"):
        p = cli(root, "print", target)
        assert p.returncode == 2 and p.stdout == "" and PASSWD not in p.stderr, (target, p.stdout, p.stderr)
        assert p.stderr.startswith("Error:") and p.stderr.count("\n") == 1 and "not a worksheet file" in p.stderr
    assert cli(root, "print", "worksheets/w.ws").returncode == 0
    assert cli(root, "print", "w").returncode == 0  # the name of a worksheets/ file
    assert cli(root, "new", "stored").returncode == 0 and cli(root, "work", "stored").returncode == 0
    for args in (["stored"], []):  # a stored name; no argument: the current worksheet
        p = cli(root, "print", *args)
        assert p.returncode == 0 and "(stored)" in p.stdout, (args, p.stderr)


@pytest.fixture
def busy(store, tmp_path):
    """A bundle of 1,500 files whose stdout is 3 MiB of two-byte characters ending in a cut one, a
    dataset 150 runs depend on, and a run whose stdout is a link out; served."""
    files = {f"f{i:05d}": "x" for i in range(1500)}
    files["stdout"] = "é" * (3 << 19) + "END\n"
    b = upload(store, tmp_path, "busy", files)
    for i in range(150):
        store.run(f"true {i}", [("d", b.uuid)], name=f"user{i}", start_worker=False)
    d = store.location(b)
    mode = os.stat(d).st_mode
    os.chmod(d, mode | 0o200)
    with open(os.path.join(d, "stderr"), "wb") as f:  # planted: a live run's half-written character
        f.write(b"ab" + "é".encode()[:1])
    os.chmod(d, mode)
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read().decode()
        conn.close()
        return r.status, r.getheader("content-type"), body
    yield {"get": get, "bundle": b}
    server.shutdown()
    server.server_close()


def test_a_folder_of_many_files_lists_the_first_thousand_and_counts_the_rest(busy):
    """A run writing 100,000 files made a 100,000-row bundle page (and file page)."""
    u = busy["bundle"].uuid
    for path in (f"/bundles/{u}", f"/bundles/{u}/files/"):
        status, _, body = busy["get"](path)
        assert status == 200 and body.count('<tr><td><a href="') == 1000, path
        assert "and 502 more (1502 entries in all; the first 1000 by name are listed)" in body, path
        assert ">f00999</a>" in body and ">f01000</a>" not in body


def test_a_dataset_with_many_dependents_lists_the_newest_hundred(busy):
    status, _, body = busy["get"](f"/bundles/{busy['bundle'].uuid}")
    assert status == 200 and body.count("<th>used by</th>") == 101  # 100 and the line counting the rest
    assert ">user149</a>" in body and ">user49</a>" not in body and "and 50 more" in body
    assert "dependency%3D" + busy["bundle"].uuid in body  # a search for them all


def test_stdout_shows_its_last_mib_in_whole_characters(busy):
    """The page showed the first MiB of stdout and the tail then sent every byte after it, 1 MiB a
    request (a chatty run's log grew the page without bound); a two-byte character cut by the
    MiB, or written in two pieces, showed as U+FFFD."""
    u = busy["bundle"].uuid
    status, _, body = busy["get"](f"/bundles/{u}")
    assert "END" in body and '<p class="none" id="stdout-trimmed">' in body and 'id="stderr-trimmed" hidden' in body
    assert "\ufffd" not in body.split('id="stdout"')[1].split("</pre>")[0]
    status, ctype, body = busy["get"](f"/bundles/{u}/tail/stdout?offset=0")
    j = json.loads(body)
    size = 2 * (3 << 19) + 4
    assert status == 200 and j["offset"] == size and 0 < j["skipped"] <= size - (1 << 20) + 1
    assert j["data"].endswith("END\n") and "\ufffd" not in j["data"] and len(j["data"].encode()) <= 1 << 20
    j = json.loads(busy["get"](f"/bundles/{u}/tail/stderr?offset=0")[2])
    assert j["data"] == "ab" and j["offset"] == 2  # the cut character comes with its second byte
    j = json.loads(busy["get"](f"/bundles/{u}/tail/stdout?offset={size + 100}")[2])  # truncated by the run
    assert j["reset"] and j["data"].endswith("END\n")


def test_a_refused_tail_still_says_whether_the_run_ended(store, tmp_path):
    """stdout replaced by a link out: the tail's 404 was an HTML page, the live page's script failed
    to read it and stopped polling, so the page never learnt that the run ended."""
    run, _ = store.run("rm -f stdout; ln -s /etc/passwd stdout", name="linker", start_worker=False)
    drain(store)
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=20)
        conn.request("GET", f"/bundles/{run.uuid}/tail/stdout?offset=0")
        r = conn.getresponse()
        body = r.read().decode()
        assert r.status == 404 and r.getheader("content-type").startswith("application/json")
        j = json.loads(body)
        assert j["final"] is True and j["state"] == store.get(run.uuid).state and PASSWD not in body
    finally:
        server.shutdown()
        server.server_close()


# --- the live page in a real browser (Debian's chromium via Playwright) ------------------------------

@pytest.fixture
def live_site(store, browser):
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    yield {"store": store, "page": page, "url": f"http://127.0.0.1:{server.server_address[1]}"}
    page.close()
    server.shutdown()
    server.server_close()


def js_until(page, expression, timeout):
    """Poll through the DevTools protocol (wait_for_function evals, which the UI's CSP forbids)."""
    import time

    from playwright.sync_api import Error
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if page.evaluate(expression):
                return True
        except Error:  # the page is reloading: ask the new one
            pass
        time.sleep(0.2)
    return False


def start(store, command, name):
    import time
    run, _ = store.run(command, name=name)
    deadline = time.time() + 60
    while store.get(run.uuid).state != "running":
        assert time.time() < deadline, store.get(run.uuid).state
        time.sleep(0.1)
    return run


def finish(store, run):
    b = store.get(run.uuid)
    if not b.final:
        store.kill(b)
    store.wait(store.get(run.uuid), timeout=60)


def test_the_live_tail_keeps_only_the_last_mib(live_site):
    """The page appended up to 1 MiB every 500 ms for as long as the run wrote: a chatty run grew
    the tab without bound. It keeps the last MiB of characters and says that earlier output was
    trimmed, with a link to the whole file."""
    store, page = live_site["store"], live_site["page"]
    run = start(store, "python3 -u -c \"import sys, time\nfor i in range(30):\n    sys.stdout.write(('%d' % i) * 299999"
                       " + '\\n'); sys.stdout.flush(); time.sleep(0.2)\nprint('MARK'); time.sleep(3)\n"
                       "sys.stdout.write('\u00e9' * (3 << 19) + '\\nMARK2\\n'); sys.stdout.flush(); time.sleep(60)\"", "chatty")
    try:
        page.goto(f"{live_site['url']}/bundles/{run.uuid}")
        assert js_until(page, "document.getElementById('stdout').textContent.includes('MARK')", 60), \
            "the tail never showed the run's last line"
        length = page.evaluate("document.getElementById('stdout').textContent.length")
        assert length <= 1 << 20, length
        assert page.is_visible("#stdout-trimmed") and not page.is_visible("#stderr-trimmed")
        assert page.get_attribute("#stdout-trimmed a", "href") == f"/bundles/{run.uuid}/files/stdout?raw=1"
        # 3 MiB at once: the tail skips to their last MiB, and what was shown before is not kept
        # next to it (the bytes between were never sent: joined, the view would lie)
        assert js_until(page, "document.getElementById('stdout').textContent.includes('MARK2')", 60)
        text = page.evaluate("document.getElementById('stdout').textContent")
        assert "\nMARK\n" not in text and text.startswith("\u00e9") and len(text) <= 1 << 20
    finally:
        finish(store, run)


def test_the_live_page_learns_the_run_ended_when_its_stdout_is_refused(live_site):
    """A run replacing its stdout by a link out made the tail answer 404 (HTML): the script stopped
    polling, and the page said `running` forever. It still learns the end, and reloads."""
    store, page = live_site["store"], live_site["page"]
    run = start(store, "rm -f stdout; ln -s /etc/passwd stdout; sleep 3", "linker")
    try:
        page.goto(f"{live_site['url']}/bundles/{run.uuid}")
        assert js_until(page, "!document.querySelector('[data-tail]') && "
                              "document.getElementById('state').textContent !== 'running'", 40), \
            page.inner_text("#state")
        assert PASSWD not in page.content()
    finally:
        finish(store, run)


def test_a_huge_table_on_a_page_shows_a_thousand_rows_and_counts_the_rest(store, tmp_path, monkeypatch):
    """A worksheet (or a search: /search?q=.limit=100000) of 100,000 bundles was a 100,000-row page,
    tens of MB re-sent every 2 s while one of them ran; and a run with thousands of dependencies
    listed each on its bundle page. `print --html` still writes every row."""
    data = upload(store, tmp_path, "data", {"x": "1"})
    parents = [upload(store, tmp_path, f"p{i}", {"x": str(i)}) for i in range(3)]
    runs = [store.run(f"true {i}", [("d", data.uuid)], name=f"r{i}", start_worker=False)[0] for i in range(1200)]
    import codalite.web.app as web_app
    from codalite.worksheets import model
    ws = model.new(store, "big")
    model.set_source(store, ws, "% schema s\n% add name\n% display table s\n" + "".join(f"{{{r.uuid}}}\n" for r in runs))
    many, _ = store.run("true many", [(f"p{i}", p.uuid) for i, p in enumerate(parents)], name="many", start_worker=False)
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path):
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    try:
        for path in ("/worksheets/big", "/worksheets/big/blocks", "/search?q=name%3Dr%25+.limit%3D5000"):
            status, body = get(path)
            assert status == 200 and body.count("<tr class=") == 1000, path
            assert "and 200 more rows (1200 in all; this page shows the first 1000" in body, path
        monkeypatch.setattr(web_app, "MAX_ENTRIES", 2)  # as 1,000 of 1,001 dependencies
        status, body = get(f"/bundles/{many.uuid}")
        assert body.count("<th>dependency</th>") == 3 and ">p1</a>" in body and ">p2</a>" not in body
        assert "and 1 more (`codalite info" in body
    finally:
        server.shutdown()
        server.server_close()
    page = render.to_html(store, interpret(store, model.get(store, "big").items), "t")
    assert page.count("<tr class=") == 1200 and "more rows" not in page


def test_a_running_bundle_removing_files_does_not_break_its_page(store):
    """A run that deletes files as it goes (a trainer rotating its checkpoints) removed one between
    the folder's read and its stat: the bundle page was a 500 naming FileNotFoundError."""
    import time
    run = start(store, "python3 -c \"import os, time\nt = time.time()\nwhile time.time() - t < 60:\n"
                       "    [open('f%d' % i, 'w').close() for i in range(2000)]\n"
                       "    [os.remove('f%d' % i) for i in range(2000)]\"", "churn")
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        time.sleep(1)
        failures = []
        for _ in range(150):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
            conn.request("GET", f"/bundles/{run.uuid}")
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            if r.status != 200:
                failures.append(body[-200:])
        assert not failures, (len(failures), failures[0])
    finally:
        server.shutdown()
        server.server_close()
        finish(store, run)


def test_a_search_longer_than_sqlite_takes_is_a_404_naming_the_limit(served):
    """60,000 characters in the search box: SQLite refused the LIKE pattern, a 500 naming OperationalError."""
    status, body = served["get"]("/search?q=" + "a" * 60000)
    assert status == 404 and "at most 4096 characters" in body and "OperationalError" not in body
    assert served["get"]("/search?q=" + "a" * 4000)[0] == 200


def test_print_of_a_system_file_is_refused_for_root_and_for_a_user(any_cl):
    """As root /etc/shadow printed as a worksheet; as a user /etc/passwd did. Both: one line, exit 2."""
    any_cl("init")
    for target in ("/etc/passwd", "/etc/shadow"):
        p = any_cl("print", target, ok=False)
        assert p.returncode == 2 and p.stdout == "" and "not a worksheet file" in p.stderr, (target, p.stderr)
        assert p.stderr.count("\n") == 1 and "root:" not in p.stderr
