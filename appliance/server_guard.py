"""One client cannot stop the server answering everyone else (docs/serving.md).

Waitress stops accepting connections while ``connection_limit`` are open, and a
connection that trickles a header line every few seconds is never idle, so one laptop
holding a few hundred sockets could keep tablets and the projector's kiosk waiting for
as long as it liked. :class:`GuardedServer` (a waitress ``TcpWSGIServer``) changes three
things, all in waitress's own event-loop thread:

- **Connections per client address** are bounded (``server.connections_per_client``):
  a connection over its address's bound, or over ``server.connection_limit`` in all, is
  answered ``503`` and closed at once, and the listening socket is never paused, so
  every other client keeps being accepted.
- **The kiosk is always served**: connections from ``127.0.0.1`` and ``::1`` (the
  projector's browser on the device itself) count towards no limit.
- **Unfinished requests time out quickly**: a request (its headers and body) must
  arrive whole within ``server.request_timeout`` seconds of its first byte (the first
  request of a connection, of the connection's opening), however slowly it trickles;
  otherwise the connection is closed. Idle keep-alive connections between requests
  still last ``server.channel_timeout``. Both are checked every second.

Slow *readers* are not cut off: a tablet reading a video at its playback rate is the
normal case, and waitress sends the file from its I/O thread without holding a worker.
That I/O thread sends file bodies with sendfile(2) rather than through Python
(:meth:`GuardedChannel._flush_some`), so a school's hundreds of streams leave it free
for pages.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
import time
from typing import Any

from waitress.buffers import ReadOnlyFileBasedBuffer
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

KIOSK_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
SENDFILE_MAX = 4 * 1024 * 1024   # bytes per sendfile call
DISCONNECTED = frozenset({errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN,
                          errno.ECONNABORTED, errno.EPIPE, errno.EBADF})
ACCEPT_BATCH = 64       # connections accepted per turn of the event loop
ACCEPT_PAUSE = 0.2      # seconds without accepting after the process ran out of descriptors
_REFUSAL_BODY = ("连接太多。Too many connections from this address: close some and try "
                 "again.\n").encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 2\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY))


def is_kiosk(host: str) -> bool:
    """Whether a client address is the device's own kiosk browser (127.0.0.1 or ::1)."""
    if host in KIOSK_ADDRESSES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip) in KIOSK_ADDRESSES


