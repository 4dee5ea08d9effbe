"""Sync efficiency: ``python bench/sync.py [--total-mb 2000] [--rounds 3]``.

Publishes a release of about TOTAL MB of blobs of realistic sizes (lesson videos of
20-60 MB, task-sheet PDFs of about 1 MB, HTML5 zips of about 3 MB; the same maker
as bench/usb.py) and gives a device every blob but a random 5% of the bytes (hard
links, so the device's store costs no disk). The device then fetches the missing
blobs with real libtorrent from an HTTP web seed (tests/support/webseed.py) reached
only through the link emulator (tests/support/linkemu.py), which counts every byte
it carries both ways. Each round starts from a fresh device. Printed, never asserted:

1. bytes the link carried ÷ bytes of the missing blobs (target ≤ 1.02), on a clean link;
2. the same with the link dropped every 10 s (target ≤ 1.05), at 2 MB/s so a round
   lives through several drops;
2b. the same with ``ketang sync fetch`` (a process of its own) SIGKILLed three times, at a
   quarter, half and three quarters of the missing bytes, and run again to the end
   (target ≤ 1.05), counting store blobs written again (target 0);
3. the time to sync 20 MB of missing blobs (PDFs and zips) through a 4 Mbit/s link
   with 600 ms round trips, against the ideal (missing bytes ÷ link rate).

Medians over ``--rounds``. The session is the device's (``make_session``: closed
network, web seed retried 5 s after a failure), as the sync service uses it.
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

from usb import make_source  # noqa: E402  (bench/usb.py)

from content_cache.blobstore import blob_relpath  # noqa: E402
from content_cache.bundle import bundle_root, find_releases  # noqa: E402
from content_cache.importer import verify_release  # noqa: E402
from content_cache.keys import generate_keypair, load_trusted_keys  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402
from content_cache.transfer import ReleaseTransfer, make_session  # noqa: E402
from tests.support.linkemu import LinkEmulator  # noqa: E402
from tests.support.webseed import web_seed  # noqa: E402

SATELLITE_RATE = 4_000_000 / 8   # 4 Mbit/s in bytes/s
SATELLITE_LATENCY = 0.3          # one way: 600 ms round trips
DROP_RATE = 2_000_000            # bytes/s while the link is dropped every 10 s
SMALL_KINDS = (".pdf", ".zip")


def publish_release(work: Path, total_mb: int, rng: random.Random):
    """Publish about ``total_mb`` MB; return (bundle folder, manifest, bytes, sig, torrent)."""
    src = work / "src"
    make_source(src, total_mb, rng)
    keys = work / "keys"
    pair = generate_keypair(keys, "bench")
    trusted = work / "trusted"
    trusted.mkdir()
    shutil.copyfile(pair.public_path, trusted / "bench.pub")
    out = work / "out"
    publish(src, "bench", 1, pair.private_path, out)
    shutil.rmtree(src)  # the bundle holds the blobs now
    found = find_releases(bundle_root(out))[0]
    manifest, data, sig, _ = verify_release(found, load_trusted_keys(trusted))
    torrent = found.manifest_path.with_name("release.torrent").read_bytes()
    return out, manifest, data, sig, torrent


def pick_missing(manifest, fraction: float, rng: random.Random,
                 only_small: bool = False) -> list[str]:
    """Random blobs adding up to about ``fraction`` of the release's bytes."""
    types = {r.sha256: r.media_type for r in manifest.resources}
    blobs = manifest.blobs()
    candidates = sorted(blobs)
    if only_small:
        candidates = [s for s in candidates if types[s] != "video/mp4"]
    rng.shuffle(candidates)
    target = fraction * sum(blobs.values()) if fraction <= 1 else fraction
    out, total = [], 0
    for sha in candidates:
        if total >= target:
            break
        if total + blobs[sha] > target * 1.1 and total > 0:
            continue
        out.append(sha)
        total += blobs[sha]
    return out


def make_device(out: Path, manifest, missing: list[str], where: Path) -> Library:
    """A device whose store holds every blob but ``missing`` (hard links to the bundle)."""
    lib = Library(where)
    gone = set(missing)
    for sha in manifest.blobs():
        if sha in gone:
            continue
        dst = lib.store.path_for(sha)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(out / "KETANG" / blob_relpath(sha), dst)
    return lib


SESSION: dict = {}  # extra libtorrent settings (--set KEY=VALUE), for experiments


def one_round(release, missing: list[str], work: Path, **link) -> dict[str, float]:
    out, manifest, data, sig, torrent = release
    device = work / "device"
    shutil.rmtree(device, ignore_errors=True)
    lib = make_device(out, manifest, missing, device)
    with web_seed(out) as (url, _):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with LinkEmulator(("127.0.0.1", port), **link) as emu:
            ses = make_session(extra=SESSION)
            t = ReleaseTransfer(ses, lib, manifest, data, sig, torrent)
            started = time.monotonic()
            t.start()
            t.handle.add_url_seed(f"http://127.0.0.1:{emu.port}/")
            status = t.run(timeout=3600, activate=False)
            seconds = time.monotonic() - started
            t.close()
            carried = emu.bytes_down + emu.bytes_up
            down, drops = emu.bytes_down, emu.cuts
    sizes = manifest.blobs()
    need = sum(sizes[s] for s in missing)
    assert sorted(status.fetched) == sorted(missing), "not every missing blob was stored"
    del ses
    shutil.rmtree(device)
    return {"need": need, "carried": carried, "down": down, "ratio": carried / need,
            "seconds": seconds, "drops": drops, "payload": status.payload_downloaded}


