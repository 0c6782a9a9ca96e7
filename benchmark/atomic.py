"""Atomic file publishing, the one way this project writes a result-bearing file.

The bytes go to a temp file with a unique name in the target's directory, are flushed to disk, get the
mode ``open()`` would give (0666 minus the umask; ``mkstemp`` makes 0600), and only then are renamed over
the target: a reader sees the old file or the whole new one, two writers never share a temp file, and a
failed write (a full disk, an exception) leaves no partial file. A kill between the write and the rename
can leave a hidden ``.<name>.<random>.tmp`` beside the target; :func:`remove_stale_temp_files` clears them
for a writer that holds the target's lock. Records, reports' files, checkpoints and data files use it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def default_mode() -> int:
    """A new file's mode as ``open()`` gives it: 0666 minus the process umask."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """A new folder's mode as ``mkdir()`` gives it: 0777 minus the process umask."""
    return 0o777 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a fresh temp file next to ``path``, fsync it, then rename it to ``path``.
    The temp file is removed on every failure path; errors propagate unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    published = False
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), default_mode())
        os.replace(tmp, path)
        published = True
    finally:
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def remove_stale_temp_files(path: str | Path) -> None:
    """Delete the temp files :func:`atomic_write` left for ``path`` when its process was killed; call it
    only while holding the lock every writer of ``path`` takes, so no live write is removed."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