class ClientCounts:
    """Open connections per client address, shared by every listening socket of one
    server process."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total_limit = total
        self.open: dict[str, int] = {}
        self.total = 0
        self._lock = threading.Lock()

    def admit(self, host: str) -> bool:
        """Count a new connection from ``host``; False (nothing counted) when it is over
        a limit. The kiosk is always admitted and never counted."""
        if is_kiosk(host):
            return True
        with self._lock:
            n = self.open.get(host, 0)
            if n >= self.per_client or self.total >= self.total_limit:
                return False
            self.open[host] = n + 1
            self.total += 1
            return True

    def release(self, host: str) -> None:
        """A connection :meth:`admit` counted has closed."""
        if is_kiosk(host):
            return
        with self._lock:
            n = self.open.get(host, 0) - 1
            if n <= 0:
                self.open.pop(host, None)
            else:
                self.open[host] = n
            self.total = max(0, self.total - 1)


class GuardedChannel(HTTPChannel):
    """Waitress's HTTP channel, remembering when its unfinished request began."""

    server: GuardedServer

    def __init__(self, server: GuardedServer, sock: socket.socket, addr: Any, adj: Any,
                 map: dict | None = None) -> None:
        self.client_host = str(addr[0]) if isinstance(addr, tuple) and addr else ""
        self._released = False
        super().__init__(server, sock, addr, adj, map=map)
        # The first request must arrive within request_timeout of the connection.
        self.request_began: float | None = self.creation_time

    def received(self, data: bytes) -> bool:
        """Parse ``data``; a request under way keeps the time its first byte came."""
        result = super().received(data)
        if self.request is None:
            self.request_began = None        # complete (or nothing): no deadline running
        elif self.request_began is None:
            self.request_began = time.time()
        return bool(result)

    def overdue(self, now: float, limit: float) -> bool:
        """Whether the request under way has taken longer than ``limit`` seconds to arrive."""
        return (self.request_began is not None and not self.requests
                and now - self.request_began > limit)

    def _flush_some(self, do_close: bool = True) -> bool:
        """Send what is waiting; a file body (``wsgi.file_wrapper``) goes by sendfile(2).

        Waitress reads a file body into Python in socket-buffer-sized pieces, sends what
        the socket takes and reads that much again to skip it: with hundreds of tablets
        streaming, that copying (and the GIL it holds) is what kept pages waiting.
        sendfile moves the bytes inside the kernel; everything else is waitress's own
        code (``super()``).
        """
        head = self.outbufs[0]
        if not isinstance(head, ReadOnlyFileBasedBuffer) or not head.remain:
            return bool(super()._flush_some(do_close))
        try:
            in_fd, pos = head.file.fileno(), head.file.tell()
        except (AttributeError, OSError, ValueError):
            return bool(super()._flush_some(do_close))
        sent = 0
        while head.remain:
            try:
                n = os.sendfile(self.socket.fileno(), in_fd, pos, min(head.remain, SENDFILE_MAX))
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in DISCONNECTED:
                    raise
                if do_close:
                    self.handle_close()     # closes the file too: nothing more to do
                    return sent > 0
                break
            if n == 0:              # the file is shorter than promised: stop waiting for it
                self.will_close = True
                break
            pos += n
            sent += n
            head.remain -= n
            self.total_outbufs_len -= n
        head.file.seek(pos)
        if sent:
            self.last_activity = time.time()
        if not head.remain and self.connected:
            super()._flush_some(do_close)   # done: waitress moves on to what follows
        return sent > 0

    def del_channel(self, map: dict | None = None) -> None:
        """Leave the event loop, and free this connection's place in its address's count."""
        super().del_channel(map)
        if not self._released:
            self._released = True
            self.server.counts.release(self.client_host)


class GuardedServer(TcpWSGIServer):
    """A waitress TCP server with the limits of this module's docstring.

    ``counts`` is shared by the servers of one process (the lesson pages and the apps
    origin); ``request_timeout`` is in seconds.
    """

    next_channel_cleanup: float  # waitress's own timer (an untyped class attribute)

    channel_class = GuardedChannel

    def __init__(self, application: Any, map: dict, *, counts: ClientCounts,
                 request_timeout: float, **kw: Any) -> None:
        self.counts = counts
        self.request_timeout = request_timeout
        self.refused = 0
        self._paused_until = 0.0
        super().__init__(application, map, **kw)

    def readable(self) -> bool:
        """Run the timeouts when due; keep accepting unless descriptors ran out."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return bool(self.accepting) and now >= self._paused_until

    def handle_accept(self) -> None:
        """Accept the waiting connections (up to ACCEPT_BATCH): each is admitted, or
        answered 503 and closed at once. Taking a batch per turn of the event loop
        (waitress takes one) empties the backlog a flood fills before others' turn."""
        for _ in range(ACCEPT_BATCH):
            try:
                pair = self.accept()
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._paused_until = time.time() + ACCEPT_PAUSE
                return
            if pair is None:
                return
            self._admit(*pair)

    def _admit(self, conn: socket.socket, addr: Any) -> None:
        host = str(addr[0])
        if not self.counts.admit(host):
            self.refused += 1
            _refuse(conn)
            return
        try:
            self.set_socket_options(conn)
        except OSError:
            self.counts.release(host)
            conn.close()
            return
        try:
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)
        except OSError:     # the client left already
            self.counts.release(host)
            conn.close()

    def maintenance(self, now: float) -> None:
        """Close connections idle past ``channel_timeout`` (waitress's rule) and those
        whose unfinished request is older than ``request_timeout``."""
        super().maintenance(now)
        for channel in list(self.active_channels.values()):
            if isinstance(channel, GuardedChannel) and channel.overdue(
                    now, self.request_timeout):
                channel.will_close = True


def _refuse(conn: socket.socket) -> None:
    """Say 503 (if the socket takes it at once) and close, without reading anything."""
    try:
        conn.setblocking(False)
        conn.send(REFUSAL)
    except OSError:
        pass
    finally:
        conn.close()
