"""Messages that say what happened, to which disk, and what to do (issue 14, item 3).

Real parts: a tmpfs data disk that runs out of room mid-copy, FAT32 drive images on loop
devices read through the FUSE driver, a drive unmounted lazily while it is read, and a
drive whose first sector is zeroed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from appliance.cli import main
from appliance.drives.watcher import DriveWatcher
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, make_source, write_config
from .loopdev import fill_files, loop, make_image, needs_loop, small_disk
from .test_drives_watcher import drive_config, settings_for

pytestmark = needs_loop


def _two_versions(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "v1", tmp_path / "v2"
    publish(make_source(tmp_path / "s1", lessons=2, seed="a"), "cn-basic-edu", 1, DEMO_KEY, old)
    publish(make_source(tmp_path / "s2", lessons=3, seed="b"), "cn-basic-edu", 2, DEMO_KEY, new)
    return old, new


def _leftovers(data: Path) -> list[Path]:
    return list((data / "blobs" / "tmp").iterdir()) + list(data.glob("catalogs/*/*.building"))


def test_a_data_disk_that_fills_during_the_copy_says_so(tmp_path, demo_keys):
    old, new = _two_versions(tmp_path)
    with small_disk(tmp_path / "disk", 16, inodes=400) as disk:
        data = disk / "data"
        import_bundle(old, Library(data), load_trusted_keys(demo_keys))
        fill_files(disk / "other", leave=1)  # one new file fits, the second does not
        config = write_config(tmp_path / "k.toml", data, demo_keys)
        config.write_text(config.read_text().replace("[device]\n", "[device]\nreserve_mb = 0\n"))
        r = CliRunner().invoke(main, ["--config", str(config), "import", str(new)])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and "Errno" not in r.output
        assert f"the data disk ({data}) is full" in r.output, r.output
        assert "nothing was activated" in r.output and "ketang gc" in r.output
        assert Library(data).active_version("cn-basic-edu") == 1
        assert _leftovers(data) == []


def test_a_data_disk_that_fills_is_not_blamed_on_the_drive(tmp_path, demo_keys):
    old, new = _two_versions(tmp_path)
    img = make_image(tmp_path / "d.img", "vfat", 40, new)
    with small_disk(tmp_path / "disk", 16, inodes=400) as disk, loop(img) as dev:
        s = settings_for(tmp_path, demo_keys)
        s = s.with_overrides("device", data_dir=disk / "data", reserve_mb=0)
        import_bundle(old, Library(s.device.data_dir), load_trusted_keys(demo_keys))
        fill_files(disk / "other", leave=1)
        outcome = DriveWatcher(s).insert(dev)
        assert outcome.state == "error"
        assert "pulled" not in outcome.message and "the data disk" in outcome.message
        entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev).name]
        assert entry["error_code"] == "data-disk"
        assert entry["error_params"] == {"data_dir": str(s.device.data_dir)}
        assert Library(s.device.data_dir).active_version("cn-basic-edu") == 1


def test_a_drive_unmounted_while_read_is_said_to_be_gone(tmp_path, demo_keys):
    old, new = _two_versions(tmp_path)
    img = make_image(tmp_path / "d.img", "vfat", 40, new)
    s = settings_for(tmp_path, demo_keys)
    import_bundle(old, Library(s.device.data_dir), load_trusted_keys(demo_keys))
    watcher = DriveWatcher(s)
    with loop(img) as dev:
        def detach(done: int, total: int) -> None:
            if watcher.on_progress is not None:
                watcher.on_progress = None
                subprocess.run(["umount", "-l", str(s.drives.mount_root / Path(dev).name)],
                               check=True)

        watcher.on_progress = detach
        outcome = watcher.insert(dev)
    assert outcome.state == "error" and outcome.code == "pulled"
    assert "not a regular file" not in outcome.message and "lacks" not in outcome.message
    assert "removed or unmounted" in outcome.message and "Plug the drive in again" in (
        outcome.message)
    assert Library(s.device.data_dir).active_version("cn-basic-edu") == 1


def test_a_drive_with_a_zeroed_boot_sector_is_an_error_in_words(tmp_path, sample_bundle,
                                                                demo_keys):
    img = make_image(tmp_path / "z.img", "vfat", 40, sample_bundle)
    with open(img, "r+b") as f:
        f.write(b"\0" * 512)
    cfg = drive_config(tmp_path, demo_keys)
    with loop(img) as dev:
        r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "insert", dev])
    assert r.exit_code == 1, r.output
    assert f"{dev} holds no filesystem" in r.output and "format it FAT32" in r.output
    entry = json.loads((tmp_path / "drives.json").read_text())["drives"][Path(dev).name]
    assert entry["state"] == "error" and entry["error_code"] == "no-filesystem"
    assert not (tmp_path / "data").exists()
