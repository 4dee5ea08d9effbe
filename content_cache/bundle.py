"""The ``KETANG/`` bundle layout, on a drive or in a spool folder.

    KETANG/releases/<channel>/<version>/manifest.json[.gz]  (+ .sig, + release.torrent)
    KETANG/blobs/sha256/ab/abcdef…
    KETANG/outbox/<device-id>/…

Names are matched ignoring case, as FAT compares them: Windows and mtools store a
lower-case name that fits 8.3 (``releases``, ``sha256``, ``ab``) as a capitalised short
name with a "lower case" flag that fusefat ignores, so such a drive read through fusefat
shows ``RELEASES/``, ``SHA256/``, ``AB/`` (see :class:`NoCase`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleReadError, KetangError
from .manifest import CHANNEL_RE

BUNDLE_DIR = "KETANG"
MANIFEST_NAMES = ("manifest.json", "manifest.json.gz")
# ASCII digits only: str.isdigit() also accepts '²' or '٣', which int() refuses or reads
# differently. Fifteen digits keep a version below 2**53, as the manifest rule does.
VERSION_RE = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class BundleRelease:
    """One release found in a bundle: where its manifest and signature are."""

    channel: str
    version: int
    manifest_path: Path
    signature_path: Path


class NoCase:
    """Paths inside one folder tree, each name matched ignoring case when not found as is.

    A name present exactly is always taken; otherwise the entry whose name matches it
    ignoring case (the first in sorted order, should a case-sensitive drive hold two).
    Each folder is listed once and remembered, so looking up a national release's 88,000
    blobs lists their 256 folders, not one folder per blob.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._names: dict[Path, dict[str, str]] = {}

    def _listing(self, folder: Path) -> dict[str, str]:
        names = self._names.get(folder)
        if names is None:
            try:
                entries = sorted(os.listdir(folder))
            except (FileNotFoundError, NotADirectoryError):
                entries = []
            names = {e: e for e in entries}
            for e in entries:
                names.setdefault(e.lower(), e)
            self._names[folder] = names
        return names

    def child(self, folder: Path, name: str) -> Path:
        """``folder/name`` as the folder spells it (``folder/name`` itself if absent)."""
        names = self._listing(folder)
        return folder / names.get(name, names.get(name.lower(), name))

    def path(self, *parts: str) -> Path:
        """``root/part/part…``, each part matched ignoring case."""
        p = self.root
        for part in parts:
            p = self.child(p, part)
        return p


def child_nocase(folder: Path, name: str) -> Path:
    """``folder/name``, or the entry of ``folder`` whose name matches it ignoring case."""
    return NoCase(folder).child(Path(folder), name)


def bundle_root(path: Path) -> Path:
    """Accept either the folder holding ``KETANG/`` or ``KETANG/`` itself."""
    path = Path(path)
    root = path if path.name.upper() == BUNDLE_DIR else child_nocase(path, BUNDLE_DIR)
    if root.is_symlink():
        raise KetangError(f"{root} is a symlink; a bundle must be a real {BUNDLE_DIR}/ folder "
                          "so nothing outside the drive is read. Copy the folder itself.")
    if root.is_dir():
        return root
    raise KetangError(
        f"{path} holds no {BUNDLE_DIR}/ folder. A Ketang bundle is a {BUNDLE_DIR}/ folder at "
        "the root of a drive or spool folder; check you named the right place."
    )


def release_dir(root: Path, channel: str, version: int) -> Path:
    """Where a release's manifest lives inside a bundle root (``KETANG/``)."""
    return root / "releases" / channel / str(version)


def find_releases(root: Path) -> list[BundleRelease]:
    """Every release in a bundle, oldest version first per channel.

    Entries that are symlinks or not named like a channel/version are ignored:
    a bundle never makes the device read outside ``KETANG/``. A folder that cannot be
    read (a failing or pulled drive) raises BundleReadError.
    """
    try:
        return _find_releases(root)
    except OSError as e:
        raise BundleReadError(
            f"reading the bundle at {root} failed ({e}): the drive was removed or is "
            "damaged. Nothing was imported; plug it in again, or re-copy it from its source."
        ) from e


def _find_releases(root: Path) -> list[BundleRelease]:
    found: list[BundleRelease] = []
    tree = NoCase(root)
    releases = tree.path("releases")
    if not releases.is_dir() or releases.is_symlink():
        return found
    for ch_dir in sorted(releases.iterdir()):
        channel = ch_dir.name.lower()  # channel ids are lower case; FAT may show capitals
        if ch_dir.is_symlink() or not ch_dir.is_dir() or not CHANNEL_RE.fullmatch(channel):
            continue
        for v_dir in ch_dir.iterdir():
            if (v_dir.is_symlink() or not v_dir.is_dir()
                    or not VERSION_RE.fullmatch(v_dir.name) or int(v_dir.name) < 1):
                continue
            for name in MANIFEST_NAMES:
                m = tree.child(v_dir, name)
                if m.is_file() and not m.is_symlink():
                    found.append(BundleRelease(channel, int(v_dir.name), m,
                                               tree.child(v_dir, name + ".sig")))
                    break
    found.sort(key=lambda r: (r.channel, r.version))
    return found
