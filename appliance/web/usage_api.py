"""``POST /api/v1/usage``: usage events from the projector and tablet views.

The answer comes only after the batch is committed to the usage database; a repeated
event id is acknowledged again but stored once. A wrong batch gets a 400 naming the
event and what is wrong, and nothing of it is stored. Each client (by address) may send
``usage.max_batch`` events per request and ``usage.rate_per_minute`` events a minute, and
the whole device takes ``usage.device_rate_per_minute`` a minute from all of them. A full
database refuses new events (503) and keeps the acknowledged ones.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, cast

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from appliance.usage.db import BatchWriter, UsageDB, UsageFull
from appliance.usage.events import EventError, Resolver, check_batch

from . import context
from .api import PREFIX, ApiError
from .context import library, settings

bp = Blueprint("usage_api", __name__, url_prefix=PREFIX)
_LOCK = threading.Lock()
MAX_CLIENTS = 10_000


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    st = context.state(cast(Flask, state.app))
    s = st.settings
    st.usage_limits = RateLimits(s.usage.rate_per_minute, s.usage.device_rate_per_minute)
    if s.usage.enabled and s.device.data_dir.is_dir():
        from appliance.usage.keys import ensure_device_key

        try:
            ensure_device_key(s.device.data_dir)
        except OSError:  # a read-only data folder: outbox files go unsigned-for-now
            pass


DEVICE = ""     # the bucket of the whole device (no client address is empty)


class RateLimits:
    """A token bucket per client address and one for the whole device, counted in events.

    A batch is taken from both or from neither, so a refused batch costs no tokens."""

    def __init__(self, per_minute: int, device_per_minute: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(per_minute)
        device = per_minute * 10 if device_per_minute is None else device_per_minute
        self.device_rate = device / 60.0
        self.device_burst = float(device)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, n: int) -> tuple[float, bool]:
        """Take ``n`` tokens from ``client``'s bucket and the device's.

        Returns (0, False) when taken, else the seconds to wait before trying again and
        whether the device's limit (rather than the client's own) is the one reached.
        """
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_CLIENTS:
                self._buckets = {DEVICE: self._buckets[DEVICE]} if DEVICE in self._buckets \
                    else {}
            own = self._refill(client, now, self.rate, self.burst)
            dev = self._refill(DEVICE, now, self.device_rate, self.device_burst)
            wait_own = _wait(own, n, self.rate)
            wait_dev = _wait(dev, n, self.device_rate)
            if wait_own or wait_dev:
                return max(wait_own, wait_dev), wait_dev > wait_own
            self._buckets[client] = (own - n, now)
            self._buckets[DEVICE] = (dev - n, now)
            return 0.0, False

    def _refill(self, key: str, now: float, rate: float, burst: float) -> float:
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        self._buckets[key] = (tokens, now)
        return tokens


def _wait(tokens: float, n: int, rate: float) -> float:
    if tokens >= n:
        return 0.0
    return (n - tokens) / rate if rate else 3600.0


def writer() -> BatchWriter:
    """The app's usage writer, started on the first event."""
    ext = current_app.extensions
    w = ext.get("ketang_usage_writer")
    if w is None:
        with _LOCK:
            w = ext.get("ketang_usage_writer")
            if w is None:
                s = settings()
                db = UsageDB(s.device.data_dir, s.usage)
                w = BatchWriter(db, Resolver(library()), s.usage.commit_delay_ms / 1000)
                ext["ketang_usage_writer"] = w
    return w


def _bad_event(e: EventError):
    body: dict[str, Any] = {"status": 400, "message":
                            f"使用记录有误，整批未保存。The batch was refused and nothing of it "
                            f"was stored: {e}. Fix or drop that event and send the batch again."}
    if e.index is not None:
        body.update(event=e.index, id=e.event_id)
    response = jsonify({"error": body})
    response.status_code = 400
    return response


@bp.post("/usage")
def post_usage():
    """Store a batch of usage events; answer once they are durably stored."""
    s = settings().usage
    if not s.enabled:
        raise ApiError(403, "本设备未开启使用记录。Usage recording is turned off on this "
                            "device (usage.enabled); the events were not kept.")
    length = request.content_length
    if length is None:
        raise ApiError(411, "缺少 Content-Length。Send the batch with a Content-Length header.")
    if length > s.max_body_kb * 1024:
        raise ApiError(413, f"批次过大。The batch is {length} bytes; send at most "
                            f"{s.max_body_kb * 1024} bytes (fewer events per request).")
    try:
        doc = json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"请求不是 JSON。The body is not JSON ({e}); send "
                            '{"events": [...]}.') from None
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise ApiError(400, "请求的 JSON 嵌套太深。The body's JSON is nested too deeply to "
                            'be a batch; send {"events": [...]} with flat events.') from None
    try:
        events = check_batch(doc, s.max_batch, s.raw_max_days)
    except EventError as e:
        return _bad_event(e)
    limited = rate_limited(len(events))
    if limited is not None:
        return limited
    try:
        flags = writer().submit(events)
    except (UsageFull, OSError, TimeoutError, Exception) as e:  # noqa: BLE001
        raise ApiError(503, f"使用记录暂时无法保存。The events could not be stored ({e}); "
                            "nothing was acknowledged. Keep them and send again later.") from None
    stored = sum(flags)
    return jsonify({"stored": stored, "duplicates": len(flags) - stored,
                    "ids": [ev.id for ev in events]})


def rate_limited(n: int):
    """None when this client may send ``n`` more events now, else the 429 answer."""
    s = settings().usage
    client = request.remote_addr or "?"
    wait, whole_device = _limits().take(client, n)
    if not wait:
        return None
    who = (f"This device takes at most {s.device_rate_per_minute} events a minute from "
           "all tablets together") if whole_device else \
        f"Too many events from {client}: at most {s.rate_per_minute} a minute"
    response = jsonify({"error": {"status": 429, "message": (
        f"发送太频繁。{who}. Nothing was stored; send again in {wait:.0f} s.")}})
    response.status_code = 429
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


def _limits() -> RateLimits:
    limits = context.state().usage_limits
    assert limits is not None, "the usage blueprint's setup installs the limits"
    return limits
