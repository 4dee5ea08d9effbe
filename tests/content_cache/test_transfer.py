"""Fetching a release's missing blobs with real libtorrent sessions on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import libtorrent as lt
import pytest

from content_cache.blobstore import blob_relpath, sha256_file
from content_cache.bundle import bundle_root, find_releases
from content_cache.importer import verify_release
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish
from content_cache.transfer import ReleaseTransfer, TransferError, make_session

from ..helpers import make_source, snapshot
from ..support.webseed import web_seed


def publish_big(tmp_path: Path, key: Path, lessons: int = 6, web_seeds=(), size=200_000):
    """Publish a release whose videos are ``size`` random bytes each."""
    src = make_source(tmp_path / "src", lessons=lessons)
    for video in (src / "media").glob("*.mp4"):
        video.write_bytes(os.urandom(size))
    out = tmp_path / "out"
    publish(src, "test-channel", 1, key, out, web_seeds=web_seeds)
    return out


def verified(out: Path, trusted: Path):
    found = find_releases(bundle_root(out))[0]
    manifest, data, sig, _ = verify_release(found, load_trusted_keys(trusted))
    torrent = found.manifest_path.with_name("release.torrent").read_bytes()
    return manifest, data, sig, torrent


def seeding_session(out: Path, torrent: bytes) -> lt.session:
    """A session seeding the published bundle ``out`` (which holds KETANG/)."""
    ses = make_session()
    atp = lt.load_torrent_buffer(torrent)
    atp.url_seeds = []
    atp.save_path = str(out)
    ses.add_torrent(atp)
    return ses


def test_device_gets_exactly_the_missing_blobs_from_a_peer(tmp_path, publisher_key):
    pair, trusted = publisher_key
    out = publish_big(tmp_path, pair.private_path)
    manifest, data, sig, torrent = verified(out, trusted)
    blobs = sorted(manifest.blobs())
    held, missing = blobs[::2], blobs[1::2]
    lib = Library(tmp_path / "device")
    for sha in held:
        lib.store.add_file(out / "KETANG" / blob_relpath(sha), sha)
    seeder = seeding_session(out, torrent)
    device = make_session()
    transfer = ReleaseTransfer(device, lib, manifest, data, sig, torrent,
                               peers=[("127.0.0.1", seeder.listen_port())])
    assert sorted(transfer.status.needed) == missing
    status = transfer.run(timeout=60)
    assert sorted(status.fetched) == missing
    assert status.activated and lib.active_version("test-channel") == 1
    for sha in blobs:
        assert sha256_file(lib.store.path_for(sha)) == sha
    # Only the missing bytes (plus at most a boundary piece at each end of each file).
    sizes = manifest.blobs()
    missing_bytes = sum(sizes[s] for s in missing)
    assert missing_bytes <= status.payload_downloaded
    assert status.payload_downloaded <= missing_bytes + 2 * 16384 * len(missing)
    assert status.payload_downloaded < sum(sizes.values()) - sum(sizes[s] for s in held) / 2
    transfer.close()
    assert (lib.data_dir / "sync/test-channel/1/resume.dat").is_file()


def test_device_downloads_from_a_web_seed(tmp_path, publisher_key):
    pair, trusted = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror) as (url, requests):
        out = publish_big(tmp_path, pair.private_path, lessons=3, web_seeds=[url])
        os.rename(out / "KETANG", mirror / "KETANG")
        manifest, data, sig, torrent = verified(mirror, trusted)
        lib = Library(tmp_path / "device")
        status = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent).run(60)
    assert sorted(status.fetched) == sorted(manifest.blobs())
    assert status.activated
    assert any("/KETANG/blobs/sha256/" in r for r in requests)


@pytest.mark.slow
def test_corrupt_web_seed_stores_nothing_and_says_why(tmp_path, publisher_key):
    pair, trusted = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror, corrupt=True) as (url, _):
        out = publish_big(tmp_path, pair.private_path, lessons=2, web_seeds=[url])
        os.rename(out / "KETANG", mirror / "KETANG")
        manifest, data, sig, torrent = verified(mirror, trusted)
        lib = Library(tmp_path / "device")
        lib.data_dir.mkdir()
        before = snapshot(lib.data_dir / "blobs")
        transfer = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent)
        with pytest.raises(TransferError, match="failed their hash check"):
            transfer.run(timeout=60)
    assert snapshot(lib.data_dir / "blobs") == before
    assert lib.active_version("test-channel") is None
    assert any("failed its hash check" in e for e in transfer.status.errors)
