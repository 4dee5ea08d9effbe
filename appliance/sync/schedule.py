"""When the sync service may use the uplink: time windows and a daily byte quota.

Windows are local times like ``"01:00-06:00"``; one that ends before it starts
(``"22:00-05:00"``) runs past midnight. No windows means any time. The quota counts
what actually crossed the uplink interfaces (psutil's per-interface counters, sent
and received), per local day; the count survives a restart of the service (and of
the machine, whose counters start again from zero) in a small file written only
when it changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import psutil

from content_cache.atomic import atomic_write_json
from content_cache.errors import KetangError

WINDOW_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
QUOTA_SAVE_BYTES = 1_000_000  # write the quota file after each MB counted (and on close)


@dataclass(frozen=True)
class Window:
    """One daily window, ``start`` to ``end`` local time (``end`` may be the next day)."""

    start: time
    end: time  # time(0, 0) for "24:00"

    def __str__(self) -> str:
        end = "24:00" if self.end == time(0, 0) else self.end.strftime("%H:%M")
        return f"{self.start:%H:%M}-{end}"


def parse_windows(values: Sequence[str], where: str = "sync.windows") -> list[Window]:
    """Parse ``["01:00-06:00", …]``; raise KetangError naming the bad entry."""
    out = []
    for v in values:
        m = WINDOW_RE.match(v.strip())
        if not m or (m.group(3) == "24" and m.group(4) != "00"):
            raise KetangError(f'{where}: {v!r} is not a time window; write it as "HH:MM-HH:MM" '
                              'in local time, e.g. "01:00-06:00" (24-hour clock).')
        start = time(int(m.group(1)), int(m.group(2)))
        end = time(0, 0) if m.group(3) == "24" else time(int(m.group(3)), int(m.group(4)))
        if start == end:
            raise KetangError(f"{where}: {v!r} starts and ends at the same time; leave "
                              "sync.windows empty to allow any time.")
        out.append(Window(start, end))
    return out


def _spans(windows: Sequence[Window], day: datetime) -> list[tuple[datetime, datetime]]:
    """Each window as (start, end) datetimes, for the day before ``day`` up to the day after."""
    out = []
    base = day.replace(hour=0, minute=0, second=0, microsecond=0)
    for offset in (-1, 0, 1):
        d = base + timedelta(days=offset)
        for w in windows:
            start = d.replace(hour=w.start.hour, minute=w.start.minute)
            end = d.replace(hour=w.end.hour, minute=w.end.minute)
            if end <= start:
                end += timedelta(days=1)
            out.append((start, end))
    return sorted(out)


def in_window(windows: Sequence[Window], now: datetime) -> bool:
    """True when ``now`` (local time) is inside a window, or there are no windows."""
    if not windows:
        return True
    return any(start <= now < end for start, end in _spans(windows, now))


def next_window(windows: Sequence[Window], now: datetime) -> tuple[datetime, datetime] | None:
    """The window ``now`` is in, else the next one, as (start, end); None when unrestricted."""
    if not windows:
        return None
    for start, end in _spans(windows, now):
        if now < end:
            return start, end
    return None  # unreachable: the day after always has a later window


def uplink_counter(interfaces: Sequence[str]) -> Callable[[], int]:
    """A function giving bytes sent + received so far on ``interfaces``.

    Empty ``interfaces`` count every interface but loopback. Set
    ``sync.uplink_interfaces`` on a device whose Wi-Fi access point serves tablets,
    or their streaming counts against the quota.
    """
    wanted = set(interfaces)

    def count() -> int:
        total = 0
        for name, c in psutil.net_io_counters(pernic=True).items():
            if (name in wanted) if wanted else not name.startswith("lo"):
                total += c.bytes_sent + c.bytes_recv
        return total

    return count


class Quota:
    """Bytes that crossed the uplink today, against ``daily_bytes`` (0: no quota)."""

    def __init__(self, daily_bytes: int, counter: Callable[[], int], state_path: Path,
                 clock: Callable[[], datetime] = datetime.now,
                 boot_time: Callable[[], float] = psutil.boot_time) -> None:
        self.daily_bytes = daily_bytes
        self.counter = counter
        self.state_path = Path(state_path)
        self.clock = clock
        self.day = clock().date().isoformat()
        self.used = 0
        self._boot = boot_time()
        self._last = counter()
        self._saved_used = 0
        self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        if doc.get("day") == self.day and isinstance(doc.get("used"), int):
            self.used = self._saved_used = doc["used"]
            # Same boot: what crossed while the service was stopped counts too.
            if doc.get("boot") == self._boot and isinstance(doc.get("counter"), int) \
                    and doc["counter"] <= self._last:
                self.used += self._last - doc["counter"]

    def update(self) -> int:
        """Count what crossed since the last call; start again at local midnight."""
        now_counter = self.counter()
        day = self.clock().date().isoformat()
        delta = now_counter - self._last if now_counter >= self._last else now_counter
        self._last = now_counter
        if day != self.day:
            self.day, self.used = day, 0
        else:
            self.used += delta
        if abs(self.used - self._saved_used) >= QUOTA_SAVE_BYTES:
            self.save()
        return self.used

    @property
    def exhausted(self) -> bool:
        """True when today's quota is used up (never when there is no quota)."""
        return self.daily_bytes > 0 and self.used >= self.daily_bytes

    @property
    def remaining(self) -> int | None:
        """Bytes left today, or None without a quota."""
        return None if self.daily_bytes <= 0 else max(0, self.daily_bytes - self.used)

    def save(self) -> None:
        """Write today's count (atomically) if it changed since the last write."""
        if self.used == self._saved_used or self.daily_bytes <= 0:
            return  # without a quota nothing is kept: an idle device writes nothing
        doc = {"day": self.day, "used": self.used, "counter": self._last, "boot": self._boot}
        atomic_write_json(self.state_path, doc)
        self._saved_used = self.used
