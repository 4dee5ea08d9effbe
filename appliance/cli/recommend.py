"""``ketang recommend``: the national co-usage table, and the device's own."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import settings_from


@click.group()
def recommend() -> None:
    """Co-usage tables for "others went on to" (see docs/usage.md)."""


@recommend.command("build")
@click.argument("source", type=click.Path(path_type=Path, exists=True))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The ketang-related/1 file to write (give it to `ketang publish --related`).")
@click.option("--keys", "keys_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder of device public keys, for drive outboxes "
                   "(default: usage.device_keys_dir).")
@click.pass_context
def build_cmd(ctx: click.Context, source: Path, out: Path, keys_dir: Path | None) -> None:
    """Count co-usage from SOURCE: an LRS export file or a folder of drive outboxes."""
    from appliance.usage.cousage import from_statements
    from appliance.usage.sources import load
    from content_cache.related import write_file

    s = settings_from(ctx).usage
    loaded = load(source, keys_dir or s.device_keys_dir)
    for path, why in loaded.refused:
        click.secho(f"拒绝 Refused {path}: {why}", fg="red", err=True)
    table = from_statements(loaded.statements).table()
    write_file(out, table)
    click.echo(f"共用表 Co-usage of {len(table)} lessons from {len(loaded.statements)} "
               f"statements in {len(loaded.files)} files: {out}")
    if loaded.refused:
        click.secho(f"错误 Error: {len(loaded.refused)} files refused (see above); their "
                    "statements were not counted.", fg="red", err=True)
        sys.exit(1)


@recommend.command("refresh")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder holding usage.db (default: device.data_dir).")
@click.pass_context
def refresh_cmd(ctx: click.Context, data_dir: Path | None) -> None:
    """Bring this device's own co-usage table up to date now (the schedule does it too)."""
    from appliance.usage.cousage import refresh, table_path

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    n = refresh(s)
    click.echo(f"读取 Read {n} new usage events into {table_path(s.device.data_dir)}")


COMMANDS = [recommend]
