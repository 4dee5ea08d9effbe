"""Apply a setup file while the device runs, and make the running services take it.

At boot ``ketang provision --apply`` runs before the network and the lesson server, so
they start with what it wrote. A setup file applied later (a drive carrying
``KETANG/setup/ketang-setup.toml``) changes files under running services: this module
restarts the ones whose files changed (:func:`restart_plan`), and when the access point
was up before and does not come up with the new settings within ``wait_s``, it puts every
file the apply changed back as it was, restarts the services again and reports the
setup file as not applied. A rename of the Wi-Fi must never leave the hotspot off.

The commands run through an injectable runner (``subprocess.run`` on the device), so tests
can see exactly what would be restarted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from content_cache.errors import KetangError

from . import state
from .apply import DEVICE_KEY, Outcome, apply_file, finish
from .layout import (
    DNSMASQ_CONF,
    HOSTAPD_CONF,
    HOSTNAME,
    LOCALTIME,
    NETWORKD_UPLINK,
    NETWORKD_WIFI,
    TIMEZONE,
    Layout,
)
from .setupfile import Problem
from .status import Runner, ap_report
from .transaction import restore

if TYPE_CHECKING:
    from appliance.config import Settings

log = logging.getLogger(__name__)

HOSTAPD_UNIT = "ketang-hostapd@{}.service"
DNSMASQ_UNIT = "ketang-dnsmasq.service"
SERVE_UNIT = "ketang-serve.service"
DEFAULT_INTERFACE = "wlan0"


@dataclass(frozen=True)
class Step:
    """One command that makes a service take changed files."""

    argv: tuple[str, ...]
    what: str               # a short name for the result file: "ketang-hostapd@wlan0"
    needs: Path | None = None   # run only when this exists (the Wi-Fi interface's /sys entry)


def restart_plan(layout: Layout, changed_files: list[str], before: dict[str, Any],
                 after: dict[str, Any]) -> list[Step]:
    """The commands that make the running services take the files an apply changed.

    ``before`` and ``after``: the provisioning state's values around the apply (the Wi-Fi
    interface may have changed). In order: the network's addresses, the access point, DHCP
    and DNS, the host name, then the lesson server (its configuration, time zone, and the
    zeroconf announcement it makes with the school's name).
    """
    changed = {layout.root / p.lstrip("/") for p in changed_files}

    def touched(*paths: PurePosixPath) -> bool:
        return any(layout.host(p) in changed or layout.link_host(p) in changed
                   for p in paths)

    old_if = str(before.get("wifi.interface") or DEFAULT_INTERFACE)
    new_if = str(after.get("wifi.interface") or DEFAULT_INTERFACE)
    steps = []
    if touched(NETWORKD_WIFI, NETWORKD_UPLINK):
        steps.append(Step(("networkctl", "reload"), "systemd-networkd"))
    if touched(HOSTAPD_CONF):
        if old_if != new_if:
            unit = HOSTAPD_UNIT.format(old_if)
            steps.append(Step(("systemctl", "stop", unit), unit.removesuffix(".service")))
        unit = HOSTAPD_UNIT.format(new_if)
        # Without the interface systemd would wait 90 s for its device, then fail.
        steps.append(Step(("systemctl", "restart", unit), unit.removesuffix(".service"),
                          layout.root / "sys/class/net" / new_if))
    if touched(DNSMASQ_CONF):
        steps.append(Step(("systemctl", "restart", DNSMASQ_UNIT), "ketang-dnsmasq"))
    if touched(HOSTNAME) and after.get("system.hostname"):
        # Through systemd-hostnamed (outside the calling service's namespace); --transient
        # sets the running name only: /etc/hostname is a link provisioning keeps.
        steps.append(Step(("hostnamectl", "--transient", "set-hostname",
                           str(after["system.hostname"])), "hostname"))
    if touched(layout.config, TIMEZONE, LOCALTIME):
        steps.append(Step(("systemctl", "try-restart", SERVE_UNIT), "ketang-serve"))
    return steps


@dataclass
class Services:
    """Runs the restart commands and watches the access point come up."""

    run: Runner = subprocess.run
    wait_s: float = 30.0          # how long the access point may take to come up
    poll_s: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    ctrl_dir: str | None = None   # hostapd's control folder (default /run/hostapd)

    def ap_state(self, interface: str) -> str:
        """The access point's state on ``interface`` ("ENABLED" when it is up), or why
        there is none. The kernel's view first: the drive watcher's service has a private
        /tmp, where hostapd_cli never gets hostapd's answer."""
        kwargs = {"ctrl_dir": self.ctrl_dir} if self.ctrl_dir else {}
        report = ap_report(interface, self.run, kernel_first=True, **kwargs)
        return report if isinstance(report, str) else report.get("state", "UNKNOWN")

    def wait_up(self, interface: str) -> tuple[bool, str]:
        """Whether the access point came up within ``wait_s``, and its last state."""
        deadline = time.monotonic() + self.wait_s
        while True:
            last = self.ap_state(interface)
            if last == "ENABLED" or time.monotonic() >= deadline:
                return last == "ENABLED", last
            self.sleep(self.poll_s)

    def execute(self, steps: list[Step]) -> list[str]:
        """Run ``steps`` in order (each one even if an earlier failed); one line for each
        that failed."""
        failed = []
        for step in steps:
            if step.needs is not None and not step.needs.exists():
                failed.append(f"{' '.join(step.argv)}: {step.needs} does not exist "
                              "(no such network interface)")
                continue
            try:
                out = self.run(list(step.argv), capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                failed.append(f"{' '.join(step.argv)}: {e}")
                continue
            if out.returncode != 0:
                detail = (out.stderr or out.stdout or "").strip().splitlines()
                failed.append(f"{' '.join(step.argv)}: exit status {out.returncode}"
                              + (f" ({detail[-1]})" if detail else ""))
        return failed


def apply_running(layout: Layout, setup: Path, services: Services,
                  rewrite: bool = False) -> Outcome:
    """Apply ``setup`` on a running device, restart what it changed, and fall back to the
    previous files if the access point was up and does not come up again.

    The outcome is recorded like any apply (``last-result.json``; the boot partition's
    result file when ``layout.boot`` is set). ``rewrite``: remove the applied settings from
    ``setup`` (False for a drive: the technician's file is never changed).
    """
    try:
        before = state.load_values(layout)
    except KetangError:
        before = {}     # apply_file reports the damaged state as the problem
    old_if = str(before.get("wifi.interface") or DEFAULT_INTERFACE)
    ap_was_up = (layout.host(HOSTAPD_CONF).is_file()
                 and services.ap_state(old_if) == "ENABLED")
    outcome = apply_file(layout, setup, rewrite=rewrite)
    if not outcome.ok or not outcome.changed_files:
        return outcome
    after = state.load_values(layout)
    steps = restart_plan(layout, outcome.changed_files, before, after)
    failed = services.execute(steps)
    outcome.restarted = [s.what for s in steps]
    outcome.warnings += [f"重新启动失败 Restart failed: {line}" for line in failed]
    new_if = str(after.get("wifi.interface") or DEFAULT_INTERFACE)
    wifi_changed = any(s.what.startswith("ketang-hostapd@") for s in steps)
    if ap_was_up and wifi_changed:
        up, last = services.wait_up(new_if)
        if not up:
            _fall_back(layout, outcome, services, before, after, last)
    finish(layout, outcome)
    return outcome


def _fall_back(layout: Layout, outcome: Outcome, services: Services,
               before: dict[str, Any], after: dict[str, Any], last: str) -> None:
    """The access point did not come up: every file back as it was, services again."""
    identity = {layout.host(layout.data(f"{DEVICE_KEY}.{ext}")) for ext in ("key", "pub")}
    previous = {p: v for p, v in outcome.previous.items() if p not in identity}
    log.warning("the access point did not come up with the new settings (%s); "
                "putting the previous ones back", last)
    restore(previous)
    steps = restart_plan(layout, outcome.changed_files, after, before)
    failed = services.execute(steps)
    up, again = services.wait_up(str(before.get("wifi.interface") or DEFAULT_INTERFACE))
    wifi = sorted(k for k in outcome.applied if k.startswith("wifi.")) or ["wifi"]
    message = (f"Wi-Fi 热点未能以新设置启动（hostapd：{last}），已恢复原来的设置。The access "
               f"point did not come up with the new settings within {services.wait_s:.0f} s "
               f"(hostapd: {last}); every setting is back as it was"
               + (" and the Wi-Fi is on as before." if up else
                  f", but the access point is not up either ({again}).")
               + " Check wifi.channel, wifi.band and wifi.country against what this radio "
                 "supports.")
    outcome.ok = False
    outcome.problems = [Problem(", ".join(wifi), None, message)]
    outcome.applied, outcome.unchanged = {}, {}
    outcome.restarted = [s.what for s in steps]
    outcome.warnings += [f"重新启动失败 Restart failed: {line}" for line in failed]


@dataclass
class DriveSetup:
    """What the drive watcher calls for ``KETANG/setup/ketang-setup.toml``: apply it to
    the device at ``layout`` and restart what changed (:func:`apply_running`)."""

    layout: Layout
    services: Services = dataclasses.field(default_factory=Services)

    def __call__(self, setup: Path) -> Outcome:
        return apply_running(self.layout, setup, self.services)

    def settings_after(self, outcome: Outcome, settings: Settings) -> Settings:
        """The drive watcher's settings once ``outcome`` rewrote the configuration (its
        subscriptions and trusted keys apply to the lessons on the same drive); the same
        settings when it did not. Paths are mapped into ``layout.root``."""
        from appliance.config import load_settings

        config = self.layout.host(self.layout.config)
        if not outcome.ok or str(PurePosixPath("/") / config.relative_to(
                self.layout.root)) not in outcome.changed_files:
            return settings
        fresh = load_settings(config)
        if self.layout.root != Path("/"):
            fresh = _rooted(fresh, self.layout)
        # Where drives are mounted and their status file never move while one is handled.
        return dataclasses.replace(fresh, drives=settings.drives)


def _rooted(settings: Settings, layout: Layout) -> Settings:
    """``settings`` with every absolute path as seen from ``layout.root``."""
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        section = getattr(settings, f.name)
        if not dataclasses.is_dataclass(section):
            continue
        changes = {g.name: layout.host(PurePosixPath(getattr(section, g.name)))
                   for g in dataclasses.fields(section)
                   if isinstance(getattr(section, g.name), Path)
                   and getattr(section, g.name).is_absolute()}
        sections[f.name] = dataclasses.replace(section, **changes)  # type: ignore[type-var]
    return dataclasses.replace(settings, **sections)


def drive_setup(root: Path, settings: Settings, services: Services | None = None,
                ) -> DriveSetup:
    """The :class:`DriveSetup` for a device whose root is ``root`` (``/`` on the device)
    and whose configuration ``settings`` were read from."""
    top = Path(os.path.abspath(root))
    data_dir = PurePosixPath("/") / Path(os.path.abspath(settings.device.data_dir)
                                         ).relative_to(top)
    source = Path(os.path.abspath(settings.source)) if Path(settings.source).is_absolute() \
        else None
    config = (PurePosixPath("/") / source.relative_to(top)
              if source is not None and source.is_relative_to(top) else Layout().config)
    return DriveSetup(Layout(root=root, data_dir=data_dir, config=config),
                      services or Services())


__all__ = ["DriveSetup", "Services", "Step", "apply_running", "drive_setup", "restart_plan"]
