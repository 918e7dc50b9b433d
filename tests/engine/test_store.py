"""The store through the Python API: real SQLite files, real bundle directories, a real worker."""

import os
import sqlite3

import pytest

from codalite import Store, Worker, sandbox, search
from codalite.errors import (
    AmbiguousBundle, BundleNotFound, BundleStateError, CodaliteError, DependencyError, PathEscape,
    StoreNotFound, UsageError,
)


def drain(store, **kw):
    """Run a foreground worker until nothing is left to do."""
    w = Worker(store, exit_when_idle=True, idle_seconds=0.1, poll=0.01, **kw)
    assert w.serve()


def test_store_is_found_upward_and_uses_wal(tmp_path, monkeypatch):
    Store.init(tmp_path)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    s = Store.find(deep)
    assert s.home == str(tmp_path / ".codalite")
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StoreNotFound):
        Store.find("/")
    monkeypatch.setenv("CODALITE_HOME", str(tmp_path / ".codalite"))
    assert Store.find("/").home == str(tmp_path / ".codalite")


def test_upload_is_content_addressed_and_read_only(store, project):
    raw, reused = store.upload([project / "data"], name="raw")
    assert not reused and raw.state == "ready" and raw.content_hash.startswith("b3:")
    again, reused = store.upload([project / "data"], name="raw")
    assert reused and again.uuid == raw.uuid
    other, reused = store.upload([project / "data"], name="raw2")
    assert not reused and other.content_hash == raw.content_hash
    path = store.path_in(raw, "x.txt")
    # nobody else may write it; its owner may where runs are sandboxed (mounts protect it, see hashing)
    assert not os.stat(path).st_mode & (0o022 if sandbox.problem() is None else 0o222)
    (project / "data" / "x.txt").write_text("4 5\n")
    changed, reused = store.upload([project / "data"], name="raw")
    assert not reused and changed.content_hash != raw.content_hash
    assert store.resolve("raw").uuid == changed.uuid
    assert store.resolve("raw^2").uuid == raw.uuid
    single, _ = store.upload([project / "code" / "train.py"])
    assert single.is_dir is False and single.name == "train.py"


def test_upload_refuses_symlinks_that_leave_it(store, tmp_path):
    d = tmp_path / "up"
    d.mkdir()
    (d / "inside.txt").write_text("x")
    (d / "ok").symlink_to("inside.txt")
    bundle, _ = store.upload([d])
    assert os.readlink(os.path.join(store.bundle_dir(bundle.uuid), "ok")) == "inside.txt"
    assert store.path_in(bundle, "ok") == os.path.realpath(os.path.join(store.bundle_dir(bundle.uuid), "inside.txt"))
    (d / "bad").symlink_to("/etc/passwd")
    with pytest.raises(CodaliteError, match="points outside the upload"):
        store.upload([d], name="up2")
    assert len(store.ls()) == 1 and os.listdir(os.path.join(store.home, "tmp")) == []


def test_resolution_errors(store, project):
    a, _ = store.upload([project / "data"], name="a")
    with pytest.raises(BundleNotFound):
        store.resolve("nope")
    with pytest.raises(UsageError):
        store.resolve("9bad name")
    assert store.resolve(a.uuid[:8]).uuid == a.uuid
    for i in range(40):  # enough bundles that some share their first hex digit
        (project / "data" / "x.txt").write_text(str(i))
        store.upload([project / "data"], name=f"b{i}")
    firsts = [b.uuid[:3] for b in store.ls(limit=100)]
    shared = next(p for p in firsts if firsts.count(p) > 1)
    with pytest.raises(AmbiguousBundle):
        store.resolve(shared)
    assert store.resolve("^").name == "b39" and store.resolve("^2").name == "b38"


def test_run_memo_and_chain(store, project):
    code, _ = store.upload([project / "code"], name="code")
    data, _ = store.upload([project / "data"], name="raw")
    train, hit = store.run("python code/train.py --data data --out .", [("code", "code"), ("data", "raw")],
                           name="train", start_worker=False)
    assert not hit and train.state == "staged" and train.memo_key
    # a dependent submitted before its parent ran waits in `created`, without a memo key yet
    report, _ = store.run("cat t/stats.json > report.txt", [("t", train.uuid)], name="report", start_worker=False)
    assert report.state == "created" and report.memo_key is None
    drain(store)
    train, report = store.get(train.uuid), store.get(report.uuid)
    assert train.state == "ready" and report.state == "ready"
    assert open(store.path_in(report, "report.txt")).read() == '{"acc": 0.6}'
    assert sorted(os.listdir(store.path_in(train))) == ["stats.json", "stderr", "stdout"]  # links removed
    again, hit = store.run("python code/train.py --data data --out .", [("code", "code"), ("data", "raw")],
                           start_worker=False)
    assert hit and again.uuid == train.uuid
    forced, hit = store.run("python code/train.py --data data --out .", [("code", "code"), ("data", "raw")],
                            force=True, start_worker=False)
    assert not hit and forced.uuid != train.uuid


