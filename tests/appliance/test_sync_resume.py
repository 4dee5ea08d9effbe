"""`ketang sync fetch` killed mid-download resumes from its resume data."""

from __future__ import annotations

import os
import re
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
         "--peer", f"127.0.0.1:{port}", "--resume-interval", "0.5", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_sigkill_then_restart_resumes_without_fetching_verified_pieces(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = publish_big(tmp_path, pair.private_path, lessons=8, size=400_000)
    manifest, _, _, torrent = verified(out, trusted)
    # What the device gets: the signed release and its torrent, no blobs.
    bundle = tmp_path / "drive"
    shutil.copytree(out / "KETANG" / "releases", bundle / "KETANG" / "releases")
    data = tmp_path / "device"
    config = write_config(tmp_path / "ketang.toml", data, trusted)

    seeder = seeding_session(out, torrent)
    handle = seeder.get_torrents()[0]
    handle.set_upload_limit(400_000)  # ~10 s for the whole release
    port = seeder.listen_port()

    proc = _start(config, bundle, port)
    resume = data / "sync/test-channel/1/resume.dat"
    deadline = time.monotonic() + 60
    have = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if resume.is_file():
            have = sum(lt.read_resume_data(resume.read_bytes()).have_pieces)
            if have >= 60:
                break
    assert proc.poll() is None, proc.stdout.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert have >= 60, "no resume data with verified pieces was written"
    assert Library(data).active_version("test-channel") is None

    handle.set_upload_limit(0)
    proc = _start(config, bundle, port)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert "Activated test-channel v1" in output
    downloaded = int(re.search(r"downloaded (\d+) bytes\n", output).group(1))
    total = sum(manifest.blobs().values())
    piece = lt.load_torrent_buffer(torrent).ti.piece_length()
    # The second run fetched at most what the first had not verified.
    assert downloaded <= total - have * piece + 2 * piece, output
    for sha in manifest.blobs():
        assert sha256_file(data / "blobs/sha256" / sha[:2] / sha) == sha
