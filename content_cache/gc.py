"""Mark-and-sweep garbage collection of the blob store (``ketang gc``).

Mark: every blob named by the release each channel serves (its kept, verified
manifest). Sweep: every other blob, the manifests and catalogs of releases no
longer active, and leftovers of interrupted imports (``blobs/tmp``, half-built
catalogs). It runs under :meth:`Library.exclusive`, the lock every import holds
from its first write to its activation, so it never deletes what an import in
progress still needs: while an import runs, ``gc`` refuses to start (and the other
way round).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from .atomic import fsync_dir
from .blobstore import SHA256_RE
from .errors import KetangError
from .library import Library
from .manifest import MAX_MANIFEST_BYTES, parse_manifest


@dataclass(frozen=True)
class GcResult:
    """What a collection found and (unless a dry run) removed."""

    blobs_kept: int
    blobs_removed: int
    bytes_freed: int
    releases_removed: list[str]
    dry_run: bool


def kept_blobs(library: Library) -> set[str]:
    """The sha256 of every blob an active release names (the mark phase)."""
    kept: set[str] = set()
    for rel in library.active().values():
        rdir = library.release_dir(rel.channel, rel.version)
        path = next((rdir / n for n in ("manifest.json", "manifest.json.gz")
                     if (rdir / n).is_file()), None)
        if path is None or path.stat().st_size > MAX_MANIFEST_BYTES:
            raise KetangError(
                f"the manifest of the active release {rel.channel} v{rel.version} is missing "
                f"from {rdir}; garbage collection stopped so it deletes nothing that release "
                "needs. Import the release again, then run `ketang gc`."
            )
        kept.update(parse_manifest(path.read_bytes(), where=str(path)).blobs())
    return kept


def collect_garbage(library: Library, dry_run: bool = False) -> GcResult:
    """Remove every blob and old release no active release needs.

    Raises KetangError if an import is running (it holds the same lock).
    """
    with library.exclusive():
        kept = kept_blobs(library)
        active = {(r.channel, r.version) for r in library.active().values()}
        removed = freed = 0
        sha_root = library.data_dir / "blobs" / "sha256"
        if sha_root.is_dir():
            for sub in sorted(sha_root.iterdir()):
                if not sub.is_dir() or sub.is_symlink():
                    continue
                changed = False
                for blob in sub.iterdir():
                    if blob.name in kept and SHA256_RE.match(blob.name):
                        continue
                    removed += 1
                    freed += blob.lstat().st_size
                    if not dry_run:
                        blob.unlink()
                        changed = True
                if changed:
                    fsync_dir(sub)
        if not dry_run:
            library.remove_interrupted()  # parts of an interrupted import, never served
        old_releases: list[str] = []
        keep_catalogs = {r.catalog_path.resolve() for r in library.active().values()}
        for kind in ("releases", "catalogs"):
            base = library.data_dir / kind
            if not base.is_dir():
                continue
            for ch_dir in sorted(base.iterdir()):
                if not ch_dir.is_dir():
                    continue
                for entry in sorted(ch_dir.iterdir()):
                    if kind == "catalogs":
                        if entry.resolve() in keep_catalogs:
                            continue
                    elif entry.name.isdigit() and (ch_dir.name, int(entry.name)) in active:
                        continue
                    else:
                        old_releases.append(f"{ch_dir.name} v{entry.name}")
                    if dry_run:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                if not dry_run:
                    fsync_dir(ch_dir)
        return GcResult(len(kept), removed, freed, old_releases, dry_run)
