"""The `codalite` program as a user runs it: real processes, a background worker started on demand."""

import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

UUID = re.compile(r"^0x[0-9a-f]{32}$")


def test_tour(cl, project):
    raw = cl.out("upload", "data/", "-n", "raw")
    assert UUID.match(raw)
    cl("upload", "code/", "-n", "code")
    train = cl.out("run", ":code", "data:raw", "python code/train.py --data data --out .", "-n", "train",
                   "--request-cpus", "1", "--request-memory", "2g")
    assert UUID.match(train)
    assert cl.out("wait", "train") == train
    assert cl.out("cat", "train/stdout") == "training on 3 numbers"
    assert json.loads(cl.out("cat", "train/stats.json")) == {"acc": 0.6}
    listing = cl.out("cat", "train")
    assert "stats.json" in listing and "stdout" in listing
    info = cl.out("info", "train")
    for line in ("state: ready", "exitcode: 0", f"dependency: data:{raw} (raw)", "request_cpus: 1", "memo_key: "):
        assert line in info
    data = json.loads(cl.out("info", "--json", "train"))
    assert data["memory_max"] > 0 and data["time"] > 0 and data["content_hash"].startswith("b3:")
    again = cl("run", ":code", "data:raw", "python code/train.py --data data --out .", "-n", "train")
    assert again.stdout.strip() == train and "memo hit" in again.stderr
    assert train in cl.out("ls", "-u")
    assert cl.out("search", "state=ready", ".count") == "3"


def test_wait_and_tail_exit_codes(cl):
    r = cl("run", "echo hello; exit 4", "-n", "bad", "-W", ok=False)
    assert r.returncode == 1 and "failed" in r.stderr and "Exit code 4" in r.stderr
    r = cl("run", "echo tailed-line", "-n", "tailme", "--tail")
    assert "tailed-line" in r.stdout
    r = cl("wait", "bad", ok=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1


def test_threads_and_devices_follow_requests(cl):
    cl("run", "echo $OMP_NUM_THREADS $MKL_NUM_THREADS \"[$CUDA_VISIBLE_DEVICES]\"; nproc", "-n", "env",
       "--request-cpus", "2", "-W")
    assert cl.out("cat", "env/stdout").split() == ["2", "2", "[]", "2"]
    cl("run", "nproc", "-n", "one", "-W")
    assert cl.out("cat", "one/stdout") == "1"


def test_time_and_memory_limits(cl):
    r = cl("run", "sleep 30", "--request-time", "1", "-n", "slow", "-W", ok=False)
    assert r.returncode == 1 and "Time limit exceeded" in r.stderr
    hog = "python3 -c \"import time; x = bytearray(400 * 2**20); time.sleep(5)\""
    r = cl("run", hog, "--request-memory", "100m", "-n", "hog", "-W", ok=False)
    assert r.returncode == 1 and "Memory limit 100m exceeded" in r.stderr
    assert json.loads(cl.out("info", "--json", "hog"))["state"] == "failed"


def test_runs_are_packed_by_cpus(cl):
    """Two 1-CPU runs overlap on two CPUs; two 2-CPU runs take turns."""
    def spans(name, cpus):
        # --no-desugar: `%s.%` would be CodaLab's inline dependency sugar
        uuids = [cl.out("run", "--no-desugar", "date +%s.%N > t0; sleep 1; date +%s.%N > t1", "-n", f"{name}{i}",
                        "--request-cpus", cpus, "--force") for i in range(2)]
        cl("wait", *uuids)
        return [tuple(float(cl.out("cat", f"{u}/{f}")) for f in ("t0", "t1")) for u in uuids]

    (a0, a1), (b0, b1) = spans("one", "1")
    assert b0 < a1 and a0 < b1  # overlapped
    (a0, a1), (b0, b1) = spans("two", "2")
    assert b0 >= a1 or a0 >= b1  # one after the other
    r = cl("run", "true", "--request-cpus", "64", "-n", "huge", "-W", ok=False)
    assert "requests 64 CPUs but this worker has" in r.stderr


def test_kill(cl):
    u = cl.out("run", "sleep 60", "-n", "sleeper")
    deadline = time.time() + 20
    while json.loads(cl.out("info", "--json", u))["state"] != "running" and time.time() < deadline:
        time.sleep(0.1)
    cl("kill", u)
    r = cl("wait", u, ok=False)
    assert r.returncode == 1 and "killed" in r.stderr
    assert json.loads(cl.out("info", "--json", u))["failure_message"] == "Kill requested"


def test_worker_killed_with_sigkill(cl, tmp_path):
    cl("init")
    worker = subprocess.Popen([sys.executable, "-m", "codalite", "worker"], cwd=tmp_path, env=cl.env,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    u = cl.out("run", "echo started; sleep 60", "-n", "orphan")
    deadline = time.time() + 20
    while json.loads(cl.out("info", "--json", u))["state"] != "running" and time.time() < deadline:
        time.sleep(0.1)
    pid = json.loads(cl.out("info", "--json", u))["job_handle"]
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    r = cl("wait", u, ok=False, timeout=60)  # starts a new worker, which finds the orphan
    assert r.returncode == 1 and "worker died" in r.stderr
    assert cl.out("cat", f"{u}/stdout") == "started"
    time.sleep(0.2)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    rerun = cl.out("run", "echo started; sleep 60", "-n", "orphan")
    assert rerun != u  # a failed run is never a memo hit
    cl("kill", rerun)


def test_concurrent_submissions(cl, project):
    cl("init")
    cl("upload", "data/", "-n", "raw")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: cl("run", "d:raw", f"cat d/x.txt; echo {i}", "-n", f"c{i}"), range(16)))
    uuids = [r.stdout.strip() for r in results]
    assert all(UUID.match(u) for u in uuids) and len(set(uuids)) == 16
    cl("wait", *uuids)
    assert cl.out("search", "state=ready", ".count") == "17"
    assert cl.out("fsck").endswith("no problems")


