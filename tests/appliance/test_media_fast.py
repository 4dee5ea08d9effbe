"""The blob fast path (appliance/web/media_fast.py) against the Flask media view.

Over a real `ketang serve`: a plain ``/blobs/<sha256>`` request takes the fast path and
the same URL with a query string falls through to the Flask view, so every request of
the Range matrix is sent both ways and the answers must be identical (status, headers
but Date, body). In process: which requests the fast path answers without calling
Flask, and which it hands over.
"""

from __future__ import annotations

import urllib.parse
from http.client import HTTPConnection
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder

from appliance.config import Settings
from appliance.web.app import create_app
from appliance.web.media_fast import FastMedia
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import (
    http,
    make_source,
    running_server,
    sample_data,
    served_sample,
    write_config,
)

CH = "cn-basic-edu-demo"
VARIES = {"date"}


@pytest.fixture(scope="module")
def served(tmp_path_factory, sample_bundle):
    """(base URL, {kind: resource}, data dir) of one server for this module."""
    tmp = tmp_path_factory.mktemp("media-fast")
    with served_sample(tmp, sample_bundle) as (url, data):
        cat = Library(data).catalog(CH)
        lesson = cat.lesson(cat.lessons()[0]["id"])
        yield url, {r["kind"]: r for r in lesson["resources"]}, data


def _raw(url: str, headers: dict[str, str], method: str = "GET"):
    """One request over http.client: status, every header (lower-cased name, in order), body."""
    u = urllib.parse.urlsplit(url)
    conn = HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers)
        r = conn.getresponse()
        body = r.read()
        return f"{r.status} {r.reason}", [(k.lower(), v) for k, v in r.getheaders()
                          if k.lower() not in VARIES], body
    finally:
        conn.close()


