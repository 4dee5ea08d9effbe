"""Zeroconf announces and browses only where the server listens (issue 12).

A loopback-only server (``make demo``) must never multicast on the machine's other
networks, nor announce 127.0.0.1 there. Only loopback servers are started here, so the
test itself sends nothing beyond loopback.
"""

from __future__ import annotations

import socket
import time

import pytest

from appliance.discovery import Discovery, advertised_addresses, listening_interfaces
from content_cache.library import Library


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_loopback_server_uses_loopback_only(tmp_path, host):
    assert listening_interfaces([], host) == ["127.0.0.1"] or host == "localhost"
    assert set(listening_interfaces([], host)) <= {"127.0.0.1", "::1"}
    disco = Discovery(name="Ketang test", dev_id="scope", library=Library(tmp_path), port=1,
                      apps_port=None, interfaces=[], host=host)
    try:
        deadline = time.monotonic() + 5
        while not disco.zc.engine.senders and time.monotonic() < deadline:
            time.sleep(0.05)
        assert disco.zc.engine.senders, "zeroconf opened no socket"
        for sender in disco.zc.engine.senders:
            sock = sender.sock
            if sock.family == socket.AF_INET:
                out_if = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
                assert socket.inet_ntoa(out_if) == "127.0.0.1"
            else:
                assert sock.getsockname()[0] in ("::1",)
        assert set(disco.addresses) <= {"127.0.0.1", "::1"}
    finally:
        disco.close()


def test_configured_interfaces_win_and_a_wildcard_server_uses_every_interface():
    assert listening_interfaces(["10.42.0.1"], "127.0.0.1") == ["10.42.0.1"]
    assert listening_interfaces([], "0.0.0.0") == []
    assert advertised_addresses([], "192.0.2.7") == ["192.0.2.7"]
