"""A device's content: its blob store, its verified releases, and which one is active.

Layout under the data folder::

    blobs/sha256/ab/abcdef…            verified blobs (see blobstore)
    releases/<channel>/<version>/      the verified manifest and its signature
    catalogs/<channel>/<version>-<build>.sqlite
    active.json                        {channel: {"version": N, "catalog": "catalogs/…"}}

Activation builds the new catalog beside the old one and then replaces
``active.json`` atomically, so a reader sees the old release or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write_bytes, atomic_write_json
from .blobstore import BlobStore
from .catalog import Catalog, CatalogError, build_catalog
from .errors import DataDiskError, KetangError
from .filelock import exclusive_lock
from .manifest import Manifest

ACTIVE_FILE = "active.json"


@dataclass(frozen=True)
class ActiveRelease:
    """The release a channel serves."""

    channel: str
    version: int
    catalog_path: Path


class Library:
    """The content on one device (or a technician's laptop), rooted at ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.store = BlobStore(self.data_dir)
        self._lock = threading.Lock()
        self._active_stamp: int | None = None
        self._active: dict[str, ActiveRelease] = {}
        self._catalogs: dict[Path, Catalog] = {}

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the device-wide lock that serialises imports and activations."""
        with exclusive_lock(self.data_dir / ".lock", f"another import is running on "
                            f"{self.data_dir}; wait for it to finish."):
            yield

    def remove_interrupted(self) -> int:
        """Delete what an import killed part-way left behind; return how many files.

        Unverified blob parts in ``blobs/tmp``, half-built catalogs and an unswitched
        ``active.json`` temporary file. None of it was ever served. Call inside
        :meth:`exclusive` (then no import is running, so every such file is stale).
        """
        leftovers: list[Path] = []
        if self.store.tmp_dir.is_dir():
            leftovers += list(self.store.tmp_dir.iterdir())
        leftovers += list(self.data_dir.glob("catalogs/*/*.building"))
        leftovers += list(self.data_dir.glob(f".{ACTIVE_FILE}.*.tmp"))
        for p in leftovers:
            p.unlink(missing_ok=True)
        return len(leftovers)

    def active(self) -> dict[str, ActiveRelease]:
        """Every channel's active release. Re-read only when ``active.json`` changed."""
        path = self.data_dir / ACTIVE_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        with self._lock:
            if stamp != self._active_stamp:
                doc = json.loads(path.read_text(encoding="utf-8"))
                self._active = {
                    ch: ActiveRelease(ch, int(v["version"]), self.data_dir / v["catalog"])
                    for ch, v in doc.items()
                }
                self._active_stamp = stamp
            return dict(self._active)

    def active_version(self, channel: str) -> int | None:
        """The version a channel serves, or None."""
        rel = self.active().get(channel)
        return rel.version if rel else None

    def catalog(self, channel: str) -> Catalog | None:
        """The active catalog of ``channel`` (opened once, shared), or None."""
        rel = self.active().get(channel)
        if rel is None:
            return None
        with self._lock:
            cat = self._catalogs.get(rel.catalog_path)
            if cat is None:
                # Forget catalogs no longer active (a long-running server switches often).
                live = {r.catalog_path for r in self._active.values()}
                self._catalogs = {p: c for p, c in self._catalogs.items() if p in live}
                cat = self._catalogs[rel.catalog_path] = Catalog(rel.catalog_path)
            return cat

    def catalogs(self) -> list[tuple[str, Catalog]]:
        """Every active channel with its catalog, by channel name (one that cannot be
        opened now is left out)."""
        out = []
        for channel in sorted(self.active()):
            cat = self.catalog(channel)
            if cat is not None:
                out.append((channel, cat))
        return out

    def read_small_blob(self, sha256: str, size: int) -> bytes | None:
        """A stored blob's bytes for indexing, or None when absent or over 256 KiB."""
        if size > 256 * 1024 or not self.store.has(sha256):
            return None
        try:
            return self.store.path_for(sha256).read_bytes()[: 256 * 1024]
        except OSError:
            return None

    def release_dir(self, channel: str, version: int) -> Path:
        """Where a verified release's manifest and signature are kept."""
        return self.data_dir / "releases" / channel / str(version)

    def activate(self, manifest: Manifest, manifest_bytes: bytes, signature: bytes) -> Path:
        """Keep a verified release, build its catalog and make it the active one.

        The caller has verified the signature and copied the blobs it wants. The
        catalog shows only lessons whose every blob is in the store. Call inside
        :meth:`exclusive`.
        """
        return self.activate_all([(manifest, manifest_bytes, signature)])[0]

    def activate_all(self, releases: list[tuple[Manifest, bytes, bytes]]) -> list[Path]:
        """Activate several verified releases (channels) together: all of them, or none.

        Each release's manifest is kept and its catalog built; then one atomic write of
        ``active.json`` switches every channel at once. If anything fails first (a full
        disk, a bug), whatever this call wrote is removed again, the device serves what it
        served, and the error says so: DataDiskError for a disk that could not be written.
        """
        written: list[Path] = []
        catalogs: list[Path] = []
        try:
            for manifest, manifest_bytes, signature in releases:
                rdir = self.release_dir(manifest.channel, manifest.version)
                for name, content in (("manifest.json", manifest_bytes),
                                      ("manifest.json.sig", signature)):
                    if not (rdir / name).exists():
                        written.append(rdir / name)
                    atomic_write_bytes(rdir / name, content)
                # A new name on every build: a server holding the previous catalog open
                # keeps reading it, and notices the switch through active.json.
                rel_catalog = Path("catalogs", manifest.channel,
                                   f"{manifest.version}-{time.time_ns()}.sqlite")
                written.append(self.data_dir / rel_catalog)
                build_catalog(manifest, self.data_dir / rel_catalog, has_blob=self.store.has,
                              read_blob=self.read_small_blob)
                catalogs.append(rel_catalog)
            path = self.data_dir / ACTIVE_FILE
            doc = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            for (manifest, _, _), rel_catalog in zip(releases, catalogs, strict=True):
                doc[manifest.channel] = {"version": manifest.version,
                                         "catalog": str(rel_catalog)}
            atomic_write_json(path, doc)
        except BaseException as e:
            removed = self._remove_written(written)
            names = ", ".join(f"{m.channel} v{m.version}" for m, _, _ in releases)
            undone = (f"Nothing was activated ({names}); the {removed} files this activation "
                      "had written were removed, and the device still serves what it served.")
            if isinstance(e, OSError | CatalogError):
                raise DataDiskError(
                    f"激活失败 / activating failed: {_disk_words(self.data_dir, e)}. {undone} "
                    "Free space (`ketang gc`, or subscribe to fewer subjects) or check the "
                    "disk, then import again."
                ) from e
            if isinstance(e, KetangError):
                raise type(e)(f"{e} {undone}") from e
            raise
        return [self.data_dir / c for c in catalogs]

    def _remove_written(self, written: list[Path]) -> int:
        removed = 0
        for p in written:
            for q in (p, p.with_name(p.name + ".building")):
                with contextlib.suppress(FileNotFoundError):
                    q.unlink()
                    removed += 1
        for p in written:  # folders it emptied go too (releases/<ch>/<v>, catalogs/<ch>)
            d = p.parent
            while d.parent != self.data_dir and d != self.data_dir:
                try:
                    d.rmdir()
                except OSError:
                    break
                d = d.parent
        return removed


def _disk_words(data_dir: Path, e: BaseException) -> str:
    err = getattr(e, "errno", None)
    if err in (errno.ENOSPC, errno.EDQUOT) or "full" in str(e).lower():
        return f"the data disk ({data_dir}) is full ({e})"
    return f"writing to the data disk ({data_dir}) failed ({e})"
