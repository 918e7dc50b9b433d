"""Confinement of local runs with bubblewrap: a private mount namespace per run.

Inside it the whole filesystem is read-only, the store is hidden (an empty tmpfs over
.codalite/), /dev holds no disks (only null, zero, random, tty and the accelerators' nodes), and only
three things are mounted back: the run's own directory (writable), each
dependency at ./<key> as a read-only *directory or file* (so `cp -r dep mine` copies contents),
and a private /tmp. Read-only bind mounts hold for root too (bwrap drops root's capabilities, so
it cannot remount them), which file modes never could. No pid or network namespace: the worker
keeps killing, sampling and pinning the run's process group as before.

Where bwrap is missing or the kernel denies namespaces, runs fall back to symlinked dependencies
and the worker's after-the-fact check (stat signatures), and codalite says so once.
"""

import functools
import glob
import os
import shutil
import subprocess

INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap) to confine runs"
# accelerators' device nodes, bound back into the run's minimal /dev (CUDA_VISIBLE_DEVICES still picks)
ACCELERATORS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")


def devices():
    """A fresh minimal /dev (null, zero, random, tty, pts) instead of the host's: a run as root must
    not reach the machine's disks (a raw write to /dev/sda would bypass every read-only mount). Its
    /dev/shm is a private tmpfs (DataLoader workers and multiprocessing locks need one)."""
    args = ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
    for pattern in ACCELERATORS:
        for path in sorted(glob.glob(pattern)):
            args += ["--dev-bind", path, path]
    return args


@functools.lru_cache(maxsize=1)
def problem():
    """Why runs cannot be sandboxed here (one line), or None when they can."""
    if os.environ.get("CODALITE_SANDBOX") == "none":  # e.g. inside a container that forbids namespaces
        return "turned off by CODALITE_SANDBOX=none"
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}"
    try:
        r = subprocess.run([bwrap, "--ro-bind", "/", "/", *devices(), "true"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap could not start ({e})"
    if r.returncode != 0:
        detail = (r.stderr.strip().splitlines() or ["exit code %d" % r.returncode])[-1]
        return f"the kernel denies bwrap a mount namespace ({detail})"
    return None


def command(argv, rundir, store_home, mounts, scratch, keep=()):
    """argv wrapped in bwrap. mounts: [(host path, name under rundir)]; scratch: the run's /tmp;
    keep: host paths the run must still see (read-only) although they lie under /tmp, such as the
    project and the store's interpreter."""
    # order matters: what lies under /tmp is mounted back, and the store hidden, *after* /tmp is replaced
    args = [shutil.which("bwrap"), "--die-with-parent", "--ro-bind", "/", "/", *devices(), "--bind", scratch, "/tmp"]
    for path in keep:
        if path and os.path.isdir(path) and (path + "/").startswith("/tmp/"):
            args += ["--ro-bind", path, path]
    args += ["--tmpfs", store_home, "--bind", rundir, rundir]
    for src, name in mounts:
        args += ["--ro-bind", src, os.path.join(rundir, name)]
    # the tmpfs over the store read-only too (its submounts keep their own modes)
    return args + ["--remount-ro", store_home, "--chdir", rundir, "--", *argv]


def notice_once(store_home):
    """The warning a user sees (once per store) when runs here are not confined, else None."""
    marker = os.path.join(store_home, "sandbox-warned")
    if os.path.exists(marker) or problem() is None:
        return None
    open(marker, "w").close()
    return (f"warning: runs in this store are not sandboxed: {problem()}. A run could then change other "
            "bundles; codalite only detects changes to its dependencies afterwards")
