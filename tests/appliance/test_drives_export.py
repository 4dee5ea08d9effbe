"""Exporting onto a real, small drive that fills up mid-way."""

from __future__ import annotations

import hashlib
import os

import pytest

from appliance.drives.mount import mount_at, unmount
from content_cache.errors import KetangError
from content_cache.export import export_bundle
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, make_source
from .loopdev import loop, make_image, needs_loop

pytestmark = needs_loop


@pytest.mark.parametrize("fstype", ["ext4", "vfat"])
def test_a_drive_that_fills_during_export_holds_nothing_that_looks_complete(
        tmp_path, demo_keys, fstype):
    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys

    src = make_source(tmp_path / "src", lessons=4, seed="f")
    for i in range(4):  # blobs of 300 kB each, so the drive fills mid-way
        (src / "media" / f"l{i}.mp4").write_bytes(os.urandom(300_000))
    publish(src, "ch", 1, DEMO_KEY, tmp_path / "b")
    lib = Library(tmp_path / "data")
    import_bundle(tmp_path / "b", lib, load_trusted_keys(demo_keys))
    img = make_image(tmp_path / "small.img", fstype, 8 if fstype == "ext4" else 34)
    with loop(img) as dev:
        m = mount_at(dev, fstype, tmp_path / "drive", rw=True)
        try:
            calls = 0

            def fill(done: int, total: int) -> None:
                # Something else fills the drive once the first blob is in.
                nonlocal calls
                calls += 1
                if calls == 1:
                    with open(m.mountpoint / "filler", "wb") as f:
                        try:
                            while True:
                                f.write(b"\0" * 65536)
                        except OSError:
                            pass

            # The kernel says ENOSPC ("filled up"); fusefat reports a full FAT as EPERM.
            with pytest.raises(KetangError, match="filled up" if fstype == "ext4" else "failed"):
                export_bundle(lib, m.mountpoint, progress=fill)
            files = [p for p in (m.mountpoint / "KETANG").rglob("*") if p.is_file()]
            assert not [p for p in files if p.name.endswith(".part")]
            assert not [p for p in files if p.name.startswith("manifest")]
            for p in files:  # every blob with a final name is complete
                assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
            if fstype == "vfat":
                # fusefat leaves a folder made on a full FAT unusable even after space is
                # freed, so finishing the export is checked on ext4 only.
                return
            # Space freed: the export finishes, keeping what was already written.
            os.unlink(m.mountpoint / "filler")
            r = export_bundle(lib, m.mountpoint)
            assert r.blobs_written < 8
            assert (m.mountpoint / "KETANG/releases/ch/1/manifest.json").is_file()
        finally:
            unmount(m)
