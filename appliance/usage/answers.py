"""Questionnaire answers: stored like usage events, so they leave exactly once.

An answer is one event of type ``questionnaire-answered`` in ``usage.db`` (committed
with ``synchronous=FULL`` before the teacher is told it is saved), so it takes the
paths every event takes: the LRS upload (its cursor moves only on acknowledgement, and
the LRS drops an id it holds) or the signed drive outbox. Its statement carries the
questionnaire id and the answers (:func:`appliance.usage.xapi.statement`). Tablets
cannot post this type (it is not one of the API's event types).

One answer per device and questionnaire, whoever answers first (the dashboard or the
projector): the check and the write are done under one lock, and the event's id is
made from the device, channel and questionnaire (a UUID 5), so even a second answer
that reached the database would be dropped there, and by the LRS, as the same id.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from appliance import identity
from appliance.config import Settings
from content_cache.questionnaire import Questionnaire

from .db import UsageDB, db_path
from .events import Event, Where, iso

TYPE = "questionnaire-answered"
VIEW = "dashboard"
_NS = uuid.UUID("6f1c2a1e-5b1d-4c55-9a8e-2d6f3b0a9c71")
_lock = threading.Lock()


def _marker(channel: str, qid: str) -> str:
    return f"answered:{channel}/{qid}"


def answered(settings: Settings, channel: str, qid: str) -> str:
    """When this device answered the questionnaire ("" if not yet)."""
    if not db_path(settings.device.data_dir).exists():
        return ""
    db = UsageDB(settings.device.data_dir, settings.usage)
    try:
        at = db.meta().get(_marker(channel, qid), "")
        if not at:
            row = db.db.execute_sql("SELECT time FROM event WHERE type = ? AND channel = ?"
                                    " AND resource = ?", (TYPE, channel, qid)).fetchone()
            at = row[0] if row else ""
        return at
    finally:
        db.close()


def answer_id(device: str, channel: str, qid: str) -> str:
    """The event id of this device's answer to a questionnaire (the same every time)."""
    return str(uuid.uuid5(_NS, f"{device}/{channel}/{qid}"))


def store(settings: Settings, channel: str, version: int, q: Questionnaire,
          answers: dict[str, Any], view: str = VIEW) -> str | None:
    """Store one set of answers durably (committed before it returns); return its id,
    or None when this device has answered already (nothing is stored: one answer per
    device and questionnaire). ``view`` says where it was answered (``dashboard`` or
    ``projector``)."""
    with _lock:
        if answered(settings, channel, q.id):
            return None
        now = datetime.now(UTC)
        device = identity.device_id(settings.device.id)
        ev = Event(id=answer_id(device, channel, q.id), type=TYPE, time=iso(now),
                   actor=f"device-{device}"[:64], view=view, resource=q.id,
                   channel=channel, version=version,
                   extra={"answers": answers, "audience": q.doc["audience"]})
        db = UsageDB(settings.device.data_dir, settings.usage)
        try:
            (new,), = db.store([[(ev, Where(channel, version, "", "", "", "questionnaire"))]])
            db.set_meta(**{_marker(channel, q.id): ev.time})
        finally:
            db.close()
    return ev.id if new else None
