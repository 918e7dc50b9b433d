"""Runs cannot change any bundle, whoever runs them: each run is confined by bubblewrap (read-only
dependencies mounted as directories, the store hidden, the rest of the filesystem read-only, a
private /tmp). As root (CI) and as an ordinary account."""

import json
import os
import tempfile

import pytest

from codalite import sandbox
from codalite.worker import _excluded

pytestmark = pytest.mark.skipif(sandbox.problem() is not None, reason=f"no sandbox here: {sandbox.problem()}")


def _setup(cl):
    cl.sh("mkdir -p src && printf 'all:\\n\\techo built > out.txt\\n' > src/Makefile && echo 1 > src/v.txt")
    src = cl.out("upload", "src", "-n", "src")
    other = cl.out("upload", "src/v.txt", "-n", "other")
    return src, other


def test_runs_cannot_write_dependencies_or_other_bundles(any_cl):
    cl = any_cl
    src, other = _setup(cl)
    attacks = {
        "write-dep": "echo x > src/new",
        "append-dep": "echo x >> src/v.txt",
        "rm-dep": "rm -rf src/v.txt",
        "chmod-dep": "chmod -R u+w src && echo x > src/v.txt",
        "mv-dep": "mv src elsewhere",
        "other-bundle": f"echo x > ../../bundles/{other}",
        "store-db": "echo x > ../../codalite.db",
        "abs-store": f"ls {cl.cwd}/.codalite/bundles/{other}",
    }
    for name, cmd in attacks.items():
        r = cl("run", "src:src", cmd, "-n", name, "-W", ok=False)
        assert r.returncode == 1, (name, r.stderr)
    assert cl.out("cat", "src/v.txt") == "1" and cl.out("cat", "other") == "1"
    cl("fsck")  # exit 0: every bundle's hash still matches
    # reading is fine, and the run sees its dependency as a directory, not a link into the store
    r = cl.out("run", "src:src", "test -d src && ! test -L src && cat src/v.txt", "-n", "read", "-W")
    assert cl.out("cat", f"{r}/stdout") == "1"
    assert json.loads(cl.out("info", "--json", "read"))["sandbox"] == "bwrap"


def test_codalab_copy_idiom_builds_a_copy(any_cl):
    """CodaLab's documented `cl run :src 'cp -r src src-build && cd src-build && make'`."""
    cl = any_cl
    src, _ = _setup(cl)
    b = cl.out("run", ":src", "cp -r src src-build && cd src-build && make", "-n", "build", "-W")
    assert cl.out("cat", f"{b}/src-build/out.txt") == "built"
    # the dependency's mount point is gone from the outputs; the copy stays
    assert "src" not in [line.split()[0] for line in cl.out("cat", b).splitlines() if line.split()]
    assert cl.out("cat", "src/v.txt") == "1"
    cl("fsck")


def test_nested_keys_and_file_dependencies(any_cl):
    cl = any_cl
    src, other = _setup(cl)
    b = cl.out("run", "a/b:src", "f:other", "cat a/b/v.txt f > got", "-n", "nested", "-W")
    assert cl.out("cat", f"{b}/got").split() == ["1", "1"]
    listing = cl.out("cat", b)
    assert "got" in listing and " a" not in listing and "\nf" not in listing


def test_outside_is_read_only_and_tmp_is_private(any_cl, tmp_path):
    cl = any_cl
    home = os.path.expanduser("~") if cl.__class__.__name__ == "CLI" else cl.env["HOME"]
    # the project sits under /tmp here, which the run sees as its own private /tmp: either way,
    # nothing reaches the real project
    cl("run", f"touch {cl.cwd}/escaped", "-n", "project", "-W", ok=False)
    assert not os.path.exists(os.path.join(cl.cwd, "escaped"))
    r = cl("run", f"touch {home}/.codalite-escaped", "-n", "home", "-W", ok=False)
    assert r.returncode == 1 and not os.path.exists(os.path.join(home, ".codalite-escaped"))
    with tempfile.NamedTemporaryFile(dir="/tmp") as host_file:  # the machine's /tmp is not the run's
        b = cl.out("run", f"echo t > /tmp/x && cat /tmp/x && test ! -e {host_file.name} && echo $TMPDIR",
                   "-n", "tmp", "-W")
    assert cl.out("cat", f"{b}/stdout").split() == ["t", "/tmp"]
    assert not os.path.exists("/tmp/x") or open("/tmp/x").read() != "t\n"