MATRIX = [
    {}, {"Range": "bytes=0-0"}, {"Range": "bytes=-1"}, {"Range": "bytes=100-1099"},
    {"Range": "bytes=-500"}, {"Range": "bytes=1000-"}, {"Range": "bytes=0-99999999"},
    {"Range": "bytes=-99999999"}, {"Range": "bytes=99999999-"}, {"Range": "bytes=-0"},
    {"Range": "bytes=0-1,5-6"}, {"Range": "items=0-5"}, {"Range": "bytes=5-1"},
    {"Range": "bytes=abc"}, {"If-None-Match": "*"}, {"If-None-Match": '"0000"'},
    {"If-None-Match": "SHA", "Range": "bytes=0-9"},
    {"If-None-Match": 'W/"SHA"'}, {"Range": "bytes=0-9", "If-Range": "SHA"},
    {"Range": "bytes=0-9", "If-Range": '"0000"'},
    {"Range": "bytes=0-9", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"},
]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("kind", ["video", "pdf", "exercise"])
def test_fast_path_and_flask_view_answer_identically(served, method, kind):
    base, by_kind, _ = served
    sha = by_kind[kind]["sha256"]
    url = f"{base}/blobs/{sha}"
    for case in MATRIX:
        headers = {k: v.replace("SHA", f'"{sha}"') for k, v in case.items()}
        fast = _raw(url, headers, method)
        slow = _raw(url + "?via=flask", headers, method)
        assert fast == slow, (method, kind, headers)
        assert fast[0][:3] in ("200", "206", "304", "416"), (headers, fast[0])


@pytest.mark.slow
def test_requests_the_fast_path_does_not_take_still_get_flask_answers(served):
    base, by_kind, _ = served
    sha = by_kind["video"]["sha256"]
    u = urllib.parse.urlsplit(base)
    # A Host that is not this device: the captive portal's redirect, as for any page.
    status, headers, _ = http(f"{base}/blobs/{sha}", {"Host": "www.example.com"})
    assert status == 302 and headers["Location"].startswith("http://ketang.lan")
    assert http(f"{base}/blobs/{sha}", {"Host": f"localhost:{u.port}"})[0] == 200
    # Other methods, unknown and malformed names: Flask's 405 and 404.
    assert http(f"{base}/blobs/{sha}", method="POST")[0] == 405
    assert http(f"{base}/blobs/{'0' * 64}")[0] == 404
    assert http(f"{base}/blobs/{sha.upper()}")[0] == 404
    assert http(f"{base}/blobs/{sha}/x")[0] == 404


@pytest.mark.slow
def test_a_switched_release_stops_the_fast_path_serving_its_old_blobs(tmp_path, publisher_key):
    pair, trusted = publisher_key
    data = tmp_path / "data"
    lib = Library(data)

    def release(version: int, seed: str) -> dict:
        out = tmp_path / f"bundle-{version}"
        publish(make_source(tmp_path / f"src-{version}", lessons=1, seed=seed), "t", version,
                pair.private_path, out)
        import_bundle(out, lib, load_trusted_keys(trusted))
        return {r["kind"]: r for r in lib.catalog("t").lesson("l0")["resources"]}

    old = release(1, "a")
    with running_server(write_config(tmp_path / "ketang.toml", data, trusted)) as base:
        status, headers, _ = http(f"{base}/blobs/{old['video']['sha256']}")
        assert status == 200 and headers["Content-Type"] == "video/mp4"
        new = release(2, "b")
        assert new["video"]["sha256"] != old["video"]["sha256"]
        # The old blob is still in the store, but no active release names it any more.
        assert lib.store.has(old["video"]["sha256"])
        assert http(f"{base}/blobs/{old['video']['sha256']}")[0] == 404
        status, headers, body = http(f"{base}/blobs/{new['video']['sha256']}",
                                     {"Range": "bytes=0-4"})
        assert (status, headers["Content-Type"], body) == (206, "video/mp4", b"video")


# In process: which requests reach Flask at all.

@pytest.fixture(scope="module")
def fast_app(tmp_path_factory, sample_bundle):
    """(FastMedia over the app, a list of the paths Flask saw, the video resource)."""
    tmp = tmp_path_factory.mktemp("media-fast-app")
    data, _ = sample_data(tmp, sample_bundle)
    lib = Library(data)
    app = create_app(Settings(), library=lib)
    seen: list[str] = []
    flask_wsgi = app.wsgi_app

    def recording(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return flask_wsgi(environ, start_response)

    app.wsgi_app = recording
    cat = lib.catalog(CH)
    video = next(r for r in cat.lesson(cat.lessons()[0]["id"])["resources"]
                 if r["kind"] == "video")
    return FastMedia(app), seen, video, lib.store.path_for(video["sha256"])


def _call(wsgi, path: str, method: str = "GET", host: str = "127.0.0.1",
          headers: dict[str, str] | None = None, query: str = ""):
    env = EnvironBuilder(path=path, method=method, query_string=query, headers=headers,
                         base_url=f"http://{host}").get_environ()
    got: list = []
    body_iter = wsgi(env, lambda status, hdrs, exc_info=None: got.extend([status, hdrs]))
    body = b"".join(body_iter)
    if hasattr(body_iter, "close"):
        body_iter.close()
    return got[0], dict(got[1]), body


def test_plain_blob_requests_never_reach_flask(fast_app):
    wsgi, seen, video, path = fast_app
    full = Path(path).read_bytes()
    seen.clear()
    status, headers, body = _call(wsgi, f"/blobs/{video['sha256']}",
                                  headers={"Range": "bytes=2-5"})
    assert (status, body) == ("206 PARTIAL CONTENT", full[2:6])
    assert headers["Content-Range"] == f"bytes 2-5/{len(full)}"
    status, _, body = _call(wsgi, f"/blobs/{video['sha256']}", method="HEAD")
    assert (status, body) == ("200 OK", b"")
    status, _, _ = _call(wsgi, f"/blobs/{video['sha256']}", host="ketang.lan",
                         headers={"If-None-Match": f'"{video["sha256"]}"'})
    assert status == "304 NOT MODIFIED"
    assert seen == []


@pytest.mark.parametrize("path, method, host, query, expected", [
    ("/blobs/SHA", "GET", "127.0.0.1", "via=flask", "200 OK"),
    ("/blobs/SHA", "GET", "www.example.com", "", "302 FOUND"),
    ("/blobs/SHA", "POST", "127.0.0.1", "", "405 METHOD NOT ALLOWED"),
    ("/blobs/" + "0" * 64, "GET", "127.0.0.1", "", "404 NOT FOUND"),
    ("/blobs/nothex", "GET", "127.0.0.1", "", "404 NOT FOUND"),
    ("/", "GET", "127.0.0.1", "", "200 OK"),
])
def test_everything_else_goes_to_flask(fast_app, path, method, host, query, expected):
    wsgi, seen, video, _ = fast_app
    path = path.replace("SHA", video["sha256"])
    seen.clear()
    status, _, _ = _call(wsgi, path, method=method, host=host, query=query)
    assert status == expected
    assert seen == [path]
