"""Paths that leave a bundle: symlinks in uploads, links in run outputs read by cat, make and
worksheet genpaths, names that are not UTF-8, FIFOs and sockets, and uploading the store itself.
Each runs the real CLI as root and as an ordinary account (any_cl)."""

import os
import stat
import subprocess
import sys

SECRET = "top secret: outside every bundle\n"


def outside(cl):
    """A directory outside the store with a secret file, owned by the CLI's user (never /etc: an
    upload that followed a link used to strip the write bits of the link's whole target tree)."""
    cl.sh("mkdir -p outside/sub && printf 'top secret: outside every bundle\\n' > outside/secret.txt && "
          "echo deep > outside/sub/deep.txt && chmod 644 outside/secret.txt outside/sub/deep.txt")
    return os.path.join(cl.cwd, "outside")


def modes(tree):
    return {os.path.join(d, n): os.lstat(os.path.join(d, n)).st_mode for d, ds, fs in os.walk(tree) for n in ds + fs}


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_upload_refuses_links_that_leave_it_and_never_chmods_their_targets(any_cl):
    cl = any_cl
    cl("init")
    out = outside(cl)
    before = modes(out)
    cl.sh(f"mkdir up && echo in > up/in.txt && ln -s in.txt up/ok && ln -s {out} up/dirlink && "
          f"ln -s {out} top && ln -s ../../.. up2 && mkdir up3 && ln -s ../../../.. up3/up && "
          "mkdir up4 && echo x > up4/x && ln -s ../up4/x up4/dangles")
    for args in (["up"], ["top"], ["up2"], ["up3"], ["up4"]):
        r = cl("upload", *args, ok=False)
        one_line_error(r, 2)
        assert "symlink" in r.stderr and "--follow-symlinks" in r.stderr
    assert cl.out("ls", "-u") == "" and os.listdir(os.path.join(cl.cwd, ".codalite", "bundles")) == []
    # -L copies what a link that leaves points to; a link inside stays a link
    b = cl.out("upload", "up", "-L", "-n", "followed")
    assert cl.out("cat", f"{b}/dirlink/secret.txt") == SECRET.strip()
    assert cl.out("cat", f"{b}/ok") == "in"
    listing = cl.out("cat", b)
    rows = [line.split() for line in listing.splitlines()]
    assert ["ok", "link"] in rows and ["dirlink", "dir"] in rows
    # a top-level link is uploaded as its target's contents (a directory bundle, not a link)
    t = cl.out("upload", "top", "-L", "-n", "top")
    bundle_dir = os.path.join(cl.cwd, ".codalite", "bundles", t)
    assert not os.path.islink(bundle_dir) and os.path.isdir(bundle_dir)
    assert cl.out("cat", f"{t}/sub/deep.txt") == "deep"
    # the links' targets keep every mode they had
    assert modes(out) == before
    # a link loop under -L ends with one line, not a recursion error
    cl.sh("mkdir loop && ln -s .. loop/parent")
    one_line_error(cl("upload", "loop", "-L", ok=False), 2)
    assert cl("fsck").returncode == 0


def test_upload_of_a_link_to_a_file_outside_needs_L(any_cl):
    cl = any_cl
    cl("init")
    out = outside(cl)
    cl.sh(f"ln -s {out}/secret.txt s.txt")
    one_line_error(cl("upload", "s.txt", ok=False), 2)
    b = cl.out("upload", "s.txt", "-L")
    assert not os.path.islink(os.path.join(cl.cwd, ".codalite", "bundles", b))
    assert cl.out("cat", b) == SECRET.strip()


def run_with_links(cl, out):
    """A run whose outputs hold links to files and directories outside its bundle."""
    return cl.out("run", f"ln -s {out}/secret.txt leak && ln -s {out} outdir && mkdir d && "
                  f"ln -s {out}/secret.txt d/leak2 && ln -s ../../.. up && echo fine > ok.txt && ln -s ok.txt alias",
                  "-n", "links", "-W")


def test_cat_and_make_never_read_through_a_link_out_of_the_bundle(any_cl):
    cl = any_cl
    cl("init")
    out = outside(cl)
    run = run_with_links(cl, out)
    for sub in ("leak", "outdir/secret.txt", "outdir", "d/leak2", "up", "up/etc/passwd"):
        r = cl("cat", f"{run}/{sub}", ok=False)
        one_line_error(r, 1)
        assert "outside its bundle" in r.stderr and "secret" not in r.stdout
    assert cl.out("cat", f"{run}/alias") == "fine"  # a link that stays inside reads as its target
    listing = cl.out("cat", run)
    assert "leak" in listing and "secret" not in listing
    # make: a target that resolves outside fails; nothing outside is hard-linked into the store
    r = cl("make", f"{run}/leak", "-n", "m", "-W", ok=False)
    assert r.returncode != 0 and "outside its bundle" in r.stderr
    r = cl("make", f"k:{run}/outdir", "-n", "m2", "-W", ok=False)
    assert r.returncode != 0 and "outside its bundle" in r.stderr
    m = cl.out("make", f"{run}/alias", "-n", "m3", "-W")
    assert cl.out("cat", m) == "fine" and not os.path.islink(os.path.join(cl.cwd, ".codalite", "bundles", m))
    # a make of the directory copies the links as links: reading through them is refused the same way
    m4 = cl.out("make", f"{run}/d", "-n", "m4", "-W")
    one_line_error(cl("cat", f"{m4}/leak2", ok=False), 1)
    secret_inode = os.stat(os.path.join(out, "secret.txt")).st_ino
    store = os.path.join(cl.cwd, ".codalite")
    assert all(os.lstat(os.path.join(d, f)).st_ino != secret_inode for d, _, fs in os.walk(store) for f in fs)
    assert cl("fsck").returncode == 0


