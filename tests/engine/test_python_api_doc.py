"""docs/python-api.md's ```python blocks, run in order as one script in an empty directory: the
page's examples stay true (real runs through the worker, so in the end-to-end layer)."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_python_api_page_runs(tmp_path):
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "docs/python-api.md").read_text(), re.S | re.M)
    assert len(blocks) >= 7
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks))
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODALITE_HOME", "CODALAB_"))}
    r = subprocess.run([sys.executable, str(script)], cwd=work, env=env, capture_output=True, text=True,
                       timeout=300, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-5000:]
