"""Media from the blob store over a real `ketang serve`: the Range matrix, conditional
requests, HEAD, Content-Type, and a real video client (ffprobe/ffmpeg) reading over HTTP."""

from __future__ import annotations

import json
import subprocess

import pytest

from content_cache.library import Library

from ..helpers import http, served_sample

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(scope="module")
def media(tmp_path_factory, sample_bundle):
    """(base URL, {kind: resource}, {sha256: bytes}) for one lesson of the sample release."""
    tmp = tmp_path_factory.mktemp("media")
    with served_sample(tmp, sample_bundle) as (url, data):
        lib = Library(data)
        cat = lib.catalog(CH)
        lesson = cat.lesson(cat.lessons()[0]["id"])
        by_kind = {r["kind"]: r for r in lesson["resources"]}
        blobs = {r["sha256"]: lib.store.path_for(r["sha256"]).read_bytes()
                 for r in lesson["resources"]}
        yield url, by_kind, blobs


def video(media):
    base, by_kind, blobs = media
    r = by_kind["video"]
    return f"{base}/blobs/{r['sha256']}", r["sha256"], blobs[r["sha256"]]


@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-0", 0, 0),                      # first byte
    ("bytes=-1", -1, -1),                     # last byte (suffix)
    ("bytes=100-1099", 100, 1099),            # a middle slice
    ("bytes=-500", -500, -1),                 # suffix range
    ("bytes=1000-", 1000, -1),                # open-ended
    ("bytes=0-99999999", 0, -1),              # end past the size: clipped
    ("bytes=-99999999", 0, -1),               # suffix longer than the blob: all of it
])
def test_single_ranges_are_206_with_the_exact_bytes(media, spec, first, last):
    url, sha, full = video(media)
    size = len(full)
    start, end = first % size, last % size
    status, headers, body = http(url, {"Range": spec})
    assert status == 206
    assert headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    assert int(headers["Content-Length"]) == end - start + 1
    assert body == full[start:end + 1]
    assert headers["Content-Type"] == "video/mp4"
    assert headers["ETag"] == f'"{sha}"'
    assert headers["Cache-Control"] == IMMUTABLE


@pytest.mark.parametrize("spec", ["bytes=99999999-", "bytes=SIZE-", "bytes=-0"])
def test_unsatisfiable_ranges_are_416_with_the_size(media, spec):
    url, _, full = video(media)
    spec = spec.replace("SIZE", str(len(full)))
    status, headers, body = http(url, {"Range": spec})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(full)}"


@pytest.mark.parametrize("spec", [
    "bytes=0-1,5-6",          # several ranges: we choose to answer the whole blob
    "bytes=0-0, -1",
    "items=0-5",              # another unit
    "bytes=5-1",              # last before first: invalid, ignored
    "bytes=abc",              # does not parse
])
def test_multi_and_invalid_ranges_get_the_whole_blob(media, spec):
    url, _, full = video(media)
    status, headers, body = http(url, {"Range": spec})
    assert status == 200
    assert body == full and int(headers["Content-Length"]) == len(full)
    assert "Content-Range" not in headers


def test_whole_blob_head_and_content_types(media):
    base, by_kind, blobs = media
    expected = {"video": "video/mp4", "pdf": "application/pdf", "html5": "application/zip",
                "exercise": "application/vnd.ketang.exercise+json"}
    for kind, mtype in expected.items():
        r = by_kind[kind]
        url = f"{base}/blobs/{r['sha256']}"
        status, headers, body = http(url)
        assert status == 200 and body == blobs[r["sha256"]]
        assert headers["Content-Type"].split(";")[0] == mtype
        assert headers["Accept-Ranges"] == "bytes"
        status, hheaders, hbody = http(url, method="HEAD")
        assert status == 200 and hbody == b""
        assert int(hheaders["Content-Length"]) == len(blobs[r["sha256"]])
        assert hheaders["ETag"] == headers["ETag"]
        assert hheaders["Content-Type"] == headers["Content-Type"]


def test_head_with_a_range(media):
    url, _, full = video(media)
    status, headers, body = http(url, {"Range": "bytes=10-19"}, method="HEAD")
    assert status == 206 and body == b""
    assert headers["Content-Range"] == f"bytes 10-19/{len(full)}"
    assert headers["Content-Length"] == "10"


def test_if_none_match_is_304_even_with_a_range(media):
    url, sha, _ = video(media)
    for inm in (f'"{sha}"', f'"other", "{sha}"', f'W/"{sha}"', "*"):
        status, headers, body = http(url, {"If-None-Match": inm})
        assert status == 304 and body == b"", inm
        assert headers["ETag"] == f'"{sha}"'
        assert headers["Cache-Control"] == IMMUTABLE
    status, _, body = http(url, {"If-None-Match": f'"{sha}"', "Range": "bytes=0-9"})
    assert status == 304 and body == b""
    status, _, _ = http(url, {"If-None-Match": '"0000"'})
    assert status == 200


def test_if_range_honours_the_range_only_for_our_etag(media):
    url, sha, full = video(media)
    status, _, body = http(url, {"Range": "bytes=0-9", "If-Range": f'"{sha}"'})
    assert status == 206 and body == full[:10]
    for stale in ('"0000"', "Wed, 21 Oct 2015 07:28:00 GMT", f'W/"{sha}"'):
        status, _, body = http(url, {"Range": "bytes=0-9", "If-Range": stale})
        assert status == 200 and body == full, stale


def test_ffprobe_and_ffmpeg_read_the_video_over_http(media):
    url, _, full = video(media)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries",
         "format=format_name,duration,size:stream=codec_type,codec_name", "-of", "json", url],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    doc = json.loads(probe.stdout)
    assert "mp4" in doc["format"]["format_name"]
    assert int(doc["format"]["size"]) == len(full)
    assert float(doc["format"]["duration"]) > 1
    assert any(s["codec_name"] == "h264" for s in doc["streams"] if s["codec_type"] == "video")
    # Seek into the middle (a range request), then decode to the end.
    decode = subprocess.run(["ffmpeg", "-v", "error", "-ss", "1", "-i", url, "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
