"""Blob bodies sent by sendfile(2) (appliance/server_guard.py) over a real `ketang serve`:
a 20 MB video read slowly (many partial sends) arrives byte for byte, a range from its
middle too, and clients that vanish mid-stream leave the server serving."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import time
import urllib.parse
from pathlib import Path

import pytest

from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, http, served_sample

pytestmark = pytest.mark.slow
CH = "big-video"
SIZE = 20 * 1024 * 1024 + 12345


def big_bundle(tmp: Path) -> tuple[Path, bytes]:
    src = tmp / "src"
    (src / "media").mkdir(parents=True)
    data = random.Random(7).randbytes(SIZE)
    (src / "media" / "v.mp4").write_bytes(data)
    lesson = {"id": "l", "kind": "lesson", "title": {"zh": "课"},
              "resources": [{"id": "l-video", "kind": "video", "file": "media/v.mp4"}]}
    doc = {"format": "ketang-source/1", "title": {"zh": "大"},
           "nodes": [{"id": "s", "kind": "stage", "title": {"zh": "小学"}, "children": [
               {"id": "u", "kind": "unit", "title": {"zh": "单元"}, "children": [lesson]}]}]}
    (src / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    publish(src, CH, 1, DEMO_KEY, tmp / "bundle")
    return tmp / "bundle", data


def slow_get(port: int, path: str, headers: str = "", pause_every: int = 2 << 20) -> bytes:
    """GET ``path`` reading in small pieces with pauses, so the server's socket fills."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
                  "Connection: close\r\n\r\n".encode())
        out = bytearray()
        since_pause = 0
        while chunk := s.recv(32 * 1024):
            out += chunk
            since_pause += len(chunk)
            if since_pause >= pause_every:
                since_pause = 0
                time.sleep(0.2)
    head, _, body = bytes(out).partition(b"\r\n\r\n")
    assert b" 20" in head.split(b"\r\n")[0], head[:100]
    return body


def test_a_big_blob_read_slowly_arrives_whole_and_vanishing_clients_do_no_harm(tmp_path):
    bundle, data = big_bundle(tmp_path)
    with served_sample(tmp_path, bundle) as (base, lib_dir):
        port = urllib.parse.urlsplit(base).port
        sha = Library(lib_dir).catalog(CH).lesson("l")["resources"][0]["sha256"]
        path = f"/blobs/{sha}"
        body = slow_get(port, path)
        assert len(body) == SIZE and hashlib.sha256(body).hexdigest() == sha
        part = slow_get(port, path, "Range: bytes=5000000-15000000\r\n")
        assert part == data[5_000_000:15_000_001]
        # Ten players that read a little and vanish (reset, not closed).
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            s.recv(100_000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        time.sleep(0.5)
        status, headers, _ = http(f"{base}/blobs/{sha}", headers={"Range": "bytes=0-9"})
        assert status == 206 and headers["Content-Range"] == f"bytes 0-9/{SIZE}"
        status, _, _ = http(f"{base}/api/v1/health")
        assert status == 200
