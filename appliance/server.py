"""Running the app under waitress."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

if TYPE_CHECKING:
    from flask import Flask


def waitress_options(threads: int = 8, connection_limit: int = 200,
                     channel_timeout: int = 60, send_buffer: int = 0) -> dict[str, Any]:
    """Waitress options tuned for media (docs/serving.md explains each).

    Blob bodies go to waitress as ``wsgi.file_wrapper`` and are sent by its I/O
    thread straight from the file, so worker threads only build responses: a few
    threads serve many streaming tablets. ``connection_limit`` allows forty tablets
    with several connections each; ``asyncore_use_poll`` lifts select()'s 1024-fd
    ceiling; ``outbuf_overflow`` keeps rendered pages in memory up to 4 MiB.
    """
    del send_buffer  # not a waitress adjustment: applied per socket by serve()
    return {
        "threads": threads,
        "connection_limit": connection_limit,
        "channel_timeout": channel_timeout,
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
    channel_timeout). Announces ``Serving lesson apps on http://HOST:PORT`` and then
    ``Serving on http://HOST:PORT`` once listening (tests read the latter).
    """
    adjustments = waitress_options(threads=threads, **options)
    shared_map: dict = {}
    server = create_server(app, map=shared_map, host=host, port=port, **adjustments)
    _set_send_buffer(server, options.get("send_buffer", 0))
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    apps_server = None
    if apps_app is not None:
        apps_server = create_server(apps_app, map=shared_map,
                                    _dispatcher=server.task_dispatcher,
                                    host=host, port=apps_port, **adjustments)
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
        if apps_server is not None:
            apps_server.close()
        server.close()


def _set_send_buffer(server: Any, size: int) -> None:
    """Give every accepted connection a ``size``-byte kernel send buffer (0: leave it).

    Waitress reads and sends a file body in chunks of the socket's send-buffer size
    (16 KiB by default on Linux): a bigger buffer means far fewer Python-level loops
    per MiB of video. Waitress has no adjustment for it, but applies
    ``adj.socket_options`` to each accepted socket, so we add SO_SNDBUF there.
    """
    if size > 0:
        server.adj.socket_options = [*server.adj.socket_options,
                                     (socket.SOL_SOCKET, socket.SO_SNDBUF, size)]


def _sigterm(signum: int, frame: Any) -> None:
    """systemd and tests stop the server with SIGTERM: unwind so shutdown code runs."""
    raise SystemExit(0)
