"""Importing a release from a ``KETANG/`` bundle (a drive, a spool folder, a download).

Order matters: the signature is checked against the trusted keys before anything
else in the manifest is read; then the version (no replays); then free space; then
each blob the device lacks is copied and verified; only then is the release
activated. A refused bundle changes nothing the device serves.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .blobstore import blob_relpath
from .bundle import BundleRelease, bundle_root, find_releases
from .errors import (
    BlobError,
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
    """Bytes an import needs: new blobs, the kept manifest, and a generous catalog estimate."""
    return blob_bytes + manifest_bytes + 1024 * (len(manifest.nodes) + len(manifest.resources))


def _read_bounded(path: Path, limit: int, what: str) -> bytes:
    if path.is_symlink() or not path.is_file():
        raise SignatureError(f"{what} {path} is missing (or not a regular file); "
                             "the bundle is incomplete. Re-copy it from its source.")
    if path.stat().st_size > limit:
        raise ManifestError(f"{what} {path} is larger than {limit} bytes; refused.")
    return path.read_bytes()


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
    verified = [verify_release(f, trusted) for f in newest.values()]
    with library.exclusive():
        library.remove_interrupted()
        return [_import_one(root, *v, library, force, progress, reserve_bytes, subscription,
                            on_plan, keep_partial) for v in verified]


def _import_one(root: Path, manifest: Manifest, data: bytes, signature: bytes, kid: str,
                library: Library, force: bool, progress: Progress | None,
                reserve_bytes: int = 0,
                subscription: Subscription = EVERYTHING,
                on_plan: Callable[[ImportPlan], None] | None = None,
                keep_partial: bool = False) -> ImportResult:
    active = library.active_version(manifest.channel)
    blobs = subscription.blobs(manifest)
    lacking = {sha: size for sha, size in blobs.items() if not library.store.has(sha)}
    if active is not None and manifest.version == active and not force and not lacking:
        return ImportResult(manifest.channel, manifest.version, kid, 0, 0,
                            len(manifest.blobs()), "up-to-date")
    if active is not None and manifest.version < active and not force:
        raise ReplayError(
            f"{manifest.channel} v{manifest.version} is older than v{active}, which this device "
            "serves; refused so an old release cannot be replayed. A technician can "
            "roll back on purpose with --force."
        )
    need = sum(lacking.values())
    library.data_dir.mkdir(parents=True, exist_ok=True)
    space = space_needed(manifest, need, len(data))
    free = shutil.disk_usage(library.data_dir).free
    if space + reserve_bytes > free:
        raise SpaceError(
            f"{manifest.channel} v{manifest.version} needs {space / 1e6:.1f} MB "
            f"({len(lacking)} new files, {need / 1e6:.1f} MB, plus its catalog) and this "
            f"device keeps {reserve_bytes / 1e6:.1f} MB in reserve, but {library.data_dir} "
            f"has {free / 1e6:.1f} MB free. Nothing was changed. Free space (`ketang gc`), "
            "subscribe to fewer subjects, or use a larger disk."
        )
    bundle_real = root.resolve()
    inside: dict[str, bool] = {}  # per blobs/sha256/xx folder: does it stay in the bundle?
    absent: list[str] = []
    for sha in list(lacking):
        src = root / blob_relpath(sha)
        if keep_partial and not src.is_symlink() and not src.exists():
            absent.append(sha)
            need -= lacking.pop(sha)
            continue
        if src.is_symlink() or not src.is_file():
            delta = read_delta_note(root)
            raise BlobError(f"the bundle at {root} lacks blob {sha} that "
                            f"{manifest.channel} v{manifest.version} needs; " + (
                                delta or "the drive is incomplete. Re-copy it from its "
                                "source."))
        if sha[:2] not in inside:
            inside[sha[:2]] = src.parent.resolve().is_relative_to(bundle_real)
        if not inside[sha[:2]]:
            raise BlobError(f"blob {sha} in the bundle at {root} leads outside it (a "
                            "symlinked folder); refused. Re-copy the bundle without links.")
    if on_plan:
        on_plan(ImportPlan(manifest.channel, manifest.version, len(lacking), need, space, free,
                           reserve_bytes))
    tick = ByteCount(need, progress)
    store = library.store
    try:
        batch_bytes = 0
        for sha, size in lacking.items():
            store.add_file(root / blob_relpath(sha), sha, size, on_bytes=tick, defer=True)
            batch_bytes += size
            if store.pending >= BATCH_BLOBS or batch_bytes >= BATCH_BYTES:
                store.commit()  # what is committed stays: a re-run need not copy it again
                batch_bytes = 0
        store.commit()
    except BaseException:
        # Blobs verified before the failure (a pulled drive, a bad blob) are kept, so the
        # next try resumes instead of copying them again.
        with contextlib.suppress(OSError):
            store.commit()
        raise
    finally:
        store.discard()
    if absent:
        raise BlobError(f"the bundle at {root} lacks {len(absent)} blobs that "
                        f"{manifest.channel} v{manifest.version} needs (the {len(lacking)} it "
                        "had were copied and verified); the release is not activated until "
                        "the rest comes from another drive or the sync service."
                        + (" " + delta if (delta := read_delta_note(root)) else ""))
    library.activate(manifest, data, signature)
    return ImportResult(manifest.channel, manifest.version, kid, len(lacking), need,
                        len(blobs) - len(lacking), "activated")
