"""Faults in the worker's round fail the bundle at fault, with a message; they never wedge the worker.
And identical runs submitted at the same instant execute once."""

import concurrent.futures
import threading

from codalite import Store, Worker, hashing


def test_a_fault_while_finishing_fails_that_bundle_only(store, monkeypatch):
    bad, _ = store.run("mkdir poison && echo x > poison/f", name="bad", start_worker=False)
    good, _ = store.run("echo fine > out", name="good", start_worker=False)
    real = hashing.hash_path

    def faulty(path):  # an injected error, as a bug or an unreadable output would raise
        if "poison" in str(path) or str(path).endswith(bad.uuid):
            raise RuntimeError("injected fault")
        return real(path)

    monkeypatch.setattr(hashing, "hash_path", faulty)
    w = Worker(store, exit_when_idle=True, idle_seconds=0.1, poll=0.01, log=lambda m: None)
    assert w.serve()  # returns: the worker did not crash
    b, g = store.get(bad.uuid), store.get(good.uuid)
    assert b.state == "failed" and "internal error while finishing" in b.metadata["failure_message"]
    assert "injected fault" in b.metadata["failure_message"]
    assert g.state == "ready"


def test_a_fault_while_staging_fails_that_bundle_only(store, monkeypatch):
    parent, _ = store.run("echo p > p", name="parent", start_worker=False)
    child, _ = store.run("cat p/p", deps=[("p", parent.uuid)], name="child", start_worker=False)
    other, _ = store.run("echo o", name="other", start_worker=False)
    real = store.stage

    def faulty(b):
        if b.uuid == child.uuid:
            raise OSError("injected fault")
        return real(b)

    monkeypatch.setattr(store, "stage", faulty)
    w = Worker(store, exit_when_idle=True, idle_seconds=0.1, poll=0.01, log=lambda m: None)
    assert w.serve()
    assert store.get(child.uuid).state == "failed"
    assert "internal error while staging" in store.get(child.uuid).metadata["failure_message"]
    assert store.get(other.uuid).state == "ready" and store.get(parent.uuid).state == "ready"


def test_identical_runs_submitted_at_once_make_one_bundle(store):
    """8 clients, each with its own connection, submit the same run at the same instant."""
    barrier = threading.Barrier(8)

    def submit(_):
        s = Store(store.home)
        barrier.wait()
        b, hit = s.run("echo once", name="same", start_worker=False)
        s.close()
        return b.uuid

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        uuids = set(pool.map(submit, range(8)))
    assert len(uuids) == 1
    assert store.db.execute("SELECT COUNT(*) FROM bundle WHERE name = 'same'").fetchone()[0] == 1


def test_a_run_waiting_for_its_identical_twin_is_not_progress(store):
    """Staging a run whose twin is still running changes nothing: the worker must not count it as
    progress (it would spin, writing to the database every round, until the twin finishes)."""
    import time
    parent, _ = store.run("echo p > p", name="parent", start_worker=False)
    twins = [store.run("sleep 1; cat p/p > c", deps=[("p", parent.uuid)], name=f"twin{i}", start_worker=False)[0]
             for i in range(2)]
    w = Worker(store, poll=0.01, log=lambda m: None)
    assert w.acquire()
    try:
        busy_rounds, deadline = 0, time.time() + 30
        while store.get(twins[1].uuid).state not in ("ready", "failed") and time.time() < deadline:
            running = any(store.get(t.uuid).state == "running" for t in twins)
            if w.step() and running:
                busy_rounds += 1
            time.sleep(0.01)
    finally:
        w.release()
    states = [store.get(t.uuid) for t in twins]
    assert [b.state for b in states] == ["ready", "ready"]
    assert states[1].metadata.get("memo_hit_of") == twins[0].uuid
    assert busy_rounds <= 3  # the twin's start and finish, not every round of its second
