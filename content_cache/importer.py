"""Importing a release from a ``KETANG/`` bundle (a drive, a spool folder, a download).

Order matters: the signature is checked against the trusted keys before anything
else in the manifest is read; then the version (no replays); then free space; then
each blob the device lacks is copied and verified; only then is the release
activated. A refused bundle changes nothing the device serves.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .blobstore import blob_relpath
from .bundle import BundleRelease, NoCase, bundle_root, find_releases
from .catalog import estimate_catalog_bytes
from .errors import (
    BlobError,
    BundleReadError,
    KetangError,
    ManifestError,
    ReplayError,
    SignatureError,
    SpaceError,
)
from .export import read_delta_note
from .keys import MAX_SIGNATURE_FILE, trusted_folder, verify
from .library import Library
from .manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from .progress import ByteCount, Progress
from .subscription import EVERYTHING, Subscription


@dataclass(frozen=True)
class ImportPlan:
    """What an import is about to copy, told before it copies anything."""

    channel: str
    version: int
    files: int
    blob_bytes: int
    space_bytes: int
    free_bytes: int
    reserve_bytes: int


# Blobs are made durable in batches: one filesystem sync per batch, not one per blob.
BATCH_BLOBS = 4096
BATCH_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ImportResult:
    """What importing one release did."""

    channel: str
    version: int
    key_id: str
    blobs_copied: int
    bytes_copied: int
    blobs_present: int
    status: str  # "activated" or "up-to-date"

    def summary(self) -> dict[str, Any]:
        """What the drive status file and the drive's outbox report say of it."""
        return {"channel": self.channel, "version": self.version, "status": self.status,
                "bytes_copied": self.bytes_copied}


def space_needed(manifest: Manifest, blob_bytes: int, manifest_bytes: int) -> int:
    """Bytes an import needs: new blobs, the kept manifest, and its catalog (estimated from
    the manifest's real text, see :func:`~content_cache.catalog.estimate_catalog_bytes`)."""
    return blob_bytes + manifest_bytes + estimate_catalog_bytes(manifest)


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise SignatureError(f"{what} {path} is not a regular file; the bundle is damaged. "
                                 "Re-copy it from its source.")
        if st.st_size > limit:
            raise ManifestError(f"{what} {path} is larger than {limit} bytes; refused.")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError as e:
        raise SignatureError(f"{what} {path} is missing; the bundle is incomplete. "
                             "Re-copy it from its source.") from e
    except OSError as e:
        raise BundleReadError(f"reading {what} {path} failed ({e}): the drive was removed or "
                              "is damaged. Nothing was imported; plug it in again.") from e
    if len(data) > limit:
        raise ManifestError(f"{what} {path} is larger than {limit} bytes; refused.")
    return data


def verify_release(found: BundleRelease,
                   trusted: dict[str, Ed25519PublicKey]) -> tuple[Manifest, bytes, bytes, str]:
    """Check a bundle release's signature, then parse its manifest.

    Returns (manifest, manifest bytes, signature bytes, key id).
    """
    signature = _read_bounded(found.signature_path, MAX_SIGNATURE_FILE, "the signature")
    data = _read_bounded(found.manifest_path, MAX_MANIFEST_BYTES, "the manifest")
    kid = verify(data, signature, trusted, where=str(found.manifest_path))
    manifest = parse_manifest(data, where=str(found.manifest_path))
    if (manifest.channel, manifest.version) != (found.channel, found.version):
        raise ManifestError(
            f"{found.manifest_path} says it is {manifest.channel} v{manifest.version} but sits in "
            f"the folder for {found.channel} v{found.version}; the bundle was rearranged."
        )
    return manifest, data, signature, kid


