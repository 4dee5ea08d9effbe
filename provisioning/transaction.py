"""Stage every file first, then rename them all into place: a power cut leaves each file
old or new, and the next boot applies again from the start.

Staged files sit beside their targets as ``.NAME.ketang-stage`` (same filesystem, so the
rename is atomic); leftovers of a cut are removed by the next :meth:`Transaction.stage`.
Unchanged files are not rewritten (no SD-card wear at every boot).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from content_cache.atomic import chmod_if_supported, fsync_dir

SUFFIX = ".ketang-stage"


@dataclass
class _Write:
    target: Path
    data: bytes | None          # None: a symbolic link
    link: str | None
    mode: int
    owner: tuple[int, int] | None = None
    staged: Path | None = None


@dataclass(frozen=True)
class Previous:
    """What a path held before a commit changed it: file bytes with mode and owner, a
    link's target, or nothing (``data`` and ``link`` both None: the path did not exist)."""

    data: bytes | None = None
    link: str | None = None
    mode: int = 0o644
    owner: tuple[int, int] | None = None


@dataclass
class Transaction:
    """Files to write (and remove), staged and then committed in the order given.

    ``previous`` holds what each changed path held before (so a caller can put it back:
    :func:`restore`)."""

    writes: list[_Write] = field(default_factory=list)
    removals: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)
    previous: dict[Path, Previous] = field(default_factory=dict)

    def write(self, target: Path, data: bytes, mode: int = 0o644,
              owner: tuple[int, int] | None = None) -> None:
        """Write ``data`` to ``target`` at commit (skipped when it already holds it);
        ``owner`` (uid, gid) is applied when running as root."""
        self.writes.append(_Write(Path(target), data, None, mode, owner))

    def symlink(self, target: Path, points_to: str) -> None:
        """Make ``target`` a symbolic link to ``points_to`` at commit."""
        self.writes.append(_Write(Path(target), None, points_to, 0o777))

    def remove(self, target: Path) -> None:
        """Remove ``target`` at commit, after every write."""
        self.removals.append(Path(target))

    def stage(self) -> None:
        """Write every new file beside its target and fsync it; nothing is in place yet."""
        for folder in {w.target.parent for w in self.writes}:
            _clean_stale(folder)
        for w in self.writes:
            if _same(w):
                continue
            w.target.parent.mkdir(parents=True, exist_ok=True)
            staged = w.target.with_name(f".{w.target.name}{SUFFIX}")
            staged.unlink(missing_ok=True)
            if w.link is not None:
                os.symlink(w.link, staged)
            else:
                assert w.data is not None
                fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(w.data)
                    f.flush()
                    os.fsync(f.fileno())
                chmod_if_supported(staged, w.mode)
                if w.owner and os.geteuid() == 0:
                    os.chown(staged, *w.owner)
            w.staged = staged

    def commit(self) -> list[Path]:
        """Rename every staged file into place, then remove what is to go; return what
        changed."""
        dirs = set()
        for w in self.writes:
            if w.staged is None:
                continue
            self.previous.setdefault(w.target, _previous(w.target))
            os.replace(w.staged, w.target)
            dirs.add(w.target.parent)
            self.changed.append(w.target)
        for target in self.removals:
            if target.is_symlink() or target.exists():
                self.previous.setdefault(target, _previous(target))
                target.unlink()
                dirs.add(target.parent)
                self.changed.append(target)
        for d in sorted(dirs):
            fsync_dir(d)
        return self.changed

    def abandon(self) -> None:
        """Remove every staged file (an error before commit)."""
        for w in self.writes:
            if w.staged is not None:
                w.staged.unlink(missing_ok=True)


def restore(previous: dict[Path, Previous]) -> list[Path]:
    """Put every path back as ``previous`` says it was (staged and renamed like any
    transaction; a path that did not exist is removed). Returns what changed."""
    tx = Transaction()
    for target, before in previous.items():
        if before.link is not None:
            tx.symlink(target, before.link)
        elif before.data is not None:
            tx.write(target, before.data, before.mode, before.owner)
        else:
            tx.remove(target)
    try:
        tx.stage()
    except BaseException:
        tx.abandon()
        raise
    return tx.commit()


def _previous(target: Path) -> Previous:
    try:
        if target.is_symlink():
            return Previous(link=os.readlink(target))
        st = target.stat()
        return Previous(data=target.read_bytes(), mode=st.st_mode & 0o777,
                        owner=(st.st_uid, st.st_gid))
    except FileNotFoundError:
        return Previous()


def _same(w: _Write) -> bool:
    try:
        if w.link is not None:
            return w.target.is_symlink() and os.readlink(w.target) == w.link
        if w.target.is_symlink() or not w.target.is_file():
            return False
        return w.target.read_bytes() == w.data and \
            (w.target.stat().st_mode & 0o777) == w.mode
    except OSError:
        return False


def _clean_stale(folder: Path) -> None:
    if folder.is_dir():
        for p in folder.glob(f".*{SUFFIX}"):
            p.unlink(missing_ok=True)
