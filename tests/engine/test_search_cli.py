"""The CLI on a real store, as a CodaLab user types it: search on numbers, the documented
`.floating` cleanup, `ws//bundle` targets, instance-qualified targets, `:b/sub/path` keys and
`cl run`'s %target% sugar."""

import json


def info(cl, spec):
    return json.loads(cl.out("info", "--json", spec))


def test_search_numbers_and_floating_cleanup_keep_worksheet_bundles(cl, tmp_path):
    (tmp_path / "a.txt").write_text("hi\n")
    raw = cl.out("upload", "a.txt", "-n", "raw")
    ok = cl.out("run", "echo ok", "-n", "ok", "-W")
    bad = cl("run", "exit 3", "-n", "bad", "-W", ok=False)
    assert bad.returncode == 1
    assert cl.out("search", "exitcode=0", "-u") == ok
    assert cl.out("search", "exitcode=3", ".count") == "1"
    assert cl.out("search", "request_gpus=0", ".count") == "2"
    assert cl.out("search", "id=.sort", "-u").split()[0] == raw
    cl("new", "exp")
    cl("add", "bundle", "-w", "exp", "ok")
    assert cl.out("search", "host_worksheet=exp", "-u") == ok
    # CodaLab's documented cleanup: only bundles on no worksheet go
    floating = cl.out("search", ".mine", ".floating", "-u").split()
    assert ok not in floating and raw in floating and len(floating) == 2
    cl("rm", *floating)
    assert cl.out("search", "-u") == ok
    assert cl.out("search", "nosuch=.sum") == "None"
    assert cl.out("search", "size=.sum", ".format=size").endswith(("bytes", "k"))


def test_targets_on_worksheets_and_instances(cl, tmp_path):
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "b.txt").write_text("two\n")
    first = cl.out("upload", "a.txt", "-n", "raw")
    cl.out("upload", "b.txt", "-n", "raw")  # the newest `raw` is not on the worksheet
    cl("new", "exp")
    cl("add", "bundle", "-w", "exp", first)
    assert cl.out("cat", "exp//raw") == "one"
    assert cl.out("cat", "raw") == "two"
    assert info(cl, "exp//^1")["uuid"] == first
    run = cl.out("run", ":exp//raw", "cat raw", "-W")
    assert cl.out("cat", f"{run}/stdout") == "one"
    r = cl("cat", "nosuchws//raw", ok=False)
    assert r.returncode == 1 and "no worksheet matches 'nosuchws'" in r.stderr
    for args in (["info", "prod::raw"], ["cat", "prod::exp//raw/x"], ["run", "k:prod::exp//raw", "ls"]):
        r = cl(*args, ok=False)
        assert r.returncode == 2 and "CodaLab instance (prod::)" in r.stderr and len(r.stderr.splitlines()) == 1


def test_run_subpath_keys_and_inline_dependency_sugar(cl, tmp_path):
    (tmp_path / "code" / "sub").mkdir(parents=True)
    (tmp_path / "code" / "sub" / "x.txt").write_text("x\n")
    (tmp_path / "raw.txt").write_text("raw\n")
    cl("upload", "code", "-n", "code")
    cl("upload", "raw.txt", "-n", "raw")
    # `cl run :code/sub/x.txt` mounts it at ./sub/x.txt (the whole subpath is the key)
    run = cl.out("run", ":code/sub/x.txt", "cat sub/x.txt", "-W")
    assert [d.split(":")[0] for d in info(cl, run)["dependencies"]] == ["sub/x.txt"]
    assert cl.out("cat", f"{run}/stdout") == "x"
    # %target% and %key:target% become dependencies b1 and data
    run = cl.out("run", "cat %code%/sub/x.txt %data:raw% > out", "-W")
    b = info(cl, run)
    assert b["command"] == "cat b1/sub/x.txt data > out"
    assert sorted(d.split(":")[0] for d in b["dependencies"]) == ["b1", "data"]
    assert cl.out("cat", f"{run}/out") == "x\nraw"
    r = cl("run", "date +%s.%N", ok=False)
    assert r.returncode == 1 and "inline dependency sugar" in r.stderr and "--no-desugar" in r.stderr
    run = cl.out("run", "--no-desugar", "printf %s%s a b", "-W")
    assert cl.out("cat", f"{run}/stdout") == "ab"
    r = cl("run", ":code/sub", ":code/sub/x.txt", "ls", ok=False)
    assert r.returncode == 2 and "nest" in r.stderr
