"""One holder at a time across processes: a non-blocking ``fcntl`` lock on a file.

The kernel drops the lock when its holder exits, even by SIGKILL or a power cut, so a
stale lock never blocks anyone.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import KetangError


class Busy(KetangError):
    """Another process holds the lock."""


@contextmanager
def exclusive_lock(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing) for the ``with`` block.

    Raises :class:`Busy` with the message ``busy`` at once if another process holds it.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(busy) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
