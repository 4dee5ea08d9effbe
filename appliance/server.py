"""Running the app under waitress."""

from __future__ import annotations

import contextlib
import errno
import resource
import signal
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from waitress.adjustments import Adjustments
from waitress.task import ThreadedTaskDispatcher

from content_cache.errors import KetangError

from .server_guard import ClientCounts, GuardedServer

if TYPE_CHECKING:
    from flask import Flask


def waitress_options(threads: int = 8, connection_limit: int = 1000,
                     channel_timeout: int = 60, send_buffer: int = 0,
                     connections_per_client: int = 24,
                     request_timeout: int = 10) -> dict[str, Any]:
    """Waitress options tuned for media (docs/serving.md explains each).

    Blob bodies go to waitress as ``wsgi.file_wrapper`` and are sent by its I/O
    thread straight from the file, so worker threads only build responses: a few
    threads serve many streaming tablets. ``connection_limit`` allows a school's few
    hundred tablets with several connections each (appliance/server_guard.py bounds
    each address and keeps the kiosk served); ``asyncore_use_poll`` lifts select()'s
    1024-fd ceiling; ``outbuf_overflow`` keeps rendered pages in memory up to 4 MiB;
    ``cleanup_interval`` runs the timeouts every second.
    """
    # not waitress adjustments: applied by serve() and the guarded server
    del send_buffer, connections_per_client, request_timeout
    return {
        "threads": threads,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
        "cleanup_interval": 1,
        "backlog": 1024,
        "asyncore_use_poll": True,
        "outbuf_overflow": 4 * 1024 * 1024,
        "outbuf_high_watermark": 16 * 1024 * 1024,
        "inbuf_overflow": 512 * 1024,
        "max_request_body_size": 1024 * 1024,
        "ident": "ketang",
        "clear_untrusted_proxy_headers": True,
    }


def serve(app: Flask, host: str, port: int, threads: int,
          announce: Callable[[str], None] = print, apps_app: Flask | None = None,
          apps_port: int = 0,
          on_listening: Callable[[int, int | None], Callable[[], None] | None] | None = None,
          **options: Any) -> None:
    """Serve ``app`` until interrupted. ``port`` 0 picks a free port.

    With ``apps_app``, the same process also listens on ``apps_port`` (the lesson
    apps' origin): both sockets share one event loop and one pool of worker threads.
    The main app learns the effective port as ``config["KETANG_APPS_PORT"]``.
    ``on_listening(port, apps_port)`` runs once both sockets listen (zeroconf starts
    there) and may return a function that runs at shutdown, also on SIGTERM.
    ``options`` are more :func:`waitress_options` keywords (connection_limit,
    channel_timeout, connections_per_client, request_timeout, send_buffer). Both
    sockets are :class:`~appliance.server_guard.GuardedServer`: connections are bounded
    per client address, unfinished requests time out, the kiosk is always served.
    Announces ``Serving lesson apps on http://HOST:PORT`` and then ``Serving on
    http://HOST:PORT`` once listening (tests read the latter).
    """
    adjustments = waitress_options(threads=threads, **options)
    counts = ClientCounts(options.get("connections_per_client", 24),
                          adjustments["connection_limit"])
    _raise_open_files(adjustments["connection_limit"])
    shared_map: dict = {}
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(threads)

    listening: list[GuardedServer] = []

    def guarded(application: Flask, listen_port: int) -> GuardedServer:
        """One server per address ``host`` stands for (``localhost``: IPv4 and IPv6);
        returns the first, whose port is announced."""
        adj = Adjustments(host=host, port=listen_port, **adjustments)
        _set_send_buffer(adj, options.get("send_buffer", 0))
        for info in adj.listen:
            listening.append(GuardedServer(
                application, shared_map, counts=counts,
                request_timeout=options.get("request_timeout", 10),
                dispatcher=dispatcher, adj=adj, sockinfo=info))
        return listening[-len(adj.listen)]

    with _bind_errors(host, port, "lesson pages", "--port", "server.port"):
        server = guarded(app, port)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    apps_server = None
    if apps_app is not None:
        try:
            with _bind_errors(host, apps_port, "lesson apps", "--apps-port",
                              "server.apps_port"):
                apps_server = guarded(apps_app, apps_port)
        except KetangError:
            for s in listening:
                s.close()
            raise
        app.config["KETANG_APPS_PORT"] = int(apps_server.effective_port)
        announce(f"Serving lesson apps on http://{shown}:{apps_server.effective_port}")
    closer = None
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        if on_listening is not None:
            closer = on_listening(int(server.effective_port),
                                  int(apps_server.effective_port) if apps_server else None)
        announce(f"Serving on http://{shown}:{server.effective_port}")
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if closer is not None:
            closer()
        for listener in reversed(listening):
            listener.close()


ZH = {"lesson pages": "课程页面", "lesson apps": "互动课件"}


@contextlib.contextmanager
def _bind_errors(host: str, port: int, what: str, option: str, setting: str) -> Iterator[None]:
    """Turn a socket that cannot listen into one line saying which port and what to do."""
    try:
        yield
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise KetangError(
                f"端口 {port} 已被占用（{ZH.get(what, what)}）。Port {port} on {host} ({what}) "
                "is already in use by another program (another `ketang serve` or "
                f"`make demo`?): stop it, or choose another port with {option} "
                f"(setting {setting}).") from None
        if e.errno == errno.EACCES:
            raise KetangError(
                f"无权使用端口 {port}（{ZH.get(what, what)}）。Port {port} on {host} ({what}) "
                f"needs privileges this user lacks: use a port above 1023 with {option}, or run "
                f"Ketang's systemd unit, which may bind port 80.") from None
        if e.errno in (errno.EADDRNOTAVAIL, socket.EAI_NONAME) or isinstance(e, socket.gaierror):
            raise KetangError(
                f"地址 {host} 不在本机上。{host} is not an address of this machine, so the "
                f"{what} cannot listen there: use 0.0.0.0 (every address) or 127.0.0.1 "
                "(this machine only) with --host (setting server.host).") from None
        raise


def _set_send_buffer(adj: Adjustments, size: int) -> None:
    """Give every accepted connection a ``size``-byte kernel send buffer (0: leave it).

    A bigger buffer means fewer wake-ups of the event loop per MiB of video (file
    bodies go by sendfile, up to what the buffer takes). Waitress has no adjustment for
    it, but applies ``adj.socket_options`` to each accepted socket, so we add SO_SNDBUF
    there.
    """
    if size > 0:
        adj.socket_options = [*adj.socket_options, (socket.SOL_SOCKET, socket.SO_SNDBUF, size)]


def _raise_open_files(connection_limit: int) -> None:
    """Let the process hold its connections: each streaming one holds a socket and an
    open blob file, so ask for 4 descriptors a connection (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * connection_limit + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass


def _sigterm(signum: int, frame: Any) -> None:
    """systemd and tests stop the server with SIGTERM: unwind so shutdown code runs."""
    raise SystemExit(0)