def test_deferred_memo_twin_shares_contents(store, project):
    data, _ = store.upload([project / "data"], name="raw")
    slow, _ = store.run("sleep 0.3; echo slow > out", [], name="slow", start_worker=False)
    a, _ = store.run("wc -c s/out > n", [("s", slow.uuid)], name="count", start_worker=False)
    b, _ = store.run("wc -c s/out > n", [("s", slow.uuid)], name="count", start_worker=False)
    assert a.uuid != b.uuid  # the key is unknown until `slow` finishes
    drain(store)
    a, b = store.get(a.uuid), store.get(b.uuid)
    assert a.state == b.state == "ready" and a.memo_key == b.memo_key
    assert b.metadata["memo_hit_of"] == a.uuid and b.content_hash == a.content_hash


def test_failures_never_match_and_fail_dependents(store):
    bad, _ = store.run("echo oops >&2; exit 3", [], name="bad", start_worker=False)
    child, _ = store.run("cat b/stdout", [("b", bad.uuid)], name="child", start_worker=False)
    allowed, _ = store.run("ls b > listing", [("b", bad.uuid)], name="allowed", start_worker=False,
                           requests={"allow_failed_dependencies": True})
    drain(store)
    bad = store.get(bad.uuid)
    assert bad.state == "failed" and bad.metadata["exitcode"] == 3
    assert open(store.path_in(bad, "stderr")).read() == "oops\n"
    assert store.get(child.uuid).state == "failed"
    assert "Parent bundles failed" in store.get(child.uuid).metadata["failure_message"]
    assert store.get(allowed.uuid).state == "ready"
    with pytest.raises(DependencyError, match="allow-failed-dependencies"):
        store.run("true", [("b", "bad")], start_worker=False)
    rerun, hit = store.run("echo oops >&2; exit 3", [], name="bad", start_worker=False)
    assert not hit and rerun.uuid != bad.uuid


def test_missing_dependency_path(store, project):
    store.upload([project / "data"], name="raw")
    with pytest.raises(CodaliteError, match="no such path"):
        store.run("true", [("d", "raw/missing.txt")], start_worker=False)
    with pytest.raises(UsageError, match="used twice"):
        store.run("true", [("d", "raw"), ("d", "raw")], start_worker=False)


def test_run_cannot_change_a_dependency(store, project):
    """Confined, the write fails and the dependency is intact; unconfined (no namespaces), root's
    write goes through and is caught afterwards: the run fails naming it, fsck reports it."""
    if sandbox.problem() is not None:
        pytest.skip(f"no sandbox here: {sandbox.problem()}")
    data, _ = store.upload([project / "data"], name="raw")
    vandal, _ = store.run("echo 9 >> d/x.txt", [("d", "raw")], name="vandal", start_worker=False)
    drain(store)
    vandal = store.get(vandal.uuid)
    assert vandal.state == "failed" and vandal.metadata["exitcode"] != 0
    assert "Read-only file system" in open(store.path_in(vandal, "stderr")).read()
    assert store.fsck() == []


def test_unconfined_run_that_changes_a_dependency_is_caught(store, project, monkeypatch):
    monkeypatch.setenv("CODALITE_SANDBOX", "none")
    sandbox.problem.cache_clear()
    try:
        data, _ = store.upload([project / "data"], name="raw")
        vandal, _ = store.run("chmod u+w d/x.txt; echo 9 >> d/x.txt", [("d", "raw")], name="vandal",
                              start_worker=False)
        drain(store)
    finally:
        monkeypatch.delenv("CODALITE_SANDBOX")
        sandbox.problem.cache_clear()
    vandal = store.get(vandal.uuid)  # modes stop no one who owns the files (or is root): caught afterwards
    assert vandal.state == "failed" and "modified its dependency d" in vandal.metadata["failure_message"]
    assert any("hash mismatch" in p for p in store.fsck())


def test_paths_cannot_escape(store, project):
    data, _ = store.upload([project / "data"], name="raw")
    with pytest.raises(UsageError):
        store.resolve_target("raw/../../etc/passwd")
    link, _ = store.run("ln -s /etc/passwd leak", [], name="leak", start_worker=False)
    drain(store)
    with pytest.raises(PathEscape):
        store.path_in(store.get(link.uuid), "leak")


