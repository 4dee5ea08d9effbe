"""Accessors for what the app factory put on the app, for use inside requests."""

from __future__ import annotations

from flask import current_app

from appliance.config import Settings
from content_cache.library import Library


def library() -> Library:
    """The device's content library."""
    return current_app.extensions["ketang_library"]


def settings() -> Settings:
    """The device's settings."""
    return current_app.config["KETANG_SETTINGS"]
