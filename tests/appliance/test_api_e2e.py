"""The JSON API (/api/v1/) over a real `ketang serve` subprocess serving the sample release."""

from __future__ import annotations

import hashlib
import urllib.parse

import pytest

from content_cache.library import Library

from ..helpers import http, http_json, served_sample

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"


@pytest.fixture(scope="module")
def api(tmp_path_factory, sample_bundle):
    """(base URL, data dir, catalog) of one server shared by this module's tests."""
    tmp = tmp_path_factory.mktemp("api")
    with served_sample(tmp, sample_bundle) as (url, data):
        yield url, data, Library(data).catalog(CH)


def test_root_and_device(api):
    base, _, _ = api
    status, doc = http_json(base + "/api/v1/")
    assert status == 200 and doc["api_version"] == 1
    assert doc["channels"] == "/api/v1/channels"
    status, dev = http_json(base + doc["device"])
    assert status == 200
    assert dev["name"] == "Ketang 课堂" and dev["api_version"] == 1
    assert dev["active"] == {CH: 1}
    assert dev["software_version"]


def test_channels_and_releases(api):
    base, _, _ = api
    status, doc = http_json(base + "/api/v1/channels")
    assert status == 200
    [ch] = doc["channels"]
    assert ch["channel"] == CH and ch["version"] == 1
    assert ch["title"]["zh"].startswith("国家中小学智慧教育平台")
    status, one = http_json(base + ch["url"])
    assert status == 200
    assert one["releases"] == [{"version": 1, "active": True}]
    assert [c["id"] for c in one["children"]] == ["primary"]
    status, rel = http_json(base + f"/api/v1/channels/{CH}/releases")
    assert status == 200 and rel["releases"] == [{"version": 1, "active": True}]


def test_browse_the_tree_from_the_stage_down_to_every_lesson(api):
    base, _, cat = api
    seen_lessons = []
    todo = [f"/api/v1/channels/{CH}/nodes/primary"]
    while todo:
        status, node = http_json(base + todo.pop())
        assert status == 200
        assert [c["id"] for c in node["children"]] == [c["id"] for c in cat.children(node["id"])]
        assert [p["id"] for p in node["path"]] == [p["id"] for p in
                                                   cat.breadcrumb(node["id"])[:-1]]
        for child in node["children"]:
            assert child["parent"] == node["id"]
            if child["kind"] == "lesson":
                seen_lessons.append(child["id"])
                assert child["lesson_url"] == f"/api/v1/channels/{CH}/lessons/{child['id']}"
            else:
                todo.append(child["url"])
    assert sorted(seen_lessons) == sorted(n["id"] for n in cat.lessons())
    assert len(seen_lessons) == 12


def test_one_lesson_has_its_resources_with_working_media_urls(api):
    base, data, cat = api
    first = cat.lessons()[0]
    status, lesson = http_json(base + f"/api/v1/channels/{CH}/lessons/{first['id']}")
    assert status == 200
    assert lesson["title"] == first["title"]
    assert lesson["page_url"] == f"/lessons/{CH}/{first['id']}"
    assert [p["title"]["zh"] for p in lesson["path"]] == [p["title"]["zh"] for p in first["path"]]
    kinds = {r["kind"] for r in lesson["resources"]}
    assert {"video", "pdf", "html5", "exercise"} <= kinds
    for r in lesson["resources"]:
        assert r["url"] == f"/blobs/{r['sha256']}"
        status, headers, body = http(base + r["url"])
        assert status == 200
        assert hashlib.sha256(body).hexdigest() == r["sha256"]
        assert len(body) == r["size"]
        assert headers["Content-Type"].split(";")[0] == r["media_type"]


def test_search_in_chinese_across_channels_and_in_one(api):
    base, _, _ = api
    q = urllib.parse.quote("分数")
    status, doc = http_json(base + f"/api/v1/search?q={q}")
    assert status == 200 and doc["q"] == "分数"
    assert doc["results"], "分数 should find the fractions lessons"
    for r in doc["results"]:
        assert r["channel"] == CH and r["kind"] == "lesson"
        assert "分数" in r["title"]["zh"] + r["description"]["zh"]
    status, one = http_json(base + f"/api/v1/search?q={q}&channel={CH}&limit=1")
    assert status == 200 and len(one["results"]) == 1
    status, none = http_json(base + "/api/v1/search?q=" + urllib.parse.quote("恐龙化石"))
    assert status == 200 and none["results"] == []


@pytest.mark.parametrize("path, status, words", [
    ("/api/v1/search", 400, "q="),
    ("/api/v1/search?q=" + urllib.parse.quote("长" * 101), 400, "longer than 100"),
    ("/api/v1/search?q=abc&limit=0", 400, "limit"),
    ("/api/v1/search?q=abc&limit=lots", 400, "limit"),
    ("/api/v1/search?q=abc&channel=nope", 404, "nope"),
    ("/api/v1/channels/nope", 404, "No active channel 'nope'"),
    ("/api/v1/channels/nope/releases", 404, "nope"),
    (f"/api/v1/channels/{CH}/nodes/nope", 404, "No node 'nope'"),
    (f"/api/v1/channels/{CH}/lessons/nope", 404, "No lesson 'nope'"),
    (f"/api/v1/channels/{CH}/lessons/primary", 404, "No lesson 'primary'"),
    ("/api/v1/no-such-thing", 404, "No such API address"),
    ("/api/v2/channels", 404, "No such API address"),
])
def test_errors_are_json_with_a_message(api, path, status, words):
    base, _, _ = api
    got, doc = http_json(base + path)
    assert got == status
    assert doc["error"]["status"] == status
    assert words in doc["error"]["message"]


def test_wrong_method_is_a_json_405(api):
    base, _, _ = api
    got, doc = http_json(base + "/api/v1/channels", method="POST")
    assert got == 405 and "use GET" in doc["error"]["message"]


def test_pages_keep_html_errors(api):
    base, _, _ = api
    status, headers, _ = http(base + "/no-such-page")
    assert status == 404 and headers["Content-Type"].startswith("text/html")


def test_peers_when_zeroconf_is_off(api):
    base, _, _ = api
    status, doc = http_json(base + "/api/v1/peers")
    assert status == 200 and doc == {"enabled": False, "peers": []}
