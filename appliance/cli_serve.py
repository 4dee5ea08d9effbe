"""``ketang serve`` and ``ketang demo``."""

from __future__ import annotations

from pathlib import Path

import click

from .cli import settings_from


@click.command()
@click.option("--host", help="Address to listen on (default: server.host).")
@click.option("--port", type=int,
              help="Port to listen on; 0 picks a free one (default: server.port).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder holding blobs and releases (default: device.data_dir).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the active releases over HTTP (waitress)."""
    from .app import create_app
    from .server import serve as run

    s = settings_from(ctx).with_overrides("server", host=host, port=port)
    s = s.with_overrides("device", data_dir=data_dir)
    run(create_app(s), s.server.host, s.server.port, s.server.threads,
        connection_limit=s.server.connection_limit, channel_timeout=s.server.channel_timeout)


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path(".demo"), show_default=True, help="Where the demo keeps its data.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option("--no-serve", is_flag=True, help="Set the demo up, but do not start the server.")
@click.pass_context
def demo(ctx: click.Context, data_dir: Path, host: str, port: int, no_serve: bool) -> None:
    """Serve the bundled sample lessons (signed with the demo key)."""
    from .app import create_app
    from .demo import setup_demo
    from .server import serve as run

    s = setup_demo(settings_from(ctx), data_dir.resolve(), echo=click.echo)
    if no_serve:
        return
    s = s.with_overrides("server", host=host, port=port)
    run(create_app(s), s.server.host, s.server.port, s.server.threads,
        connection_limit=s.server.connection_limit, channel_timeout=s.server.channel_timeout)


COMMANDS = [serve, demo]
