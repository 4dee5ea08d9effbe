"""Uploading usage on a schedule while ``ketang serve`` runs.

Every ``usage.upload_interval`` seconds, when an LRS is configured, the device tries
:func:`appliance.usage.upload.upload` (which itself keeps to ``usage.upload_windows``,
retries with backoff and advances its cursor only on the LRS's acknowledgement). A
failed try (no link, an LRS that answers 500) is kept as the last error for
``ketang usage status`` and the dashboard, and tried again at the next tick.

At each tick, with or without an LRS, the device's own co-usage table is brought up
to date from the events stored since (:func:`appliance.usage.cousage.refresh`), so
recommendations cost no work on the request path.
"""

from __future__ import annotations

import logging
import threading

from appliance.config import Settings
from content_cache.errors import KetangError

from . import cousage
from .upload import upload

log = logging.getLogger(__name__)


class UsageUploader:
    """A daemon thread that uploads pending usage every ``usage.upload_interval`` s."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ketang-usage-upload",
                                        daemon=True)

    def start(self) -> UsageUploader:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop after the current try (an upload in flight finishes its batch)."""
        self._stop.set()
        self._thread.join(timeout=self.settings.usage.upload_timeout + 5)

    def _loop(self) -> None:
        interval = max(1, self.settings.usage.upload_interval)
        while not self._stop.wait(interval):
            try:
                cousage.refresh(self.settings)
            except Exception:  # recommendations are a nicety: never stop the schedule
                log.exception("co-usage refresh failed")
            if not self.settings.usage.lrs_url:
                self.runs += 1
                continue
            try:
                result = upload(self.settings, sleep=self._stop.wait)
            except KetangError as e:
                log.warning("usage upload: %s", e)
            except Exception:  # the server must go on serving whatever the LRS does
                log.exception("usage upload failed")
            else:
                if result.error:
                    log.warning("usage upload: %s (tried again in %d s)", result.error,
                                interval)
            self.runs += 1


def start_uploader(settings: Settings) -> UsageUploader | None:
    """Start the usage schedule if usage is on: uploads (when an LRS is configured)
    and the co-usage table."""
    if not settings.usage.enabled:
        return None
    return UsageUploader(settings).start()
