"""PDF task sheets as page images, for browsers with no PDF plugin (docs/tablet.md).

A PDF blob is rendered once, on the first request that needs it, with poppler's
``pdftoppm`` into ``<data_dir>/cache/pdf-pages/<renderer>/<sha256>/`` (``1.png``,
``2.png`` … and ``pages.json``). The cache is derived from a verified, immutable blob
and keyed by the blob's sha256 and by the renderer (:func:`renderer_id`: poppler's
version, its CJK data, the installed fonts, the page size): a PDF whose fonts are not
embedded draws its Chinese only when poppler-data and a CJK font are present, so a
page rendered blank before they were installed must not outlive their installation.
Page image URLs carry the renderer too, so browsers do not keep a blank page either.

- Rendering writes into a temporary folder beside the cache; every file is fsynced,
  ``pages.json`` last, then the folder is renamed into place. A folder under its
  final name is complete; anything else is never served (and is swept on the next render).
- The cache is bounded (``[tablet] pdf_cache_mb``): after a render, the oldest
  entries are removed (renamed aside first, so no half-deleted entry is served).
- A PDF poppler cannot read gives :class:`PdfPagesError`; nothing is cached, and the
  failure is remembered in memory so a broken sheet is not re-rendered on every visit.

Reading the cache writes nothing (an idle device writes nothing).

Other views (the projector) call :func:`page_image_urls` for a resource's page images.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from flask import Blueprint, Response, abort, request, send_file, url_for

from content_cache.atomic import fsync_dir
from content_cache.blobstore import SHA256_RE

from .context import library, settings
from .media import CACHE_CONTROL, media_type_of

bp = Blueprint("pdf_pages", __name__)

PDF_TYPE = "application/pdf"
META = "pages.json"
# Pages are scaled so the longer side is this many pixels: an A4 page is then about
# 850 px wide, the width of an 800×1280 tablet in portrait, and text stays sharp.
LONG_SIDE = 1200
RENDER_TIMEOUT = 120  # seconds for one document
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_failed: dict[str, str] = {}
_evict_lock = threading.Lock()
# Where poppler-data keeps the CJK character maps that non-embedded Chinese fonts need.
POPPLER_DATA = ("/usr/share/poppler/cMap", "/usr/share/poppler/cidToUnicode")


class PdfPagesError(Exception):
    """A PDF could not be turned into page images; the message says why, in both languages."""


class NotAPdf(PdfPagesError):
    """No active release names this blob as a PDF (or its file is missing): nothing to
    render. Views show that one resource as unavailable; the page route answers 404."""


def cache_root(data_dir: Path) -> Path:
    """Where this renderer's pages live under a data folder."""
    return Path(data_dir) / "cache" / "pdf-pages" / renderer_id()


