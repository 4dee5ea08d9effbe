"""``ketang sync``: fetch a release's missing blobs with libtorrent."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .cli import settings_from


def _peer(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


@click.group()
def sync() -> None:
    """Fetch releases over BitTorrent (peers and web seeds)."""


@sync.command("fetch")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder to fetch into (default: device.data_dir).")
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT",
              help="A peer that has the release (repeatable).")
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="libtorrent listen interfaces.")
@click.option("--resume-interval", type=float, default=30.0, show_default=True,
              help="Seconds between saves of resume data.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Give up (keeping resume data) after this many seconds.")
@click.pass_context
def fetch(ctx: click.Context, path: Path, data_dir: Path | None, peers: tuple[str, ...],
          listen: str, resume_interval: float, timeout: float) -> None:
    """Fetch the newest release in PATH (a KETANG/ folder with manifest, .sig and
    release.torrent; blobs optional) from peers and web seeds, then activate it."""
    from content_cache.bundle import bundle_root, find_releases
    from content_cache.errors import KetangError
    from content_cache.importer import verify_release
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library
    from content_cache.torrent import TORRENT_NAME
    from content_cache.transfer import ReleaseTransfer, make_session

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    root = bundle_root(path)
    found = find_releases(root)
    if not found:
        raise KetangError(f"{root} holds no release; nothing to fetch.")
    newest = found[-1]
    manifest, data, sig, kid = verify_release(newest, load_trusted_keys(s.trust.keys_dir))
    torrent_path = newest.manifest_path.with_name(TORRENT_NAME)
    if not torrent_path.is_file():
        raise KetangError(f"{torrent_path} is missing: publish the release again with a "
                          "current `ketang publish`.")
    library = Library(s.device.data_dir)
    transfer = ReleaseTransfer(make_session(listen), library, manifest, data, sig,
                               torrent_path.read_bytes(), [_peer(p) for p in peers],
                               resume_interval=resume_interval)
    st = transfer.status
    click.echo(f"{manifest.channel} v{manifest.version} (signed by {kid}): need "
               f"{len(st.needed)} blobs, {st.needed_bytes} bytes")

    def stop(signum, frame):  # SIGTERM: save resume data, then leave
        transfer.close()
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)

    def show(status) -> None:
        click.echo(f"progress {len(status.fetched)}/{len(status.needed)} blobs, "
                   f"{status.payload_downloaded} bytes downloaded")

    try:
        status = transfer.run(timeout=timeout, progress=show)
    finally:
        transfer.close()
    click.echo(f"Activated {manifest.channel} v{manifest.version}: fetched "
               f"{len(status.fetched)} blobs; downloaded {status.payload_downloaded} bytes")


COMMANDS = [sync]
