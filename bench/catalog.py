"""Catalog benchmark at national scale: ``python bench/catalog.py [--resources 88000]``.

Writes a synthetic release (``ketang sample``), imports and activates it into a fresh
data folder, and prints medians: import+activation time, catalog size, search
latency (median and p95 over 20 Chinese and English queries), and lesson-open time;
then precision at 10 of what a child types (characters, pinyin, initials, a grade)
against the lessons meant, found by scanning the manifest.
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


# (what a child types, the word she means in a title, the grade she means or None)
CHILD_QUERIES = [
    ("分数", "分数", None), ("fenshu", "分数", None), ("fs", "分数", None),
    ("春", "春", None), ("春晓", "春晓", None), ("chunxiao", "春晓", None),
    ("gushi", "古诗|故事", None), ("jiafa", "加法", None), ("ghzy", "光合作用", None),
    ("光合作用", "光合作用", None), ("sanjiaoxing", "三角形", None), ("磁铁", "磁铁", None),
    ("三年级 分数", "分数", "三年级"), ("Grade 3 fractions", "fractions", "Grade 3"),
    ("photosynthesis", "photosynthesis", None), ("silk road", "silk road", None),
    ("Newton", "newton", None), ("乘法口诀", "乘法口诀", None), ("cfkj", "乘法口诀", None),
    ("jingyesi", "静夜思", None),
]


def meant(manifest, word: str, grade: str | None) -> set[str]:
    """The lessons a query means: one of the words (``|``-separated: homophones such as
    gushi, 古诗 or 故事) in the title, and under the grade if one is given."""
    by_id = {n.id: n for n in manifest.nodes}

    def ancestors(n):
        while n.parent:
            n = by_id[n.parent]
            yield n

    out = set()
    for n in manifest.nodes:
        if n.kind != "lesson":
            continue
        title = f"{n.title.get('zh', '')} {n.title.get('en', '')}".lower()
        if not any(w.lower() in title for w in word.split("|")):
            continue
        if grade is None or any(grade.lower() in f"{a.title.get('zh')} {a.title.get('en')}"
                                .lower() for a in ancestors(n)):
            out.add(n.id)
    return out


def precision_at_10(cat, manifest) -> None:
    """Print each child query's precision at 10 and latency, then the mean and p95."""
    precisions, times = [], []
    for q, word, grade in CHILD_QUERIES:
        want = meant(manifest, word, grade)
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            top = [r["id"] for r in cat.search(q, limit=10)]
            runs.append(time.perf_counter() - t)
        times += runs
        p = len(set(top) & want) / min(10, len(want)) if want else float(not top)
        precisions.append(p)
        print(f"  {q!r:>22}: precision@10 {p:.2f} ({len(want)} meant), "
              f"median {ms(statistics.median(runs))}")
    times.sort()
    print(f"child queries: mean precision@10 {statistics.mean(precisions):.3f}, "
          f"latency median {ms(statistics.median(times))}, "
          f"p95 {ms(times[int(0.95 * (len(times) - 1))])}")


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
        precision_at_10(cat, manifest)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