def import_bundle(
    path: Path,
    library: Library,
    trusted: dict[str, Ed25519PublicKey],
    force: bool = False,
    progress: Progress | None = None,
    reserve_bytes: int = 0,
    subscription: Subscription = EVERYTHING,
    on_plan: Callable[[ImportPlan], None] | None = None,
    keep_partial: bool = False,
) -> list[ImportResult]:
    """Import the newest release of each channel in the bundle at ``path``.

    Raises a KetangError subclass (the device keeps serving what it served) when the
    bundle is untrusted, tampered, incomplete, older than what is served (unless
    ``force``), or does not fit on the disk while leaving ``reserve_bytes`` free.
    Only the blobs of lessons in ``subscription`` are copied; the catalog shows the
    lessons whose every blob the device holds. ``on_plan`` hears, per release, how
    much it will copy and the space it needs, before anything is copied. With
    ``keep_partial``, a bundle that lacks some blobs still gives the device the ones it
    has (verified) before BlobError says what is missing, so another source (the sync
    service) need fetch only the rest; nothing is activated.
    """
    root = bundle_root(path)
    source = BundleSource(root)
    found = find_releases(root)
    if not found:
        raise KetangError(f"{root} holds no release (expected releases/<channel>/<version>/"
                          "manifest.json). Check the drive was written by `ketang publish` "
                          "or `ketang export`.")
    newest: dict[str, BundleRelease] = {}
    for f in found:
        newest[f.channel] = f
    if not trusted:
        raise SignatureError("this device trusts no publisher key, so it can import nothing. "
                             f"Put the publisher's .pub file in {trusted_folder(trusted)}.")
    # Every signature is checked before the device writes anything at all.
    try:
        verified = [verify_release(f, trusted) for f in newest.values()]
    except KetangError:
        source.check()  # a drive unmounted under us is not "a damaged bundle"
        raise
    with library.exclusive():
        library.remove_interrupted()
        plans = _plan_all(verified, library, force, subscription)
        todo = [p for p in plans if p.status == "activated"]
        free = _check_space(todo, library, reserve_bytes)
        tree = NoCase(root)  # a FAT drive read through fusefat may show BLOBS/SHA256/AB
        for p in todo:
            p.lacking = {sha: size for sha, size in p.lacking.items()
                         if _present(source, tree, sha, p, keep_partial)}
            if on_plan:
                on_plan(ImportPlan(p.manifest.channel, p.manifest.version, len(p.lacking),
                                   p.need, p.space, free, reserve_bytes))
        for p in todo:
            _copy(source, p, library, progress)
        partial = [p for p in todo if p.absent]
        if partial:
            raise BlobError(
                "the bundle at {} lacks {} (what it had was copied and verified); nothing is "
                "activated until the rest comes from another drive or the sync service.{}"
                .format(root, "; ".join(
                    f"{len(p.absent)} blobs that {p.manifest.channel} v{p.manifest.version} "
                    f"needs" for p in partial),
                    (" " + delta) if (delta := read_delta_note(root)) else ""))
        if todo:
            # All channels of a bundle activate together, in one switch, or none does.
            library.activate_all([(p.manifest, p.data, p.signature) for p in todo])
        return [p.result() for p in plans]


@dataclass
class _Plan:
    """One channel of a bundle: what to copy, decided before anything is copied."""

    manifest: Manifest
    data: bytes
    signature: bytes
    kid: str
    status: str  # "activated" or "up-to-date"
    wanted: int = 0  # blobs the subscription wants
    lacking: dict[str, int] = field(default_factory=dict)  # to copy from the bundle
    absent: list[str] = field(default_factory=list)  # lacking here, not on the drive either
    space: int = 0  # bytes it needs on the data disk (before any blob turned out absent)

    @property
    def need(self) -> int:
        return sum(self.lacking.values())

    def result(self) -> ImportResult:
        if self.status == "up-to-date":
            return ImportResult(self.manifest.channel, self.manifest.version, self.kid, 0, 0,
                                len(self.manifest.blobs()), "up-to-date")
        return ImportResult(self.manifest.channel, self.manifest.version, self.kid,
                            len(self.lacking), self.need,
                            self.wanted - len(self.lacking) - len(self.absent), "activated")


def _plan_all(verified: list[tuple[Manifest, bytes, bytes, str]], library: Library,
              force: bool, subscription: Subscription) -> list[_Plan]:
    """Every channel's plan; raises ReplayError (nothing copied) on an older release."""
    plans = []
    claimed: set[str] = set()  # a blob two channels share is copied once
    for manifest, data, signature, kid in verified:
        active = library.active_version(manifest.channel)
        blobs = subscription.blobs(manifest)
        lacking = {sha: size for sha, size in blobs.items() if not library.store.has(sha)}
        if active is not None and manifest.version == active and not force and not lacking:
            plans.append(_Plan(manifest, data, signature, kid, "up-to-date"))
            continue
        if active is not None and manifest.version < active and not force:
            raise ReplayError(
                f"{manifest.channel} v{manifest.version} is older than v{active}, which this "
                "device serves; refused so an old release cannot be replayed. A technician "
                "can roll back on purpose with --force."
            )
        mine = {sha: size for sha, size in lacking.items() if sha not in claimed}
        claimed.update(mine)
        plans.append(_Plan(manifest, data, signature, kid, "activated", len(blobs), mine,
                           space=space_needed(manifest, sum(mine.values()), len(data))))
    return plans


