"""``ketang serve`` and ``ketang demo``."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.config import Settings

from . import settings_from


@click.command()
@click.option("--host", help="Address to listen on (default: server.host).")
@click.option("--port", type=int,
              help="Port to listen on; 0 picks a free one (default: server.port).")
@click.option("--apps-port", type=int,
              help="Port of the lesson apps' origin; 0 picks a free one "
                   "(default: server.apps_port).")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder holding blobs and releases (default: device.data_dir).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, apps_port: int | None,
          data_dir: Path | None) -> None:
    """Serve the active releases over HTTP (waitress)."""
    s = settings_from(ctx).with_overrides("server", host=host, port=port, apps_port=apps_port)
    s = s.with_overrides("device", data_dir=data_dir)
    _run(s)


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path(".demo"), show_default=True, help="Where the demo keeps its data.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option("--apps-port", type=int, default=8081, show_default=True,
              help="Port of the lesson apps' origin.")
@click.option("--no-serve", is_flag=True, help="Set the demo up, but do not start the server.")
@click.pass_context
def demo(ctx: click.Context, data_dir: Path, host: str, port: int, apps_port: int,
         no_serve: bool) -> None:
    """Serve the bundled sample lessons (signed with the demo key)."""
    from .demo import setup_demo

    shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
    s = setup_demo(settings_from(ctx), data_dir.resolve(), echo=click.echo,
                   admin_url=f"http://{shown}:{port}/admin")
    if no_serve:
        return
    s = s.with_overrides("server", host=host, port=port, apps_port=apps_port)
    _run(s)


def _run(s: Settings) -> None:
    """Start the device (appliance/device.py) and serve until stopped."""
    import faulthandler
    import logging
    import os
    import signal

    from appliance.device import Device

    # One line per event on stderr (the journal on a device, which adds the time): what
    # the services decided (a sync's web seeds held back, its share of the mirror, a hub
    # elected) is INFO.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=logging.INFO, format=stamp + "%(levelname)s %(name)s: %(message)s")
    # A crash in a native library (libtorrent) prints the Python stacks that led to it;
    # `kill -USR1 <pid>` prints them for a stuck service.
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    Device(s).run()


COMMANDS = [serve, demo]
