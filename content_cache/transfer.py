"""Moving a release's missing blobs with libtorrent: only the missing bytes, resumable.

Given a *verified* manifest, its torrent and a :class:`Library`, a
:class:`ReleaseTransfer`:

1. works out which of the release's blobs the store lacks;
2. gives every file but the missing ones priority 0, and hard-links into the
   download folder (so libtorrent can seed them) only the held blobs that no
   downloadable piece touches: libtorrent writes a piece before checking its hash,
   so nothing it writes may land in a file of the store (:meth:`_prepare_files`);
3. downloads the missing files from peers and web seeds;
4. checks each finished file against the manifest's sha256, then links it into the
   blob store (temp name + rename, fsynced) — a blob in the store is verified or absent;
5. once every blob is present, activates the release through ``Library.activate``.

Resume data is saved soon after pieces are verified (at most once every
``resume_interval`` seconds, only while pieces come in) and on :meth:`close`, written
atomically after the files it describes are fsynced; so after a power cut the download
goes on from what was verified, losing at most the last few seconds.

The download folder is ``<data_dir>/sync/<channel>/<version>/`` (same filesystem as
the store, so links work); it holds ``KETANG/blobs/…``, libtorrent's part file and
``resume.dat``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import libtorrent as lt

from .atomic import atomic_write_bytes, chmod_if_supported, fsync_dir
from .blobstore import CHUNK, blob_relpath
from .bundle import BUNDLE_DIR
from .errors import BlobError, KetangError
from .library import Library
from .manifest import Manifest
from .torrent import ReleaseTorrent, load_release_torrent

RESUME_FILE = "resume.dat"
MAX_HASH_FAILURES = 20
BLOCK = 16 * 1024  # libtorrent's block: the unit it requests and marks downloaded
#: Resume data is saved once this much payload arrived since the last save (what a power
#: cut may cost, besides what is in flight), and at most every MIN_RESUME_GAP seconds.
RESUME_BYTES = 512 * 1024
MIN_RESUME_GAP = 0.2
FLUSH_RETRIES = 5

#: A closed network: no DHT, UPnP, NAT-PMP or LSD unless asked for; TCP only.
CLOSED_NETWORK = {
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "enable_incoming_utp": False,
    "enable_outgoing_utp": False,
    "anonymous_mode": False,
    "user_agent": "ketang",
    "alert_queue_size": 10000,
    # A satellite link comes back after seconds: try the web seed again soon.
    "urlseed_wait_retry": 5,
}


def _covered(ranges: list[tuple[int, int]], lo: int, hi: int) -> bool:
    """True if sorted, non-overlapping ``ranges`` cover ``[lo, hi)`` wholly."""
    for a, b in ranges:
        if a <= lo < b:
            lo = b
            if lo >= hi:
                return True
    return lo >= hi


def _endpoint(url: str) -> tuple[str, int]:
    """(host, port) a web seed's URL connects to."""
    u = urlsplit(url)
    return (u.hostname or "", u.port or (443 if u.scheme == "https" else 80))


class TransferError(KetangError):
    """A download cannot go on: a web seed or peer sends bad data, a disk error, a timeout."""


#: peer: to hear of peers banned for bad data; piece_progress: to save resume data soon
#: after pieces are verified.
ALERT_MASK = (lt.alert_category.error | lt.alert_category.status | lt.alert_category.storage
              | lt.alert_category.file_progress | lt.alert_category.peer
              | lt.alert_category.piece_progress)


def make_session(listen_interfaces: str = "127.0.0.1:0", lsd: bool = False,
                 extra: dict | None = None) -> lt.session:
    """A libtorrent session for a closed network, listening on ``listen_interfaces``."""
    settings = {
        **CLOSED_NETWORK,
        "listen_interfaces": listen_interfaces,
        "enable_lsd": lsd,
        "alert_mask": ALERT_MASK,
        **(extra or {}),
    }
    return lt.session(cast("lt.settings_pack", settings))


