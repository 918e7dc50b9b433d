"""A CodaLab user's own `cl` script (tests/engine/cl_user_script.sh: worksheet, uploads, runs with %dep%
sugar and key:target, mimic, make, search, edit, print) runs unchanged with `cl` = codalite, as root and
as an ordinary account (issue 13). The README shows the same script."""

import os
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("cl_user_script.sh")


def test_a_cl_script_runs_unchanged(any_cl):
    cl = any_cl
    python = getattr(cl, "python", sys.executable)
    cl("init")  # the one codalite step: a CodaLab user has an instance; this is the embedded one
    cl.sh(f"mkdir -p bin && printf '#!/bin/sh\\nexec {python} -m codalite \"$@\"\\n' > bin/cl && chmod +x bin/cl")
    r = cl.sh(f'PATH="$PWD/bin:$PATH" bash {SCRIPT}')
    out = r.stdout
    # each cat of a sort shows sorted numbers; the mimic sorted the other file; make took both
    assert out.count("1\n2\n3\n") >= 2 and "7\n8\n9\n" in out, out
    ws = out[out.index("### Worksheet:"):]
    for name in ("code", "numbers", "more", "sort", "sort-explicit", "sort-more", "both"):
        assert f" {name} " in ws, (name, ws)
    assert "numbers, sorted" in ws and "## Results" in ws  # the edit and the text item
    assert cl("search", "name=sort%", ".count").stdout.strip() == "3"
    sort_more = cl.out("info", "-f", "command", "sorting//sort-more")
    assert "sort.py" in sort_more
    assert os.path.exists(os.path.join(cl.cwd, ".codalite"))
