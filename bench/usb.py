"""USB import speed: ``python bench/usb.py [--size-mb 1024] [--rounds 3]`` (run as root).

Publishes a bundle of about SIZE MB of blobs of realistic sizes (lesson videos of
20-60 MB, task-sheet PDFs of about 1 MB, HTML5 zips of about 3 MB), writes it onto a
FAT32 image, attaches the image to a loop device and mounts it the way the watcher
does (read-only; through fusefat where the kernel has no vfat driver). Each round,
with the page cache dropped first, it (a) imports the bundle into a fresh data folder
(every blob hashed and verified, fsynced) and (b) copies the same blob files with
``cp -r`` from the same mount to the same target disk, then ``sync``. Prints the
median throughput of each and the ratio. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from appliance.cli.demo import DEMO_KEY, DEMO_PUB
from appliance.drives.mount import mount_at, mount_readonly, unmount
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish


def make_source(root: Path, size_mb: int, rng: random.Random) -> int:
    """A source tree whose files add up to about ``size_mb`` MB; returns the byte count."""
    media = root / "media"
    media.mkdir(parents=True)
    lessons, total, i = [], 0, 0
    while total < size_mb * 1_000_000:
        files = {"video": (f"l{i}.mp4", rng.randint(20, 60) * 1_000_000),
                 "pdf": (f"l{i}.pdf", rng.randint(500, 1500) * 1_000),
                 "html5": (f"l{i}.zip", rng.randint(2000, 4000) * 1_000)}
        res = []
        for kind, (name, size) in files.items():
            with open(media / name, "wb") as f:
                left = size
                while left:
                    n = min(left, 4 << 20)
                    f.write(os.urandom(n))
                    left -= n
            total += size
            r = {"id": f"l{i}-{kind}", "kind": kind, "title": {"zh": kind},
                 "file": f"media/{name}"}
            if kind == "video":
                r["duration"] = 600.0
            res.append(r)
        lessons.append({"id": f"l{i}", "kind": "lesson", "title": {"zh": f"第{i + 1}课"},
                        "resources": res})
        i += 1

    def node(nid: str, kind: str, children: list) -> dict:
        return {"id": nid, "kind": kind, "title": {"zh": nid}, "children": children}

    tree = node("primary", "stage", [node("g3", "grade", [node("g3-math", "subject", [
        node("g3-math-pep", "edition", [node("v1", "volume", [
            node("u1", "unit", lessons)])])])])])
    doc = {"format": "ketang-source/1", "title": {"zh": "基准"}, "nodes": [tree]}
    (root / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return total


def copy_plain(src: Path, dst: Path) -> None:
    for item in sorted(src.iterdir()):
        if item.is_dir():
            (dst / item.name).mkdir(exist_ok=True)
            copy_plain(item, dst / item.name)
        else:
            shutil.copyfile(item, dst / item.name)


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", type=Path, help="work folder on the target disk (default: /tmp)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/usb.py needs root (losetup, mount).")
    rng = random.Random(6)
    work = Path(tempfile.mkdtemp(prefix="ketang-usb-bench-", dir=args.work))
    loop = None
    try:
        total = make_source(work / "src", args.size_mb, rng)
        publish(work / "src", "bench", 1, DEMO_KEY, work / "bundle")
        shutil.rmtree(work / "src")
        keys = work / "keys"
        keys.mkdir()
        shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
        img = work / "drive.img"
        with open(img, "wb") as f:
            f.truncate(int(total * 1.1) + (128 << 20))
        subprocess.run(["mkfs.vfat", "-F", "32", str(img)], check=True, capture_output=True)
        loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True,
                              capture_output=True, text=True).stdout.strip()
        fill = mount_at(loop, "vfat", work / "fill", rw=True)
        try:
            copy_plain(work / "bundle", fill.mountpoint)
        finally:
            unmount(fill)
        shutil.rmtree(work / "bundle")
        m = mount_readonly(loop, work / "media", "vfat")
        print(f"bundle: {total / 1e6:.0f} MB of blobs on a FAT32 image at {loop}, "
              f"mounted by {m.driver}; target {work}")
        dropped = True
        ours, cps = [], []
        try:
            for r in range(args.rounds):
                dropped &= drop_caches()
                t0 = time.perf_counter()
                import_bundle(m.mountpoint, Library(work / f"data{r}"),
                              load_trusted_keys(keys))
                ours.append(total / (time.perf_counter() - t0) / 1e6)
                shutil.rmtree(work / f"data{r}")
                dropped &= drop_caches()
                t0 = time.perf_counter()
                subprocess.run(["cp", "-r", str(m.mountpoint / "KETANG" / "blobs"),
                                str(work / f"cp{r}")], check=True)
                os.sync()
                cps.append(total / (time.perf_counter() - t0) / 1e6)
                shutil.rmtree(work / f"cp{r}")
                print(f"round {r + 1}: ketang import {ours[-1]:.1f} MB/s, cp {cps[-1]:.1f} MB/s")
        finally:
            unmount(m)
        a, b = statistics.median(ours), statistics.median(cps)
        print(f"median over {args.rounds} rounds ({total / 1e6:.0f} MB"
              f"{'' if dropped else ', page cache NOT dropped'}): "
              f"ketang import {a:.1f} MB/s (verified), cp {b:.1f} MB/s, ratio {a / b:.2f}")
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
