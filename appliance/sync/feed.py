"""Where releases for the sync service come from: HTTP feeds, drives, LAN peers.

A **feed** is an HTTP folder holding a ``KETANG/`` bundle (``ketang publish``'s
output, possibly without blobs) and an index naming each channel's newest version::

    <feed>/KETANG/feed.json      {"format": "ketang-feed/1", "channels": {"cn-basic-edu": 12},
                                  "web_seed": true}
    <feed>/KETANG/releases/<channel>/<version>/manifest.json
    <feed>/KETANG/releases/<channel>/<version>/manifest.json.sig
    <feed>/KETANG/releases/<channel>/<version>/release.torrent
    <feed>/KETANG/blobs/sha256/ab/abcdef…     (when "web_seed" is true: <feed> is a web seed)

``ketang sync index PATH`` writes ``feed.json`` for a published folder. The index is
not signed: it only says where to look. For each release the signature file and the
manifest are fetched, the signature checked against the trusted keys **before
anything else is read**, then the manifest parsed and the torrent checked against it.

A release accepted from any source is **staged** in its download folder
``<data_dir>/sync/<channel>/<version>/`` (manifest, signature, torrent, sources),
written atomically with the signature last. The service picks staged releases up, so a
drive watcher in another process can hand one over (:func:`hand_to_sync`) and a
download goes on after a power cut even when the feed is out of reach.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from content_cache.atomic import atomic_write_bytes, atomic_write_json
from content_cache.bundle import BUNDLE_DIR, bundle_root, find_releases
from content_cache.errors import KetangError, ManifestError
from content_cache.importer import verify_release
from content_cache.keys import MAX_SIGNATURE_FILE, load_trusted_keys, verify
from content_cache.manifest import CHANNEL_RE, MAX_MANIFEST_BYTES, Manifest, parse_manifest
from content_cache.torrent import MAX_TORRENT_BYTES, TORRENT_NAME, load_release_torrent

FEED_FORMAT = "ketang-feed/1"
FEED_INDEX = "feed.json"
MAX_FEED_INDEX = 64 * 1024
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SOURCES = "sources.json"
HTTP_TIMEOUT = 30.0
VERSION_RE = re.compile(r"^[1-9]\d{0,17}$")


class FeedError(KetangError):
    """A feed could not be read, or it offers something this device refuses."""


@dataclass
class Staged:
    """A verified release (signature checked, torrent matched) ready for the service."""

    manifest: Manifest
    manifest_bytes: bytes
    signature: bytes
    torrent: bytes
    key_id: str
    source: str = ""
    web_seeds: list[str] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)


def _get(url: str, limit: int, timeout: float = HTTP_TIMEOUT) -> bytes:
    """GET ``url``; at most ``limit`` bytes, else FeedError."""
    req = urllib.request.Request(url, headers={"User-Agent": "ketang"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read(limit + 1)
    except urllib.error.HTTPError as e:
        raise FeedError(f"{url}: the server answered {e.code} {e.reason}; check the feed "
                        "URL (sync.feeds) and that the release was published there.") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise FeedError(f"{url}: cannot reach the feed ({reason}); the link may be down, "
                        "it will be tried again at the next poll.") from e
    if len(data) > limit:
        raise FeedError(f"{url} is larger than {limit} bytes; refused.")
    return data


def feed_root(url: str) -> str:
    """The feed's ``KETANG/`` URL (with a trailing slash) from a configured feed URL."""
    if not url.startswith(("http://", "https://")):
        raise FeedError(f"sync.feeds: {url!r} must be an http:// or https:// URL.")
    url = url if url.endswith("/") else url + "/"
    return url if url.endswith(f"/{BUNDLE_DIR}/") else url + f"{BUNDLE_DIR}/"


def read_feed_index(url: str, timeout: float = HTTP_TIMEOUT) -> tuple[dict[str, int], bool]:
    """The channels a feed offers ({channel: newest version}) and whether it is a web seed."""
    where = feed_root(url) + FEED_INDEX
    data = _get(where, MAX_FEED_INDEX, timeout)
    try:
        doc = json.loads(data)
        if doc.get("format") != FEED_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {FEED_FORMAT!r}")
        if "channels" not in doc:
            raise KeyError("channels")
        out = _versions(doc, "channels")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FeedError(f"{where} is not a Ketang feed index ({e}); write it with "
                        "`ketang sync index`.") from e
    return out, bool(doc.get("web_seed"))


def _versions(doc: dict, key: str) -> dict[str, int]:
    """``doc[key]`` as {channel: version}, each checked (ValueError otherwise)."""
    channels = doc.get(key, {})
    if not isinstance(channels, dict):
        raise ValueError(f"{key} is not an object")
    out = {}
    for ch, v in channels.items():
        if not isinstance(ch, str) or not CHANNEL_RE.match(ch):
            raise ValueError(f"{ch!r} is not a channel name")
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"version of {ch} is {v!r}, not a positive whole number")
        out[ch] = v
    return out


