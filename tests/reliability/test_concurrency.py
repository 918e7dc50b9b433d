"""Concurrency: 8 client processes x 200 mixed operations on one store, with a worker draining it:
no lost or duplicated bundle, no "database is locked" surfaced, fsck clean."""

import multiprocessing
import os

from codalite import Store, Worker

CLIENTS, OPS = 8, 200


def client(home, i, out):
    """Uploads, runs, makes, reads and rms of its own bundles; returns what it kept and removed."""
    s = Store(home)
    kept, removed, uploads = [], [], []
    scratch = os.path.join(os.path.dirname(home), f"client{i}")
    os.makedirs(scratch)
    for j in range(OPS):
        kind = j % 5
        if kind == 0:
            path = os.path.join(scratch, f"f{j}.txt")
            with open(path, "w") as f:
                f.write(f"{i}-{j}\n")
            b, _ = s.upload([path], name=f"u{i}_{j}")
            uploads.append(b.uuid)
        elif kind == 1:
            b, _ = s.run(f"echo {i}-{j} > out", name=f"r{i}_{j}", start_worker=False)
            kept.append(b.uuid)
        elif kind == 2:
            b, _ = s.make([("x", uploads[-1])], name=f"m{i}_{j}", start_worker=False)
            kept.append(b.uuid)
            kept.append(uploads.pop())  # a make's parent stays
        elif kind == 3:
            s.resolve(kept[-1])
            s.query("name LIKE ?", (f"r{i}_%",), limit=5)
        else:
            victim = uploads.pop() if uploads else None
            if victim:
                s.rm([s.get(victim)])
                removed.append(victim)
    s.close()
    out.put((kept + uploads, removed))


def test_eight_clients_two_hundred_mixed_operations(tmp_path):
    store = Store.init(tmp_path)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=client, args=(store.home, i, out)) for i in range(CLIENTS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0  # an exception (e.g. "database is locked") would have ended it non-zero
    Worker(store, exit_when_idle=True, idle_seconds=0.2, poll=0.01, log=lambda m: None).serve()
    kept = [u for k, _ in results for u in k]
    removed = [u for _, r in results for u in r]
    assert len(kept) == len(set(kept)) and not set(kept) & set(removed)
    rows = {r[0]: r[1] for r in store.db.execute("SELECT uuid, state FROM bundle")}
    assert set(rows) == set(kept)  # nothing lost, nothing extra, nothing removed came back
    assert set(rows.values()) == {"ready"}
    assert store.fsck() == [] and store.leftovers() == []


def same_upload(home, path, barrier, out):
    s = Store(home)
    barrier.wait()
    b, reused = s.upload([path], name="shared")
    out.put((b.uuid, reused))
    s.close()


def test_identical_uploads_at_the_same_instant_make_one_bundle(tmp_path):
    """The check for a ready upload with the same name and contents ran before the upload's insert, outside
    its transaction: clients uploading the same data at once each made a bundle (runs already checked their
    memo key inside the insert's transaction). 6 clients, one 32 MB file, released together."""
    store = Store.init(tmp_path / "s")
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(32 << 20))
    ctx = multiprocessing.get_context("fork")
    out, barrier = ctx.Queue(), ctx.Barrier(6)
    procs = [ctx.Process(target=same_upload, args=(store.home, str(data), barrier, out)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({u for u, _ in results}) == 1 and sum(not reused for _, reused in results) == 1, results
    assert store.count() == 1 and store.fsck() == [] and store.leftovers() == []
