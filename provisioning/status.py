"""The classroom access point's state, for ``ketang status`` and the dashboard.

:func:`ap_status` gathers, without changing anything: hostapd's own report (through
``hostapd_cli``: state, SSID, channel, country, connected clients), the DHCP leases
dnsmasq holds, and on a Raspberry Pi the radio's firmware and how many clients it
admits. The built-in radio of a Pi 4 (CYW43455, brcmfmac) admits about 8 clients with
the stock firmware (7 to 10 are reported) and 19 with Raspberry Pi's "minimal" firmware
(raspberrypi/documentation#2520); a class larger than that needs another access point.

Cheap (one short subprocess), but not for hot paths: call it from the status command
and the dashboard's status page only.

hostapd's control socket is root's. A caller that may not open it (the lesson server's
user, for the dashboard) gets the same report from the kernel instead, through ``iw``
(:func:`iw_report`: interface type and SSID, channel, connected stations, regulatory
country), which any user may read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .layout import HOSTAPD_CONF, HOSTAPD_CTRL, LEASES

STOCK_PI_LIMIT = 8
MINIMAL_PI_LIMIT = 19
PI_FIRMWARE = ("lib/firmware/brcm/brcmfmac43455-sdio.raspberrypi,4-model-b.bin",
               "lib/firmware/brcm/brcmfmac43455-sdio.bin",
               "lib/firmware/cypress/cyfmac43455-sdio.bin")

Runner = Callable[..., subprocess.CompletedProcess]


def hostapd_report(interface: str, run: Runner = subprocess.run,
                   ctrl_dir: str = str(HOSTAPD_CTRL)) -> dict[str, str] | str:
    """hostapd's STATUS as a dict, or a sentence saying why there is none."""
    try:
        out = run(["hostapd_cli", "-p", ctrl_dir, "-i", interface, "status"],
                  capture_output=True, text=True, timeout=5)
    except FileNotFoundError:
        return "hostapd_cli is not installed"
    except subprocess.TimeoutExpired:
        return "hostapd did not answer within 5 s"
    if out.returncode != 0 or "=" not in out.stdout:
        return (out.stdout + out.stderr).strip() or f"hostapd_cli exit status {out.returncode}"
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def iw_report(interface: str, run: Runner = subprocess.run) -> dict[str, str] | str:
    """The access point as the kernel sees it, in hostapd's STATUS keys (``state``
    ENABLED when ``interface`` is an access point with an SSID), or why there is none.

    For callers that may not open hostapd's control socket; needs no privilege.
    """
    def iw(*args: str) -> str | None:
        try:
            out = run(["iw", *args], capture_output=True, text=True, timeout=5)
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    info = iw("dev", interface, "info")
    if info is None:
        return f"iw: no Wi-Fi interface {interface} (or iw is not installed)"
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.strip().partition(" ")
        fields.setdefault(key, value)
    ap = fields.get("type") == "AP" and "ssid" in fields
    report = {"state": "ENABLED" if ap else "DISABLED", "ssid[0]": fields.get("ssid", "")}
    channel = fields.get("channel", "").split(" ", 1)[0]
    if channel.isdigit():
        report["channel"] = channel
    stations = iw("dev", interface, "station", "dump")
    if stations is not None:
        report["num_sta[0]"] = str(sum(1 for line in stations.splitlines()
                                       if line.startswith("Station ")))
    country = re.search(r"^country ([A-Z0-9]{2}):", iw("reg", "get") or "", re.M)
    if country:
        report["country_code"] = country[1]
    return report


def ap_report(interface: str, run: Runner = subprocess.run,
              ctrl_dir: str = str(HOSTAPD_CTRL), kernel_first: bool = False,
              ) -> dict[str, str] | str:
    """hostapd's STATUS (:func:`hostapd_report`) or the kernel's view of the access point
    (:func:`iw_report`): the first in the order asked that reports the access point up,
    else the first one's answer (hostapd's reason, or the kernel's DISABLED).

    ``kernel_first`` for callers that cannot use hostapd's control socket: not root (the
    socket is root's), or in a service with a private /tmp, where hostapd's answer to
    ``hostapd_cli`` (a socket in /tmp) never arrives and every call waits for its timeout.
    """
    sources: list[Callable[[], dict[str, str] | str]] = [
        lambda: hostapd_report(interface, run, ctrl_dir), lambda: iw_report(interface, run)]
    if kernel_first:
        sources.reverse()
    first = sources[0]()
    if isinstance(first, dict) and first.get("state") == "ENABLED":
        return first
    second = sources[1]()
    if isinstance(second, dict) and second.get("state") == "ENABLED":
        return second
    return first


def is_access_point(data_dir: Path, root: Path = Path("/")) -> bool:
    """Whether this device was set up as a classroom access point (a setup file was
    applied, or hostapd has its configuration)."""
    return (Path(data_dir) / "provisioning" / "last-result.json").is_file() or \
        (root / str(HOSTAPD_CONF).lstrip("/")).exists()