@dataclass
class DeviceFeed:
    """What a LAN neighbour's own feed (``/sync/feed/KETANG/feed.json``) says about it."""

    id: str
    hub_candidate: bool
    hub: str                        # the hub as the neighbour sees it ('' when none)
    active: dict[str, int]          # releases it holds and shares
    fetching: dict[str, int]        # releases it is downloading now (staged, verified)
    upstream_web_seed: bool         # its releases came from a feed that is a web seed
    software: bool = False          # it holds a verified software update (its own
                                    # feed's software/index.json names it)


DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def read_device_feed(url: str, timeout: float = 3.0) -> DeviceFeed:
    """A neighbour's feed index with its township fields (FeedError when it is not one)."""
    where = feed_root(url) + FEED_INDEX
    data = _get(where, MAX_FEED_INDEX, timeout)
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FEED_FORMAT:
            raise ValueError("not a ketang-feed/1 document")
        dev = doc.get("device")
        if not isinstance(dev, dict):
            raise ValueError("it names no device")
        dev_id, hub = dev.get("id"), dev.get("hub", "")
        if not isinstance(dev_id, str) or not DEVICE_ID_RE.match(dev_id):
            raise ValueError(f"device id {dev_id!r} is not a device id")
        if not isinstance(hub, str) or (hub and not DEVICE_ID_RE.match(hub)):
            raise ValueError(f"hub {hub!r} is not a device id")
        return DeviceFeed(dev_id, dev.get("hub_candidate") is True, hub,
                          _versions(doc, "channels"), _versions(doc, "fetching"),
                          doc.get("upstream_web_seed") is True,
                          doc.get("software") is True)
    except (ValueError, TypeError, AttributeError) as e:
        raise FeedError(f"{where} is not a Ketang device's feed ({e}); the neighbour "
                        "is ignored.") from e


def fetch_release(url: str, channel: str, version: int,
                  trusted: dict[str, Ed25519PublicKey],
                  timeout: float = HTTP_TIMEOUT) -> Staged:
    """Fetch and check one release from a feed: signature first, then manifest, then torrent.

    Raises SignatureError (untrusted key, altered manifest), ManifestError, TorrentError
    or FeedError, each saying what was wrong and where; nothing is written.
    """
    if not CHANNEL_RE.match(channel) or not VERSION_RE.match(str(version)):
        raise FeedError(f"{url}: {channel!r} v{version!r} is not a channel and version.")
    base = feed_root(url) + f"releases/{urllib.parse.quote(channel)}/{int(version)}/"
    if not trusted:
        raise FeedError("this device trusts no publisher key, so it can take no release from "
                        f"{url}. Put the publisher's .pub file in the trusted keys folder.")
    signature = _get(base + SIGNATURE, MAX_SIGNATURE_FILE, timeout)
    data = _get(base + MANIFEST, MAX_MANIFEST_BYTES, timeout)
    kid = verify(data, signature, trusted, where=base + MANIFEST)
    manifest = parse_manifest(data, where=base + MANIFEST)
    if (manifest.channel, manifest.version) != (channel, version):
        raise ManifestError(f"{base + MANIFEST} says it is {manifest.channel} "
                            f"v{manifest.version}, but the feed offers it as {channel} "
                            f"v{version}; refused.")
    torrent = _get(base + TORRENT_NAME, MAX_TORRENT_BYTES, timeout)
    load_release_torrent(torrent, manifest, base + TORRENT_NAME)
    return Staged(manifest, data, signature, torrent, kid, source=url)


def write_feed_index(path: Path, web_seed: bool | None = None) -> Path:
    """Write ``KETANG/feed.json`` naming each channel's newest release in the bundle at ``path``.

    ``web_seed`` defaults to whether the bundle holds a ``blobs/`` folder.
    """
    root = bundle_root(path)
    newest: dict[str, int] = {}
    for r in find_releases(root):
        if (r.manifest_path.parent / TORRENT_NAME).is_file():
            newest[r.channel] = r.version
    if not newest:
        raise KetangError(f"{root} holds no release with a {TORRENT_NAME}; publish one first "
                          "with `ketang publish`.")
    if web_seed is None:
        web_seed = (root / "blobs").is_dir()
    doc = {"format": FEED_FORMAT, "channels": newest, "web_seed": web_seed}
    out = root / FEED_INDEX
    atomic_write_json(out, doc)
    return out


# -- staging -------------------------------------------------------------------------

def staging_dir(data_dir: Path, channel: str, version: int) -> Path:
    """The download folder of a release (see content_cache.transfer)."""
    return Path(data_dir) / "sync" / channel / str(version)


