"""Live class answers under a class: ``.venv/bin/python bench/answers.py [--tablets 40 80]``.

Serves the sample lessons with ``ketang serve`` (8 waitress threads, 127.0.0.1). For each
class size, that many simulated tablets (each from its own loopback address) follow the
projector as EventSource does (``/projector/follow/events`` every 2 s) and, question
after question, each answers once at a random moment within ``--window`` seconds, as
children tapping would. The projector polls ``/projector/answers`` every ``--poll-ms``
(what its page does). Printed, per class size (never asserted):

- answer → acknowledged (stored with synchronous=FULL and counted): p50 and p95;
- answer → the projector's count includes it (the first poll that starts after the
  acknowledgement; so this includes waiting for the next poll): p50 and p95;
- a projector page's latency with the class answering, against the same page alone
  (the reference, measured in the same run).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.classes.answers import round_of  # noqa: E402
from appliance.cli.demo import DEMO_KEY, SAMPLE_PACK  # noqa: E402
from appliance.web.follow import RETRY_MS  # noqa: E402
from content_cache.publisher import publish  # noqa: E402
from tests.helpers import served_sample  # noqa: E402

CH = "cn-basic-edu-demo"
LESSON = "primary-g1-math-pep-v1-u3-l1"
EXERCISE = f"{LESSON}-exercise"
QUESTIONS = 2


def request(host: str, port: int, method: str, path: str, body: bytes | None = None,
            source: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Tablet(threading.Thread):
    """Follows the projector; answers each question once when told to."""

    def __init__(self, n: int, host: str, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.n, self.host, self.port, self.stop = n, host, port, stop
        self.source = f"127.0.{1 + n // 250}.{1 + n % 250}"
        self.tablet = f"bench-tablet-{n:05d}"

    def run(self) -> None:
        while not self.stop.is_set():
            request(self.host, self.port, "GET", "/projector/follow/events",
                    source=self.source)
            self.stop.wait(RETRY_MS / 1000)

    def answer(self, rnd: str, question: int) -> tuple[float, float]:
        body = json.dumps({"round": rnd, "tablet": self.tablet, "channel": CH,
                           "lesson": LESSON, "resource": EXERCISE, "question": question,
                           "choice": random.randrange(3)}).encode()
        t0 = time.perf_counter()
        status, reply = request(self.host, self.port, "POST", "/api/v1/answers", body,
                                source=self.source)
        assert status == 200 and json.loads(reply)["counted"], reply
        return t0, time.perf_counter()


class Projector(threading.Thread):
    """Polls the counts every ``poll`` seconds; keeps (started, finished, answered)."""

    def __init__(self, base: str, rnd: str, question: int, poll: float) -> None:
        super().__init__(daemon=True)
        self.url = (f"{base}/projector/answers?round={rnd}&channel={CH}&lesson={LESSON}"
                    f"&resource={EXERCISE}&question={question}")
        self.poll = poll
        self.stop = threading.Event()
        self.polls: list[tuple[float, float, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            with urllib.request.urlopen(self.url, timeout=30) as r:
                n = json.loads(r.read())["answered"]
            self.polls.append((t0, time.perf_counter(), n))
            self.stop.wait(max(0.0, self.poll - (time.perf_counter() - t0)))


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


def page_ms(base: str, n: int = 30) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(f"{base}/projector/lesson/{CH}/{LESSON}?part=3",
                                    timeout=30) as r:
            r.read()
        out.append(time.perf_counter() - t)
    return out


def run_class(base: str, size: int, window: float, poll: float, class_id: int) -> dict:
    u = urlsplit(base)
    stop = threading.Event()
    tablets = [Tablet(i, u.hostname or "127.0.0.1", u.port or 80, stop) for i in range(size)]
    for t in tablets:
        t.start()
    time.sleep(RETRY_MS / 1000)
    acks, visible, loaded_page = [], [], []
    rnd = round_of(class_id)
    for q in range(QUESTIONS):
        proj = Projector(base, rnd, q, poll)
        proj.start()
        done: list[tuple[float, float]] = []
        lock = threading.Lock()

        def one(t: Tablet, q: int = q, done: list = done, lock: threading.Lock = lock) -> None:
            time.sleep(random.uniform(0, window))
            r = t.answer(rnd, q)
            with lock:
                done.append(r)

        workers = [threading.Thread(target=one, args=(t,)) for t in tablets]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            loaded_page += page_ms(base, 1)
            time.sleep(0.2)
        for w in workers:
            w.join()
        time.sleep(poll * 1.5)
        proj.stop.set()
        proj.join()
        assert proj.polls[-1][2] == size, proj.polls[-1]
        for sent, acked in done:
            acks.append(acked - sent)
            seen = next(end for start, end, _n in proj.polls if start >= acked)
            visible.append(seen - sent)
    stop.set()
    return {"acks": acks, "visible": visible, "page": loaded_page}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tablets", type=int, nargs="+", default=[40, 80])
    ap.add_argument("--window", type=float, default=8.0, help="seconds the class takes")
    ap.add_argument("--poll-ms", type=int, default=1000, help="the projector's poll")
    args = ap.parse_args()
    poll = args.poll_ms / 1000
    with tempfile.TemporaryDirectory(prefix="ketang-bench-answers-") as tmp:
        tmp = Path(tmp)
        publish(SAMPLE_PACK, CH, 1, DEMO_KEY, tmp / "bundle")
        with served_sample(tmp, tmp / "bundle") as (base, _data):
            page_ms(base, 20)
            alone = page_ms(base)
            results = {size: run_class(base, size, args.window, poll, i + 1)
                       for i, size in enumerate(args.tablets)}
    print(f"questions per class: {QUESTIONS}, answers spread over {args.window:.0f} s, "
          f"projector polls every {args.poll_ms} ms, waitress threads: 8")
    print(f"projector lesson page alone (reference): median {statistics.median(alone)*1000:.1f} ms")
    for size, r in results.items():
        a, v, p = r["acks"], r["visible"], r["page"]
        print(f"{size} tablets ({len(a)} answers): answer → acknowledged p50 "
              f"{statistics.median(a)*1000:.0f} ms, p95 {pct(a, .95)*1000:.0f} ms; "
              f"answer → projector count p50 {statistics.median(v)*1000:.0f} ms, "
              f"p95 {pct(v, .95)*1000:.0f} ms; projector page while answering median "
              f"{statistics.median(p)*1000:.1f} ms "
              f"(ratio {statistics.median(p) / statistics.median(alone):.2f})")


if __name__ == "__main__":
    main()
