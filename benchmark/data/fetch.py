"""Download a published dataset file: resume, checksum, atomic rename, clear offline errors.

``fetch_file(url, target)`` writes to ``target.part`` first and resumes it with an HTTP ``Range``
request when a previous download was interrupted. Only when the whole file is there and its size and
checksum (sha256 or md5, when the source publishes one) match does it rename ``.part`` to the target,
so a target path that exists is always a complete, verified file. The bytes received are counted
against ``Content-Length`` (and ``Content-Range`` on a resumed ``206``): a connection that closes
early keeps its ``.part`` and raises :class:`FetchError` saying that rerunning resumes. A complete
file that fails its size or checksum is deleted: nothing is cached from a failed fetch.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
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


def mirrored(remote: RemoteFile, published_base: str, env_var: str) -> RemoteFile:
    """``remote`` with its ``published_base`` replaced by ``$env_var`` when that is set (a mirror holding
    the same folder tree, e.g. when the published host is down); names, sizes and checksums stay."""
    base = os.environ.get(env_var, "").strip()
    if not base or not remote.url.startswith(published_base):
        return remote
    url = base.rstrip("/") + "/" + remote.url.removeprefix(published_base)
    return replace(remote, url=url, source=f"{remote.source}; fetched from ${env_var}={base}")


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


class IncompleteTransfer(Exception):
    """The connection ended before the announced number of bytes arrived."""


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(first byte, total)`` from ``Content-Range: bytes FIRST-LAST/TOTAL`` (or ``bytes */TOTAL``);
    ``None`` for what the header does not give."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header.removeprefix("bytes ").partition("/")
    first = span.split("-")[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


def _resume_hint(part: Path) -> str:
    return f"the partial file {part} is kept: run the same command again to resume"


def _receive(resp, part: Path, have: int, size: int | None, progress) -> tuple[int, bool]:
    """Append the response body to ``part`` (which holds ``have`` bytes); return the bytes now in it
    and whether the server announced where the body ends (so reaching it means the file is whole).

    The body must reach the end the server announced (``Content-Length``, ``Content-Range``): a
    connection that closes early reads like end-of-file, so the count is the only way to tell.
    """
    length = resp.headers.get("Content-Length")
    end = have + int(length) if length is not None and length.isdigit() else None
    total = _content_range(resp.headers.get("Content-Range"))[1] if have else end
    done, expected = have, end or total or size or "?"
    try:
        with open(part, "ab" if have else "wb") as out:
            while True:
                try:
                    chunk = resp.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:  # reset, timeout, IncompleteRead
                    raise IncompleteTransfer(f"{done} of {expected} bytes ({err})") from err
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total or size)
    except OSError as err:  # writing here, not receiving: a full disk, a read-only directory
        raise FetchError(f"could not write {part}: {err.strerror or err}; {_resume_hint(part)}") from err
    if end is not None and done < end:
        raise IncompleteTransfer(f"{done} of {end} bytes: the connection closed early")
    return done, end is not None


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
    called after each chunk when given. A transfer that ends short of the announced length (or of
    ``size``) keeps its ``.part`` and raises :class:`FetchError`; calling again resumes it. A complete
    download that fails its size or checksum is deleted.
    """
    target = Path(target)
    if target.exists():
        try:
            verify_file(target, size, sha256, md5)
        except FetchError as err:
            raise FetchError(f"{err}; delete it to download it again") from err
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(f"could not create the directory {target.parent}: {err.strerror or err}") from err
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # a stale partial file from another version
        part.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"User-Agent": "admbench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    resume = _resume_hint(part)
    whole = False  # the server said where the file ends and the bytes reached it
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            status = getattr(resp, "status", 200)
            if have and status == 206:
                if _content_range(resp.headers.get("Content-Range"))[0] != have:
                    raise FetchError(f"{url}: asked for bytes from {have}, the server answered "
                                     f"Content-Range {resp.headers.get('Content-Range')!r}; {resume}")
            elif have:  # the server ignored Range: start over
                have = 0
            have, whole = _receive(resp, part, have, size, progress)
    except IncompleteTransfer as err:
        raise FetchError(f"download of {url} incomplete ({err}); {resume}") from err
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise FetchError(_offline_message(url, target, err)) from err
        # Range not satisfiable: the partial file already reaches (or passes) the end of the remote file
        total = _content_range(err.headers.get("Content-Range"))[1]
        if total is not None and total != have:
            part.unlink()  # longer than the remote file: not a prefix of it
            return fetch_file(url, target, size, sha256, md5, timeout_s, progress)
        whole = True
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        message = _offline_message(url, target, err)
        if part.exists() and part.stat().st_size:
            message += f"; {resume}"
        raise FetchError(message) from err
    if not whole and size is not None and have < size:  # no length announced, the connection closed early
        raise FetchError(f"download of {url} incomplete ({have} of {size} bytes); {resume}")
    try:
        verify_file(part, size, sha256, md5)
    except FetchError as err:
        part.unlink(missing_ok=True)  # complete but not the published file: corrupt, never resumed or cached
        raise FetchError(f"downloaded {url} but the file is not the published one: {err}") from err
    os.replace(part, target)
    return target


def fetch_remote(remote: RemoteFile, directory: str | Path, progress=None) -> Path:
    return fetch_file(remote.url, Path(directory) / remote.filename, remote.size, remote.sha256, remote.md5,
                      progress=progress)

