"""Pictures in `codalite serve`, in a real headless browser under the UI's CSP: training curves of
several runs overlaid on a worksheet, a fine-tune's curves on its bundle page growing live while
it trains, the examples page (images, references, each model's answer, filters), and an SVG a run
wrote shown by `% display image` (an image, never active content)."""

import http.client
import os
import threading

import pytest

from picture_helpers import fake_finetunes, release, scored_study, start_gated_finetune, wait_for

from codalite import Store, Worker
from codalite.web import make_server
from codalite.worksheets import model

ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "artifacts")
SVG = ("<svg xmlns='http://www.w3.org/2000/svg' width='40' height='30'><rect width='40' height='30' fill='red'/>"
       "<script>window.top.__pwned = 1</script></svg>")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    old = os.getcwd()
    os.chdir(root)
    os.environ.pop("CODALITE_HOME", None)
    store = Store.init(root)
    fts = fake_finetunes(store, root, lrs=(0.5, 1.0))
    study = scored_study(store, root)
    pic, _ = store.run(f"printf '%s' \"{SVG}\" > x.svg", name="pic", start_worker=False)
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()
    ws = model.new(store, "pictures", "Pictures")
    model.set_source(store, ws, "## Loss\n% display graph /log_history.json y=loss,eval_loss\n% search name=ft-% .limit=10\n"
                     "## Examples\n% display examples limit=3\n% search name=score-% .limit=10\n"
                     f"## A picture\n% display image /x.svg\n{{{pic.uuid}}}\n")
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"store": store, "fts": fts, "study": study, "pic": store.get(pic.uuid), "root": root,
           "port": server.server_address[1], "url": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()
    server.server_close()
    os.chdir(old)


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    pg.csp_errors = []
    pg.on("console", lambda m: "Content Security Policy" in m.text and pg.csp_errors.append(m.text))
    yield pg
    pg.close()


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def images_loaded(page, selector):
    return page.evaluate(f"Array.from(document.querySelectorAll({selector!r})).map(i => i.complete && i.naturalWidth)")


def test_worksheet_overlays_runs_shows_examples_and_an_svg_image(site, page):
    page.goto(site["url"] + "/worksheets/pictures")
    legend = page.locator("svg.graph text.legend").all_text_contents()  # newest run first, as the search lists
    assert legend == ["ft-1.0 loss", "ft-1.0 eval_loss", "ft-0.5 loss", "ft-0.5 eval_loss"]
    assert page.locator("svg.graph polyline").count() == 4
    rows = page.locator("table.examples tbody tr")
    assert rows.count() == 3
    assert rows.nth(0).locator("td.answer").all_inner_texts() == ["black ✗", "red ✓"]  # score-bad is newer
    assert images_loaded(page, "table.examples img") == [1, 1, 1]
    # the run's SVG is drawn (40 px wide) and its script never runs
    assert images_loaded(page, ".block.image img") == [40]
    assert page.evaluate("window.__pwned") is None
    assert page.csp_errors == []
    shot(page, "pictures-worksheet")
    page.click("a.examples-link")
    page.wait_for_url("**/examples?**")
    assert page.locator("table.examples tbody tr").count() == 5


def test_examples_page_filters_by_type_and_verdict(site, page):
    good, bad = site["study"]["score"]["good"], site["study"]["score"]["bad"]
    page.goto(f"{site['url']}/examples?b={good.uuid}&b={bad.uuid}")
    assert page.locator("table.examples thead th").all_inner_texts() == ["image", "question", "reference",
                                                                          "score-good", "score-bad"]
    assert page.locator("table.examples tbody tr").count() == 5
    page.select_option("select[name=qtype]", "shape")  # app.js submits on change
    page.wait_for_url("**qtype=shape**")
    assert page.locator("table.examples tbody tr").evaluate_all("rs => rs.map(r => r.dataset.id)") == ["test-2", "test-3"]
    page.select_option("select[name=model]", "0")
    page.wait_for_url("**model=0**")
    page.select_option("select[name=verdict]", "wrong")
    page.wait_for_url("**verdict=wrong**")
    rows = page.locator("table.examples tbody tr")
    assert rows.count() == 1 and rows.nth(0).locator("td.reference").inner_text() == "triangle"
    assert rows.nth(0).locator("td.answer").all_inner_texts() == ["rectangle ✗", "rectangle ✗"]
    assert images_loaded(page, "table.examples img") == [1]
    assert "1 of 5 questions match" in page.inner_text("#count")
    assert page.csp_errors == []
    shot(page, "examples")
    # search keywords instead of uuids; a bad filter is a clear 404 page, not a traceback
    page.goto(f"{site['url']}/examples?q=name%3Dscore-%25")
    assert page.locator("table.examples tbody tr").count() == 5
    resp = page.goto(f"{site['url']}/examples?b={good.uuid}&verdict=maybe")
    assert resp.status == 404 and "verdict must be one of" in page.inner_text("#error")


def test_bundle_page_curves_grow_live_while_the_run_trains(site, page):
    store = site["store"]
    run = start_gated_finetune(store, site["root"], every=5, name="ft-live")
    try:
        page.goto(f"{site['url']}/bundles/{run.uuid}")
        imgs = page.locator("#curves img.curves")
        assert imgs.count() == 2 and imgs.nth(0).get_attribute("data-refresh")
        wait_for(lambda: images_loaded(page, "#curves img") == [560, 560], 15, "the curves to load")
        status, headers, body = get(site, f"/bundles/{run.uuid}/curves.svg?panel=loss")
        assert status == 200 and headers["content-type"].startswith("image/svg+xml")
        assert b"(live)" in body and b"checkpoint-5" in body and body.count(b"<circle") == 5 + 1  # loss 1-5, eval 5
        release(store, run)
        wait_for(lambda: store.get(run.uuid).state == "ready", 60, "the run to finish")
        page.wait_for_selector("#state.state-ready", timeout=20000)  # the tail sees it end and reloads
        assert page.locator("#curves img[data-refresh]").count() == 0
        _, _, body = get(site, f"/bundles/{run.uuid}/curves.svg?panel=metrics")
        assert b"(live)" not in body and b"eval_exact" in body and b"log_history.json" in body
        shot(page, "curves")
    finally:
        b = store.get(run.uuid)
        if not b.final:
            store.kill(b)


def get(site, path):
    conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_an_svg_is_an_image_only_when_asked_and_stays_inert(site, page):
    uuid = site["pic"].uuid
    status, headers, body = get(site, f"/bundles/{uuid}/files/x.svg?raw=1&image=1")
    assert status == 200 and headers["content-type"].startswith("image/svg+xml") and b"<script>" in body
    assert "sandbox" in headers["content-security-policy"] and "default-src 'none'" in headers["content-security-policy"]
    _, headers, _ = get(site, f"/bundles/{uuid}/files/x.svg?raw=1")  # opened plainly: text, as before
    assert headers["content-type"] == "text/plain; charset=utf-8"
    page.goto(f"{site['url']}/bundles/{uuid}/files/x.svg?raw=1&image=1")  # opened on its own: no script runs
    page.wait_for_timeout(200)
    assert page.evaluate("window.__pwned") is None
