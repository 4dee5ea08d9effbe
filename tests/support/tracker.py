"""A one-peer BitTorrent HTTP tracker on 127.0.0.1, so a stock client finds a seeding session.

Every announce is answered with the one peer it was made for (compact form, BEP 23).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import libtorrent as lt


@contextmanager
def tracker(peer: tuple[str, int]) -> Iterator[tuple[str, list[str]]]:
    """Yield (announce URL, list of announce paths seen)."""
    announces: list[str] = []
    compact = socket.inet_aton(peer[0]) + struct.pack(">H", peer[1])
    body = lt.bencode({"interval": 30, "min interval": 5, "peers": compact})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            announces.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/announce", announces
    finally:
        server.shutdown()
        server.server_close()
