"""The Docker runtime: a run in a container, through the Docker SDK (`pip install docker`).

A runtime.RunProcess, as runtime.LocalProcess (pid, started, memory_max, rusage, poll, sample_memory,
kill). Laid out as CodaLab's worker does it: the bundle directory is mounted at /<uuid> and is the
working directory (HOME too); each dependency's store path is bind-mounted READ-ONLY at
/<uuid>/<key> (a read-only mount: even root in the container cannot write it); the command runs as
the uid:gid that owns the bundle directory, with `( command ) >stdout 2>stderr`; memory limit
from --request-memory (no swap on top), CPUs pinned to the worker's assignment (cpuset), no
network unless --request-network, GPUs through device requests for exactly the assigned devices.
The image's digest (RepoDigest if it came from a registry, else its content id) is what the run
records in `docker_image` and what goes into the memo key.
"""

import os
import time

from .errors import CodaliteError
from .runtime import THREAD_VARS, RunProcess

_client = None
_client_error = None


class DockerUnavailable(CodaliteError):
    pass


class DockerStartError(OSError):
    """The container could not be created or started (the worker fails the run with this message)."""


def client():
    """A Docker client, or raise DockerUnavailable with a one-line reason."""
    global _client, _client_error
    if _client is not None:
        return _client
    try:
        import docker
    except ImportError:
        raise DockerUnavailable("the Docker SDK is not installed (pip install 'codalite[docker]')") from None
    try:
        c = docker.from_env(timeout=30)
        c.ping()
    except Exception as e:  # noqa: BLE001 (any failure to connect means: no engine)
        _client_error = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise DockerUnavailable(
            f"no Docker engine is reachable ({os.environ.get('DOCKER_HOST') or 'unix:///var/run/docker.sock'}: "
            f"{_client_error}); start dockerd, or drop --request-docker-image to run in the local environment"
        ) from None
    _client = c
    return c


def engine_available():
    try:
        client()
        return True
    except DockerUnavailable:
        return False


def _image(name, pull=True):
    c = client()  # first: it turns a missing SDK or engine into a one-line DockerUnavailable
    import docker

    try:
        return c.images.get(name)
    except docker.errors.ImageNotFound:
        if not pull:
            raise DockerStartError(f"docker image {name!r} is not on this machine") from None
    try:
        return c.images.pull(name)
    except Exception as e:  # noqa: BLE001 (no registry reachable, unknown image, ...)
        msg = str(e).splitlines()[0][:200]
        raise DockerStartError(f"docker image {name!r} is not on this machine and could not be pulled ({msg})") from None


def digest_of(image):
    """The image's digest: name@sha256:... from a registry, else the local content id sha256:...."""
    digests = image.attrs.get("RepoDigests") or []
    return digests[0] if digests else image.id


def resolve_digest(name):
    """The digest of a local image, or None when there is no engine or no such image here."""
    try:
        return digest_of(_image(name, pull=False))
    except (DockerUnavailable, DockerStartError):
        return None


def image_problem(name):
    """Why a run with this image cannot run here (a one-line message), or None."""
    try:
        _image(name)
    except DockerUnavailable as e:
        return f"runs with --request-docker-image need a Docker engine: {e}"
    except DockerStartError as e:
        return str(e)
    return None


