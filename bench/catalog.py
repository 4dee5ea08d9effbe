"""Catalog benchmark at national scale: ``python bench/catalog.py [--resources 88000]``.

Writes a synthetic release (``ketang sample``), imports and activates it into a fresh
data folder, and prints medians: import+activation time, catalog size, search
latency (median and p95 over 20 Chinese and English queries), and lesson-open time.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from content_cache.catalog import build_catalog
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.synthetic import DEMO_KEY, generate_sample

QUERIES = ["分数", "加法", "古诗", "分数的加法", "乘法口诀", "静夜思", "光合作用", "欧姆定律",
           "丝绸之路", "三角形", "数学 分数", "视频", "fraction", "addition", "poems",
           "Newton", "photosynthesis", "silk road", "times tables", "lesson 3"]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resources", type=int, default=88_000)
    ap.add_argument("--rounds", type=int, default=5, help="times each query is run")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ketang-bench-"))
    try:
        bundle, data, keys = work / "bundle", work / "data", work / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO_KEY.with_suffix(".pub"), keys / "demo.pub")
        t = time.perf_counter()
        rel = generate_sample(args.resources, bundle)
        print(f"sample release: {rel.resources} resources, {rel.nodes} nodes, "
              f"written in {time.perf_counter() - t:.1f} s")
        lib = Library(data)
        t = time.perf_counter()
        import_bundle(bundle, lib, load_trusted_keys(keys))
        print(f"import + activation: {time.perf_counter() - t:.1f} s")
        cat = lib.catalog(rel.channel)
        print(f"catalog size: {cat.path.stat().st_size / 1e6:.1f} MB")
        manifest = parse_manifest(rel.manifest_path.read_bytes())
        t = time.perf_counter()
        build_catalog(manifest, work / "again.sqlite", has_blob=lib.store.has)
        print(f"  of which catalog build (again, alone): {time.perf_counter() - t:.1f} s")

        cat.search("预热")  # open the connection
        per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
        hits: dict[str, int] = {}
        for _ in range(args.rounds):
            for q in QUERIES:
                t = time.perf_counter()
                hits[q] = len(cat.search(q))
                per_query[q].append(time.perf_counter() - t)
        medians = [statistics.median(v) for v in per_query.values()]
        all_times = sorted(x for v in per_query.values() for x in v)
        p95 = all_times[int(0.95 * (len(all_times) - 1))]
        print(f"search over {len(QUERIES)} queries x {args.rounds}: median "
              f"{ms(statistics.median(all_times))}, p95 {ms(p95)}, slowest query median "
              f"{ms(max(medians))}")
        for q in QUERIES:
            print(f"  {q!r:>20}: {hits[q]:3d} hits, median {ms(statistics.median(per_query[q]))}")

        ids = [row[0] for row in cat.db.execute_sql(
            "SELECT id FROM node WHERE kind = 'lesson'")]
        sample = random.Random(1).sample(ids, min(500, len(ids)))
        times = []
        for lid in sample:
            t = time.perf_counter()
            lesson = cat.lesson(lid)
            times.append(time.perf_counter() - t)
            assert lesson and lesson["resources"]
        print(f"lesson open ({len(sample)} lessons): median {ms(statistics.median(times))}, "
              f"p95 {ms(sorted(times)[int(0.95 * (len(times) - 1))])}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
