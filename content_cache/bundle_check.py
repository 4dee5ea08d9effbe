"""Refusing what a drive's ``KETANG/`` folder must not hold.

A bundle on a drive is read by root. A symlink, a device file, a FIFO or a socket
anywhere under ``KETANG/`` could make the device read outside the drive or block on
a read, so such a bundle is refused before anything in it is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KetangError

MAX_REPORTED = 5


class UnsafeBundleError(KetangError):
    """The bundle holds entries that are not plain folders and files."""


def unsafe_entries(root: Path) -> list[str]:
    """Entries under ``root`` (and ``root`` itself) that are not plain folders or files.

    Never follows a symlink. Each entry is described as ``"<path>: <what it is>"``.
    """
    root = Path(root)
    found: list[str] = []
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        return [f"{root}: {_kind(st.st_mode)}"]
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(Path(entry.path))
                elif not stat.S_ISREG(mode):
                    found.append(f"{entry.path}: {_kind(mode)}")
    return sorted(found)


def check_bundle_entries(root: Path) -> None:
    """Raise UnsafeBundleError naming the entries if ``root`` holds anything unsafe."""
    bad = unsafe_entries(root)
    if bad:
        shown = "; ".join(bad[:MAX_REPORTED])
        more = f" (and {len(bad) - MAX_REPORTED} more)" if len(bad) > MAX_REPORTED else ""
        raise UnsafeBundleError(
            f"the drive's bundle holds {len(bad)} entries that are not plain files or folders "
            f"({shown}{more}); refused, nothing imported. Re-write the drive with "
            "`ketang export` or `ketang publish`."
        )


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink (it could point outside KETANG/)"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "a device file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file or folder"
