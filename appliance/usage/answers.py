"""Questionnaire answers: stored like usage events, so they leave exactly once.

An answer is one event of type ``questionnaire-answered`` in ``usage.db`` (committed
with ``synchronous=FULL`` before the teacher is told it is saved), so it takes the
paths every event takes: the LRS upload (its cursor moves only on acknowledgement, and
the LRS drops an id it holds) or the signed drive outbox. Its statement carries the
questionnaire id and the answers (:func:`appliance.usage.xapi.statement`). Tablets
cannot post this type (it is not one of the API's event types).
"""

from __future__ import annotations

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


def store(settings: Settings, channel: str, version: int, q: Questionnaire,
          answers: dict[str, Any]) -> str:
    """Store one set of answers durably; return its id. Raises ValueError when this
    device has answered already (one answer per device and questionnaire)."""
    if answered(settings, channel, q.id):
        raise ValueError("already answered")
    now = datetime.now(UTC)
    device = identity.device_id(settings.device.id)
    ev = Event(id=str(uuid.uuid4()), type=TYPE, time=iso(now), actor=f"device-{device}"[:64],
               view=VIEW, resource=q.id, channel=channel, version=version,
               extra={"answers": answers, "audience": q.doc["audience"]})
    db = UsageDB(settings.device.data_dir, settings.usage)
    try:
        db.store([[(ev, Where(channel, version, "", "", "", "questionnaire"))]])
        db.set_meta(**{_marker(channel, q.id): ev.time})
    finally:
        db.close()
    return ev.id
