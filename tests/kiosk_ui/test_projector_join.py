"""The projector's QR code encodes an address the server listens on (no browser): the
configured name, the listening address, a LAN address when it listens on all of them; on
loopback only, the projector says tablets cannot join and how to change it."""

from __future__ import annotations

import re

import pytest

from .test_projector import CH, LESSON, lan_ipv4, make_client


def join_of(sample_device, config: str, base_url: str = "http://127.0.0.1:8080"):
    c, _ = make_client(sample_device, config)
    html = c.get(f"/projector/lesson/{CH}/{LESSON}", base_url=base_url,
                 headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    url = re.search(r'data-join-url="([^"]+)"', html).group(1)
    joinable = re.search(r'data-joinable="(\w+)"', html).group(1) == "true"
    return url.replace("&amp;", "&"), joinable, html


def test_listening_on_loopback_only_says_tablets_cannot_join(sample_device):
    url, joinable, html = join_of(sample_device, '[server]\nhost = "127.0.0.1"')
    assert url == f"http://127.0.0.1:8080/lessons/{CH}/{LESSON}?follow=1"
    assert not joinable
    assert "平板无法加入" in html and "make demo HOST=0.0.0.0" in html and "127.0.0.1" in html
    assert "平板扫码加入" not in html


def test_a_configured_name_cannot_help_while_listening_on_loopback(sample_device):
    url, joinable, _ = join_of(sample_device, '[server]\nhost = "127.0.0.1"\n'
                                              '[projector]\njoin_url = "http://ketang.lan"')
    assert url.startswith("http://127.0.0.1:8080/") and not joinable


def test_the_configured_name_when_listening_on_every_address(sample_device):
    url, joinable, html = join_of(sample_device, '[server]\nhost = "0.0.0.0"\n'
                                                 '[projector]\njoin_url = "http://ketang.lan/"')
    assert url == f"http://ketang.lan/lessons/{CH}/{LESSON}?follow=1" and joinable
    assert "平板扫码加入" in html and "平板无法加入" not in html


@pytest.mark.parametrize("host, base", [("10.9.8.7", "http://10.9.8.7:8080"),
                                        ("fd00::5", "http://[fd00::5]:8080")])
def test_a_single_listening_address_is_the_one_encoded(sample_device, host, base):
    url, joinable, _ = join_of(sample_device, f'[server]\nhost = "{host}"')
    assert url == f"{base}/lessons/{CH}/{LESSON}?follow=1" and joinable


def test_every_address_without_a_name_encodes_the_lan_address(sample_device):
    url, joinable, _ = join_of(sample_device, '[server]\nhost = "::"')
    ip = lan_ipv4()
    assert url.startswith(f"http://{ip}:8080/" if ip else "http://127.0.0.1:8080/")
    assert joinable == bool(ip)