def test_worksheet_genpaths_never_read_through_a_link_out_of_the_bundle(any_cl):
    cl = any_cl
    cl("init")
    out = outside(cl)
    run = run_with_links(cl, out)
    cl.sh("cat > leak.ws <<'EOF'\n% schema s\n% add leak /leak\n% add deep /outdir/secret.txt\n"
          "% add nested /d/leak2\n% add up /up/etc/hostname\n% add ok /alias\n% display table s\n"
          f"{{{run}}}\n% display contents /leak\n{{{run}}}\nEOF")
    printed = cl.out("print", "leak.ws")
    assert "top secret" not in printed and "fine" in printed  # the genpath itself names secret.txt
    cl("print", "leak.ws", "--html", "leak.html")
    assert "top secret" not in open(os.path.join(cl.cwd, "leak.html")).read()


def test_non_utf8_names_upload_hash_and_list(any_cl):
    cl = any_cl
    cl("init")
    cl.sh("mkdir bad && printf 'x\\n' > bad/$(printf 'caf\\xff') && mkdir bad/$(printf 'd\\xfe') && "
          "ln -s $(printf 'caf\\xff') bad/link")
    b = cl.out("upload", "bad", "-n", "bad")
    listing = cl("cat", b).stdout
    assert "caf\\xff" in listing and "d\\xfe" in listing
    assert cl.out("cat", f"{b}/" + os.fsdecode(b"caf\xff")) == "x"
    # a run whose outputs have such names finishes (hashing them must not crash the worker)
    r = cl.out("run", "touch \"$(printf 'out\\xff')\" && mkdir \"$(printf 'dir\\xfe')\"", "-n", "badrun", "-W",
               timeout=60)
    assert "out\\xff" in cl("cat", r).stdout
    assert cl("fsck").returncode == 0


def test_valid_names_hash_as_before():
    """Names are hashed as their bytes (os.fsencode): valid UTF-8 names must keep their hash, or
    every existing bundle would fail fsck and every memo key would move."""
    import tempfile

    from codalite import hashing
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(f"{d}/t")
        with open(f"{d}/t/naïve.txt", "w") as f:
            f.write("1 2 3\n")
        os.mkdir(f"{d}/t/sub")
        os.symlink("../naïve.txt", f"{d}/t/sub/l")
        # computed with the hashing of commit 06014da (before names were fsencoded)
        assert hashing.hash_path(f"{d}/t") == "b3:96452f9a74cc37b8008e8a9d89bfcf7dfedfdaf51dbdb97cf063b6eab6bbb690"


def test_fifo_socket_and_device_uploads_are_refused_without_hanging(any_cl):
    cl = any_cl
    cl("init")
    cl.sh("mkdir withfifo && echo x > withfifo/x && mkfifo withfifo/pipe")
    r = cl("upload", "withfifo", ok=False, timeout=20)
    one_line_error(r, 2)
    assert "FIFO" in r.stderr
    d = os.path.join(cl.cwd, "withsock")
    cl.sh("mkdir withsock")
    # a socket made by the CLI's user (bind needs write access to the directory)
    cl.sh(f"{getattr(cl, 'python', sys.executable)} -c \"import socket; "
          f"socket.socket(socket.AF_UNIX).bind('{d}/sock')\"")
    assert stat.S_ISSOCK(os.lstat(f"{d}/sock").st_mode)
    one_line_error(cl("upload", "withsock", ok=False, timeout=20), 2)
    one_line_error(cl("upload", "/dev/null", ok=False, timeout=20), 2)
    cl.sh("ln -s /dev/zero zero")
    one_line_error(cl("upload", "zero", "-L", ok=False, timeout=20), 2)
    assert cl.out("ls", "-u") == "" and os.listdir(os.path.join(cl.cwd, ".codalite", "tmp")) == []


def test_a_fifo_in_a_run_output_never_blocks_a_reader(any_cl):
    cl = any_cl
    cl("init")
    r = cl.out("run", "mkfifo pipe && echo 1 > ok.txt", "-n", "fifo", "-W", timeout=60)
    one_line_error(cl("cat", f"{r}/pipe", ok=False, timeout=20), 1)
    assert "special" in cl.out("cat", r)
    cl.sh(f"printf '%% schema s\\n%% add p /pipe\\n%% add ok /ok.txt\\n%% display table s\\n{{{r}}}\\n' > f.ws")
    assert "1" in cl.out("print", "f.ws", timeout=20)
    assert cl("fsck", timeout=20).returncode == 0


def test_uploading_the_store_is_refused(any_cl):
    cl = any_cl
    cl("init")
    cl.sh("mkdir data && echo 1 > data/x && ln -s .. data/project")
    for args in (["."], [".codalite"], [".codalite/bundles"], [cl.cwd], ["data", "-L"]):
        r = cl("upload", *args, ok=False)
        one_line_error(r, 2)
        assert "store" in r.stderr
    assert cl.out("ls", "-u") == "" and cl("fsck").returncode == 0


def test_bundle_that_is_a_link_is_never_read_through(store, tmp_path):
    """Older versions stored a top-level symlink upload as a bundle that *is* the link: reads must
    not follow it out of the store."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x").write_text("x")
    b, _ = store.upload([tmp_path / "in"])
    final = store.bundle_dir(b.uuid)
    subprocess.run(["rm", "-rf", final], check=True)
    os.symlink(tmp_path / "outside", final)  # what the old upload of `ln -s outside top` made
    import pytest

    from codalite.errors import PathEscape
    from codalite.worksheets.genpath import FileReader
    with pytest.raises(PathEscape):
        store.path_in(b, "secret.txt")
    with pytest.raises(PathEscape):
        store.path_in(b)
    assert FileReader(store).info(b, "secret.txt") is None