@functools.lru_cache(maxsize=1)
def renderer_id() -> str:
    """A short name for what draws the pages: poppler's version, poppler-data's CJK
    maps, the fonts fontconfig offers, and the page size. Computed once per process."""
    parts = [f"long-side={LONG_SIDE}"]
    for cmd in (["pdftoppm", "-v"], ["fc-list", ":", "family", "file"]):
        exe = shutil.which(cmd[0])
        if exe is None:
            parts.append(f"{cmd[0]}: missing")
            continue
        try:
            proc = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=30,
                                  check=False)
            parts.append("\n".join(sorted((proc.stdout + proc.stderr).splitlines())))
        except (OSError, subprocess.TimeoutExpired):
            parts.append(f"{cmd[0]}: failed")
    for folder in POPPLER_DATA:
        parts.append(f"{folder}: {sorted(os.listdir(folder)) if os.path.isdir(folder) else '-'}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def drop_other_renderers(data_dir: Path) -> None:
    """Remove page caches drawn by another renderer (or the unkeyed layout before it)."""
    parent = Path(data_dir) / "cache" / "pdf-pages"
    mine = renderer_id()
    for p in parent.iterdir() if parent.is_dir() else ():
        if p.name != mine and not p.name.startswith("."):
            trash = parent / f".{p.name[:16]}.{uuid.uuid4().hex[:8]}.old-renderer"
            os.replace(p, trash)
            shutil.rmtree(trash, ignore_errors=True)


def _lock_for(sha256: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(sha256, threading.Lock())


def cached_page_count(root: Path, sha256: str) -> int | None:
    """How many pages a complete cache entry holds, or None if there is none."""
    try:
        doc = json.loads((root / sha256 / META).read_text(encoding="utf-8"))
        return int(doc["pages"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def render_pages(pdf: Path, root: Path, sha256: str, max_bytes: int,
                 max_pages: int = 300) -> int:
    """Render ``pdf`` (the blob ``sha256``) into the cache under ``root``; return its pages.

    Does nothing when a complete entry exists. Raises PdfPagesError when poppler
    cannot read the file or finds no page; then nothing is left in the cache.
    """
    if (n := cached_page_count(root, sha256)) is not None:
        return n
    if sha256 in _failed:
        raise PdfPagesError(_failed[sha256])
    with _lock_for(sha256):
        if (n := cached_page_count(root, sha256)) is not None:
            return n
        root.mkdir(parents=True, exist_ok=True)
        _sweep_temporaries(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha256[:16]}.", suffix=".rendering", dir=root))
        try:
            pages = _run_pdftoppm(pdf, tmp, sha256, max_pages)
            for p in tmp.iterdir():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
            sizes = [png_size(tmp / f"{i}.png") for i in range(1, pages + 1)]
            meta = tmp / META
            with open(meta, "w", encoding="utf-8") as f:
                json.dump({"sha256": sha256, "pages": pages, "sizes": sizes}, f)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(tmp)
            final = root / sha256
            if final.exists():  # incomplete (no pages.json): never served, replace it
                _discard(root, final)
            os.replace(tmp, final)
            fsync_dir(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _evict(root, max_bytes, keep=sha256)
        return pages


def _run_pdftoppm(pdf: Path, out: Path, sha256: str, max_pages: int) -> int:
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise PdfPagesError("无法显示任务单：本机缺少 pdftoppm（poppler-utils）。"
                            "The task sheet cannot be shown: pdftoppm (poppler-utils) is "
                            "not installed on this device; ask a technician.")
    try:
        proc = subprocess.run(
            [exe, "-png", "-scale-to", str(LONG_SIDE), "-l", str(max_pages), str(pdf),
             str(out / "p")],
            capture_output=True, text=True, timeout=RENDER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        raise PdfPagesError(f"任务单太大，{RENDER_TIMEOUT} 秒内未能显示。The task sheet "
                            f"{sha256[:12]}… took more than {RENDER_TIMEOUT} s to render.") from e
    # pdftoppm names pages p-1.png, or p-01.png / p-001.png for longer documents.
    rendered = sorted(out.glob("p-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    if proc.returncode != 0 or not rendered:
        reason = (proc.stderr.strip().splitlines() or ["no page"])[-1][:200]
        message = (f"这份任务单的文件已损坏，无法显示（{sha256[:12]}…）。The task sheet's PDF "
                   f"file is damaged and cannot be shown ({reason}); ask a technician to "
                   "re-import the lesson.")
        _failed[sha256] = message
        raise PdfPagesError(message)
    for i, p in enumerate(rendered, 1):
        p.rename(out / f"{i}.png")
    return len(rendered)


def png_size(path: Path) -> list[int]:
    """A PNG's [width, height], from its IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    return [int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")]


def cached_page_sizes(root: Path, sha256: str) -> list[list[int]]:
    """Each cached page's [width, height] (so a page can hold its place before it loads)."""
    try:
        doc = json.loads((root / sha256 / META).read_text(encoding="utf-8"))
        return [list(s) for s in doc["sizes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _sweep_temporaries(root: Path) -> None:
    """Remove what an interrupted render or eviction left (never served).

    Only leftovers older than any render can take: a younger one may be another
    thread's (or process's) render in progress.
    """
    stale = time.time() - RENDER_TIMEOUT - 60
    for p in root.iterdir():
        try:
            if p.name.startswith(".") and p.stat().st_mtime < stale:
                shutil.rmtree(p, ignore_errors=True)
        except FileNotFoundError:
            pass


def _entry_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir())


def _evict(root: Path, max_bytes: int, keep: str) -> None:
    """Remove the oldest complete entries until the cache fits ``max_bytes``."""
    with _evict_lock:
        _evict_locked(root, max_bytes, keep)


def _evict_locked(root: Path, max_bytes: int, keep: str) -> None:
    entries = []
    for p in root.iterdir():
        if not p.name.startswith(".") and p.is_dir():
            entries.append((p.stat().st_mtime, p, _entry_size(p)))
    total = sum(size for _, _, size in entries)
    for _, path, size in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        if path.name == keep:
            continue
        _discard(root, path)
        total -= size


def _discard(root: Path, path: Path) -> None:
    """Remove a cache entry: renamed aside first, so no half-deleted entry is ever served."""
    trash = root / f".{path.name[:16]}.{uuid.uuid4().hex[:8]}.evicted"
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _pdf_path(sha256: str) -> Path:
    """The blob of a PDF an active release names; raises NotAPdf otherwise."""
    if not SHA256_RE.match(sha256) or media_type_of(library(), sha256) != PDF_TYPE:
        raise NotAPdf("这份任务单无法显示：它不是 PDF。This task sheet cannot be shown: the "
                      "release does not name it as a PDF (application/pdf). Ask the "
                      "publisher to fix the resource's media type.")
    path = library().store.path_for(sha256)
    if not path.is_file():
        raise NotAPdf("这份任务单不在本机上。This task sheet's file is missing on this device; "
                      "import the release again.")
    return path


def page_count(sha256: str) -> int:
    """How many pages the PDF blob ``sha256`` has, rendering it first if needed.

    Call inside a request (or app context). Raises NotAPdf when no active release
    names ``sha256`` as a PDF, PdfPagesError when it cannot be rendered.
    """
    root = cache_root(library().data_dir)
    if (n := cached_page_count(root, sha256)) is not None:
        return n
    drop_other_renderers(library().data_dir)  # a render writes anyway; idle stays idle
    return render_pages(_pdf_path(sha256), root, sha256,
                        settings().tablet.pdf_cache_mb * 1024 * 1024)


def page_image_urls(sha256: str) -> list[str]:
    """The URLs of the page images of the PDF blob ``sha256``, page 1 first.

    For any view that shows a task sheet without a PDF plugin (the tablet's PDF
    pages, the projector). The images are PNG, about 850×1200 for an A4 page, served
    with year-long immutable caching. Renders the PDF on first use (about 0.2 s a
    page on a small device). Raises PdfPagesError for a PDF poppler cannot read
    (show its message instead of pages), and NotAPdf (a PdfPagesError too) for a
    sha256 no release names as a PDF.
    """
    return [url_for("pdf_pages.page_image", sha256=sha256, page=i, r=renderer_id())
            for i in range(1, page_count(sha256) + 1)]


@bp.route("/pdf-pages/<sha256>/<int:page>.png")
def page_image(sha256: str, page: int):
    """One rendered page of a PDF blob, cached for a year (the blob never changes)."""
    try:
        pages = page_count(sha256)
    except NotAPdf:
        abort(404)
    except PdfPagesError as e:
        return Response(str(e), status=422, mimetype="text/plain")
    if not 1 <= page <= pages:
        abort(404)
    path = cache_root(library().data_dir) / sha256 / f"{page}.png"
    etag = f"{sha256}-{page}-{renderer_id()}"
    if request.if_none_match.contains(etag):
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": CACHE_CONTROL})
    response = send_file(path, mimetype="image/png", etag=False, conditional=False)
    response.headers["ETag"] = f'"{etag}"'
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
