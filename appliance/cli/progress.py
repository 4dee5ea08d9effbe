"""The one progress bar the commands draw, fed ``(done_bytes, total_bytes)``.

Every long job reports progress that way (:mod:`content_cache.progress`); a
:class:`ByteBar` is such a callback. Use it as a context manager so the bar is closed
(and the terminal line ended) even when the job fails.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import click


class ByteBar:
    """A click progress bar fed with (done, total) byte counts; a new bar when a job
    starts again from zero (the next channel of a bundle)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None and done < self.shown:  # the next channel of a bundle
            self.close()
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label=self.label,
                                         show_pos=False, show_percent=True, file=None)
            self.bar.__enter__()
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self) -> None:
        """End the bar (if one is shown)."""
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
            self.shown = 0

    def __enter__(self) -> ByteBar:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
