"""A real CodaLab stack (MariaDB, cl-server, cl-bundle-manager, cl-ws-server, cl-worker with Docker)
started by the tests themselves on loopback, and the official `cl` CLI as the referee.

The stack is started once per session by tests/codalab/stack.sh and stopped at the end
(CODALITE_KEEP_STACK=1 leaves it running for the next session: a restart is then instant).
If it cannot start, every test here fails: none is skipped.
"""

import os
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
STACK = os.path.join(HERE, "stack.sh")


def pytest_configure(config):
    config.addinivalue_line("markers", "codalab: needs the real CodaLab stack (tests start it: tests/codalab/stack.sh)")


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.codalab)


class Stack:
    def __init__(self, env):
        self.env = env
        self.url = env["CLSTACK_URL"]
        self.image = env["CLSTACK_IMAGE"]
        self.cl_bin = env["CLSTACK_CL"]
        self.username, self.password = env["CODALAB_USERNAME"], env["CODALAB_PASSWORD"]
        self._worked = False

    def cl(self, *args, ok=True, timeout=300):
        """The official CodaLab CLI, logged in as the test user."""
        env = dict(os.environ, **self.env)
        if not self._worked:
            subprocess.run([self.cl_bin, "work", f"{self.url}::"], env=env, capture_output=True, text=True,
                           timeout=timeout, check=True)
            self._worked = True
        r = subprocess.run([self.cl_bin, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"cl {args} exited {r.returncode}: {r.stderr[-2000:]}")
        return r.stdout

    def info(self, uuid, field):
        return self.cl("info", "-f", field, uuid).strip()


def _read_env(text):
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            env[k] = v.strip().strip('"')
    return env


@pytest.fixture(scope="session")
def stack():
    t0 = time.time()
    r = subprocess.run(["bash", STACK, "start"], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"the CodaLab stack did not start (tests/codalab/stack.sh start):\n{r.stderr[-4000:]}",
                    pytrace=False)
    print(f"\nCodaLab stack up in {time.time() - t0:.1f} s", file=sys.stderr)
    env = _read_env(subprocess.run(["bash", STACK, "env"], capture_output=True, text=True, check=True).stdout)
    yield Stack(env)
    if not os.environ.get("CODALITE_KEEP_STACK"):
        subprocess.run(["bash", STACK, "stop"], capture_output=True, text=True, timeout=600)


@pytest.fixture
def bare_lite(tmp_path, stack, monkeypatch, make_cli):
    """`codalite` in a fresh project, no remote yet."""
    monkeypatch.chdir(tmp_path)
    c = make_cli(tmp_path, dict(CODALAB_USERNAME=stack.username, CODALAB_PASSWORD=stack.password), timeout=600)
    c("init")
    return c


@pytest.fixture
def lite(bare_lite, stack):
    """`codalite` in a fresh project with remote `lab` (the stack, as the test user) added."""
    bare_lite("remote", "add", "lab", stack.url)
    return bare_lite
