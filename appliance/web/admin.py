"""The technician dashboard at ``/admin``, behind a login (docs/dashboard.md).

Every ``/admin`` page but the login needs a logged-in session: pages redirect to the
login, ``/admin/status.json`` answers 401. The session is Flask's signed cookie
(HttpOnly, SameSite=Strict) under this device's own key; it carries a random session
id that the server keeps while the session lives (appliance.auth.Sessions), and a
fingerprint of the password, so it ends on logout, after ``admin.session_minutes``,
when the password changes and when the server restarts, whoever kept a copy. Every
form on the site (any POST, PUT, PATCH or DELETE outside ``/api/``) must carry a CSRF
token (Flask-WTF); the JSON API under ``/api/`` is exempt, since tablets post to it
from pages without a session.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask.wrappers import Request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect

from appliance import auth as admin_auth
from appliance.text import human_bytes
from content_cache.errors import KetangError

from . import context
from .admin_status import dashboard_status
from .context import library, settings

bp = Blueprint("admin", __name__, url_prefix="/admin")
csrf = CSRFProtect()
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# At most this many scrypt checks at once (32 MiB of memory each).
_hash_slots = threading.BoundedSemaphore(2)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _needs_session(req: Request) -> bool:
    """Dashboard pages and non-API forms cannot work without the session."""
    if _is_api(req.path):
        return False
    return req.method not in SAFE_METHODS or req.path == "/admin" or \
        req.path.startswith("/admin/")


def _load_key(app: Flask) -> str:
    """Give ``app`` this device's session key; return why not ("" when it has one)."""
    if app.secret_key:
        return ""
    data_dir = context.state(app).library.data_dir
    try:
        app.secret_key = admin_auth.session_key(data_dir)
    except (OSError, KetangError) as e:
        return (f"无法保存会话密钥：{e}。Cannot keep the session key in {data_dir}/admin: "
                f"{e}. Check that device.data_dir exists and the service may write to it.")
    return ""


class DeviceKeySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, under this device's key, made on the first request
    outside the API (sessions open before any before_request hook runs). Any page may
    then put ``csrf_token()`` in a form. Where the key cannot be kept, pages still work
    without a session, and the dashboard says why (503)."""

    def open_session(self, app: Flask, request: Request):  # noqa: D102
        if not _is_api(request.path):
            _load_key(app)
        return super().open_session(app, request)


def _guard_forms():
    """CSRF on every non-API form (before any view runs)."""
    if not _needs_session(request) or request.routing_exception is not None:
        return      # no such page or method: Flask's own 404/405 says so
    problem = _load_key(current_app)
    if problem:
        abort(503, description=problem)
    if request.method not in SAFE_METHODS:
        csrf.protect()


def _csrf_refused(e: CSRFError):
    if _is_api(request.path):  # pragma: no cover - the API is exempt
        return e
    return render_template(
        "admin/error.html", device=settings().device,
        message=_("This form has expired or did not come from this page. "
                  "Go back, reload the page and try again."),
        detail=e.description), 400


def install(app: Flask) -> None:
    """Register the dashboard, session cookie settings and CSRF protection on ``app``."""
    minutes = context.state(app).settings.admin.session_minutes
    if minutes < 1:
        raise KetangError(f"admin.session_minutes should be at least 1, not {minutes}; "
                          "see docs/configuration.md.")
    app.config.update(
        SESSION_COOKIE_NAME="ketang_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # Secure would stop the cookie on the school's plain-HTTP LAN: the dashboard
        # has no TLS (no certificate a tablet would trust), so it stays off.
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=minutes),
        WTF_CSRF_CHECK_DEFAULT=False,   # _guard_forms decides, by path
        WTF_CSRF_TIME_LIMIT=None,       # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=False,
    )
    app.session_interface = DeviceKeySessions()
    context.state(app).login_limiter = admin_auth.LoginLimiter()
    context.state(app).admin_sessions = admin_auth.Sessions(max_age=minutes * 60)
    app.before_request(_guard_forms)
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.register_blueprint(bp)


def _data_dir():
    return library().data_dir


def _sessions() -> admin_auth.Sessions:
    sessions = context.state().admin_sessions
    assert sessions is not None, "install() sets the session registry"
    return sessions


def logged_in() -> bool:
    """Whether this request carries a live technician session: one this server started
    and has not ended (logout, expiry, a new password), not merely a signed cookie."""
    if not _sessions().alive(session.get("sid")) or not session.get("admin"):
        return False
    if session.get("gen") != admin_auth.password_generation(_data_dir()):
        _sessions().end_all()       # the password changed: every session ends
        return False
    return True


@bp.before_request
def _require_login():
    if request.endpoint == "admin.login" or logged_in():
        return None
    if request.path.endswith(".json") or request.accept_mimetypes.best == "application/json":
        response = jsonify({"error": {"status": 401, "message": _(
            "Log in to the dashboard first."), "login": url_for("admin.login")}})
        response.status_code = 401
        return response
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


@bp.after_request
def _private(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'")
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and "//" not in target and "\\" not in target:
        return target
    return url_for("admin.dashboard")


def _wait_message(seconds: float) -> str:
    return _("Too many wrong passwords. Wait %(seconds)d seconds, then try again.",
             seconds=math.ceil(seconds))


def _login_page(message: str = "", status: int = 200, wait: float = 0.0, note: str = ""):
    response = current_app.make_response((render_template(
        "admin/login.html", device=settings().device, message=message, note=note,
        password_set=admin_auth.password_is_set(_data_dir()),
        next=_safe_next(request.values.get("next"))), status))
    if wait > 0:
        response.headers["Retry-After"] = str(math.ceil(wait))
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a right password starts a session, a wrong one is counted."""
    if request.method == "GET":
        note = _("You have logged out.") if request.args.get("bye") else ""
        return _login_page(note=note)
    limiter = context.state().login_limiter
    assert limiter is not None, "install() sets the login limiter"
    address = request.remote_addr or "unknown"
    if not admin_auth.password_is_set(_data_dir()):
        return _login_page(_("No admin password is set on this device yet."), 403)
    wait = limiter.attempt(address)     # counted before the check: no race past the limit
    if wait > 0:
        return _login_page(_wait_message(wait), 429, wait)
    with _hash_slots:
        ok = admin_auth.verify_password(_data_dir(), request.form.get("password", ""))
    if not ok:
        wait = limiter.wrong(address)
        message = _("Wrong password.")
        if wait > 0:
            message += " " + _wait_message(wait)
        return _login_page(message, 401, wait)
    limiter.succeeded(address)
    _sessions().end(session.get("sid"))
    session.clear()           # a fresh session (and CSRF token) for the technician
    session.permanent = True
    session.update(admin=True, sid=_sessions().start(),
                   gen=admin_auth.password_generation(_data_dir()))
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    """End the session, on the server too: a copy of the cookie is worth nothing after."""
    _sessions().end(session.get("sid"))
    session.clear()
    return redirect(url_for("admin.login", bye=1))


SECTIONS = ("health", "setup", "wifi", "releases", "drives", "peers", "sync", "usage", "updates")


def _status() -> dict[str, Any]:
    return dashboard_status(settings(), library())


@bp.get("/")
def dashboard():
    """The dashboard: health, releases, subscriptions, imports, peers, sync and usage."""
    from appliance.usage.charts import CHARTS, TITLES

    from .questionnaires import open_questionnaires

    return render_template("admin/dashboard.html", device=settings().device,
                           questionnaires=open_questionnaires(),
                           status=_status(), sections=SECTIONS,
                           chart_names=CHARTS if settings().usage.enabled else (),
                           chart_titles=TITLES,
                           now=time.strftime("%H:%M:%S"))


@bp.get("/status.json")
def status_json():
    """The dashboard's data, and each section rendered, for the page's 2-second refresh."""
    status = _status()
    sections = {name: render_template(f"admin/_{name}.html", status=status)
                for name in SECTIONS}
    return jsonify({"status": status, "sections": sections,
                    "time": time.strftime("%H:%M:%S")})


@bp.app_template_filter("admin_bytes")
def _bytes_filter(n: Any) -> str:
    return human_bytes(int(n or 0))


@bp.app_template_filter("admin_duration")
def _duration_filter(seconds: Any) -> str:
    days, rest = divmod(int(seconds or 0), 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return _("%(days)d d %(hours)d h %(minutes)d min", days=days, hours=hours,
                 minutes=minutes)
    return _("%(hours)d h %(minutes)d min", hours=hours, minutes=minutes)
