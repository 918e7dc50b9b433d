"""Starting and waking the one local worker of a store, without importing it (or psutil).

`run` submits and calls ensure_worker: a worker starts unless one holds worker.lock. A live worker
sleeps until something can progress; wake() tells it a bundle was submitted or a kill requested
(a byte into the FIFO worker.wake, which it watches along with its runs' exits).
"""

import errno
import fcntl
import os
import subprocess
import sys
import time


def lock_path(home):
    return os.path.join(home, "worker.lock")


def wake_path(home):
    return os.path.join(home, "worker.wake")


def worker_alive(home):
    fd = os.open(lock_path(home), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we may have taken
    return False


def wake(home):
    """Tell a sleeping worker to look again. No worker (nobody reads the FIFO), a full FIFO (a wake
    is already pending) or a FIFO we may not write: nothing to do."""
    try:
        fd = os.open(wake_path(home), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader; ENOENT: no worker ever ran; EACCES: another user's
        return
    try:
        os.write(fd, b"w")
    except OSError as e:
        if e.errno != errno.EAGAIN:
            raise
    finally:
        os.close(fd)


def ensure_worker(home):
    """Wake the live worker, or start a background one unless one was just started."""
    wake(home)
    marker = os.path.join(home, "worker.spawned")
    try:
        if time.time() - os.stat(marker).st_mtime < 2.0:
            return
    except FileNotFoundError:
        pass
    if worker_alive(home):
        return
    with open(marker, "w"):
        pass
    log = open(os.path.join(home, "worker.log"), "ab")
    env = dict(os.environ, CODALITE_HOME=home)
    subprocess.Popen(
        [sys.executable, "-m", "codalite", "worker", "--exit-when-idle"], env=env, cwd=home,
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
    )
    log.close()
