""""Follow the teacher": what the projector shows, for the tablets that follow it.

The state lives in memory (one per device: the process serving it) and is lost on a
restart, which is what we want: a new lesson starts a new session. Only the projector
sets it — a request from the device itself (the kiosk browser on loopback) or one
carrying the projector's token (``[projector] token``); tablets only read it.

Tablets read it as server-sent events that never hold a worker thread: each answer
carries the current state (or nothing, when the ``Last-Event-ID`` the browser sends
is already current) and ends at once with a ``retry:`` line, so EventSource asks
again a moment later (docs/projector.md says why).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from appliance.classes.answers import ROUND

RETRY_MS = 2000
ID_MAX = 200  # longest channel, lesson or resource id accepted from the projector


class FollowError(ValueError):
    """The projector sent a state that cannot be followed."""


@dataclass(frozen=True)
class FollowState:
    """What the projector shows. ``seq`` grows with every change (the SSE event id)."""

    seq: int = 0
    channel: str = ""
    lesson: str = ""
    part: int = 0
    resource: str = ""
    kind: str = ""
    page: int = 1
    round: str = ""   # the class's round of live answers (appliance.classes.answers)
    updated: float = field(default=0.0)

    def as_json(self) -> dict[str, Any]:
        """The state as tablets read it."""
        return asdict(self)


class Follow:
    """The device's one follow state, shared by the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = FollowState()

    def get(self) -> FollowState:
        """The current state."""
        with self._lock:
            return self._state

    def set(self, doc: Any) -> FollowState:
        """Replace the state with what ``doc`` (the projector's JSON) says.

        A state equal to the current one is not a change (same ``seq``), so a projector
        that repeats itself wakes no tablet. Raises FollowError on a malformed ``doc``.
        """
        fields_ = parse_state(doc)
        with self._lock:
            current = self._state
            same = all(getattr(current, k) == v for k, v in fields_.items())
            if not same:
                self._state = FollowState(seq=current.seq + 1, updated=time.time(), **fields_)
            return self._state


def parse_state(doc: Any) -> dict[str, Any]:
    """The fields of a state posted by the projector, checked; raises FollowError."""
    if not isinstance(doc, dict):
        raise FollowError("the follow state must be a JSON object such as "
                          '{"channel": "…", "lesson": "…", "part": 0}.')
    out: dict[str, Any] = {}
    for key in ("channel", "lesson", "resource", "kind"):
        value = doc.get(key, "")
        if not isinstance(value, str) or len(value) > ID_MAX or "\n" in value:
            raise FollowError(f"{key} must be a string of at most {ID_MAX} characters on "
                              f"one line, not {value!r}.")
        out[key] = value
    for key, default in (("part", 0), ("page", 1)):
        value = doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10000:
            raise FollowError(f"{key} must be a whole number from 0 to 9999, not {value!r}.")
        out[key] = value
    rnd = doc.get("round", "")
    if not isinstance(rnd, str) or (rnd and not ROUND.match(rnd)):
        raise FollowError(f"round must be a round of live answers such as 20261130-c3, "
                          f"or empty, not {rnd!r}.")
    out["round"] = rnd
    if bool(out["channel"]) != bool(out["lesson"]):
        raise FollowError("channel and lesson go together: give both, or neither "
                          "(the projector shows no lesson).")
    unknown = set(doc) - {"channel", "lesson", "resource", "kind", "part", "page", "round"}
    if unknown:
        raise FollowError(f"unknown keys in the follow state: {', '.join(sorted(unknown))}.")
    return out


def is_projector(remote_addr: str | None, token: str, given: str | None) -> bool:
    """Whether a request may set the state: from loopback, or with the projector's token."""
    if token and given and hmac.compare_digest(token.encode(), given.encode()):
        return True
    try:
        ip = ipaddress.ip_address((remote_addr or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def event_stream(state: FollowState, last_event_id: str | None) -> str:
    """One short SSE answer: the state unless the reader has it, then ``retry:``."""
    lines = [f"retry: {RETRY_MS}"]
    if last_event_id != str(state.seq):
        lines += [f"id: {state.seq}", "event: state",
                  "data: " + json.dumps(state.as_json(), ensure_ascii=False)]
    return "\n".join(lines) + "\n\n"
