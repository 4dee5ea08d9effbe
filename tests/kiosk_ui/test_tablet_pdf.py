"""The PDF page-image cache (appliance/web/pdf_pages.py) with the real pdftoppm."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.web import pdf_pages
from appliance.web.pdf_pages import PdfPagesError, cached_page_count, render_pages

from ..helpers import SAMPLE_PACK

SHEETS = sorted((SAMPLE_PACK / "media").glob("*.pdf"))[:3]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_render_is_complete_under_its_final_name_or_absent(tmp_path):
    root = tmp_path / "cache"
    pdf = SHEETS[0]
    assert render_pages(pdf, root, sha(pdf), max_bytes=10**9) == 1
    entry = root / sha(pdf)
    assert sorted(p.name for p in entry.iterdir()) == ["1.png", "pages.json"]
    assert (entry / "1.png").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in root.iterdir()] == [sha(pdf)]   # no temporary left
    # A second call reads the cache and writes nothing.
    mtime = (entry / "pages.json").stat().st_mtime_ns
    assert render_pages(pdf, root, sha(pdf), max_bytes=10**9) == 1
    assert (entry / "pages.json").stat().st_mtime_ns == mtime


def test_leftovers_of_an_interrupted_render_are_never_served_and_are_swept(tmp_path):
    root = tmp_path / "cache"
    pdf = SHEETS[1]
    # A power cut mid-render leaves a temporary folder, and (in theory) an entry
    # without pages.json: neither counts as rendered.
    old = root / f".{sha(pdf)[:16]}.x.rendering"
    old.mkdir(parents=True)
    os.utime(old, (1, 1))   # long ago: a render that will never finish
    young = root / f".{'0' * 16}.y.rendering"   # another render, still running
    young.mkdir()
    (root / sha(pdf)).mkdir()
    (root / sha(pdf) / "1.png").write_bytes(b"half")
    assert cached_page_count(root, sha(pdf)) is None
    assert render_pages(pdf, root, sha(pdf), max_bytes=10**9) == 1
    assert sorted(p.name for p in root.iterdir()) == sorted([sha(pdf), young.name])
    assert (root / sha(pdf) / "1.png").read_bytes().startswith(b"\x89PNG")


def test_the_cache_is_bounded_oldest_first(tmp_path):
    root = tmp_path / "cache"
    for pdf in SHEETS:
        render_pages(pdf, root, sha(pdf), max_bytes=1)   # smaller than any one entry
        # The entry just rendered is always kept; every older one is evicted.
        assert [p.name for p in root.iterdir()] == [sha(pdf)]
    big = 10**9
    for pdf in SHEETS:
        render_pages(pdf, root, sha(pdf), max_bytes=big)
    assert len(list(root.iterdir())) == 3


def test_a_damaged_pdf_raises_a_clear_error_and_leaves_nothing(tmp_path):
    root = tmp_path / "cache"
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(SHEETS[0].read_bytes()[:400])   # truncated
    with pytest.raises(PdfPagesError, match="damaged"):
        render_pages(bad, root, sha(bad), max_bytes=10**9)
    assert list(root.iterdir()) == []
    with pytest.raises(PdfPagesError, match="technician"):   # remembered: not re-rendered
        render_pages(bad, root, sha(bad), max_bytes=10**9)


def test_without_pdftoppm_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(pdf_pages.shutil, "which", lambda _name: None)
    pdf = tmp_path / "copy.pdf"
    shutil.copyfile(SHEETS[2], pdf)
    pdf.write_bytes(pdf.read_bytes() + b"\n% another blob\n")
    with pytest.raises(PdfPagesError, match="poppler-utils"):
        render_pages(pdf, tmp_path / "cache", sha(pdf), max_bytes=10**9)


def test_concurrent_first_views_render_each_sheet_once_and_completely(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "cache"
    jobs = [SHEETS[i % 3] for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        pages = list(pool.map(lambda pdf: render_pages(pdf, root, sha(pdf), 10**9), jobs))
    assert pages == [1] * 12
    assert sorted(p.name for p in root.iterdir()) == sorted({sha(p) for p in SHEETS})
    for pdf in SHEETS:
        assert cached_page_count(root, sha(pdf)) == 1


def ink_in_chinese_words(pdf: Path, root: Path) -> list[tuple[str, float]]:
    """Each Chinese word on page 1 with the share of dark pixels where it is drawn."""
    from PIL import Image

    render_pages(pdf, root, sha(pdf), max_bytes=10**9)
    image = Image.open(root / sha(pdf) / "1.png").convert("L")
    xml = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(pdf), "-"],
                         capture_output=True, text=True, check=True).stdout
    page = re.search(r'<page width="([\d.]+)" height="([\d.]+)"', xml)
    assert page, "pdftotext gave no page"
    sx, sy = image.width / float(page[1]), image.height / float(page[2])
    out = []
    for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                         r'yMax="([\d.]+)">([^<]+)</word>', xml):
        word = m[5]
        if not re.search(r"[\u4e00-\u9fff]", word):
            continue
        box = (int(float(m[1]) * sx), int(float(m[2]) * sy),
               int(float(m[3]) * sx) + 1, int(float(m[4]) * sy) + 1)
        hist = image.crop(box).histogram()   # grey levels: ink is anything not near white
        out.append((word, sum(hist[:200]) / max(1, sum(hist))))
    return out


@pytest.mark.parametrize("pdf", SHEETS, ids=lambda p: p.name)
def test_a_task_sheet_page_holds_ink_where_its_chinese_text_is(tmp_path, pdf):
    """Issue 18: the Chinese of a 学习任务单 used to render as nothing (fonts not embedded,
    no poppler-data). Every Chinese word's box on the rendered page must hold ink."""
    words = ink_in_chinese_words(pdf, tmp_path / "pages")
    assert len(words) >= 3, "the sheet should carry Chinese text"
    blank = [w for w, ink in words if ink < 0.02]
    assert not blank, f"Chinese drawn as nothing in {pdf.name}: {blank}"


def test_the_cache_is_keyed_by_renderer(tmp_path, monkeypatch):
    """A page rendered by another renderer (say, before poppler-data) is never served."""
    root = pdf_pages.cache_root(tmp_path)
    assert root.parent == tmp_path / "cache" / "pdf-pages"
    assert root.name == pdf_pages.renderer_id() and len(root.name) == 12
    old = tmp_path / "cache" / "pdf-pages" / "0123456789ab" / sha(SHEETS[0])
    old.mkdir(parents=True)
    (old / "pages.json").write_text('{"pages": 1, "sizes": [[1, 1]]}')
    assert cached_page_count(root, sha(SHEETS[0])) is None
    pdf_pages.drop_other_renderers(tmp_path)
    assert not old.parent.exists()
