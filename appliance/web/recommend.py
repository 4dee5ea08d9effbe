"""Recommendations for a lesson: "next" (curriculum order) and "others went on to".

"Others went on to" blends this school's own co-usage table (``cousage.json``, kept up
to date by the usage schedule, read again only when it changes) with the national
table signed into the release (the catalog's ``related``); see docs/usage.md. Nothing
here writes, and nothing counts on the request path: one catalog query for the
national row, one for titles. "Continue" is per tablet and lives in the browser
(``kiosk_ui/static/tablet/continue.js``), like video resume.
"""

from __future__ import annotations

from typing import Any

from flask import url_for

from appliance.usage.cousage import LocalTable, blend
from content_cache.catalog import Catalog

from .context import settings, state

NEXT = 3
OTHERS = 5


def local_table() -> LocalTable:
    """The app's reader of the device's own co-usage table (made at first use)."""
    st = state()
    if st.cousage is None:
        st.cousage = LocalTable(settings().device.data_dir)
    return st.cousage


def others_after(cat: Catalog, lesson_id: str, exclude: set[str],
                 limit: int = OTHERS) -> list[dict[str, Any]]:
    """"Others went on to" from ``lesson_id``: lesson nodes of ``cat``, best first, from
    the blended co-usage tables, leaving out ``exclude`` (the tablet's lesson page and the
    projector's class screen both ask here)."""
    ids = blend(local_table().moves(lesson_id), cat.related(lesson_id),
                exclude | {lesson_id}, limit=limit * 2)
    found = cat.titles(ids)
    return [found[i] for i in ids if i in found and found[i]["kind"] == "lesson"][:limit]


def recommendations(channel: str, cat: Catalog, lesson_id: str) -> dict[str, list[dict]]:
    """``{"next": [...], "others": [...]}``: lessons with id, titles and page URL."""
    nxt = cat.following(lesson_id, NEXT)
    others = others_after(cat, lesson_id, {n["id"] for n in nxt[:1]})

    def item(n: dict[str, Any]) -> dict[str, Any]:
        return {"id": n["id"], "title": n["title"],
                "url": url_for("pages.lesson", channel=channel, lesson_id=n["id"])}

    return {"next": [item(n) for n in nxt], "others": [item(n) for n in others]}
