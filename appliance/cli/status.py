"""``ketang status`` (how the device is doing) and ``ketang peers`` (who is nearby)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import settings_from


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data folder (default: device.data_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def status(ctx: click.Context, data_dir: Path | None, as_json: bool) -> None:
    """Disk, memory, load, CPU temperature, uptime and active releases; on a device that
    is a classroom access point, the Wi-Fi (state, clients, the board's client limit)
    and the last setup file applied.

    Exit status 0 when all is well, 2 when there are warnings.
    """
    from appliance.health import format_report, health_report
    from content_cache.library import Library
    from provisioning.status import ap_status, format_status, is_access_point, last_result

    s = settings_from(ctx).with_overrides("device", data_dir=data_dir)
    report = health_report(Library(s.device.data_dir))
    setup = last_result(s.device.data_dir)
    network = ap_status() if is_access_point(s.device.data_dir) else None
    if as_json:
        click.echo(json.dumps(dict(report, network=network, setup=setup), ensure_ascii=False,
                              indent=2))
    else:
        click.echo(format_report(report))
        if network is not None:
            click.echo(format_status(network))
        if setup is not None:
            click.echo(_format_setup(setup))
    ok = report["status"] == "ok" and (network is None or not network["advice"] or
                                       network["state"] == "ENABLED")
    ctx.exit(0 if ok else 2)


def _format_setup(setup: dict) -> str:
    """The last ``ketang provision --apply``: when, and its problems if any."""
    when = setup.get("finished", "?")
    if setup.get("ok"):
        return f"设置文件 Setup file: applied 已应用 ({when})"
    lines = [f"设置文件 Setup file: NOT applied 未应用 ({when}); nothing was changed:"]
    for p in setup.get("problems") or []:
        where = f"line {p.get('line')}: " if p.get("line") else ""
        lines.append(f"  {p.get('setting', '?')}: {where}{p.get('message', '')}")
    return "\n".join(lines)


@click.command()
@click.option("--timeout", type=float, default=3.0, show_default=True,
              help="Seconds to listen for answers.")
@click.option("--interface", "interfaces", multiple=True,
              help="Address of an interface to browse on (repeatable; default: "
                   "zeroconf.interfaces, else all).")
@click.option("--json", "as_json", is_flag=True, help="Print the devices as JSON.")
@click.pass_context
def peers(ctx: click.Context, timeout: float, interfaces: tuple[str, ...],
          as_json: bool) -> None:
    """Find other Ketang devices on the LAN (zeroconf, _ketang._tcp)."""
    from appliance.discovery import browse

    if not 0 < timeout <= 60:
        raise click.BadParameter("should be more than 0 and at most 60 seconds.",
                                 param_hint="--timeout")
    found = browse(list(interfaces) or settings_from(ctx).zeroconf.interfaces, timeout)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        click.echo("没有找到其他设备。No Ketang device answered.")
    for p in found:
        chans = ", ".join(f"{c} v{v}" for c, v in p["channels"].items()) or "-"
        click.echo(f"{p['name']}  id={p['id']}  http://{(p['addresses'] or ['?'])[0]}:"
                   f"{p['port']}{p['path']}  {chans}")


COMMANDS = [status, peers]
