"""A tiny HTTP server between the device and the LRS that misbehaves on demand.

Modes: ``pass`` (forward), ``slow`` (forward after ``hang_seconds``), ``error`` (answer
500, forward nothing), ``hang`` (answer nothing for ``hang_seconds``), ``lose-ack``
(forward, so the LRS stores the batch, then drop the connection: the device never hears
the acknowledgement). ``lose_after`` lets
that many requests pass before the mode applies.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlakyLrs:
    """Start with :meth:`start`; ``url`` is the xAPI endpoint to give the device."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.lose_after = 0
        self.hang_seconds = 5.0
        self.requests = 0
        self.posts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: D102 - quiet
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.requests += 1
                proxy.posts += 1
                mode = proxy.mode if proxy.requests > proxy.lose_after else "pass"
                if mode == "error":
                    self._answer(500, b'{"detail": "the LRS is having a bad day"}')
                    return
                if mode == "hang":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    return
                if mode == "slow":
                    time.sleep(proxy.hang_seconds)
                status, data = proxy.forward(self, body)
                if mode == "lose-ack":
                    self.close_connection = True
                    return
                self._answer(status, data)

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/xAPI/"

    def forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, bytes]:
        """Send the request on to the real LRS; return its status and body."""
        path = handler.path.split("/xAPI", 1)[-1]
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("authorization", "content-type",
                                    "x-experience-api-version")}
        req = urllib.request.Request(self.upstream + path, data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def start(self) -> FlakyLrs:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
