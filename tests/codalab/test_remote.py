"""codalite against a real CodaLab 1.7.5 server; the official `cl` CLI checks what it sees."""

import json
import os
import stat

from codalite import Store
from codalite.codalab import remotes
from codalite.codalab.sync import bundle_doc, topo_closure


def test_remote_add_caches_token_privately(lite, stack, tmp_path):
    home = tmp_path / ".codalite"
    tokens = home / "remote_tokens.json"
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    token = json.loads(tokens.read_text())["lab"]["access_token"]
    out = lite("remote", "ls")
    assert "lab" in out.stdout and stack.url in out.stdout
    assert token not in out.stdout + out.stderr
    assert token not in (home / "remotes.json").read_text()


def test_push_keeps_uuids_command_dependencies_and_contents(lite, stack, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("a\nb\nc\n")
    (tmp_path / "notes.txt").write_text("single file bundle\n")
    data = lite.out("upload", "data", "-n", "data")
    note = lite.out("upload", "notes.txt")
    run = lite.out("run", f"d:{data}", f"n:{note}", "wc -l < d/x.txt > count.txt; cat n > copy.txt", "-n", "count", "-W")
    r = lite("push", run, "--remote", "lab")
    assert r.stdout.strip() == run
    assert "pushed 3" in r.stderr
    # the referee: the official CLI sees the same uuids, command, dependencies and contents
    assert stack.info(run, "uuid") == run
    assert stack.info(run, "state") == "ready"
    assert stack.info(run, "command") == "wc -l < d/x.txt > count.txt; cat n > copy.txt"
    assert stack.info(run, "name") == "count"
    assert stack.cl("cat", f"{run}/count.txt").strip() == "3"
    assert stack.cl("cat", f"{run}/copy.txt").strip() == "single file bundle"
    assert stack.info(data, "uuid") == data and stack.info(data, "bundle_type") == "dataset"
    assert stack.cl("cat", f"{data}/x.txt") == "a\nb\nc\n"
    assert stack.cl("cat", note) == "single file bundle\n"
    info = stack.cl("info", run)
    assert f"d: data({data})" in info and f"n: notes.txt({note})" in info
    # a second push finds everything there
    r = lite("push", run, "--remote", "lab")
    assert "pushed 0, already there 3" in r.stderr


def test_interrupted_push_resumes(lite, stack, tmp_path):
    """A push that created the bundles on the server but died before their contents went up leaves
    them `uploading` there (never `ready` with partial contents); the retried push finishes them."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "v.txt").write_text("42\n")
    data = lite.out("upload", "d")
    run = lite.out("run", f"d:{data}", "cat d/v.txt > out.txt", "-W")
    store = Store.find(str(tmp_path))
    client = remotes.client(store, "lab")
    todo = topo_closure(store, [store.get(run)])
    ws = client.worksheet_uuid("/")
    client.create_bundles([bundle_doc(b) for b in todo], ws, wait_for_upload=True)  # ...and then it died
    client.close()
    assert stack.info(run, "state") == "uploading"
    r = lite("push", run, "--remote", "lab")
    assert "pushed 2" in r.stderr
    assert stack.info(run, "state") == "ready"
    assert stack.cl("cat", f"{run}/out.txt").strip() == "42"


def test_server_down_gives_a_clear_error(lite, stack, tmp_path):
    (tmp_path / "f.txt").write_text("x\n")
    up = lite.out("upload", "f.txt")
    r = lite("remote", "add", "down", "http://127.0.0.1:9", ok=False)
    assert r.returncode == 1
    assert "cannot reach the CodaLab server at http://127.0.0.1:9" in r.stderr
    assert "Traceback" not in r.stderr
    # a remote registered while the server was up, pushing while it is down
    cfg = tmp_path / ".codalite" / "remotes.json"
    data = json.loads(cfg.read_text())
    data["gone"] = {"url": "http://127.0.0.1:9", "worksheet": None}
    cfg.write_text(json.dumps(data))
    r = lite("push", up, "--remote", "gone", ok=False)
    assert r.returncode == 1 and "cannot reach the CodaLab server" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = lite("push", up, "--remote", "nosuch", ok=False)
    assert r.returncode == 2 and "no remote named 'nosuch'" in r.stderr


def test_remote_run_reaches_ready_and_comes_back(lite, stack, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("1\n2\n3\n4\n")
    data = lite.out("upload", "d", "-n", "nums")
    r = lite("run", f"d:{data}", "wc -l < d/x.txt > n.txt; echo '{\"acc\": 0.9}' > stats.json",
             "--remote", "lab", "-n", "count", "--request-docker-image", stack.image)
    uuid = r.stdout.strip()
    assert stack.info(uuid, "state") == "ready"           # ran on the server's worker
    assert stack.info(data, "uuid") == data               # its dependency was pushed first
    assert stack.cl("cat", f"{uuid}/n.txt").strip() == "4"
    # pulled into the local store with the server's state and metadata
    cat = lite.out("cat", f"{uuid}/n.txt")
    assert cat == "4"
    assert json.loads(lite.out("cat", f"{uuid}/stats.json")) == {"acc": 0.9}
    store = Store.find(str(tmp_path))
    b = store.get(uuid)
    assert b.state == "ready" and b.metadata["remote"] == "lab" and b.content_hash
    assert b.metadata.get("exitcode") == 0
    assert [(d.child_path, d.parent_uuid) for d in b.dependencies] == [("d", data)]
    # the same run again is a memo hit: nothing goes to the server
    r = lite("run", f"d:{data}", "wc -l < d/x.txt > n.txt; echo '{\"acc\": 0.9}' > stats.json",
             "--remote", "lab", "-n", "count", "--request-docker-image", stack.image)
    assert r.stdout.strip() == uuid and "memo hit" in r.stderr


def test_remote_run_that_fails_is_pulled_failed(lite, stack):
    r = lite("run", "echo partial > p.txt; exit 3", "--remote", "lab", "--request-docker-image", stack.image, ok=False)
    assert r.returncode == 1
    uuid = r.stdout.strip()
    assert stack.info(uuid, "state") == "failed"
    assert "failed on lab" in r.stderr
    assert lite.out("cat", f"{uuid}/p.txt") == "partial"


def test_pull_of_a_bundle_made_on_the_server(lite, stack, tmp_path):
    (tmp_path / "up.txt").write_text("from cl\n")
    uuid = stack.cl("upload", str(tmp_path / "up.txt")).strip().splitlines()[-1]
    run = stack.cl("run", f"u:{uuid}", "tr a-z A-Z < u > up.txt", "--request-docker-image", stack.image).strip().splitlines()[-1]
    stack.cl("wait", run, timeout=300)
    r = lite("pull", run, "--remote", "lab")
    assert f"{run} ready" in r.stdout
    assert lite.out("cat", f"{run}/up.txt") == "FROM CL"
    assert lite.out("cat", uuid) == "from cl"  # its ancestor came along


def test_expired_token_is_refreshed(lite, stack, tmp_path):
    tokens = tmp_path / ".codalite" / "remote_tokens.json"
    entry = json.loads(tokens.read_text())["lab"]
    old_refresh = entry["refresh_token"]
    entry.update(access_token="expired-and-revoked", expires_at=0)  # as after an hour
    tokens.write_text(json.dumps({"lab": entry}))
    (tmp_path / "f.txt").write_text("x\n")
    up = lite.out("upload", "f.txt")
    # no password available: only the refresh token can get a new access token
    r = lite("push", up, "--remote", "lab", env={"CODALAB_USERNAME": "", "CODALAB_PASSWORD": ""})
    assert r.stdout.strip() == up and stack.info(up, "state") == "ready"
    new = json.loads(tokens.read_text())["lab"]
    assert new["access_token"] != "expired-and-revoked" and new["expires_at"] > 0
    assert stat.S_IMODE(os.stat(tokens).st_mode) == 0o600
    assert old_refresh  # a refresh grant was possible


def test_wrong_password_is_a_clear_error(bare_lite, stack):
    c = bare_lite
    r = c("remote", "add", "lab", stack.url, ok=False, env={"CODALAB_PASSWORD": "wrong"})
    assert r.returncode == 1 and "refused the login of user 'tester'" in r.stderr
    assert "wrong" not in r.stderr


def test_recipe_runs_on_the_server(lite, stack, tmp_path):
    """`recipe run --remote`: missing cells run on the server's worker with local uuids and come back;
    a second run is all memo hits and creates nothing there."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("1 2 3\n")
    (tmp_path / "grid.yaml").write_text(
        "name: remote_grid\nuploads: {data: data}\ngrid: {k: [2, 3]}\nsteps:\n"
        "  count:\n    command: wc -w < d/x.txt > n.txt\n    deps: {d: data}\n"
        "  scale:\n    command: echo $(( $(cat c/n.txt) * {{ k }} )) > out.txt\n    deps: {c: count}\n")
    r = lite("recipe", "run", "grid.yaml", "--remote", "lab")
    assert "3 cells: 0 memo hits, 3 ran on lab" in r.stderr, r.stderr
    uuid = lite.out("info", "-f", "uuid", "scale-k3")
    assert lite.out("cat", "scale-k3/out.txt") == "9"
    assert stack.info(uuid, "state") == "ready" and stack.cl("cat", f"{uuid}/out.txt").strip() == "9"
    assert stack.info(uuid, "name") == "scale-k3"
    r = lite("recipe", "run", "grid.yaml", "--remote", "lab")
    assert "3 cells: 3 memo hits, 0 ran on lab" in r.stderr, r.stderr


def test_worksheet_push_renders_on_the_server(lite, stack, tmp_path):
    """A worksheet pushed with its bundles renders the same table with the official `cl print`."""
    run = lite.out("run", "echo '{\"acc\": 0.875}' > stats.json", "-n", "ws-run", "-W")
    (tmp_path / "worksheets").mkdir()
    (tmp_path / "worksheets" / "results.ws").write_text(
        "Results of the study.\n% schema s\n% add name\n% add acc /stats.json:acc %.2f\n"
        "% display table s\n{ws-run}\n")
    assert "0.88" in lite.out("print", "results")
    r = lite("push", "--worksheet", "worksheets/results.ws", "--remote", "lab")
    assert "pushed 1" in r.stderr
    ws_uuid = r.stdout.strip()
    printed = stack.cl("print", ws_uuid)
    assert "Results of the study." in printed and "ws-run" in printed and "0.88" in printed
    assert stack.info(run, "uuid") == run
