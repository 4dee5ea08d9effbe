"""The PDF page-image cache (appliance/web/pdf_pages.py) with the real pdftoppm."""

from __future__ import annotations

import hashlib
import os
import shutil
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
