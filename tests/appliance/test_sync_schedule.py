"""Time windows and the daily quota, with an injected clock and counter."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from appliance.sync.schedule import Quota, in_window, next_window, parse_windows
from content_cache.errors import KetangError


def at(hhmm: str, day: int = 23) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 11, day, h, m)


def test_a_night_window():
    w = parse_windows(["01:00-06:00"])
    assert not in_window(w, at("00:59"))
    assert in_window(w, at("01:00")) and in_window(w, at("05:59"))
    assert not in_window(w, at("06:00"))
    assert next_window(w, at("12:00")) == (at("01:00", 24), at("06:00", 24))
    assert next_window(w, at("02:00")) == (at("01:00"), at("06:00"))


def test_a_window_past_midnight_and_several_windows():
    w = parse_windows(["22:00-05:00", "12:00-13:00"])
    assert in_window(w, at("23:30")) and in_window(w, at("04:59"))
    assert in_window(w, at("12:30"))
    assert not in_window(w, at("05:00")) and not in_window(w, at("21:59"))
    assert next_window(w, at("06:00")) == (at("12:00"), at("13:00"))
    assert next_window(w, at("14:00")) == (at("22:00"), at("05:00", 24))
    assert next_window(w, at("02:00")) == (at("22:00", 22), at("05:00"))
    assert parse_windows(["20:00-24:00"])[0].__str__() == "20:00-24:00"
    assert in_window(parse_windows(["20:00-24:00"]), at("23:59"))


def test_no_windows_means_any_time():
    assert in_window([], at("15:00")) and next_window([], at("15:00")) is None


@pytest.mark.parametrize("bad", ["1:00-6:00", "01:00–06:00", "25:00-06:00", "01:00-01:00",
                                 "01:60-02:00", "nightly", "24:30-01:00"])
def test_a_bad_window_is_refused_saying_how_to_write_one(bad):
    with pytest.raises(KetangError) as e:
        parse_windows([bad])
    assert repr(bad) in str(e.value) and "HH:MM-HH:MM" in str(e.value) or \
        "same time" in str(e.value)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_quota_counts_what_crossed_and_starts_again_at_midnight(tmp_path):
    counter = [10_000_000]
    clock = Clock(at("01:00"))
    q = Quota(5_000_000, lambda: counter[0], tmp_path / "quota.json", clock, lambda: 1.0)
    assert q.update() == 0 and not q.exhausted and q.remaining == 5_000_000
    counter[0] += 3_000_000
    assert q.update() == 3_000_000 and not q.exhausted
    assert json.loads((tmp_path / "quota.json").read_text())["used"] == 3_000_000
    counter[0] += 2_500_000
    q.update()
    assert q.exhausted and q.remaining == 0
    clock.now = at("00:01", 24)
    counter[0] += 100
    assert q.update() == 0 and not q.exhausted


def test_quota_survives_a_restart_and_a_reboot(tmp_path):
    path = tmp_path / "quota.json"
    counter = [1_000]
    clock = Clock(at("02:00"))
    q = Quota(10_000_000, lambda: counter[0], path, clock, lambda: 1.0)
    counter[0] += 4_000_000
    q.update()
    q.save()
    counter[0] += 1_000_000  # crossed while the service was stopped, same boot
    q2 = Quota(10_000_000, lambda: counter[0], path, clock, lambda: 1.0)
    assert q2.used == 5_000_000
    counter[0] = 500  # a reboot: the interface counters start again
    q3 = Quota(10_000_000, lambda: counter[0], path, clock, lambda: 2.0)
    assert q3.used == 4_000_000
    counter[0] += 1_000_000
    assert q3.update() == 5_000_000


def test_an_idle_quota_writes_nothing(tmp_path):
    q = Quota(0, lambda: 42, tmp_path / "quota.json", Clock(at("03:00")), lambda: 1.0)
    for _ in range(3):
        q.update()
    q.save()
    assert not (tmp_path / "quota.json").exists()
    assert not q.exhausted and q.remaining is None
