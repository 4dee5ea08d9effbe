"""Drive commands: ``ketang drives watch|insert|status`` and ``ketang export``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from appliance.config import Settings
from appliance.device import register_outbox_providers

from . import settings_from
from .progress import ByteBar

if TYPE_CHECKING:
    from provisioning.runtime import DriveSetup


@click.group()
def drives() -> None:
    """USB drives: import lessons from them, write reports onto them."""


_PROVISION_ROOT = click.option(
    "--provision-root", type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Apply a drive's KETANG/setup/ketang-setup.toml to the device whose root this is "
         "(/ on the device; docs/provisioning.md). Without it setup files are ignored, so "
         "a laptop is never provisioned by mistake.")


def _setup_for(root: Path | None, settings: Settings) -> DriveSetup | None:
    if root is None:
        return None
    from provisioning.runtime import drive_setup

    return drive_setup(root, settings)


@drives.command("watch")
@_PROVISION_ROOT
@click.pass_context
def watch(ctx: click.Context, provision_root: Path | None) -> None:
    """Watch udev for drives and handle each one as it is plugged in (runs until stopped)."""
    from appliance.drives.watcher import DriveWatcher

    s = settings_from(ctx)
    if not Path("/run/udev/control").exists():
        click.echo("No udev runs here; use `ketang drives insert DEVICE` by hand.", err=True)
    register_outbox_providers(s)
    observer = DriveWatcher(s, setup=_setup_for(provision_root, s)).start()
    click.echo(f"Watching for drives; mounting under {s.drives.mount_root}. Ctrl-C stops.")
    try:
        while observer.is_alive():
            time.sleep(1)
    except KeyboardInterrupt:
        observer.stop()


@drives.command("insert")
@click.argument("device", type=click.Path(exists=True, dir_okay=False))
@_PROVISION_ROOT
@click.pass_context
def insert(ctx: click.Context, device: str, provision_root: Path | None) -> None:
    """Do by hand what the watcher does when DEVICE (e.g. /dev/sdb1) is plugged in."""
    from appliance.drives.status import message_for
    from appliance.drives.watcher import DriveWatcher

    s = settings_from(ctx)
    with ByteBar("导入 Importing") as bar:
        register_outbox_providers(s)
        outcome = DriveWatcher(s, on_progress=bar,
                               setup=_setup_for(provision_root, s)).insert(device)
    for r in outcome.results:
        click.echo(f"{r.channel} v{r.version}: {r.status}, copied {r.bytes_copied / 1e6:.1f} MB")
    for p in outcome.outbox:
        click.echo(f"Report written: {p.name}")
    if outcome.state == "error":
        click.secho(f"错误 Error: {outcome.message}", fg="red", err=True)
        sys.exit(1)
    click.echo(outcome.message or message_for("done"))


@drives.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Print each drive's state as the dashboard shows it."""
    from appliance.drives.status import DriveStatus, describe

    for name, entry in DriveStatus(settings_from(ctx).drives.status_file).read().items():
        click.echo(f"{name}: {describe(entry)}")
        if entry.get("imported"):
            click.echo("  " + json.dumps(entry["imported"], ensure_ascii=False))


@click.command("export")
@click.option("--to", "to", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder (e.g. a mounted drive's root) to write the KETANG/ bundle into.")
@click.option("--channel", help="Export only this channel (default: every active one).")
@click.option("--for-manifest", "for_manifest",
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Another school's manifest: leave out the blobs it already has.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder to export from (default: device.data_dir).")
@click.pass_context
def export(ctx: click.Context, to: Path, channel: str | None, for_manifest: Path | None,
           data_dir: Path | None) -> None:
    """Write the active release(s) as a bundle for another school (a sneakernet relay)."""
    from content_cache.export import export_bundle
    from content_cache.library import Library

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    with ByteBar("导出 Exporting") as bar:
        r = export_bundle(Library(s.device.data_dir), to, channel, for_manifest, progress=bar)
    if not r.space_checked:
        click.echo(f"Note: {to} does not report its free space, so it was not checked first.")
    names = ", ".join(f"{ch} v{v}" for ch, v in r.releases)
    click.echo(f"Exported {names}: wrote {r.blobs_written} files, "
               f"{r.bytes_written / 1e6:.1f} MB; {r.blobs_skipped} left out or already there.")


COMMANDS = [drives, export]
