"""A township shares one satellite: ``python bench/township.py [--schools 8,12] [--rounds 1]``.

Needs root (network namespaces), ``ip`` and Debian's ``nginx``. Builds the township
itself with tests/support/township.py: a bridge for the LAN, N school namespaces, one
emulated uplink per school (4 Mbit/s each way, 600 ms round trips; a link emulator,
since this kernel has no netem) to an nginx mirror in a namespace of its own. Nothing
leaves the namespaces made here.

Every school runs `ketang serve` with the sync service (zeroconf on the LAN, its feed
the mirror through its own uplink, ``sync.poll_interval`` 5 s, the other settings as
shipped: ``sync.hub = "auto"``, ``hub_timeout`` 20 s, ``lan_stall_seconds`` 60 s). All
are on v1 of a ~200 MB release (realistic blob sizes, bench/usb.py); the mirror's feed
then offers v2, whose delta is ~22 MB. Printed for each case, never asserted:

- mirror egress ÷ (N × delta): what the mirror sent (its veths' counters) against every
  school taking the delta from it alone (target ≤ 0.2);
- LAN bytes (what the bridge carried) and the LAN/mirror bytes the schools counted;
- time until every school serves v2.

Cases: schools started together (v2 offered once the hub is elected), one school every
30 s (highest device id first, so each newcomer is the lowest id and becomes the hub),
and together with the hub SIGKILLed once it has half the delta. Medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from usb import make_source  # noqa: E402  (bench/usb.py)

from content_cache.atomic import atomic_write_json  # noqa: E402
from content_cache.keys import generate_keypair  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402
from tests.support.township import Township, give_release, missing_tools  # noqa: E402

CHANNEL = "bench"
DELTA_MB = 22
STAGGER = 30.0


def make_releases(work: Path, total_mb: int, rng: random.Random) -> tuple[Path, Path, int]:
    """Publish v1 (~total_mb) and v2 (~DELTA_MB changed) into one bundle; return (bundle,
    trusted keys folder, delta bytes)."""
    src = work / "src"
    make_source(src, total_mb, rng)
    pair = generate_keypair(work / "keys", "bench")
    trusted = work / "trusted"
    trusted.mkdir()
    shutil.copyfile(pair.public_path, trusted / "bench.pub")
    out = work / "out"
    publish(src, CHANNEL, 1, pair.private_path, out)
    files = sorted((src / "media").iterdir())
    rng.shuffle(files)
    changed, delta = [], 0
    for f in files:
        size = f.stat().st_size
        if delta + size <= DELTA_MB * 1_000_000 * 1.05:
            changed.append(f)
            delta += size
        if delta >= DELTA_MB * 1_000_000 * 0.95:
            break
    for f in changed:
        f.write_bytes(os.urandom(f.stat().st_size))
    publish(src, CHANNEL, 2, pair.private_path, out)
    shutil.rmtree(src)
    return out, trusted, delta


def offer(out: Path, version: int) -> None:
    """The mirror's feed offers ``version`` (both are in the bundle; the feed decides)."""
    path = out / "KETANG" / "feed.json"
    atomic_write_json(path, {"format": "ketang-feed/1", "channels": {CHANNEL: version},
                             "web_seed": True})


def on_v2(t: Township, schools) -> bool:
    return all(Library(t.data_dir(i)).active_version(CHANNEL) == 2 for i in schools)


def wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def hub_of(t: Township, i: int) -> str:
    return (t.status(i).get("township") or {}).get("hub", "")


def counted(t: Township, schools) -> tuple[int, int]:
    lan = mirror = 0
    for i in schools:
        for r in t.status(i).get("releases", []):
            if r.get("version") == 2:
                lan += int(r.get("bytes_lan", 0))
                mirror += int(r.get("bytes_mirror", 0))
    return lan, mirror


def run_case(work: Path, out: Path, trusted: Path, delta: int, n: int, case: str) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    offer(out, 1)
    with Township(work, n, mirror="nginx") as t:
        t.start_mirror(out)
        for i in range(n):
            t.school_config(i, trusted, poll_interval=5)
            give_release(t.data_dir(i), out, CHANNEL, 1, trusted)
        everyone = list(range(n))
        if case == "staggered":
            egress0, lan0 = t.mirror_egress(), t.lan_bytes()
            offer(out, 2)
            started = time.monotonic()
            for k, i in enumerate(reversed(everyone)):
                if k:
                    time.sleep(max(0.0, started + k * STAGGER - time.monotonic()))
                t.start_school(i)
        else:
            for i in everyone:
                t.start_school(i)
            wait(lambda: all(hub_of(t, i) == "school-00" for i in everyone), 120,
                 "every school to agree on the hub")
            egress0, lan0 = t.mirror_egress(), t.lan_bytes()
            offer(out, 2)
            started = time.monotonic()
        alive = everyone
        killed_at = None
        if case == "hub-killed":
            def half() -> bool:
                rel = [r for r in t.status(0).get("releases", []) if r.get("version") == 2]
                return bool(rel) and rel[0].get("bytes_mirror", 0) >= delta / 2
            wait(half, 600, "the hub to have half the delta")
            t.kill_school(0, signal.SIGKILL)
            killed_at = time.monotonic() - started
            alive = everyone[1:]
        wait(lambda: on_v2(t, alive), 1800, "every school to serve v2")
        took = time.monotonic() - started
        time.sleep(3)  # the status files catch up
        lan_counted, mirror_counted = counted(t, alive)
        egress, lan = t.mirror_egress() - egress0, t.lan_bytes() - lan0
        takeover = ""
        if killed_at is not None:
            takeover = f"; hub killed at {killed_at:.0f} s, new hub {hub_of(t, 1)}"
    r = {"ratio": egress / (n * delta), "egress": egress, "lan": lan, "seconds": took,
         "lan_counted": lan_counted, "mirror_counted": mirror_counted}
    print(f"  N={n} {case}: mirror egress {egress / 1e6:.1f} MB = {r['ratio']:.3f} of N×delta;"
          f" LAN carried {lan / 1e6:.0f} MB (schools counted {lan_counted / 1e6:.0f} MB from"
          f" the LAN, {mirror_counted / 1e6:.1f} MB from the mirror); all on v2 in"
          f" {took:.0f} s{takeover}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", default="8,12")
    ap.add_argument("--cases", default="together,staggered,hub-killed")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--total-mb", type=int, default=200)
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    # Stopped with SIGTERM or SIGINT (even in the background), the township is taken down.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    why = missing_tools("nginx")
    if why:
        raise SystemExit(why)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ketang-bench-township-") as tmp:
        work = Path(tmp)
        out, trusted, delta = make_releases(work, args.total_mb, rng)
        total = sum(p.stat().st_size for p in (out / "KETANG" / "blobs").rglob("*")
                    if p.is_file()) - delta
        print(f"release v1 {total / 1e6:.0f} MB, delta to v2 {delta / 1e6:.1f} MB; uplink "
              "4 Mbit/s, 600 ms round trips, per school", flush=True)
        for n in [int(x) for x in args.schools.split(",")]:
            for case in args.cases.split(","):
                rounds = [run_case(work / "town", out, trusted, delta, n, case)
                          for _ in range(args.rounds)]
                med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                print(f"N={n} {case}: median of {len(rounds)}: ratio {med['ratio']:.3f} "
                      f"(target ≤ 0.2), LAN {med['lan'] / 1e6:.0f} MB, time to all "
                      f"{med['seconds']:.0f} s  (ratios "
                      f"{[round(r['ratio'], 3) for r in rounds]})", flush=True)


if __name__ == "__main__":
    main()
