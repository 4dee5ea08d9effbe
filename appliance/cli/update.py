"""``ketang update status|install FILE|install-ready|rollback`` (software updates,
docs/updates.md), and the two commands the image's services call: ``health-check`` (the
health gate) and ``rauc-backend`` (RAUC's boot selection on systemd-boot). The work is in
:mod:`provisioning.update`, :mod:`provisioning.gate` and :mod:`provisioning.bootentries`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from . import settings_from

_FILE = click.Path(path_type=Path, dir_okay=False)
_DIR = click.Path(path_type=Path, file_okay=False)


def _device(ctx: click.Context, rauc_conf: Path | None, image_env: Path | None):
    from provisioning.update import IMAGE_ENV, RAUC_CONF, Device
    s = settings_from(ctx)
    return Device(rauc_conf=rauc_conf or RAUC_CONF, image_env=image_env or IMAGE_ENV,
                  data_dir=s.device.data_dir)


def _common(f):
    f = click.option("--rauc-conf", type=_FILE, help="RAUC's system.conf (default: "
                     "/etc/rauc/system.conf).")(f)
    f = click.option("--image-env", type=_FILE, hidden=True,
                     help="The running system's image.env (its version).")(f)
    return f


@click.group()
def update() -> None:
    """Software updates: signed RAUC bundles installed into the idle root slot (A/B),
    booted on trial, kept when the health gate passes (docs/updates.md)."""


@update.command("status")
@_common
@click.option("--esp", type=_DIR, default=Path("/boot/efi"), show_default=True,
              help="The EFI system partition (boot entries; amd64).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def status_cmd(ctx: click.Context, rauc_conf: Path | None, image_env: Path | None, esp: Path,
               as_json: bool) -> None:
    """Both slots' versions, the slot booted, the next boot, the last update and its
    outcome (also in /var/lib/ketang/updates/status.json for the dashboard)."""
    from provisioning.update import record
    dev = _device(ctx, rauc_conf, image_env)
    doc = _summary(dev, esp)
    record(dev, slots=doc["slots"], booted_slot=doc["booted_slot"],
           booted_version=doc["booted_version"], next_boot=doc["next_boot"])
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    click.echo(f"正在运行 Running: slot {doc['booted_slot'] or '?'}, version "
               f"{doc['booted_version']}; 下次启动 next boot: slot {doc['next_boot'] or '?'}")
    for name, slot in sorted(doc["slots"].items()):
        click.echo(f"  slot {name}: version {slot['version'] or '-'}, boot {slot['boot'] or '-'}"
                   f" ({slot['device']})")
    last = doc["last_update"]
    if last:
        click.echo(f"上次更新 Last update: {last.get('version', '?')} from "
                   f"{last.get('source', '?')}: {last.get('outcome', '?')}"
                   + (f" — {last['reason']}" if last.get("reason") else ""))
    refused = doc["last_refusal"]
    if refused:
        click.echo(f"上次拒绝 Last refused: {refused.get('bundle')} ({refused.get('at')}): "
                   f"{refused.get('reason')}")
    health = doc["health"]
    if health:
        verdict = "passed 通过" if health.get("ok") else f"FAILED 未通过: {health.get('reason')}"
        click.echo(f"健康检查 Health gate ({health.get('at', '?')}, slot {health.get('slot')}): "
                   f"{verdict}")


def _summary(dev, esp: Path) -> dict:
    """provisioning.update.summary with the boot loader's view of the slots (amd64)."""
    from provisioning.bootentries import BootEntries
    from provisioning.update import summary
    return summary(dev, BootEntries(esp).states() if (esp / "loader").is_dir() else None)


@update.command("install")
@_common
@click.argument("bundle", type=_FILE)
@click.option("--force", is_flag=True,
              help="Install even a version older than the running one (a technician's "
                   "rollback).")
@click.option("--reboot", is_flag=True, help="Reboot into the new slot when installed.")
@click.pass_context
def install_cmd(ctx: click.Context, rauc_conf: Path | None, image_env: Path | None,
                bundle: Path, force: bool, reboot: bool) -> None:
    """Verify BUNDLE's signature, refuse it if not newer (unless --force), write it to
    the idle slot and make that slot boot next, on trial."""
    from provisioning.update import install
    dev = _device(ctx, rauc_conf, image_env)
    done = install(dev, bundle, force=force)
    click.echo(f"已安装 Installed {done.version} into the idle slot; it boots next, on "
               "trial (the health gate decides whether it is kept).")
    if reboot:
        subprocess.run(["systemctl", "reboot"], check=False)


