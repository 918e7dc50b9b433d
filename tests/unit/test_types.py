"""The typed public API is checked by mypy (setup.cfg [mypy] lists the modules; grow the list as
modules get annotated). Part of `make test` and `make test-fast`."""

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.fast

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_mypy_passes_on_the_typed_modules():
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "setup.cfg")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-2000:]
