"""Publishing data files safely: unique temp files, atomic rename, one builder at a time, clear I/O errors.

Every file the data layer writes (cached datasets, their manifests, behaviour-policy checkpoints and
snapshots) goes through :func:`atomic_write` (:mod:`benchmark.atomic`: unique temp file, fsync, rename),
so a reader sees the old file or the whole new one, two writers never share a temp file, and a failed
write (a full disk, a kill) leaves no partial file. :func:`exclusive_lock` serialises build-and-publish
between processes.
An ``OSError`` on the way becomes a :class:`DatasetError` that names the path (one-line CLI error).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from benchmark import atomic
from benchmark.rl.dataset import DatasetError


def io_error(path: Path, action: str, err: OSError) -> DatasetError:
    """``err`` as a user-facing error naming ``path``: ``could not write X: No space left on device``."""
    return DatasetError(f"could not {action} {path}: {err.strerror or err}")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """:func:`benchmark.atomic.atomic_write`, with an ``OSError`` re-raised as :class:`DatasetError` naming
    ``path`` (one-line CLI error)."""
    try:
        return atomic.atomic_write(path, write)
    except OSError as err:
        raise io_error(Path(path), "write", err) from err


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


remove_stale_temp_files = atomic.remove_stale_temp_files


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
