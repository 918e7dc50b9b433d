"""Runtimes: the only code that starts processes for runs.

The local runtime runs the command with bash in the bundle's working directory (confined by
sandbox.py where the machine allows), in its own process group (so a kill or a limit stops
everything it started), pinned to the CPUs the worker gave it, with thread-count variables set to
its CPU count: torch and BLAS otherwise start one thread per core and two runs on two cores were
measured 6x slower than one after the other.
"""

import os
import signal
import subprocess
import time

import psutil

THREAD_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS", "TORCH_NUM_THREADS",
)


# Set by whoever started the worker, not by the run: they would make a run's Python differ from
# the store's interpreter (its memo key) depending on who ran first. Declare them with --env instead.
CALLER_PYTHON_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def run_environment(base, runspec, uuid, cpus, gpus):
    env = {k: v for k, v in base.items() if not k.startswith("CODALITE_") and k not in CALLER_PYTHON_VARS}
    if runspec.get("path"):
        env["PATH"] = runspec["path"]
    venv = venv_of(runspec.get("python"))
    if venv:  # as `activate` would: tools that look for the active venv find the store's
        env["VIRTUAL_ENV"] = venv
    env.update(runspec.get("env_vars", {}))
    env.update({k: str(len(cpus)) for k in THREAD_VARS})
    # a run without GPUs must not grab one by accident; a GPU run sees only its own
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    env.update(CODALAB="true", CODALITE_BUNDLE_UUID=uuid)
    return env


def venv_of(python):
    """The virtual environment an interpreter belongs to (its bin/'s parent with a pyvenv.cfg), or None."""
    if not python:
        return None
    root = os.path.dirname(os.path.dirname(python))
    return root if os.path.exists(os.path.join(root, "pyvenv.cfg")) else None


PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid):
    """Resident memory of a process and all its descendants, in bytes; None when it is gone.
    Walks /proc/PID/task/*/children (the subtree only: sampled 4 times a second per run, a scan of
    every process on the machine, as psutil's children() does, would cost the worker ~1% a run)."""
    try:
        return _proc_tree_rss(pid)
    except FileNotFoundError:  # the process is gone
        return None
    except OSError:  # no /proc/PID/task/*/children (a kernel without it): ask psutil
        return _psutil_tree_rss(pid)


def _proc_tree_rss(pid):
    total, stack, root = 0, [pid], True
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError):
            if root:
                raise FileNotFoundError(pid) from None
        root = False
    return total


def _psutil_tree_rss(pid):
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except (psutil.Error, ValueError):
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # exited meanwhile
            pass
    return total


class RunProcess:
    """What the worker reads of a running bundle, locally or in a container: pid (the tree's root),
    started, memory_max (the peak seen, bytes), rusage (once finished); poll() and kill()."""

    pid: int
    memory_max: int

    def sample_memory(self):
        """Resident memory of the whole process tree now, in bytes (the peak so far once it is gone)."""
        total = tree_rss(self.pid)
        if total is None:
            return self.memory_max
        self.memory_max = max(self.memory_max, total)
        return total


class LocalProcess(RunProcess):
    """One run's process tree."""

    def __init__(self, command, cwd, env, cpus, wrap=None):
        """wrap: argv -> argv, e.g. sandbox.command's confinement around `bash -c command`."""
        argv = ["bash", "-c", command]
        argv = wrap(argv) if wrap else argv
        # A child inherits the CPUs of the thread that spawns it: pin this thread, spawn, restore.
        # (Pinning the child afterwards races with what it starts at once; a preexec_fn would force
        # a slow fork().)
        mine = os.sched_getaffinity(0)
        if cpus:
            os.sched_setaffinity(0, cpus)
        try:
            with open(os.path.join(cwd, "stdout"), "wb") as out, open(os.path.join(cwd, "stderr"), "wb") as err:
                self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=err, start_new_session=True)
        finally:
            if cpus:
                os.sched_setaffinity(0, mine)
        self.pid = self.proc.pid
        self.started = time.time()
        self.memory_max = 0
        self.rusage = None

    def poll(self):
        """The exit code once finished (128+N when killed by signal N, as docker reports), else None."""
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.proc.returncode = status  # reaped here; keep Popen from waiting again
        self.rusage = rusage
        self.memory_max = max(self.memory_max, rusage.ru_maxrss * 1024)
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code

    def kill(self):
        kill_group(self.pid)


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
