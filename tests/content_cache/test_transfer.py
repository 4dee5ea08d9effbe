"""Fetching a release's missing blobs with real libtorrent sessions on 127.0.0.1."""

from __future__ import annotations

import os
import time
from pathlib import Path

import libtorrent as lt
import pytest

from content_cache.blobstore import blob_relpath, sha256_file
from content_cache.bundle import bundle_root, find_releases
from content_cache.importer import verify_release
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish
from content_cache.torrent import build_release_torrent
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


def test_restricted_pieces_are_the_only_ones_fetched_until_the_restriction_ends(
        tmp_path, publisher_key):
    """restrict_pieces (a school's share of the mirror): the web seed is asked for the
    allowed pieces only; lifted, the rest comes and every blob is stored."""
    pair, trusted = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror) as (url, _):
        out = publish_big(tmp_path, pair.private_path, lessons=3, web_seeds=[url],
                          size=1_500_000)
        os.rename(out / "KETANG", mirror / "KETANG")
        manifest, data, sig, torrent = verified(mirror, trusted)
        lib = Library(tmp_path / "device")
        t = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent,
                            hold_web_seeds=True)
        t.start()
        wanted = t.wanted_pieces()
        assert len(wanted) >= 4 and all(wanted)  # a fresh device wants every piece
        allowed = set(range(0, len(wanted), 2))
        t.restrict_pieces(allowed)
        t.restrict_pieces(allowed)  # the same restriction again changes nothing
        t.live_handle.add_url_seed(url)
        deadline = time.monotonic() + 30
        while not all(t.live_handle.status().pieces[p] for p in allowed):
            assert time.monotonic() < deadline, "the allowed pieces never came"
            t.session.wait_for_alert(200)
            t.poll()
        time.sleep(1.0)
        t.poll()
        have = list(t.live_handle.status().pieces)
        assert not any(have[p] for p in range(len(have)) if p not in allowed), have
        assert t.wanted_pieces() == wanted  # held back, still wanted
        assert not t.done
        t.restrict_pieces(None)
        status = t.run(60)
    assert sorted(status.fetched) == sorted(manifest.blobs()) and status.activated
    for sha in manifest.blobs():
        assert sha256_file(lib.store.path_for(sha)) == sha


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


def publish_two_versions(tmp_path: Path, key: Path, old: int = 3, new: int = 6,
                         size: int = 200_000):
    """v1 with ``old`` lessons and v2 with ``new`` (the first ``old`` the same bytes).

    Blobs are sorted by sha256 in the torrent, so v2's new blobs sit between v1's,
    and with sizes that are no multiple of the piece size, pieces straddle them.
    """
    videos = [os.urandom(size + 777 * i) for i in range(new)]
    outs = []
    for version, lessons in ((1, old), (2, new)):
        src = make_source(tmp_path / f"src{version}", lessons=lessons)
        for i in range(lessons):
            (src / "media" / f"l{i}.mp4").write_bytes(videos[i])
        out = tmp_path / f"out{version}"
        publish(src, "test-channel", version, key, out)
        outs.append(out)
    return outs


def fetch_from_a_corrupting_mirror(lib: Library, out: Path, mirror: Path, release) -> None:
    """Fetch ``release`` (published in ``out``) from a web seed that flips every byte:
    the fetch fails saying so, and the device's blob folder is exactly as it was."""
    manifest, data, sig, torrent = release
    before = snapshot(lib.data_dir / "blobs")
    os.rename(out, mirror)
    with web_seed(mirror, corrupt=True) as (url, _):
        transfer = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent)
        transfer.start()
        transfer.handle.add_url_seed(url)
        with pytest.raises(TransferError, match="failed their hash check"):
            transfer.run(timeout=60)
    assert snapshot(lib.data_dir / "blobs") == before


@pytest.mark.slow
@pytest.mark.parametrize("layout,piece", [("v1", 0), ("v1", 16384), ("v1-pad", 65536),
                                          ("hybrid", 65536)])
