"""``ketang sync``: fetch a release's missing blobs with libtorrent."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from . import settings_from


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
@click.option("--resume-interval", type=float, default=1.0, show_default=True,
              help="Seconds at most between a verified piece and the save of resume data.")
@click.option("--web-seed", "web_seeds", multiple=True, metavar="URL",
              help="An HTTP mirror holding KETANG/ (a BEP 19 web seed; repeatable), "
                   "besides the torrent's own.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Give up (keeping resume data) after this many seconds.")
@click.pass_context
def fetch(ctx: click.Context, path: Path, data_dir: Path | None, peers: tuple[str, ...],
          listen: str, resume_interval: float, web_seeds: tuple[str, ...],
          timeout: float) -> None:
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

    for url in web_seeds:
        if not url.startswith(("http://", "https://")):
            raise KetangError(f"--web-seed {url!r} must be an http:// or https:// URL.")
    transfer.start()
    for url in web_seeds:
        transfer.live_handle.add_url_seed(url if url.endswith("/") else url + "/")
    try:
        status = transfer.run(timeout=timeout, progress=show)
    finally:
        transfer.close()
    click.echo(f"Activated {manifest.channel} v{manifest.version}: fetched "
               f"{len(status.fetched)} blobs; downloaded {status.payload_downloaded} bytes")


@sync.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def sync_status(ctx: click.Context, as_json: bool) -> None:
    """What the sync service in `ketang serve` is doing: the township's hub; per release,
    bytes needed and done (from the LAN, from the mirror), rates, peers, web seeds; the
    time window, the quota and errors in words."""
    import json

    from appliance.sync.status import format_summary, sync_summary

    summary = sync_summary(settings_from(ctx))
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        click.echo(format_summary(summary))


@sync.command("index")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--web-seed/--no-web-seed", default=None,
              help="Say whether the feed's folder serves the blobs (default: when it holds "
                   "KETANG/blobs).")
def sync_index(path: Path, web_seed: bool | None) -> None:
    """Write KETANG/feed.json in PATH (a published folder) so it can be served as a
    release feed: it names each channel's newest release that has a release.torrent."""
    from appliance.sync.feed import write_feed_index

    out = write_feed_index(path, web_seed)
    click.echo(f"Wrote {out}")


@sync.command("add")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.pass_context
def sync_add(ctx: click.Context, path: Path) -> None:
    """Hand the releases in PATH (a KETANG/ folder with manifest, .sig and release.torrent,
    e.g. on a drive) to the sync service, which fetches the blobs this device lacks."""
    from appliance.sync.feed import hand_to_sync
    from content_cache.library import Library

    s = settings_from(ctx)
    active = {ch: r.version for ch, r in Library(s.device.data_dir).active().items()}
    for line in hand_to_sync(s.device.data_dir, s.trust.keys_dir, path, active):
        click.echo(line)


COMMANDS = [sync]
