"""`ketang sync fetch` killed mid-download resumes from its resume data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import libtorrent as lt
import pytest

from content_cache.blobstore import sha256_file
from content_cache.library import Library

from ..content_cache.test_transfer import publish_big, seeding_session, verified
from ..helpers import KETANG, write_config


def _start(config, bundle, port):
    return subprocess.Popen(
        [*KETANG, "--config", str(config), "sync", "fetch", str(bundle),
         "--peer", f"127.0.0.1:{port}", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _stored(data) -> dict[str, tuple[int, int]]:
    """Store blobs by name with (inode, mtime_ns): a rewritten blob changes them."""
    root = data / "blobs" / "sha256"
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.glob("*/*")} if root.is_dir() else {}


def _have(resume) -> int:
    return sum(lt.read_resume_data(resume.read_bytes()).have_pieces) if resume.is_file() else 0


@pytest.mark.slow
def test_sigkills_cost_no_verified_piece_and_rewrite_no_blob(tmp_path, publisher_key):
    """Three SIGKILLs mid-download (default resume saving: soon after pieces are verified):
    each run fetches at most what earlier runs had not verified, plus what was in flight,
    and no blob in the store is ever written again."""
    pair, trusted = publisher_key
    out = publish_big(tmp_path, pair.private_path, lessons=8, size=1_000_000)
    manifest, _, _, torrent = verified(out, trusted)
    # What the device gets: the signed release and its torrent, no blobs.
    bundle = tmp_path / "drive"
    shutil.copytree(out / "KETANG" / "releases", bundle / "KETANG" / "releases")
    data = tmp_path / "device"
    config = write_config(tmp_path / "ketang.toml", data, trusted)

    seeder = seeding_session(out, torrent)
    handle = seeder.get_torrents()[0]
    handle.set_upload_limit(500_000)  # ~16 s for the whole release
    port = seeder.listen_port()
    resume = data / "sync/test-channel/1/resume.dat"
    piece = lt.load_torrent_buffer(torrent).ti.piece_length()
    total = sum(manifest.blobs().values())

    stored: dict[str, tuple[int, int]] = {}
    for kill in range(3):
        proc = _start(config, bundle, port)
        deadline = time.monotonic() + 60
        # Kill once a quarter, a half, three quarters of the bytes were sent (so a
        # quarter, 4 s, is always left).
        while time.monotonic() < deadline and proc.poll() is None and \
                handle.status().total_payload_upload < total * (kill + 1) / 4:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        have = _have(resume)
        now = _stored(data)
        assert all(now[sha] == was for sha, was in stored.items()), "a store blob was rewritten"
        stored = now
        assert have * piece >= sum(manifest.blobs()[s] for s in stored) - piece * len(stored), \
            "resume data lost pieces of blobs already stored"
    assert Library(data).active_version("test-channel") is None

    handle.set_upload_limit(0)
    sent_before = handle.status().total_payload_upload
    proc = _start(config, bundle, port)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "Activated test-channel v1" in output
    # The last run fetched at most what the earlier ones had not verified.
    sent = handle.status().total_payload_upload - sent_before
    assert sent <= total - have * piece + 2 * piece, output
    now = _stored(data)
    assert all(now[sha] == was for sha, was in stored.items()), "a store blob was rewritten"
    for sha in manifest.blobs():
        assert sha256_file(data / "blobs/sha256" / sha[:2] / sha) == sha
