"""Exporting a bundle for a sneakernet relay: ``ketang export --to DIR``.

Writes ``DIR/KETANG/`` holding the active release of each channel (or one channel)
with either all its blobs or only those another school lacks (``for_manifest``: that
school's manifest; blobs it names are left out). Free space is checked before
anything is written. Each blob is written to a temporary name, fsynced and renamed,
and the release's manifest and signature are written last: a drive that fills up
mid-way holds no half-written file with a final name and no manifest, so it never
looks like a complete release.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .atomic import fsync_dir
from .blobstore import CHUNK, blob_relpath
from .bundle import BUNDLE_DIR, release_dir
from .errors import KetangError
from .library import Library
from .manifest import parse_manifest
from .progress import ByteCount, Progress

DELTA_FILE = "delta.json"
DELTA_FORMAT = "ketang-delta/1"


def delta_note(channel: str, version: int, left_out: int) -> bytes:
    """``KETANG/delta.json``: this drive leaves out what a school with that release has."""
    return (json.dumps({"format": DELTA_FORMAT, "for": {"channel": channel, "version": version},
                        "left_out": left_out}) + "\n").encode()


def read_delta_note(root: Path) -> str | None:
    """A sentence saying whom a delta drive was made for, or None (a full drive, or a note
    that cannot be read: it is only an explanation, never trusted for anything)."""
    path = Path(root) / DELTA_FILE
    try:
        if path.is_symlink() or path.stat().st_size > 4096:
            return None
        doc = json.loads(path.read_bytes())
        channel, version = str(doc["for"]["channel"])[:100], int(doc["for"]["version"])
        left_out = int(doc.get("left_out", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (f"This drive is a delta export made for a school that already has {channel} "
            f"v{version}: it leaves out the {left_out} files that release has. Ask for a full "
            "export (`ketang export` without --for-manifest) or one made with this device's "
            "manifest.")
MARGIN = 1024 * 1024  # room for folders, manifests and the filesystem's own needs


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    releases: list[tuple[str, int]]
    blobs_written: int
    bytes_written: int
    blobs_skipped: int  # left out (the other school has them) or already on the target
    space_checked: bool = True  # False when the target's filesystem does not report its size


def export_bundle(library: Library, to: Path, channel: str | None = None,
                  for_manifest: Path | None = None,
                  progress: Progress | None = None) -> ExportResult:
    """Write the active release(s) of ``library`` as a bundle under ``to/KETANG/``.

    Raises KetangError before writing anything if the channel is not served, the
    other school's manifest is unreadable, or ``to`` lacks the space; and, with the
    partial file removed, if the target fills up or fails while writing.
    """
    active = library.active()
    if channel is not None and channel not in active:
        raise KetangError(f"this device serves no channel {channel!r} (it serves: "
                          f"{', '.join(sorted(active)) or 'nothing'}); nothing exported.")
    if not active:
        raise KetangError("this device serves no release yet; nothing to export.")
    chosen = [active[channel]] if channel else [active[c] for c in sorted(active)]
    theirs: set[str] = set()
    if for_manifest is not None:
        try:
            data = Path(for_manifest).read_bytes()
        except OSError as e:
            raise KetangError(f"cannot read the other school's manifest {for_manifest}: "
                              f"{e}") from e
        base = parse_manifest(data, where=str(for_manifest))
        theirs = set(base.blobs())
    releases: list[tuple[str, int, bytes, bytes]] = []
    wanted: dict[str, int] = {}
    for rel in chosen:
        rdir = library.release_dir(rel.channel, rel.version)
        mbytes = (rdir / "manifest.json").read_bytes()
        sig = (rdir / "manifest.json.sig").read_bytes()
        releases.append((rel.channel, rel.version, mbytes, sig))
        for sha, size in parse_manifest(mbytes, where=str(rdir)).blobs().items():
            if sha not in theirs:
                wanted[sha] = size
    root = Path(to) / BUNDLE_DIR
    todo = {sha: size for sha, size in wanted.items() if not _present(root, sha, size)}
    named = set().union(*(parse_manifest(m).blobs() for _, _, m, _ in releases))
    skipped = len(named) - len(todo)
    need = sum(todo.values()) + sum(len(m) + len(s) for _, _, m, s in releases) + MARGIN
    Path(to).mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(to)
    # Some FUSE drivers (fusefat) report a size of 0: free space is then unknown, and a
    # full drive is caught while writing instead.
    space_checked = usage.total > 0
    free = usage.free
    if space_checked and need > free:
        raise KetangError(
            f"the export needs {need / 1e6:.1f} MB ({len(todo)} files) but {to} has "
            f"{free / 1e6:.1f} MB free; nothing was written. Use a larger drive, or "
            "--for-manifest with the other school's manifest to take only what it lacks."
        )
    tick = ByteCount(sum(todo.values()), progress)
    for sha, size in todo.items():
        _copy_blob(library.store.path_for(sha), root / blob_relpath(sha), size, tick)
    if progress and not todo:
        progress(0, 0)
    root.mkdir(parents=True, exist_ok=True)
    if for_manifest is not None:
        # Says whom the drive is for, so a device lacking what was left out can tell why.
        _write_small(root / DELTA_FILE, delta_note(base.channel, base.version, len(theirs)))
    else:
        with contextlib.suppress(FileNotFoundError):
            (root / DELTA_FILE).unlink()
    # Manifests last: only a bundle whose every blob is in place names a release.
    for ch, ver, mbytes, sig in releases:
        rdir = release_dir(root, ch, ver)
        _write_small(rdir / "manifest.json.sig", sig)
        _write_small(rdir / "manifest.json", mbytes)
    return ExportResult([(ch, ver) for ch, ver, _, _ in releases], len(todo), tick.total, skipped,
                        space_checked)


def _present(root: Path, sha: str, size: int) -> bool:
    p = root / blob_relpath(sha)
    return p.is_file() and not p.is_symlink() and p.stat().st_size == size


def _full(e: OSError, where: Path) -> KetangError:
    if e.errno == errno.ENOSPC:
        return KetangError(f"the target filled up while writing {where}; the unfinished file "
                           "was removed and no release was written. Free space on the drive "
                           "(or use a larger one) and export again: finished files are kept.")
    return KetangError(f"writing {where} failed: {e}. The unfinished file was removed; "
                       "export again to finish.")


def _copy_blob(src: Path, dst: Path, size: int, tick: Callable[[int], None]) -> None:
    """Copy one blob to ``dst`` via a temporary name in the same folder (fsync, rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{dst.name[:16]}.", suffix=".part",
                                    dir=dst.parent)
        tmp = Path(name)
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
                tick(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
        if tmp.stat().st_size != size:
            raise KetangError(f"{src} is not {size} bytes; the store is damaged.")
        os.replace(tmp, dst)
        with contextlib.suppress(OSError):  # some FUSE drivers cannot fsync a folder
            fsync_dir(dst.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            if tmp is not None:
                tmp.unlink()
        raise _full(e, dst) from e
    except BaseException:
        with contextlib.suppress(OSError):
            if tmp is not None:
                tmp.unlink()
        raise


def _write_small(path: Path, data: bytes) -> None:
    """Temp name, fsync, rename (no chmod: FAT drives under FUSE cannot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _full(e, path) from e
