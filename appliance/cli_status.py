"""``ketang status``: how the device is doing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import settings_from


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder (default: device.data_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def status(ctx: click.Context, data_dir: Path | None, as_json: bool) -> None:
    """Disk, memory, load, CPU temperature, uptime and active releases.

    Exit status 0 when all is well, 2 when there are warnings.
    """
    from content_cache.library import Library

    from .health import format_report, health_report

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    report = health_report(Library(s.device.data_dir))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(format_report(report))
    ctx.exit(0 if report["status"] == "ok" else 2)


COMMANDS = [status]
