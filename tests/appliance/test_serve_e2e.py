"""End to end: `ketang serve` (waitress, a real subprocess) over the imported sample release."""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.request

import pytest

from content_cache.library import Library

from ..helpers import SAMPLE_PACK, running_server

pytestmark = pytest.mark.slow


def get(url: str, headers: dict[str, str] | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_lesson_list_lesson_page_and_video_range(sample_device, tmp_path):
    data_dir = sample_device.parent / "data"
    cat = Library(data_dir).catalog("cn-basic-edu-demo")
    lessons = cat.lessons()
    with running_server(sample_device) as base:
        # The front page is the browse tree's first screen: every grade (tests/kiosk_ui/
        # test_tablet*.py browse from it down to lessons).
        status, _, body = get(base + "/")
        page = body.decode()
        assert status == 200
        for stage in cat.children(None):
            for grade in cat.children(stage["id"]):
                assert f'href="/browse/cn-basic-edu-demo/{grade["id"]}"' in page
        first = lessons[0]
        link = f"/lessons/cn-basic-edu-demo/{first['id']}"
        status, _, body = get(base + f"/browse/cn-basic-edu-demo/{first['parent']}")
        assert status == 200 and f'href="{link}"' in body.decode()

        status, _, body = get(base + link)
        assert status == 200
        lesson_page = body.decode()
        assert first["title"]["zh"] in lesson_page
        video_src = re.search(r'<video[^>]+src="([^"]+)"', lesson_page).group(1)
        pdf_href = re.search(r'class="resource pdf".*?class="download" href="([^"]+)"',
                             lesson_page, re.S).group(1)

        video = next(r for r in cat.lesson(first["id"])["resources"] if r["kind"] == "video")
        assert video_src == f"/blobs/{video['sha256']}"
        full = (data_dir / "blobs" / "sha256" / video["sha256"][:2] / video["sha256"]).read_bytes()
        assert hashlib.sha256(full).hexdigest() == video["sha256"]

        status, headers, body = get(base + video_src, {"Range": "bytes=100-1099"})
        assert status == 206
        assert headers["Content-Range"] == f"bytes 100-1099/{len(full)}"
        assert headers["Content-Type"] == "video/mp4"
        assert body == full[100:1100]

        status, headers, body = get(base + video_src)
        assert status == 200 and body == full
        assert headers["Accept-Ranges"] == "bytes"
        assert headers["ETag"].strip('"') == video["sha256"]

        status, _, body = get(base + pdf_href)
        assert status == 200 and body.startswith(b"%PDF")


def test_unknown_lessons_and_blobs_are_404(sample_device):
    with running_server(sample_device) as base:
        assert get(base + "/lessons/cn-basic-edu-demo/no-such-lesson")[0] == 404
        assert get(base + "/blobs/" + "0" * 64)[0] == 404
        assert get(base + "/blobs/not-a-hash")[0] == 404


def test_search_finds_chinese_lessons(sample_device):
    with running_server(sample_device) as base:
        status, _, body = get(base + "/search?q=" + urllib.request.quote("加法"))
        assert status == 200
        assert "加法" in body.decode()
        assert 'class="lesson-item"' in body.decode()


def test_a_blob_is_only_served_while_a_release_names_it(tmp_path, sample_device):
    # A verified blob that no active release names is not served: nothing stray leaks.
    data_dir = sample_device.parent / "data"
    lib = Library(data_dir)
    stray = lib.store.add_file(SAMPLE_PACK / "source.json")
    with running_server(sample_device) as base:
        assert get(base + f"/blobs/{stray}")[0] == 404
