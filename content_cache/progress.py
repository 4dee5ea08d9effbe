"""Progress as every long job reports it: ``progress(done_bytes, total_bytes)``.

Import, export and publish copy blobs in pieces; a :class:`ByteCount` adds the pieces
up and calls the job's ``progress`` callback (a CLI bar, the drive status file) with
the running total. Who shows it decides how (``appliance/cli/progress.py`` draws a bar).
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]


class ByteCount:
    """Bytes done out of ``total``, told to ``progress`` (if any) after each piece."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def __call__(self, n: int) -> None:
        """``n`` more bytes are done."""
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)
