"""Errors a person meets starting or browsing the server are one line (issue 18)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.config import Settings
from appliance.web.app import create_app


def _held_port() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


@pytest.mark.parametrize("option, label", [("--port", "lesson pages"),
                                           ("--apps-port", "lesson apps")])
def test_a_busy_port_says_which_port_and_what_to_do(tmp_path, option, label):
    held = _held_port()
    port = held.getsockname()[1]
    other = "--apps-port" if option == "--port" else "--port"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "appliance", "serve", "--data-dir", str(tmp_path),
             "--host", "127.0.0.1", option, str(port), other, "0"],
            capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr            # one line, no traceback
    assert f"Port {port}" in lines[0] and label in lines[0] and option in lines[0]
    assert "已被占用" in lines[0]


@pytest.mark.parametrize("lang, words", [("zh", ["找不到页面", "回到首页"]),
                                         ("en", ["Page not found", "Back to the first page"])])
def test_an_unknown_address_gets_the_styled_translated_404_with_a_way_back(tmp_path, lang,
                                                                            words):
    client = create_app(Settings().with_overrides("device", data_dir=Path(tmp_path))).test_client()
    r = client.get("/no/such/page", headers={"Accept-Language": lang})
    assert r.status_code == 404
    html = r.get_data(as_text=True)
    assert '<link rel="stylesheet"' in html and 'href="/"' in html
    for w in words:
        assert w in html, (lang, w)
    r = client.get("/projector/no/such/page")
    assert r.status_code == 404 and "projector" in r.get_data(as_text=True)
    r = client.get("/api/v1/no/such")
    assert r.status_code == 404 and r.is_json
