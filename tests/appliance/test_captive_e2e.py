"""The captive portal on a real `ketang serve`: each OS's connectivity probe, and foreign Hosts,
are redirected to the lesson landing page; this device's own names are served."""

from __future__ import annotations

import subprocess
import urllib.parse

import pytest

from ..helpers import KETANG, http, served_sample, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portal(tmp_path_factory, sample_bundle):
    tmp = tmp_path_factory.mktemp("captive")
    with served_sample(tmp, sample_bundle) as (url, _):
        yield url


def landing(base: str) -> str:
    return f"http://ketang.lan:{urllib.parse.urlsplit(base).port}/"


@pytest.mark.parametrize("os_name, host, path, success_answer", [
    ("Android", "connectivitycheck.gstatic.com", "/generate_204", b""),
    ("Android", "www.google.com", "/gen_204", b""),
    ("Android (older)", "clients3.google.com", "/generate_204", b""),
    ("iOS/macOS", "captive.apple.com", "/hotspot-detect.html", b"Success"),
    ("iOS (older)", "www.apple.com", "/library/test/success.html", b"Success"),
    ("Windows 10/11", "www.msftconnecttest.com", "/connecttest.txt", b"Microsoft Connect Test"),
    ("Windows (older)", "www.msftncsi.com", "/ncsi.txt", b"Microsoft NCSI"),
    ("Windows redirect", "www.msftconnecttest.com", "/redirect", b""),
    ("Firefox", "detectportal.firefox.com", "/canonical.html", b"success"),
    ("Firefox", "detectportal.firefox.com", "/success.txt", b"success"),
])
def test_each_os_probe_is_sent_to_the_landing_page(portal, os_name, host, path, success_answer):
    for method in ("GET", "HEAD"):
        status, headers, body = http(portal + path, {"Host": host}, method=method)
        assert status == 302, (os_name, method)
        assert headers["Location"] == landing(portal)
        assert headers["Cache-Control"] == "no-store"
        # Not the "internet works" answer, so the OS opens its portal window.
        assert success_answer == b"" or success_answer not in body


def test_probe_paths_are_redirected_on_our_own_host_too(portal):
    status, headers, _ = http(portal + "/generate_204")
    assert status == 302 and headers["Location"] == landing(portal)


@pytest.mark.parametrize("host", ["www.baidu.com", "www.baidu.com:8080", "example.org",
                                  "ketang.lan.evil.example"])
def test_any_other_host_is_redirected_to_the_landing_page(portal, host):
    for path in ("/", "/some/page?q=1", "/api/v1/channels", "/blobs/" + "a" * 64):
        status, headers, _ = http(portal + path, {"Host": host})
        assert status == 302, (host, path)
        assert headers["Location"] == landing(portal)   # never built from the Host header


def test_the_landing_page_and_our_names_are_served(portal):
    port = urllib.parse.urlsplit(portal).port
    for host in (f"ketang.lan:{port}", "ketang.lan", f"ketang.local:{port}",
                 f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "10.42.0.1"):
        status, headers, body = http(portal + "/", {"Host": host})
        assert status == 200, host
        assert "一年级".encode() in body   # a grade of the sample release (the browse tree)
    # Following the redirect from a probe lands on the front page.
    status, headers, _ = http(portal + "/hotspot-detect.html", {"Host": "captive.apple.com"})
    target = urllib.parse.urlsplit(headers["Location"])
    status, _, body = http(portal + target.path, {"Host": target.netloc})
    assert status == 200 and "一年级".encode() in body


def test_captive_portal_can_be_turned_off(tmp_path, sample_bundle):
    with served_sample(tmp_path, sample_bundle, "[captive]\nenabled = false\n") as (base, _):
        assert http(base + "/generate_204", {"Host": "connectivitycheck.gstatic.com"})[0] == 404
        assert http(base + "/", {"Host": "www.baidu.com"})[0] == 200


def test_bad_host_names_setting_is_refused(tmp_path, demo_keys):
    config = write_config(tmp_path / "ketang.toml", tmp_path / "data", demo_keys)
    with open(config, "a") as f:
        f.write('\n[captive]\nhost_names = []\n')
    r = subprocess.run([*KETANG, "--config", str(config), "serve", "--host", "127.0.0.1",
                        "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "captive.host_names should be a list of host names" in r.stderr
    assert not (tmp_path / "data").exists()
