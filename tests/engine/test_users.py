"""The engine as root (CI) and as an ordinary account (a researcher's own machine)."""

import re

UUID = re.compile(r"^0x[0-9a-f]{32}$")


def test_tour_as_root_and_as_user(any_cl):
    cl = any_cl
    cl.sh("mkdir -p data/sub && echo 1 2 3 > data/sub/x.txt && echo solo > one.txt")
    raw = cl.out("upload", "data", "-n", "raw")
    assert UUID.match(raw)
    assert UUID.match(cl.out("upload", "one.txt"))
    run = cl.out("run", "raw:raw", "cat raw/sub/x.txt > out.txt && mkdir d && echo hi > d/f", "-n", "r", "-W")
    assert cl.out("cat", "r/out.txt") == "1 2 3"
    made = cl.out("make", "a:r/d", "b:raw", "-n", "m")
    assert cl.out("wait", "m") == made
    assert cl.out("cat", "m/a/f") == "hi"
    assert cl.out("info", "r").count("state: ready") == 1
    cl("fsck")
    cl("rm", "m")
    assert run in cl.out("ls", "-u")


RECIPE = """\
name: toy
uploads:
  data: data
grid:
  n: [1, 2]
steps:
  count:
    command: wc -w < data/sub/x.txt > c.txt && echo {{ n }} >> c.txt
    deps: {data: data}
  report:
    command: cat c/c.txt > r.txt
    deps: {c: count}
"""


def test_recipes_worksheets_and_serve_as_root_and_as_user(any_cl):
    import socket
    import subprocess
    import time
    import urllib.request

    cl = any_cl
    cl.sh("mkdir -p data/sub && echo 1 2 3 > data/sub/x.txt")
    cl.sh(f"cat > toy.yaml <<'X'\n{RECIPE}X")
    cl("recipe", "run", "toy.yaml")
    plan = cl.out("recipe", "plan", "toy.yaml")
    assert "done" in plan and "missing" not in plan and "failed" not in plan
    assert cl.out("cat", "report-n2/r.txt").split() == ["3", "2"]
    assert "report-n1" in cl.out("print", "toy")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    prefix = getattr(cl, "prefix", [])
    python = getattr(cl, "python", __import__("sys").executable)
    server = subprocess.Popen([*prefix, python, "-m", "codalite", "serve", "--port", str(port)], cwd=cl.cwd,
                              env=cl.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert "toy" in page
    finally:
        server.kill()
        server.wait()
    cl("fsck")
