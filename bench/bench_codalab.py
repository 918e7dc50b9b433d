"""codalite local vs a real CodaLab 1.7.5 stack on the same machine.

    python bench/bench_codalab.py [--n 20] [--graph 100]

1. Submit->ready latency of a trivial run (`echo i > out.txt`, a new command each time so nothing is
   a memo hit), n times each, side by side:
     - codalite, local process runtime (Store.run + Store.wait);
     - codalite, local Docker runtime (same image the stack uses);
     - the CodaLab stack: `codalite run --remote` through the library (create on the server with a
       local uuid, poll every 0.1 s until ready, pull the result back); its server-side
       created->ready time (from the server's own metadata) is reported too.
2. Time to push a graph of --graph bundles (uploads + runs that depend on them, made locally) to the
   stack, and to push it again (everything already there).

The stack is started (and left running) with tests/codalab/stack.sh. Writes bench/results/codalab.json.
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

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from codalite import Store  # noqa: E402
from codalite.codalab import push, remote_run, remotes  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results", "codalab.json")
STACK = os.path.join(ROOT, "tests", "codalab", "stack.sh")


def summary(xs):
    return {"median_s": round(statistics.median(xs), 3), "min_s": round(min(xs), 3), "max_s": round(max(xs), 3),
            "mean_s": round(statistics.mean(xs), 3), "n": len(xs)}


def local_latency(store, n, image=None):
    times = []
    for i in range(n):
        tag = f"{'docker' if image else 'local'}-{i}-{time.time_ns()}"
        t = time.perf_counter()
        b, _ = store.run(f"echo {tag} > out.txt", requests={"request_docker_image": image} if image else None)
        b = store.wait(b)
        times.append(time.perf_counter() - t)
        assert b.state == "ready", (b.state, b.metadata.get("failure_message"))
    return times


def remote_latency(store, name, n, image):
    times, server = [], []
    for i in range(n):
        t = time.perf_counter()
        b, _ = remote_run(store, name, f"echo remote-{i}-{time.time_ns()} > out.txt",
                          requests={"request_docker_image": image}, poll=0.1)
        times.append(time.perf_counter() - t)
        assert b.state == "ready", (b.state, b.metadata.get("failure_message"))
        md = b.metadata
        if md.get("created") and md.get("last_updated"):
            server.append(float(md["last_updated"]) - float(md["created"]))
    return times, server


def make_graph(store, total):
    """total bundles: a tenth uploads, the rest runs each reading one upload and the previous run."""
    ups = []
    tmp = tempfile.mkdtemp(prefix="bench-graph-")
    for i in range(max(1, total // 10)):
        p = os.path.join(tmp, f"data{i}")
        os.mkdir(p)
        with open(os.path.join(p, "x.txt"), "w") as f:
            f.write(f"{i}\n" * 100)
        ups.append(store.upload([p], name=f"data{i}")[0])
    prev, last = None, []
    for j in range(total - len(ups)):
        deps = [("d", ups[j % len(ups)].uuid)]
        if prev is not None:
            deps.append(("prev", prev.uuid))
        prev, _ = store.run(f"wc -l d/x.txt > n.txt # {j}", deps, name=f"step{j}")
        last.append(prev)
    for b in last:
        store.wait(b)
    shutil.rmtree(tmp)
    return prev


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--graph", type=int, default=100)
    args = ap.parse_args()

    t = time.time()
    subprocess.run(["bash", STACK, "start"], check=True)
    stack_start = time.time() - t
    env = {}
    for line in subprocess.run(["bash", STACK, "env"], capture_output=True, text=True, check=True).stdout.splitlines():
        k, _, v = line[len("export "):].partition("=")
        env[k] = v.strip('"')
    os.environ.update(CODALAB_USERNAME=env["CODALAB_USERNAME"], CODALAB_PASSWORD=env["CODALAB_PASSWORD"])
    image = env["CLSTACK_IMAGE"]

    root = tempfile.mkdtemp(prefix="bench-codalab-")
    store = Store.init(root)
    remotes.add(store, "lab", env["CLSTACK_URL"])

    local_latency(store, 2)  # warm-up: python fingerprint, worker start
    local = local_latency(store, args.n)
    local_latency(store, 1, image)
    dock = local_latency(store, args.n, image)
    remote_run(store, "lab", f"echo warm-{time.time_ns()}", requests={"request_docker_image": image}, poll=0.1)
    remote, server = remote_latency(store, "lab", args.n, image)

    final = make_graph(store, args.graph)
    t = time.perf_counter()
    first = push(store, "lab", [final])
    push_s = time.perf_counter() - t
    t = time.perf_counter()
    again = push(store, "lab", [final])
    repush_s = time.perf_counter() - t

    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "stack_start_s": round(stack_start, 1),
        "submit_to_ready": {
            "codalite_local_process": summary(local),
            "codalite_local_docker": summary(dock),
            "codalab_stack_via_codalite_remote_run": summary(remote),
            "codalab_stack_server_created_to_ready": summary(server) if server else None,
        },
        "push_graph": {"bundles": args.graph, "pushed": len(first["pushed"]), "push_s": round(push_s, 2),
                       "per_bundle_ms": round(1000 * push_s / args.graph, 1),
                       "repush_s": round(repush_s, 2), "repush_skipped": len(again["skipped"])},
        "notes": "same machine, same image for the docker runtime and the stack's worker; the stack's worker "
                 "checks in every 1 s (--checkin-frequency-seconds 1); remote runs include creating the "
                 "bundle, polling every 0.1 s and pulling the result back",
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    store.close()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
