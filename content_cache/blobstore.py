"""The content-addressed blob store: ``blobs/sha256/ab/abcdef…``.

A blob is written to a temporary file on the same filesystem, hashed while it is
written, fsynced, then renamed into place. So a blob in the store is complete and
verified, or it is not there.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .atomic import chmod_if_supported, fsync_dir
from .errors import BlobError, BundleReadError, DataDiskError

log = logging.getLogger(__name__)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a lowercase hex sha256, else raise BlobError."""
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise BlobError(f"{value!r} is not a sha256 (64 lowercase hex digits)")
    return value


def blob_relpath(sha256: str) -> Path:
    """The path of a blob relative to the folder that holds ``blobs/``."""
    check_sha256(sha256)
    return Path("blobs", "sha256", sha256[:2], sha256)


def sha256_file(path: Path) -> str:
    """Hash a file in chunks (never whole in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path: Path) -> None:
    """Flush every written file of the filesystem holding ``path`` (Linux syncfs(2))."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


class BlobStore:
    """Blobs under ``root/blobs/sha256``; temporary files under ``root/blobs/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "blobs" / "tmp"
        self.damaged_dir = self.root / "blobs" / "damaged"
        self._sha_root = str(self.root / "blobs" / "sha256")
        self._pending: list[tuple[Path, Path]] = []
        # Blobs hashed by checked_size() in this process: sha256 → the file's identity then.
        self._checked: dict[str, tuple[int, int, int, int]] = {}
        self._check_locks: dict[str, threading.Lock] = {}
        self._check_lock = threading.Lock()

    def checked_size(self, sha256: str) -> int | None:
        """The size of blob ``sha256`` if the store holds it and its bytes match its name.

        What a server calls before it serves a blob. The first call for a blob in a
        process hashes it (once, however many ask at the same moment); later calls cost
        one stat while the file stays the same. A blob whose bytes no longer match (SD
        card bit rot, a write that went wrong) is moved to ``blobs/damaged/`` and None is
        returned: it is never served, and the next import or sync fetches it again.
        """
        check_sha256(sha256)
        path = f"{self._sha_root}/{sha256[:2]}/{sha256}"
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        ident = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._checked.get(sha256) == ident:
            return st.st_size
        with self._check_lock:
            lock = self._check_locks.setdefault(sha256, threading.Lock())
        with lock:
            if self._checked.get(sha256) != ident:
                try:
                    good = sha256_file(Path(path)) == sha256
                except OSError:  # an unreadable sector: as bad as wrong bytes
                    good = False
                if not good:
                    self._set_aside(sha256, Path(path))
                    return None
                self._checked[sha256] = ident
        with self._check_lock:
            self._check_locks.pop(sha256, None)
        return st.st_size

    def _set_aside(self, sha256: str, path: Path) -> None:
        log.error("blob %s no longer matches its sha256 (damaged storage?); moved to %s and "
                  "not served. Import or sync the release again to restore it.", sha256,
                  self.damaged_dir)
        self._checked.pop(sha256, None)
        try:
            self.damaged_dir.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.damaged_dir / sha256)
            fsync_dir(path.parent)
        except OSError:
            pass  # a read-only or failing card: still never served (None above)

    def path_for(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it is there)."""
        return self.root / blob_relpath(sha256)

    def has(self, sha256: str) -> bool:
        """True if the store holds the blob. Blobs in the store are verified."""
        check_sha256(sha256)
        # String paths: this runs once per blob of a release (88,000 times), where
        # pathlib's parsing would dominate.
        return os.path.isfile(f"{self._sha_root}/{sha256[:2]}/{sha256}")

    def add_stream(
        self,
        src: BinaryIO,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        where: str = "the input",
        on_bytes: Callable[[int], None] | None = None,
        defer: bool = False,
    ) -> str:
        """Copy ``src`` into the store, verifying it; return its sha256.

        Raises BlobError, leaving the store unchanged, if the bytes do not match
        ``expected_sha256`` or ``expected_size``.

        With ``defer=True`` the verified bytes wait in a temporary file and enter the
        store at the next :meth:`commit`, which makes a whole batch durable with one
        filesystem sync before renaming (one fsync per small blob is what makes a
        national release slow to import). Until then :meth:`has` does not see them.
        """
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix="blob-", suffix=".part", dir=self.tmp_dir)
        except OSError as e:
            raise self.disk_error(e) from e
        tmp = Path(tmp_name)
        try:
            try:
                return self._copy_in(src, fd, tmp, expected_sha256, expected_size, where,
                                     on_bytes, defer)
            except OSError as e:  # reads are BundleReadError by now: this is our own disk
                raise self.disk_error(e) from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def disk_error(self, e: OSError) -> DataDiskError:
        """The words for a failed write to the store's own disk (full, read-only, failing)."""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            what = f"the data disk ({self.root}) is full ({e.strerror})"
        else:
            what = f"writing to the data disk ({self.root}) failed ({e.strerror or e})"
        return DataDiskError(
            f"数据盘写入失败 / {what}. Files verified before this are kept and nothing was "
            "activated: the device still serves what it served. Free space (`ketang gc`, "
            "or subscribe to fewer subjects) or check the disk, then import again."
        )

    def _copy_in(self, src: BinaryIO, fd: int, tmp: Path, expected_sha256: str | None,
                 expected_size: int | None, where: str,
                 on_bytes: Callable[[int], None] | None, defer: bool) -> str:
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := _read_chunk(src, where):
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise BlobError(
                        f"{where} is larger than the {expected_size} bytes the manifest "
                        "names; the bundle may be corrupt. Re-copy it from the source."
                    )
                h.update(chunk)
                out.write(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
            out.flush()
            if not defer:
                os.fsync(out.fileno())
        digest = h.hexdigest()
        if expected_size is not None and size != expected_size:
            raise BlobError(
                f"{where} is truncated: {size} of {expected_size} bytes. "
                "Re-copy the bundle from its source and import again."
            )
        if expected_sha256 is not None and digest != expected_sha256:
            raise BlobError(
                f"{where} does not match its sha256: expected {expected_sha256}, "
                f"got {digest}. The file was altered or damaged; re-copy the bundle."
            )
        final = self.path_for(digest)
        chmod_if_supported(tmp, 0o444)
        if defer:
            self._pending.append((tmp, final))
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return digest

    @property
    def pending(self) -> int:
        """How many deferred blobs wait for :meth:`commit`."""
        return len(self._pending)

    def commit(self) -> None:
        """Sync the deferred blobs' bytes, rename them into place, sync their folders."""
        if not self._pending:
            return
        try:
            syncfs(self.tmp_dir)
            dirs: set[Path] = set()
            for tmp, final in self._pending:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                dirs.add(final.parent)
            self._pending.clear()
            for d in dirs:
                fsync_dir(d)
            fsync_dir(self.root / "blobs" / "sha256")
        except OSError as e:
            raise self.disk_error(e) from e

    def discard(self) -> None:
        """Drop the deferred blobs (after an error): the store is as it was."""
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def add_file(
        self,
        path: Path,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
        defer: bool = False,
    ) -> str:
        """Copy the file at ``path`` into the store, verifying it; return its sha256."""
        path = Path(path)
        if path.is_symlink() or not path.is_file():
            raise BlobError(f"{path} is not a regular file; refusing to read it.")
        try:
            f = open(path, "rb")
        except OSError as e:
            raise _read_error(str(path), e) from e
        with f:
            return self.add_stream(f, expected_sha256, expected_size, str(path), on_bytes,
                                   defer)


def _read_chunk(src: BinaryIO, where: str) -> bytes:
    try:
        return src.read(CHUNK)
    except OSError as e:
        raise _read_error(where, e) from e


def _read_error(where: str, e: OSError) -> BundleReadError:
    return BundleReadError(f"reading {where} failed ({e.strerror or e}): the drive or folder "
                           "it comes from was removed or is damaged.")
