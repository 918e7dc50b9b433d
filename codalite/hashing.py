"""Content hashes of bundle trees (BLAKE3), and cheap stat signatures that detect writes.

A tree's hash covers names, file contents, the executable bit and symlink targets, so two
uploads of the same files hash the same wherever they came from. A stat signature covers every
entry's size, mtime and ctime: writing (or even chmod/touch) changes ctime, which no user can set
back, so comparing signatures detects that a run changed a dependency, even as root.

Nothing here follows a symlink: names are hashed as their bytes (os.fsencode, so a name that is
not UTF-8 hashes too and valid UTF-8 names hash as they always did), and chmod never goes
through a link.
"""

import os
import stat

import blake3

from .errors import UsageError

CHUNK = 1 << 20
MMAP_MIN = 8 << 20  # above this, hash with mmap and all cores


def write_atomic(path, text, private=False):
    """Write a file whole or not at all: a reader, or a crash, never meets half of it. The temporary
    name is this process's, so two writers never share one; private: readable by the owner only."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    try:
        if private:
            os.fchmod(fd, 0o600)  # a stale file of this name may have had other bits
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _file_digest(path, size):
    if size >= MMAP_MIN:
        return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).hexdigest()
    h = blake3.blake3()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _entry_line(name, kind, digest):
    return os.fsencode(name) + f"\0{kind}\0{digest}\n".encode()


def _link_hash(target):
    return "b3:" + blake3.blake3(b"link:" + os.fsencode(target)).hexdigest()


def hash_path(path):
    """Content hash of a file or directory tree ('b3:' + hex). Symlinks hash as their target text."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return _link_hash(os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        kind = "x" if st.st_mode & 0o100 else "f"
        return f"b3:{kind}" + _file_digest(path, st.st_size)
    if not stat.S_ISDIR(st.st_mode):  # a FIFO (a run may make one): never open it, it would block
        return "b3:" + blake3.blake3(f"special:{stat.S_IFMT(st.st_mode)}".encode()).hexdigest()
    h = blake3.blake3(b"dir:")
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        h.update(_entry_line(entry.name, "", hash_path(entry.path)))
    return "b3:" + h.hexdigest()


class NotRegular(OSError):
    """A path that is not a regular file (a FIFO, socket, device or directory)."""


def open_regular(path):
    """path opened for reading without blocking, checked once open: a FIFO a run made, or swapped in
    after a check, would hang the reader. NotRegular unless it is a regular file."""
    f = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise NotRegular(path)
    return f


