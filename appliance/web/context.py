"""What the app factory and the device put on the app, read through typed accessors.

Everything lives in one :class:`AppState` under ``app.extensions["ketang"]``; views call
:func:`library`, :func:`settings`… (inside a request) or :func:`state` (with an app), never
a string key of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

from appliance.config import Settings
from content_cache.library import Library

if TYPE_CHECKING:
    from appliance.auth import LoginLimiter, Sessions
    from appliance.classes.answers import Tally
    from appliance.classes.store import ClassesDB
    from appliance.discovery import Discovery
    from appliance.sync.service import SyncService
    from appliance.usage.cousage import LocalTable

    from .usage_api import RateLimits

KEY = "ketang"


@dataclass
class AppState:
    """The device's parts one web app sees. ``sync`` and ``discovery`` are set by
    :mod:`appliance.device` when those services run, and stay None otherwise."""

    settings: Settings
    library: Library
    started: float = field(default_factory=time.time)
    sync: SyncService | None = None
    discovery: Discovery | None = None
    # the classroom access point's state (provisioning.status.ap_status), set by
    # appliance.device on a device set up as one; None elsewhere
    wifi_status: Callable[[], dict[str, Any]] | None = None
    # set by the blueprints that use them
    usage_limits: RateLimits | None = None
    login_limiter: LoginLimiter | None = None
    admin_sessions: Sessions | None = None
    classes: ClassesDB | None = None   # classes.db, opened on first use (classes_api)
    answers: Tally | None = None       # live class answers (classes_api)
    cousage: LocalTable | None = None


def install(app: Flask, settings: Settings, library: Library) -> AppState:
    """Put a new :class:`AppState` on ``app`` (the app factory calls it)."""
    st = AppState(settings=settings, library=library)
    app.extensions[KEY] = st
    return st


def state(app: Flask | None = None) -> AppState:
    """The :class:`AppState` of ``app`` (default: the current app)."""
    return (app or current_app).extensions[KEY]  # type: ignore[no-any-return]


def library() -> Library:
    """The device's content library."""
    return state().library


def settings() -> Settings:
    """The device's settings."""
    return state().settings


def discovery() -> Discovery | None:
    """The running zeroconf discovery, or None when this server does not browse."""
    return state().discovery
