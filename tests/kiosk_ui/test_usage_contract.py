"""Every usage event a page or script can send is one the API accepts (issue 18).

The projector used to record ``opened`` and ``pdf_page``, which ``POST /api/v1/usage``
refused on every part change, so no projector part or page was ever stored. This test
collects every event type any script or template can record and posts one of each.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import Settings
from appliance.usage.events import TYPES
from appliance.usage.xapi import VERBS
from appliance.web.app import create_app

UI = Path(__file__).resolve().parents[2] / "kiosk_ui"
# record('type', …), usage('record', 'type', …), ketangUsage.record('type', …)
CALL = re.compile(r"""(?:\brecord\(\s*|usage\(\s*['"]record['"]\s*,\s*)['"]([a-z_-]+)['"]""")


def sent_types() -> set[str]:
    found: set[str] = set()
    for path in [*UI.rglob("*.js"), *UI.rglob("*.html")]:
        found |= set(CALL.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_collector_sees_the_scripts_calls():
    assert {"lesson-opened", "video-played", "pdf-page-viewed", "part-projected",
            "app-opened"} <= sent_types()
    assert CALL.findall("usage('record', 'pdf_page', rid, {page: 1})") == ["pdf_page"]


@pytest.mark.parametrize("etype", sorted(sent_types()))
def test_every_type_a_page_sends_is_accepted_and_has_an_xapi_verb(tmp_path, etype):
    assert etype in TYPES, f"{etype!r} is sent by a page but refused by the API"
    assert etype in VERBS
    s = Settings().with_overrides("device", data_dir=tmp_path)
    client = create_app(s).test_client()
    event = {"id": str(uuid.uuid4()), "type": etype, "view": "projector",
             "actor": "projector-0001", "resource": "some-lesson-video",
             "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
             "extra": {"page": 1} if "pdf" in etype else {}}
    r = client.post("/api/v1/usage", json={"events": [event]})
    assert r.status_code == 200, (etype, r.get_json())
    assert r.get_json()["ids"] == [event["id"]] and r.get_json()["stored"] == 1
