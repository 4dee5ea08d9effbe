"""A release's BitTorrent torrent: its files are the release's blobs.

The torrent is v1-only without pad files (see docs/formats.md, "Torrent"): every
stock client reads it, including Debian's aria2, whose download folder then *is* a
``KETANG/`` bundle's blob tree::

    <download dir>/KETANG/blobs/sha256/ab/abcdef…

The torrent's name is ``KETANG`` and each file's path is its blob path, sorted by
sha256, so a BEP 19 web seed is simply an HTTP server whose root holds ``KETANG/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import libtorrent as lt

from .atomic import atomic_write_bytes
from .blobstore import blob_relpath, check_sha256
from .bundle import BUNDLE_DIR
from .errors import KetangError
from .manifest import Manifest

TORRENT_NAME = "release.torrent"
MIN_PIECE = 1024 * 1024
MAX_PIECE = 4 * 1024 * 1024
MAX_PIECES = 65536
MAX_TORRENT_BYTES = 8 * 1024 * 1024


class TorrentError(KetangError):
    """A release torrent is malformed or does not match its signed manifest."""


def choose_piece_size(total: int) -> int:
    """Smallest power of two ≥ 1 MiB giving at most 65,536 pieces (capped at 4 MiB).

    Large pieces for stock clients: Transmission asks a web seed for one piece per HTTP
    request, so 16 KiB pieces left it 4% of a satellite link (bench/sync_clients.py).
    Devices pay nothing for them: a piece spanning a held blob and a missing one costs
    only the missing blob's blocks (content_cache/transfer.py, partial copies).
    """
    size = MIN_PIECE
    while size < MAX_PIECE and total > size * MAX_PIECES:
        size *= 2
    return size


def _created_stamp(manifest: Manifest) -> int:
    try:
        return int(datetime.strptime(manifest.created, "%Y-%m-%dT%H:%M:%S%z").timestamp())
    except (TypeError, ValueError):
        return 0


#: Torrent layouts ``build_release_torrent`` can make (docs/formats.md says which is used):
#: ``v1`` (no pad files: pieces may span blobs), ``v1-pad`` (v1 with BEP 47 pad files, so
#: every blob starts a piece) and ``hybrid`` (v1 + v2, BEP 52, which pads the same way).
LAYOUTS = {
    "v1": lt.create_torrent.v1_only,
    "v1-pad": lt.create_torrent.v1_only | lt.create_torrent.canonical_files_no_tail_padding,
    "hybrid": lt.create_torrent.canonical_files_no_tail_padding,
}


def build_release_torrent(
    bundle_root: Path,
    manifest: Manifest,
    web_seeds: Sequence[str] = (),
    piece_size: int | None = None,
    layout: str = "v1",
) -> bytes:
    """Hash the release's blobs under ``bundle_root`` (a ``KETANG/`` folder); return the torrent.

    The same release always gives the same info-hash (files sorted by sha256, piece
    size from the total), so publishers on two machines agree.
    """
    blobs = manifest.blobs()
    if not blobs:
        raise TorrentError(f"{manifest.channel} v{manifest.version} has no blobs to put in a "
                           "torrent; add at least one resource.")
    for sha, size in blobs.items():
        p = Path(bundle_root) / blob_relpath(sha)
        if not p.is_file() or p.stat().st_size != size:
            raise TorrentError(f"blob {sha} of {manifest.channel} v{manifest.version} is missing "
                               f"or the wrong size at {p}; publish the release again.")
    entries = [lt.create_file_entry(f"{BUNDLE_DIR}/{blob_relpath(sha).as_posix()}", size)
               for sha, size in sorted(blobs.items())]
    total = sum(blobs.values())
    if layout not in LAYOUTS:
        raise TorrentError(f"torrent layout {layout!r} is not one of {', '.join(LAYOUTS)}.")
    ct = lt.create_torrent(entries, piece_size or choose_piece_size(total), LAYOUTS[layout])
    lt.set_piece_hashes(ct, str(Path(bundle_root).parent))
    for url in web_seeds:
        if not url.startswith(("http://", "https://")):
            raise TorrentError(f"web seed {url!r} must be an http:// or https:// URL.")
        ct.add_url_seed(url if url.endswith("/") else url + "/")
    ct.set_creator("ketang")
    ct.set_comment(f"{manifest.channel} v{manifest.version}")
    ct.set_creation_date(_created_stamp(manifest))
    return lt.bencode(ct.generate())


def write_release_torrent(
    bundle_root: Path,
    manifest: Manifest,
    release_dir: Path,
    web_seeds: Sequence[str] = (),
    piece_size: int | None = None,
) -> Path:
    """Write ``release.torrent`` beside the manifest in ``release_dir`` (atomically)."""
    path = Path(release_dir) / TORRENT_NAME
    atomic_write_bytes(path, build_release_torrent(bundle_root, manifest, web_seeds, piece_size))
    return path


@dataclass(frozen=True)
class ReleaseTorrent:
    """A loaded torrent checked against its manifest: file index for every blob."""

    params: lt.add_torrent_params
    file_index: dict[str, int]  # sha256 → file index
    piece_length: int
    total_size: int


def load_release_torrent(data: bytes, manifest: Manifest, where: str) -> ReleaseTorrent:
    """Parse a torrent and check its files are exactly the manifest's blobs.

    The torrent is not signed; this check (and the sha256 of every finished file)
    is what makes it safe to use one from anywhere.
    """
    if len(data) > MAX_TORRENT_BYTES:
        raise TorrentError(f"{where} is larger than {MAX_TORRENT_BYTES} bytes; refused.")
    try:
        params = lt.load_torrent_buffer(data)
    except RuntimeError as e:
        raise TorrentError(f"{where} is not a valid torrent ({e}); fetch it again.") from e
    ti = params.ti
    assert ti is not None, "a loaded torrent has its info"
    files = ti.layout()
    blobs = manifest.blobs()
    index: dict[str, int] = {}
    for i in range(files.num_files()):
        path = files.file_path(i)
        if files.file_flags(i) & files.flag_pad_file:
            # BEP 47 padding (zeros, never stored): KETANG/.pad/<size>, shorter than a piece.
            if (Path(path).parts[:2] != (BUNDLE_DIR, ".pad")
                    or files.file_size(i) >= ti.piece_length()):
                raise TorrentError(f"{where}: pad file {path!r} is not BEP 47 padding; the "
                                   "torrent was not made by ketang publish.")
            continue
        parts = Path(path).parts
        if (len(parts) != 5 or parts[:3] != (BUNDLE_DIR, "blobs", "sha256")
                or parts[3] != parts[4][:2]):
            raise TorrentError(f"{where}: file {path!r} is not a blob path; the torrent does not "
                               f"belong to {manifest.channel} v{manifest.version}.")
        sha = check_sha256(parts[4])
        if blobs.get(sha) != files.file_size(i):
            raise TorrentError(f"{where}: blob {sha} is not in {manifest.channel} "
                               f"v{manifest.version} with that size; wrong torrent for it.")
        index[sha] = i
    if set(index) != set(blobs):
        raise TorrentError(f"{where} lacks {len(set(blobs) - set(index))} of the release's blobs;"
                           " it belongs to another release.")
    return ReleaseTorrent(params, index, ti.piece_length(), ti.total_size())