@update.command("install-ready")
@_common
@click.pass_context
def install_ready_cmd(ctx: click.Context, rauc_conf: Path | None,
                      image_env: Path | None) -> None:
    """Install what the sync service fetched and verified (updates/ready/ on the data
    partition; ketang-update-ready.path starts this as root when a bundle appears)."""
    from appliance.sync.software import ready_dir
    from provisioning.update import install_ready
    dev = _device(ctx, rauc_conf, image_env)
    done = install_ready(dev, ready_dir(dev.data_dir))
    click.echo(done or "没有待安装的更新。No fetched update waits to be installed.")


@update.command("rollback")
@_common
@click.option("--reboot", is_flag=True, help="Reboot into the other slot now.")
@click.pass_context
def rollback_cmd(ctx: click.Context, rauc_conf: Path | None, image_env: Path | None,
                 reboot: bool) -> None:
    """Boot the other slot (the previous system) next, on trial like an update."""
    from provisioning.update import rollback
    slot = rollback(_device(ctx, rauc_conf, image_env))
    click.echo(f"下次启动槽 {slot}。Slot {slot} boots next (on trial).")
    if reboot:
        subprocess.run(["systemctl", "reboot"], check=False)


@update.command("health-check")
@_common
@click.option("--url", default="http://127.0.0.1/", show_default=True,
              help="Where ketang serve answers.")
@click.option("--timeout", default=600.0, show_default=True,
              help="Seconds to wait for the system to become healthy.")
@click.option("--no-reboot", is_flag=True, help="Do not reboot after a failed trial boot.")
@click.pass_context
def health_check_cmd(ctx: click.Context, rauc_conf: Path | None, image_env: Path | None,
                     url: str, timeout: float, no_reboot: bool) -> None:
    """The health gate (ketang-health.service): exit 0 when healthy, else record why,
    exit 1 and, on a trial boot, reboot so the boot loader counts the failed try."""
    from provisioning import gate
    from provisioning.bootentries import current_slot
    from provisioning.update import (
        UpdateError,
        mark_good,
        now,
        on_trial,
        read_status,
        record,
        slot_on_trial,
    )
    dev = _device(ctx, rauc_conf, image_env)
    slot = current_slot(Path("/proc/cmdline").read_text())
    trial = on_trial(dev, slot)
    verdict = gate.run(url, timeout)
    health = {"ok": verdict.ok, "reason": verdict.reason, "slot": slot, "trial": trial,
              "version": dev.booted_version(), "seconds": round(verdict.seconds, 1),
              "at": now()}
    changes: dict = {"health": health}
    last = read_status(dev).get("last_update", {})
    if slot_on_trial(last, slot):
        changes["last_update"] = ({"outcome": "good", "reason": ""} if verdict.ok else
                                  {"outcome": "trial-failed", "reason": verdict.reason})
    try:          # the slots as this boot sees them, for the dashboard (docs/updates.md)
        doc = _summary(dev, Path("/boot/efi"))
        changes.update(slots=doc["slots"], booted_slot=doc["booted_slot"],
                       booted_version=doc["booted_version"], next_boot=doc["next_boot"])
    except Exception:  # noqa: BLE001 - the gate's verdict matters more than this view
        pass
    if verdict.ok:
        try:                 # the Pi 4's U-Boot counter; amd64: systemd-bless-boot
            health["boot_counter"] = mark_good(dev)
        except UpdateError as e:
            health["boot_counter"] = str(e)
            record(dev, **changes)
            raise
        record(dev, **changes)
        click.echo(f"健康 Healthy after {verdict.seconds:.0f} s (slot {slot})."
                   + (f" {health['boot_counter']}" if health["boot_counter"] else ""))
        return
    record(dev, **changes)
    click.echo(f"不健康 NOT healthy (slot {slot}): {verdict.reason}", err=True)
    if trial and not no_reboot:
        click.echo("试用启动失败，重启。Trial boot failed: rebooting (the boot loader counts "
                   "the try).", err=True)
        subprocess.run(["systemctl", "reboot", "--no-block"], check=False)
    sys.exit(1)


@update.command("rauc-backend", hidden=True)
@click.argument("args", nargs=-1)
@click.option("--esp", type=_DIR, default=Path("/boot/efi"), show_default=True)
@click.option("--rauc-conf", type=_FILE, default=Path("/etc/rauc/system.conf"))
@click.option("--tries", default=0, help="Tries of a slot on trial (default: image.env).")
def rauc_backend(args: tuple[str, ...], esp: Path, rauc_conf: Path, tries: int) -> None:
    """RAUC's custom bootloader backend: get-primary, set-primary SLOT, get-state SLOT,
    set-state SLOT good|bad, get-current (the image calls python3 -m
    provisioning.rauc_backend directly: faster)."""
    from provisioning.bootentries import BootEntryError
    from provisioning.rauc_backend import run
    try:
        out = run(list(args), esp=esp, rauc_conf=rauc_conf, tries=tries)
    except BootEntryError as e:
        raise click.ClickException(str(e)) from None
    if out:
        click.echo(out)


COMMANDS = [update]
