"""One client cannot stop a real `ketang serve` answering the others (issue 14, item 8).

A flood from one address (127.0.0.2 stands for a laptop on the LAN) of idle connections
and of requests trickling a header line a second: the kiosk (127.0.0.1) and another
tablet (127.0.0.3) are still answered at once, the flooding address holds at most
``server.connections_per_client`` connections, and trickled requests are closed after
``server.request_timeout``. Plus the unit rules of appliance/server_guard.py.
"""

from __future__ import annotations

import select
import socket
import time
import urllib.parse

import pytest

from appliance.server_guard import ClientCounts, is_kiosk

from ..helpers import running_server

PER_CLIENT = 24
REQUEST_TIMEOUT = 2


def test_the_kiosk_is_only_127_0_0_1_and_ipv6_loopback():
    assert is_kiosk("127.0.0.1") and is_kiosk("::1") and is_kiosk("::ffff:127.0.0.1")
    for other in ("127.0.0.2", "192.168.4.20", "::ffff:10.0.0.1", "fe80::1%eth0", "", "x"):
        assert not is_kiosk(other), other


def test_counts_bound_each_address_and_the_total_but_never_the_kiosk():
    counts = ClientCounts(per_client=2, total=3)
    assert counts.admit("10.0.0.1") and counts.admit("10.0.0.1")
    assert not counts.admit("10.0.0.1")                  # its own bound
    assert counts.admit("10.0.0.2")
    assert not counts.admit("10.0.0.3")                  # the total
    assert all(counts.admit("127.0.0.1") for _ in range(100))
    counts.release("10.0.0.1")
    assert counts.admit("10.0.0.3") and counts.open == {"10.0.0.1": 1, "10.0.0.2": 1,
                                                         "10.0.0.3": 1}
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "127.0.0.1"):
        counts.release(host)
    assert counts.open == {} and counts.total == 0


def connect(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(source, 0))


def answered_within(port: int, source: str, path: str = "/api/v1/health",
                    timeout: float = 5.0) -> float:
    """Seconds a GET from ``source`` took to be answered 200 (fails past ``timeout``)."""
    t = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                  .encode())
        head = s.recv(64)
    assert head.startswith(b"HTTP/1.1 200"), head
    return time.monotonic() - t


def closed_or_answered(s: socket.socket, wait: float) -> bytes | None:
    """What the server sent before closing within ``wait`` s (None: still open, silent)."""
    ready, _, _ = select.select([s], [], [], wait)
    if not ready:
        return None
    try:
        return s.recv(4096)
    except OSError:
        return b""


@pytest.fixture
def server(tmp_path, sample_device):
    with open(sample_device, "a", encoding="utf-8") as f:
        f.write(f"\n[server]\nconnections_per_client = {PER_CLIENT}\n"
                f"request_timeout = {REQUEST_TIMEOUT}\n\n[captive]\nenabled = false\n")
    with running_server(sample_device) as url:
        yield urllib.parse.urlsplit(url).port


@pytest.mark.slow
def test_idle_connections_from_one_address_cannot_keep_others_waiting(server):
    port = server
    flood = []
    try:
        for _ in range(300):            # more than waitress's old connection_limit of 200
            flood.append(connect(port, "127.0.0.2"))
        time.sleep(0.3)
        ready, _, _ = select.select(flood, [], [], 0.2)
        held = [s for s in flood if s not in ready]
        refused = [closed_or_answered(s, 0) or b"" for s in ready]
        kiosk = [answered_within(port, "127.0.0.1") for _ in range(10)]
        tablet = [answered_within(port, "127.0.0.3") for _ in range(10)]
        assert len(held) == PER_CLIENT
        assert all(a.startswith(b"HTTP/1.1 503") or a == b"" for a in refused)
        assert any(b"Too many connections from this address" in a for a in refused)
        assert max(kiosk) < 2 and max(tablet) < 2, (kiosk, tablet)
        # Silent connections are closed once the first request is overdue.
        assert all(closed_or_answered(s, REQUEST_TIMEOUT + 3) is not None for s in held)
        # Then the address may connect again.
        assert answered_within(port, "127.0.0.2") < 2
    finally:
        for s in flood:
            s.close()


@pytest.mark.slow
def test_requests_trickling_a_header_a_second_are_closed_after_the_request_timeout(server):
    port = server
    trickle = [connect(port, "127.0.0.2") for _ in range(PER_CLIENT)]
    try:
        start = time.monotonic()
        for s in trickle:
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_at: dict[int, float] = {}
        kiosk = []
        while len(closed_at) < len(trickle) and time.monotonic() - start < 15:
            for i, s in enumerate(trickle):
                if i in closed_at:
                    continue
                try:
                    s.sendall(b"X-Trickle: 1\r\n")      # each line keeps it "active"
                except OSError:
                    closed_at[i] = time.monotonic() - start
                    continue
                if closed_or_answered(s, 0) is not None:
                    closed_at[i] = time.monotonic() - start
            kiosk.append(answered_within(port, "127.0.0.1"))
            time.sleep(0.5)
        assert len(closed_at) == len(trickle), "trickling requests were never closed"
        assert min(closed_at.values()) >= REQUEST_TIMEOUT - 0.5
        assert max(closed_at.values()) < REQUEST_TIMEOUT + 3
        assert max(kiosk) < 2, kiosk
    finally:
        for s in trickle:
            s.close()
