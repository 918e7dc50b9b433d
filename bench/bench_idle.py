"""Worker CPU while runs execute: the worker should sleep until a run exits or a bundle arrives.

    python bench/bench_idle.py [--seconds 5]

Writes bench/results/idle.json: for each scenario, the worker's CPU time (user+system) from
submission to the last run's end per second of wall time (it includes starting and finishing the
runs), the same while the runs only run (steady), and the runs' own CPU time. Scenarios: two different
`sleep` runs side by side, and two identical ones submitted together (the second waits for its
memo twin, the case that made the worker spin before).
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import psutil

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from codalite import Store  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results", "idle.json")


def scenario(commands, seconds):
    root = tempfile.mkdtemp(prefix="bench-idle-")
    store = Store.init(root)
    env = dict(os.environ, CODALITE_HOME=store.home)
    worker = subprocess.Popen([sys.executable, "-m", "codalite", "worker"], cwd=root, env=env,
                              stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(os.path.join(store.home, "worker.wake")):
            time.sleep(0.05)
        time.sleep(0.5)  # the worker's start is not what we measure
        proc = psutil.Process(worker.pid)
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        bundles = [store.run(c.format(s=seconds), name=f"r{i}", start_worker=False)[0] for i, c in enumerate(commands)]
        while store.get(bundles[0].uuid).state != "running":
            time.sleep(0.01)
        # steady state: the runs are running, nothing is submitted or finishing
        time.sleep(0.3)
        cpu1, t1 = sum(proc.cpu_times()[:2]), time.perf_counter()
        time.sleep(max(0.5, seconds - 1.5))
        steady = (sum(proc.cpu_times()[:2]) - cpu1) / (time.perf_counter() - t1)
        done = [store.wait(b) for b in bundles]
        wall, cpu = time.perf_counter() - t0, sum(proc.cpu_times()[:2]) - cpu0
        assert all(b.state == "ready" for b in done), [(b.state, b.metadata.get("failure_message")) for b in done]
        runs_cpu = sum((b.metadata.get("time_user") or 0) + (b.metadata.get("time_system") or 0) for b in done)
        return {"commands": [c.format(s=seconds) for c in commands], "wall_s": round(wall, 3),
                "worker_cpu_s": round(cpu, 4), "worker_cpu_share_of_a_core": round(cpu / wall, 5),
                "steady_worker_cpu_share_of_a_core": round(steady, 5),
                "runs_cpu_s": round(runs_cpu, 4)}
    finally:
        worker.kill()
        worker.wait()
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    out = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "two_different_runs": scenario(["sleep {s} # a", "sleep {s} # b"], args.seconds),
        "two_identical_runs": scenario(["sleep {s}", "sleep {s}"], args.seconds),
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
