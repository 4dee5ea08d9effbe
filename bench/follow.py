"""Follow mode under a class: ``.venv/bin/python bench/follow.py [--tablets 40] [--changes 8]``.

Serves the sample lessons with ``ketang serve`` (8 waitress threads, 127.0.0.1), starts
``--tablets`` simulated tablets that behave as EventSource does against
``/projector/follow/events`` (ask with Last-Event-ID, get the answer at once, wait the
``retry:`` delay, ask again), and prints medians:

- the events request's latency, alone and with the whole class polling;
- a projector page's latency with no tablets (the reference) and with the class
  polling, and their ratio;
- how long a change the projector posts takes to reach every tablet.

Figures are printed, never asserted (docs/projector.md explains the SSE choice).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.cli.demo import DEMO_KEY, SAMPLE_PACK  # noqa: E402
from appliance.web.follow import RETRY_MS  # noqa: E402
from content_cache.publisher import publish  # noqa: E402
from tests.helpers import served_sample  # noqa: E402

CH = "cn-basic-edu-demo"
LESSONS = ["primary-g1-chinese-tongbian-v1-u1-l1", "primary-g1-chinese-tongbian-v1-u1-l2"]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[float, bytes]:
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t, body


def post_state(base: str, lesson: str) -> int:
    req = urllib.request.Request(f"{base}/projector/follow", method="POST",
                                 data=json.dumps({"channel": CH, "lesson": lesson}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["seq"]


class Tablet(threading.Thread):
    """One tablet's EventSource: ask, read, wait the retry delay, ask again."""

    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.base, self.stop = base, stop
        self.last = ""
        self.seen: dict[int, float] = {}   # seq -> when this tablet got it
        self.latencies: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            headers = {"Last-Event-ID": self.last} if self.last else {}
            took, body = get(f"{self.base}/projector/follow/events", headers)
            self.latencies.append(took)
            for line in body.decode().splitlines():
                if line.startswith("id: "):
                    self.last = line[4:]
                    self.seen.setdefault(int(self.last), time.perf_counter())
            self.stop.wait(RETRY_MS / 1000)


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tablets", type=int, default=40)
    ap.add_argument("--changes", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ketang-bench-follow-") as tmp:
        tmp = Path(tmp)
        publish(SAMPLE_PACK, CH, 1, DEMO_KEY, tmp / "bundle")
        with served_sample(tmp, tmp / "bundle") as (base, _data):
            page = f"{base}/projector/browse/{CH}/primary-g1"
            for _ in range(5):
                get(page)
            alone_page = [get(page)[0] for _ in range(40)]
            alone_events = [get(f"{base}/projector/follow/events")[0] for _ in range(40)]

            stop = threading.Event()
            tablets = [Tablet(base, stop) for _ in range(args.tablets)]
            for t in tablets:
                t.start()
                time.sleep(RETRY_MS / 1000 / len(tablets))   # spread as a class would be
            delays = []
            loaded_page: list[float] = []
            for i in range(args.changes):
                t0 = time.perf_counter()
                seq = post_state(base, LESSONS[i % 2])
                while not all(seq in t.seen for t in tablets):
                    loaded_page.append(get(page)[0])
                    time.sleep(0.05)
                delays.append(max(t.seen[seq] for t in tablets) - t0)
            stop.set()
            loaded_events = [x for t in tablets for x in t.latencies[2:]]

    print(f"tablets: {args.tablets}, retry: {RETRY_MS} ms, waitress threads: 8")
    print(f"events request, alone:            {ms(alone_events)}")
    print(f"events request, class polling:    {ms(loaded_events)} "
          f"(p95 {sorted(loaded_events)[int(len(loaded_events) * .95)] * 1000:.2f} ms, "
          f"{len(loaded_events)} requests)")
    print(f"projector page, alone (reference): {ms(alone_page)}")
    print(f"projector page, class polling:     {ms(loaded_page)} "
          f"(ratio {statistics.median(loaded_page) / statistics.median(alone_page):.2f})")
    print(f"a change reaches every tablet in:  median {statistics.median(delays):.2f} s, "
          f"max {max(delays):.2f} s over {len(delays)} changes")


if __name__ == "__main__":
    main()
