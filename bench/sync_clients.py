"""Stock BitTorrent clients and the device, per torrent layout, through a satellite link.

``python bench/sync_clients.py [--total-mb 30] [--layouts v1:32,v1-pad:1024]
[--clients aria2,transmission,qbittorrent,device]``

Publishes a release of about TOTAL MB of blobs of realistic sizes (bench/usb.py's maker),
and for each torrent layout (``LAYOUT:PIECE_KIB``; layouts in content_cache.torrent.LAYOUTS)
lets each stock client (Debian's aria2c, transmission-cli, qbittorrent-nox) download the
whole release from a plain HTTP mirror (tests/support/webseed.py, keep-alive, ranges)
reached only through the link emulator at 8 Mbit/s with 600 ms round trips (the link of
issue 13). Printed, never asserted:

- each client's **share of the link**: release bytes ÷ (seconds × link rate), target
  ≥ 0.80, and the bytes the link carried ÷ release bytes (pad files fetched, headers);
- whether the client's folder is the bundle's blob tree and nothing else;
- the **device's delta**: a device holding every blob but a random 5% of the bytes of a
  larger release (``--delta-mb``, default 400) fetches the rest with libtorrent from the
  mirror through an unlimited emulated link; link bytes ÷ missing bytes (target ≤ 1.02).

Everything runs in a network namespace of its own (``unshare -n``, loopback only), so no
client can send a packet anywhere else; ``--no-netns`` skips that.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sync import make_device, pick_missing, publish_release  # noqa: E402  (bench/sync.py)

from content_cache.blobstore import blob_relpath  # noqa: E402
from content_cache.torrent import build_release_torrent  # noqa: E402
from content_cache.transfer import ReleaseTransfer, make_session  # noqa: E402
from tests.support.clients import CLIENTS, tree  # noqa: E402
from tests.support.linkemu import LinkEmulator  # noqa: E402
from tests.support.webseed import web_seed  # noqa: E402

RATE = 8_000_000 / 8   # 8 Mbit/s in bytes/s
LATENCY = 0.3          # one way: 600 ms round trips
TIMEOUT = 240  # a client slower than this is reported by the bytes it got by then


def client_round(name: str, out: Path, manifest, layout: str, piece_kib: int,
                 work: Path) -> dict:
    total = sum(manifest.blobs().values())
    with web_seed(out) as (url, requests):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with LinkEmulator(("127.0.0.1", port), rate=RATE, latency=LATENCY) as emu:
            mirror = f"http://127.0.0.1:{emu.port}/"
            torrent = work / f"{layout}-{piece_kib}.torrent"
            torrent.write_bytes(build_release_torrent(out / "KETANG", manifest, [mirror],
                                                      piece_kib * 1024, layout))
            dl = work / "dl"
            shutil.rmtree(dl, ignore_errors=True)
            dl.mkdir()
            t0 = time.monotonic()
            try:
                seconds = CLIENTS[name](torrent, dl, work, TIMEOUT)
                error = ""
            except (RuntimeError, subprocess.SubprocessError) as e:
                seconds, error = time.monotonic() - t0, str(e).splitlines()[0][:120]
            carried = emu.bytes_down + emu.bytes_up
            got = emu.bytes_down
    ok = not error and all(
        (dl / "KETANG" / blob_relpath(s)).is_file()
        and (dl / "KETANG" / blob_relpath(s)).stat().st_size == n
        for s, n in manifest.blobs().items())
    extra = sorted(tree(dl) - {f"KETANG/{blob_relpath(s)}" for s in manifest.blobs()})
    pads = sum(1 for r in requests if "/.pad/" in r)
    # Unfinished (an error, or slower than TIMEOUT): what crossed the link by then.
    return {"seconds": seconds, "share": (total if ok else got) / (seconds * RATE),
            "carried": carried / total, "ok": ok, "error": error,
            "extra": len(extra), "pad_requests": pads, "requests": len(requests)}


def delta_round(release, layout: str, piece_kib: int, work: Path,
                rng: random.Random) -> float:
    out, manifest, data, sig, _ = release
    torrent = build_release_torrent(out / "KETANG", manifest, [], piece_kib * 1024, layout)
    missing = pick_missing(manifest, 0.05, rng)
    device = work / "device"
    shutil.rmtree(device, ignore_errors=True)
    lib = make_device(out, manifest, missing, device)
    with web_seed(out) as (url, _):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with LinkEmulator(("127.0.0.1", port)) as emu:
            t = ReleaseTransfer(make_session(), lib, manifest, data, sig, torrent)
            t.start()
            t.handle.add_url_seed(f"http://127.0.0.1:{emu.port}/")
            t.run(timeout=1800, activate=False)
            t.close()
            carried = emu.bytes_down + emu.bytes_up
    shutil.rmtree(device)
    need = sum(manifest.blobs()[s] for s in missing)
    return carried / need


def in_own_netns() -> None:
    """Re-run this script in a new network namespace holding only loopback."""
    if os.environ.get("KETANG_BENCH_NETNS") or os.geteuid() != 0:
        return
    env = {**os.environ, "KETANG_BENCH_NETNS": "1"}
    cmd = ("ip link set lo up && exec " + " ".join(
        [sys.executable, *[f"'{a}'" for a in sys.argv]]))
    os.execvpe("unshare", ["unshare", "-n", "sh", "-c", cmd], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total-mb", type=int, default=30)
    ap.add_argument("--delta-mb", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--layouts", default="v1:32,v1:1024,v1-pad:1024,hybrid:1024")
    ap.add_argument("--clients", default="aria2,transmission,qbittorrent,device")
    ap.add_argument("--no-netns", action="store_true")
    args = ap.parse_args()
    if not args.no_netns:
        in_own_netns()
    layouts = [(lay, int(kib)) for lay, kib in (x.split(":") for x in args.layouts.split(","))]
    clients = args.clients.split(",")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ketang-bench-clients-") as tmp:
        work = Path(tmp)
        (work / "a").mkdir()
        small = publish_release(work / "a", args.total_mb, rng)
        total = sum(small[1].blobs().values())
        print(f"release for clients: {len(small[1].blobs())} blobs, {total / 1e6:.1f} MB; link "
              f"{RATE * 8 / 1e6:.0f} Mbit/s, {2 * LATENCY * 1000:.0f} ms RTT", flush=True)
        big = None
        if "device" in clients:
            (work / "b").mkdir()
            big = publish_release(work / "b", args.delta_mb, rng)
            print(f"release for the device's delta: {len(big[1].blobs())} blobs, "
                  f"{sum(big[1].blobs().values()) / 1e6:.0f} MB, 5% missing", flush=True)
        for layout, kib in layouts:
            for name in clients:
                if name == "device":
                    ratios = [delta_round(big, layout, kib, work, rng)
                              for _ in range(args.rounds)]
                    print(f"{layout:7} {kib:5} KiB  device delta: link ÷ missing "
                          f"{statistics.median(ratios):.4f} "
                          f"(rounds {[round(r, 4) for r in ratios]})",
                          flush=True)
                    continue
                rs = [client_round(name, small[0], small[1], layout, kib, work)
                      for _ in range(args.rounds)]
                r = rs[len(rs) // 2]
                share = statistics.median(x["share"] for x in rs)
                print(f"{layout:7} {kib:5} KiB  {name:12} share of link {share:.2f}  "
                      f"{r['seconds']:.1f} s, link carried {r['carried']:.3f}× the release, "
                      f"{r['requests']} HTTP requests ({r['pad_requests']} for .pad), "
                      f"complete {r['ok']}, other files {r['extra']}"
                      + (f"  ERROR {r['error']}" if r["error"] else ""), flush=True)


if __name__ == "__main__":
    main()
