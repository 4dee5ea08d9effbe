"""How the device is doing (psutil): disk, memory, load, temperature, uptime, releases.

Used by ``/api/v1/health`` and ``ketang status``. Reading it writes nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

from content_cache.library import Library

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
    warnings: list[str] = []
    if not data_dir.is_dir():
        warnings.append(f"数据目录 {data_dir} 不存在。The data folder {data_dir} does not exist; "
                        "check device.data_dir and the data partition.")
    if disk.free < MIN_FREE_BYTES or disk.free < MIN_FREE_FRACTION * disk.total:
        warnings.append(f"数据盘空间不足：剩余 {disk.free // 1024 ** 2} MiB。Only "
                        f"{disk.free // 1024 ** 2} MiB free on the data volume; remove old "
                        "releases or use a larger card.")
    if mem.available < MIN_AVAILABLE_MEMORY_FRACTION * mem.total:
        warnings.append(f"内存不足：可用 {mem.available // 1024 ** 2} MiB。Only "
                        f"{mem.available // 1024 ** 2} MiB of memory available.")
    if temp is not None and temp > MAX_CPU_CELSIUS:
        warnings.append(f"CPU 过热：{temp} °C。The CPU is at {temp} °C; check the fan and "
                        "ventilation.")
    if not active:
        warnings.append("没有可用的课程。No release is active; import one with `ketang import`.")
    report: dict[str, Any] = {
        "status": "warning" if warnings else "ok",
        "warnings": warnings,
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
