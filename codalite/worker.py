"""The local worker: drains staged bundles, packing runs onto this machine's CPUs, GPUs and memory.

One worker per store (a file lock says which). `codalite run` starts one on demand; it exits when
idle. A worker that starts finds the runs a dead worker left behind and fails them, saying so.
"""

import errno
import fcntl
import glob
import os
import selectors
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

import psutil

from . import hashing, launch, sandbox, spec
from .bundle import CREATED, FAILED, KILLED, READY
from .runtime import LocalProcess, kill_group, run_environment, venv_of
from .store import remove_tree

MEMORY_SAMPLE_S = 0.25
LOOK_ANYWAY_S = 1.0  # a sleeping worker looks at least this often (a wake it could not get: another user's)


def worker_alive(store):
    return launch.worker_alive(store.home)


def ensure_worker(store):
    """Start a background worker unless one is alive (or was just started); wake a sleeping one."""
    launch.ensure_worker(store.home)


def detect_gpus():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(g) for g in visible.split(",") if g.strip().isdigit()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [i for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class Job:
    def __init__(self, bundle, process, cpus, gpus, memory, time_limit, scratch=None):
        self.bundle, self.process = bundle, process
        self.cpus, self.gpus, self.memory, self.time_limit = cpus, gpus, memory, time_limit
        self.scratch = scratch  # the run's private /tmp when sandboxed
        self.failure = None
        self.next_sample = process.started + 0.05
        try:  # readable when the process exits: the worker sleeps on it instead of polling
            self.exit_fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # no pidfd (old kernel) or not our child: poll it
            self.exit_fd = None

    def close(self):
        if self.exit_fd is not None:
            os.close(self.exit_fd)
            self.exit_fd = None


class Worker:
    def __init__(self, store, cpus=None, gpus=None, memory=None, exit_when_idle=False, idle_seconds=2.0,
                 poll=0.02, log=None):
        self.store = store
        avail = sorted(os.sched_getaffinity(0))
        self.cpus = avail[:cpus] if cpus else avail
        self.gpus = detect_gpus() if gpus is None else list(range(gpus))
        self.memory = memory or psutil.virtual_memory().total
        self.exit_when_idle, self.idle_seconds, self.poll = exit_when_idle, idle_seconds, poll
        self.jobs = {}
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.lock_fd = None
        self.wake_fd = None
        self.dirty = True  # something was submitted since staged runs were last looked at
        self.unconfined = sandbox.problem()  # None: runs are confined (see sandbox.py)
        if self.unconfined:
            self.log(f"runs are not sandboxed: {self.unconfined}")

    # --- lifecycle -------------------------------------------------------------------------

    def acquire(self, timeout=2.0):
        self.lock_fd = os.open(launch.lock_path(self.store.home), os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(self.lock_fd, 0)
                os.write(self.lock_fd, str(os.getpid()).encode())
                return True
            except BlockingIOError:
                if time.time() > deadline:
                    os.close(self.lock_fd)
                    self.lock_fd = None
                    return False
                time.sleep(0.05)

    def release(self):
        os.close(self.lock_fd)
        self.lock_fd = None

    def serve(self):
        """Run until idle (with exit_when_idle) or forever. Returns False if another worker runs.
        Between rounds that change nothing it sleeps until an event: a submission or kill (a byte
        in worker.wake, see launch.wake), a run's exit (its pidfd), or a deadline of its own."""
        if not self.acquire():
            return False
        self._open_wake()
        try:
            self.recover()
            idle_since, woken = time.time(), True
            while True:
                # a round only to sample the runs' memory reads nothing from the store
                busy = self.step() if woken else self._check_running()
                if busy or self.jobs:
                    idle_since = time.time()
                elif self.exit_when_idle and time.time() - idle_since > self.idle_seconds:
                    self.release()
                    # a run submitted while we were deciding to leave saw the lock held: look once more
                    if not self.pending() or not self.acquire(timeout=0):
                        return True
                    idle_since = time.time()
                woken = True
                if not busy:
                    woken = self._sleep(idle_since)
        finally:
            self._close_wake()

    def _open_wake(self):
        path = launch.wake_path(self.store.home)
        try:
            os.mkfifo(path, 0o622)  # others may wake it (a store shared by a group), not read it
        except FileExistsError:
            pass
        except OSError as e:  # e.g. a filesystem without FIFOs: poll instead
            self.log(f"no wake-up FIFO ({e}); polling")
            return
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            return
        # read-write: the FIFO always has a writer (us), so it never reads as at end of file
        self.wake_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def _close_wake(self):
        if self.wake_fd is not None:
            os.close(self.wake_fd)
            self.wake_fd = None

    def _sleep(self, idle_since):
        """Wait for the next event or deadline; polling only what has no file descriptor. Returns
        False when only a memory sample is due (the round need not look at the store)."""
        now = time.time()
        look = now + (LOOK_ANYWAY_S if self.wake_fd is not None else self.poll)
        deadlines = [look]
        if self.exit_when_idle and not self.jobs:
            deadlines.append(idle_since + self.idle_seconds + 0.01)
        for j in self.jobs.values():
            if j.exit_fd is None:  # poll quickly while a run is young (most end within milliseconds)
                deadlines.append(now + min(self.poll, max(0.0005, (now - j.process.started) / 10)))
            if j.memory:
                deadlines.append(j.next_sample)
            if j.time_limit:
                deadlines.append(j.process.started + j.time_limit)
        timeout = max(0.0, min(deadlines) - now)
        sampling_only = min(deadlines) < look and all(
            j.exit_fd is not None and not (j.time_limit and j.process.started + j.time_limit <= min(deadlines))
            for j in self.jobs.values())
        with selectors.DefaultSelector() as sel:
            if self.wake_fd is not None:
                sel.register(self.wake_fd, selectors.EVENT_READ)
            for j in self.jobs.values():
                if j.exit_fd is not None:
                    sel.register(j.exit_fd, selectors.EVENT_READ)
            if not sel.get_map():
                time.sleep(timeout)
                return True
            events = sel.select(timeout)
            for key, _ in events:
                if key.fd == self.wake_fd:
                    self.dirty = True
                    try:
                        while os.read(self.wake_fd, 4096):
                            pass
                    except BlockingIOError:
                        pass
            return bool(events) or not sampling_only

    def pending(self):
        return self.store.pending_count()

    def recover(self):
        """Fail the runs a dead worker left behind (their processes are stopped first), and delete
        what killed uploads, makes and rms left in tmp/."""
        s = self.store
        s.clean_tmp()
        for b in s.active():
            pid = b.metadata.get("job_handle")
            if pid and _is_run_process(pid, s.run_dir(b.uuid)):
                kill_group(pid)
            self._salvage(b)
            # the dead worker's sandboxed run had a private /tmp that nobody else will delete
            for scratch in glob.glob(os.path.join(glob.escape(tempfile.gettempdir()), f"codalite-{b.uuid}-*")):
                remove_tree(scratch)
            s.fail(b.uuid, f"The worker died while this run was {b.state} (killed or crashed); "
                   f"rerun it with `codalite mimic {b.uuid}`")
            self.log(f"recovered {b.uuid}: worker died while it was {b.state}")

    def _salvage(self, b):
        """Keep what a dead run wrote (stdout, stderr) as the failed bundle's contents."""
        rundir = self.store.run_dir(b.uuid)
        if os.path.isdir(rundir) and not os.path.lexists(self.store.bundle_dir(b.uuid)):
            _remove_dependency_links(rundir, b)
            self.store.publish(rundir, b.uuid)

    # --- one round ---------------------------------------------------------------------------

    def step(self):
        """Stage, start and finish what can be; True if anything changed."""
        busy = self._stage_created()
        self.dirty |= busy  # staged just now: a make needs no CPU, an impossible request fails at once
        busy |= self._handle_kills()
        busy |= self._start_staged()
        busy |= self._check_running()
        return busy

    def _guarded(self, b, what, fn, *args):
        """Run one bundle's step; an unexpected error fails that bundle, saying so, instead of
        crashing the worker (which would restart, meet the same bundle, and wedge every run)."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 (any fault is this bundle's, not the worker's)
            self.log(f"{b.uuid}: internal error while {what}: {e!r}")
            try:
                self.store.fail(b.uuid, f"internal error while {what}: {e}")
            except Exception as e2:  # noqa: BLE001
                self.log(f"{b.uuid}: could not record the failure: {e2!r}")
            return True

    def _stage_created(self):
        changed = False
        for b in self.store.stageable():
            changed |= self._guarded(b, "staging", lambda b=b: self.store.stage(b) != CREATED)
        return changed

    def _handle_kills(self):
        for uuid in self.store.kill_requests():
            job = self.jobs.get(uuid)
            if job and not job.failure:
                job.failure = "Kill requested"
                job.process.kill()
        return False

    def _free(self):
        used_cpus = {c for j in self.jobs.values() for c in j.cpus}
        used_gpus = {g for j in self.jobs.values() for g in j.gpus}
        mem = self.memory - sum(j.memory for j in self.jobs.values())
        return [c for c in self.cpus if c not in used_cpus], [g for g in self.gpus if g not in used_gpus], mem

    def _start_staged(self):
        """Start the staged runs that fit. Skipped while every CPU is taken and nothing was submitted
        since the last look (they were all read then: nothing new could start or fail)."""
        if not self.dirty and not self._free()[0]:
            return False
        self.dirty = False
        started = False
        for b in self.store.staged():
            if b.bundle_type == "make":
                self._guarded(b, "making", self._make, b)
                started = True
                continue
            md = b.metadata
            ncpu, ngpu = max(1, int(md.get("request_cpus") or 1)), int(md.get("request_gpus") or 0)
            mem = spec.parse_size(md["request_memory"]) if md.get("request_memory") else 0
            problem = self._impossible(b, ncpu, ngpu, mem)
            if problem:
                self.store.fail(b.uuid, problem)
                started = True
                continue
            free_cpus, free_gpus, free_mem = self._free()
            if len(free_cpus) < ncpu or len(free_gpus) < ngpu or free_mem < mem:
                continue  # does not fit now: a smaller one behind it may (backfill)
            self._guarded(b, "starting", self._start, b, free_cpus[:ncpu], free_gpus[:ngpu], mem)
            started = True
        return started

    def _impossible(self, b, ncpu, ngpu, mem):
        if b.metadata.get("request_docker_image"):
            from .docker_runtime import image_problem
            problem = image_problem(b.metadata["request_docker_image"])
            if problem:
                return problem
        if ncpu > len(self.cpus):
            return f"requests {ncpu} CPUs but this worker has {len(self.cpus)}; lower --request-cpus"
        if ngpu > len(self.gpus):
            return f"requests {ngpu} GPUs but this worker has {len(self.gpus)}; lower --request-gpus"
        if mem > self.memory:
            return (f"requests {spec.format_size(mem)} of memory but this machine has "
                    f"{spec.format_size(self.memory)}; lower --request-memory")
        return None

    def _start(self, b, cpus, gpus, mem):
        s = self.store
        if not s.start(b.uuid):  # killed meanwhile
            return
        rundir = s.run_dir(b.uuid)
        docker = bool(b.metadata.get("request_docker_image"))
        confined = not docker and not self.unconfined
        scratch = None
        try:
            os.mkdir(rundir)
            mounts = []
            for d in b.dependencies:
                src = s.path_in(s.get(d.parent_uuid), d.parent_path)  # never outside the parent
                dst = os.path.join(rundir, d.child_path)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if not confined:
                    os.symlink(src, dst)
                elif os.path.isdir(src):  # a mount point: the dependency appears as a directory
                    os.mkdir(dst)
                else:
                    open(dst, "x").close()
                mounts.append((src, d.child_path))
            env = run_environment(os.environ, b.runspec, b.uuid, cpus, gpus)
            if docker:
                from .docker_runtime import for_bundle
                process = for_bundle(s, b, rundir, env, cpus, gpus, mem)
            elif confined:
                scratch = tempfile.mkdtemp(prefix=f"codalite-{b.uuid}-")
                env["TMPDIR"] = "/tmp"
                keep = [os.path.dirname(s.home), venv_of(b.runspec.get("python"))]
                process = LocalProcess(b.command, rundir, env, cpus, wrap=lambda argv: sandbox.command(
                    argv, rundir, s.home, mounts, scratch, keep))
            else:
                process = LocalProcess(b.command, rundir, env, cpus)
        except OSError as e:
            if scratch:
                remove_tree(scratch)
            self._salvage(b)
            s.fail(b.uuid, f"could not start the run: {e}")
            return
        limit = spec.parse_duration(b.metadata["request_time"]) if b.metadata.get("request_time") else None
        self.jobs[b.uuid] = Job(b, process, cpus, gpus, mem, limit, scratch)
        confinement = "docker" if docker else "bwrap" if confined else f"none: {self.unconfined}"
        s.running(b.uuid, {"started": process.started, "job_handle": process.pid, "cpus": cpus,
                                   "gpus": gpus, "sandbox": confinement, **getattr(process, "extra_metadata", {})})

    def _check_running(self):
        changed = False
        now = time.time()
        for uuid, job in list(self.jobs.items()):
            code = job.process.poll()
            if code is None:
                if job.time_limit and now - job.process.started > job.time_limit:
                    job.failure = "Time limit exceeded."
                    job.process.kill()
                elif job.memory and now >= job.next_sample - 0.01:  # sample every due run in one round
                    job.next_sample = now + MEMORY_SAMPLE_S
                    if job.process.sample_memory() > job.memory:
                        job.failure = f"Memory limit {job.bundle.metadata['request_memory']} exceeded."
                        job.process.kill()
                continue
            del self.jobs[uuid]
            job.close()
            self._guarded(job.bundle, "finishing", self._finish, job, code)
            changed = True
        return changed

    # --- finishing -----------------------------------------------------------------------------

    def _finish(self, job, exitcode):
        try:
            self._finish_run(job, exitcode)
        except (OSError, sqlite3.OperationalError) as e:
            if not _disk_full(e):
                raise
            # What the run wrote is what filled the disk, and recording its end needs room (SQLite's
            # journal): let its outputs go, then say so. Nothing was ready, nothing is half-kept.
            s, uuid = self.store, job.bundle.uuid
            remove_tree(s.bundle_dir(uuid))
            remove_tree(s.run_dir(uuid))
            s.fail(uuid, f"the disk is full ({e}); the run's outputs could not be kept and were deleted: free "
                   "space, then rerun it", exitcode=exitcode)

    def _finish_run(self, job, exitcode):
        s, b = self.store, job.bundle
        s.finalizing(b.uuid)
        rundir = s.run_dir(b.uuid)
        if job.scratch:
            remove_tree(job.scratch)
        _remove_dependency_links(rundir, b)
        failure = job.failure or getattr(job.process, "failure", None) or self._check_dependencies(b)
        for path in _excluded(rundir, b.metadata.get("exclude_patterns") or []):
            remove_tree(path)
        try:
            content_hash, size, sig = s.publish(rundir, b.uuid)
        except OSError as e:  # the run fails, saying why; nothing looks ready
            if _disk_full(e):
                raise
            s.fail(b.uuid, f"could not finalize the run's outputs: {e}", exitcode=exitcode)
            return
        ru = job.process.rusage
        md = {"exitcode": exitcode, "time": time.time() - job.process.started,
              "memory_max": job.process.memory_max, "data_size": size}
        if ru:
            md.update(time_user=ru.ru_utime, time_system=ru.ru_stime)
        if failure:
            md["failure_message"] = failure
        elif exitcode != 0:
            md["failure_message"] = f"Exit code {exitcode}"
        state = KILLED if failure == "Kill requested" else FAILED if (failure or exitcode) else READY
        s.finish(b.uuid, state, md, content_hash, 1, sig)

    def _check_dependencies(self, b):
        """A run must not change what it read. The cheap stat signature catches any write (ctime
        moves even for root); only then is the content hash recomputed to be sure."""
        s = self.store
        for d in b.dependencies:
            recorded = s.integrity(d.parent_uuid)
            path = s.bundle_dir(d.parent_uuid)
            if recorded is None or not os.path.lexists(path):
                return f"dependency {d.child_path} ({d.parent_uuid}) disappeared while the run used it"
            sig = hashing.stat_signature(path)
            if sig == recorded[0]:
                continue
            if hashing.hash_path(path) != recorded[1]:
                return (f"the run modified its dependency {d.child_path} ({d.parent_uuid}); dependencies are "
                        "read-only: copy them first (cp -r dep mine) and write to the copy. "
                        "`codalite fsck` lists the damaged bundle")
            s.set_stat_sig(d.parent_uuid, sig)  # touched but unchanged (e.g. hard-linked)
        return None

    def _make(self, b):
        """Assemble a make bundle from hard links to its targets (they never change)."""
        s = self.store
        tmp = s.tmp_dir(b.uuid)
        try:
            if len(b.dependencies) == 1 and not b.dependencies[0].child_path:
                _link_copy(s.path_in(s.get(b.dependencies[0].parent_uuid), b.dependencies[0].parent_path), tmp)
            else:
                os.mkdir(tmp)
                for d in b.dependencies:
                    dst = os.path.join(tmp, d.child_path)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    _link_copy(s.path_in(s.get(d.parent_uuid), d.parent_path), dst)
            content_hash, size, sig = s.publish(tmp, b.uuid)
        except Exception as e:  # noqa: BLE001 (any failure fails the bundle, with its message)
            remove_tree(tmp)
            s.fail(b.uuid, f"make failed: {e}")
            return
        s.finish(b.uuid, READY, {"data_size": size}, content_hash, int(os.path.isdir(s.bundle_dir(b.uuid))), sig)


def _link_copy(src, dst):
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    elif os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        os.link(src, dst)


def _disk_full(e):
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(e, "sqlite_errorcode", None) == 13 or "disk is full" in str(e)  # SQLITE_FULL


def _excluded(rundir, patterns):
    """What the exclude patterns match, confined to the run's own directory: a pattern cannot name
    an absolute path, climb out with '..', or reach through a symlink (submission refuses the first
    two; this holds whatever the metadata says)."""
    root = os.path.realpath(rundir)
    for pattern in patterns:
        if os.path.isabs(pattern) or ".." in pattern.replace("\\", "/").split("/"):
            continue
        for path in glob.glob(os.path.join(glob.escape(rundir), pattern), recursive=True):
            parent = os.path.realpath(os.path.dirname(path))
            if (parent == root or parent.startswith(root + os.sep)) and os.path.basename(path) not in ("", ".", ".."):
                yield path


def _remove_dependency_links(rundir, b):
    """Remove what stood for the dependencies: symlinks, or the sandbox's empty mount points."""
    for d in b.dependencies:
        link = os.path.join(rundir, d.child_path)
        if os.path.islink(link):
            os.unlink(link)
        elif os.path.isdir(link) and not os.listdir(link):
            os.rmdir(link)
        elif os.path.isfile(link) and os.path.getsize(link) == 0:
            os.unlink(link)
        parent = os.path.dirname(link)  # directories made for nested keys (a/b), if left empty
        while parent != rundir and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
            parent = os.path.dirname(parent)


def _is_run_process(pid, rundir):
    try:
        return psutil.Process(pid).cwd() == rundir
    except psutil.Error:
        return False