def kill_round(release, missing: list[str], work: Path, kills: int = 3) -> dict[str, float]:
    """``ketang sync fetch`` SIGKILLed ``kills`` times (at even shares of the missing bytes),
    then run to the end; what the link carried in all, and whether a store blob changed."""
    out, manifest, _, _, _ = release
    device = work / "device"
    shutil.rmtree(device, ignore_errors=True)
    lib = make_device(out, manifest, missing, device)
    config = work / "ketang.toml"
    config.write_text(f'[device]\ndata_dir = "{device}"\n[trust]\nkeys_dir = "{work / "trusted"}"\n'
                      '[zeroconf]\nenabled = false\n', encoding="utf-8")
    need = sum(manifest.blobs()[s] for s in missing)
    store = device / "blobs" / "sha256"

    def stored() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.glob("*/*")}

    started = time.monotonic()
    rewritten = 0
    with web_seed(out) as (url, _):
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with LinkEmulator(("127.0.0.1", port), rate=DROP_RATE) as emu:
            cmd = [sys.executable, "-m", "appliance", "--config", str(config), "sync", "fetch",
                   str(out), "--web-seed", f"http://127.0.0.1:{emu.port}/", "--timeout", "3600"]
            for k in range(kills + 1):
                before = stored()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        cwd=ROOT, text=True)
                if k < kills:
                    target = need * (k + 1) / (kills + 1)
                    while emu.bytes_down < target and proc.poll() is None:
                        time.sleep(0.05)
                    proc.kill()
                    proc.wait()
                else:
                    output, _ = proc.communicate(timeout=3600)
                    assert proc.returncode == 0, output
                now = stored()
                rewritten += sum(1 for sha, was in before.items() if now.get(sha) != was)
            carried = emu.bytes_down + emu.bytes_up
            down = emu.bytes_down
    assert lib.active_version(manifest.channel) == manifest.version
    shutil.rmtree(device)
    return {"need": need, "carried": carried, "down": down, "ratio": carried / need,
            "seconds": time.monotonic() - started, "drops": kills, "rewritten": rewritten}


def report(name: str, rounds: list[dict[str, float]], ideal: float | None = None) -> None:
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    line = (f"{name}: missing {med['need'] / 1e6:.1f} MB, link carried "
            f"{med['carried'] / 1e6:.2f} MB (down {med['down'] / 1e6:.2f}) → ratio "
            f"{med['ratio']:.4f}; {med['seconds']:.1f} s; drops that cut a transfer "
            f"{med['drops']:.0f}")
    if ideal:
        line += f"; ideal {ideal:.1f} s → {med['seconds'] / ideal:.2f}× ideal"
    if "rewritten" in med:
        line += f"; store blobs rewritten {max(r['rewritten'] for r in rounds):.0f}"
    print(line + f"  (median of {len(rounds)}; ratios {[round(r['ratio'], 4) for r in rounds]})",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--total-mb", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", choices=["clean", "drops", "kills", "satellite"], action="append",
                    help="Run only these measurements (repeatable; default: all).")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="Extra libtorrent setting for the device's session (integers).")
    args = ap.parse_args()
    for kv in args.set:
        k, _, v = kv.partition("=")
        SESSION[k] = int(v)
    only = set(args.only or ["clean", "drops", "kills", "satellite"])
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="ketang-bench-sync-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        release = publish_release(work, args.total_mb, rng)
        total = sum(release[1].blobs().values())
        import libtorrent as lt
        piece = lt.load_torrent_buffer(release[4]).ti.piece_length()
        print(f"release: {len(release[1].blobs())} blobs, {total / 1e6:.0f} MB, piece "
              f"{piece // 1024} KiB (published in {time.monotonic() - t0:.0f} s)", flush=True)

        if "clean" in only:
            clean = [one_round(release, pick_missing(release[1], 0.05, rng), work)
                     for _ in range(args.rounds)]
            report("5% missing, clean link", clean)
        if "drops" in only:
            dropped = [one_round(release, pick_missing(release[1], 0.05, rng), work,
                                 rate=DROP_RATE, drop_every=10.0)
                       for _ in range(args.rounds)]
            report("5% missing, link dropped every 10 s at 2 MB/s", dropped)
        if "kills" in only:
            killed = [kill_round(release, pick_missing(release[1], 0.05, rng), work)
                      for _ in range(args.rounds)]
            report("5% missing, `ketang sync fetch` SIGKILLed 3 times, 2 MB/s", killed)
        if "satellite" in only:
            sat = [one_round(release, pick_missing(release[1], 20_000_000, rng,
                                                   only_small=True),
                             work, rate=SATELLITE_RATE, latency=SATELLITE_LATENCY)
                   for _ in range(args.rounds)]
            ideal = statistics.median(r["need"] for r in sat) / SATELLITE_RATE
            report("20 MB missing, 4 Mbit/s, 600 ms RTT", sat, ideal)


if __name__ == "__main__":
    main()