def stage(data_dir: Path, rel: Staged) -> Path:
    """Keep a verified release in its download folder for the service (signature last)."""
    d = staging_dir(data_dir, rel.manifest.channel, rel.manifest.version)
    sources = {"source": rel.source, "web_seeds": rel.web_seeds,
               "peers": [list(p) for p in rel.peers]}
    old = d / SOURCES
    if old.is_file() and (d / SIGNATURE).is_file():
        try:  # a release staged before keeps its sources, and gains these
            prev = json.loads(old.read_text(encoding="utf-8"))
            sources["web_seeds"] = sorted(set(prev.get("web_seeds", [])) | set(rel.web_seeds))
            sources["peers"] = [list(p) for p in sorted(
                {tuple(p) for p in prev.get("peers", [])} | set(map(tuple, rel.peers)))]
            sources["source"] = prev.get("source") or rel.source
        except ValueError:
            pass
    atomic_write_bytes(d / MANIFEST, rel.manifest_bytes)
    atomic_write_bytes(d / TORRENT_NAME, rel.torrent)
    atomic_write_json(d / SOURCES, sources)
    atomic_write_bytes(d / SIGNATURE, rel.signature)
    return d


def load_staged(d: Path, trusted: dict[str, Ed25519PublicKey]) -> Staged | None:
    """A staged release from its download folder (signature checked again), or None."""
    sig_path, man_path, tor_path = d / SIGNATURE, d / MANIFEST, d / TORRENT_NAME
    if not (sig_path.is_file() and man_path.is_file() and tor_path.is_file()):
        return None
    signature, data = sig_path.read_bytes(), man_path.read_bytes()
    kid = verify(data, signature, trusted, where=str(man_path))
    manifest = parse_manifest(data, where=str(man_path))
    if (manifest.channel, str(manifest.version)) != (d.parent.name, d.name):
        raise ManifestError(f"{man_path} is {manifest.channel} v{manifest.version} but sits in "
                            f"{d}; remove that folder.")
    rel = Staged(manifest, data, signature, tor_path.read_bytes(), kid)
    try:
        sources = json.loads((d / SOURCES).read_text(encoding="utf-8"))
        rel.source = str(sources.get("source", ""))
        rel.web_seeds = [str(u) for u in sources.get("web_seeds", [])]
        rel.peers = [(str(h), int(p)) for h, p in sources.get("peers", [])]
    except (OSError, ValueError, TypeError):
        pass
    return rel


def staged_folders(data_dir: Path) -> list[Path]:
    """Every ``sync/<channel>/<version>/`` folder that holds a staged release."""
    root = Path(data_dir) / "sync"
    if not root.is_dir():
        return []
    return sorted((p for p in root.glob("*/*") if p.name.isdigit()
                   and CHANNEL_RE.match(p.parent.name) and (p / SIGNATURE).is_file()),
                  key=lambda p: (p.parent.name, int(p.name)))


def hand_to_sync(data_dir: Path, keys_dir: Path, path: Path,
                 active: dict[str, int] | None = None) -> list[str]:
    """Hand the releases in a drive's bundle (with their ``release.torrent``) to the service.

    For the drive code: for each channel's newest release in ``path`` that carries a
    torrent and is newer than ``active`` ({channel: version}), the signature is checked,
    the torrent matched to the manifest, and the release staged; the running sync service
    then fetches whatever blobs the device lacks from peers and web seeds. Returns one
    line per release, in words. Raises KetangError (nothing staged) when a signature or
    torrent is bad.
    """
    root = bundle_root(path)
    trusted = load_trusted_keys(keys_dir)
    newest = {}
    for r in find_releases(root):
        if (r.manifest_path.parent / TORRENT_NAME).is_file():
            newest[r.channel] = r
    if not newest:
        raise KetangError(f"{root} holds no release with a {TORRENT_NAME}; nothing to hand to "
                          "the sync service.")
    checked = []
    for r in newest.values():  # every release is checked before anything is staged
        manifest, data, sig, kid = verify_release(r, trusted)
        torrent = (r.manifest_path.parent / TORRENT_NAME).read_bytes()
        load_release_torrent(torrent, manifest, str(r.manifest_path.parent / TORRENT_NAME))
        checked.append(Staged(manifest, data, sig, torrent, kid, source=f"drive {root}"))
    out = []
    for rel in checked:
        m = rel.manifest
        current = (active or {}).get(m.channel)
        if current is not None and m.version <= current:
            out.append(f"{m.channel} v{m.version}: 已是最新 / this device already has "
                       f"v{current}")
            continue
        stage(data_dir, rel)
        out.append(f"{m.channel} v{m.version}: 已交给同步服务 / handed to the sync service")
    return out
