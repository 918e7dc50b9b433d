"""The Docker runtime against a real engine: dockerd (started if needed) and the offline test image
built by images/test/build.sh. If the engine cannot be had, these tests fail; none is skipped."""

import os
import subprocess

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


@pytest.fixture
def cl(tmp_path, monkeypatch, make_cli):
    monkeypatch.chdir(tmp_path)
    c = make_cli(tmp_path, timeout=300)
    c("init")
    return c
