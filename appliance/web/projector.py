"""The teacher's projector view: full-screen screens a clicker drives (docs/projector.md).

Every screen is a URL that works as plain links; kiosk_ui/static/projector/projector.js
adds the keys. Screens: the first one (recent lessons, grades), a node's children
(subject, edition, volume, units with their lessons), and a lesson shown part by part.
The follow state tablets read is appliance/web/follow.py's; this blueprint serves it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.exceptions import NotFound

from appliance.addresses import machine_addresses
from appliance.drives.status import DriveStatus
from appliance.words import drive_text

from .apps import IFRAME_SANDBOX
from .context import library, settings
from .follow import Follow, FollowError, event_stream, is_projector
from .lookup import catalog_or_404, int_arg
from .pages import app_url, exercise_of, siblings
from .pdf_pages import NotAPdf, PdfPagesError, page_image_urls
from .projector_recent import read_recent, remember

bp = Blueprint("projector", __name__, url_prefix="/projector")
TOKEN_COOKIE = "ketang_projector"
TOKEN_HEADER = "X-Ketang-Projector-Token"
BANNER_STATES = ("mounting", "importing", "writing-report", "done", "error")
_follow = Follow()


def follow_state() -> Follow:
    """The device's follow state (one per serving process)."""
    return current_app.extensions.setdefault("ketang_follow", _follow)


# ---- helpers -----------------------------------------------------------------------

def _drives() -> list[dict[str, Any]]:
    """Drive activity worth a banner, in the reader's words."""
    return [{"device": name, "state": d.get("state"), "text": drive_text(d, _, banner=True)}
            for name, d in sorted(DriveStatus(settings().drives.status_file).read().items())
            if d.get("state") in BANNER_STATES]


def _render(template: str, status: int = 200, **kw: Any) -> Response:
    html = render_template(template, drives=_drives(), device=settings().device, **kw)
    return Response(html, status=status, mimetype="text/html")


