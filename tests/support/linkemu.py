"""A link emulator: a small TCP proxy on 127.0.0.1 that plays a bad satellite link.

It caps bandwidth (one shared budget per direction, like a real link), adds one-way
latency, drops every connection on a schedule (with an optional outage during which
new connections are cut at once), and counts the bytes it carried each way.

    with LinkEmulator(("127.0.0.1", 8000), rate=500_000, latency=0.3,
                      drop_every=2.0, max_drops=10) as link:
        url = f"http://127.0.0.1:{link.port}/"
        ...
        link.bytes_down, link.drops
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 16 * 1024


@dataclass
class _Direction:
    """One direction of the link: its rate budget and byte counter."""

    rate: float | None
    next_free: float = 0.0
    carried: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def schedule(self, n: int, latency: float) -> float:
        """When ``n`` bytes that arrive now leave the far end."""
        now = time.monotonic()
        with self.lock:
            if self.rate:
                start = max(now, self.next_free)
                self.next_free = start + n / self.rate
                return self.next_free + latency
        return now + latency


class LinkEmulator:
    """TCP proxy from a free 127.0.0.1 port to ``target`` with rate, latency and drops."""

    def __init__(self, target: tuple[str, int], rate: float | None = None,
                 latency: float = 0.0, drop_every: float | None = None,
                 outage: float = 0.0, max_drops: int | None = None,
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        if target[0] not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the link emulator only forwards to loopback")
        self.target = target
        self.latency = latency
        self.drop_every = drop_every
        self.outage = outage
        self.max_drops = max_drops
        self.up = _Direction(rate)      # client → target
        self.down = _Direction(rate)    # target → client
        self.drops = 0
        self.cuts = 0  # drops that cut at least one live connection
        self.connections = 0
        self._down_until = 0.0
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # ``listen``: 127.0.0.1 unless a test runs it inside a network namespace it made.
        self._listener = socket.create_server(listen)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def bytes_up(self) -> int:
        return self.up.carried

    @property
    def bytes_down(self) -> int:
        return self.down.carried

    # -- life ------------------------------------------------------------------

    def start(self) -> LinkEmulator:
        for target in (self._accept_loop, self._drop_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._cut_all()

    def __enter__(self) -> LinkEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------

    def _cut_all(self) -> int:
        with self._lock:
            socks, self._socks = self._socks, set()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        return len(socks)

    def _drop_loop(self) -> None:
        if not self.drop_every:
            return
        while not self._stop.wait(self.drop_every):
            if self.max_drops is not None and self.drops >= self.max_drops:
                return
            self.drops += 1
            self._down_until = time.monotonic() + self.outage
            if self._cut_all():
                self.cuts += 1

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                client.close()  # the link is down
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.connections += 1
            with self._lock:
                self._socks.update((client, server))
            for src, dst, d in ((client, server, self.up), (server, client, self.down)):
                threading.Thread(target=self._pump, args=(src, dst, d), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, d: _Direction) -> None:
        """Read from ``src``, hold each chunk for its rate slot and latency, then send."""
        queue: list[tuple[float, int, bytes]] = []
        cond = threading.Condition()
        closed = threading.Event()
        seq = 0

        def sender() -> None:
            while True:
                with cond:
                    while not queue and not closed.is_set():
                        cond.wait()
                    if not queue:
                        break
                    at, _, data = queue[0]
                    delay = at - time.monotonic()
                    if delay > 0:
                        cond.wait(delay)
                        continue
                    heapq.heappop(queue)
                try:
                    dst.sendall(data)
                    d.carried += len(data)
                except OSError:
                    break
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            while True:
                # A finite router buffer: read no further ahead of the rate than a few
                # chunks, so the sender feels backpressure, and a drop throws away only
                # what was in flight instead of leaving seconds of bandwidth reserved.
                if d.rate:
                    while (ahead := d.next_free - time.monotonic()) > 4 * CHUNK / d.rate:
                        time.sleep(min(ahead, 0.05))
                chunk = src.recv(CHUNK)
                if not chunk:
                    break
                at = d.schedule(len(chunk), self.latency)
                with cond:
                    heapq.heappush(queue, (at, seq, chunk))
                    seq += 1
                    cond.notify()
        except OSError:
            pass
        with cond:
            closed.set()
            cond.notify()
