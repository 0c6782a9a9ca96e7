"""fetch_file against a local HTTP server: download, resume with Range, checksum failure, offline."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from benchmark.data import d4rl, neorl
from benchmark.data.fetch import FetchError, RemoteFile, fetch_file
from benchmark.data_cli import main as data_main


class FileServer:
    """Serves ``files[path] = bytes`` on 127.0.0.1 with optional Range support; records requests.

    ``cut``: how many of the next responses announce their full Content-Length but send only the first
    half of the body and close the connection; ``announce_length=False`` sends no Content-Length.
    """

    def __init__(self, files: dict[str, bytes], honour_range: bool = True, cut: int = 0,
                 announce_length: bool = True):
        self.files, self.honour_range, self.requests = files, honour_range, []
        self.cut, self.announce_length = cut, announce_length
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                if rng and server.honour_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                    body = body[start:]
                else:
                    self.send_response(200)
                if server.announce_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut > 0:
                    server.cut -= 1
                    body = body[: len(body) // 2]
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


PAYLOAD = np.random.default_rng(0).bytes(300_000)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_size_and_checksums(tmp_path):
    with FileServer({"/a.bin": PAYLOAD}) as srv:
        out = fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(PAYLOAD), sha256=SHA, md5=MD5)
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()


def test_resume_sends_range_and_completes_partial_file(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:123_456])
    with FileServer({"/a.bin": PAYLOAD}) as srv:
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)
    assert srv.requests == [("/a.bin", "bytes=123456-")]
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(b"garbage" * 10)
    with FileServer({"/a.bin": PAYLOAD}, honour_range=False) as srv:
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_complete_partial_file_and_416(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    with FileServer({"/a.bin": PAYLOAD}) as srv:
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(PAYLOAD), sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_checksum_failure_caches_nothing(tmp_path):
    with FileServer({"/a.bin": PAYLOAD[:-1] + b"x"}) as srv:
        with pytest.raises(FetchError, match="sha256"):
            fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)
        with pytest.raises(FetchError, match="md5"):
            fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", md5=MD5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("checks", [{}, {"size": len(PAYLOAD)}, {"sha256": SHA}, {"md5": MD5}])
def test_short_transfer_is_never_installed_keeps_its_part_and_resumes(tmp_path, checks):
    target, part = tmp_path / "a.bin", tmp_path / "a.bin.part"
    with FileServer({"/a.bin": PAYLOAD}, cut=1) as srv:
        with pytest.raises(FetchError) as info:
            fetch_file(srv.url + "/a.bin", target, **checks)
        assert not target.exists() and part.read_bytes() == PAYLOAD[:150_000]
        assert str(info.value) == (
            f"download of {srv.url}/a.bin incomplete (150000 of 300000 bytes: the connection closed early); "
            f"the partial file {part} is kept: run the same command again to resume")
        assert fetch_file(srv.url + "/a.bin", target, **checks) == target  # the same call again
    assert srv.requests == [("/a.bin", None), ("/a.bin", "bytes=150000-")]
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_short_resumed_transfer_checks_content_range_and_resumes_again(tmp_path):
    target, part = tmp_path / "a.bin", tmp_path / "a.bin.part"
    part.write_bytes(PAYLOAD[:100_000])
    with FileServer({"/a.bin": PAYLOAD}, cut=1) as srv:
        with pytest.raises(FetchError, match=r"incomplete \(200000 of 300000 bytes"):
            fetch_file(srv.url + "/a.bin", target, sha256=SHA)  # the 206 for bytes 100000- is cut short
        assert part.read_bytes() == PAYLOAD[:200_000]
        fetch_file(srv.url + "/a.bin", target, sha256=SHA)
    assert [r[1] for r in srv.requests] == ["bytes=100000-", "bytes=200000-"]
    assert target.read_bytes() == PAYLOAD and not part.exists()


def test_short_transfer_without_content_length_is_caught_by_the_published_size(tmp_path):
    part = tmp_path / "a.bin.part"
    with FileServer({"/a.bin": PAYLOAD}, cut=1, announce_length=False) as srv:
        with pytest.raises(FetchError, match="incomplete .150000 of 300000 bytes.; the partial file"):
            fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(PAYLOAD))
        assert part.read_bytes() == PAYLOAD[:150_000]
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(PAYLOAD), sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_complete_download_of_the_wrong_size_is_deleted_not_resumed(tmp_path):
    with FileServer({"/a.bin": PAYLOAD[:-10]}) as srv:  # whole per Content-Length, not the published file
        with pytest.raises(FetchError, match="not the published one: .* size 299990 bytes, expected 300000"):
            fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(PAYLOAD))
    assert list(tmp_path.iterdir()) == []


def test_partial_file_longer_than_the_remote_file_is_restarted(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD + b"extra")
    with FileServer({"/a.bin": PAYLOAD}) as srv:  # 416 with Content-Range: bytes */300000
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin")
    assert [r[1] for r in srv.requests] == ["bytes=300005-", None]
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_existing_target_is_verified_not_redownloaded(tmp_path):
    (tmp_path / "a.bin").write_bytes(PAYLOAD)
    with FileServer({}) as srv:
        fetch_file(srv.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)
        assert srv.requests == []
    (tmp_path / "a.bin").write_bytes(b"other")
    with pytest.raises(FetchError, match="sha256"):
        fetch_file("http://127.0.0.1:9/a.bin", tmp_path / "a.bin", sha256=SHA)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_error_names_url_and_directory(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/hopper_medium-v2.hdf5"
    with pytest.raises(FetchError) as info:
        fetch_file(url, tmp_path / "sub" / "hopper_medium-v2.hdf5", timeout_s=5)
    assert url in str(info.value) and str(tmp_path / "sub") in str(info.value)
    assert not (tmp_path / "sub" / "hopper_medium-v2.hdf5").exists()


def test_http_404_is_a_fetch_error(tmp_path):
    with FileServer({}) as srv, pytest.raises(FetchError, match="404"):
        fetch_file(srv.url + "/missing.hdf5", tmp_path / "missing.hdf5")


def test_url_tables_follow_their_sources():
    # d4rl/infos.py: gym_mujoco_v2/<env>_<dset with _>-v2.hdf5
    assert d4rl.D4RL_FILES["hopper-medium-replay-v2"].url == (
        "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/hopper_medium_replay-v2.hdf5"
    )
    assert {f"{e}-{lv}-v2" for e in ("hopper", "halfcheetah", "walker2d")
            for lv in ("random", "medium", "medium-replay", "medium-expert")} <= set(d4rl.D4RL_FILES)
    assert all(f.sha256 is None and f.size is None for f in d4rl.D4RL_FILES.values())
    # neorl/data_map.json
    remote = neorl.NEORL_FILES["Walker2d-v3-medium"]
    assert remote.url == "http://datasets.polixir.site/v2/Walker2d-v3/Walker2d-v3-medium-1000-train-noise.npz"
    assert remote.md5 == "a93baf6c53b578cd8c2286ccc1f837d9" and len(neorl.NEORL_FILES) == 9


def _hopper_hdf5_bytes(tmp_path) -> bytes:
    import h5py

    rng = np.random.default_rng(0)
    n = 40
    p = tmp_path / "src.hdf5"
    with h5py.File(p, "w") as f:
        f["observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["next_observations"] = rng.normal(size=(n, 11)).astype(np.float32)
        f["actions"] = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = (np.arange(n) % 20) == 19
    return p.read_bytes()


def test_cli_fetch_d4rl_end_to_end_and_unreadable_file_not_kept(tmp_path, monkeypatch, capsys):
    good = _hopper_hdf5_bytes(tmp_path)
    with FileServer({"/hopper_medium-v2.hdf5": good, "/hopper_random-v2.hdf5": b"<html>moved</html>"}) as srv:
        for stem in ("hopper-medium-v2", "hopper-random-v2"):
            old = d4rl.D4RL_FILES[stem]
            monkeypatch.setitem(d4rl.D4RL_FILES, stem, RemoteFile(srv.url + "/" + old.filename, old.filename))
        target = tmp_path / "d4rl"
        assert data_main(["data", "fetch", "d4rl/hopper-medium-v2", "--dir", str(target)]) == 0
        assert '"transitions": 40' in capsys.readouterr().out
        assert (target / "hopper_medium-v2.hdf5").read_bytes() == good
        assert data_main(["data", "fetch", "d4rl/hopper-random-v2", "--dir", str(target)]) == 2
        assert "not a readable HDF5" in capsys.readouterr().err
        assert not (target / "hopper_random-v2.hdf5").exists()


def test_cli_fetch_cut_short_is_one_line_and_the_rerun_resumes(tmp_path, monkeypatch, capsys):
    good = _hopper_hdf5_bytes(tmp_path)
    target = tmp_path / "d4rl"
    with FileServer({"/hopper_medium-v2.hdf5": good}, cut=1) as srv:
        old = d4rl.D4RL_FILES["hopper-medium-v2"]
        monkeypatch.setitem(d4rl.D4RL_FILES, "hopper-medium-v2",
                            RemoteFile(srv.url + "/" + old.filename, old.filename))
        argv = ["data", "fetch", "d4rl/hopper-medium-v2", "--dir", str(target)]
        assert data_main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2 and err[1].startswith(f"admbench: error: download of {srv.url}/hopper_medium-v2")
        part = target / "hopper_medium-v2.hdf5.part"
        assert err[1].endswith(f"incomplete ({len(good) // 2} of {len(good)} bytes: the connection closed "
                               f"early); the partial file {part} is kept: run the same command again "
                               "to resume")
        assert not (target / "hopper_medium-v2.hdf5").exists()
        assert data_main(argv) == 0
    assert (target / "hopper_medium-v2.hdf5").read_bytes() == good
    assert srv.requests[1] == ("/hopper_medium-v2.hdf5", f"bytes={len(good) // 2}-")


def test_mirror_env_vars_replace_only_the_host_and_keep_the_checksums(tmp_path, monkeypatch, capsys):
    good = _hopper_hdf5_bytes(tmp_path)
    neorl_name = "Hopper-v3-low-1000-train-noise.npz"
    files = {"/mirror/d4rl/hopper_medium-v2.hdf5": good, f"/mirror/neorl/Hopper-v3/{neorl_name}": b"not it"}
    with FileServer(files) as srv:
        monkeypatch.setenv("ADMBENCH_D4RL_URL", srv.url + "/mirror/d4rl/")
        monkeypatch.setenv("ADMBENCH_NEORL_URL", srv.url + "/mirror/neorl")
        assert data_main(["data", "fetch", "d4rl/hopper-medium-v2", "--dir", str(tmp_path / "d4rl")]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["source"].endswith(f"; fetched from $ADMBENCH_D4RL_URL={srv.url}/mirror/d4rl/")
        assert (tmp_path / "d4rl" / "hopper_medium-v2.hdf5").read_bytes() == good
        assert data_main(["data", "fetch", "neorl/Hopper-v3-low", "--dir", str(tmp_path / "neorl")]) == 2
        assert "does not match the published 95a0c17014ba9fc45e739c820f3910ef" in capsys.readouterr().err
    assert [path for path, _ in srv.requests] == list(files)
    assert list((tmp_path / "neorl").iterdir()) == []