def container_env(env, uuid, gpus):
    """The run's variables inside the container: never the host's PATH, HOME or secrets."""
    keep = {k: v for k, v in env.items() if k in THREAD_VARS}
    keep.update(HOME=f"/{uuid}", CODALAB="true", CODALITE_BUNDLE_UUID=uuid)
    keep["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(gpus)))
    return keep


def container_spec(command, uuid, volumes, environment, cpus=(), gpus=(), memory=0, network=False, env_vars=None,
                   user=None):
    """The arguments of containers.create for one run: GPUs are a device request for exactly the
    worker's assigned device ids (what `docker run --gpus '"device=2,3"'` sends), seen inside as 0..n-1."""
    import docker

    environment = dict(environment)
    environment.update(env_vars or {})
    kwargs = dict(
        command=["/bin/bash", "-c", f"( {command}\n) >stdout 2>stderr"], entrypoint="",
        working_dir=f"/{uuid}", environment=environment, user=user, volumes=volumes,
        name=f"codalite_run_{uuid}", labels={"codalite.uuid": uuid},
        cpuset_cpus=",".join(str(c) for c in cpus) if cpus else None,
        nano_cpus=int(len(cpus) * 1e9) if cpus else None,
        network_mode="bridge" if network else "none",
    )
    if memory:
        kwargs.update(mem_limit=int(memory), memswap_limit=int(memory))
    if gpus:
        kwargs["device_requests"] = [docker.types.DeviceRequest(device_ids=[str(g) for g in gpus],
                                                                capabilities=[["gpu"]])]
    return kwargs


def start_failure(error, gpus):
    """One line for a container that could not be created or started."""
    msg = str(error).splitlines()[0][:300]
    if gpus and ("could not select device driver" in msg or "nvidia" in msg.lower()):
        said = "no device driver for GPUs" if "could not select device driver" in msg else msg
        return (f"the run requests {len(gpus)} GPU(s) but this Docker engine cannot give GPUs to containers "
                f"(docker: {said}; install the NVIDIA Container Toolkit and restart dockerd, or drop --request-gpus)")
    return f"docker could not start the run: {msg}"


class DockerProcess(RunProcess):
    """One run's container."""

    POLL_INTERVAL = 0.05

    def __init__(self, command, cwd, env, cpus, image, uuid, mounts=(), gpus=(), memory=0, network=False,
                 env_vars=None, user=None):
        import docker

        self.client = client()
        self.cwd, self.uuid = cwd, uuid
        img = _image(image)
        self.image_digest = digest_of(img)
        self.extra_metadata = {"docker_image": self.image_digest}
        self.mount_points = []
        inside = f"/{uuid}"
        volumes = {cwd: {"bind": inside, "mode": "rw"}}
        for host_path, key in mounts:
            point = os.path.join(cwd, key)
            link = os.readlink(point) if os.path.islink(point) else None
            if link is not None:
                os.unlink(point)  # the worker's symlink: replaced by a mount point while the container runs
            os.makedirs(os.path.dirname(point), exist_ok=True)
            if os.path.isdir(host_path):
                os.mkdir(point)
            else:
                open(point, "w").close()
            self.mount_points.append((point, link))
            volumes[host_path] = {"bind": f"{inside}/{key}", "mode": "ro"}
        st = os.stat(cwd)
        kwargs = container_spec(command, uuid, volumes, container_env(env, uuid, gpus), cpus, gpus, memory, network,
                                env_vars, user or f"{st.st_uid}:{st.st_gid}")
        try:
            try:
                self.client.containers.get(kwargs["name"]).remove(force=True)  # left by a dead worker
            except docker.errors.NotFound:
                pass
            self.container = self.client.containers.create(img.id, **kwargs)
            try:
                self.container.start()
            except docker.errors.DockerException:
                self.container.remove(force=True)  # created but not started: leave nothing behind
                raise
            self.container.reload()
        except docker.errors.DockerException as e:
            self._restore_mount_points()
            raise DockerStartError(start_failure(e, gpus)) from None
        self.pid = int(self.container.attrs["State"].get("Pid") or 0)
        self.started = time.time()
        self.memory_max = 0
        self.rusage = None
        self.failure = None
        self._code = None
        self._next_poll = 0.0

    def poll(self):
        """The exit code once finished (137 when killed, as docker reports), else None."""
        if self._code is not None:
            return self._code
        now = time.time()
        if now < self._next_poll:
            return None
        self._next_poll = now + self.POLL_INTERVAL
        try:
            self.container.reload()
        except Exception:  # noqa: BLE001 (gone: treat as killed)
            self._finish(137)
            return self._code
        state = self.container.attrs["State"]
        if state.get("Status") not in ("exited", "dead"):
            return None
        if state.get("OOMKilled"):
            self.failure = "Memory limit exceeded (the container was OOM-killed)."
        self._finish(int(state.get("ExitCode", 137)))
        return self._code

    def _finish(self, code):
        self._code = code
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001
            pass
        self._restore_mount_points()

    def _restore_mount_points(self):
        """Put the worker's symlinks back, so it finishes the run as it finishes a local one."""
        for point, link in reversed(self.mount_points):
            try:
                if os.path.isdir(point) and not os.path.islink(point):
                    os.rmdir(point)
                elif os.path.lexists(point):
                    os.unlink(point)
                if link is not None:
                    os.symlink(link, point)
            except OSError:
                pass
        self.mount_points = []

    def kill(self):
        try:
            self.container.kill()
        except Exception:  # noqa: BLE001 (already gone)
            pass


def for_bundle(store, b, rundir, env, cpus, gpus, memory):
    """The container for a staged run bundle (called by the worker)."""
    mounts = []
    for d in b.dependencies:
        src = store.bundle_dir(d.parent_uuid)
        mounts.append((os.path.join(src, d.parent_path) if d.parent_path else src, d.child_path))
    return DockerProcess(b.command, rundir, env, cpus, b.metadata["request_docker_image"], b.uuid, mounts,
                         gpus, memory, bool(b.metadata.get("request_network")), b.runspec.get("env_vars"))
