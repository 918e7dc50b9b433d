"""Engine benchmarks: per-bundle overhead, memo-hit cost, upload hashing throughput.

    python bench/bench_engine.py [--n 200] [--repeat 3] [--gib 1]

Writes bench/results/engine.json. Each number is compared in the same run with its peer:
spawning `bash -c true` directly, `sha256sum` and `cat > /dev/null` on the same file, and the same
fan-out unconfined (CODALITE_SANDBOX=none) for the cost of the bubblewrap sandbox.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from codalite import Store, sandbox  # noqa: E402
from codalite.hashing import hash_path  # noqa: E402
from codalite.worker import ensure_worker  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "engine.json")


def raw_spawn_cost(n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["bash", "-c", "true"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_graph(n, chain, confined=True):
    """Submit n trivial runs (independent, or each depending on the previous) and wait for all.
    confined=False runs them without the bubblewrap sandbox (the worker inherits the variable)."""
    root = tempfile.mkdtemp(prefix="bench-engine-")
    store = Store.init(root)
    if not confined:
        os.environ["CODALITE_SANDBOX"] = "none"
    ensure_worker(store)
    os.environ.pop("CODALITE_SANDBOX", None)
    time.sleep(1.0)  # the worker is up before the clock starts: we time bundles, not its start
    t0 = time.perf_counter()
    uuids, prev = [], None
    for i in range(n):
        deps = [("prev", prev)] if chain and prev else []
        b, _ = store.run(f"true # {i}", deps, name=f"t{i}")
        uuids.append(b.uuid)
        prev = b.uuid
    submit = time.perf_counter() - t0
    for u in uuids:
        b = store.wait(store.get(u))
        assert b.state == "ready", (b.uuid, b.state, b.metadata.get("failure_message"))
    total = time.perf_counter() - t0
    # memo hits: the same n submissions again return the existing bundles
    t1 = time.perf_counter()
    prev = None
    for i in range(n):
        deps = [("prev", prev)] if chain and prev else []
        b, hit = store.run(f"true # {i}", deps, name=f"t{i}")
        assert hit
        prev = b.uuid
    memo = (time.perf_counter() - t1) / n
    store.close()
    shutil.rmtree(root, ignore_errors=True)
    return {"submit_s_per_bundle": submit / n, "total_s_per_bundle": total / n, "memo_hit_s": memo}


def hashing_throughput(gib):
    d = tempfile.mkdtemp(prefix="bench-hash-")
    path = os.path.join(d, "big.bin")
    block = os.urandom(1 << 24)
    with open(path, "wb") as f:
        for _ in range(int(gib * 64)):
            f.write(block)
    size = os.path.getsize(path)

    def timed(fn):
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return size / statistics.median(ts) / 2**20  # MiB/s

    out = {
        "file_gib": size / 2**30,
        "codalite_hash_mib_s": timed(lambda: hash_path(path)),
        "sha256sum_mib_s": timed(lambda: subprocess.run(["sha256sum", path], check=True, capture_output=True)),
        "cat_mib_s": timed(lambda: subprocess.run(f"cat {path} > /dev/null", shell=True, check=True)),
    }
    store = Store.init(d)
    out["codalite_upload_copy_and_hash_mib_s"] = timed(lambda: store.upload([path], force=True))
    store.close()
    shutil.rmtree(d, ignore_errors=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="runs per graph")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--gib", type=float, default=1.0, help="size of the hashed file")
    args = ap.parse_args()

    raw = raw_spawn_cost(args.n)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "raw_bash_true_s": raw, "n": args.n}
    for shape in ("fanout", "chain"):
        reps = [run_graph(args.n, shape == "chain") for _ in range(args.repeat)]
        med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
        med["overhead_s_per_bundle"] = med["total_s_per_bundle"] - raw
        result[shape] = med
        print(f"{shape}: {med['total_s_per_bundle'] * 1e3:.1f} ms/bundle, overhead "
              f"{med['overhead_s_per_bundle'] * 1e3:.1f} ms over bash -c true ({raw * 1e3:.1f} ms); "
              f"memo hit {med['memo_hit_s'] * 1e3:.2f} ms")
    if sandbox.problem() is None:  # the sandbox's cost: the same fan-out, unconfined, interleaved
        pairs = [(run_graph(args.n, False, confined=False), run_graph(args.n, False)) for _ in range(args.repeat)]
        off = statistics.median(p[0]["total_s_per_bundle"] for p in pairs)
        on = statistics.median(p[1]["total_s_per_bundle"] for p in pairs)
        result["sandbox"] = {"fanout_unconfined_s_per_bundle": off, "fanout_confined_s_per_bundle": on,
                             "cost_s_per_bundle": on - off,
                             "spread_confined_s": [min(p[1]["total_s_per_bundle"] for p in pairs),
                                                   max(p[1]["total_s_per_bundle"] for p in pairs)]}
        print(f"sandbox: {on * 1e3:.1f} vs {off * 1e3:.1f} ms/bundle unconfined")
    result["hashing"] = hashing_throughput(args.gib)
    print(json.dumps(result["hashing"], indent=1))
    result["goals"] = {
        "overhead_le_15ms": max(result[s]["overhead_s_per_bundle"] for s in ("fanout", "chain")) <= 0.015,
        "memo_hit_le_2ms": max(result[s]["memo_hit_s"] for s in ("fanout", "chain")) <= 0.002,
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    print(f"goals: {result['goals']}; written to {RESULTS}")


if __name__ == "__main__":
    main()