def shown(name):
    """A file name as text that can be printed (bytes that are not UTF-8 as \\xNN)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _inside(rel_dir, target, link_path, root):
    """Whether a link resolves inside the tree: relative, never above the root when read as text
    (the copy's root has another name, so '../<root>/x' would dangle), and inside by realpath."""
    if os.path.isabs(target):
        return False
    norm = os.path.normpath(os.path.join(rel_dir, target))
    if norm == ".." or norm.startswith("../"):
        return False
    real = os.path.realpath(link_path)
    return real == root or real.startswith(root + os.sep)


def copy_and_hash(src, dst, follow_symlinks=False, refuse=()):
    """Copy a file or tree from src to dst and hash it in the same pass. Returns (hash, size).

    One rule for symlinks: a link that resolves inside the upload is kept as a link; one that
    leaves it (absolute, through '..', or through another link) is refused unless follow_symlinks
    copies what it points to. A top-level link is uploaded as its target only with follow_symlinks.
    Only regular files, directories and symlinks are uploaded: a FIFO, socket or device is refused
    (never opened: a FIFO would block). refuse: (st_dev, st_ino) of directories that must not be
    uploaded (the store). Errors are UsageError: they are about what the user asked to upload.
    """
    top = os.path.basename(os.path.abspath(src)) or src
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if not follow_symlinks:
            raise UsageError(f"{shown(src)!r} is a symlink (to {shown(os.readlink(src))!r}); upload its target, "
                             "or pass --follow-symlinks (-L) to upload what it points to")
        if not os.path.exists(src):
            raise UsageError(f"symlink {shown(src)!r} is broken; fix or remove it before uploading")
        st = os.stat(src)
    root = os.path.realpath(src)
    refuse = set(refuse)
    ancestors = set()  # directories on the path being copied: a followed link back up would never end

    def copy(s, d, rel, st):
        """Copy s (at rel inside the upload, '' for its root; st: its stat, links resolved) to d."""
        shown_rel = shown(f"{top}/{rel}" if rel else top)
        if stat.S_ISDIR(st.st_mode):
            ident = (st.st_dev, st.st_ino)
            if ident in refuse:
                raise UsageError(f"{shown_rel!r} is or holds the codalite store; upload the files you mean, not the store")
            if ident in ancestors:
                raise UsageError(f"{shown_rel!r} leads back into a directory that holds it (a symlink loop)")
            ancestors.add(ident)
            os.mkdir(d)
            h, total = blake3.blake3(b"dir:"), 0
            for entry in sorted(os.scandir(s), key=lambda e: e.name):
                ch, size = child(entry.path, os.path.join(d, entry.name), f"{rel}/{entry.name}" if rel else entry.name)
                h.update(_entry_line(entry.name, "", ch))
                total += size
            ancestors.discard(ident)
            return "b3:" + h.hexdigest(), total
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{shown_rel!r} is not a regular file or directory (a FIFO, socket or device); "
                             "it cannot be uploaded")
        try:  # the file may have been swapped for a FIFO since lstat
            fin = open_regular(s)
        except NotRegular:
            raise UsageError(f"{shown_rel!r} is not a regular file; it cannot be uploaded") from None
        with fin:
            h = blake3.blake3()
            with open(d, "wb") as fout:
                while chunk := fin.read(CHUNK):
                    h.update(chunk)
                    fout.write(chunk)
        os.chmod(d, st.st_mode & 0o777)
        kind = "x" if st.st_mode & 0o100 else "f"
        return f"b3:{kind}" + h.hexdigest(), st.st_size

    def child(s, d, rel):
        st = os.lstat(s)
        if not stat.S_ISLNK(st.st_mode):
            return copy(s, d, rel, st)
        target = os.readlink(s)
        if _inside(os.path.dirname(rel), target, s, root):
            os.symlink(target, d)
            return _link_hash(target), 0
        if not follow_symlinks:
            raise UsageError(
                f"symlink {shown(top + '/' + rel)!r} points outside the upload (to {shown(target)!r}); "
                "upload its target instead, or pass --follow-symlinks (-L) to copy what it points to")
        if not os.path.exists(s):
            raise UsageError(f"symlink {shown(top + '/' + rel)!r} is broken; fix or remove it before uploading")
        return copy(s, d, rel, os.stat(s))

    return copy(src, dst, "", st)


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
        h.update(os.fsencode(rel) + f"\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode())
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(p)):
                walk(os.path.join(p, name), f"{rel}/{name}")

    walk(path, ".")
    return h.hexdigest()


def set_read_only(path, writable=False, dirs_only=False):
    """Drop (or restore) write bits on a whole tree (see _read_only_bits for which).
    Never through a symlink: a bundle's link must not make its target read-only. dirs_only: only
    directories (deleting a file needs its directory's write bit, not its own; files may be hard
    links shared with other bundles, which must stay read-only)."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        if writable:  # before descending: a read-only directory's entries could not be changed
            _chmod_w(path, st, True)
        for entry in os.scandir(path):
            if not entry.is_symlink() and (entry.is_dir(follow_symlinks=False) or not dirs_only):
                set_read_only(entry.path, writable, dirs_only)
        if not writable:
            _chmod_w(path, st, False)
    elif not dirs_only:
        _chmod_w(path, st, writable)


def chmod_w(path, writable):
    """Drop (or restore) the write bits of one entry (not a link's target, not what it holds)."""
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode):
        _chmod_w(path, st, writable)


def _read_only_bits():
    """The write bits a finished bundle drops. Where runs are sandboxed, read-only mounts protect
    bundles from runs and the owner keeps its bit: a run's `cp -r dep mine` copies modes and must
    get a copy it can write (CodaLab's `cp -r src build && cd build && make`). Unconfined, modes are
    what stops an ordinary user's run from writing into its dependencies, so all go."""
    from . import sandbox
    return 0o022 if sandbox.problem() is None else 0o222


def _chmod_w(p, st, writable):
    mode = st.st_mode & 0o7777
    new = (mode | 0o200) if writable else (mode & ~_read_only_bits())
    if new == mode:
        return
    try:
        os.chmod(p, new, follow_symlinks=False)  # p was not a link at lstat; never follow one now
    except NotImplementedError:  # raised for a link (or by a C library without no-follow chmod)
        if not stat.S_ISLNK(os.lstat(p).st_mode):
            os.chmod(p, new)
