"""The sync service: one libtorrent session for the device's life, inside ``ketang serve``.

Two threads, neither of them the web server's:

- **the session thread** owns the libtorrent session and every transfer. It waits for
  alerts (at most half a second), hands them to the transfers, and about once a
  second: counts the uplink quota, pauses or resumes downloads for the time windows
  and the quota, starts transfers for releases staged by a feed, a drive or a peer
  (:mod:`appliance.sync.feed`), activates a release once all its blobs are stored, and
  writes the status file when something in it changed.
- **the feed thread** polls the configured feeds every ``sync.poll_interval`` seconds
  while a window is open and quota is left, and asks LAN peers (found by zeroconf)
  that advertise a newer release for it; it only stages verified releases. On a Ketang
  image it also looks for a software update in the same feeds and neighbours (the
  software channel, :class:`appliance.sync.software.SoftwareChannel`): fetched in this
  session within the same windows and quota, verified by RAUC when complete, then
  handed to the installer.

The session is set for a closed network (no DHT, UPnP, NAT-PMP; local service
discovery on when ``sync.lsd``), listens on ``sync.listen_interfaces``, and its rate
limits apply to LAN peers too. An activated release keeps seeding to neighbours. On
:meth:`SyncService.close` every transfer saves its resume data.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import libtorrent as lt

from appliance.config import Settings
from appliance.text import human_bytes
from content_cache.atomic import atomic_write_bytes, atomic_write_json
from content_cache.errors import KetangError
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.torrent import TORRENT_NAME
from content_cache.transfer import ReleaseTransfer, make_session

from .feed import (
    DeviceFeed,
    FeedError,
    feed_root,
    fetch_release,
    load_staged,
    read_device_feed,
    read_feed_index,
    stage,
    staged_folders,
)
from .schedule import Quota, in_window, parse_windows, uplink_counter
from .software import SoftwareChannel, updates_on
from .township import (
    ByteSources,
    Hub,
    elect_hub,
    hub_candidate,
    in_networks,
    lan_pieces,
    mirror_share,
    missing_pieces,
    network_range,
    own_pieces,
    web_seed_wanted,
)

if TYPE_CHECKING:
    from provisioning.update import Device

log = logging.getLogger(__name__)

TICK = 1.0              # seconds between housekeeping rounds of the session thread
STATUS_MIN_INTERVAL = 2.0
MAX_ERRORS = 20
#: Web seeds are asked for at most this much per request (libtorrent's default is 16 MiB,
#: a whole video), so holding a web seed back for the LAN acts within seconds, mid-file.
URLSEED_REQUEST_BYTES = 2 * 1024 * 1024
PROBE_TIMEOUT = 3.0     # seconds a neighbour's feed index may take to answer
PROBE_GAP = 1.0         # seconds at least between asks prompted by zeroconf changes
LAN_HEAD_START = 5.0    # seconds a new transfer waits for neighbours known to have it
NEIGHBOUR_RETRY = 60.0  # seconds before a release a neighbour failed to give is asked again


def _now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class _Neighbour:
    """A Ketang device on the LAN (zeroconf) and what its own feed last said."""

    id: str
    name: str
    addresses: list[str]
    port: int
    bt_port: int | None
    feed: DeviceFeed | None = None
    ok_at: float = 0.0          # when its feed last answered (monotonic)
    error: str = ""

    @property
    def url(self) -> str:
        """Its own feed (``/sync/feed/``), see appliance/web/sync_api.py."""
        host = self.addresses[0] if self.addresses else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/sync/feed/"


@dataclass
class _Job:
    """One release in the session."""

    transfer: ReleaseTransfer
    source: str
    web_seeds: list[str]
    state: str = "downloading"  # downloading, waiting, activating, seeding, error
    errors: deque = field(default_factory=lambda: deque(maxlen=10))
    seed_errors: dict[str, tuple[float, str]] = field(default_factory=dict)
    failed_at: float = 0.0
    seeds_on: bool = False      # the web seeds are in the torrent now (LAN first)
    lan_seen: float = field(default_factory=time.monotonic)  # LAN payload last arrived
    sources: ByteSources = field(default_factory=ByteSources)
    lan_supply: int = 0         # wanted pieces a connected LAN peer has
    share: tuple[int, int] | None = None  # (rank, count) of the mirror's pieces, or None
    started: float = field(default_factory=time.monotonic)
    payload_before: int = 0     # payload of this job's earlier torrent handles

    @property
    def key(self) -> tuple[str, int]:
        m = self.transfer.manifest
        return m.channel, m.version


class SyncService:
    """The device's sync service. :meth:`start` once, :meth:`close` at shutdown."""

    def __init__(self, settings: Settings, library: Library, *,
                 clock: Callable[[], datetime] = datetime.now,
                 counter: Callable[[], int] | None = None,
                 session_settings: dict | None = None, dev_id: str | None = None,
                 device: Device | None = None) -> None:
        """``device``: where RAUC's configuration and the image's version are (the
        image's own by default); the software channel is on when they exist."""
        from appliance.identity import device_id
        from provisioning.update import Device

        self.settings = settings
        self.dev_id = dev_id or device_id(settings.device.id)
        self.cfg = settings.sync
        self.library = library
        self.windows = parse_windows(self.cfg.windows)
        for url in self.cfg.feeds:
            feed_root(url)  # a bad URL is refused now, not at the first poll
        if self.cfg.resume_interval < 1 or self.cfg.poll_interval < 1:
            raise KetangError("sync.resume_interval and sync.poll_interval must be at least "
                              "1 second.")
        if self.cfg.hub_timeout < 2 or self.cfg.lan_stall_seconds < 1:
            raise KetangError("sync.hub_timeout must be at least 2 seconds and "
                              "sync.lan_stall_seconds at least 1.")
        for net in self.cfg.lan_networks:
            try:
                network_range(net)
            except ValueError as e:
                raise KetangError(f"sync.lan_networks: {net!r} is not a network such as "
                                  f"\"10.0.0.0/8\" ({e}).") from e
        self.clock = clock
        self.quota = Quota(self.cfg.daily_quota_mb * 1_000_000,
                           counter or uplink_counter(self.cfg.uplink_interfaces),
                           library.data_dir / "sync" / "quota.json", clock)
        self._session_settings = session_settings or {}
        self.session: lt.session | None = None
        self.jobs: dict[tuple[str, int], _Job] = {}
        self.peer_source: Callable[[], list[dict[str, Any]]] | None = None
        #: Called when what :meth:`txt_fields` says changed (zeroconf announces it again).
        self.on_announce: Callable[[], None] | None = None
        self._announced: dict[str, str] = {}
        self._probe_due = False
        self._errors: deque[str] = deque(maxlen=MAX_ERRORS)
        self._feeds: dict[str, dict[str, Any]] = {
            u: {"url": u, "polled": None, "ok": None, "error": "", "offers": {}}
            for u in self.cfg.feeds}
        self._peer_tries: dict[tuple[str, str, int], float] = {}
        self.neighbours: dict[str, _Neighbour] = {}   # by device id; replaced, not edited
        self.hub = Hub(self.dev_id if hub_candidate(self.cfg.hub) else "", "alone",
                       hub_candidate(self.cfg.hub))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_now = threading.Event()
        self._threads: list[threading.Thread] = []
        self._gate_reason = ""
        self._last_status: dict[str, Any] | None = None
        self._last_status_write = 0.0
        self._next_poll = 0.0
        #: Jobs whose transfer failed while alerts were being handled: closed after (a
        #: close pops alerts, and libtorrent frees the ones in hand at each pop).
        self._failed: list[tuple[_Job, str]] = []
        self._started = time.monotonic()
        device = device or Device(data_dir=library.data_dir)
        self.software = SoftwareChannel(device, self._gate) if updates_on(device) else None

    # -- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Open the session and start the session and feed threads."""
        kbps = 1000 // 8
        self.session = make_session(self.cfg.listen_interfaces, lsd=self.cfg.lsd, extra={
            "upload_rate_limit": self.cfg.upload_rate_kbps * kbps,
            "download_rate_limit": self.cfg.download_rate_kbps * kbps,
            "urlseed_max_request_bytes": URLSEED_REQUEST_BYTES,
            # Peers are LAN neighbours this service names (zeroconf): one that re-adds a
            # release to seed it, or restarts, refuses a few connections. libtorrent's
            # defaults (wait 60 s × failures, give up after 3) left a school waiting on
            # the LAN until the stall timeout; retry every 2 s and never give up.
            "min_reconnect_time": 2,
            "max_failcount": 1000,
            **self._session_settings})
        self._set_peer_classes()
        self._started = time.monotonic()
        for target, name in ((self._session_loop, "ketang-sync"),
                             (self._feed_loop, "ketang-sync-feeds")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("sync: listening on port %s", self.listen_port)

    def _set_peer_classes(self) -> None:
        """Uplink limits for the world, the LAN's own limit for ``sync.lan_networks``.

        The session's rate limits (``sync.upload_rate_kbps``, ``download_rate_kbps``)
        belong to libtorrent's global peer class; every address is put in it, then the
        LAN's ranges in a class of their own whose limit is ``sync.lan_rate_kbps`` both
        ways (libtorrent's default would exempt them entirely, and a device seeding its
        neighbours must not starve the classroom's Wi-Fi). A feed whose address is a LAN
        address (a township mirror) stays in the uplink's class.
        """
        ses = self._live_session
        lan = ses.create_peer_class("lan")
        info = ses.get_peer_class(lan)
        rate = self.cfg.lan_rate_kbps * 1000 // 8
        info["label"], info["upload_limit"], info["download_limit"] = "lan", rate, rate
        ses.set_peer_class(lan, info)
        f = lt.ip_filter()
        world = 1 << ses.global_peer_class_id
        f.add_rule("0.0.0.0", "255.255.255.255", world)
        f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", world)
        for net in self.cfg.lan_networks:
            first, last = network_range(net)
            f.add_rule(first, last, 1 << lan)
        for url in self.cfg.feeds:
            host = (urllib.parse.urlsplit(url).hostname or "").strip("[]")
            if in_networks(host, self.cfg.lan_networks):
                f.add_rule(host, host, world)
        ses.set_peer_class_filter(f)

    @property
    def listen_port(self) -> int:
        """The port libtorrent listens on (advertised to LAN peers by zeroconf)."""
        return self.session.listen_port() if self.session is not None else 0

    def close(self) -> None:
        """Stop both threads, save every transfer's resume data, close the session."""
        self._stop.set()
        self._poll_now.set()
        for t in self._threads:
            t.join(timeout=30)
        for job in list(self.jobs.values()):
            try:
                job.transfer.close(on_other=self._dispatch)
            except (KetangError, RuntimeError, OSError) as e:
                self._error(f"{job.key[0]} v{job.key[1]}: saving resume data failed: {e}")
        self.quota.update()
        self.quota.save()
        self._write_status(force=True, stopped=True)
        self.session = None

    def poll_feeds_now(self) -> None:
        """Ask the feed thread to poll at once (still only inside a window)."""
        self._next_poll = 0.0
        self._poll_now.set()

    # -- the session thread ----------------------------------------------------------

    @property
    def _live_session(self) -> lt.session:
        """The libtorrent session, between :meth:`start` and :meth:`close`."""
        assert self.session is not None, "start() makes the session"
        return self.session

    def _error(self, msg: str) -> None:
        log.warning("sync: %s", msg)
        with self._lock:
            if not self._errors or not self._errors[-1].endswith(msg):
                self._errors.append(f"{_now_iso()} {msg}")

    def _session_loop(self) -> None:
        last_tick = 0.0
        while not self._stop.is_set():
            try:
                self._live_session.wait_for_alert(500)
                self._dispatch(self._live_session.pop_alerts())
                self._fail_pending()
                if time.monotonic() - last_tick >= TICK:
                    last_tick = time.monotonic()
                    self._tick()
            except Exception as e:  # the thread must outlive any one bad moment
                log.exception("sync: session thread")
                self._error(f"internal error: {e!r}")
                time.sleep(1.0)

    def _dispatch(self, alerts: list) -> None:
        """Hand popped alerts to every job. Closes no transfer (:attr:`_failed`): the
        alerts are valid only until the session's next pop."""
        for a in alerts:
            if isinstance(a, lt.listen_failed_alert):
                self._error(f"cannot listen on {self.cfg.listen_interfaces}: {a.message()}; "
                            "check sync.listen_interfaces")
            elif isinstance(a, lt.url_seed_alert):
                for job in self.jobs.values():
                    if job.transfer.handle is not None and a.handle == job.transfer.handle:
                        job.seed_errors[a.server_url()] = (time.monotonic(),
                                                           a.error.message())
        for job in list(self.jobs.values()):
            if job.transfer.handle is None:
                continue
            try:
                job.transfer.poll(alerts)
            except KetangError as e:
                self._failed.append((job, str(e)))

    def _fail_pending(self) -> None:
        while self._failed:
            job, msg = self._failed.pop(0)
            if job.state != "error":
                self._fail(job, msg)

    def _fail(self, job: _Job, msg: str) -> None:
        channel, version = job.key
        job.errors.append(msg)
        self._error(f"{channel} v{version}: {msg}")
        job.state, job.failed_at = "error", time.monotonic()
        try:
            job.transfer.close(on_other=self._dispatch)
        except (KetangError, RuntimeError, OSError):
            pass

    def _gate(self) -> str:
        """Why downloads must wait now ('' when they may go on)."""
        if not in_window(self.windows, self.clock()):
            return "window"
        if self.quota.exhausted:
            return "quota"
        return ""

    def _tick(self) -> None:
        self.quota.update()
        self._gate_reason = gate = self._gate()
        self._pick_up_staged()
        if self.software is not None:
            self.software.tick()
        for job in list(self.jobs.values()):
            t = job.transfer
            if job.state == "error":
                if time.monotonic() - job.failed_at >= self.cfg.poll_interval:
                    del self.jobs[job.key]  # tried again from its staged folder
                continue
            if job.state in ("downloading", "waiting") and t.done:
                job.state = "activating"
            if job.state == "activating":
                self._activate(job)
                continue
            st = t.status
            if t.bad_data:
                self._fail(job, f"{st.hash_failures} pieces failed their hash check: the web "
                                "seed or peers send bad data; nothing bad was stored. Tried "
                                f"again in {self.cfg.poll_interval} s. "
                           + "; ".join(st.errors[-2:]))
                continue
            self._lan_first(job, uplink_open=not gate)
            lan_busy = time.monotonic() - job.lan_seen < 5.0
            if gate and job.state == "downloading" and not lan_busy:
                job.state = "waiting"  # LAN peers go on; only the web seeds wait
            elif (not gate or lan_busy) and job.state == "waiting":
                job.state = "downloading"
        self._connect_peers()
        self._announce_if_changed()
        self._write_status()

    @property
    def uses_uplink(self) -> bool:
        """This device fetches from the feeds over its uplink: it is the hub, or no hub
        answers (a school with no neighbours behaves as it always did). Just after start,
        while zeroconf may still be finding neighbours, a device that looks alone waits."""
        if self.hub.how == "alone" and self.peer_source is not None \
                and time.monotonic() - self._started < self.discovery_grace:
            return False
        return self.hub.is_self or not self.hub.id

    @property
    def discovery_grace(self) -> float:
        """Seconds after start before a device that sees no neighbour counts as alone."""
        return 2 * self.probe_interval + 2.0

    def _lan_first(self, job: _Job, uplink_open: bool) -> None:
        """Add or remove the job's web seeds, and say which pieces it fetches now: LAN
        peers first, the mirror's pieces shared among the schools fetching the release
        together (appliance.sync.township)."""
        h = job.transfer.handle
        if h is None or not h.is_valid() or job.state not in ("downloading", "waiting"):
            return
        self._count_sources(job)
        infos = h.get_peer_info()
        web = (lt.peer_info.web_seed, lt.peer_info.http_seed)
        now = time.monotonic()
        st = h.status()
        ours, wanted = list(st.pieces), job.transfer.wanted_pieces()
        lan = [p for p in infos if p.connection_type not in web]
        on_lan = lan_pieces(ours, wanted, (list(p.pieces) for p in lan))
        job.lan_supply = len(on_lan)
        # Web seeds once on stay on through a neighbour's reconnect: turning them off
        # drops the mirror's response in flight, and the bytes it had sent are lost.
        expected = (not job.seeds_on and now - job.started < LAN_HEAD_START
                    and self._neighbour_waits(job, lan))
        stalled = now - job.lan_seen >= self.cfg.lan_stall_seconds
        # The share depends on the neighbours' feeds only, not on libtorrent's connections
        # of the moment, so every school computes the same split and keeps it.
        share = self._share(job)
        allowed: list[int] | None = None
        if share is None:
            want = bool(job.web_seeds) and web_seed_wanted(
                uplink_open=uplink_open, uses_uplink=self.uses_uplink,
                lan_can_supply=job.lan_supply > 0, lan_idle=now - job.lan_seen,
                stall=self.cfg.lan_stall_seconds, lan_expected=expected)
        else:
            # This school's share of what no LAN peer has, from the mirror, alone (the
            # other pieces wait: a web seed must not be asked for them); then the rest
            # from the LAN. A stalled LAN brings the web seeds back for everything.
            mine = own_pieces(sorted(missing_pieces(ours, wanted)), share, on_lan)
            want = bool(job.web_seeds) and uplink_open and (bool(mine) or stalled) \
                and not expected  # a neighbour may have some of them: see its pieces first
            if want and mine and not stalled:
                allowed = mine
        job.transfer.restrict_pieces(allowed)
        if share != job.share:
            log.info("sync %s v%s: mirror share %s (neighbours fetching or holding it: %s)",
                     *job.key, f"{share[0] + 1}/{share[1]}" if share else "none",
                     self._share_inputs(job))
        job.share = share
        if want and not job.seeds_on:
            for url in job.web_seeds:
                h.add_url_seed(url)
            job.transfer.held_seeds.clear()
            log.info("sync %s v%s: web seeds on (%s)", *job.key,
                     "LAN stalled" if stalled
                     else f"this school's share {share[0] + 1}/{share[1]}: {len(allowed or [])} "
                          "pieces" if share else "no LAN peer has the pieces left")
        elif not want and job.seeds_on:
            for url in job.web_seeds:
                h.remove_url_seed(url)
            job.transfer.held_seeds.update(job.web_seeds)
            log.info("sync %s v%s: web seeds held back (%s)", *job.key,
                     "uplink closed" if not uplink_open else "the rest comes from the LAN"
                     if share else "LAN peers have pieces")
        job.seeds_on = want

    def _share(self, job: _Job) -> tuple[int, int] | None:
        """This device's share of the release's pieces from the mirror, among the live
        neighbours fetching it together (township.mirror_share)."""
        return mirror_share(self.dev_id, hub_candidate(self.cfg.hub) and bool(job.web_seeds),
                            job.key[1], self._share_inputs(job))

    def _share_inputs(self, job: _Job) -> list[tuple[str, int, int, bool]]:
        """(id, version held, version fetching, hub candidate) of each live neighbour."""
        channel = job.key[0]
        now = time.monotonic()
        return [(n.id, n.feed.active.get(channel, 0), n.feed.fetching.get(channel, 0),
                 n.feed.hub_candidate) for n in self.neighbours.values()
                if n.feed is not None and now - n.ok_at < self.cfg.hub_timeout]

    def _neighbour_waits(self, job: _Job, lan: list) -> bool:
        """A live neighbour holds or fetches the job's release but is not connected yet
        (its pieces are not known): a new transfer gives it LAN_HEAD_START seconds."""
        channel, version = job.key
        busy = lt.peer_info.connecting | lt.peer_info.handshake  # bitfield not seen yet
        connected = {str(p.ip[0]) for p in lan if not p.flags & busy}
        return any(n.feed is not None and not n.error and (
            n.feed.active.get(channel, 0) >= version or n.feed.fetching.get(channel) == version)
            and not connected & set(n.addresses) for n in self.neighbours.values())

    def _count_sources(self, job: _Job, final: bool = False) -> None:
        """Where the job's payload came from: LAN peers or web seeds (the mirror)."""
        h = job.transfer.handle
        if job.state == "seeding" or h is None or not h.is_valid():
            return  # a seeding torrent downloads nothing more
        web = (lt.peer_info.web_seed, lt.peer_info.http_seed)
        conns = [] if final else [
            (str(p.ip[0]), int(p.ip[1]), p.connection_type in web, p.total_download)
            for p in h.get_peer_info()]
        total = job.payload_before + job.transfer.status.payload_downloaded
        lan = job.sources.lan
        job.sources.update(conns, total, job.seeds_on)
        if job.sources.lan > lan:
            job.lan_seen = time.monotonic()

    def _pick_up_staged(self) -> None:
        active = {ch: r.version for ch, r in self.library.active().items()}
        trusted = None
        for d in staged_folders(self.library.data_dir):
            channel, version = d.parent.name, int(d.name)
            if (channel, version) in self.jobs:
                continue
            newer = [v for (c, v), j in self.jobs.items()
                     if c == channel and v > version and j.state != "seeding"]
            current = active.get(channel)
            if (current is not None and version < current) or newer:
                shutil.rmtree(d, ignore_errors=True)  # superseded: its links and part file
                continue
            if self.cfg.channels and channel not in self.cfg.channels:
                continue
            if trusted is None:
                trusted = load_trusted_keys(self.settings.trust.keys_dir)
            try:
                rel = load_staged(d, trusted)
                if rel is None:
                    continue
                self._start_job(rel, current)
            except KetangError as e:
                self._error(f"{channel} v{version} in {d}: {e}")
                shutil.rmtree(d, ignore_errors=True)

    def _start_job(self, rel, current: int | None) -> None:
        m = rel.manifest
        wanted = set(self.settings.subscriptions.subscription().blobs(m))
        t = ReleaseTransfer(self._live_session, self.library, m, rel.manifest_bytes, rel.signature,
                            rel.torrent, peers=rel.peers,
                            resume_interval=self.cfg.resume_interval, lsd=self.cfg.lsd,
                            wanted=wanted, hold_web_seeds=True,
                            on_event=lambda msg: log.info("sync %s v%s: %s", m.channel,
                                                          m.version, msg))
        seeds = list(dict.fromkeys([*rel.web_seeds, *t.torrent.params.url_seeds]))
        job = _Job(t, rel.source, seeds)
        t.held_seeds.update(seeds)
        self.jobs[(m.channel, m.version)] = job
        free = shutil.disk_usage(self.library.data_dir).free
        reserve = self.settings.device.reserve_mb * 1_000_000
        if t.status.needed_bytes + reserve > free:
            self._fail(job, f"needs {human_bytes(t.status.needed_bytes)} and keeps "
                            f"{human_bytes(reserve)} in reserve, but "
                            f"{self.library.data_dir} has {human_bytes(free)} free. Nothing "
                            "was changed; free space (`ketang gc`) or subscribe to less.")
            return
        t.start()  # web seeds held back: _lan_first adds them when the LAN cannot help
        for h, p in rel.peers:
            t.live_handle.connect_peer((h, p))
        if current == m.version:
            job.state = "seeding"
        elif t.done:
            job.state = "activating"
        elif self._gate_reason:
            job.state = "waiting"
        log.info("sync: %s v%s from %s: needs %d blobs (%d bytes)", m.channel, m.version,
                 rel.source or "staged", len(t.status.needed), t.status.needed_bytes)

    def _activate(self, job: _Job) -> None:
        channel, version = job.key
        current = self.library.active_version(channel)
        if current is not None and current > version:
            self._fail(job, f"v{current} is already active; v{version} is older and was "
                            "not activated.")
            return
        try:
            job.transfer.activate()
        except KetangError as e:  # another import holds the lock: try again next tick
            job.errors.append(str(e))
            return
        # Kept beside the manifest, so LAN peers can fetch it from this device's feed.
        atomic_write_bytes(self.library.release_dir(channel, version) / TORRENT_NAME,
                           (job.transfer.work_dir / TORRENT_NAME).read_bytes())
        self._count_sources(job, final=True)
        job.payload_before += job.transfer.status.payload_downloaded  # the handle goes
        job.state = "seeding"
        log.info("sync: activated %s v%s", channel, version)
        try:
            # Seed every blob, linked read-only from the store.
            job.transfer.restart(on_other=self._dispatch)
        except (KetangError, RuntimeError, OSError) as e:
            self._error(f"{channel} v{version}: cannot seed it: {e}")
        for key, other in list(self.jobs.items()):
            if key[0] == channel and key[1] < version:
                try:
                    other.transfer.close(on_other=self._dispatch)
                except (KetangError, RuntimeError, OSError):
                    pass
                del self.jobs[key]
                shutil.rmtree(other.transfer.work_dir, ignore_errors=True)

    def _connect_peers(self) -> None:
        """Make LAN neighbours that hold a release (or a newer one), or are fetching it
        now, libtorrent peers of it: in-progress neighbours are found at once, not by
        local service discovery minutes later."""
        neighbours = self.neighbours
        for peer in self._peers():
            port = peer.get("bt_port")
            if not port:
                continue
            n = neighbours.get(peer.get("id", ""))
            feed = n.feed if n is not None else None
            for job in self.jobs.values():
                channel, version = job.key
                h = job.transfer.handle
                if h is None:
                    continue
                has = max(peer["channels"].get(channel, 0),
                          feed.active.get(channel, 0) if feed else 0)
                fetching = feed is not None and feed.fetching.get(channel) == version
                if has < version and not fetching:
                    continue
                for addr in peer.get("addresses", [])[:2]:
                    h.connect_peer((addr, int(port)))

    def _peers(self) -> list[dict[str, Any]]:
        if self.peer_source is None:
            return []
        try:
            return list(self.peer_source())
        except Exception as e:  # zeroconf trouble must not stop transfers
            self._error(f"zeroconf peers: {e!r}")
            return []

    # -- the feed thread ---------------------------------------------------------------

    @property
    def probe_interval(self) -> float:
        """Seconds between asks of the neighbours' feeds (a quarter of the hub timeout)."""
        return max(1.0, min(5.0, self.cfg.hub_timeout / 4))

    def _feed_loop(self) -> None:
        last_probe = 0.0
        while not self._stop.is_set():
            try:
                since = time.monotonic() - last_probe
                if since >= self.probe_interval or (self._probe_due and since >= PROBE_GAP):
                    last_probe = time.monotonic()
                    self._probe_due = False
                    self._probe_neighbours()
                    self._ask_neighbours()
                    self._ask_neighbours_software()
                if self.uses_uplink and not self._gate() \
                        and time.monotonic() >= self._next_poll:
                    self._next_poll = time.monotonic() + self.cfg.poll_interval
                    self._poll_feeds()
                if self.software is not None:
                    self.software.step()
            except Exception as e:
                log.exception("sync: feed thread")
                self._error(f"internal error polling feeds: {e!r}")
            self._poll_now.wait(PROBE_GAP if self._probe_due else
                                min(self.probe_interval, self.cfg.poll_interval))
            self._poll_now.clear()

    def neighbour_changed(self, peer: dict[str, Any]) -> None:
        """Zeroconf saw a neighbour appear or change its record (it started fetching a
        release, or finished one): ask the neighbours' feeds soon (at most every
        PROBE_GAP seconds), not at the next probe interval."""
        if peer.get("id") and peer.get("id") != self.dev_id:
            self._probe_due = True
            self._poll_now.set()

    def txt_fields(self) -> dict[str, str]:
        """What this device's zeroconf record adds: ``fetch.<channel>=<version>`` for each
        release it fetches now (the feed's ``fetching``, announced by multicast at once)."""
        return {f"fetch.{ch}": str(v) for ch, v in self.feed_extras()["fetching"].items()}

    def _announce_if_changed(self) -> None:
        fields = self.txt_fields()
        if fields != self._announced:
            self._announced = fields
            if self.on_announce is not None:
                self.on_announce()

    def _probe_neighbours(self) -> None:
        """Ask each neighbour zeroconf shows for its feed index; elect the hub."""
        now = time.monotonic()
        old = self.neighbours
        fresh: dict[str, _Neighbour] = {}
        for peer in self._peers():
            pid, addrs, port = peer.get("id", ""), peer.get("addresses") or [], peer.get("port")
            if not pid or pid == self.dev_id or not addrs or not port:
                continue
            n = _Neighbour(pid, str(peer.get("name", "")), list(addrs), int(port),
                           peer.get("bt_port"))
            prev = old.get(pid)
            if prev is not None:
                n.feed, n.ok_at = prev.feed, prev.ok_at
            try:
                feed = read_device_feed(n.url, PROBE_TIMEOUT)
                if feed.id != pid:
                    raise FeedError(f"{n.url} says it is device {feed.id!r}, but zeroconf "
                                    f"announced {pid!r}; the neighbour is ignored.")
                n.feed, n.ok_at, n.error = feed, time.monotonic(), ""
            except FeedError as e:
                n.error = str(e)
                if prev is None or not prev.error:
                    self._error(f"neighbour {n.name or pid}: {e}")
            fresh[pid] = n
        self.neighbours = fresh
        alive = [n for n in fresh.values()
                 if n.feed is not None and now - n.ok_at < self.cfg.hub_timeout]
        was = self.hub
        self.hub = elect_hub(self.dev_id, self.cfg.hub,
                             [n.id for n in alive if n.feed and n.feed.hub_candidate],
                             [n.id for n in alive])
        if self.hub != was:
            log.info("sync: hub is now %s (%s)%s", self.hub.id or "nobody", self.hub.how,
                     ": this device" if self.hub.is_self else "")
            if self.uses_uplink and not (was.is_self or not was.id):
                self._next_poll = 0.0  # taking over: poll the feeds at once

    def _known_versions(self) -> dict[str, int]:
        """Per channel, the newest version active or staged (nothing older is fetched)."""
        known = {ch: r.version for ch, r in self.library.active().items()}
        for d in staged_folders(self.library.data_dir):
            known[d.parent.name] = max(known.get(d.parent.name, 0), int(d.name))
        return known

    def _take(self, url: str, channel: str, version: int, web_seeds: Iterable[str],
              peers: Iterable[tuple[str, int]] = ()) -> None:
        rel = fetch_release(url, channel, version,
                            load_trusted_keys(self.settings.trust.keys_dir))
        rel.web_seeds.extend(web_seeds)
        rel.peers = list(peers)
        stage(self.library.data_dir, rel)
        log.info("sync: staged %s v%s from %s", channel, version, url)

    def _poll_feeds(self) -> None:
        for url in self.cfg.feeds:
            info = self._feeds[url]
            info["polled"] = _now_iso()
            try:
                offers, is_seed = read_feed_index(url)
                info["offers"] = offers
                known = self._known_versions()
                for channel, version in sorted(offers.items()):
                    if self.cfg.channels and channel not in self.cfg.channels:
                        continue
                    if version > known.get(channel, 0):
                        seed = feed_root(url).removesuffix("KETANG/") if is_seed else None
                        self._take(url, channel, version, [seed] if seed else [])
                info["ok"], info["error"] = True, ""
            except KetangError as e:
                info["ok"], info["error"] = False, str(e)
                self._error(f"feed {url}: {e}")
            self._poll_software(feed_root(url).removesuffix("KETANG/"))

    def _poll_software(self, url: str, peers: Iterable[tuple[str, int]] = (),
                       source: str = "") -> None:
        """The software channel of a feed (``url``: the feed's folder) or neighbour."""
        if self.software is None:
            return
        try:
            if self.software.consider(self._live_session, url, list(peers), source):
                log.info("sync: fetching software %s from %s",
                         self.software.offer.name if self.software.offer else "",
                         self.software.source)
        except KetangError as e:      # SoftwareError, UpdateError: one line each
            self.software.fail(str(e))
            self._error(f"software {source or url}: {e}")

    def _ask_neighbours_software(self) -> None:
        """Neighbours (found by zeroconf, their feed read) that hold a verified software
        update newer than this system: fetch it from them (and the web seeds in its
        torrent, when reachable)."""
        if self.software is None:
            return
        for n in sorted(self.neighbours.values(), key=lambda n: (n.id != self.hub.id, n.id)):
            if n.feed is None or n.error or not n.feed.software or not n.bt_port:
                continue
            key = (n.id, "software", 0)
            if time.monotonic() < self._peer_tries.get(key, 0.0):
                continue
            self._peer_tries[key] = time.monotonic() + min(NEIGHBOUR_RETRY,
                                                           self.cfg.poll_interval)
            self._poll_software(n.url, [(a, int(n.bt_port)) for a in n.addresses[:2]],
                                f"neighbour {n.name or n.id}")

    def _own_web_seeds(self) -> list[str]:
        """This device's own feeds as web seeds, for a release a neighbour says came
        from a web-seeding feed (each school reaches the mirror over its own uplink)."""
        return [feed_root(u).removesuffix("KETANG/") for u in self.cfg.feeds]

    def _ask_neighbours(self) -> None:
        """Fetch from a LAN neighbour the signed release it holds or is fetching when it
        is newer than this device's: the hub first, then the others by id. Signature
        first, as from any feed; a bad answer is reported and nothing is staged."""
        neighbours = sorted((n for n in self.neighbours.values() if n.feed and not n.error),
                            key=lambda n: (n.id != self.hub.id, n.id))
        for n in neighbours:
            assert n.feed is not None
            offers = dict(n.feed.fetching)
            for ch, v in n.feed.active.items():
                offers[ch] = max(v, offers.get(ch, 0))
            known = self._known_versions()
            for channel, version in sorted(offers.items()):
                if self.cfg.channels and channel not in self.cfg.channels:
                    continue
                key = (n.id, channel, version)
                if version <= known.get(channel, 0) or \
                        time.monotonic() < self._peer_tries.get(key, 0.0):
                    continue
                self._peer_tries[key] = time.monotonic() + min(NEIGHBOUR_RETRY,
                                                               self.cfg.poll_interval)
                peers = [(a, int(n.bt_port)) for a in n.addresses[:2]] if n.bt_port else []
                seeds = self._own_web_seeds() if n.feed.upstream_web_seed else []
                try:
                    self._take(n.url, channel, version, seeds, peers)
                    known[channel] = version
                except KetangError as e:
                    self._error(f"neighbour {n.name or n.id} ({n.url}): {e}")

    def feed_extras(self) -> dict[str, Any]:
        """What this device's own feed index adds for its neighbours (township fields)."""
        jobs = list(self.jobs.items())  # one copy: the web server's thread calls this too
        fetching = {ch: v for (ch, v), j in sorted(jobs) if j.state not in ("seeding", "error")}
        return {
            "device": {"id": self.dev_id, "hub_candidate": hub_candidate(self.cfg.hub),
                       "hub": self.hub.id},
            "fetching": fetching,
            "upstream_web_seed": any(j.web_seeds for _, j in jobs),
            "software": self.software is not None and self.software.shared() is not None,
        }

    # -- status ------------------------------------------------------------------------

    def _job_summary(self, job: _Job) -> dict[str, Any]:
        t = job.transfer
        channel, version = job.key
        st = t.status
        out: dict[str, Any] = {
            "channel": channel, "version": version, "state": job.state,
            "source": job.source, "needed_blobs": len(st.needed),
            "done_blobs": len(st.fetched), "needed_bytes": st.needed_bytes,
            "done_bytes": 0, "download_rate": 0, "upload_rate": 0, "peers": 0,
            "web_seeds": [], "errors": list(job.errors) + st.errors[-3:],
            "bytes_lan": job.sources.lan, "bytes_mirror": job.sources.mirror,
            "web_seeds_on": job.seeds_on, "lan_pieces": job.lan_supply,
            "mirror_share": [job.share[0] + 1, job.share[1]] if job.share else None,
        }
        if job.state == "seeding":
            out["done_bytes"] = st.needed_bytes
        h = t.handle
        if h is None or not h.is_valid():
            return out
        s = h.status()
        sizes = t.manifest.blobs()
        out["done_bytes"] = (st.needed_bytes if job.state == "seeding" else min(
            st.needed_bytes, sum(sizes[x] for x in st.fetched) + max(
                0, s.total_wanted_done - sum(sizes[x] for x in st.fetched))))
        out["download_rate"] = s.download_payload_rate
        out["upload_rate"] = s.upload_payload_rate
        out["peers"] = s.num_peers
        web_conns = sum(1 for p in h.get_peer_info()
                        if p.connection_type in (lt.peer_info.web_seed, lt.peer_info.http_seed))
        for url in sorted(set(h.url_seeds()) | set(job.web_seeds)):
            when, err = job.seed_errors.get(url, (0.0, ""))
            if err and time.monotonic() - when < 60:
                state = "error"
            elif not job.seeds_on:
                state = "held"
            elif web_conns:
                state = "connected"
            else:
                state = "idle"
            out["web_seeds"].append({"url": url, "state": state, "error": err})
        return out

    def status(self) -> dict[str, Any]:
        """The status document (what the status file holds), from the session thread."""
        releases = [self._job_summary(j) for j in sorted(self.jobs.values(),
                                                         key=lambda j: j.key)]
        gate = self._gate_reason
        downloading = [r for r in releases if r["state"] in ("downloading", "activating")]
        # A state code; appliance.words says it in words (sync_summary's "message").
        if downloading:
            state = "downloading"
        elif any(r["state"] == "waiting" for r in releases):
            state = "waiting-" + gate
        elif any(r["state"] == "error" for r in releases):
            state = "error"
        else:
            state = "idle"
        with self._lock:
            errors = list(self._errors)
        feeds = [{k: v for k, v in f.items()} for f in self._feeds.values()]
        now = time.monotonic()
        neighbours = [{
            "id": n.id, "name": n.name, "url": n.url,
            "ok": n.feed is not None and now - n.ok_at < self.cfg.hub_timeout,
            "hub_candidate": bool(n.feed and n.feed.hub_candidate),
            "active": dict(n.feed.active) if n.feed else {},
            "fetching": dict(n.feed.fetching) if n.feed else {},
            "error": n.error} for n in sorted(self.neighbours.values(), key=lambda n: n.id)]
        hub_name = next((n.name for n in self.neighbours.values() if n.id == self.hub.id), "")
        return {
            "pid": os.getpid(),
            "state": state,
            "listen_port": self.listen_port,
            "quota": {"daily_bytes": self.quota.daily_bytes, "used_bytes": self.quota.used,
                      "remaining_bytes": self.quota.remaining, "day": self.quota.day},
            "feeds": feeds,
            "township": {"device_id": self.dev_id, "hub": self.hub.id, "hub_name": hub_name,
                         "hub_how": self.hub.how, "hub_is_self": self.hub.is_self,
                         "uses_uplink": self.uses_uplink, "neighbours": neighbours},
            "releases": releases,
            "software": self.software.summary() if self.software is not None else {
                "state": "off", "error": ""},
            "errors": errors,
        }

    def _write_status(self, force: bool = False, stopped: bool = False) -> None:
        doc = self.status() if self.session is not None else dict(self._last_status or {})
        if stopped:
            doc.update(state="stopped", pid=0)
            for r in doc.get("releases", []):
                r.update(download_rate=0, upload_rate=0, peers=0)
        if doc == self._last_status:
            return  # an idle device writes nothing
        if not force and time.monotonic() - self._last_status_write < STATUS_MIN_INTERVAL:
            return
        self._last_status = doc
        self._last_status_write = time.monotonic()
        atomic_write_json(self.settings.sync.status_file, {**doc, "updated": _now_iso()})
