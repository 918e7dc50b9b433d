"""`codalite serve` with a bad --port or --host: one error line naming the problem, no traceback,
exit 2 for a malformed value and 1 for a port already in use. Real processes, a real store."""

import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-cli")
    subprocess.run([sys.executable, "-m", "codalite", "init"], cwd=root, check=True, capture_output=True)
    return root


def serve(project, *args):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("CODALITE_HOME", None)
    return subprocess.run([sys.executable, "-m", "codalite", "serve", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=30)


def error_lines(p):
    assert "Traceback" not in p.stderr, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--port", "99999"], "0 to 65535"), (["--port", "-1"], "0 to 65535"), (["--port", "65536"], "0 to 65535"),
    (["--port", "abc"], "--port"), (["--host", "no-such-host.invalid", "--port", "0"], "cannot resolve"),
    (["--host", "192.0.2.1", "--port", "0"], "not an address of this machine"),
])
def test_malformed_port_or_host_is_a_usage_error(project, args, words):
    p = serve(project, *args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert words in error_lines(p)


def test_port_in_use_is_a_failure(project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = serve(project, "--port", str(port))
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert f"port {port}" in error_lines(p) and "in use" in p.stderr
