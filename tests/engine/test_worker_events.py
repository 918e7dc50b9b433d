"""The worker sleeps until something can progress (a submission, a kill, a run's exit) instead of
polling, and a worker that starts cleans what a killed one's sandboxed runs left in /tmp."""

import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

from codalite import sandbox
from codalite.store import Store


def _foreground_worker(cl, tmp_path):
    worker = subprocess.Popen([sys.executable, "-m", "codalite", "worker"], cwd=tmp_path, env=cl.env,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while not os.path.exists(tmp_path / ".codalite" / "worker.wake") and time.time() < deadline:
        time.sleep(0.05)
    return worker


def _wait_state(cl, u, state, timeout=20):
    deadline = time.time() + timeout
    while (info := json.loads(cl.out("info", "--json", u)))["state"] != state and time.time() < deadline:
        time.sleep(0.05)
    assert info["state"] == state
    return info


def test_worker_sleeps_while_a_run_runs_and_wakes_on_its_exit(cl, tmp_path):
    cl("init")
    worker = _foreground_worker(cl, tmp_path)
    try:
        u = cl.out("run", "sleep 2.5", "-n", "long")
        _wait_state(cl, u, "running")
        proc = psutil.Process(worker.pid)
        before = sum(proc.cpu_times()[:2])
        time.sleep(1.5)
        used = sum(proc.cpu_times()[:2]) - before
        assert used < 0.03  # < 2% of a core (it polled at ~50 rounds/s before: ~7%)
        _wait_state(cl, u, "ready", timeout=20)
        md = Store(str(tmp_path / ".codalite")).get(u).metadata
        # woken by the exit, not by its next look: finished within moments of the run's end
        assert md["last_updated"] - md["started"] < 2.5 + 0.5
        # a submission wakes it at once (not at its next look, a second later)
        start = time.time()
        v = cl.out("run", "true", "-n", "quick")
        _wait_state(cl, v, "ready")
        assert time.time() - start < 3
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.skipif(sandbox.problem() is not None, reason="runs are not sandboxed here: no private /tmp")
def test_a_killed_workers_scratch_dirs_are_removed_by_the_next(cl, tmp_path):
    cl("init")
    worker = _foreground_worker(cl, tmp_path)
    u = cl.out("run", "echo started; sleep 60", "-n", "orphan")
    _wait_state(cl, u, "running")
    pattern = os.path.join(tempfile.gettempdir(), f"codalite-{u}-*")
    assert glob.glob(pattern)  # the run's private /tmp
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    r = cl("wait", u, ok=False, timeout=60)  # a new worker recovers the orphan
    assert r.returncode == 1 and "worker died" in r.stderr
    assert glob.glob(pattern) == []
