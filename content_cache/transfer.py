"""Moving a release's missing blobs with libtorrent: only the missing bytes, resumable.

Given a *verified* manifest, its torrent and a :class:`Library`, a
:class:`ReleaseTransfer`:

1. works out which of the release's blobs the store lacks;
2. hard-links the blobs it already holds into the download folder (so libtorrent
   finds them complete and can seed them to peers) and gives every file but the
   missing ones priority 0;
3. downloads the missing files from peers and web seeds;
4. checks each finished file against the manifest's sha256, then links it into the
   blob store (temp name + rename, fsynced) — a blob in the store is verified or absent;
5. once every blob is present, activates the release through ``Library.activate``.

Resume data is written atomically every ``resume_interval`` seconds and on
:meth:`close`, so after a power cut the download goes on from what was verified.

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


class TransferError(KetangError):
    """A download cannot go on: a web seed or peer sends bad data, a disk error, a timeout."""


def make_session(listen_interfaces: str = "127.0.0.1:0", lsd: bool = False,
                 extra: dict | None = None) -> lt.session:
    """A libtorrent session for a closed network, listening on ``listen_interfaces``."""
    settings = {
        **CLOSED_NETWORK,
        "listen_interfaces": listen_interfaces,
        "enable_lsd": lsd,
        "alert_mask": (lt.alert_category.error | lt.alert_category.status
                       | lt.alert_category.storage | lt.alert_category.file_progress),
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
        resume_interval: float = 30.0,
        on_event: Callable[[str], None] | None = None,
        lsd: bool = False,
        wanted: Collection[str] | None = None,
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
        self._last_resume = time.monotonic()
        self._resume_wanted = False
        self._to_check: set[int] = set()
        self._banned_seeds = 0
        self._attempts: dict[int, int] = {}

    @property
    def live_handle(self) -> lt.torrent_handle:
        """The torrent's handle, once :meth:`start` has added it."""
        assert self.handle is not None, "start() adds the torrent first"
        return self.handle

    # -- setup -----------------------------------------------------------------

    def _download_path(self, sha: str) -> Path:
        return self.work_dir / BUNDLE_DIR / blob_relpath(sha)

    def _link_present(self) -> None:
        """Hard-link blobs the store holds into the download folder, for checking and seeding."""
        for sha in self.torrent.file_index:
            if sha in self._pending:
                continue
            dst = self._download_path(sha)
            if dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.library.store.path_for(sha), dst)
            except OSError:
                pass  # another filesystem: libtorrent will just not seed this one

    def _held_pieces(self) -> list[bool]:
        """Pieces lying wholly inside blobs the store holds (linked into place).

        Each such blob was verified by its sha256, so libtorrent need not read it
        again: a device with a large store starts a new release at once instead of
        re-hashing every blob it has. A piece that touches a missing blob is not held.
        """
        ti = self.torrent.params.ti
        assert ti is not None, "load_release_torrent checked the torrent"
        files = ti.layout()
        held_files = [False] * files.num_files()
        for sha, i in self.torrent.file_index.items():
            if sha not in self._pending:
                dst = self._download_path(sha)
                held_files[i] = dst.is_file() and dst.stat().st_size == files.file_size(i)
        return [all(held_files[i] for i in range(files.file_index_at_piece(p),
                                                 cast(int, files.last_file_index_at_piece(p)) + 1))
                for p in range(files.num_pieces())]

    def start(self) -> None:
        """Add the torrent to the session (from resume data when there is some)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._link_present()
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
            atp.have_pieces = self._held_pieces()
        atp.ti = self.torrent.params.ti
        atp.url_seeds = list(self.torrent.params.url_seeds)
        atp.save_path = str(self.work_dir)
        atp.file_priorities = [4 if self._by_index[i] in self._pending else 0
                               for i in range(len(self._by_index))]
        atp.flags &= ~(lt.torrent_flags.paused | lt.torrent_flags.auto_managed)
        atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_pex
        if not self.lsd:
            atp.flags |= lt.torrent_flags.disable_lsd
        self.handle = self.session.add_torrent(atp)
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
            self.live_handle.file_priority(index, 0)
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
                    self._banned_seeds += 1
            elif isinstance(a, (lt.file_error_alert, lt.torrent_error_alert)):
                self.status.errors.append(f"disk error: {a.message()}")
            elif isinstance(a, lt.save_resume_data_alert):
                atomic_write_bytes(self.resume_path, lt.write_resume_data_buf(a.params))
                self._resume_wanted = False
            elif isinstance(a, lt.save_resume_data_failed_alert):
                self._resume_wanted = False
        if self.handle is None:
            return
        now = time.monotonic()
        if now - self._last_resume >= self.resume_interval:
            # Only when something changed: an idle device writes nothing.
            self.save_resume(only_if_modified=True)
            self._last_resume = now
        st = self.handle.status()
        self.status.payload_downloaded = st.total_payload_download

    def save_resume(self, only_if_modified: bool = False) -> None:
        """Ask libtorrent for resume data; it is written when its alert arrives."""
        if self.handle is None or not self.handle.is_valid():
            return
        if only_if_modified and not self.handle.need_save_resume_data():
            return
        self.handle.save_resume_data(lt.torrent_handle.save_info_dict)
        self._resume_wanted = True

    # -- driving ---------------------------------------------------------------

    @property
    def bad_data(self) -> bool:
        """True when the sources send bad data: too many pieces failed their hash, or some
        failed and every web seed was banned with no peer left."""
        return self.status.hash_failures >= MAX_HASH_FAILURES or bool(
            self.status.hash_failures and self._banned_seeds and self.handle is not None
            and self.handle.status().num_peers == 0)

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

    def close(self, timeout: float = 10.0) -> None:
        """Save resume data (waiting for it) and take the torrent out of the session."""
        if self.handle is None or not self.handle.is_valid():
            return
        self.handle.pause()
        self.save_resume()
        deadline = time.monotonic() + timeout
        while self._resume_wanted and time.monotonic() < deadline:
            self.session.wait_for_alert(100)
            self.poll()
        self.session.remove_torrent(self.handle)
        self.handle = None
