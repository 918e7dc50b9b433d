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
    """Runs the real `codalite` program in a directory, as a user would."""

    def __init__(self, cwd):
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k != "CODALITE_HOME"}

    def __call__(self, *args, ok=True, timeout=120):
        r = subprocess.run([sys.executable, "-m", "codalite", *map(str, args)], cwd=self.cwd, env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"codalite {args} exited {r.returncode}: {r.stderr}")
        return r

    def out(self, *args):
        return self(*args).stdout.strip()


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
