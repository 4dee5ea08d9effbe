"""What a request names, checked: a whole-number query argument, a channel's catalog.

Every view parses ``?part=``, ``?page=``, ``?limit=`` and finds ``<channel>`` through
these, so each answers a bad value the same way: 400 for a query argument that is not
a whole number (or out of range), 404 for a channel this device does not serve, with a
message saying what was wrong. The message is in the reader's language
(:func:`flask_babel.gettext`); the JSON API shows it in Chinese and English
(:meth:`Explained.both`).
"""

from __future__ import annotations

from flask import request
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import BadRequest, NotFound

from content_cache.catalog import Catalog

from .context import library


class Explained:
    """An HTTP error whose words are a lazy gettext message, so any view can say it in
    the reader's language, or in both."""

    message: object

    def both(self) -> str:
        """The message in Simplified Chinese, then English (for the JSON API)."""
        with force_locale("zh_Hans"):
            zh = str(self.message)
        with force_locale("en"):
            en = str(self.message)
        return zh if zh == en else f"{zh} {en}"


class BadArgument(Explained, BadRequest):
    """400: a query argument that is not what the view takes."""

    def __init__(self, message: object) -> None:
        self.message = message
        super().__init__(description=str(message))


class NoSuchChannel(Explained, NotFound):
    """404: a channel this device does not serve."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.message = _l("No active channel '%(channel)s' on this device.", channel=channel)
        super().__init__(description=str(self.message))


def int_arg(name: str, default: int, low: int | None = None, high: int | None = None) -> int:
    """Query argument ``name`` as a whole number (``default`` when absent).

    Raises :class:`BadArgument` (400) when it is not a whole number, or, where ``low``
    and ``high`` are given, outside them.
    """
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if low is not None and high is not None:
        if value is None or not low <= value <= high:
            raise BadArgument(_l("Parameter %(name)s must be a whole number from %(low)s to "
                                 "%(high)s, not '%(value)s'.",
                                 name=name, low=low, high=high, value=raw[:40]))
    elif value is None:
        raise BadArgument(_l("Parameter %(name)s must be a whole number, not '%(value)s'.",
                             name=name, value=raw[:40]))
    return value


def catalog_or_404(channel: str) -> Catalog:
    """The active catalog of ``channel``; :class:`NoSuchChannel` (404) when there is none."""
    cat = library().catalog(channel)
    if cat is None:
        raise NoSuchChannel(channel)
    return cat

