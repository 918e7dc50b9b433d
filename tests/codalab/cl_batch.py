"""Run several `cl` commands in one process of the CodaLab venv (each `cl` start costs 3-4 s of
imports): argv lists as JSON on stdin -> [{rc, stdout, stderr}] as JSON on stdout.
Run with the stack's Python: $CODALITE_STACK_DIR/venv/bin/python cl_batch.py < commands.json"""

import io
import json
import sys

from codalab.lib.bundle_cli import BundleCLI
from codalab.lib.codalab_manager import CodaLabManager

manager = CodaLabManager()
results = []
for argv in json.load(sys.stdin):
    out, err = io.StringIO(), io.StringIO()
    try:
        BundleCLI(manager, stdout=out, stderr=err).do_command(argv)
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
        err.write(str(e.code) if not isinstance(e.code, int) else "")
    except Exception as e:  # a UsageError and the like: what `cl` would print
        rc = 1
        err.write(f"{type(e).__name__}: {e}")
    results.append({"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
json.dump(results, sys.stdout)
