"""Uploading an archive as CodaLab does: one uploaded .zip/.tar.gz/.tgz/.tar.bz2 becomes a directory
bundle of its members, one .gz/.bz2 file its decompressed file, and the bundle's default name loses
the extension (`cl upload data.zip` -> bundle `data`); `--pack` keeps the archive as a file.
(CodaLab's zip_util: several paths are packed together and their archives stay files.)"""

import bz2
import gzip
import os
import shutil
import tarfile
import zipfile

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
    try:
        if ext in (".tar.gz", ".tgz", ".tar.bz2"):
            os.mkdir(dest)
            with tarfile.open(path, "r:gz" if ext != ".tar.bz2" else "r:bz2") as tar:
                tar.extractall(dest, filter="data")
        elif ext == ".zip":
            os.mkdir(dest)
            with zipfile.ZipFile(path) as z:
                z.extractall(dest)
        elif ext in (".gz", ".bz2"):
            with (gzip.open if ext == ".gz" else bz2.open)(path, "rb") as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            raise UsageError(f"{path} is not an archive CodaLab unpacks ({', '.join(EXTENSIONS)})")
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError) as e:  # not an archive after all
        raise UsageError(f"cannot unpack {path}: {e}; upload it as a file with --pack") from None
    except OSError as e:  # a full disk, or bz2's "Invalid data stream"
        raise CodaliteError(f"cannot unpack {path}: {e.strerror or e}") from None
    return dest
