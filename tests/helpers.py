"""Shared test helpers: small source trees, a real `ketang serve` subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from appliance.cli.demo import DEMO_KEY, DEMO_PUB, SAMPLE_PACK  # noqa: F401  (re-exported)

KETANG = [sys.executable, "-m", "appliance"]
T = TypeVar("T")


def make_source(root: Path, lessons: int = 2, seed: str = "a") -> Path:
    """A tiny valid source tree: one stage … one unit with ``lessons`` lessons."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    lesson_nodes = []
    for i in range(lessons):
        video = media / f"l{i}.mp4"
        video.write_bytes(f"video {seed} {i} ".encode() * 1000)
        pdf = media / f"l{i}.pdf"
        pdf.write_bytes(b"%PDF-1.4 " + f"{seed}{i}".encode())
        lesson_nodes.append({
            "id": f"l{i}", "kind": "lesson",
            "title": {"zh": f"第{i + 1}课 分数的加法", "en": f"Lesson {i + 1}: adding fractions"},
            "description": {"zh": "认识分数", "en": "Fractions"},
            "resources": [
                {"id": f"l{i}-video", "kind": "video", "title": {"zh": "视频"},
                 "file": f"media/l{i}.mp4", "duration": 6.0},
                {"id": f"l{i}-pdf", "kind": "pdf", "title": {"zh": "学习任务单"},
                 "file": f"media/l{i}.pdf"},
            ],
        })

    def node(nid: str, kind: str, zh: str, children: list) -> dict:
        return {"id": nid, "kind": kind, "title": {"zh": zh, "en": nid}, "children": children}

    tree = node("primary", "stage", "小学", [node("g3", "grade", "三年级", [
        node("g3-math", "subject", "数学", [node("g3-math-pep", "edition", "人教版", [
            node("g3-math-pep-v1", "volume", "三年级上册", [
                node("g3-math-pep-v1-u8", "unit", "第八单元 分数的初步认识", lesson_nodes)])])])])])
    doc = {"format": "ketang-source/1", "title": {"zh": "测试", "en": "Test"}, "nodes": [tree]}
    (root / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to prove that nothing changed)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def write_config(path: Path, data_dir: Path, keys_dir: Path, zeroconf: str = "") -> Path:
    """A TOML config naming a data folder and a trusted keys folder.

    Zeroconf is off unless ``zeroconf`` gives the body of a [zeroconf] section (tests
    advertise on 127.0.0.1 only, never on the machine's other interfaces).
    """
    path.write_text(
        f'[device]\ndata_dir = "{data_dir}"\n\n[trust]\nkeys_dir = "{keys_dir}"\n\n'
        f'[zeroconf]\n{zeroconf or "enabled = false"}\n',
        encoding="utf-8",
    )
    return path


def wait_for(cond: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``cond`` every 0.2 s until it returns something true; return that, or fail
    after ``timeout`` seconds saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


@contextmanager
def running_server(config: Path, timeout: float = 20.0) -> Iterator[str]:
    """Start `ketang serve` on a free loopback port; yield its base URL."""
    proc = subprocess.Popen(
        [*KETANG, "--config", str(config), "serve", "--host", "127.0.0.1", "--port", "0",
         "--apps-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + timeout
        url = None
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving on "):
                url = line.split()[-1].replace("localhost", "127.0.0.1")
                break
        assert url, "ketang serve did not start:\n" + "".join(lines)
        # Keep reading what the server prints: a full pipe would block its threads
        # mid-request, and a test would see a slow server that is not.
        drain = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        drain.start()
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM,
                 timeout: float = 10.0) -> None:
    """Send ``sig`` (SIGTERM: a clean stop) and wait; SIGKILL after ``timeout`` seconds."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def http(url: str, headers: dict[str, str] | None = None, method: str = "GET",
         timeout: float = 10.0) -> tuple[int, Any, bytes]:
    """One HTTP request with the standard library (no redirects followed).

    Returns (status, headers, body); HTTP errors are answers, not exceptions.
    """
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def http_json(url: str, **kw: Any) -> tuple[int, Any]:
    """GET ``url`` and parse its JSON body; returns (status, document)."""
    status, headers, body = http(url, **kw)
    assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
    return status, json.loads(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D102
        return None


def sample_data(tmp: Path, sample_bundle: Path) -> tuple[Path, Path]:
    """A data folder ``tmp``/data with the sample release imported and active, trusting
    the demo key from ``tmp``/trusted-keys; returns (data folder, keys folder)."""
    import shutil

    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library

    keys = tmp / "trusted-keys"
    keys.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
    data = tmp / "data"
    import_bundle(sample_bundle, Library(data), load_trusted_keys(keys))
    return data, keys


@contextmanager
def served_sample(tmp_path: Path, sample_bundle: Path, extra_config: str = "") -> Iterator[
        tuple[str, Path]]:
    """Import the sample bundle into a fresh data folder and serve it; yield (url, data_dir)."""
    data, keys = sample_data(tmp_path, sample_bundle)
    config = write_config(tmp_path / "ketang.toml", data, keys)
    if extra_config:
        with open(config, "a", encoding="utf-8") as f:
            f.write("\n" + extra_config)
    with running_server(config) as url:
        yield url, data


def resign_release(bundle: Path, channel: str, version: int, key: Path,
                   mutate: Any) -> None:
    """Change a published release's manifest with ``mutate(doc)`` and sign it again with
    ``key``: a release its publisher got wrong, yet trusted (tests of what the device
    does with a trusted but bad manifest)."""
    from content_cache.keys import load_private_key, sign

    rdir = bundle / "KETANG" / "releases" / channel / str(version)
    doc = json.loads((rdir / "manifest.json").read_bytes())
    mutate(doc)
    data = json.dumps(doc, ensure_ascii=False).encode()
    (rdir / "manifest.json").write_bytes(data)
    (rdir / "manifest.json.sig").write_bytes(sign(load_private_key(key), data))
