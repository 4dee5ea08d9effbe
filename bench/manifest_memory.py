"""Peak memory of reading and activating a manifest: ``python bench/manifest_memory.py``.

A 2 GB Raspberry Pi 4 must survive any manifest the rules allow. Each case runs in a
fresh child process (so peaks do not mix) that reads the manifest's bytes as the
importer does, parses it (``parse_manifest``) and, for ``activate``, builds its
catalog; the child prints its peak RSS (``resource.getrusage``, ru_maxrss). Cases:

- ``national``: a synthetic release of 88,000 resources (``ketang sample``'s tree and
  titles), as the national library is;
- ``largest``: the largest manifest the rules allow: 500,000 nodes and 1,000,000
  resources, short titles so it fits in 256 MiB;
- ``too-many``: 5,000,000 nodes in under 256 MiB, which must be refused (ManifestError)
  while it is read, not after.

The reference is the same child importing the modules and doing nothing else. Figures
are printed, never asserted. ``--cases national`` runs one case; ``--keep DIR`` keeps
the generated manifests.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("national", "largest", "too-many")
PHASES = ("reference", "parse", "activate")


def _national(path: Path) -> None:
    from content_cache.synthetic import generate_sample

    with tempfile.TemporaryDirectory() as tmp:
        rel = generate_sample(88_000, Path(tmp))
        path.write_bytes(rel.manifest_path.read_bytes())


def _write_many(path: Path, nodes: int, resources: int) -> None:
    """A valid manifest of ``nodes`` nodes (a stage … unit chain, then lessons) and
    ``resources`` resources spread over the lessons, with short titles."""
    chain = ["stage", "grade", "subject", "edition", "volume", "unit"]
    lessons = max(1, nodes - len(chain))
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"format":"ketang-release/1","channel":"bench","version":1,'
                '"created":"2026-11-30T00:00:00Z","title":{"zh":"基准","en":"bench"},"nodes":[')
        parent = None
        for i, kind in enumerate(chain):
            sep = "," if i else ""
            f.write(sep + json.dumps({"id": kind, "kind": kind, "title": {"zh": kind},
                                      **({"parent": parent} if parent else {})}))
            parent = kind
        for i in range(lessons):
            f.write(f',{{"id":"l{i}","kind":"lesson","parent":"unit","title":{{"zh":"第{i}课"}}}}')
        f.write('],"resources":[')
        for i in range(resources):
            sep = "," if i else ""
            f.write(f'{sep}{{"id":"r{i}","lesson":"l{i % lessons}","kind":"video",'
                    f'"title":{{"zh":"视频"}},"sha256":"{i:064x}","size":1,'
                    '"media_type":"video/mp4"}')
        f.write("]}\n")


def make_case(case: str, folder: Path) -> Path:
    path = folder / f"{case}.json"
    if not path.exists():
        if case == "national":
            _national(path)
        elif case == "largest":
            from content_cache.manifest import MAX_NODES, MAX_RESOURCES

            _write_many(path, MAX_NODES, MAX_RESOURCES)
        else:
            _write_stages(path, 5_000_000)
    return path


def _write_stages(path: Path, nodes: int) -> None:
    """``nodes`` small valid stage nodes (about 45 bytes each): under 256 MiB for 5,000,000."""
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"format":"ketang-release/1","channel":"bench","version":1,"nodes":[')
        f.write(",".join(f'{{"id":"{i:x}","kind":"stage","title":{{"zh":"x"}}}}'
                         for i in range(nodes)))
        f.write('],"resources":[]}\n')


def child(path: Path, phase: str, work: Path) -> None:
    """Run in a fresh process: do ``phase`` on the manifest at ``path``; print figures."""
    from content_cache.catalog import build_catalog
    from content_cache.errors import ManifestError
    from content_cache.manifest import MAX_MANIFEST_BYTES, parse_manifest

    outcome = "ok"
    start = time.perf_counter()
    if phase != "reference":
        with open(path, "rb") as f:  # as the importer reads it: bounded, whole
            data = f.read(MAX_MANIFEST_BYTES + 1)
        try:
            manifest = parse_manifest(data, where=path.name)
            if phase == "activate":
                del data
                build_catalog(manifest, work / f"{path.stem}.sqlite")
        except ManifestError as e:
            outcome = f"refused: {str(e)[:90]}"
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(peak_mb, 1), "seconds": round(seconds, 2),
                      "outcome": outcome}))


def measure(path: Path, phase: str, work: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(path), "--phase", phase,
                           "--work", str(work)], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--keep", type=Path, help="keep the generated manifests in this folder")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--make", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.phase, args.work)
        return
    if args.make:
        make_case(args.make, args.work)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tmp)
        ref: dict | None = None
        for case in args.cases:
            path = folder / f"{case}.json"
            # Made in a child too: a child's ru_maxrss starts at its parent's at fork.
            subprocess.run([sys.executable, __file__, "--make", case, "--work", str(folder)],
                           check=True)
            size_mb = path.stat().st_size / 2**20
            for phase in ("reference", "parse", "activate"):
                if phase == "reference" and ref is not None:
                    continue
                if phase == "activate" and case == "too-many":
                    continue
                r = measure(path, phase, work)
                if phase == "reference":
                    ref = r
                    print(f"reference (interpreter + modules): peak {r['peak_mb']:.0f} MB")
                    continue
                assert ref is not None
                print(f"{case:9} {size_mb:6.0f} MiB  {phase:8}: peak {r['peak_mb']:7.0f} MB "
                      f"({r['peak_mb'] / ref['peak_mb']:.1f}x reference), {r['seconds']:.1f} s, "
                      f"{r['outcome']}")
                for p in work.glob("*.sqlite*"):
                    p.unlink()


if __name__ == "__main__":
    main()
