"""Stored usage events as xAPI 1.0.3 statements (the mapping is in docs/usage.md).

A statement is made from the stored event alone, plus the device's settings, so the
same event always gives the same statement: an LRS that already holds it treats a
second post as a duplicate, never as a new statement.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from appliance.config import Settings

from .db import Row

XAPI_VERSION = "1.0.3"
ADL = "http://adlnet.gov/expapi/verbs/"
VIDEO = "https://w3id.org/xapi/video/"
EXT = "http://ketang.lan/xapi/extensions/"

VERBS: dict[str, tuple[str, str, str]] = {
    # event type: (verb IRI, English display, Chinese display)
    "lesson-opened": (ADL + "launched", "launched", "打开"),
    "video-played": (VIDEO + "verbs/played", "played", "播放"),
    "video-paused": (VIDEO + "verbs/paused", "paused", "暂停"),
    "video-progress": (ADL + "progressed", "progressed", "观看进度"),
    "video-completed": (ADL + "completed", "completed", "看完"),
    "pdf-page-viewed": (ADL + "experienced", "experienced", "阅读"),
    "exercise-attempted": (ADL + "attempted", "attempted", "开始作答"),
    "exercise-answered": (ADL + "answered", "answered", "作答"),
    "app-opened": (ADL + "launched", "launched", "打开"),
    "projected": (ADL + "attended", "attended", "课堂投影"),
    "part-projected": (ADL + "experienced", "experienced", "课堂展示"),
    "question-answered": (ADL + "answered", "answered", "课堂作答"),
    "questionnaire-answered": (ADL + "responded", "responded", "回答问卷"),
}
ACTIVITY_TYPES = {
    "lesson": "http://adlnet.gov/expapi/activities/lesson",
    "video": VIDEO + "activity-type/video",
    "pdf": "http://id.tincanapi.com/activitytype/document",
    "exercise": "http://adlnet.gov/expapi/activities/assessment",
    "html5": "http://adlnet.gov/expapi/activities/simulation",
    "question": "http://adlnet.gov/expapi/activities/cmi.interaction",
    "questionnaire": "http://id.tincanapi.com/activitytype/survey",
}
TYPE_KIND = {"lesson-opened": "lesson", "pdf-page-viewed": "pdf", "app-opened": "html5",
             "exercise-attempted": "exercise", "exercise-answered": "exercise"}


def activity_id(settings: Settings, channel: str, resource: str) -> str:
    """The IRI of a resource or lesson: ``<usage.activity_base><channel>/<id>``."""
    return f"{settings.usage.activity_base}{quote(channel or 'unknown', safe='')}/" \
           f"{quote(resource, safe='')}"


def duration(seconds: float) -> str:
    """ISO 8601 duration, as xAPI wants it (``PT90.5S``)."""
    return f"PT{round(seconds, 2):g}S"


def statement(row: Row, settings: Settings, device_id: str) -> dict[str, Any]:
    """The xAPI statement for one stored event; its id is the event's id."""
    verb_id, en, zh = VERBS[row.type]
    kind = row.kind or TYPE_KIND.get(row.type, "video" if row.type.startswith("video") else "")
    obj: dict[str, Any] = {"objectType": "Activity",
                           "id": activity_id(settings, row.channel, row.resource)}
    live = row.type == "question-answered"   # a live class answer: the object is the question
    if live:
        kind = "question"
        obj["id"] += f"/q{int(row.extra.get('question', 0)) + 1}"
    if kind in ACTIVITY_TYPES:
        obj["definition"] = {"type": ACTIVITY_TYPES[kind]}
    ext: dict[str, Any] = {EXT + "school": settings.device.name, EXT + "device": device_id,
                           EXT + "view": row.view}
    if row.channel:
        ext[EXT + "channel"] = row.channel
    if row.version:
        ext[EXT + "version"] = row.version
    for key in ("page", "class", "question"):
        if key in row.extra:
            ext[EXT + key] = row.extra[key]
    if row.grade:
        ext[EXT + "grade"] = row.grade
    if row.subject:
        ext[EXT + "subject"] = row.subject
    context: dict[str, Any] = {"platform": "Ketang", "extensions": ext}
    if live:
        context["contextActivities"] = {"parent": [{
            "objectType": "Activity", "id": activity_id(settings, row.channel, row.resource),
            "definition": {"type": ACTIVITY_TYPES["exercise"]}}]}
        if row.lesson:
            context["contextActivities"]["grouping"] = [{
                "objectType": "Activity", "id": activity_id(settings, row.channel, row.lesson),
                "definition": {"type": ACTIVITY_TYPES["lesson"]}}]
    elif row.lesson and row.lesson != row.resource:
        context["contextActivities"] = {"parent": [{
            "objectType": "Activity", "id": activity_id(settings, row.channel, row.lesson),
            "definition": {"type": ACTIVITY_TYPES["lesson"]}}]}
    result: dict[str, Any] = {}
    rext: dict[str, Any] = {}
    if "position" in row.extra:
        rext[VIDEO + "extensions/time"] = row.extra["position"]
    if "duration" in row.extra:
        rext[VIDEO + "extensions/length"] = row.extra["duration"]
    if rext:
        result["extensions"] = rext
    if "seconds" in row.extra:
        result["duration"] = duration(row.extra["seconds"])
    if "correct" in row.extra:
        result["success"] = row.extra["correct"]
    if live and "choice" in row.extra:
        result["response"] = str(row.extra["choice"])   # the chosen choice, from 0
    if row.type == "video-completed":
        result["completion"] = True
    if row.type == "questionnaire-answered":
        ext[EXT + "questionnaire"] = row.resource
        ext[EXT + "audience"] = row.extra.get("audience", "")
        answers = row.extra.get("answers", {})
        result.update(completion=True, response=json.dumps(answers, ensure_ascii=False,
                                                           sort_keys=True),
                      extensions={EXT + "answers": answers})
    out: dict[str, Any] = {
        "id": row.id,
        "actor": {"objectType": "Agent",
                  "account": {"homePage": settings.usage.school_homepage, "name": row.actor}},
        "verb": {"id": verb_id, "display": {"en-US": en, "zh-CN": zh}},
        "object": obj,
        "context": context,
        "timestamp": row.time,
    }
    if result:
        out["result"] = result
    return out
