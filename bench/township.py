"""A township shares one satellite: ``python bench/township.py [--schools 8,12] [--rounds 1]``.

Needs root (network namespaces), ``ip`` and Debian's ``nginx``. Builds the township
itself with tests/support/township.py: a bridge for the LAN, N school namespaces, one
emulated uplink per school (4 Mbit/s each way, 600 ms round trips) to an nginx mirror in
a namespace of its own. The uplinks are a link emulator (tests/support/linkemu.py), not
``tc netem``: this kernel has no netem (built without CONFIG_NET_SCH_NETEM and without
module support, so ``tc qdisc add … netem`` answers "Specified qdisc kind is unknown";
tbf and htb are built in, but they shape the rate only, not the delay). Nothing leaves
the namespaces made here.

Every school runs `ketang serve` with the sync service (zeroconf on the LAN, its feed
the mirror through its own uplink, ``sync.poll_interval`` 5 s, the other settings as
shipped: ``sync.hub = "auto"``, ``hub_timeout`` 20 s, ``lan_stall_seconds`` 60 s). All
are on v1 of a ~200 MB release (realistic blob sizes, bench/usb.py); the mirror's feed
then offers v2, whose delta is ~22 MB. Printed for each case, never asserted:

- mirror egress ÷ (N × delta): what the mirror sent (its veths' counters) against every
  school taking the delta from it alone (target ≤ 0.2);
- LAN bytes (what the bridge carried) and the LAN/mirror bytes the schools counted;
- time until every school serves v2 (and the first), and the load average then.

Cases: ``alone``, the reference measured in the same run: every school started
together with zeroconf off, so each fetches the delta over its own uplink as before
issue 21; ``together``, the same with the township on (v2 offered once the hub is
elected); ``staggered``, one school every 30 s (highest device id first, so each
newcomer is the lowest id and becomes the hub); ``hub-killed``, together with the hub
SIGKILLed once the mirror has sent half the delta. The cases of a round run one after
the other, so a round's reference and township run under about the same load. Medians
over rounds.
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


def times_to_v2(t: Township, schools, started: float, timeout: float,
                got: dict[int, float] | None = None, until: float | None = None
                ) -> dict[int, float]:
    """Seconds from ``started`` until each school serves v2 (looked at twice a second),
    added to ``got``; with ``until`` (a monotonic time), only looks until then."""
    got = {} if got is None else got
    deadline = time.monotonic() + timeout
    while len(got) < len(schools):
        for i in schools:
            if i not in got and Library(t.data_dir(i)).active_version(CHANNEL) == 2:
                got[i] = time.monotonic() - started
        if until is not None and time.monotonic() >= until:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for every school "
                             f"to serve v2 ({sorted(got)} do)")
        time.sleep(0.5)
    return got


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
            t.school_config(i, trusted, zeroconf=case != "alone", poll_interval=5)
            give_release(t.data_dir(i), out, CHANNEL, 1, trusted)
        everyone = list(range(n))
        at: dict[int, float] = {}
        if case == "staggered":
            egress0, lan0 = t.mirror_egress(), t.lan_bytes()
            offer(out, 2)
            started = time.monotonic()
            for k, i in enumerate(reversed(everyone)):
                if k:  # the schools already started are watched meanwhile
                    times_to_v2(t, everyone, started, 1800, at, started + k * STAGGER)
                t.start_school(i)
        else:
            for i in everyone:
                t.start_school(i)
            if case == "alone":  # each its own hub: the reference, as before issue 21
                wait(lambda: all(hub_of(t, i) == f"school-{i:02d}" for i in everyone), 120,
                     "every school to start")
            else:
                wait(lambda: all(hub_of(t, i) == "school-00" for i in everyone), 120,
                     "every school to agree on the hub")
            egress0, lan0 = t.mirror_egress(), t.lan_bytes()
            offer(out, 2)
            started = time.monotonic()
        alive = everyone
        killed_at = None
        if case == "hub-killed":
            wait(lambda: t.mirror_egress() - egress0 >= delta / 2, 600,
                 "the mirror to have sent half the delta")
            t.kill_school(0, signal.SIGKILL)
            killed_at = time.monotonic() - started
            alive = everyone[1:]
        at = times_to_v2(t, alive, started, 1800, {i: v for i, v in at.items() if i in alive})
        took = max(at.values())
        time.sleep(3)  # the status files catch up
        lan_counted, mirror_counted = counted(t, alive)
        egress, lan = t.mirror_egress() - egress0, t.lan_bytes() - lan0
        takeover = ""
        if killed_at is not None:
            takeover = f"; hub killed at {killed_at:.0f} s, new hub {hub_of(t, 1)}"
    load = os.getloadavg()[0]
    r = {"ratio": egress / (n * delta), "egress": egress, "lan": lan, "seconds": took,
         "first": min(at.values()), "lan_counted": lan_counted,
         "mirror_counted": mirror_counted, "load": load}
    print(f"  N={n} {case}: mirror egress {egress / 1e6:.1f} MB = {r['ratio']:.3f} of N×delta;"
          f" LAN carried {lan / 1e6:.0f} MB (schools counted {lan_counted / 1e6:.0f} MB from"
          f" the LAN, {mirror_counted / 1e6:.1f} MB from the mirror); all on v2 in"
          f" {took:.0f} s (first {r['first']:.0f} s){takeover}; load {load:.1f}", flush=True)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--schools", default="8,12")
    ap.add_argument("--cases", default="alone,together,staggered,hub-killed")
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
            cases = args.cases.split(",")
            results: dict[str, list[dict]] = {c: [] for c in cases}
            for _ in range(args.rounds):  # cases interleaved: each round under one load
                for case in cases:
                    results[case].append(run_case(work / "town", out, trusted, delta, n, case))
            for case, rounds in results.items():
                med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                print(f"N={n} {case}: median of {len(rounds)}: ratio {med['ratio']:.3f} "
                      f"(target ≤ 0.2), LAN {med['lan'] / 1e6:.0f} MB, time to all "
                      f"{med['seconds']:.0f} s  (ratios "
                      f"{[round(r['ratio'], 3) for r in rounds]}, times "
                      f"{[round(r['seconds']) for r in rounds]}, load "
                      f"{[round(r['load'], 1) for r in rounds]})", flush=True)

if __name__ == "__main__":
    main()
