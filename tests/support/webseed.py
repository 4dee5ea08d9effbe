"""A local HTTP web seed (BEP 19) on 127.0.0.1: a static server with Range support.

``corrupt=True`` flips bytes in every response body, to play a broken or hostile mirror.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support (web seeds need it)."""

    corrupt = False
    requests: list[str]
    # Keep-alive, as a real mirror (nginx) does: HTTP/1.0 would close after each range.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(self.path)
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].split(",")[0].partition("-")
            start = int(a) if a else max(0, size - int(b))
            end = min(int(b), size - 1) if a and b else end
            if start > end:
                self.send_error(416)
                return
        with open(path, "rb") as f:  # only the range: blobs may be large (bench/sync.py)
            f.seek(start)
            body = f.read(end - start + 1)
        if self.corrupt:
            body = bytes(x ^ 0x5A for x in body)
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-answer (a dropped link) is normal here, not an error."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def web_seed(root: Path, corrupt: bool = False,
             host: str = "127.0.0.1") -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` on a free port of ``host`` (loopback unless a test's own network
    namespace gives another); yield (base URL, list of request paths)."""
    requests: list[str] = []
    handler = type("Handler", (_RangeHandler,), {"corrupt": corrupt, "requests": requests})
    server = _QuietServer((host, 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()


def serve_forever(root: Path, host: str, port: int) -> None:
    """Serve ``root`` on ``host:port`` until killed (a mirror in a network namespace)."""
    handler = type("Handler", (_RangeHandler,), {"corrupt": False, "requests": []})
    server = _QuietServer((host, port), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":  # python -m tests.support.webseed ROOT HOST PORT
    serve_forever(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
