"""``ketang recommend`` (co-usage tables) and ``ketang report`` (the district's usage report)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import settings_from

if TYPE_CHECKING:
    from appliance.usage.sources import Loaded

_SOURCE = click.argument("source", type=click.Path(path_type=Path, exists=True))
_KEYS = click.option("--keys", "keys_dir", type=click.Path(path_type=Path, file_okay=False),
                     help="Folder of device public keys, for drive outboxes "
                          "(default: usage.device_keys_dir).")


def _load(ctx: click.Context, source: Path, keys_dir: Path | None) -> Loaded:
    """Read SOURCE's statements, naming each refused file."""
    from appliance.usage.sources import load

    loaded = load(source, keys_dir or settings_from(ctx).usage.device_keys_dir)
    for path, why in loaded.refused:
        click.secho(f"拒绝 Refused {path}: {why}", fg="red", err=True)
    return loaded


def _end(loaded: Loaded, left_out: str) -> None:
    """Exit status 1 when a file was refused."""
    if loaded.refused:
        click.secho(f"错误 Error: {len(loaded.refused)} files refused (see above); their "
                    f"statements {left_out}.", fg="red", err=True)
        sys.exit(1)


@click.group()
def recommend() -> None:
    """Co-usage tables for "others went on to" (see docs/usage.md)."""


@recommend.command("build")
@_SOURCE
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The ketang-related/1 file to write (give it to `ketang publish --related`).")
@_KEYS
@click.pass_context
def build_cmd(ctx: click.Context, source: Path, out: Path, keys_dir: Path | None) -> None:
    """Count co-usage from SOURCE: an LRS export file or a folder of drive outboxes."""
    from appliance.usage.cousage import from_statements
    from content_cache.related import write_file

    loaded = _load(ctx, source, keys_dir)
    table = from_statements(loaded.statements).table()
    write_file(out, table)
    click.echo(f"共用表 Co-usage of {len(table)} lessons from {len(loaded.statements)} "
               f"statements in {len(loaded.files)} files: {out}")
    _end(loaded, "were not counted")


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


@click.command("report")
@_SOURCE
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder to write index.html and one page per school into.")
@_KEYS
@click.option("--late-days", type=click.IntRange(min=1), default=14, show_default=True,
              help="A school whose newest usage is this many days old is shown as late.")
@click.pass_context
def report(ctx: click.Context, source: Path, out: Path, keys_dir: Path | None,
           late_days: int) -> None:
    """District usage report (HTML) from an LRS export file or a folder of drive outboxes."""
    from appliance.usage.report import write_report

    loaded = _load(ctx, source, keys_dir)
    schools = write_report(loaded.statements, out, late_days, source=str(source))
    late = [x for x in schools if x.days is None or x.days >= late_days]
    click.echo(f"报告 Report of {len(schools)} schools ({len(late)} late) from "
               f"{len(loaded.statements)} statements: {out / 'index.html'}")
    _end(loaded, "are not in the report")


COMMANDS = [recommend, report]
