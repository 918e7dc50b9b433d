"""Content hashes of bundle trees (BLAKE3), and cheap stat signatures that detect writes.

A tree's hash covers names, file contents, the executable bit and symlink targets, so two
uploads of the same files hash the same wherever they came from. A stat signature covers every
entry's size, mtime and ctime: writing (or even chmod/touch) changes ctime, which no user can set
back, so comparing signatures detects that a run changed a dependency, even as root.
"""

import os
import stat

import blake3

from .errors import CodaliteError

CHUNK = 1 << 20
MMAP_MIN = 8 << 20  # above this, hash with mmap and all cores


def _file_digest(path, size):
    if size >= MMAP_MIN:
        return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).hexdigest()
    h = blake3.blake3()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _entry_line(name, kind, digest):
    return f"{name}\0{kind}\0{digest}\n".encode()


def hash_path(path):
    """Content hash of a file or directory tree ('b3:' + hex). Symlinks hash as their target text."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "b3:" + blake3.blake3(b"link:" + os.readlink(path).encode()).hexdigest()
    if stat.S_ISREG(st.st_mode):
        kind = "x" if st.st_mode & 0o100 else "f"
        return f"b3:{kind}" + _file_digest(path, st.st_size)
    h = blake3.blake3(b"dir:")
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        h.update(_entry_line(entry.name, "", hash_path(entry.path)))
    return "b3:" + h.hexdigest()


def copy_and_hash(src, dst, follow_symlinks=False):
    """Copy a file or tree from src to dst and hash it in the same pass. Returns (hash, size).

    Symlinks are kept as links when they point inside the upload; a link that leaves it (absolute
    or through '..') is an error unless follow_symlinks copies what it points to.
    """
    root = os.path.realpath(src)

    def inside(link_path):
        real = os.path.realpath(link_path)
        return real == root or real.startswith(root + os.sep)

    def copy(s, d, rel):
        st = os.lstat(s)
        if stat.S_ISLNK(st.st_mode):
            if not follow_symlinks:
                if not inside(s) or os.path.isabs(os.readlink(s)):
                    raise CodaliteError(
                        f"symlink {rel!r} points outside the upload (to {os.readlink(s)!r}); "
                        "upload its target instead, or pass --follow-symlinks to copy what it points to"
                    )
                os.symlink(os.readlink(s), d)
                return "b3:" + blake3.blake3(b"link:" + os.readlink(s).encode()).hexdigest(), 0
            if not os.path.exists(s):
                raise CodaliteError(f"symlink {rel!r} is broken; fix or remove it before uploading")
            st = os.stat(s)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(d)
            h, total = blake3.blake3(b"dir:"), 0
            for entry in sorted(os.scandir(s), key=lambda e: e.name):
                ch, size = copy(entry.path, os.path.join(d, entry.name), f"{rel}/{entry.name}")
                h.update(_entry_line(entry.name, "", ch))
                total += size
            return "b3:" + h.hexdigest(), total
        if not stat.S_ISREG(st.st_mode):
            raise CodaliteError(f"{rel!r} is not a regular file or directory; it cannot be uploaded")
        h = blake3.blake3()
        with open(s, "rb") as fin, open(d, "wb") as fout:
            while chunk := fin.read(CHUNK):
                h.update(chunk)
                fout.write(chunk)
        os.chmod(d, st.st_mode & 0o777)
        kind = "x" if st.st_mode & 0o100 else "f"
        return f"b3:{kind}" + h.hexdigest(), st.st_size

    return copy(src, dst, os.path.basename(src))


def tree_size(path):
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    return sum(tree_size(e.path) for e in os.scandir(path))


def stat_signature(path):
    """A hash of every entry's (path, mode, size, mtime, ctime): changes on any write under path."""
    h = blake3.blake3()

    def walk(p, rel):
        st = os.lstat(p)
        h.update(f"{rel}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(p)):
                walk(os.path.join(p, name), f"{rel}/{name}")

    walk(path, ".")
    return h.hexdigest()


def set_read_only(path, writable=False):
    """Drop (or restore) write bits on a whole tree, so non-root runs cannot write into bundles."""
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                _chmod_w(p, writable)
        _chmod_w(dirpath, writable)
    if not os.path.isdir(path) and not os.path.islink(path):
        _chmod_w(path, writable)


def _chmod_w(p, writable):
    mode = os.lstat(p).st_mode & 0o7777
    os.chmod(p, (mode | 0o200) if writable else (mode & ~0o222))
