"""In Chromium (Debian's, through Playwright): the lesson page's <video> plays from the
blob fast path and seeks, which needs the Range answers and the video/mp4 type."""

from __future__ import annotations

import pytest

from content_cache.library import Library

from ..helpers import served_sample
from ..support.chromium import persistent_context

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"


def test_the_lesson_video_plays_and_seeks_in_chromium(tmp_path, sample_bundle, playwright):
    with served_sample(tmp_path, sample_bundle) as (base, data):
        cat = Library(data).catalog(CH)
        lesson = cat.lessons()[0]
        browser = persistent_context(playwright, tmp_path / "profile")
        try:
            page = browser.new_page()
            ranges: list[str] = []
            page.on("request", lambda r: ranges.append(r.headers.get("range", ""))
                    if "/blobs/" in r.url else None)
            page.goto(f"{base}/lessons/{CH}/{lesson['id']}")
            page.wait_for_function("document.querySelector('video').readyState >= 1",
                                   timeout=15000)
            duration = page.evaluate("document.querySelector('video').duration")
            assert duration > 1, duration
            target = round(duration * 0.6, 2)
            seeked = page.evaluate(
                """(t) => new Promise((done, fail) => {
                     const v = document.querySelector('video');
                     v.muted = true;
                     v.addEventListener('seeked', () => done(v.currentTime), {once: true});
                     v.addEventListener('error', () => fail(String(v.error && v.error.code)));
                     v.currentTime = t; })""", target)
            assert abs(seeked - target) < 0.5, (seeked, target)
            page.wait_for_function("document.querySelector('video').readyState >= 2",
                                   timeout=15000)
            played = page.evaluate(
                """() => { const v = document.querySelector('video');
                           return v.play().then(() => 'playing', e => 'refused: ' + e); }""")
            assert played == "playing"
            page.wait_for_function(
                f"document.querySelector('video').currentTime > {target + 0.1}",
                timeout=15000)
            assert any(r.startswith("bytes=") for r in ranges), ranges
        finally:
            browser.close()