def _present(source: BundleSource, tree: NoCase, sha: str, plan: _Plan,
             keep_partial: bool) -> bool:
    """True if the bundle holds blob ``sha`` (inside it); False if absent and that is allowed."""
    src = tree.path(*blob_relpath(sha).parts)
    if keep_partial and not src.is_symlink() and not src.exists():
        plan.absent.append(sha)
        return False
    if src.is_symlink() or not src.is_file():
        source.check()
        raise BlobError(f"the bundle at {source.root} lacks blob {sha} that "
                        f"{plan.manifest.channel} v{plan.manifest.version} needs; " + (
                            read_delta_note(source.root) or "the drive is incomplete. "
                            "Re-copy it from its source."))
    if not source.inside(src.parent):
        raise BlobError(f"blob {sha} in the bundle at {source.root} leads outside it (a "
                        "symlinked folder); refused. Re-copy the bundle without links.")
    return True


def _check_space(todo: list[_Plan], library: Library, reserve_bytes: int) -> int:
    """Refuse (nothing copied) unless every channel to import fits, keeping the reserve.

    Returns the free bytes measured.
    """
    library.data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(library.data_dir).free
    space = sum(p.space for p in todo)
    if todo and space + reserve_bytes > free:
        names = ", ".join(f"{p.manifest.channel} v{p.manifest.version}" for p in todo)
        files = sum(len(p.lacking) for p in todo)
        need = sum(p.need for p in todo)
        raise SpaceError(
            f"{names} needs {space / 1e6:.1f} MB ({files} new files, {need / 1e6:.1f} MB, "
            f"plus the catalog) and this device keeps {reserve_bytes / 1e6:.1f} MB in reserve, "
            f"but {library.data_dir} has {free / 1e6:.1f} MB free. Nothing was changed. Free "
            "space (`ketang gc`), subscribe to fewer subjects, or use a larger disk."
        )
    return free


def _copy(source: BundleSource, plan: _Plan, library: Library,
          progress: Progress | None) -> None:
    """Copy and verify a channel's lacking blobs; verified ones stay even if a later fails."""
    tick = ByteCount(plan.need, progress)
    tree = NoCase(source.root)
    store = library.store
    try:
        batch_bytes = 0
        for sha, size in plan.lacking.items():
            store.add_file(tree.path(*blob_relpath(sha).parts), sha, size, on_bytes=tick,
                           defer=True)
            batch_bytes += size
            if store.pending >= BATCH_BLOBS or batch_bytes >= BATCH_BYTES:
                store.commit()  # what is committed stays: a re-run need not copy it again
                batch_bytes = 0
        store.commit()
    except BaseException as e:
        # Blobs verified before the failure (a pulled drive, a bad blob) are kept, so the
        # next try resumes instead of copying them again.
        with contextlib.suppress(OSError, KetangError):
            store.commit()
        if isinstance(e, BlobError | BundleReadError):
            source.check()  # a drive that went away is said to be one, not "a bad file"
        raise
    finally:
        store.discard()


class BundleSource:
    """The bundle folder being read, remembered so its disappearing can be told apart.

    A drive unmounted (lazily, or by its FUSE driver dying) while it is read leaves an
    empty mount point: its files look missing. Before a missing or unreadable file is
    blamed on the bundle, :meth:`check` makes sure the folder is still the one we began
    reading.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ident = _identity(root)
        self._real = root.resolve()
        self._inside: dict[Path, bool] = {}  # per blobs/sha256/xx folder

    def inside(self, folder: Path) -> bool:
        """True if ``folder`` (after symlinks) stays inside the bundle."""
        if folder not in self._inside:
            self._inside[folder] = folder.resolve().is_relative_to(self._real)
        return self._inside[folder]

    def check(self) -> None:
        """Raise BundleReadError if the bundle folder went away since it was first read."""
        if self.ident is None or _identity(self.root) != self.ident:
            raise BundleReadError(
                f"U 盘在读取时被移除 / the bundle at {self.root} went away while it was being "
                "read: the drive was removed or unmounted. Nothing was activated; files "
                "verified so far are kept. Plug the drive in again (or mount it again) and "
                "import again."
            )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
