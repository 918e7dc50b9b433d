"""Siblings of issue 10's defects in the verbs issue 13 added (download, edit, upload of archives),
found by attacking them as a careless or hostile user would, as root and as an ordinary account.
Each test failed before its fix."""

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile

import pytest


def one_error(r, code, fragment=""):
    err = r.stderr.rstrip("\n").split("\n")
    assert r.returncode == code and len(err) == 1 and err[0].startswith("Error: "), (r.returncode, r.stderr)
    assert fragment in err[0], r.stderr


def fsck_clean(cl):
    r = cl("fsck")
    assert r.returncode == 0 and "note:" not in r.stdout, r.stdout


# --- download ------------------------------------------------------------------------------------

def test_download_never_replaces_where_you_stand_or_the_store(any_cl):
    """`download B/sub/. -f` named its output '.', and -f then deleted the current directory (the
    project and its store with it); -o could also write into the store, i.e. into ready bundles."""
    cl = any_cl
    cl("init")
    cl.sh("mkdir -p d/sub && echo hi > d/sub/f && echo precious > keep.txt")
    b = cl.out("upload", "d", "-n", "dd")
    cl("download", "dd/sub/.", "-f")                     # B/sub/. is B/sub: written to ./sub
    assert open(os.path.join(cl.cwd, "sub", "f")).read() == "hi\n"
    for out in (".", "..", "./", ".codalite", f".codalite/bundles/{b}/new", f".codalite/bundles/{b}/sub/f"):
        one_error(cl("download", "dd", "-o", out, "-f", ok=False), 2, "cannot download to")
    one_error(cl("download", "dd/.", "-o", "sub/..", "-f", ok=False), 2, "current directory")
    assert open(os.path.join(cl.cwd, "keep.txt")).read() == "precious\n"
    assert cl.out("cat", "dd/sub/f") == "hi" and sorted(os.listdir(os.path.join(cl.cwd, ".codalite", "bundles"))) == [b]
    fsck_clean(cl)


def test_a_failed_download_with_force_keeps_what_was_there(any_cl):
    """-f deleted what was at OUT before copying: a copy that then failed (here a FIFO a run left in
    its outputs) lost the user's files and wrote nothing."""
    cl = any_cl
    cl("init")
    cl("run", "mkdir d && echo 1 > d/a && mkfifo d/p", "-n", "r", "-W")
    cl.sh("mkdir old && echo precious > old/mine")
    one_error(cl("download", "r/d", "-o", "old", "-f", ok=False), 1, "download failed")
    assert open(os.path.join(cl.cwd, "old", "mine")).read() == "precious\n"
    assert sorted(os.listdir(cl.cwd)) == [".codalite", "old"]   # no half-written copy beside it
    cl("download", "r/d/a", "-o", "old", "-f")                  # a copy that works replaces it
    assert open(os.path.join(cl.cwd, "old")).read() == "1\n"
    assert sorted(os.listdir(cl.cwd)) == [".codalite", "old"]


# --- edit ------------------------------------------------------------------------------------------

def test_edit_cannot_make_info_lie_about_how_a_bundle_was_made(cl, tmp_path):
    """`edit -f` refused a list of generated keys but not what the worker records (sandbox,
    job_handle, cpus, gpus) nor what `info` shows beside metadata (location, stdout, ...): `edit R
    -f sandbox bwrap` made an unconfined run look confined. `-f tags 'a b'` stored a string, which
    `search tags=a` then never found."""
    (tmp_path / "a.txt").write_text("1\n")
    r = cl.out("run", "echo hi", "-n", "r", "-W")
    before = json.loads(cl.out("info", r, "--json"))
    for key in ("sandbox", "job_handle", "cpus", "gpus", "location", "stdout", "stderr", "contents", "children",
                "host_worksheets", "is_dir", "stat_sig", "id", "runspec"):
        one_error(cl("edit", r, "-f", key, "x", ok=False), 2, "not editable")
    assert json.loads(cl.out("info", r, "--json")) == before
    cl("edit", r, "-f", "tags", "a b")
    assert json.loads(cl.out("info", r, "--json"))["tags"] == ["a", "b"]
    assert cl.out("search", "tags=a", "-u") == r
    cl("edit", r, "-f", "note", "my own key")                  # keys of your own stay editable
    assert cl.out("info", r, "-f", "note") == "my own key"


