"""The catalog's space estimate and a failed activation (issue 14, item 7).

A catalog's size grows with its text, above all in the search indexes (each lesson also
indexes its ancestors' titles): 1 KiB per node was beaten 200 times by long titles. The
estimate now comes from the manifest's own text; an activation that fails anyway (the
disk filled by something else) removes what it wrote and says so in one line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from content_cache.catalog import build_catalog, estimate_catalog_bytes
from content_cache.errors import DataDiskError
from content_cache.importer import import_bundle, space_needed
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import MAX_TEXT, Manifest, Node, Resource, parse_manifest


def long_titles(lessons: int, chars: int, seed: int = 1, resources: bool = True) -> Manifest:
    """A tree whose every title and description is ``chars`` random characters."""
    rng = random.Random(seed)

    def zh() -> str:
        return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(chars))

    def en() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(chars))

    nodes, parent = [], None
    for kind in ("stage", "grade", "subject", "edition", "volume", "unit"):
        nodes.append(Node(kind, kind, {"zh": zh(), "en": en()}, parent))
        parent = kind
    res = []
    for i in range(lessons):
        nodes.append(Node(f"l{i}", "lesson", {"zh": zh(), "en": en()}, parent,
                          {"zh": zh(), "en": en()}))
        if resources:
            res.append(Resource(f"l{i}-v", f"l{i}", "video", {"zh": zh()},
                                f"{rng.getrandbits(256):064x}", 10, "video/mp4"))
    return Manifest("long", 1, "", {"zh": "长"}, nodes, res)


@pytest.mark.parametrize("lessons, chars", [(40, 1000), (8, MAX_TEXT)])
def test_the_estimate_covers_a_catalog_of_long_titles(tmp_path, lessons, chars):
    manifest = long_titles(lessons, chars)
    built = build_catalog(manifest, tmp_path / "c.sqlite").stat().st_size
    rows = len(manifest.nodes) + len(manifest.resources)
    assert built > 50 * 1024 * rows  # what 1 KiB per node missed
    assert estimate_catalog_bytes(manifest) >= built
    assert space_needed(manifest, 0, 0) >= built


def test_the_estimate_of_an_ordinary_release_is_not_wildly_high(tmp_path, sample_bundle):
    manifest = parse_manifest(next((sample_bundle / "KETANG").rglob("manifest.json"))
                              .read_bytes())
    built = build_catalog(manifest, tmp_path / "c.sqlite").stat().st_size
    assert built <= estimate_catalog_bytes(manifest) <= 4 * built + 2 * 1024 * 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_failed_activation_removes_what_it_wrote_and_says_so(tmp_path, sample_bundle,
                                                                demo_keys):
    """The data disk fills while the catalog is built (here: activation called directly,
    as after a space check something else beat): one clear error, nothing left behind."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], check=True)
    try:
        lib = Library(disk / "data")
        import_bundle(sample_bundle, lib, load_trusted_keys(demo_keys))
        before = {p: p.read_bytes() for p in lib.data_dir.rglob("*") if p.is_file()}
        big = long_titles(40, 1000, resources=False)  # no blob needed: every lesson shown
        data = json.dumps({"long": True}).encode()
        with pytest.raises(DataDiskError) as caught, lib.exclusive():
            lib.activate_all([(big, data, b"sig")])
        message = str(caught.value)
        assert "cannot rollback" not in message
        assert f"the data disk ({lib.data_dir}) is full" in message
        assert "Nothing was activated (long v1)" in message and "were removed" in message
        after = {p: p.read_bytes() for p in lib.data_dir.rglob("*") if p.is_file()}
        assert {p for p in after if p.name != ".lock"} == {p for p in before
                                                           if p.name != ".lock"}
        assert not (lib.data_dir / "releases" / "long").exists()
        assert lib.active_version("long") is None
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)

