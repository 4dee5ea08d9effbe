"""Static assets carry a content hash in their URL and are then cached for a year
(appliance/web/static_assets.py); without it, or with an old one, they revalidate."""

from __future__ import annotations

import re

from .test_projector import CH, LESSON, make_client


def asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)


def test_pages_name_their_assets_by_content_hash_and_those_are_kept(sample_device):
    c, _ = make_client(sample_device)
    for page in ("/", f"/lessons/{CH}/{LESSON}", f"/projector/lesson/{CH}/{LESSON}"):
        urls = asset_urls(c.get(page).get_data(as_text=True))
        assert len(urls) >= 2, page
        for url in urls:
            assert re.search(r"\?v=[0-9a-f]{12}$", url.replace("&amp;", "&")), url
            r = c.get(url)
            assert r.status_code == 200, url
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable", url


def test_without_the_current_hash_an_asset_is_revalidated(sample_device):
    c, _ = make_client(sample_device)
    for url in ("/ui/style.css", "/ui/style.css?v=000000000000"):
        r = c.get(url)
        assert r.status_code == 200
        assert "immutable" not in r.headers.get("Cache-Control", ""), url
    assert c.get("/ui/../appliance/config.py?v=000000000000").status_code == 404
