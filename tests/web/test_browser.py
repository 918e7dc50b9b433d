"""`codalite serve` end to end in a real headless browser (Debian's chromium driven by Playwright):
worksheet tables whose cells link to bundle pages, the dependency graph, the file browser, a live
stdout tail and a live table while a run is going, and search. Screenshots: tests/artifacts/."""

import json
import os
import shutil
import threading
import time

import pytest

from codalite import Store, Worker
from codalite.web import make_server
from codalite.worksheets import model

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="chromium is absent: apt-get install -y chromium (browser tests need it)")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "artifacts")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    old = os.getcwd()
    os.chdir(root)
    os.environ.pop("CODALITE_HOME", None)
    store = Store.init(root)
    (root / "code").mkdir()
    (root / "code" / "train.py").write_text(
        "import json, sys\nlr = float(sys.argv[1])\nprint('training with lr', lr)\n"
        "json.dump({'acc': 0.5 + lr}, open('stats.json', 'w'))\n")
    code, _ = store.upload([str(root / "code")], name="code")
    runs = [store.run(f"python3 code/train.py {lr}", [("code", code.uuid)], name=f"train-{lr}", start_worker=False)[0]
            for lr in (0.1, 0.2)]
    Worker(store, exit_when_idle=True, idle_seconds=0.1, log=lambda m: None).serve()
    ws = model.new(store, "results", "Results")
    model.set_source(store, ws, "# Training runs\n% schema s\n% add name\n% add acc /stats.json:acc %.2f\n"
                     "% add state\n% display table s\n" + "".join(f"{{{r.uuid}}}\n" for r in runs))
    server = make_server(store, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"store": store, "code": code, "runs": [store.get(r.uuid) for r in runs],
           "url": f"http://127.0.0.1:{server.server_address[1]}"}
    server.shutdown()
    os.chdir(old)


@pytest.fixture
def page(browser):
    pg = browser.new_page()
    yield pg
    pg.close()


def wait_js(page, expression, timeout=15000):
    """page.wait_for_function runs its string through eval, which the UI's CSP forbids (as it
    should); page.evaluate goes through the DevTools protocol, so poll with it instead."""
    deadline = time.time() + timeout / 1000
    while not page.evaluate(expression):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"), full_page=True)


def test_worksheet_table_links_to_bundle_page_with_graph_and_files(site, page):
    page.goto(site["url"] + "/")
    page.click("text=results")
    assert page.inner_text("h1") == "Results"
    rows = page.locator("table.table tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().split("\t") == ["train-0.1", "0.60", "ready"]
    shot(page, "worksheet")
    rows.nth(1).locator("td").nth(1).locator("a").click()  # the acc cell
    run = site["runs"][1]
    page.wait_for_url(f"**/bundles/{run.uuid}")
    assert page.inner_text("#command") == "python3 code/train.py 0.2"
    assert page.inner_text("#state") == "ready"
    assert page.inner_text("#stdout").strip() == "training with lr 0.2"
    nodes = page.locator("#graph svg g.node")
    assert sorted(nodes.evaluate_all("ns => ns.map(n => n.dataset.uuid)")) == sorted([site["code"].uuid, run.uuid])
    shot(page, "bundle")
    page.click("#files >> text=stats.json")
    assert json.loads(page.inner_text("#file")) == {"acc": pytest.approx(0.7)}
    page.go_back()
    page.locator(f"#graph g.node[data-uuid='{site['code'].uuid}']").click()  # up the graph
    page.wait_for_url(f"**/bundles/{site['code'].uuid}")
    assert "train-0.1" in page.inner_text("#meta")  # used by


def test_live_tail_and_live_table_while_running(site, page):
    store = site["store"]
    slow, _ = store.run("python3 -u -c \"import time\nfor i in range(200): print('line', i); time.sleep(0.1)\"",
                        name="slow")
    try:
        deadline = time.time() + 30
        while store.get(slow.uuid).state != "running" and time.time() < deadline:
            time.sleep(0.1)
        ws = model.new(store, "live")
        model.set_source(store, ws, f"% schema s\n% add name\n% add state\n% display table s\n{{{slow.uuid}}}\n")
        page.goto(f"{site['url']}/bundles/{slow.uuid}")
        wait_js(page, "document.getElementById('stdout').textContent.includes('line 15')")
        first = page.inner_text("#stdout").count("line")
        wait_js(page, f"document.getElementById('stdout').textContent.split('line').length > {first + 5}")
        shot(page, "tail")
        page.goto(f"{site['url']}/worksheets/live")
        assert page.locator("table.table tbody td").nth(1).inner_text() == "running"
        store.kill(store.get(slow.uuid))
        wait_js(page, "document.querySelector('table.table tbody td:nth-child(2)').innerText === 'killed'")
        # the table refreshed itself
        shot(page, "live-table")
    finally:
        b = store.get(slow.uuid)
        if not b.final:
            store.kill(b)
        store.wait(store.get(slow.uuid), timeout=30)


def test_search_and_missing_pages(site, page):
    page.goto(site["url"] + "/")
    page.fill("input[name=q]", "name=train-% .limit=10")
    page.click("button[type=submit]")
    names = page.locator("table.table tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(names) == ["train-0.1", "train-0.2"]
    shot(page, "search")
    resp = page.goto(site["url"] + "/bundles/0x" + "f" * 32)
    assert resp.status == 404 and "no bundle matches" in page.inner_text("#error")
