"""Kept API answers (api.catalog_cached) over a real `ketang serve`: the same answer as
the first time, links that follow each request's Host, and nothing stale after a
release switch."""

from __future__ import annotations

import urllib.parse

import pytest

from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import http, http_json, make_source, running_server, served_sample, write_config

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"


def test_kept_answers_repeat_exactly_and_follow_the_host(tmp_path, sample_bundle):
    with served_sample(tmp_path, sample_bundle) as (base, data):
        cat = Library(data).catalog(CH)
        lesson_id = cat.lessons()[0]["id"]
        for path in (f"/api/v1/channels/{CH}/lessons/{lesson_id}",
                     f"/api/v1/channels/{CH}/nodes/primary"):
            first = http(base + path)
            again = http(base + path)
            assert first[0] == again[0] == 200
            assert first[2] == again[2]
            assert first[1]["Content-Type"] == again[1]["Content-Type"] == "application/json"
        port = base.rsplit(":", 1)[1]
        apps = {}
        for host in ("127.0.0.1", "localhost", "ketang.lan"):
            status, doc = http_json(base + f"/api/v1/channels/{CH}/lessons/{lesson_id}",
                                    headers={"Host": f"{host}:{port}"})
            assert status == 200
            [app] = [r["app_url"] for r in doc["resources"] if r["kind"] == "html5"]
            apps[host] = app
        for host, url in apps.items():
            assert url.startswith(f"//{host}:"), (host, url)
        # A missing lesson is an error every time, never a kept answer.
        for _ in range(2):
            assert http(base + f"/api/v1/channels/{CH}/lessons/nope")[0] == 404


def test_a_release_switch_is_seen_at_once(tmp_path, publisher_key):
    pair, trusted = publisher_key
    data = tmp_path / "data"
    lib = Library(data)

    def release(version: int, seed: str) -> None:
        out = tmp_path / f"bundle-{version}"
        publish(make_source(tmp_path / f"src-{version}", lessons=version, seed=seed), "t", version,
                pair.private_path, out)
        import_bundle(out, lib, load_trusted_keys(trusted))

    release(1, "a")
    with running_server(write_config(tmp_path / "ketang.toml", data, trusted)) as base:
        url = base + "/api/v1/channels/t/lessons/l0"
        search = base + "/api/v1/search?q=" + urllib.parse.quote("分数")
        status, before = http_json(url)
        assert status == 200
        assert [r["id"] for r in http_json(search)[1]["results"]] == ["l0"]
        release(2, "b")
        assert sorted(r["id"] for r in http_json(search)[1]["results"]) == ["l0", "l1"]
        status, after = http_json(url)
        assert status == 200
        now = {r["sha256"] for r in lib.catalog("t").lesson("l0")["resources"]}
        assert {r["sha256"] for r in after["resources"]} == now
        assert {r["sha256"] for r in before["resources"]} != now
