"""``ketang provision``: check a setup file on a laptop, apply it at first boot."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

import click

from content_cache.errors import KetangError

from .layout import DATA_DIR, Layout

_DIR = click.Path(path_type=Path, file_okay=False)


@click.command()
@click.option("--check", "check_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Validate this setup file and apply nothing (works on any computer).")
@click.option("--change", is_flag=True,
              help="With --check: the file is a later change, so first-boot settings "
                   "(school name, SSID, country) need not be in it.")
@click.option("--apply", "do_apply", is_flag=True,
              help="Apply ketang-setup.toml from --boot (or KETANG/setup/ on a --drive).")
@click.option("--factory-reset", "factory_reset", is_flag=True,
              help="Forget the admin password and trusted keys, so the next setup file may "
                   "set them again (lessons, usage and identity are kept).")
@click.option("--status", "show_status", is_flag=True,
              help="Show the Wi-Fi access point's state, clients and (on a Pi) client limit.")
@click.option("--interface", default="wlan0", show_default=True,
              help="With --status: the access point's interface.")
@click.option("--boot", type=_DIR, help="The boot partition holding ketang-setup.toml.")
@click.option("--root", type=_DIR,
              help="The device's root folder: / on the device (required with --apply and "
                   "--factory-reset, so a laptop is never provisioned by mistake).")
@click.option("--data-dir", default=str(DATA_DIR), show_default=True,
              help="The data partition, as the device sees it.")
@click.option("--drive", "drives", type=_DIR, multiple=True,
              help="A mounted drive that may carry KETANG/setup/ketang-setup.toml.")
@click.option("--yes", is_flag=True, help="With --factory-reset: do it, without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def provision(check_file: Path | None, change: bool, do_apply: bool, factory_reset: bool,
              show_status: bool, interface: str, boot: Path | None, root: Path | None,
              data_dir: str, drives: tuple[Path, ...], yes: bool, as_json: bool) -> None:
    """Set this device up from ketang-setup.toml (docs/provisioning.md).

    Exit status 0 when the file is valid (or applied, or there is none), 1 when it has
    problems: then nothing was applied and each problem is printed.
    """
    if sum(map(bool, (check_file, do_apply, factory_reset, show_status))) != 1:
        raise click.UsageError("give one of --check FILE, --apply, --factory-reset or "
                               "--status.")
    if check_file is not None:
        _check(check_file, change, as_json)
        return
    if show_status:
        from .status import ap_status, format_status

        report = ap_status(interface, root or Path("/"))
        click.echo(json.dumps(report, ensure_ascii=False, indent=2) if as_json
                   else format_status(report))
        return
    if root is None:
        raise click.UsageError("--apply and --factory-reset need --root (/ on the device).")
    layout = Layout(root=root, boot=boot, data_dir=PurePosixPath(data_dir))
    if factory_reset:
        if not yes:
            click.confirm("恢复出厂设置？管理密码和可信密钥将被删除。Forget the admin password "
                          "and the trusted keys?", abort=True)
        from .state import factory_reset as reset

        removed = reset(layout)
        click.echo("已恢复出厂设置：下次的设置文件可以重新设置安全设置。Factory reset done: the "
                   "next ketang-setup.toml may set the security settings again. Removed: "
                   + (", ".join(removed) or "nothing"))
        return
    from .apply import apply

    outcome = apply(layout, list(drives))
    if outcome is None:
        if as_json:
            click.echo(json.dumps({"ok": True, "source": None}))
        else:
            click.echo("没有设置文件，无需更改。No ketang-setup.toml found; nothing to do.")
        return
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(outcome.result_text(), nl=False)
    sys.exit(0 if outcome.ok else 1)


def _check(path: Path, change: bool, as_json: bool) -> None:
    from .schema import Device, validate
    from .setupfile import SetupFileError

    # A later change is checked as against a device that already has the first-boot
    # settings (their values unknown here: a channel is checked against the file's country).
    device = Device(values={"school.name": "(on the device)"}) if change else Device()
    try:
        checked = validate(path.read_bytes(), device)
    except OSError as e:
        raise KetangError(f"cannot read {path}: {e.strerror}") from e
    except SetupFileError as e:
        if as_json:
            click.echo(json.dumps([{"setting": p.setting, "line": p.line,
                                    "message": p.message} for p in e.problems],
                                  ensure_ascii=False, indent=2))
        else:
            click.echo(f"{path}: {len(e.problems)} 个问题 problem(s); 未应用任何设置 nothing "
                       "would be applied:", err=True)
            for p in e.problems:
                click.echo(f"  - {p}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"ok": True, "settings": sorted(checked.given)}))
    else:
        click.echo(f"{path}: 设置有效 valid ({len(checked.given)} settings: "
                   f"{', '.join(sorted(checked.given))}).")


COMMANDS = [provision]
