"""`upload` of archives and CodaLab's other upload flags (issue 13): one archive is unpacked and named
without its extension, as `cl upload` does (CodaLab's zip_util); --pack keeps it; -x leaves names out;
flags that need CodaLab's server are refused in one line; a hostile archive stores nothing."""

import gzip
import io
import json
import tarfile
import zipfile

import pytest


def one_error(r, code, fragment):
    err = r.stderr.rstrip("\n").split("\n")
    assert r.returncode == code and len(err) == 1 and err[0].startswith("Error: "), r.stderr
    assert fragment in err[0], r.stderr


@pytest.fixture
def files(cl, tmp_path):
    cl("init")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("a\n")
    (tmp_path / "d" / "sub" / "b.log").write_text("b\n")
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as t:
        t.add(tmp_path / "d", arcname="d")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("x.txt", "x\n")
        z.writestr("inner/y.txt", "y\n")
    (tmp_path / "one.txt.gz").write_bytes(gzip.compress(b"one\n"))
    return cl


def test_an_archive_is_unpacked_and_named_without_its_extension(files):
    cl = files
    u = cl.out("upload", "d.tar.gz")
    assert cl.out("info", "-f", "name", u) == "d"
    assert cl.out("cat", f"{u}/d/sub/b.log") == "b"        # the archive's members, as CodaLab unpacks them
    u = cl.out("upload", "z.zip", "-n", "mine")             # a given name is kept
    assert cl.out("info", "-f", "name", u) == "mine" and cl.out("cat", f"{u}/inner/y.txt") == "y"
    u = cl.out("upload", "one.txt.gz")                       # a compressed file: the file
    assert cl.out("info", "-f", "name", u) == "one.txt" and cl.out("cat", u) == "one"
    u = cl.out("upload", "z.zip", "--pack")                  # --pack: the archive itself
    assert cl.out("info", "-f", "name", u) == "z.zip"
    assert json.loads(cl.out("info", u, "--json"))["data_size"] == (cl.cwd / "z.zip").stat().st_size


def test_exclude_patterns_license_and_source_url(files):
    cl = files
    u = cl.out("upload", "d", "-x", "*.log", "--license", "MIT", "--source-url", "https://example.org/d")
    info = {"metadata": json.loads(cl.out("info", u, "--json"))}
    assert info["metadata"]["name"] == "d" and info["metadata"]["license"] == "MIT"
    assert info["metadata"]["source_url"] == "https://example.org/d"
    assert cl.out("cat", f"{u}/a.txt") == "a"
    one_error(cl("cat", f"{u}/sub/b.log", ok=False), 1, "b.log")


@pytest.mark.parametrize("args, fragment", [
    (["https://example.org/data.zip"], "uploading from a URL"),
    (["--git", "d"], "--git"),
    (["-l", "d"], "--link"),
    (["-i", "ignore.txt", "d"], "--ignore FILE"),
    (["-x", "d", "d"], "-x leaves nothing"),
])
def test_server_only_flags_are_refused_in_one_line(files, args, fragment):
    one_error(files("upload", *args, ok=False), 2, fragment)
    assert files.out("ls", "-u") == ""


def test_a_hostile_or_broken_archive_stores_nothing(files, tmp_path):
    cl = files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"no\n"))
    (tmp_path / "evil.tar.gz").write_bytes(buf.getvalue())
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    one_error(cl("upload", "evil.tar.gz", ok=False), 2, "cannot unpack")
    one_error(cl("upload", "broken.zip", ok=False), 2, "--pack")
    assert not (tmp_path.parent / "escape.txt").exists() and cl.out("ls", "-u") == ""
    assert cl("fsck").returncode == 0
