"""Uploading an archive as CodaLab does: one uploaded .zip/.tar.gz/.tgz/.tar.bz2 becomes a directory
bundle of its members, one .gz/.bz2 file its decompressed file, and the bundle's default name loses
the extension (`cl upload data.zip` -> bundle `data`); `--pack` keeps the archive as a file.
(CodaLab's zip_util: several paths are packed together and their archives stay files.)"""

import bz2
import errno
import gzip
import os
import shutil
import stat
import tarfile
import zipfile

if not hasattr(tarfile, "data_filter"):  # extraction filters came in 3.12 and 3.11.4 (Debian 12 has 3.11.2)
    try:
        from backports import tarfile  # type: ignore[no-redef]  # Python 3.12's tarfile, filters included
    except ImportError:
        tarfile = None  # type: ignore[assignment]
TAR_ERRORS = (tarfile.TarError,) if tarfile else ()

from .errors import CodaliteError, UsageError

EXTENSIONS = (".tar.gz", ".tgz", ".tar.bz2", ".zip", ".gz", ".bz2")  # longest first where they overlap


def extension(path: str) -> str | None:
    return next((e for e in EXTENSIONS if path.endswith(e)), None)


def strip_extension(name: str) -> str:
    ext = extension(name)
    return name[: -len(ext)] if ext else name


def unpack(path: str, dest: str) -> str:
    """Unpack the archive at path into dest (which must not exist); returns dest. Members that would
    land outside dest, devices and links leaving it are refused (tarfile's 'data' filter, zipfile's
    own path cleaning), in one line naming the archive."""
    ext = extension(path)
    if tarfile is None and ext in (".tar.gz", ".tgz", ".tar.bz2"):  # never without the filter that keeps members in
        raise CodaliteError(f"this Python cannot unpack {path} safely (no tarfile extraction filters); "
                            "pip install backports.tarfile, or upload it as a file with --pack")
    try:
        if ext in (".tar.gz", ".tgz", ".tar.bz2"):
            os.mkdir(dest)
            with tarfile.open(path, "r:gz" if ext != ".tar.bz2" else "r:bz2") as tar:
                untar(tar, dest)
        elif ext == ".zip":
            os.mkdir(dest)
            with zipfile.ZipFile(path) as z:
                unzip(z, dest)
        elif ext in (".gz", ".bz2"):
            with (gzip.open if ext == ".gz" else bz2.open)(path, "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            raise UsageError(f"{path} is not an archive CodaLab unpacks ({', '.join(EXTENSIONS)})")
    except (*TAR_ERRORS, zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as e:  # not an archive after all
        raise UsageError(f"cannot unpack {path}: {e}; upload it as a file with --pack") from None
    except OSError as e:
        inside = isinstance(e.filename, str) and os.path.abspath(e.filename).startswith(os.path.abspath(dest) + os.sep)
        member = os.path.relpath(e.filename, dest) if inside else None
        if e.errno is None or e.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
            # bz2's "Invalid data stream", or members that contradict each other (a file `a` and `a/b`)
            raise UsageError(f"cannot unpack {path}: {e.strerror or e}" + (f" ({member})" if member else "")
                             + "; upload it as a file with --pack") from None
        raise CodaliteError(f"cannot unpack {path}: {e.strerror or e}") from None  # a full disk
    return dest


def untar(tar, dest: str) -> None:
    """tarfile's 'data' filter (no member outside dest, no device, no setuid), with symlinks made
    last and each checked by realpath once all exist: the filter checks a link when it is made, so
    a chain of links whose parts are each harmless (b -> x/.., then x -> .) could lead writes or a
    later -L copy out of dest on Pythons before 3.12.11/3.13.4 (CVE-2025-4138, CVE-2025-4517)."""
    members = tar.getmembers()
    links = [m for m in members if m.issym()]
    names = {m.name.rstrip("/") for m in links}
    for m in members:
        if m.islnk() and m.linkname.rstrip("/") in names:
            raise UsageError(f"cannot unpack {tar.name}: hard link {m.name!r} is to a symlink; "
                             "upload it as a file with --pack")
    tar.extractall(dest, members=[m for m in members if not m.issym()], filter="data")
    for m in links:
        tar.extract(m, dest, filter="data")
    m = next((m for m in links if leaves(dest, m.name)), None)
    if m is not None:
        raise UsageError(f"cannot unpack {tar.name}: link {m.name!r} leads outside the bundle (through "
                         f"{m.linkname!r}); upload it as a file with --pack")


def unzip(z: zipfile.ZipFile, dest: str) -> None:
    """Extract as CodaLab's `unzip` does, what zipfile alone does not: Unix modes (a script keeps
    its executable bit) and symlinks. Refused as tarfile's 'data' filter refuses them: a member
    named outside dest (zipfile would quietly rename it) and a link leaving it; setuid bits go.
    Links are made last, after every file is written, so no write can go through one; each must
    then resolve inside dest."""
    links = []
    for info in z.infolist():
        name = info.filename
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise UsageError(f"cannot unpack {z.filename}: member {name!r} would be extracted outside the bundle; "
                             "upload it as a file with --pack")
        mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix
        if stat.S_ISLNK(mode):
            links.append(info)
            continue
        target = z.extract(info, dest)
        if stat.S_ISREG(mode) and not info.is_dir():
            os.chmod(target, (mode & 0o777) | 0o600)  # as the 'data' filter: no setuid, the owner can read
    for info in links:
        path = os.path.join(dest, info.filename.rstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(z.read(info).decode("utf-8", "surrogateescape"), path)
    for info in links:
        link = os.readlink(os.path.join(dest, info.filename.rstrip("/")))
        if os.path.isabs(link) or leaves(dest, info.filename.rstrip("/")):
            raise UsageError(f"cannot unpack {z.filename}: link {info.filename!r} points outside the bundle "
                             f"(to {link!r}); upload it as a file with --pack")


def leaves(dest: str, name: str) -> bool:
    """Whether dest/name, once every link of the unpacked tree exists, resolves outside dest."""
    root, real = os.path.realpath(dest), os.path.realpath(os.path.join(dest, name))
    return not (real == root or real.startswith(root + os.sep))
