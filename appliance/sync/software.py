"""Software updates over BitTorrent: the software channel of a feed (docs/updates.md).

A feed that carries software has ``software/index.json`` beside its lesson releases: one
entry per update bundle (a RAUC ``.raucb``, whole-OS or app-only) with its torrent, a
single-file torrent whose web seeds (BEP 19) are the feed's mirror. The index is not
signed and is not trusted: it only says what to fetch. What arrives is one file that
verifies itself, so it is fetched like a release (web seed over the satellite, LAN peers
that already hold it; the web seeds held outside the transfer windows and when the daily
quota is spent) into the data partition's update spool, and handed to RAUC, which checks its
signature before anything else reads it; only then is it installed
(:func:`provisioning.update.install`) or offered to LAN peers.

Publishing side: :func:`write_software_index` (beside ``make update-bundle``'s ``dist/``).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import libtorrent as lt

from content_cache.atomic import atomic_write_bytes, fsync_dir
from content_cache.errors import KetangError
from content_cache.torrent import choose_piece_size

from .schedule import Quota, Window, in_window

if TYPE_CHECKING:
    from provisioning.update import Bundle, Device

SOFTWARE_DIR = "software"
INDEX_NAME = "index.json"
BUNDLE_SUFFIX = ".raucb"
INDEX_LIMIT = 256 * 1024            # an index is a few hundred bytes per bundle
TORRENT_LIMIT = 4 * 1024 * 1024


class SoftwareError(KetangError):
    """A software offer cannot be fetched (bad index, bad torrent, transfer failed)."""


@dataclass(frozen=True)
class Offer:
    """One bundle a feed offers (unverified until RAUC has checked the file)."""

    name: str
    version: str
    compatible: str
    kind: str                   # "whole-os" or "app"
    base_version: str           # app bundles: the version whose root they patch
    size: int
    torrent_url: str


# --- publishing ------------------------------------------------------------------------

def make_bundle_torrent(bundle: Path, web_seeds: Sequence[str] = ()) -> bytes:
    """A single-file torrent of ``bundle`` (v1, large pieces for stock clients) whose web
    seeds are ``web_seeds`` (each the folder URL holding the bundle, ending in ``/``)."""
    for url in web_seeds:
        if urlsplit(url).scheme not in ("http", "https") or not url.endswith("/"):
            raise SoftwareError(f"网络种子地址无效。Web seed {url!r} must be an http(s) URL "
                                "of a folder, ending in '/'.")
    size = bundle.stat().st_size
    ct = lt.create_torrent([lt.create_file_entry(bundle.name, size)], choose_piece_size(size),
                           lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, str(bundle.parent))
    for url in web_seeds:
        ct.add_url_seed(url)
    ct.set_creator("ketang")
    ct.set_creation_date(0)                 # the same bundle gives the same torrent
    return lt.bencode(ct.generate())


def write_software_index(folder: Path, web_seed: str | None = None) -> Path:
    """Write ``folder/software/index.json`` and one torrent per ``*.raucb`` there (each
    with its ``.raucb.json`` from ``make update-bundle``); ``web_seed``: the URL where
    ``folder/software/`` is served. Returns the index's path."""
    where = folder / SOFTWARE_DIR
    entries = []
    for bundle in sorted(where.glob(f"*{BUNDLE_SUFFIX}")):
        meta_path = bundle.with_name(bundle.name + ".json")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SoftwareError(f"{meta_path}: 缺少更新包说明。The bundle's metadata is missing "
                                f"or unreadable ({e}); copy the .raucb.json that make "
                                "update-bundle wrote beside it.") from None
        torrent = bundle.with_name(bundle.name + ".torrent")
        atomic_write_bytes(torrent, make_bundle_torrent(bundle, [web_seed] if web_seed else []))
        entries.append({"name": bundle.name, "version": str(meta["version"]),
                        "compatible": str(meta["compatible"]), "kind": str(meta["kind"]),
                        "base_version": str(meta.get("base_version", "")),
                        "size": bundle.stat().st_size, "torrent": torrent.name})
    index = where / INDEX_NAME
    atomic_write_bytes(index, json.dumps({"software": entries}, ensure_ascii=False,
                                         indent=1).encode())
    return index


# --- the device: what to fetch ------------------------------------------------------------

