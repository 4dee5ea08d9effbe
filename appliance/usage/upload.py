"""Upload usage statements to the LRS, exactly once in effect, and report how it goes.

Statements go in order of the events' ``seq``, ``usage.upload_batch`` per POST. The
cursor moves only when the LRS acknowledges a batch (200 or 204), in the same
transaction that counts them as sent; an upload cut off at any point starts again
from the cursor, and the LRS drops statements it already holds (same id, same
content), so nothing is ever counted twice. Nothing is written when there is nothing
to send: an idle device stays idle.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from appliance import identity
from appliance.config import Settings
from content_cache.errors import KetangError
from content_cache.filelock import Busy, exclusive_lock

from . import xapi
from .db import Row, UsageDB, db_path
from .events import iso

MAX_BACKOFF = 300.0
UPLOAD_LOCK = "usage-upload.lock"
BUSY = "another upload is running on this device (the one in `ketang serve` or another " \
       "`ketang usage upload`); it sends everything pending"


class LrsError(Exception):
    """The LRS did not acknowledge a POST; ``retry`` says whether trying later may help."""

    def __init__(self, message: str, status: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry


@dataclass
class UploadResult:
    """What one upload run did."""

    sent: int = 0
    batches: int = 0
    refused: int = 0
    skipped: str = ""
    error: str = ""
    pending: int = 0
    failed_ids: list[str] = field(default_factory=list)


def statements_url(lrs_url: str) -> str:
    """``<lrs_url>/statements`` (the xAPI resource statements are posted to)."""
    return lrs_url.rstrip("/") + "/statements"


def post_statements(lrs_url: str, username: str, password: str,
                    statements: list[dict[str, Any]], timeout: float) -> int:
    """POST statements to the LRS; return its status (200 or 204), or raise LrsError."""
    body = json.dumps(statements, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "X-Experience-API-Version": xapi.XAPI_VERSION}
    if username or password:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(statements_url(lrs_url), data=body, headers=headers,
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        detail = e.read()[:300].decode("utf-8", "replace")
        status = e.code
        if status in (401, 403):
            raise LrsError(f"the LRS refused our credentials (HTTP {status}); check "
                           "usage.lrs_username and usage.lrs_password", status, False) from None
        if status == 404:
            raise LrsError(f"the LRS has no {statements_url(lrs_url)} (HTTP 404); check "
                           "usage.lrs_url (it names the xAPI endpoint)", status, False) from None
        retry = status in (408, 429) or status >= 500
        raise LrsError(f"the LRS answered HTTP {status}: {detail}", status, retry) from None
    except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
        reason = getattr(e, "reason", e)
        raise LrsError(f"the LRS at {lrs_url} could not be reached or did not answer in "
                       f"{timeout:g} s ({reason})") from None


def post_with_retries(lrs_url: str, username: str, password: str,
                      statements: list[dict[str, Any]], timeout: float, retries: int,
                      backoff: float, sleep: Callable[[float], object] = time.sleep
                      ) -> list[tuple[str, str]]:
    """POST a batch, retrying with exponential backoff; return (id, error) of statements
    the LRS refused for good (each then tried alone, so one bad statement blocks no other).

    Raises LrsError when the LRS still fails after ``retries`` tries or refuses us.
    """
    last: LrsError | None = None
    for attempt in range(max(1, retries)):
        if attempt:
            sleep(min(MAX_BACKOFF, backoff * 2 ** (attempt - 1)))
        try:
            post_statements(lrs_url, username, password, statements, timeout)
            return []
        except LrsError as e:
            if e.status in (400, 409, 413):
                return _one_by_one(lrs_url, username, password, statements, timeout, e)
            if not e.retry:
                raise
            last = e
    assert last is not None
    raise last


def _one_by_one(lrs_url: str, username: str, password: str,
                statements: list[dict[str, Any]], timeout: float,
                first: LrsError) -> list[tuple[str, str]]:
    if len(statements) == 1:
        return [] if first.status == 409 else [(statements[0]["id"], str(first))]
    refused = []
    for st in statements:
        try:
            post_statements(lrs_url, username, password, [st], timeout)
        except LrsError as e:
            if e.status == 409:  # the LRS already holds a statement with this id
                continue
            if e.status in (400, 413):
                refused.append((st["id"], str(e)))
                continue
            raise
    return refused


def _window(text: str) -> tuple[dtime, dtime]:
    try:
        a, b = text.split("-")
        return dtime.fromisoformat(a.strip()), dtime.fromisoformat(b.strip())
    except ValueError:
        raise KetangError(f"usage.upload_windows: {text!r} is not a range like "
                          '"22:00-06:00"; see docs/configuration.md.') from None


def in_windows(windows: list[str], now: datetime | None = None) -> bool:
    """Is local time ``now`` inside one of the ``HH:MM-HH:MM`` windows (any, if none)?"""
    if not windows:
        return True
    t = (now or datetime.now()).time()
    for w in windows:
        a, b = _window(w)
        if (a <= t < b) if a <= b else (t >= a or t < b):
            return True
    return False


def _open(settings: Settings) -> UsageDB | None:
    if not db_path(settings.device.data_dir).exists():
        return None
    return UsageDB(settings.device.data_dir, settings.usage)


def upload(settings: Settings, force: bool = False, now: datetime | None = None,
           backoff: float = 2.0, sleep: Callable[[float], object] = time.sleep,
           progress: Callable[[UploadResult], None] | None = None) -> UploadResult:
    """Send every pending statement to ``usage.lrs_url``; see the module docstring.

    Outside ``usage.upload_windows`` nothing is sent unless ``force``. On failure the
    error is kept (``ketang usage status`` shows it) and the next run resumes.
    """
    s = settings.usage
    if not s.lrs_url:
        raise KetangError("no LRS is configured (usage.lrs_url is empty); set it, or carry "
                          "the statements on a USB drive.")
    result = UploadResult()
    if not force and not in_windows(s.upload_windows, now):
        result.skipped = (f"outside the upload windows {', '.join(s.upload_windows)}; use "
                          "--now to upload anyway")
        return result
    if not db_path(settings.device.data_dir).exists():
        return result
    # One uploader at a time per device (`ketang usage upload` and the one in `ketang
    # serve`): two would read the same cursor, post the same batches and count them twice.
    try:
        with exclusive_lock(Path(settings.device.data_dir) / UPLOAD_LOCK, BUSY):
            db = _open(settings)
            if db is None:
                return result
            try:
                return _upload_locked(settings, db, result, backoff, sleep, progress)
            finally:
                db.close()
    except Busy:
        result.skipped = BUSY
        return result


def _upload_locked(settings: Settings, db: UsageDB, result: UploadResult, backoff: float,
                   sleep: Callable[[float], object],
                   progress: Callable[[UploadResult], None] | None) -> UploadResult:
    s = settings.usage
    device = identity.device_id(settings.device.id)
    had_error = bool(db.meta().get("last_error"))
    while True:
        rows: list[Row] = db.after(db.cursor("lrs"), s.upload_batch)
        if not rows:
            break
        statements = [xapi.statement(r, settings, device) for r in rows]
        try:
            refused = post_with_retries(s.lrs_url, s.lrs_username, s.lrs_password,
                                        statements, s.upload_timeout, s.upload_retries,
                                        backoff, sleep)
        except LrsError as e:
            result.error = str(e)
            db.set_meta(last_error=str(e), last_error_at=iso(datetime.now(UTC)))
            db.bump("upload_failures", 1)
            break
        by_id = {r.id: r.seq for r in rows}
        db.advance("lrs", rows[-1].seq, "sent", len(rows) - len(refused),
                   [(by_id[i], i, err) for i, err in refused])
        result.sent += len(rows) - len(refused)
        result.refused += len(refused)
        result.failed_ids += [i for i, _ in refused]
        result.batches += 1
        if progress:
            progress(result)
    if result.sent and not result.error:
        db.set_meta(last_upload=iso(datetime.now(UTC)), **({"last_error": ""}
                                                           if had_error else {}))
    elif had_error and not result.error:
        db.set_meta(last_error="")
    result.pending = db.count_after(db.cursor("lrs"))
    return result


def usage_summary(settings: Settings) -> dict[str, Any]:
    """What the technician dashboard shows about usage (shape in docs/usage.md).

    Reads only; works (all zeros) before the first event.
    """
    s = settings.usage
    out: dict[str, Any] = {
        "enabled": s.enabled, "lrs_url": s.lrs_url, "upload_windows": list(s.upload_windows),
        "database": str(db_path(settings.device.data_dir)), "database_bytes": 0,
        "events": 0, "pending": 0, "pending_lrs": 0, "sent": 0, "carried": 0, "failed": 0,
        "dropped": 0, "last_upload": "", "last_error": "", "last_error_at": "",
        "oldest_pending": "",
    }
    db = _open(settings)
    if db is None:
        return out
    try:
        meta = db.meta()
        lrs, drive = db.cursor("lrs"), db.cursor("drive")
        oldest = db.after(max(lrs, drive), 1)
        out.update(
            database_bytes=sum(p.stat().st_size for p in db.path.parent.glob(db.path.name + "*")),
            events=db.count_after(0), pending=db.count_after(max(lrs, drive)),
            pending_lrs=db.count_after(lrs), sent=int(meta.get("sent", 0)),
            carried=int(meta.get("carried", 0)), failed=db.failed_count(),
            dropped=int(meta.get("dropped", 0)), last_upload=meta.get("last_upload", ""),
            last_error=meta.get("last_error", ""), last_error_at=meta.get("last_error_at", ""),
            oldest_pending=oldest[0].time if oldest else "",
        )
    finally:
        db.close()
    return out