@pytest.mark.parametrize("args,code,message", [
    (["info", "nosuch"], 1, "no bundle matches 'nosuch'"),
    (["cat", "raw/../../etc/passwd"], 2, "'..' is not allowed"),
    (["cat", "raw/nothere"], 1, "no such path 'nothere'"),
    (["run", "x:9bad", "true"], 2, "is not a dependency"),
    (["run", "d:nosuch", "true"], 1, "no bundle matches 'nosuch'"),
    (["run", "true", "--request-memory", "lots"], 2, "malformed size 'lots'"),
    (["run", "true", "--request-time", "soon"], 2, "malformed duration 'soon'"),
    (["run", "true", "-n", "bad name"], 2, "invalid bundle name"),
    (["run", "true", "--bogus-flag"], 2, "No such option"),
    (["upload", "missing-dir/"], 2, "does not exist"),
    (["kill", "raw"], 1, "is already ready"),
])
def test_errors_are_one_line(cl, project, args, code, message):
    cl("upload", "data/", "-n", "raw")
    before = cl.out("ls", "-u")
    r = cl(*args, ok=False)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert cl.out("ls", "-u") == before  # nothing changed


def test_no_store(cl):
    r = cl("ls", ok=False)
    assert r.returncode == 1 and "no codalite store" in r.stderr and r.stderr.count("\n") == 1


def test_rm_mimic_why_fsck(cl, project):
    cl("upload", "data/", "-n", "raw")
    cl("upload", "code/", "-n", "code")
    cl("run", ":code", "data:raw", "python code/train.py --data data --out .", "-n", "train", "-W")
    r = cl("rm", "raw", ok=False)
    assert r.returncode == 1 and "pass -r" in r.stderr
    (project / "code" / "train.py").write_text((project / "code" / "train.py").read_text() + "# tweak\n")
    new_code = cl.out("upload", "code/", "-n", "code")
    new_train = cl.out("mimic", "code^2", "code", "-W")
    assert "dependency code: content changed" in cl.out("why", new_train)
    assert cl.out("fsck").endswith("no problems")
    removed = cl.out("rm", "-r", new_code).split()
    assert set(removed) == {new_code, new_train}



def test_upload_killed_midway_leaves_no_bundle(cl, tmp_path):
    cl("init")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(3 * 2**30)  # sparse: reads as zeros, copying takes a while
    p = subprocess.Popen([sys.executable, "-m", "codalite", "upload", str(big), "-n", "big"], cwd=tmp_path,
                         env=cl.env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    tmp = tmp_path / ".codalite" / "tmp"
    deadline = time.time() + 30
    while not any(tmp.iterdir()) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert cl.out("ls", "-u") == ""  # no bundle, ready or otherwise
    assert os.listdir(tmp_path / ".codalite" / "bundles") == []
    assert "left by an interrupted upload" in cl.out("fsck")
    # the next command that writes deletes the partial copy (its owner is gone)
    (tmp_path / "small.txt").write_text("x\n")
    cl("upload", tmp_path / "small.txt")
    assert os.listdir(tmp) == []
    assert "note:" not in cl.out("fsck")
    big.unlink()