def active_leases(path: Path, now: float | None = None) -> int:
    """How many DHCP leases in dnsmasq's lease file have not expired."""
    now = time.time() if now is None else now
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[0].isdigit() and (int(fields[0]) == 0
                                                         or int(fields[0]) > now):
            count += 1
    return count


def radio(interface: str, root: Path = Path("/")) -> dict[str, Any]:
    """The board, the radio's driver and, on a Raspberry Pi, its firmware and client limit."""
    info: dict[str, Any] = {"board": "", "driver": "", "firmware": "", "client_limit": None}
    try:
        info["board"] = (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode(
            "utf-8", "replace").strip()
    except OSError:
        pass
    try:
        info["driver"] = os.path.basename(os.readlink(
            root / "sys/class/net" / interface / "device/driver"))
    except OSError:
        pass
    if info["driver"] == "brcmfmac" and info["board"].startswith("Raspberry Pi"):
        for rel in PI_FIRMWARE:
            path = root / rel
            if path.exists():
                real = os.path.realpath(path)
                info["firmware"] = os.path.basename(real)
                break
        minimal = "minimal" in info["firmware"]
        info["client_limit"] = MINIMAL_PI_LIMIT if minimal else STOCK_PI_LIMIT
    return info


def ap_status(interface: str = "wlan0", root: Path = Path("/"), run: Runner = subprocess.run,
              leases: Path | None = None, now: float | None = None) -> dict[str, Any]:
    """Everything ``ketang status`` and the dashboard show about the access point."""
    report = ap_report(interface, run, str(root / str(HOSTAPD_CTRL).lstrip("/")),
                       kernel_first=os.geteuid() != 0)
    leases = leases or root / str(LEASES).lstrip("/")
    out: dict[str, Any] = {"interface": interface, "leases": active_leases(leases, now),
                           **radio(interface, root)}
    if isinstance(report, str):
        out.update(state="NOT RUNNING", error=report, ssid="", channel=None, country="",
                   clients=None)
    else:
        num = report.get("num_sta[0]", "")
        out.update(state=report.get("state", "UNKNOWN"), error="",
                   ssid=_ssid(report.get("ssid[0]", "")),
                   channel=int(report["channel"]) if report.get("channel", "").isdigit()
                   else None, country=report.get("country_code", ""),
                   clients=int(num) if num.isdigit() else None)
    out["advice"] = advice(out)
    return out


def _ssid(text: str) -> str:
    """hostapd prints a UTF-8 SSID with printf escapes (\\xNN); undo them."""
    try:
        raw = re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]),
                     text.encode("latin-1", "backslashreplace"))
        return raw.replace(b'\\"', b'"').replace(b"\\\\", b"\\").decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return text


def advice(status: dict[str, Any]) -> str:
    """What a technician should do, in words (Chinese, then English); "" when all is well."""
    if status["state"] != "ENABLED":
        return ("Wi-Fi 热点未运行：检查 ketang-setup-result.txt 与 `journalctl -u hostapd`。The "
                "Wi-Fi access point is not running: read ketang-setup-result.txt on the card "
                "and `journalctl -u hostapd` (a missing wifi.country keeps the radio off).")
    limit = status.get("client_limit")
    if limit:
        return (f"本机内置 Wi-Fi 最多约 {limit} 台设备同时连接；班级更大时请加一个外接无线接入点"
                f"（USB 无线网卡，设置 wifi.interface）。This board's built-in Wi-Fi admits about "
                f"{limit} clients at once (firmware {status['firmware'] or 'unknown'}); for a "
                "larger class add an access point: a USB Wi-Fi adapter that can serve many "
                "clients, named in wifi.interface.")
    return ""


def last_result(data_dir: Path) -> dict[str, Any] | None:
    """The outcome of the last ``ketang provision --apply`` (``ok``, ``finished``,
    ``applied``/``unchanged`` with secrets hidden, ``problems`` with setting, line and
    message, ``warnings``), or None when nothing was applied yet."""
    try:
        doc = json.loads((Path(data_dir) / "provisioning" / "last-result.json").read_text(
            encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def format_status(status: dict[str, Any]) -> str:
    """Lines for ``ketang status``."""
    clients = "?" if status["clients"] is None else str(status["clients"])
    limit = f" / ~{status['client_limit']}" if status.get("client_limit") else ""
    lines = [f"Wi-Fi 热点 access point ({status['interface']}): {status['state']}"]
    if status["state"] != "NOT RUNNING":
        lines.append(f"  SSID: {status['ssid']}  channel {status['channel']}  "
                     f"country {status['country']}")
    else:
        lines.append(f"  {status['error']}")
    lines.append(f"  已连接 clients: {clients}{limit}   DHCP leases: {status['leases']}")
    if status.get("board"):
        lines.append(f"  {status['board']}  {status['driver']}  {status['firmware']}".rstrip())
    if status["advice"]:
        lines.append(f"  {status['advice']}")
    return "\n".join(lines)
