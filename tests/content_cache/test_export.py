"""Exporting a bundle for another school, and importing it there."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from content_cache.errors import BlobError, KetangError
from content_cache.export import export_bundle
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, make_source, snapshot


def _manifest(lib: Library, channel: str) -> bytes:
    v = lib.active_version(channel)
    return (lib.release_dir(channel, v) / "manifest.json").read_bytes()


def test_export_then_import_elsewhere(tmp_path, sample_device, demo_keys):
    lib = Library(tmp_path / "data")
    out = tmp_path / "relay"
    seen = []
    r = export_bundle(lib, out, progress=lambda d, t: seen.append((d, t)))
    blobs = parse_manifest(_manifest(lib, "cn-basic-edu-demo")).blobs()
    assert r.releases == [("cn-basic-edu-demo", 1)]
    assert r.blobs_written == len(blobs) and r.bytes_written == sum(blobs.values())
    assert seen[-1] == (r.bytes_written, r.bytes_written)
    other = Library(tmp_path / "other-school")
    (res,) = import_bundle(out, other, load_trusted_keys(demo_keys))
    assert (res.status, res.blobs_copied) == ("activated", len(blobs))
    # Again to the same place: nothing to copy.
    assert export_bundle(lib, out).blobs_written == 0


def test_for_manifest_exports_only_what_the_other_school_lacks(tmp_path, demo_keys):
    lib = Library(tmp_path / "data")
    b1, b2 = tmp_path / "b1", tmp_path / "b2"
    publish(make_source(tmp_path / "s1", lessons=2, seed="a"), "ch", 1, DEMO_KEY, b1)
    src2 = make_source(tmp_path / "s2", lessons=2, seed="a")
    (src2 / "media" / "l1.mp4").write_bytes(b"a new video " * 500)
    publish(src2, "ch", 2, DEMO_KEY, b2)
    theirs = next((b1 / "KETANG" / "releases").rglob("manifest.json"))
    import_bundle(b2, lib, load_trusted_keys(demo_keys))
    r = export_bundle(lib, tmp_path / "relay", for_manifest=theirs)
    assert r.blobs_written == 1
    # The other school (which has v1) can import the delta.
    other = Library(tmp_path / "other")
    import_bundle(b1, other, load_trusted_keys(demo_keys))
    (res,) = import_bundle(tmp_path / "relay", other, load_trusted_keys(demo_keys))
    assert (res.version, res.blobs_copied) == (2, 1)

    # A school without v1 is told whom the drive was made for, not "re-copy it".
    stranger = Library(tmp_path / "third-school")
    with pytest.raises(BlobError, match=r"delta export made for a school that already has ch "
                                        r"v1: it leaves out the \d+ files") as e:
        import_bundle(tmp_path / "relay", stranger, load_trusted_keys(demo_keys))
    assert "Re-copy" not in str(e.value)
    assert stranger.active_version("ch") is None
    # A full export to the same drive is no longer a delta.
    export_bundle(lib, tmp_path / "relay")
    assert not (tmp_path / "relay" / "KETANG" / "delta.json").exists()
    (res,) = import_bundle(tmp_path / "relay", stranger, load_trusted_keys(demo_keys))
    assert res.status == "activated"


def test_a_damaged_delta_note_is_ignored(tmp_path):
    from content_cache.export import read_delta_note

    root = tmp_path / "KETANG"
    root.mkdir()
    for bad in (b"", b"{", b'{"for": 3}', b'{"for": {"channel": "x", "version": "v"}}',
                b"x" * 5000):
        (root / "delta.json").write_bytes(bad)
        assert read_delta_note(root) is None


def test_refusals_write_nothing(tmp_path, sample_device):
    lib = Library(tmp_path / "data")
    out = tmp_path / "relay"
    with pytest.raises(KetangError, match="serves no channel 'nope'"):
        export_bundle(lib, out, channel="nope")
    with pytest.raises(KetangError, match="nothing to export"):
        export_bundle(Library(tmp_path / "empty"), out)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KetangError):
        export_bundle(lib, out, for_manifest=bad)
    assert snapshot(out) == {}


def test_ketang_export_command(tmp_path, sample_device):
    out = tmp_path / "relay"
    r = CliRunner().invoke(main, ["--config", str(sample_device), "export", "--to", str(out),
                                  "--channel", "cn-basic-edu-demo"])
    assert r.exit_code == 0, r.output
    assert "Exported cn-basic-edu-demo v1" in r.output
    assert (out / "KETANG" / "releases" / "cn-basic-edu-demo" / "1" / "manifest.json").is_file()
    r = CliRunner().invoke(main, ["--config", str(sample_device), "export", "--to", str(out),
                                  "--channel", "other"])
    assert r.exit_code == 1 and "serves no channel" in r.output


def test_not_enough_space_is_refused_before_writing(tmp_path, sample_device, monkeypatch):
    import shutil as sh

    real = sh.disk_usage
    monkeypatch.setattr("content_cache.export.shutil.disk_usage",
                        lambda p: real(p)._replace(free=10))
    out = tmp_path / "relay"
    with pytest.raises(KetangError, match="nothing was written"):
        export_bundle(Library(tmp_path / "data"), out)
    assert not (out / "KETANG").exists()
    assert Path(out).is_dir()
