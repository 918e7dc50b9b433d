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