# --- upload of archives ----------------------------------------------------------------------------

def write_tar(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, kind, data, link, mode in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, mode
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def file_member(name, data=b"x", mode=0o644):
    return (name, tarfile.REGTYPE, data, "", mode)


def test_contradictory_or_corrupt_archives_are_the_users_mistake(any_cl):
    """An archive whose members contradict each other (a file `a` and `a/b`, a member '..') or a
    .bz2 that is not bzip2 exited 1 ("Not a directory", naming nothing), unlike every other
    malformed archive (exit 2, --pack)."""
    cl = any_cl
    cl("init")
    d = cl.cwd
    write_tar(os.path.join(d, "dirfile.tar.gz"), [file_member("a"), file_member("a/b")])
    with zipfile.ZipFile(os.path.join(d, "dirfile.zip"), "w") as z:
        z.writestr("a", "a")
        z.writestr("a/b", "b")
    with zipfile.ZipFile(os.path.join(d, "dotdot.zip"), "w") as z:
        z.writestr("..", "x")
    with open(os.path.join(d, "bad.bz2"), "wb") as f:
        f.write(b"BZh9 not bzip2 at all")
    os.system(f"chown -R --reference={d} {d}")
    for name in ("dirfile.tar.gz", "dirfile.zip", "dotdot.zip", "bad.bz2"):
        one_error(cl("upload", name, ok=False), 2, "--pack")
    assert cl.out("ls", "-u") == ""
    assert os.listdir(os.path.join(d, ".codalite", "tmp")) == []
    fsck_clean(cl)


@pytest.mark.parametrize("members, fragment", [
    ([("l", tarfile.SYMTYPE, b"", "/etc/passwd", 0o777)], "absolute"),
    ([("l", tarfile.SYMTYPE, b"", "../../../../etc/passwd", 0o777)], "outside"),
    ([("h", tarfile.LNKTYPE, b"", "/etc/passwd", 0o644)], "absolute"),
    ([("l", tarfile.SYMTYPE, b"", "/tmp", 0o777), file_member("l/evil")], "absolute"),
    ([("null", tarfile.CHRTYPE, b"", "", 0o666)], "special"),
    ([("p", tarfile.FIFOTYPE, b"", "", 0o666)], "special"),
    ([file_member("../escape")], "outside"),
])
def test_hostile_archives_store_nothing(any_cl, members, fragment):
    cl = any_cl
    cl("init")
    write_tar(os.path.join(cl.cwd, "evil.tar.gz"), members)
    os.system(f"chown --reference={cl.cwd} {cl.cwd}/evil.tar.gz")
    one_error(cl("upload", "evil.tar.gz", ok=False), 2, fragment)
    assert cl.out("ls", "-u") == "" and os.listdir(os.path.join(cl.cwd, ".codalite", "tmp")) == []
    assert not os.path.exists(os.path.join(os.path.dirname(cl.cwd), "escape"))


def test_archive_modes_are_tamed(any_cl):
    """setuid bits never reach the store; a member directory or file of mode 000 stays readable."""
    cl = any_cl
    cl("init")
    write_tar(os.path.join(cl.cwd, "m.tar.gz"), [file_member("s", b"#!/bin/sh\n", 0o6755),
                                                 ("d", tarfile.DIRTYPE, b"", "", 0), file_member("d/f", b"f", 0)])
    os.system(f"chown --reference={cl.cwd} {cl.cwd}/m.tar.gz")
    b = cl.out("upload", "m.tar.gz")
    assert cl.out("cat", "m/d/f") == "f"
    mode = os.stat(os.path.join(cl.cwd, ".codalite", "bundles", b, "s")).st_mode
    assert not mode & 0o7000
    fsck_clean(cl)


def test_a_killed_archive_upload_leaves_nothing_behind(any_cl, tmp_path):
    """upload unpacked archives (and -x copies) in the system's temp directory: kill -9 there left
    the whole unpacked archive behind for good (issue 10 fixed it for the store's tmp/ only)."""
    cl = any_cl
    cl("init")
    private_tmp = os.path.join(cl.cwd, "systemtmp")
    cl.sh(f"mkdir {private_tmp} && head -c 400000000 /dev/zero > big && tar czf big.tar.gz big && rm big")
    prefix = getattr(cl, "prefix", [])
    python = getattr(cl, "python", sys.executable)
    store_tmp = os.path.join(cl.cwd, ".codalite", "tmp")
    p = subprocess.Popen([*prefix, python, "-m", "codalite", "upload", "big.tar.gz"], cwd=cl.cwd,
                         env=dict(cl.env, TMPDIR=private_tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None:  # kill it while it unpacks
        staged = [os.path.join(root, f) for where in (private_tmp, store_tmp) for root, _, fs in os.walk(where)
                  for f in fs]
        if any(os.path.getsize(f) > 0 for f in staged):
            break
        time.sleep(0.005)
    p.kill()
    p.wait()
    assert p.returncode == -9, "the upload ended before it could be killed"
    cl.sh("echo x > small.txt")
    cl("upload", "small.txt")                    # the next writer deletes the dead upload's staging
    assert os.listdir(private_tmp) == [] and os.listdir(store_tmp) == []
    fsck_clean(cl)


def test_edit_of_a_range_is_one_line(cl, tmp_path):
    """`edit ^1-2 -n x` ended in a ValueError traceback (a range resolves to several bundles)."""
    (tmp_path / "a.txt").write_text("1\n")
    (tmp_path / "b.txt").write_text("2\n")
    cl("upload", "a.txt")
    cl("upload", "b.txt")
    one_error(cl("edit", "^1-2", "-d", "x", ok=False), 2, "names 2 bundles")
    cl("edit", "^2-2", "-d", "x")
    assert cl.out("info", "a.txt", "-f", "description") == "x"


# --- default names ---------------------------------------------------------------------------------

def test_uploads_get_a_valid_default_name_whatever_the_file_is_called(any_cl):
    """An archive or an -x upload was named after its file as is: `upload 2020-data.zip` or
    `upload 'my dir' -x '*.log'` were refused for a name the user never typed (a plain upload makes
    it valid: my_dir), and `upload .tar.gz` was named 'unpacked', the name of a temporary directory."""
    cl = any_cl
    cl("init")
    cl.sh("mkdir -p 'my dir' && echo 1 > 'my dir/x' && echo 2 > 'my dir/y.log' && "
          "tar czf 2020-data.tar.gz 'my dir' && cp 2020-data.tar.gz 'my data.tgz' && cp 2020-data.tar.gz .tar.gz")
    names = {}
    for args in (["2020-data.tar.gz"], ["my data.tgz"], ["my dir", "-x", "*.log"], [".tar.gz"]):
        names[args[0]] = cl.out("info", cl.out("upload", *args, "--force"), "-f", "name")
    assert names == {"2020-data.tar.gz": "_2020-data", "my data.tgz": "my_data", "my dir": "my_dir",
                     ".tar.gz": "_.tar.gz"}
    assert cl.out("cat", "my_dir/x") == "1"
    one_error(cl("cat", "my_dir/y.log", ok=False), 1, "no such path")


# --- dependency keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("dep", [".:A", ":A/.", "a/.:A", "./x:A", "stdout:A", "stderr:A"])
def test_dependency_keys_that_cannot_be_mounted_are_refused(cl, tmp_path, dep):
    """A key '.' (also from `:A/.`) was accepted and the run then failed inside the worker
    ("internal error while starting: Invalid argument"); a key `stdout` hid the run's own stdout
    (the bundle lost it, or kept the run's output in place of the dependency)."""
    (tmp_path / "a.txt").write_text("1\n")
    cl("upload", "a.txt", "-n", "A")
    one_error(cl("run", dep, "ls", ok=False), 2, "key")
    assert cl.out("ls", "-u").count("\n") == 0  # only A: nothing was submitted


# --- a store on a read-only file system ----------------------------------------------------------

@pytest.fixture
def read_only_store(cl, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        ro = type(cl)(mnt)
        ro("init")
        (mnt / "a.txt").write_text("1\n")
        b = ro.out("upload", "a.txt", "-n", "A")
        ro("new", "ws")
        ro("add", "bundle", "A", "-w", "ws")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield ro, b
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_store_on_a_read_only_file_system_can_be_read(read_only_store, tmp_path):
    """Every command, even `ls`, failed on a read-only store (SQLite's WAL mode writes its -shm file)
    with advice that could destroy it: "cannot be used ...; restore .codalite/ from a backup or
    `codalite init` a new store"."""
    ro, b = read_only_store
    assert ro.out("ls", "-u") == b and ro.out("cat", "A") == "1" and ro.out("search", "A", "-u") == b
    assert ro.out("info", "A", "-f", "name") == "A" and "A" in ro.out("print", "ws")
    ro("download", "A", "-o", str(tmp_path / "got"))
    assert (tmp_path / "got").read_text() == "1\n"
    assert "1 ready bundles verified" in ro.out("fsck")
    for args in (["edit", "A", "-d", "x"], ["new", "w2"], ["config", "memo", "off"], ["run", ":A", "cat A"]):
        r = ro(*args, ok=False)
        one_error(r, 1, "read-only file system")
        assert "backup" not in r.stderr and "init" not in r.stderr
    one_error(ro("upload", "a.txt", "-n", "B", ok=False), 1, "Read-only file system")


# --- memo ----------------------------------------------------------------------------------------

def test_a_no_memo_run_stays_never_reused_when_mimicked(cl):
    """`mimic R` of a --no-memo run made a reusable copy: the next plain `run` of the same command
    silently returned it (a memo hit on `date`), which --no-memo exists to prevent."""
    first = cl.out("run", "date +%N > t", "--no-desugar", "--no-memo", "-W")
    again = cl.out("mimic", first, "-W")
    assert again != first
    r = cl("run", "date +%N > t", "--no-desugar", "-W")
    assert r.stdout.strip() not in (first, again) and "memo hit" not in r.stderr


def test_cat_tail_zero_prints_nothing(cl, tmp_path):
    """`cat --tail 0` printed the whole file (lines[-0:] is every line); --head 0 printed nothing."""
    (tmp_path / "n").write_text("1\n2\n3\n")
    cl("upload", "n", "-n", "N")
    assert cl.out("cat", "N", "--tail", "0") == "" and cl.out("cat", "N", "--head", "0") == ""
    assert cl.out("cat", "N", "--tail", "5") == "1\n2\n3" and cl.out("cat", "N", "--tail", "2") == "2\n3"


def test_make_refuses_nested_keys_up_front(cl, tmp_path):
    """`run` refused keys that nest (a and a/b), `make` accepted them and the bundle then failed in
    the worker ("make failed: File exists: .../tmp/...")."""
    (tmp_path / "a.txt").write_text("1\n")
    (tmp_path / "b.txt").write_text("2\n")
    cl("upload", "a.txt", "-n", "A")
    cl("upload", "b.txt", "-n", "B")
    one_error(cl("make", "a:A", "a/b:B", ok=False), 2, "do not nest")
    assert cl.out("ls", "-u").count("\n") == 1  # A and B only
    assert cl.out("cat", cl.out("make", "a:A", "b/c:B", "-W") + "/b/c") == "2"


@pytest.mark.parametrize("args", [["--cpus", "-1"], ["--cpus", "0"], ["--gpus", "-1"], ["--memory", "0"]])
def test_worker_refuses_resources_it_would_silently_reinterpret(cl, args):
    """`worker --cpus 0` ran with every CPU and `--cpus -1` with all but one (a list slice),
    `--memory 0` with all the memory: each exited 0 and said nothing."""
    cl("init")
    one_error(cl("worker", *args, "--exit-when-idle", ok=False), 2, args[0])


@pytest.mark.parametrize("pattern", ["sub/b.log", "su*", "*/b.log", "deep/*", "./a", "b.log", "a", "*.log"])
def test_upload_exclude_patterns_match_as_codalabs_tar_does(cl, tmp_path, pattern):
    """`cl upload DIR -x PATTERN` is GNU tar's --exclude (CodaLab's file_util.tar_gzip_directory):
    a pattern with a '/' matches paths. codalite matched names only, so `-x sub/b.log` silently
    uploaded sub/b.log. Compared here with GNU tar itself."""
    d = tmp_path / "xd"
    for rel in ("a", "sub/b.log", "other/b.log", "deep/sub/b.log"):
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(rel)
    listed = subprocess.run(f"tar cf - --exclude='{pattern}' -C xd . | tar t", shell=True, cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.split()
    tar = {p.strip("/") for p in listed} - {"."}
    u = cl.out("upload", "xd", "-x", pattern)
    root = tmp_path / ".codalite" / "bundles" / u
    ours = {"./" + str(p.relative_to(root)) for p in root.rglob("*")}
    assert ours == tar


def test_a_directory_named_like_an_archive_is_uploaded_as_a_directory(any_cl):
    """`upload data.zip/` (a directory) was unpacked as an archive and refused ("Is a directory");
    CodaLab uploads a directory as a directory whatever its name."""
    cl = any_cl
    cl("init")
    cl.sh("mkdir data.zip && echo 1 > data.zip/f")
    b = cl.out("upload", "data.zip")
    assert cl.out("info", b, "-f", "name") == "data.zip" and cl.out("cat", f"{b}/f") == "1"


def test_someone_elses_store_is_not_called_damaged(user_cl, make_cli):
    """An ordinary user in a store another account owns (a shared project) got "the store's database
    ... refused the query: attempt to write a readonly database" even for `ls`, which says neither
    why nor what to do (and where SQLite cannot open it at all, the advice to restore it from a
    backup or `codalite init` a new one, which a healthy store does not need)."""
    shared = os.path.join(user_cl.cwd, "shared")
    os.mkdir(shared, 0o755)                      # root's, inside the user's directory
    root = make_cli(shared)
    root("init")
    root("upload", "-c", "x", "-n", "A")
    user = type(user_cl)(shared, (os.stat(user_cl.cwd).st_uid, os.stat(user_cl.cwd).st_gid, user_cl.env))
    for args in (["ls"], ["edit", "A", "-d", "y"]):
        r = user(*args, ok=False)
        one_error(r, 1, "not writable by you")
        assert "backup" not in r.stderr and "init" not in r.stderr
    assert root.out("cat", "A") == "x"


def test_a_killed_download_leaves_nothing_the_next_one_does_not_clean(any_cl):
    """kill -9 of `download -o OUT [-f]` left OUT.codalite-download-PID (a partial copy) for good, and
    one killed between -f's two renames left OUT missing, the user's files hidden beside it. The
    windows cannot be hit reliably by a timer: the debris is made as a kill leaves it (a dead pid)."""
    cl = any_cl
    cl("init")
    cl.sh("mkdir d && echo new > d/f")
    cl("upload", "d", "-n", "A")
    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid
    cl.sh(f"mkdir got.codalite-download-{dead} && echo part > got.codalite-download-{dead}/f && "
          f"mkdir got.codalite-replaced-{dead} && echo mine > got.codalite-replaced-{dead}/f")
    r = cl("download", "A", "-o", "got", ok=False)
    assert r.returncode == 2 and "put back got" in r.stderr and "already exists" in r.stderr
    assert sorted(os.listdir(cl.cwd)) == [".codalite", "d", "got"]
    assert open(os.path.join(cl.cwd, "got", "f")).read() == "mine\n"
    cl("download", "A", "-o", "got", "-f")
    assert open(os.path.join(cl.cwd, "got", "f")).read() == "new\n"
    assert sorted(os.listdir(cl.cwd)) == [".codalite", "d", "got"]


def zip_with(path, members):
    """members: (name, data, mode) made on Unix (create_system 3), as Info-ZIP's zip writes them."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.create_system, info.external_attr = 3, mode << 16
            z.writestr(info, data)


def test_zip_members_keep_their_modes_and_links_as_unzip_does(any_cl):
    """CodaLab unpacks a .zip with `unzip`: a script keeps its executable bit and a link is a link.
    codalite's zipfile.extractall dropped both (`run :code code/run.sh` then failed: Permission
    denied, exit 126), and quietly renamed members named outside the bundle (../../x -> x)."""
    cl = any_cl
    cl("init")
    zip_with(os.path.join(cl.cwd, "code.zip"), [("run.sh", "#!/bin/sh\necho ran\n", 0o100755),
                                               ("link", "run.sh", 0o120777), ("s", "x", 0o104755)])
    os.system(f"chown --reference={cl.cwd} {cl.cwd}/code.zip")
    b = cl.out("upload", "code.zip")
    r = cl.out("run", ":code", "code/run.sh && cat code/link > copy", "-W")
    assert cl.out("cat", f"{r}/stdout") == "ran" and cl.out("cat", f"{r}/copy") == "#!/bin/sh\necho ran"
    bundle = os.path.join(cl.cwd, ".codalite", "bundles", b)
    assert os.readlink(os.path.join(bundle, "link")) == "run.sh"
    assert not os.stat(os.path.join(bundle, "s")).st_mode & 0o7000
    fsck_clean(cl)


@pytest.mark.parametrize("members, fragment", [
    ([("../../x", "x", 0o100644)], "outside the bundle"),
    ([("/abs", "x", 0o100644)], "outside the bundle"),
    ([("l", "/etc/passwd", 0o120777)], "points outside"),
    ([("d/l", "../..", 0o120777)], "points outside"),
    ([("a", ".", 0o120777), ("b", "a/..", 0o120777)], "points outside"),   # each fine as text, not together
])
def test_hostile_zips_store_nothing(any_cl, members, fragment):
    cl = any_cl
    cl("init")
    zip_with(os.path.join(cl.cwd, "evil.zip"), members)
    os.system(f"chown --reference={cl.cwd} {cl.cwd}/evil.zip")
    one_error(cl("upload", "evil.zip", ok=False), 2, fragment)
    one_error(cl("upload", "evil.zip", "-L", ok=False), 2, fragment)
    assert cl.out("ls", "-u") == "" and os.listdir(os.path.join(cl.cwd, ".codalite", "tmp")) == []
    assert not os.path.exists(os.path.join(os.path.dirname(cl.cwd), "x"))


@pytest.mark.parametrize("follow", [[], ["-L"]])
def test_a_tar_whose_links_leave_the_bundle_only_together_is_refused_when_unpacked(any_cl, follow):
    """The 'data' filter checks each link when it is made (Python before 3.12.11: CVE-2025-4138), so
    b -> x/.. then x -> . (each harmless alone) unpacked into a link out of the archive; only the
    upload's own link check (or its loop check with -L) stopped it afterwards. Now untar makes links
    last and refuses the archive when one leads outside."""
    cl = any_cl
    cl("init")
    write_tar(os.path.join(cl.cwd, "chain.tar.gz"), [("b", tarfile.SYMTYPE, b"", "x/..", 0o777),
                                                     ("x", tarfile.SYMTYPE, b"", ".", 0o777)])
    os.system(f"chown --reference={cl.cwd} {cl.cwd}/chain.tar.gz")
    one_error(cl("upload", "chain.tar.gz", *follow, ok=False), 2, "leads outside the bundle")
    assert cl.out("ls", "-u") == "" and os.listdir(os.path.join(cl.cwd, ".codalite", "tmp")) == []


def test_a_mimic_that_cannot_make_every_copy_makes_none(cl, tmp_path):
    """`mimic OLD NEW` made copies one by one: when a later copy was refused (here NEW lacks a file that a
    downstream run takes), the copies before it were already queued and stayed: half a rerun, under the
    mimic's names. Now every copy's kept dependencies are checked before any copy is made."""
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "x.txt").write_text("1\n")
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "y.txt").write_text("2\n")
    old, new = cl.out("upload", "d1", "-n", "D1"), cl.out("upload", "d2", "-n", "D2")
    cl("run", "d:D1", "---", "ls d", "-n", "first", "-W")
    cl("run", "d:D1/x.txt", "---", "cat d", "-n", "second", "-W")
    before = cl.out("search", ".count")
    one_error(cl("mimic", old, new, "-n", "again", ok=False), 1, f"no such path 'x.txt' in bundle {new}")
    assert cl.out("search", ".count") == before  # `first`'s copy was made (and queued) before
    assert cl.out("search", "again%", ".count") == "0"
