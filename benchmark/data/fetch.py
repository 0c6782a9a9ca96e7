"""Download a published dataset file: resume, checksum, atomic rename, clear offline errors.

``fetch_file(url, target)`` writes to ``target.part`` first and resumes it with an HTTP ``Range``
request when a previous download was interrupted. Only when the whole file is there and its size and
checksum (sha256 or md5, when the source publishes one) match does it rename ``.part`` to the target,
so a target path that exists is always a complete, verified file. A file that fails its checksum is
deleted: nothing is cached from a failed fetch.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download failed; the message names the URL and where to drop the file by hand."""


@dataclass(frozen=True)
class RemoteFile:
    """A published file: where it lives and what we know about it (``None`` = not published)."""

    url: str
    filename: str  # name under the data directory (the name users already have)
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    source: str = ""  # where the URL/checksum were read (file + commit)


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(
    path: Path, size: int | None = None, sha256: str | None = None, md5: str | None = None
) -> None:
    """Raise :class:`FetchError` if ``path`` does not have the expected size / digests."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        raise FetchError(f"{path}: size {actual} bytes, expected {size}")
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                raise FetchError(f"{path}: {algorithm} {got} does not match the published {expected}")


def _offline_message(url: str, target: Path, err: Exception) -> str:
    return (
        f"could not download {url} ({err}). If this machine is offline, download the file elsewhere and "
        f"put it at {target} (directory {target.parent})"
    )


def fetch_file(
    url: str,
    target: str | Path,
    size: int | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    timeout_s: float = 60.0,
    progress=None,
) -> Path:
    """Download ``url`` to ``target`` (resuming ``target.part``); return ``target``.

    An existing ``target`` is verified and kept. ``progress(done_bytes, total_bytes_or_None)`` is
    called after each chunk when given.
    """
    target = Path(target)
    if target.exists():
        verify_file(target, size, sha256, md5)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # a stale partial file from another version
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "admbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:  # the server ignored Range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length is not None else size
            with open(part, "ab" if have else "wb") as out:
                done = have
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have and (size is None or have == size):
            pass  # range not satisfiable: the partial file is already complete
        else:
            raise FetchError(_offline_message(url, target, err)) from err
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise FetchError(_offline_message(url, target, err)) from err
    try:
        verify_file(part, size, sha256, md5)
    except FetchError as err:
        part.unlink(missing_ok=True)  # a corrupt download must not be resumed or cached
        raise FetchError(f"downloaded {url} but the file is not the published one: {err}") from err
    os.replace(part, target)
    return target


def fetch_remote(remote: RemoteFile, directory: str | Path, progress=None) -> Path:
    return fetch_file(remote.url, Path(directory) / remote.filename, remote.size, remote.sha256, remote.md5,
                      progress=progress)

