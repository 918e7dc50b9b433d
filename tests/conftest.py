import os
import subprocess
import sys

import pytest

from codalite import Store


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("CODALITE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    s = Store.init(tmp_path)
    yield s
    s.close()


class CLI:
    """Runs the real `codalite` program in a directory, as a user would (without the caller's
    CODALITE_HOME or CODALAB_* variables; `env` adds variables, per runner or per call)."""

    def __init__(self, cwd, env=None, timeout=120):
        self.cwd, self.timeout = cwd, timeout
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CODALITE_HOME", "CODALAB_"))}
        self.env.update(env or {})

    def __call__(self, *args, ok=True, timeout=None, env=None):
        r = subprocess.run([sys.executable, "-m", "codalite", *map(str, args)], cwd=self.cwd,
                           env=dict(self.env, **(env or {})), capture_output=True, text=True,
                           timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)
        if ok and r.returncode != 0:
            raise AssertionError(f"codalite {args} exited {r.returncode}: {r.stderr[-3000:]}")
        return r

    def out(self, *args, **kw):
        return self(*args, **kw).stdout.strip()


@pytest.fixture
def make_cli():
    """The CLI runner class, for fixtures that need their own variables or timeout."""
    return CLI


@pytest.fixture
def cl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CLI(tmp_path)


@pytest.fixture
def project(tmp_path):
    """A small project: data/ and code/ that trains a 'model' and writes stats.json."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("1 2 3\n")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text(
        "import argparse, json, os\n"
        "p = argparse.ArgumentParser(); p.add_argument('--data'); p.add_argument('--out')\n"
        "a = p.parse_args()\n"
        "nums = open(os.path.join(a.data, 'x.txt')).read().split()\n"
        "print('training on', len(nums), 'numbers')\n"
        "json.dump({'acc': sum(map(int, nums)) / 10}, open(os.path.join(a.out, 'stats.json'), 'w'))\n"
    )
    return tmp_path