def test_exclude_patterns_stay_in_the_run(any_cl):
    cl = any_cl
    src, other = _setup(cl)
    for bad in ("../../bundles/*", "/etc/passwd", "a/../../x"):
        r = cl("run", "true", "--exclude-patterns", bad, ok=False)
        assert r.returncode == 2 and "exclude" in r.stderr.lower(), (bad, r.stderr)
    b = cl.out("run", "mkdir -p keep d && touch d/x keep/y", "--exclude-patterns", "d", "-n", "ex", "-W")
    assert cl.out("cat", b).count("keep") == 1 and "\nd " not in cl.out("cat", b)
    cl("fsck")


def test_excluded_never_leaves_the_run_directory(tmp_path):
    """The finishing step holds even if bad patterns reach it (older metadata, the library)."""
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir(), outside.mkdir()
    (outside / "precious").write_text("x")
    (run / "link").symlink_to(outside)
    (run / "junk").write_text("x")
    got = list(_excluded(str(run), ["../outside/*", str(outside / "precious"), "link/*", "*/precious", "junk"]))
    assert got == [str(run / "junk")]


def test_unconfined_fallback_says_so_once(cl):
    env = {"CODALITE_SANDBOX": "none"}
    r = cl("run", "echo hi", "-n", "a", "-W", env=env)
    assert r.stderr.count("not sandboxed") == 1
    r = cl("run", "echo ho", "-n", "b", "-W", env=env)
    assert "not sandboxed" not in r.stderr
    assert json.loads(cl.out("info", "--json", "b"))["sandbox"].startswith("none")


def test_a_project_and_venv_under_tmp_stay_visible(cl, tmp_path):
    """The run's /tmp is private, but a project (and its venv) living under /tmp must still work."""
    import subprocess
    import sys
    assert str(tmp_path).startswith("/tmp/")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(tmp_path / "venv")],
                   check=True)
    cl("env", "set", str(tmp_path / "venv" / "bin" / "python"))
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "p.py").write_text("import os, sys; print(sys.prefix); print(os.environ.get('VIRTUAL_ENV'))\n")
    cl("upload", "code")
    b = cl.out("run", ":code", "python code/p.py && echo $PYTHONPATH", "-n", "venv", "-W",
               env={"PYTHONPATH": "/leaked", "VIRTUAL_ENV": "/leaked"})
    out = cl.out("cat", f"{b}/stdout").splitlines()
    assert out[:2] == [str(tmp_path / "venv")] * 2 and "/leaked" not in "".join(out)


def test_runs_see_no_disks_of_the_machine(any_cl):
    """bwrap used to bind the host's /dev: a run as root could open a raw disk and write past every
    read-only mount. A run's /dev now holds null, zero, random, tty (and accelerators' nodes) and a
    private, writable /dev/shm."""
    import stat
    cl = any_cl
    disks = sorted(e.name for e in os.scandir("/dev") if stat.S_ISBLK(os.stat(e.path).st_mode))
    assert disks, "this machine shows no block device in /dev"
    probe = " ; ".join(f"test -e /dev/{d} && echo seen {d}" for d in disks)
    b = cl.out("run", f"{probe} ; echo x > /dev/null && echo shm > /dev/shm/s && cat /dev/shm/s && "
                      "python3 -c 'import multiprocessing as m; m.Lock(); print(\"lock\")'", "-n", "devs", "-W")
    assert cl.out("cat", f"{b}/stdout").split() == ["shm", "lock"]
