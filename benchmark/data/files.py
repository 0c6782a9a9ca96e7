"""Publishing data files safely: unique temp files, atomic rename, one builder at a time, clear I/O errors.

Every file the data layer writes (cached datasets, their manifests, behaviour-policy checkpoints and
snapshots) goes through :func:`atomic_write`: the bytes go to a temp file with a unique name in the
target's directory, are flushed to disk, and only then renamed over the target, so a reader sees the old
file or the whole new one, two writers never share a temp file, and a failed write (a full disk, a
kill) leaves no partial file. :func:`exclusive_lock` serialises build-and-publish between processes.
An ``OSError`` on the way becomes a :class:`DatasetError` that names the path (one-line CLI error).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from benchmark.data.dataset import DatasetError


def io_error(path: Path, action: str, err: OSError) -> DatasetError:
    """``err`` as a user-facing error naming ``path``: ``could not write X: No space left on device``."""
    return DatasetError(f"could not {action} {path}: {err.strerror or err}")


def _default_mode() -> int:
    """0666 minus the umask: what ``open()`` would give (``mkstemp`` creates files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a fresh temp file next to ``path``, fsync it, then rename it to ``path``.

    The temp file is removed on every failure path; an ``OSError`` is re-raised as
    :class:`DatasetError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise io_error(path, "write", err) from err
    published = False
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _default_mode())
        os.replace(tmp, path)
        published = True
    except OSError as err:
        raise io_error(path, "write", err) from err
    finally:
        if not published:  # a partial or unrenamed temp file never survives a failure
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def remove_stale_temp_files(path: str | Path) -> None:
    """Delete the temp files :func:`atomic_write` left for ``path`` when its process was killed; call it
    only while holding the lock every writer of ``path`` takes, so no live write is removed."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the ``with`` block.

    The lock file is left in place: deleting it while another process waits on it would let a third
    process lock a new file with the same name. The kernel releases the lock if the holder dies.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise io_error(path, "create the lock file", err) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
