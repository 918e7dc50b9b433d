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

    def sh(self, script):
        """Run a shell snippet in the runner's directory, as the runner's user."""
        return subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, check=True)


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


# --- an ordinary (non-root) account ------------------------------------------------------------
# CI runs as root, but researchers do not: the tests create an account and run codalite as it,
# with Debian's python3 (the venv's interpreter lives under root's home) and PYTHONPATH = the
# checkout + the venv's site-packages.

USER = "codalite-user"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _site_packages():
    import site
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


@pytest.fixture(scope="session")
def ordinary_user():
    """(uid, gid, env) of an ordinary account that can import this checkout's codalite; skips where
    the suite itself does not run as root (it then already is an ordinary user)."""
    import pwd
    if os.geteuid() != 0:
        pytest.skip("the suite runs as an ordinary user already")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", USER], check=True)
        pw = pwd.getpwnam(USER)
    # the account must reach the checkout and the venv: let it traverse (not list) their parents
    changed = []
    for d in [CHECKOUT, *_site_packages()]:
        while d != "/":
            mode = os.stat(d).st_mode
            if not mode & 0o001:
                os.chmod(d, mode | 0o001)
                changed.append((d, mode))
            d = os.path.dirname(d)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": pw.pw_dir, "USER": USER, "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join([CHECKOUT, *_site_packages()]), "CODALITE_PYTHON": python,
    }
    yield pw.pw_uid, pw.pw_gid, env
    for d, mode in reversed(changed):
        os.chmod(d, mode)


class UserCLI(CLI):
    """The CLI as the ordinary account (setpriv drops root's uid, gid and groups)."""

    def __init__(self, cwd, user, env=None, timeout=120):
        uid, gid, base = user
        super().__init__(cwd, env, timeout)
        self.env = dict(base, **(env or {}))
        self.prefix = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--"]
        self.python = base["CODALITE_PYTHON"]

    def __call__(self, *args, ok=True, timeout=None, env=None):
        r = subprocess.run([*self.prefix, self.python, "-m", "codalite", *map(str, args)], cwd=self.cwd,
                           env=dict(self.env, **(env or {})), capture_output=True, text=True,
                           timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)
        if ok and r.returncode != 0:
            raise AssertionError(f"codalite {args} (as {USER}) exited {r.returncode}: {r.stderr[-3000:]}")
        return r

    def sh(self, script):
        """Run a shell snippet as the account (to make files it owns)."""
        return subprocess.run([*self.prefix, "bash", "-c", script], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, check=True)


@pytest.fixture
def user_dir(ordinary_user):
    """A fresh directory owned by the ordinary account (pytest's tmp_path is private to root)."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="codalite-user-")
    os.chown(d, ordinary_user[0], ordinary_user[1])
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def user_cl(ordinary_user, user_dir):
    """The CLI as an ordinary account, in a directory it owns."""
    return UserCLI(user_dir, ordinary_user)


@pytest.fixture(params=["root", "user"])
def any_cl(request, tmp_path, monkeypatch):
    """The CLI as whoever runs the suite (root in CI) and as an ordinary account."""
    if request.param == "root":
        monkeypatch.chdir(tmp_path)
        return CLI(tmp_path)
    return request.getfixturevalue("user_cl")