def test_make_and_mimic(store, project):
    code, _ = store.upload([project / "code"], name="code")
    data, _ = store.upload([project / "data"], name="raw")
    train, _ = store.run("python code/train.py --data data --out .", [("code", "code"), ("data", "raw")],
                         name="train", start_worker=False)
    drain(store)
    both, _ = store.make([("stats", "train/stats.json"), ("data", "raw")], name="both", start_worker=False)
    one, _ = store.make([("", "train/stats.json")], name="stats", start_worker=False)
    drain(store)
    assert sorted(os.listdir(store.path_in(store.get(both.uuid)))) == ["data", "stats"]
    assert store.get(one.uuid).is_dir is False
    (project / "data" / "x.txt").write_text("10 20\n")
    raw2, _ = store.upload([project / "data"], name="raw")
    pairs = store.mimic(data, raw2, start_worker=False)
    assert [old.uuid for old, _ in pairs] == [train.uuid, both.uuid, one.uuid]
    drain(store)
    new_train = store.get(pairs[0][1].uuid)
    assert open(store.path_in(new_train, "stats.json")).read() == '{"acc": 3.0}'
    other, lines = store.why(new_train)
    assert other.uuid == train.uuid and lines == [lines[0]] and "dependency data: content changed" in lines[0]


def test_why_explains_env_vars_and_command(store):
    a, _ = store.run("echo $SEED", [], name="seeded", env_vars={"SEED": "1"}, start_worker=False)
    b, _ = store.run("echo $SEED", [], name="seeded", env_vars={"SEED": "2"}, start_worker=False)
    _, lines = store.why(b)
    assert lines == ["env var SEED: '1' -> '2'"]
    c, _ = store.run("echo $SEED!", [], name="seeded", env_vars={"SEED": "2"}, start_worker=False)
    assert store.why(c)[1] == ["command changed: 'echo $SEED' -> 'echo $SEED!'"]


def test_rm_guards_dependents(store, project):
    data, _ = store.upload([project / "data"], name="raw")
    child, _ = store.run("ls d", [("d", "raw")], name="child", start_worker=False)
    with pytest.raises(BundleStateError, match="dependent"):
        store.rm([data])
    removed = store.rm([data], recursive=True)
    assert set(removed) == {data.uuid, child.uuid}
    assert store.ls() == [] and os.listdir(os.path.join(store.home, "bundles")) == []


def test_search(store):
    for i in range(3):
        store.run(f"exit {i}", [], name=f"job{i}", start_worker=False)
    drain(store)
    assert [b.name for b in search(store, ["state=failed"])] == ["job2", "job1"]
    assert search(store, ["state=failed", ".count"]) == 2
    assert [b.name for b in search(store, ["name=job%", ".limit=1"])] == ["job2"]
    assert [b.name for b in search(store, ["state=ready,failed", "name=.sort"])] == ["job0", "job1", "job2"]
    with pytest.raises(UsageError):
        search(store, [".bogus"])


def test_fsck_and_integrity(store, project):
    data, _ = store.upload([project / "data"], name="raw")
    assert store.fsck() == []
    path = store.path_in(data, "x.txt")
    os.chmod(path, 0o644)
    with open(path, "a") as f:
        f.write("corrupt")
    assert store.fsck() == [f"{data.uuid} (raw): contents changed since it was finalized (hash mismatch)"]
    assert sqlite3.connect(os.path.join(store.home, "codalite.db")).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_each_gpu_run_gets_its_own_devices(store):
    """On a worker with two GPUs, three 1-GPU runs: two at once on different devices, then the third."""
    cmd = "echo $CUDA_VISIBLE_DEVICES > dev; date +%s.%N > t0; sleep 0.6; date +%s.%N > t1"
    runs = [store.run(cmd + f" # {i}", [], name=f"gpu{i}", requests={"request_gpus": 1}, start_worker=False)[0]
            for i in range(3)]
    cpu, _ = store.run("echo \"[$CUDA_VISIBLE_DEVICES]\" > dev", [], name="cpu", start_worker=False)
    drain(store, gpus=2)
    read = lambda b, f: open(store.path_in(store.get(b.uuid), f)).read().strip()  # noqa: E731
    devices = [read(b, "dev") for b in runs]
    assert sorted(devices[:2]) == ["0", "1"] and devices[2] in ("0", "1")
    spans = [(float(read(b, "t0")), float(read(b, "t1"))) for b in runs]
    assert spans[1][0] < spans[0][1]  # the first two overlapped
    assert spans[2][0] >= min(spans[0][1], spans[1][1])  # the third waited for a free GPU
    assert read(cpu, "dev") == "[]"
