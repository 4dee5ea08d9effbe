"""Release torrents: written by `ketang publish`, readable by a stock client (aria2c)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import libtorrent as lt
import pytest
from click.testing import CliRunner

from appliance.cli import main
from content_cache.blobstore import blob_relpath
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish
from content_cache.torrent import TorrentError, choose_piece_size, load_release_torrent

from ..helpers import make_source
from ..support.webseed import web_seed


def _published(tmp_path: Path, key: Path, web_seeds=(), seed="a", lessons=3):
    src = make_source(tmp_path / f"src-{seed}", lessons=lessons, seed=seed)
    out = tmp_path / f"out-{seed}"
    rel = publish(src, "test-channel", 1, key, out, web_seeds=web_seeds)
    manifest = parse_manifest(rel.manifest_path.read_bytes(), where="test")
    return out, rel.manifest_path.with_name("release.torrent"), manifest


def test_publish_writes_a_torrent_of_the_blobs(tmp_path, publisher_key):
    pair, _ = publisher_key
    out, torrent, manifest = _published(tmp_path, pair.private_path,
                                        web_seeds=["http://127.0.0.1:9/mirror"])
    rt = load_release_torrent(torrent.read_bytes(), manifest, str(torrent))
    assert set(rt.file_index) == set(manifest.blobs())
    assert rt.total_size == sum(manifest.blobs().values())
    info = lt.bdecode(torrent.read_bytes())
    assert info[b"url-list"] in (b"http://127.0.0.1:9/mirror/", [b"http://127.0.0.1:9/mirror/"])
    assert info[b"info"][b"name"] == b"KETANG"
    assert all(b"attr" not in f for f in info[b"info"][b"files"])  # no pad files
    # Publishing the same tree again gives the same info-hash.
    out2 = tmp_path / "again"
    publish(tmp_path / "src-a", "test-channel", 1, pair.private_path, out2,
            web_seeds=["http://127.0.0.1:9/mirror"])
    again = out2 / "KETANG/releases/test-channel/1/release.torrent"
    if manifest.created == parse_manifest(
            again.with_name("manifest.json").read_bytes(), where="x").created:
        assert again.read_bytes() == torrent.read_bytes()


def test_torrent_of_another_release_is_refused(tmp_path, publisher_key):
    pair, _ = publisher_key
    _, torrent_a, _ = _published(tmp_path, pair.private_path, seed="a")
    _, _, manifest_b = _published(tmp_path, pair.private_path, seed="b")
    with pytest.raises(TorrentError, match="not in test-channel v1"):
        load_release_torrent(torrent_a.read_bytes(), manifest_b, str(torrent_a))
    with pytest.raises(TorrentError, match="not a valid torrent"):
        load_release_torrent(b"d4:spam", manifest_b, "junk.torrent")


def test_bad_web_seed_url_is_refused(tmp_path, publisher_key):
    pair, _ = publisher_key
    src = make_source(tmp_path / "src")
    result = CliRunner().invoke(main, [
        "publish", str(src), "--channel", "c", "--version", "1", "--key", str(pair.private_path),
        "--out", str(tmp_path / "out"), "--web-seed", "ftp://127.0.0.1/"])
    assert result.exit_code == 1
    assert "must be an http://" in result.output


def test_piece_size_rule():
    assert choose_piece_size(1000) == 1024 * 1024
    assert choose_piece_size(2 * 1024**3) == 1024 * 1024
    assert choose_piece_size(100 * 1024**3) == 2 * 1024 * 1024
    assert choose_piece_size(10**13) == 4 * 1024 * 1024


@pytest.mark.slow
def test_aria2c_downloads_a_release_from_its_web_seed(tmp_path, publisher_key):
    """A stock client (Debian's aria2) fetches the release; its folder is a blob tree."""
    pair, _ = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror) as (url, requests):
        src = make_source(tmp_path / "src", lessons=4)
        result = CliRunner().invoke(main, [
            "publish", str(src), "--channel", "c", "--version", "1",
            "--key", str(pair.private_path), "--out", str(mirror), "--web-seed", url])
        assert result.exit_code == 0, result.output
        torrent = mirror / "KETANG/releases/c/1/release.torrent"
        manifest = parse_manifest(torrent.with_name("manifest.json").read_bytes(), where="t")
        dl = tmp_path / "download"
        proc = subprocess.run(
            ["aria2c", "--dir", str(dl), "--seed-time=0", "--enable-dht=false",
             "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
             "--disable-ipv6=true", "--interface=127.0.0.1", "--listen-port=6881-6999",
             "--bt-stop-timeout=60", "--summary-interval=0", "--console-log-level=warn",
             "--check-integrity=true", str(torrent)],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert requests, "aria2c never asked the web seed"
    for sha in manifest.blobs():
        got = dl / "KETANG" / blob_relpath(sha)
        assert got.read_bytes() == (mirror / "KETANG" / blob_relpath(sha)).read_bytes()
    assert {p.relative_to(dl / "KETANG") for p in (dl / "KETANG").rglob("*") if p.is_file()} \
        == {blob_relpath(sha) for sha in manifest.blobs()}


@pytest.mark.slow
def test_aria2c_downloads_a_release_an_appliance_seeds(tmp_path, publisher_key):
    """Debian's aria2 gets the release from a seeding libtorrent session (no web seed)."""
    from content_cache.transfer import make_session

    from ..support.tracker import tracker

    pair, _ = publisher_key
    out, torrent, manifest = _published(tmp_path, pair.private_path, lessons=4)
    seeder = make_session()
    atp = lt.load_torrent_buffer(torrent.read_bytes())
    atp.save_path = str(out)
    handle = seeder.add_torrent(atp)
    deadline = time.monotonic() + 20
    while not handle.status().is_seeding and time.monotonic() < deadline:
        seeder.wait_for_alert(100)
        seeder.pop_alerts()
    assert handle.status().is_seeding
    dl = tmp_path / "download"
    with tracker(("127.0.0.1", seeder.listen_port())) as (announce, announces):
        proc = subprocess.run(
            ["aria2c", "--dir", str(dl), "--seed-time=0", "--enable-dht=false",
             "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
             "--disable-ipv6=true", "--interface=127.0.0.1", "--listen-port=6881-6999",
             f"--bt-tracker={announce}", "--bt-stop-timeout=60", "--summary-interval=0",
             "--console-log-level=warn", str(torrent)],
            capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert announces
    assert handle.status().total_payload_upload >= sum(manifest.blobs().values())
    for sha in manifest.blobs():
        got = dl / "KETANG" / blob_relpath(sha)
        assert got.read_bytes() == (out / "KETANG" / blob_relpath(sha)).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("client", ["transmission", "qbittorrent"])
def test_other_stock_clients_download_a_release_from_its_web_seed(tmp_path, publisher_key,
                                                                  client):
    """Debian's Transmission and qBittorrent fetch a release from a plain HTTP mirror (its
    1 MiB pieces are what Transmission needs, bench/sync_clients.py); the folder they fill
    is the bundle's blob tree."""
    import shutil

    from ..support.clients import CLIENTS, tree

    command = {"transmission": "transmission-cli", "qbittorrent": "qbittorrent-nox"}[client]
    if shutil.which(command) is None:
        if os.environ.get("CI"):
            raise RuntimeError(f"{command} is missing; tests/system-deps.sh installs it")
        pytest.skip(f"{command} is not installed (tests/system-deps.sh installs it)")
    pair, _ = publisher_key
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with web_seed(mirror) as (url, requests):
        src = make_source(tmp_path / "src", lessons=4)
        for i in range(4):  # blobs larger than a piece, and not a multiple of it
            (src / "media" / f"l{i}.mp4").write_bytes(os.urandom(1_300_000 + 4099 * i))
        out = tmp_path / "out"
        publish(src, "c", 1, pair.private_path, out, web_seeds=[url])
        shutil.copytree(out / "KETANG", mirror / "KETANG")
        torrent = mirror / "KETANG/releases/c/1/release.torrent"
        manifest = parse_manifest(torrent.with_name("manifest.json").read_bytes(), where="t")
        assert lt.load_torrent_buffer(torrent.read_bytes()).ti.piece_length() == 1024 * 1024
        dl = tmp_path / "download"
        dl.mkdir()
        CLIENTS[client](torrent, dl, tmp_path / "work", timeout=120)
        assert requests, f"{client} never asked the web seed"
    for sha in manifest.blobs():
        got = dl / "KETANG" / blob_relpath(sha)
        assert got.read_bytes() == (mirror / "KETANG" / blob_relpath(sha)).read_bytes()
    assert tree(dl) == {f"KETANG/{blob_relpath(sha)}" for sha in manifest.blobs()}
