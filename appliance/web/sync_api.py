"""This device as a feed for its LAN neighbours: ``/sync/feed/KETANG/…``.

The same layout as an HTTP release feed (:mod:`appliance.sync.feed`): ``feed.json``
names each active release that has its ``release.torrent`` (kept when the sync
service activated it), the signed manifest, signature and torrent sit under
``releases/<channel>/<version>/``, and the blobs under ``blobs/sha256/…``, so the
folder is also a BEP 19 web seed. ``/sync/feed/software/`` offers the verified software
update the device seeds, if any (``index.json`` and its torrent, docs/updates.md).
A neighbour that sees this device advertise a newer release over zeroconf fetches it
from here, checks the signature, and downloads the blobs from this device's libtorrent
session (and this web seed).
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify

from appliance.identity import device_id
from appliance.sync.feed import FEED_FORMAT, MANIFEST, SIGNATURE, staging_dir
from content_cache.blobstore import SHA256_RE
from content_cache.manifest import CHANNEL_RE
from content_cache.torrent import TORRENT_NAME

from . import media
from .context import library, settings, state

bp = Blueprint("sync_feed", __name__, url_prefix="/sync/feed/KETANG")
software_bp = Blueprint("sync_software", __name__, url_prefix="/sync/feed/software")
FILES = {MANIFEST: "application/json", SIGNATURE: "application/json",
         TORRENT_NAME: "application/x-bittorrent"}


@bp.route("/feed.json")
def feed_index():
    """The newest active release of each channel this device can share; with the sync
    service on, also what it is fetching now and who it takes for the hub (docs/sync.md)."""
    lib = library()
    channels = {ch: rel.version for ch, rel in sorted(lib.active().items())
                if (lib.release_dir(ch, rel.version) / TORRENT_NAME).is_file()}
    sync = state().sync
    extras = sync.feed_extras() if sync is not None else {
        "device": {"id": device_id(settings().device.id), "hub_candidate": False, "hub": ""},
        "fetching": {}, "upstream_web_seed": False}
    return jsonify({"format": FEED_FORMAT, "channels": channels, "web_seed": True, **extras})


@bp.route("/releases/<channel>/<int:version>/<name>")
def release_file(channel: str, version: int, name: str):
    """A kept release's manifest, signature or torrent: the active release, or one the
    sync service is fetching (staged, its signature checked)."""
    lib = library()
    if not CHANNEL_RE.match(channel) or name not in FILES:
        abort(404)
    if lib.active_version(channel) == version:
        path = lib.release_dir(channel, version) / name
    else:
        staged = staging_dir(lib.data_dir, channel, version)
        if not (staged / SIGNATURE).is_file():  # written last: the folder is complete
            abort(404)
        path = staged / name
    if not path.is_file():
        abort(404)
    return Response(path.read_bytes(), mimetype=FILES[name],
                    headers={"Cache-Control": "no-cache"})


@bp.route("/blobs/sha256/<prefix>/<sha256>", methods=["GET", "HEAD"])
def blob(prefix: str, sha256: str):
    """A blob at its bundle path, for libtorrent's web seed requests."""
    if not SHA256_RE.match(sha256) or prefix != sha256[:2]:
        abort(404)
    return media.blob(sha256)


def _shared():
    sync = state().sync
    shared = sync.software.shared() if sync is not None and sync.software is not None else None
    if shared is None:
        abort(404)
    return shared


@software_bp.route("/index.json")
def software_index():
    """The software update this device holds, verified, and seeds (docs/updates.md): the
    same index as a feed's ``software/index.json``, so a neighbour fetches it from here
    over BitTorrent (this device is its peer; the web seeds in the torrent are the
    mirror's)."""
    return jsonify(_shared()[0])


@software_bp.route("/<name>.torrent")
def software_torrent(name: str):
    index, torrent = _shared()
    if name != index["software"][0]["name"]:
        abort(404)
    return Response(torrent, mimetype="application/x-bittorrent",
                    headers={"Cache-Control": "no-cache"})
