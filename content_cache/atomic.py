"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

After a power cut a file written through here is either the old one or the new
one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


def chmod_if_supported(path: Path, mode: int) -> None:
    """chmod, except on filesystems that have no modes (FAT and exFAT, above all under FUSE)."""
    try:
        os.chmod(path, mode)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP,
                                             errno.ENOTSUP, errno.EACCES):
            raise


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file; on a clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        chmod_if_supported(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    with atomic_writer(path, mode) as f:
        f.write(data)


def json_bytes(doc: Any) -> bytes:
    """``doc`` as every JSON file Ketang writes: UTF-8 with Chinese kept readable,
    indented, keys sorted, a final newline."""
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()


def atomic_write_json(path: Path, doc: Any, mode: int = 0o644) -> None:
    """Replace ``path`` with ``doc`` as JSON (:func:`json_bytes`), atomically and durably."""
    atomic_write_bytes(path, json_bytes(doc), mode)
