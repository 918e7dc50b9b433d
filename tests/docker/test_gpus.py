"""--request-gpus with --request-docker-image, on a real engine of a machine without GPUs: the device
request the container gets, and a clear one-line failure (never a CPU run, never a traceback) when the
engine cannot give GPUs to containers."""

import docker

from codalite.docker_runtime import container_env, container_spec


def test_device_request_names_exactly_the_assigned_gpus(image, tmp_path):
    """Created (not started: no GPU here) on the engine, then read back as docker stored it."""
    env = container_env({"OMP_NUM_THREADS": "2", "SECRET": "x"}, "0xabc", [2, 3])
    spec = container_spec("nvidia-smi", "0xabc", {str(tmp_path): {"bind": "/0xabc", "mode": "rw"}}, env,
                          cpus=[0], gpus=[2, 3], memory=2 ** 30, user="0:0")
    spec["name"] = "codalite_test_gpu_spec"
    c = docker.from_env()
    try:
        c.containers.get(spec["name"]).remove(force=True)
    except docker.errors.NotFound:
        pass
    made = c.containers.create(image, **spec)
    try:
        made.reload()
        host = made.attrs["HostConfig"]
        assert host["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["2", "3"],
                                           "Capabilities": [["gpu"]], "Options": {}}]
        inside = dict(e.split("=", 1) for e in made.attrs["Config"]["Env"])
        assert inside["CUDA_VISIBLE_DEVICES"] == "0,1"  # the two assigned devices, renumbered in the container
        assert "SECRET" not in inside and inside["OMP_NUM_THREADS"] == "2"
    finally:
        made.remove(force=True)


def test_no_gpu_device_request_without_request_gpus(tmp_path):
    spec = container_spec("true", "0xabc", {}, container_env({}, "0xabc", []))
    assert "device_requests" not in spec


def test_gpus_requested_but_engine_has_no_nvidia_runtime(cl, image):
    """The worker believes it has GPU 0 (CUDA_VISIBLE_DEVICES), the engine has no NVIDIA runtime."""
    r = cl("run", "echo ran > ran.txt", "--request-docker-image", image, "--request-gpus", "1", "-W", ok=False,
           env={"CUDA_VISIBLE_DEVICES": "0"})
    assert r.returncode == 1
    assert "requests 1 GPU(s) but this Docker engine cannot give GPUs to containers" in r.stderr
    assert "NVIDIA Container Toolkit" in r.stderr and "Traceback" not in r.stderr
    uuid = cl.out("search", ".limit=1", "-u", env={"CUDA_VISIBLE_DEVICES": "0"}) or None
    assert cl.out("info", "-f", "state", uuid) == "failed"
    assert not docker.from_env().containers.list(all=True, filters={"label": f"codalite.uuid={uuid}"})


def test_gpus_requested_on_a_worker_without_gpus(cl, image):
    r = cl("run", "echo ran", "--request-docker-image", image, "--request-gpus", "1", "-W", ok=False,
           env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.returncode == 1
    assert "requests 1 GPUs but this worker has 0; lower --request-gpus" in r.stderr
    assert "Traceback" not in r.stderr