def test_a_corrupt_web_seed_never_touches_the_store_whatever_the_layout(
        tmp_path, publisher_key, layout, piece):
    """Invariant 1: a v1 device fetching v2 from a mirror that corrupts every byte keeps
    every store blob intact, also those sharing a piece with a new blob, whatever the
    torrent's layout (publish's own; small pieces; BEP 47 pad files; hybrid v1+v2)."""
    pair, trusted = publisher_key
    out1, out2 = publish_two_versions(tmp_path, pair.private_path)
    m1, _, _, _ = verified(out1, trusted)
    m2, data, sig, torrent = verified(out2, trusted)
    if piece:
        torrent = build_release_torrent(out2 / "KETANG", m2, [], piece, layout)
    lib = Library(tmp_path / "device")
    for sha in m1.blobs():
        lib.store.add_file(out1 / "KETANG" / blob_relpath(sha), sha)
    rt = lt.load_torrent_buffer(torrent).ti
    files = rt.layout()
    held = {i for sha, i in ReleaseTransfer(make_session(), lib, m2, data, sig, torrent)
            .torrent.file_index.items() if lib.store.has(sha)}
    straddling = [p for p in range(files.num_pieces())
                  if {files.file_index_at_piece(p), files.last_file_index_at_piece(p)} & held
                  and not set(range(files.file_index_at_piece(p),
                                    files.last_file_index_at_piece(p) + 1)) <= held]
    if piece == 16384:
        assert straddling, "pieces must span a held blob and a new one"
    fetch_from_a_corrupting_mirror(lib, out2, tmp_path / "mirror", (m2, data, sig, torrent))
    for sha in m1.blobs():
        assert sha256_file(lib.store.path_for(sha)) == sha
    assert lib.active_version("test-channel") is None


def test_a_fetch_whose_only_peer_is_banned_stops_with_the_bad_data_error(tmp_path,
                                                                         publisher_key):
    """Item 5: a peer that sends bad data is banned; with no source left the fetch stops
    saying so, instead of waiting out its timeout."""
    pair, trusted = publisher_key
    out = publish_big(tmp_path, pair.private_path, lessons=3)
    manifest, data, sig, torrent = verified(out, trusted)
    for sha in manifest.blobs():  # the liar's copy: same sizes, other bytes
        p = out / "KETANG" / blob_relpath(sha)
        os.chmod(p, 0o644)
        p.write_bytes(bytes(b ^ 0x5A for b in p.read_bytes()))
    seeder = make_session()
    atp = lt.load_torrent_buffer(torrent)
    atp.url_seeds = []
    atp.save_path = str(out)
    atp.have_pieces = [True] * atp.ti.num_pieces()  # claims them without checking
    seeder.add_torrent(atp)
    lib = Library(tmp_path / "device")
    transfer = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent,
                               peers=[("127.0.0.1", seeder.listen_port())])
    with pytest.raises(TransferError, match="failed their hash check") as err:
        transfer.run(timeout=40)
    assert "still missing" not in str(err.value)
    assert "banned" in str(err.value)
    assert not (lib.data_dir / "blobs" / "sha256").exists() or \
        not any((lib.data_dir / "blobs" / "sha256").rglob("*"))


def test_closing_one_transfer_hands_the_others_alerts_over_at_once(tmp_path, publisher_key):
    """Two transfers in one session (the sync service's): closing one pops the session's
    alerts while it waits for its resume data. The other's are handed to ``on_other``
    there and then (libtorrent frees every alert at the next pop: one kept for later
    crashed the process), and the other transfer still completes."""
    pair, trusted = publisher_key
    www = tmp_path / "www"
    www.mkdir()
    with web_seed(www) as (url, _):
        ses = make_session()
        transfers = []
        for name in ("a", "b"):
            out = publish_big(tmp_path / name, pair.private_path, lessons=3,
                              web_seeds=[f"{url}{name}/"], size=300_000)
            (www / name).symlink_to(out)
            manifest, data, sig, torrent = verified(out, trusted)
            t = ReleaseTransfer(ses, Library(tmp_path / name / "device"), manifest, data,
                                sig, torrent)
            t.start()
            transfers.append(t)
        a, b = transfers
        time.sleep(1.0)  # b's alerts wait in the session, unpopped
        handed: list[tuple[str, bool]] = []

        def on_other(alerts):
            handed.extend((type(x).__name__, getattr(x, "handle", None) == b.handle)
                          for x in alerts)
            b.poll(alerts)

        a.close(on_other=on_other)
        assert a.handle is None
        assert any(for_b for _, for_b in handed), handed
        assert not any(name == "save_resume_data_alert" and not for_b
                       for name, for_b in handed), "a's own alerts are a's"
        status = b.run(60)
    assert status.activated and sorted(status.fetched) == sorted(b.manifest.blobs())
