"""Usage events under a classroom's load, and what an idle device writes afterwards.

    .venv/bin/python bench/usage.py [--tablets 60] [--seconds 30] [--idle 60] [--runs 3]

Each run starts ``ketang serve`` on a fresh data folder holding the sample release, then:

1. 60 simulated tablets (threads spread over 3 processes, each tablet from its own
   loopback address 127.0.0.N, so each has its own rate limit as a real tablet would)
   post realistic batches for 30 s: 1–20 events of mixed kinds (progress, pages, answers,
   lessons opened) per POST on a kept-alive connection, the next POST as soon as the
   last is answered. ``usage.rate_per_minute`` is raised for the run so the server, not
   the limiter, is what is measured.
2. Then the same tablets at a classroom's pace (a POST every 1–3 s each: still far more
   than a class makes) for as long, and prints that p95 too.
3. Prints events/s acknowledged (saturated), p50/p95 latency of a POST, and the bytes the server
   process wrote to disk (``/proc/<pid>/io`` write_bytes: the database, its WAL and
   checkpoints) per 1,000 events, and the growth of usage.db + WAL per 1,000 events.
4. Leaves the server idle for 60 s and prints the bytes it wrote meanwhile (target: 0).

Medians over the runs are printed last. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.cli.demo import DEMO_KEY, DEMO_PUB, SAMPLE_PACK  # noqa: E402
from content_cache.importer import import_bundle  # noqa: E402
from content_cache.keys import load_trusted_keys  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402

LESSONS = [f"primary-g1-math-pep-v1-u3-l{i}" for i in (1, 2)] + \
          [f"primary-g1-chinese-tongbian-v1-u1-l{i}" for i in (1, 2)]
PROCESSES = 3


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/<pid>/io")


def make_event(actor: str, rnd: random.Random) -> dict:
    lesson = rnd.choice(LESSONS)
    kind = rnd.choices(["progress", "page", "answer", "open", "play"], [5, 3, 2, 1, 1])[0]
    doc = {"id": str(uuid.uuid4()), "actor": actor, "view": "tablet",
           "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
           "channel": "cn-basic-edu-demo", "version": 1, "lesson": lesson}
    if kind == "progress":
        doc.update(type="video-progress", resource=lesson + "-video",
                   extra={"position": rnd.uniform(0, 600), "duration": 600.0, "seconds": 30.0})
    elif kind == "page":
        doc.update(type="pdf-page-viewed", resource=lesson + "-pdf",
                   extra={"page": rnd.randint(1, 12)})
    elif kind == "answer":
        doc.update(type="exercise-answered", resource=lesson + "-exercise",
                   extra={"correct": rnd.random() < 0.7})
    elif kind == "open":
        doc.update(type="lesson-opened", resource=lesson, extra={})
    else:
        doc.update(type="video-played", resource=lesson + "-video",
                   extra={"position": 0.0, "duration": 600.0})
    return doc


def tablet_group(port: int, first: int, count: int, seconds: float, out,
                 pause: float = 0.0) -> None:
    """One process: ``count`` tablets as threads; puts (events acked, latencies, errors).

    ``pause``: a tablet waits 0.5–1.5 times this many seconds between its POSTs.
    """
    acked = [0]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def tablet(n: int) -> None:
        rnd = random.Random(n)
        actor = str(uuid.UUID(int=rnd.getrandbits(128)))
        conn = None
        while time.monotonic() < end:
            if pause:
                time.sleep(pause * rnd.uniform(0.5, 1.5))
            body = json.dumps({"events": [make_event(actor, rnd)
                                          for _ in range(rnd.randint(1, 20))]})
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", port, timeout=30, source_address=(f"127.0.0.{n + 2}", 0))
                conn.request("POST", "/api/v1/usage", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                doc = json.loads(r.read())
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                conn = None
                with lock:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            dt = time.perf_counter() - t0
            with lock:
                if status == 200:
                    acked[0] += len(doc["ids"])
                    latencies.append(dt)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

    threads = [threading.Thread(target=tablet, args=(first + i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((acked[0], latencies, errors))


def start_server(config: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(config), "serve", "--host",
         "127.0.0.1", "--port", "0", "--apps-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stdout:
        if line.startswith("Serving on "):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, int(line.rsplit(":", 1)[1].strip().strip("/"))
    raise RuntimeError("ketang serve did not start")


def load(port: int, tablets: int, seconds: float, pause: float) -> tuple[list, float]:
    """Run the tablets in PROCESSES processes; return their results and the elapsed time."""
    q: multiprocessing.Queue = multiprocessing.Queue()
    per = -(-tablets // PROCESSES)
    procs = [multiprocessing.Process(target=tablet_group,
                                     args=(port, i * per, min(per, tablets - i * per),
                                           seconds, q, pause))
             for i in range(PROCESSES) if i * per < tablets]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    elapsed = time.monotonic() - t0
    for p in procs:
        p.join()
    return results, elapsed


def one_run(tmp: Path, bundle: Path, tablets: int, seconds: float, idle: float) -> dict:
    data = tmp / "data"
    keys = tmp / "keys"
    keys.mkdir()
    (keys / DEMO_PUB.name).write_bytes(DEMO_PUB.read_bytes())
    import_bundle(bundle, Library(data), load_trusted_keys(keys))
    config = tmp / "ketang.toml"
    config.write_text(f'[device]\ndata_dir = "{data}"\n\n[trust]\nkeys_dir = "{keys}"\n\n'
                      "[zeroconf]\nenabled = false\n\n[captive]\nenabled = false\n\n"
                      "[usage]\nrate_per_minute = 1000000\n"
                      "device_rate_per_minute = 100000000\n", encoding="utf-8")
    proc, port = start_server(config)
    try:
        # One event first, so the writer thread and database exist before measuring.
        warm = multiprocessing.Queue()
        tablet_group(port, 200, 1, 0.5, warm)
        warm.get()
        db_files = lambda: sum(p.stat().st_size for p in data.glob("usage.db*"))  # noqa: E731
        size0, io0 = db_files(), write_bytes(proc.pid)
        results, elapsed = load(port, tablets, seconds, 0.0)
        io1_load, size1 = write_bytes(proc.pid), db_files()
        paced, _ = load(port, tablets, seconds, 2.0)
        io_busy_end = write_bytes(proc.pid)
        time.sleep(idle)
        io_idle_end = write_bytes(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    acked = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r[2].items():
            errors[k] = errors.get(k, 0) + v
    paced_lat = sorted(x for r in paced for x in r[1])
    return {
        "paced_p95_ms": 1000 * paced_lat[int(len(paced_lat) * 0.95)],
        "paced_events_per_s": sum(r[0] for r in paced) / seconds,
        "events_per_s": acked / elapsed, "events": acked, "posts": len(lat),
        "p50_ms": 1000 * lat[len(lat) // 2], "p95_ms": 1000 * lat[int(len(lat) * 0.95)],
        "io_bytes_per_1000": (io1_load - io0) / acked * 1000,
        "db_growth_per_1000": (size1 - size0) / acked * 1000,
        "idle_bytes": io_idle_end - io_busy_end, "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tablets", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="ketang-bench-usage-") as t:
        bundle = Path(t) / "bundle"
        publish(SAMPLE_PACK, "cn-basic-edu-demo", 1, DEMO_KEY, bundle)
        for i in range(args.runs):
            tmp = Path(t) / f"run{i}"
            tmp.mkdir()
            r = one_run(tmp, bundle, args.tablets, args.seconds, args.idle)
            runs.append(r)
            print(f"run {i + 1}: {r['events_per_s']:.0f} events/s acknowledged "
                  f"({r['events']} events in {r['posts']} POSTs), p50 {r['p50_ms']:.1f} ms, "
                  f"p95 {r['p95_ms']:.1f} ms, {r['io_bytes_per_1000']:.0f} bytes written / "
                  f"1,000 events (db+WAL grew {r['db_growth_per_1000']:.0f}), idle "
                  f"{args.idle:.0f} s wrote {r['idle_bytes']} bytes; errors {r['errors']}; "
                  f"at classroom pace {r['paced_events_per_s']:.0f} events/s, p95 "
                  f"{r['paced_p95_ms']:.1f} ms",
                  flush=True)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"\nmedian of {len(runs)} runs, {args.tablets} tablets for {args.seconds:.0f} s:")
    print(f"  events acknowledged per second   {med('events_per_s'):.0f}")
    print(f"  POST latency p50 / p95           {med('p50_ms'):.1f} / {med('p95_ms'):.1f} ms")
    print(f"  bytes written per 1,000 events   {med('io_bytes_per_1000'):.0f} "
          f"(database file + WAL grew {med('db_growth_per_1000'):.0f})")
    print(f"  bytes written in {args.idle:.0f} s of idle  {med('idle_bytes'):.0f} (target 0)")
    print(f"  at classroom pace (a POST every 1–3 s per tablet): "
          f"{med('paced_events_per_s'):.0f} events/s, p95 {med('paced_p95_ms'):.1f} ms")


if __name__ == "__main__":
    main()
