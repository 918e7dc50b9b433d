"""Runs with --request-docker-image run in a container through the Docker SDK, on a real engine."""

import os

import docker

from codalite import Store


def _store(tmp_path):
    return Store.find(str(tmp_path))


def test_dependencies_are_read_only_even_for_root(cl, image, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("hello\n")
    up = cl.out("upload", "d")
    cmd = ("id -u > uid.txt; pwd > cwd.txt; cat d/a.txt > copy.txt; "
           "if touch d/new 2>err.txt || echo x >> d/a.txt; then exit 7; fi; grep -c 'Read-only' err.txt > ro.txt")
    run = cl.out("run", f"d:{up}", cmd, "--request-docker-image", image, "-W")
    assert cl.out("cat", f"{run}/uid.txt") == str(os.getuid())  # the run's uid (root here: and still read-only)
    assert cl.out("cat", f"{run}/cwd.txt") == f"/{run}"
    assert cl.out("cat", f"{run}/copy.txt") == "hello"
    assert cl.out("cat", f"{run}/ro.txt") == "1"
    assert (tmp_path / "d" / "a.txt").read_text() == "hello\n"
    assert cl("fsck").returncode == 0
    # the dependency mount point is not left in the outputs
    assert sorted(os.listdir(_store(tmp_path).bundle_dir(run))) == ["copy.txt", "cwd.txt", "err.txt", "ro.txt",
                                                                   "stderr", "stdout", "uid.txt"]


def test_subpath_dependency_and_nested_key(cl, image, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "f.txt").write_text("deep\n")
    up = cl.out("upload", "d")
    run = cl.out("run", f"in/x:{up}/sub/f.txt", "cat in/x > out.txt", "--request-docker-image", image, "-W")
    assert cl.out("cat", f"{run}/out.txt") == "deep"
    assert sorted(os.listdir(_store(tmp_path).bundle_dir(run))) == ["out.txt", "stderr", "stdout"]


def test_no_network_unless_requested(cl, image):
    off = cl.out("run", "ls /sys/class/net > nics.txt", "--request-docker-image", image, "-W")
    assert cl.out("cat", f"{off}/nics.txt").split() == ["lo"]
    on = cl.out("run", "ls /sys/class/net > nics.txt", "--request-docker-image", image, "--request-network",
                "--force", "-W")  # the memo key leaves resource requests out
    assert "eth0" in cl.out("cat", f"{on}/nics.txt").split()


def test_digest_recorded_and_in_memo_key(cl, image, tmp_path):
    run = cl.out("run", "echo hi", "--request-docker-image", image, "-W")
    digest = docker.from_env().images.get(image).id
    b = _store(tmp_path).get(run)
    assert b.metadata["docker_image"] == digest
    assert b.runspec["memo_inputs"]["environment"] == f"docker:{digest}"
    again = cl("run", "echo hi", "--request-docker-image", image, "-W")
    assert again.stdout.strip() == run and "memo hit" in again.stderr


def test_memory_and_cpu_limits(cl, image):
    cpus = cl.out("run", "nproc > n.txt; cat /sys/fs/cgroup/cpuset.cpus.effective /sys/fs/cgroup/cpuset/cpuset.cpus "
                  "2>/dev/null > set.txt; true", "--request-docker-image", image, "--request-cpus", "1", "-W")
    assert cl.out("cat", f"{cpus}/n.txt") == "1"
    hog = "python3 -c \"x = bytearray(400 * 1024 * 1024); import time; time.sleep(5)\""
    r = cl("run", hog, "--request-docker-image", image, "--request-memory", "64m", "-W", ok=False)
    assert r.returncode == 1
    assert "Memory limit" in r.stderr


def test_clear_error_without_an_engine(cl, image):
    r = cl("run", "echo hi", "--request-docker-image", image, "-W", ok=False,
           env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode == 1
    assert "need a Docker engine" in r.stderr and "start dockerd" in r.stderr


def test_unknown_image_fails_clearly(cl, image):
    r = cl("run", "echo hi", "--request-docker-image", "codalite-test/no-such-image:1", "-W", ok=False)
    assert r.returncode == 1
    assert "is not on this machine and could not be pulled" in r.stderr
