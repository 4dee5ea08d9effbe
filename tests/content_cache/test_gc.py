"""``ketang gc``: mark-and-sweep of blobs no active release needs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from appliance.cli import main
from content_cache.errors import KetangError
from content_cache.gc import collect_garbage
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish

from ..helpers import make_source, snapshot


def _publish(tmp_path, key, version, lessons, seed="a"):
    out = tmp_path / f"b{version}"
    publish(make_source(tmp_path / f"s{version}", lessons=lessons, seed=seed), "test-channel",
            version, key, out)
    return out


def _blobs(bundle, version):
    m = bundle / "KETANG" / "releases" / "test-channel" / str(version) / "manifest.json"
    return set(parse_manifest(m.read_bytes()).blobs())


def _stored(lib):
    root = lib.data_dir / "blobs" / "sha256"
    return {p.name for p in root.glob("*/*")}


def test_gc_removes_only_what_no_active_release_needs(tmp_path, publisher_key):
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    v1 = _publish(tmp_path, pair.private_path, 1, lessons=3)
    v2 = _publish(tmp_path, pair.private_path, 2, lessons=2)  # drops lesson 3
    import_bundle(v1, lib, load_trusted_keys(trusted))
    import_bundle(v2, lib, load_trusted_keys(trusted))
    only_v1 = _blobs(v1, 1) - _blobs(v2, 2)
    assert len(only_v1) == 2 and _stored(lib) == _blobs(v1, 1) | _blobs(v2, 2)
    (lib.store.tmp_dir / "blob-leftover.part").write_bytes(b"half a blob")

    dry = collect_garbage(lib, dry_run=True)
    assert (dry.blobs_removed, dry.releases_removed) == (2, ["test-channel v1"])
    assert _stored(lib) == _blobs(v1, 1) | _blobs(v2, 2)

    r = collect_garbage(lib)
    assert (r.blobs_kept, r.blobs_removed, r.releases_removed) == (4, 2, ["test-channel v1"])
    assert _stored(lib) == _blobs(v2, 2)
    assert not (lib.data_dir / "releases" / "test-channel" / "1").exists()
    assert [p.name for p in (lib.data_dir / "catalogs" / "test-channel").iterdir()] == [
        lib.active()["test-channel"].catalog_path.name]
    assert list(lib.store.tmp_dir.iterdir()) == []
    cat = lib.catalog("test-channel")
    assert [x["id"] for x in cat.lessons()] == ["l0", "l1"]
    before = snapshot(lib.data_dir)
    assert collect_garbage(lib).blobs_removed == 0
    assert snapshot(lib.data_dir) == before


def test_gc_refuses_while_an_import_holds_the_lock(tmp_path, publisher_key):
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    import_bundle(_publish(tmp_path, pair.private_path, 1, lessons=2), lib,
                  load_trusted_keys(trusted))
    (lib.data_dir / "blobs" / "sha256" / "00").mkdir()
    stray = lib.data_dir / "blobs" / "sha256" / "00" / ("00" * 32)
    stray.write_bytes(b"a blob an import just copied")
    with Library(lib.data_dir).exclusive():  # an import in progress (another process, too)
        with pytest.raises(KetangError, match="another import is running"):
            collect_garbage(lib)
        assert stray.exists()
    assert collect_garbage(lib).blobs_removed == 1


def test_gc_deletes_nothing_when_an_active_manifest_is_missing(tmp_path, publisher_key):
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    import_bundle(_publish(tmp_path, pair.private_path, 1, lessons=2), lib,
                  load_trusted_keys(trusted))
    (lib.data_dir / "releases" / "test-channel" / "1" / "manifest.json").unlink()
    before = snapshot(lib.data_dir)
    with pytest.raises(KetangError, match="garbage collection stopped"):
        collect_garbage(lib)
    assert snapshot(lib.data_dir) == before


def test_ketang_gc_command(tmp_path, sample_device):
    extra = tmp_path / "data" / "blobs" / "sha256" / "ff"
    extra.mkdir(parents=True, exist_ok=True)
    (extra / ("ff" * 32)).write_bytes(b"orphan")
    r = CliRunner().invoke(main, ["--config", str(sample_device), "gc", "--dry-run"])
    assert r.exit_code == 0 and "Would remove 1 files" in r.output, r.output
    r = CliRunner().invoke(main, ["--config", str(sample_device), "gc"])
    assert r.exit_code == 0 and "Removed 1 files" in r.output, r.output
    assert not (extra / ("ff" * 32)).exists()