@dataclass
class TransferStatus:
    """What a transfer has done so far (for ``ketang sync status`` and tests)."""

    channel: str
    version: int
    needed: list[str]                       # sha256 of blobs the store lacked at start
    needed_bytes: int
    fetched: list[str] = field(default_factory=list)   # verified and put in the store
    errors: list[str] = field(default_factory=list)
    hash_failures: int = 0
    payload_downloaded: int = 0
    activated: bool = False


def _sha256_and_sync(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
        os.fsync(f.fileno())
    return h.hexdigest()


class ReleaseTransfer:
    """One release being fetched into a Library by a libtorrent session."""

    def __init__(
        self,
        session: lt.session,
        library: Library,
        manifest: Manifest,
        manifest_bytes: bytes,
        signature: bytes,
        torrent: bytes | ReleaseTorrent,
        peers: Iterable[tuple[str, int]] = (),
        resume_interval: float = 2.0,
        on_event: Callable[[str], None] | None = None,
        lsd: bool = False,
        wanted: Collection[str] | None = None,
        hold_web_seeds: bool = False,
    ) -> None:
        self.session = session
        self.library = library
        self.manifest = manifest
        self._manifest_bytes = manifest_bytes
        self._signature = signature
        self.torrent = (torrent if isinstance(torrent, ReleaseTorrent) else
                        load_release_torrent(torrent, manifest, "the release torrent"))
        self.peers = list(peers)
        self.resume_interval = resume_interval
        self.on_event = on_event or (lambda _msg: None)
        self.lsd = lsd
        #: The torrent's own web seeds are not added at start; the caller adds them
        #: (``handle.add_url_seed``) when it wants them (a LAN-first sync service).
        self.hold_web_seeds = hold_web_seeds
        #: Web seeds the caller holds back for now: still a source ``bad_data`` counts on.
        self.held_seeds: set[str] = set()
        self.work_dir = library.data_dir / "sync" / manifest.channel / str(manifest.version)
        self.resume_path = self.work_dir / RESUME_FILE
        blobs = manifest.blobs()
        # ``wanted`` (a subscription's blobs) narrows the delta; the rest stays at priority 0.
        needed = sorted(sha for sha in blobs if not library.store.has(sha)
                        and (wanted is None or sha in wanted))
        self.status = TransferStatus(manifest.channel, manifest.version, needed,
                                     sum(blobs[s] for s in needed))
        self._pending = set(needed)
        self._by_index = {i: sha for sha, i in self.torrent.file_index.items()}
        self.handle: lt.torrent_handle | None = None
        self._last_resume = 0.0
        self._unsaved_pieces = 0
        self._saved_bytes = 0
        self._resume_wanted = False
        self._to_check: set[int] = set()
        self._banned_seeds: set[str] = set()
        self._banned_peers: set[str] = set()
        self._banned_endpoints: set[tuple[str, int]] = set()  # web seeds are banned as peers
        self._attempts: dict[int, int] = {}
        self._allowed: frozenset[int] | None = None  # restrict_pieces; None: all wanted

    @property
    def live_handle(self) -> lt.torrent_handle:
        """The torrent's handle, once :meth:`start` has added it."""
        assert self.handle is not None, "start() adds the torrent first"
        return self.handle

    def wanted_pieces(self) -> list[bool]:
        """Per piece: whether it touches a blob still to fetch (file priority above 0),
        whatever :meth:`restrict_pieces` holds back for now."""
        ti = self.torrent.params.ti
        assert ti is not None, "load_release_torrent checked the torrent"
        files = ti.layout()
        plen = files.piece_length()
        out = [False] * files.num_pieces()
        for i, prio in enumerate(self.live_handle.get_file_priorities()):
            size = files.file_size(i)
            if prio > 0 and size:
                start = files.file_offset(i)
                for p in range(start // plen, (start + size - 1) // plen + 1):
                    out[p] = True
        return out

    def restrict_pieces(self, allowed: Collection[int] | None) -> None:
        """Fetch only the ``allowed`` pieces for now, from every source (the other wanted
        pieces get libtorrent piece priority 0, so no peer nor web seed is asked for
        them); ``None``: every wanted piece again. A restart starts unrestricted."""
        key = None if allowed is None else frozenset(allowed)
        if key == self._allowed:
            return
        self._allowed = key
        self.live_handle.prioritize_pieces(
            [4 if want and (key is None or p in key) else 0
             for p, want in enumerate(self.wanted_pieces())])

    # -- setup -----------------------------------------------------------------

    def _download_path(self, sha: str) -> Path:
        return self.work_dir / BUNDLE_DIR / blob_relpath(sha)

    def _store_link_ok(self, sha: str) -> bool:
        """True if the download folder's copy of held blob ``sha`` is a link to the store."""
        try:
            a, b = self._download_path(sha).stat(), self.library.store.path_for(sha).stat()
        except OSError:
            return False
        return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)

    def _prepare_files(self, resume_have: list[bool], resume_blocks: dict[int, list[bool]]
                       ) -> tuple[list[bool], dict[int, list[bool]]]:
        """Lay out the download folder so nothing libtorrent writes can reach the store.

        libtorrent writes every piece it downloads, before checking its hash, into the
        files that piece covers, and a priority-0 file that exists is written in place
        (only an absent one goes to the part file). So a blob of the store may be
        hard-linked here only if no piece touching it can ever be downloaded: every such
        piece is already verified or touches no wanted file. This holds for any piece
        layout, pad files or none.

        A held blob that shares a downloadable piece with a wanted one gets a *partial
        copy* instead: a sparse file holding only its bytes inside those pieces, copied
        from the store at every start; the 16 KiB blocks lying wholly inside such bytes
        are given to libtorrent as already downloaded. So a piece spanning a held blob
        and a missing one costs only the missing blob's blocks (and the one block that
        straddles both), whatever the piece size: large pieces for stock clients, a
        tight delta for devices.

        Returns the pieces to give libtorrent as held (verified before, per the resume
        data, or lying wholly inside blobs linked from the store) and the blocks of
        unfinished pieces it already has.
        """
        ti = self.torrent.params.ti
        assert ti is not None, "load_release_torrent checked the torrent"
        files = ti.layout()
        n_pieces = files.num_pieces()
        plen = files.piece_length()
        held = [False] * files.num_files()
        wanted = [False] * files.num_files()
        for sha, i in self.torrent.file_index.items():
            held[i] = sha not in self._pending and self.library.store.has(sha)
            wanted[i] = sha in self._pending
        pad = [bool(files.file_flags(i) & files.flag_pad_file) for i in range(files.num_files())]
        span = [range(files.file_index_at_piece(p),
                      cast(int, files.last_file_index_at_piece(p)) + 1)
                for p in range(n_pieces)]
        downloadable = [not resume_have[p] and any(wanted[i] for i in span[p])
                        for p in range(n_pieces)]
        shared: dict[int, list[int]] = {}  # held file → downloadable pieces touching it
        for p in range(n_pieces):
            if downloadable[p]:
                for i in span[p]:
                    if held[i]:
                        shared.setdefault(i, []).append(p)
        linked = [False] * files.num_files()
        present: list[tuple[int, int]] = []  # torrent byte ranges copied from the store
        for sha, i in self.torrent.file_index.items():
            if not held[i]:
                continue
            dst = self._download_path(sha)
            if i not in shared:
                linked[i] = self._link_from_store(sha, dst)
                continue
            start, size = files.file_offset(i), files.file_size(i)
            ranges = [(max(start, p * plen), min(start + size, p * plen + files.piece_size(p)))
                      for p in shared[i]]
            self._partial_copy(sha, dst, [(a - start, b - start) for a, b in ranges])
            present += ranges
        for i in range(files.num_files()):
            if pad[i]:
                present.append((files.file_offset(i), files.file_offset(i) + files.file_size(i)))
        have = [resume_have[p] or all(linked[i] or pad[i] for i in span[p])
                and not all(pad[i] for i in span[p]) for p in range(n_pieces)]
        blocks = {p: list(v) for p, v in resume_blocks.items() if not have[p]}
        present.sort()
        for p in range(n_pieces):
            if not downloadable[p] or not any(held[i] for i in span[p]):
                continue
            size = files.piece_size(p)
            got = blocks.setdefault(p, [False] * -(-size // BLOCK))
            for b in range(len(got)):
                lo = p * plen + b * BLOCK
                got[b] = got[b] or _covered(present, lo, min(lo + BLOCK, p * plen + size))
        return have, {p: v for p, v in blocks.items() if any(v)}

    def _link_from_store(self, sha: str, dst: Path) -> bool:
        if self._store_link_ok(sha):
            return True
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".link")
        try:
            tmp.unlink(missing_ok=True)
            os.link(self.library.store.path_for(sha), tmp)
            os.replace(tmp, dst)
            return True
        except OSError:
            return False  # another filesystem: libtorrent will just not seed this one

    def _partial_copy(self, sha: str, dst: Path, ranges: list[tuple[int, int]]) -> None:
        """A sparse file the blob's size holding the store's bytes in ``ranges`` only (a new
        file, never the store's: libtorrent may write into it)."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".copy")
        with open(self.library.store.path_for(sha), "rb") as src, open(tmp, "wb") as out:
            out.truncate(self.manifest.blobs()[sha])
            for a, b in ranges:
                src.seek(a)
                out.seek(a)
                out.write(src.read(b - a))
        os.replace(tmp, dst)

    def start(self) -> None:
        """Add the torrent to the session (from resume data when there is some)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        ti = self.torrent.params.ti
        assert ti is not None, "load_release_torrent checked the torrent"
        n_pieces = ti.num_pieces()
        atp = None
        if self.resume_path.is_file():
            try:
                atp = lt.read_resume_data(self.resume_path.read_bytes())
                self.on_event(f"resuming from {self.resume_path}")
            except RuntimeError as e:
                self.status.errors.append(f"resume data {self.resume_path} unreadable ({e}); "
                                          "checking the files instead")
                atp = None
        if atp is None:
            atp = lt.add_torrent_params()
        resume_have = list(atp.have_pieces)[:n_pieces]
        resume_have += [False] * (n_pieces - len(resume_have))
        atp.have_pieces, atp.unfinished_pieces = self._prepare_files(
            resume_have, {int(p): list(v) for p, v in atp.unfinished_pieces.items()})
        atp.ti = self.torrent.params.ti
        atp.url_seeds = [] if self.hold_web_seeds else list(self.torrent.params.url_seeds)
        atp.save_path = str(self.work_dir)
        atp.file_priorities = [4 if self._by_index.get(i) in self._pending else 0
                               for i in range(ti.num_files())]
        # Saved piece priorities would override the file priorities just set (and fetch
        # blobs the store got since): the files alone say what is wanted.
        atp.piece_priorities = []
        atp.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed
                       | lt.torrent_flags.seed_mode)
        atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_pex
        if not self.lsd:
            atp.flags |= lt.torrent_flags.disable_lsd
        self.handle = self.session.add_torrent(atp)
        self._allowed = None
        self._saved_bytes = 0  # payload counters start again with the handle
        for host, port in self.peers:
            self.handle.connect_peer((host, port))

    # -- alerts ----------------------------------------------------------------

    def _take_file(self, index: int) -> None:
        sha = self._by_index.get(index)
        if sha is None or sha not in self._pending:
            return
        path = self._download_path(sha)
        size = self.manifest.blobs()[sha]
        if not path.is_file() or path.stat().st_size != size:
            return
        got = _sha256_and_sync(path)
        if got != sha and self._attempts.get(index, 0) < FLUSH_RETRIES:
            # libtorrent may hash a piece from memory before its bytes reach the
            # file: flush its cache and look again.
            self._attempts[index] = self._attempts.get(index, 0) + 1
            self._to_check.add(index)
            self.live_handle.flush_cache()
            return
        if got != sha:
            msg = (f"downloaded blob {sha} has sha256 {got}: the torrent or a seed is bad; "
                   "it was not stored. Check the web seed and peers.")
            self.status.errors.append(msg)
            self.live_handle.file_priority(index, 0)  # resets every piece's priority
            self._allowed = None
            self._pending.discard(sha)
            raise BlobError(msg)
        store = self.library.store
        final = store.path_for(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = store.tmp_dir / f"sync-{sha}.part"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        chmod_if_supported(tmp, 0o444)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        self._pending.discard(sha)
        self.status.fetched.append(sha)
        self.on_event(f"stored {sha}")

    def _sweep(self) -> None:
        """Take every wanted file that is complete on disk (e.g. after a restart)."""
        progress = self.live_handle.file_progress(flags=lt.torrent_handle.piece_granularity)
        for sha in sorted(self._pending):
            i = self.torrent.file_index[sha]
            if progress[i] == self.manifest.blobs()[sha]:
                self._to_check.add(i)
        if self._to_check:
            self.live_handle.flush_cache()

    def poll(self, alerts: Iterable[lt.alert] | None = None) -> None:
        """Handle this torrent's alerts (pass them in when one session runs many)."""
        if alerts is None:
            alerts = self.session.pop_alerts()
        for a in alerts:
            handle = getattr(a, "handle", None)
            if handle is not None and self.handle is not None and handle != self.handle:
                continue
            if isinstance(a, lt.file_completed_alert):
                self._to_check.add(int(a.index))
                self.live_handle.flush_cache()
            elif isinstance(a, lt.cache_flushed_alert):
                checking, self._to_check = self._to_check, set()
                for index in sorted(checking):
                    self._take_file(index)
            elif isinstance(a, (lt.torrent_finished_alert, lt.torrent_checked_alert)):
                self._sweep()
            elif isinstance(a, lt.hash_failed_alert):
                self.status.hash_failures += 1
                if self.status.hash_failures == 1 or self.status.hash_failures % 10 == 0:
                    self.status.errors.append(
                        f"piece {int(a.piece_index)} failed its hash check "
                        f"({self.status.hash_failures} so far): a web seed or peer sends bad "
                        "data; it was thrown away")
            elif isinstance(a, lt.url_seed_alert):
                self.status.errors.append(f"web seed {a.server_url()}: {a.error.message()}")
                if "banned" in a.error.message():
                    self._banned_seeds.add(a.server_url())
            elif isinstance(a, lt.peer_ban_alert):
                ip, port = (str(a.endpoint[0]), int(a.endpoint[1]))
                self._banned_peers.add(ip)
                self._banned_endpoints.add((ip, port))
                self.status.errors.append(f"peer {ip}:{port} was banned: it sent data that "
                                          "failed the hash check")
            elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                self.status.errors.append(f"disk error: {a.message()}")
            elif isinstance(a, lt.piece_finished_alert):
                self._unsaved_pieces += 1

            elif isinstance(a, lt.save_resume_data_alert):
                self._write_resume(a.params)
            elif isinstance(a, lt.save_resume_data_failed_alert):
                self._resume_wanted = False
        if self.handle is None:
            return
        now = time.monotonic()
        st = self.handle.status()
        self.status.payload_downloaded = st.total_payload_download
        unsaved_bytes = st.total_payload_download - self._saved_bytes
        if not self._resume_wanted and now - self._last_resume >= MIN_RESUME_GAP and (
                unsaved_bytes >= RESUME_BYTES or (
                    (self._unsaved_pieces or unsaved_bytes)
                    and now - self._last_resume >= self.resume_interval)):
            # What came in since the last save (verified pieces, and blocks of unfinished
            # ones) must not be fetched again after a power cut: saved once RESUME_BYTES
            # arrived or resume_interval passed, whichever is first. An idle device
            # writes nothing.
            self.save_resume()
            self._saved_bytes = st.total_payload_download
            self._last_resume = now

    def save_resume(self, only_if_modified: bool = False) -> None:
        """Ask libtorrent for resume data; it is written when its alert arrives.

        Without the info dict (the torrent is kept beside it): a few kB, not the piece
        hashes, so it can be saved every few seconds on an SD card.
        """
        if self.handle is None or not self.handle.is_valid():
            return
        if only_if_modified and not self.handle.need_save_resume_data():
            return
        self.handle.save_resume_data(lt.torrent_handle.flush_disk_cache)
        self._unsaved_pieces = 0
        self._resume_wanted = True

    def _write_resume(self, params: lt.add_torrent_params) -> None:
        """Write resume data once the pieces it lists are on disk (fsync first), so a
        power cut can never leave resume data naming pieces that were lost."""
        for path in [self._download_path(sha) for sha in self._pending] + list(
                self.work_dir.glob(".*.parts")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # not started yet
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        atomic_write_bytes(self.resume_path, lt.write_resume_data_buf(params))
        self._resume_wanted = False

    # -- driving ---------------------------------------------------------------

    @property
    def bad_data(self) -> bool:
        """True when the sources send bad data: too many pieces failed their hash, or some
        failed, a source was banned for it, and no source is left (no peer connected, every
        web seed and every given peer banned)."""
        if self.status.hash_failures >= MAX_HASH_FAILURES:
            return True
        if not (self.status.hash_failures and (self._banned_seeds or self._banned_peers)):
            return False
        if self.handle is None or self.handle.status().num_peers:
            return False
        seeds_left = {u for u in set(self.handle.url_seeds()) | self.held_seeds
                      if u not in self._banned_seeds
                      and _endpoint(u) not in self._banned_endpoints}
        peers_left = {host for host, _ in self.peers} - self._banned_peers
        return not seeds_left and not peers_left

    @property
    def done(self) -> bool:
        """True once every blob the release needs is in the store."""
        return not self._pending

    def run(self, timeout: float = 600.0, activate: bool = True,
            progress: Callable[[TransferStatus], None] | None = None) -> TransferStatus:
        """Drive the transfer until every blob is stored (then activate) or raise.

        ``progress(status)`` is called about once a second.
        """
        if self.handle is None:
            self.start()
        deadline = time.monotonic() + timeout
        last_tick = 0.0
        while self._pending:
            if progress and time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                progress(self.status)
            self.session.wait_for_alert(250)
            try:
                self.poll()
            except KetangError:
                self.close()
                raise
            if self.bad_data:
                self.close()
                raise TransferError(
                    f"{self.manifest.channel} v{self.manifest.version}: "
                    f"{self.status.hash_failures} pieces failed their hash check; the web seed "
                    "or peers send bad data. Nothing bad was stored. " + "; ".join(
                        self.status.errors[-3:]))
            if time.monotonic() > deadline:
                self.close()
                raise TransferError(
                    f"{self.manifest.channel} v{self.manifest.version}: {len(self._pending)} of "
                    f"{len(self.status.needed)} blobs still missing after {timeout:.0f} s; "
                    "it will go on from its resume data next time. " + "; ".join(
                        self.status.errors[-3:]))
        self.status.payload_downloaded = self.live_handle.status().total_payload_download
        if activate:
            self.activate()
        return self.status

    def activate(self) -> None:
        """Activate the release (every blob is in the store): new catalog, atomic switch."""
        with self.library.exclusive():
            self.library.activate(self.manifest, self._manifest_bytes, self._signature)
        self.status.activated = True
        self.on_event(f"activated {self.manifest.channel} v{self.manifest.version}")

    def restart(self, on_other: Callable[[list[lt.alert]], None] | None = None) -> None:
        """Take the torrent out and add it again for what the store holds now.

        After the last blob is stored, nothing is wanted any more, so every blob can be
        linked from the store and seeded (a blob that shared a piece with a wanted one
        was left out while that piece could still be downloaded). ``on_other``: as
        :meth:`close` says.
        """
        self.close(on_other=on_other)
        self.start()

    def close(self, timeout: float = 10.0,
              on_other: Callable[[list[lt.alert]], None] | None = None) -> None:
        """Save resume data (waiting for it) and take the torrent out of the session.

        ``on_other``: called at once with the alerts of the session's other torrents
        that this wait pops (a session shared by several transfers). It must handle them
        there: libtorrent frees every alert at the next ``pop_alerts``, so an alert kept
        for later is a dangling pointer (reading it crashed the process).
        """
        if self.handle is None or not self.handle.is_valid():
            return
        self.handle.pause()
        self.save_resume()
        deadline = time.monotonic() + timeout
        while self._resume_wanted and time.monotonic() < deadline:
            self.session.wait_for_alert(100)
            alerts = self.session.pop_alerts()
            self.poll(alerts)
            if on_other is not None:
                on_other([a for a in alerts if (h := getattr(a, "handle", None)) is None
                          or h != self.handle])
            del alerts  # no alert outlives the next pop
        self.session.remove_torrent(self.handle)
        self.handle = None
