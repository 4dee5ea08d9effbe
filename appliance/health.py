"""How the device is doing (psutil): disk, memory, load, temperature, uptime, releases.

Used by ``/api/v1/health`` and ``ketang status``. Reading it writes nothing.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from content_cache.library import Library

from . import words

# Thresholds for warnings (a technician acts on these).
MIN_FREE_BYTES = 1024 ** 3          # 1 GiB left on the data volume
MIN_FREE_FRACTION = 0.05
MIN_AVAILABLE_MEMORY_FRACTION = 0.10
MAX_CPU_CELSIUS = 80.0
# Sensor names, best first: Raspberry Pi, Intel, AMD, ACPI.
SENSOR_PREFERENCE = ("cpu_thermal", "coretemp", "k10temp", "acpitz")


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def cpu_temperature() -> float | None:
    """The CPU temperature in °C where the board exposes one, else None."""
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    for name in (*SENSOR_PREFERENCE, *sorted(sensors)):
        readings = sensors.get(name)
        if readings:
            return round(max(r.current for r in readings), 1)
    return None


def health_report(library: Library, server_started: float | None = None) -> dict[str, Any]:
    """A JSON-ready report; ``status`` is "ok" or "warning" with ``warnings`` saying why."""
    data_dir = library.data_dir
    disk = psutil.disk_usage(str(_existing(data_dir)))
    mem = psutil.virtual_memory()
    load1, load5, load15 = os.getloadavg()
    temp = cpu_temperature()
    now = time.time()
    try:
        active = {ch: rel.version for ch, rel in sorted(library.active().items())}
    except (OSError, ValueError, KeyError):
        active = {}
    problems: list[dict[str, Any]] = []
    if not data_dir.is_dir():
        problems.append({"code": "no-data-dir", "path": str(data_dir)})
    if disk.free < MIN_FREE_BYTES or disk.free < MIN_FREE_FRACTION * disk.total:
        problems.append({"code": "disk-low", "free_mib": disk.free // 1024 ** 2})
    if mem.available < MIN_AVAILABLE_MEMORY_FRACTION * mem.total:
        problems.append({"code": "memory-low", "available_mib": mem.available // 1024 ** 2})
    if temp is not None and temp > MAX_CPU_CELSIUS:
        problems.append({"code": "cpu-hot", "celsius": temp})
    if not active:
        problems.append({"code": "no-release"})
    report: dict[str, Any] = {
        "status": "warning" if problems else "ok",
        "problems": problems,   # codes and numbers; views say them (appliance.words)
        "warnings": [words.both(partial(words.health_problem, p)) for p in problems],
        "disk": {"path": str(data_dir), "total_bytes": disk.total, "used_bytes": disk.used,
                 "free_bytes": disk.free, "percent_used": disk.percent},
        "memory": {"total_bytes": mem.total, "available_bytes": mem.available,
                   "percent_used": mem.percent},
        "load": {"1m": round(load1, 2), "5m": round(load5, 2), "15m": round(load15, 2),
                 "cpus": psutil.cpu_count() or 1},
        "cpu_temperature_c": temp,
        "uptime_s": round(now - psutil.boot_time()),
        "active": active,
    }
    if server_started is not None:
        proc = psutil.Process()
        report["server"] = {"uptime_s": round(now - server_started),
                            "rss_bytes": proc.memory_info().rss,
                            "threads": proc.num_threads()}
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as lines for people (Chinese first, English second)."""
    mib = 1024 ** 2
    d, m, ld = report["disk"], report["memory"], report["load"]
    temp = report["cpu_temperature_c"]
    days, rest = divmod(report["uptime_s"], 86400)
    lines = [
        f"状态 Status: {'正常 ok' if report['status'] == 'ok' else '注意 warning'}",
        f"数据盘 Data volume ({d['path']}): {d['free_bytes'] // mib} MiB 可用 free of "
        f"{d['total_bytes'] // mib} MiB ({d['percent_used']}% used)",
        f"内存 Memory: {m['available_bytes'] // mib} MiB 可用 available of "
        f"{m['total_bytes'] // mib} MiB",
        f"负载 Load: {ld['1m']} {ld['5m']} {ld['15m']} ({ld['cpus']} CPUs)",
        f"CPU 温度 temperature: {f'{temp} °C' if temp is not None else '无传感器 no sensor'}",
        f"运行时间 Uptime: {days} d {rest // 3600} h {rest % 3600 // 60} min",
    ]
    if report["active"]:
        lines += [f"课程 Release: {ch} v{v}" for ch, v in report["active"].items()]
    lines += [f"! {w}" for w in report["warnings"]]
    return "\n".join(lines)
