"""The Docker runtime against a real engine: dockerd (started if needed) and the offline test image
built by images/test/build.sh. If the engine cannot be had, these tests fail; none is skipped."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a Docker engine (tests start dockerd and build the test image)")


def pytest_collection_modifyitems(items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def image():
    r = subprocess.run(["bash", os.path.join(ROOT, "tests", "codalab", "stack.sh"), "docker"],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        pytest.fail(f"no Docker engine or test image (tests/codalab/stack.sh docker):\n{r.stderr[-3000:]}",
                    pytrace=False)
    return r.stdout.strip().splitlines()[-1]


class CLI:
    def __init__(self, cwd):
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k != "CODALITE_HOME"}

    def __call__(self, *args, ok=True, timeout=300, env=None):
        r = subprocess.run([sys.executable, "-m", "codalite", *map(str, args)], cwd=self.cwd,
                           env=dict(self.env, **(env or {})), capture_output=True, text=True, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"codalite {args} exited {r.returncode}: {r.stderr}")
        return r

    def out(self, *args, **kw):
        return self(*args, **kw).stdout.strip()


@pytest.fixture
def cl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = CLI(tmp_path)
    c("init")
    return c