def _get(url: str, limit: int, timeout: float) -> bytes:
    if urlsplit(url).scheme not in ("http", "https"):
        raise SoftwareError(f"{url}: 只支持 http(s)。Only http(s) feeds are fetched.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data = r.read(limit + 1)
    except OSError as e:
        raise SoftwareError(f"{url}: 无法下载。Cannot fetch it ({e}); tried again at the next "
                            "poll.") from None
    if len(data) > limit:
        raise SoftwareError(f"{url}: 文件过大。Larger than {limit} bytes; not a software "
                            "index or torrent.")
    return data


def read_offers(feed_url: str, timeout: float = 30.0) -> list[Offer]:
    """The bundles ``feed_url`` (the feed's root, ending in ``/``) offers; [] when it
    carries no software. SoftwareError with one line for an index that is not one."""
    index_url = urljoin(feed_url, f"{SOFTWARE_DIR}/{INDEX_NAME}")
    try:
        data = _get(index_url, INDEX_LIMIT, timeout)
    except SoftwareError as e:
        if "HTTP Error 404" in str(e):
            return []
        raise
    try:
        offers = []
        for i in json.loads(data)["software"]:
            name, torrent = i["name"], i["torrent"]
            if not (isinstance(name, str) and isinstance(torrent, str)) or "/" in name \
                    or not name.endswith(BUNDLE_SUFFIX):
                raise ValueError(name)
            offers.append(Offer(name=name, version=str(i["version"]),
                                compatible=str(i["compatible"]),
                                kind=str(i.get("kind", "whole-os")),
                                base_version=str(i.get("base_version", "")),
                                size=int(i["size"]), torrent_url=urljoin(index_url, torrent)))
        return offers
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SoftwareError(f"{index_url}: 软件目录无法读取。Not a software index (JSON with a "
                            "'software' list of bundles); nothing fetched.") from None


def choose(offers: Sequence[Offer], compatible: str, running: str) -> Offer | None:
    """The offer to fetch: the newest version above ``running`` for this device; of that
    version, the app-only bundle when it patches ``running`` (fewer bytes), else the
    whole-OS one. The index is unsigned: RAUC checks the chosen file all the same."""
    from provisioning.update import compare_versions, parse_version
    fits = []
    for o in offers:
        try:
            newer = compare_versions(o.version, running) > 0
        except KetangError:
            continue                                 # a version nobody understands
        if o.compatible == compatible and newer and \
                (o.kind != "app" or o.base_version == running):
            fits.append(o)
    if not fits:
        return None
    return max(fits, key=lambda o: (parse_version(o.version), o.kind == "app"))


def window_gate(windows: Sequence[Window], quota: Quota | None,
                clock: Callable[[], datetime] = datetime.now) -> Callable[[], str]:
    """Why a software download must wait now ('' when it may go on): outside the transfer
    windows, or the daily quota spent, as for lesson releases."""
    def gate() -> str:
        if not in_window(windows, clock()):
            return "window"
        if quota is not None:
            quota.update()
            if quota.exhausted:
                return "quota"
        return ""
    return gate


# --- the device: fetching -------------------------------------------------------------------

class SoftwareFetch:
    """One bundle over BitTorrent into ``spool`` (web seeds from the torrent, and LAN
    ``peers``); the web seeds are held while ``gate()`` says why not (outside the
    windows, the quota spent), LAN peers are not. The finished file is left for RAUC
    to verify (:meth:`verified`) and stays seeded while the session lives."""

    def __init__(self, session: lt.session, torrent: bytes, spool: Path,
                 peers: Sequence[tuple[str, int]] = (),
                 gate: Callable[[], str] = lambda: "") -> None:
        try:
            self.info = lt.torrent_info(lt.bdecode(torrent))  # type: ignore[arg-type]
        except (RuntimeError, TypeError) as e:
            raise SoftwareError(f"种子文件无效。Not a torrent ({e}); nothing fetched.") from None
        name = self.info.name()
        if self.info.num_files() != 1 or "/" in name or not name.endswith(BUNDLE_SUFFIX):
            raise SoftwareError(f"{name}: 不是更新包的种子。The torrent is not one update bundle "
                                "(one .raucb file); nothing fetched.")
        self.session, self.spool, self.peers, self.gate = session, spool, list(peers), gate
        self.torrent = torrent
        self.path = spool / name
        self.handle: lt.torrent_handle | None = None
        self.web_seeds: list[str] = []
        self.waiting = ""                      # why the web seeds are held ('' if not)

    def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        atp = lt.add_torrent_params()
        atp.ti = self.info
        atp.save_path = str(self.spool)
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags |= (lt.torrent_flags.disable_dht | lt.torrent_flags.disable_pex
                      | lt.torrent_flags.disable_lsd | lt.torrent_flags.paused)
        self.handle = self.session.add_torrent(atp)
        self.web_seeds = sorted(self.handle.url_seeds())
        self.waiting = self.gate()
        if self.waiting:                  # outside a window: not one request to the web
            self._hold_web_seeds()        # seeds until it opens; LAN peers may still give
        self.handle.resume()
        self.connect_peers()

    def _hold_web_seeds(self) -> None:
        assert self.handle is not None
        for url in self.handle.url_seeds():
            self.handle.remove_url_seed(url)

    def connect_peers(self) -> None:
        if self.handle is not None:
            for host, port in self.peers:
                self.handle.connect_peer((host, port))

    def poll(self) -> bool:
        """Apply the gate to the web seeds (the uplink); True once every piece is here
        and passed its hash. LAN peers are not held: their bytes are not the uplink's."""
        assert self.handle is not None, "start() first"
        st = self.handle.status()
        if st.is_seeding:
            return True
        reason = self.gate()
        if reason and not self.waiting:
            self._hold_web_seeds()
        elif not reason and self.waiting:
            for url in self.web_seeds:
                self.handle.add_url_seed(url)
            self.connect_peers()
        self.waiting = reason
        return False

    def run(self, timeout: float = 600.0, interval: float = 0.2) -> Path:
        """Fetch until complete (SoftwareError after ``timeout`` seconds); the path."""
        if self.handle is None:
            self.start()
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                st = self.handle.status() if self.handle else None
                raise SoftwareError(f"{self.path.name}: 下载超时。Not complete after "
                                    f"{timeout:.0f} s ({st.total_wanted_done if st else 0} "
                                    f"bytes; waiting for: {self.waiting or 'peers'}).")
            time.sleep(interval)
        return self.path

    def progress(self) -> dict[str, Any]:
        st = self.handle.status() if self.handle else None
        return {"bundle": self.path.name, "waiting": self.waiting,
                "done": st.total_wanted_done if st else 0, "size": self.info.total_size(),
                "complete": bool(st and st.is_seeding)}

    def verified(self, device: Device) -> Bundle:
        """RAUC's verdict on the fetched file: signature first, before anything reads it.
        A refused file is removed from the spool (and stops being seeded)."""
        from provisioning.update import UpdateError, verify
        try:
            return verify(device, self.path)
        except UpdateError:
            self.remove()
            raise

    def remove(self) -> None:
        if self.handle is not None:
            self.session.remove_torrent(self.handle, lt.session.delete_files)
            self.handle = None
        self.path.unlink(missing_ok=True)


def spool_dir(data_dir: Path) -> Path:
    """Where fetched bundles wait for RAUC (the data partition, like a drive's copy)."""
    return data_dir / "updates" / "incoming"


def fetch_update(session: lt.session, feed_url: str, device: Device,
                 peers: Sequence[tuple[str, int]] = (), gate: Callable[[], str] = lambda: "",
                 timeout: float = 3600.0) -> tuple[Bundle, SoftwareFetch] | None:
    """Fetch the update ``feed_url`` offers this device (None when nothing newer) and
    have RAUC verify it; the caller installs it (:func:`provisioning.update.install`)
    and may keep the fetch seeding for LAN peers."""
    from provisioning.update import system_compatible
    offer = choose(read_offers(feed_url), system_compatible(device.rauc_conf),
                   device.booted_version())
    if offer is None:
        return None
    fetch = SoftwareFetch(session, _get(offer.torrent_url, TORRENT_LIMIT, 60.0),
                          spool_dir(device.data_dir), peers, gate)
    fetch.run(timeout)
    return fetch.verified(device), fetch


# --- the sync service's software channel ----------------------------------------------------

def ready_dir(data_dir: Path) -> Path:
    """Verified bundles the sync service hands to the installer (``ketang update
    install-ready``, root, started by ``ketang-update-ready.path`` when one appears)."""
    return data_dir / "updates" / "ready"


def updates_on(device: Device) -> bool:
    """Whether this system takes software updates (RAUC's system.conf and the image's
    version file exist: a Ketang image, not a development checkout)."""
    return device.rauc_conf.is_file() and device.image_env.is_file()


class SoftwareChannel:
    """The sync service's software channel: at most one bundle at a time, fetched in the
    service's own libtorrent session within its windows and quota (``gate``), from a
    feed's web seed and from LAN neighbours that hold it, verified by RAUC the moment it
    is complete (signature first, before anything else reads it), then handed to the
    installer (:func:`ready_dir`) and seeded to neighbours while the service runs.

    Threads: :meth:`consider` and :meth:`step` run in the service's feed thread,
    :meth:`tick` in its session thread; :meth:`summary` and :meth:`holding` anywhere.
    """

    def __init__(self, device: Device, gate: Callable[[], str]) -> None:
        self.device, self.gate = device, gate
        self.fetch: SoftwareFetch | None = None
        self.offer: Offer | None = None
        self.source = ""                 # the feed or neighbour it came from
        self.state = ""                  # downloading, waiting-window, waiting-quota,
        self.error = ""                  # verifying, ready, refused, error ('' idle)
        self.verified_version = ""
        self.refused: set[str] = set()   # bundle names RAUC refused: not fetched again
        self._complete = False

    def consider(self, session: lt.session, feed_url: str,
                 peers: Sequence[tuple[str, int]] = (), source: str = "") -> Offer | None:
        """Read what ``feed_url`` (a feed root, or a neighbour's own feed) offers and start
        fetching the bundle for this device when it is newer than the one in hand;
        ``peers``: LAN neighbours that hold it. SoftwareError for a bad index or torrent."""
        from provisioning.update import parse_version, system_compatible
        offer = choose(read_offers(feed_url), system_compatible(self.device.rauc_conf),
                       self.device.booted_version())
        if offer is None or offer.name in self.refused:
            return None
        current = self.offer
        if current is not None and self.state != "error":
            if current.name == offer.name and self.fetch is not None:
                new = [p for p in peers if p not in self.fetch.peers]
                if new:                  # another holder of the same bundle
                    self.fetch.peers.extend(new)
                    self.fetch.connect_peers()
            if parse_version(current.version) >= parse_version(offer.version):
                return None
        fetch = SoftwareFetch(session, _get(offer.torrent_url, TORRENT_LIMIT, 60.0),
                              spool_dir(self.device.data_dir), peers, self.gate)
        if fetch.path.name != offer.name or fetch.info.total_size() != offer.size:
            raise SoftwareError(f"{offer.torrent_url}: 种子与目录不符。The torrent is not the "
                                f"bundle the index names ({offer.name}, {offer.size} bytes); "
                                "nothing fetched.")
        if self.fetch is not None:
            self.fetch.remove()          # an older bundle: a newer one supersedes it
        fetch.start()
        self.fetch, self.offer, self.source = fetch, offer, source or feed_url
        self.state, self.error, self._complete = "downloading", "", False
        return offer

    def tick(self) -> None:
        """Apply the windows and quota to the transfer; note when it is complete."""
        fetch = self.fetch
        if fetch is None or self._complete or self.state not in (
                "downloading", "waiting-window", "waiting-quota"):
            return
        self._complete = fetch.poll()
        if not self._complete:
            self.state = f"waiting-{fetch.waiting}" if fetch.waiting else "downloading"

    def step(self) -> None:
        """Once complete: RAUC's verdict on the file (signature first); a refused file is
        deleted and never fetched again this run; an accepted one is handed over."""
        fetch, offer = self.fetch, self.offer
        if fetch is None or offer is None or not self._complete or self.state in (
                "verifying", "ready", "refused"):
            return
        from provisioning.update import UpdateError, check
        self.state = "verifying"
        try:
            bundle = fetch.verified(self.device)
            check(self.device, bundle, force=False)
        except UpdateError as e:
            fetch.remove()
            self.refused.add(offer.name)
            self.fetch, self.state, self.error = None, "refused", str(e)
            return
        ready = ready_dir(self.device.data_dir)
        ready.mkdir(parents=True, exist_ok=True)
        # A second name for the same file (the spool copy keeps seeding), made beside it
        # and renamed into ready/: the installer's folder only ever holds whole bundles.
        tmp = bundle.path.with_name(f".{bundle.path.name}.ready")
        tmp.unlink(missing_ok=True)
        os.link(bundle.path, tmp)
        os.replace(tmp, ready / bundle.path.name)
        fsync_dir(ready)
        self.verified_version, self.state = bundle.version, "ready"

    def fail(self, message: str) -> None:
        self.state, self.error = "error", message

    def shared(self) -> tuple[dict[str, Any], bytes] | None:
        """What this device's own feed offers its neighbours (``/sync/feed/software/``):
        the index of the verified bundle it seeds and that bundle's torrent; None when
        it holds none."""
        offer, fetch = self.offer, self.fetch
        if self.state != "ready" or offer is None or fetch is None:
            return None
        entry = {"name": offer.name, "version": offer.version, "compatible": offer.compatible,
                 "kind": offer.kind, "base_version": offer.base_version, "size": offer.size,
                 "torrent": f"{offer.name}.torrent"}
        return {"software": [entry]}, fetch.torrent

    def summary(self) -> dict[str, Any]:
        """The software channel's part of the sync status (docs/updates.md)."""
        if self.offer is None:
            return {"state": self.state or "idle", "error": self.error}
        progress = self.fetch.progress() if self.fetch is not None else {}
        return {"state": self.state, "error": self.error, "bundle": self.offer.name,
                "version": self.offer.version, "kind": self.offer.kind,
                "size": self.offer.size, "done": progress.get("done", 0),
                "source": self.source}