def _descend(cat: Any, node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or its only descendant where each level has a single child (fewer presses)."""
    for _depth in range(8):
        if node["kind"] in ("lesson", "unit"):
            return node
        kids = cat.children(node["id"])
        if len(kids) != 1:
            return node
        node = kids[0]
    return node


def _is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    return h == "localhost" or h == "::1" or h.startswith("127.")


def _url(host: str, port: str) -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port}" if port != "80" else f"http://{host}"


def join_base() -> tuple[str, bool]:
    """Where tablets reach this server, and whether they can: (base URL, reachable).

    Only an address the server listens on (``server.host``, which ``--host`` and ``make
    demo HOST=`` set) is encoded. Listening on loopback only, the base is the address
    the projector's browser used and tablets cannot join (the projector says so).
    Otherwise ``projector.join_url`` (provisioning sets ``http://ketang.lan``, the name
    the classroom DNS gives the device); else the listening address itself, or for
    all addresses (``0.0.0.0``/``::``) the first non-loopback IPv4 address.
    """
    listen = settings().server.host.strip()
    host = request.host
    port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
    port = port or str(settings().server.port)
    own = f"{request.scheme}://{host}"
    if _is_loopback(listen):
        return own, False
    configured = settings().projector.join_url.strip().rstrip("/")
    if configured:
        return configured, True
    if listen in ("", "0.0.0.0", "::", "[::]"):
        ip = next(iter(machine_addresses(ipv6=False)), None)
        if ip:
            return _url(ip, port), True
        return own, not _is_loopback(request.host.rsplit(":", 1)[0])
    return _url(listen.strip("[]"), port), True


def qr_svg(url: str) -> str:
    """The QR code of ``url`` as inline SVG (black on white, scaled by CSS)."""
    qr = segno.make(url, error="m", micro=False)
    return qr.svg_inline(scale=1, border=4, dark="#000", light="#fff", omitsize=True)


# ---- screens -----------------------------------------------------------------------

@bp.route("")
def home():
    """The first screen: classes, recent lessons, open questionnaires, then every grade."""
    token = settings().projector.token
    given = request.args.get("token")
    if given is not None:
        # A projector on another machine: remember its token, then drop it from the URL.
        response = redirect(url_for(".home"))
        if token and is_projector(None, token, given):
            response.set_cookie(TOKEN_COOKIE, given, max_age=365 * 24 * 3600,
                                httponly=True, samesite="Strict")
        return response
    lib = library()
    recent = []
    for item in read_recent(settings().device.data_dir):
        cat = lib.catalog(item["channel"])
        path = cat.breadcrumb(item["lesson"]) if cat else []
        if path and path[-1]["kind"] == "lesson":
            sub = " · ".join(p["title"]["zh"] for p in path[:-1]
                             if p["kind"] in ("grade", "subject", "unit"))
            recent.append({"channel": item["channel"], "lesson": path[-1], "sub": sub})
    channels = []
    for _channel, cat in lib.catalogs():
        groups = []
        for stage in cat.children(None):
            groups.append({"stage": stage,
                           "grades": [_descend(cat, g) for g in cat.children(stage["id"])]})
        channels.append({"info": cat.info(), "groups": groups})
    from .projector_classes import class_tiles  # the teacher's classes (docs/projector.md)
    from .projector_questionnaires import open_unanswered  # open, not answered yet

    classes, questionnaires = class_tiles(), open_unanswered()
    focus = request.args.get("focus", "")
    if not focus and questionnaires and not classes and not recent:
        # a questionnaire never takes the first press: the first grade does
        focus = next((g["id"] for ch in channels for grp in ch["groups"]
                      for g in grp["grades"]), "")
    return _render("projector/home.html", recent=recent, channels=channels,
                   classes=classes, questionnaires=questionnaires, focus=focus)


def _screen(cat: Any, node_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a node's screen lists: (tiles, unit groups). Units come with their lessons."""
    children = [dict(_descend(cat, c), via=c) for c in cat.children(node_id)]
    groups = []
    if children and all(c["kind"] == "unit" for c in children):
        groups = [{"unit": u, "via": u["via"] if u["via"]["id"] != u["id"] else None,
                   "lessons": cat.children(u["id"])} for u in children]
    return children, groups


def _up_url(cat: Any, channel: str, path: list[dict[str, Any]]) -> str:
    """Where Esc goes from the node ending ``path``: the screen that lists it, focused on it.

    Found from the top, as the teacher came down: the first screen lists grades, each
    screen lists its tiles (or its units' lessons), passing through single children.
    """
    node_id = path[-1]["id"]
    on_path = {p["id"] for p in path}
    screen = None
    stage = path[0]["id"] if path[0]["kind"] == "stage" else None
    tiles = [_descend(cat, g) for g in cat.children(stage)] if stage else []
    for _depth in range(16):
        here = next((t for t in tiles if t["id"] in on_path), None)
        if here is None or here["id"] == node_id:
            break
        screen = here
        children, groups = _screen(cat, here["id"])
        tiles = [n for g in groups for n in g["lessons"]] if groups else children
    if screen is None:
        return url_for(".home", focus=node_id)
    return url_for(".browse", channel=channel, node_id=screen["id"], focus=node_id)


@bp.route("/browse/<channel>/<node_id>")
def browse(channel: str, node_id: str):
    """A node's children; units come with their lessons, so a volume is one screen."""
    cat = catalog_or_404(channel)
    path = cat.breadcrumb(node_id)
    if not path:
        abort(404, description=_("There is nothing called %(node)s in %(channel)s.",
                                 node=node_id, channel=channel))
    node = path[-1]
    if node["kind"] == "lesson":
        return redirect(url_for(".lesson", channel=channel, lesson_id=node_id))
    children, groups = _screen(cat, node_id)
    return _render("projector/browse.html", channel=channel, node=node, path=path[:-1],
                   children=children, groups=groups, up=_up_url(cat, channel, path),
                   focus=request.args.get("focus", ""))


def _parts(lesson: dict[str, Any]) -> list[dict[str, Any]]:
    """A lesson's resources in order, each with how many pages it shows."""
    parts = []
    for r in lesson["resources"]:
        part: dict[str, Any] = {"r": r, "kind": r["kind"], "pages": 1}
        if r["kind"] == "exercise":
            part["exercise"] = exercise_of(r)   # the tablet view's reader, size limit included
            if part["exercise"] and part["exercise"]["questions"]:
                part["pages"] = len(part["exercise"]["questions"])
            else:
                part["exercise"] = None
        elif r["kind"] == "html5":
            part["src"] = app_url(r["sha256"])
        elif r["kind"] == "pdf":
            try:
                part["page_urls"] = _pdf_page_urls(r)
            except NotAPdf as e:        # this part cannot be shown; the others can
                part["page_urls"], part["unavailable"] = [], str(e)
            part["pages"] = max(len(part["page_urls"]), 1)
        parts.append(part)
    return parts


def _pdf_page_urls(resource: dict[str, Any]) -> list[str]:
    """Image URLs of a PDF's pages where the tablet view renders them (appliance/web/pdf_pages.py).

    Empty when poppler cannot read the PDF: the projector then shows the PDF itself.
    Raises NotAPdf when no release names the blob as a PDF.
    """
    try:
        return page_image_urls(resource["sha256"])
    except NotAPdf:
        raise
    except PdfPagesError:
        return []


def _csrf_token() -> str:
    """The session's CSRF token for the follow POST ("" when the session key cannot be kept)."""
    from flask_wtf.csrf import generate_csrf

    try:
        return generate_csrf()
    except RuntimeError:   # no secret key: the device cannot keep sessions (read-only data)
        return ""


@bp.route("/lesson/<channel>/<lesson_id>")
def lesson(channel: str, lesson_id: str):
    """A lesson, one part (and page) at a time: ``?part=N&page=M`` (from 0 and 1)."""
    want_part, want_page = int_arg("part", 0), int_arg("page", 1)   # a bad one: 400 first
    cat = catalog_or_404(channel)
    found = cat.lesson(lesson_id)
    if found is None:
        abort(404, description=_("There is no lesson %(lesson)s in %(channel)s.",
                                 lesson=lesson_id, channel=channel))
    parts = _parts(found)
    part = min(max(want_part, 0), max(len(parts) - 1, 0))
    page = min(max(want_page, 1), parts[part]["pages"] if parts else 1)
    steps = [(i, p) for i, part_ in enumerate(parts) for p in range(1, part_["pages"] + 1)]
    at = steps.index((part, page)) if steps else 0

    from .projector_classes import lesson_class  # opened for a class (docs/projector.md)

    klass, round_ = lesson_class(request.args.get("class", ""))
    for_class: dict[str, Any] = {"class": klass.id} if klass else {}

    def step_url(i: int) -> str:
        pi, pg = steps[i]
        return url_for(".lesson", channel=channel, lesson_id=lesson_id, part=pi, page=pg,
                       **for_class)

    if _from_projector():   # a tablet browsing /projector must not change the teacher's list
        remember(settings().device.data_dir, channel, lesson_id, settings().projector.recent)
    base, joinable = join_base()
    join = f"{base}{url_for('pages.lesson', channel=channel, lesson_id=lesson_id)}"
    join += "?" + urlencode({"follow": "1"})
    up = _up_url(cat, channel, found["path"] + [found])
    if klass:
        up = url_for("projector_classes.page", class_id=klass.id, focus=lesson_id)
    next_lesson = siblings(cat, found)[1]
    return _render(
        "projector/lesson.html", channel=channel, lesson=found, parts=parts, part=part,
        page=page, version=cat.info()["version"], up=up, join_url=join, qr=qr_svg(join),
        prev_url=step_url(at - 1) if at > 0 else None,
        next_url=step_url(at + 1) if at + 1 < len(steps) else None,
        app_sandbox=IFRAME_SANDBOX, csrf=_csrf_token(), next_lesson=next_lesson,
        joinable=joinable, listen=settings().server.host,
        klass=klass, round=round_, for_class=for_class,
        answers_url=url_for("classes_api.answer_counts"),
    )


@bp.route("/drives")
def drives():
    """The drive banner alone, for the screens to refresh it."""
    return _render("projector/_drives.html")


@bp.errorhandler(404)
def not_found(e: Any):
    """A 404 in the projector's style, saying what to do."""
    message = e.description
    if not isinstance(message, str) or message == NotFound.description:
        message = _("There is no such page on the projector.")
    return _render("projector/error.html", status=404, message=message,
                   up=url_for("projector.home"))


@bp.errorhandler(400)
def bad_request(e: Any):
    """A bad query argument (``?part=abc``), said in the projector's style."""
    return _render("projector/error.html", status=400, message=e.description,
                   heading=_("Wrong address"), up=url_for(".home"))


# ---- follow the teacher --------------------------------------------------------------

def _from_projector() -> bool:
    """Whether this request comes from the projector: loopback, or with its token."""
    given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
    return is_projector(request.remote_addr, settings().projector.token, given)


@bp.route("/follow", methods=["POST"])
def follow_set():
    """The projector says what it shows (JSON); only loopback or the token may."""
    if not _from_projector():
        return jsonify(error="only the projector may set what tablets follow: this request "
                             "came from another machine without the projector's token "
                             "(see [projector] token in docs/configuration.md)."), 403
    if not request.is_json:
        return jsonify(error="send the follow state as JSON "
                             "(Content-Type: application/json)."), 415
    try:
        state = follow_state().set(request.get_json(silent=True))
    except FollowError as e:
        return jsonify(error=str(e)), 400
    return jsonify(state.as_json())


@bp.route("/follow/events")
def follow_events():
    """Server-sent events: the state now (if new to the reader), then ``retry:``; ends at once."""
    body = event_stream(follow_state().get(), request.headers.get("Last-Event-ID"))
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.route("/follow/state")
def follow_get():
    """The state as JSON, with the words follow.js shows (for browsers without EventSource)."""
    return jsonify(state=follow_state().get().as_json(), labels={
        "offer": _("The teacher is presenting this lesson."),
        "follow": _("Follow the teacher"),
        "following": _("Following the teacher"),
        "leave": _("Leave"),
    }, events=url_for(".follow_events"))
