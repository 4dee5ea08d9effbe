"""Which language a page is in: Simplified Chinese first, English on request.

Flask-Babel does the translating; the catalogs are kiosk_ui's
(``kiosk_ui/translations``). Message ids are English; the default locale is
``zh_Hans``. A reader switches with ``/lang/en`` or ``/lang/zh_Hans`` (a cookie
remembers it for a year); without a choice, the browser's Accept-Language decides
between the two, and anything else gets Chinese. Templates put the services' state
codes into words with the filters ``drive_text``, ``drive_error``, ``sync_text``,
``sync_state``, ``seed_state`` and ``health_problem`` (:mod:`appliance.words`).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, redirect, request, url_for
from flask_babel import Babel, get_locale, gettext

import kiosk_ui
from appliance import words

LOCALES = ("zh_Hans", "en")
# Each language named in itself, for the switch.
LOCALE_NAMES = {"zh_Hans": "中文", "en": "English"}
DEFAULT_LOCALE = "zh_Hans"
COOKIE = "ketang_lang"
TRANSLATIONS = Path(kiosk_ui.__file__).parent / "translations"

bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    """The locale for this request: the reader's choice, else the browser's, else Chinese."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LOCALES:
        return chosen
    best = request.accept_languages.best_match(["zh", "zh-CN", "zh-Hans", "en"])
    if best and best.startswith("en"):
        return "en"
    return DEFAULT_LOCALE


def html_lang() -> str:
    """The value for ``<html lang=…>``."""
    return "en" if str(get_locale()) == "en" else "zh-CN"


@bp.route("/lang/<code>")
def switch(code: str):
    """Remember the reader's language and go back to where they were (same site only)."""
    back = request.args.get("next", "")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("pages.index")
    response = redirect(back)
    if code in LOCALES:
        response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True)
    return response


def init_app(app: Flask) -> None:
    """Install Flask-Babel with kiosk_ui's catalogs and the language switch."""
    Babel(app, locale_selector=select_locale, default_locale=DEFAULT_LOCALE,
          default_translation_directories=str(TRANSLATIONS))
    app.jinja_env.globals["html_lang"] = html_lang
    app.jinja_env.globals["LOCALE_NAMES"] = LOCALE_NAMES
    app.jinja_env.globals["current_locale"] = lambda: str(get_locale())
    # State codes from the services, in the reader's words (appliance/words.py).
    app.jinja_env.filters.update({
        "drive_text": lambda entry: words.drive_text(entry, gettext),
        "drive_error": lambda code: words.drive_error(code or "", gettext),
        "sync_text": lambda summary: words.sync_text(summary, gettext),
        "sync_state": lambda state: words.sync_release_state(state, gettext),
        "seed_state": lambda state: words.web_seed_state(state, gettext),
        "hub_text": lambda township: words.hub_text(township, gettext),
        "sources_text": lambda release: words.sources_text(release, gettext),
        "health_problem": lambda problem: words.health_problem(problem, gettext),
        "setup_headline": lambda result: words.setup_headline(result, gettext),
        "wifi_advice": lambda status: words.wifi_advice(status, gettext),
    })
    app.register_blueprint(bp)
