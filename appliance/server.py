"""Running the app under waitress."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from waitress.server import create_server


def serve(app: Flask, host: str, port: int, threads: int,
          announce: Callable[[str], None] = print) -> None:
    """Serve ``app`` until interrupted. ``port`` 0 picks a free port.

    Announces ``Serving on http://HOST:PORT`` once listening (tests read this line).
    """
    server = create_server(app, host=host, port=port, threads=threads,
                           ident="ketang", clear_untrusted_proxy_headers=True)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    announce(f"Serving on http://{shown}:{server.effective_port}")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
