"""The drive watcher end to end: real FAT32/ext4 images on loop devices, real pyudev devices.

No udev daemon runs in CI, so each test builds a real ``pyudev.Device`` from the loop
device node and hands it to the watcher as a ``MonitorObserver`` callback would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import pyudev

from appliance.config import DeviceSettings, DrivesSettings, Settings, TrustSettings
from appliance.drives.mount import is_mounted, mount_at, unmount
from appliance.drives.watcher import DriveWatcher
from content_cache.blobstore import BlobStore
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish

from ..helpers import DEMO_KEY, make_source, snapshot
from ..support.needs import require
from .loopdev import loop, make_image, needs_loop

pytestmark = needs_loop


def settings_for(tmp_path: Path, keys_dir: Path) -> Settings:
    return Settings(
        device=DeviceSettings(name="红星小学 Red Star", id="rs-001", data_dir=tmp_path / "data"),
        trust=TrustSettings(keys_dir=keys_dir),
        drives=DrivesSettings(mount_root=tmp_path / "media", status_file=tmp_path / "run" /
                              "drives.json"),
    )


def udev_device(node: str) -> pyudev.Device:
    return pyudev.Devices.from_device_file(pyudev.Context(), node)


def read_drive(dev: str, tmp_path: Path, fstype: str = "vfat") -> dict[str, bytes]:
    """Every file on the drive (mounted read-only here just to look)."""
    m = mount_at(dev, fstype, tmp_path / "look", rw=False)
    try:
        return snapshot(m.mountpoint)
    finally:
        unmount(m)


def outbox_files(files: dict[str, bytes], device_id: str = "rs-001") -> dict[str, dict]:
    prefix = f"KETANG/outbox/{device_id}/"
    return {k[len(prefix):]: json.loads(v) for k, v in files.items() if k.startswith(prefix)}


@pytest.mark.slow
def test_two_drives_one_after_the_other(tmp_path, sample_bundle, demo_keys):
    second = tmp_path / "second-bundle"
    publish(make_source(tmp_path / "src2", lessons=2, seed="z"), "second-ch", 3, DEMO_KEY,
            second)
    img_a = make_image(tmp_path / "a.img", "vfat", 40, sample_bundle)
    img_b = make_image(tmp_path / "b.img", "vfat", 40, second)
    s = settings_for(tmp_path, demo_keys)
    seen: list[tuple[int, int]] = []
    shown: list[dict] = []

    def watch(done: int, total: int) -> None:
        seen.append((done, total))
        shown.append(json.loads(s.drives.status_file.read_text())["drives"])

    watcher = DriveWatcher(s, on_progress=watch)
    with loop(img_a) as dev_a, loop(img_b) as dev_b:
        out_a = watcher.handle_event("add", udev_device(dev_a))
        out_b = watcher.handle_event("add", udev_device(dev_b))
        assert out_a.state == "done", out_a.message
        assert out_b.state == "done", out_b.message
        assert [(r.channel, r.version, r.status) for r in out_a.results] == [
            ("cn-basic-edu-demo", 1, "activated")]
        assert [(r.channel, r.version) for r in out_b.results] == [("second-ch", 3)]
        lib = Library(s.device.data_dir)
        assert {ch: r.version for ch, r in lib.active().items()} == {
            "cn-basic-edu-demo": 1, "second-ch": 3}
        assert seen and seen[-1][0] == seen[-1][1] > 0
        # While importing, the dashboard's file said so, in words, for the right drive.
        during = shown[0][Path(dev_a).name]
        assert during["state"] == "importing" and "don't remove the drive" in during["message"]
        assert "请勿拔出" in during["message"] and during["total_bytes"] == seen[0][1]
        status = json.loads(s.drives.status_file.read_text())["drives"]
        for dev in (dev_a, dev_b):
            entry = status[Path(dev).name]
            assert entry["state"] == "done"
            assert "safe to remove" in entry["message"] and "可以安全拔出" in entry["message"]
            assert not is_mounted(s.drives.mount_root / Path(dev).name)
        # Each drive carries its own status report, naming this device and what it serves.
        reports_a = outbox_files(read_drive(dev_a, tmp_path))
        reports_b = outbox_files(read_drive(dev_b, tmp_path))
        assert len(reports_a) == len(reports_b) == 1
        (rep_a,) = reports_a.values()
        assert rep_a["device_id"] == "rs-001" and rep_a["school"] == "红星小学 Red Star"
        assert rep_a["releases"] == {"cn-basic-edu-demo": 1}
        assert rep_a["last_sync"]["imported"][0]["status"] == "activated"
        assert rep_a["disk"]["free_bytes"] > 0
        (rep_b,) = reports_b.values()
        assert rep_b["releases"] == {"cn-basic-edu-demo": 1, "second-ch": 3}
        # The same drive again: nothing to copy, and the old report is kept, not overwritten.
        again = watcher.handle_event("add", udev_device(dev_a))
        assert again.state == "done" and again.results[0].status == "up-to-date"
        reports_a2 = outbox_files(read_drive(dev_a, tmp_path))
        assert len(reports_a2) == 2
        assert reports_a2[next(iter(reports_a))] == rep_a
        # udev says the drive left: a finished drive drops off the dashboard.
        watcher.handle_event("remove", udev_device(dev_a))
        assert Path(dev_a).name not in json.loads(s.drives.status_file.read_text())["drives"]


def test_a_bundle_signed_by_an_untrusted_key_imports_nothing(tmp_path, publisher_key,
                                                             demo_keys):
    pair, _ = publisher_key
    bundle = tmp_path / "bundle"
    publish(make_source(tmp_path / "src"), "cn-basic-edu", 1, pair.private_path, bundle)
    img = make_image(tmp_path / "u.img", "vfat", 40, bundle)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        outcome = DriveWatcher(s).handle_event("add", udev_device(dev))
        assert outcome.state == "error"
        assert "does not trust" in outcome.message
        assert Library(s.device.data_dir).active() == {}
        assert not list((s.device.data_dir / "blobs").rglob("*")) if (
            s.device.data_dir / "blobs").exists() else True
        entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev).name]
        assert entry["state"] == "error" and "does not trust" in entry["message"]
        # The trip back still happens: the report says why nothing came in.
        (report,) = outbox_files(read_drive(dev, tmp_path)).values()
        assert "does not trust" in report["last_sync"]["error"]


def test_symlinks_and_device_files_on_a_drive_are_refused(tmp_path, sample_bundle, demo_keys):
    content = tmp_path / "content"
    subprocess.run(["cp", "-r", str(sample_bundle), str(content)], check=True)
    blobs = content / "KETANG" / "blobs" / "sha256"
    first = sorted(blobs.iterdir())[0]
    # A blob folder swapped for a symlink would make the device read outside KETANG/.
    subprocess.run(["mv", str(first), str(tmp_path / "moved")], check=True)
    os.symlink(tmp_path / "moved", first)
    os.mkfifo(content / "KETANG" / "fifo")
    img = make_image(tmp_path / "bad.img", "ext4", 32, content)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        outcome = DriveWatcher(s).handle_event("add", udev_device(dev))
    assert outcome.state == "error"
    assert "symlink" in outcome.message and "FIFO" in outcome.message
    assert "nothing imported" in outcome.message
    assert snapshot(s.device.data_dir) == {}
    assert not is_mounted(s.drives.mount_root / Path(dev).name)


def test_a_device_file_on_a_drive_is_refused(tmp_path, sample_bundle, demo_keys):
    content = tmp_path / "content"
    subprocess.run(["cp", "-r", str(sample_bundle), str(content)], check=True)
    try:
        os.mknod(content / "KETANG" / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        require("this machine does not allow mknod, so no device file can be made")
    img = make_image(tmp_path / "dev.img", "ext4", 32, content)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        outcome = DriveWatcher(s).handle_event("add", udev_device(dev))
    assert outcome.state == "error" and "a device file" in outcome.message
    assert snapshot(s.device.data_dir) == {}


@pytest.mark.slow
def test_a_drive_pulled_mid_import_changes_nothing_and_resumes(tmp_path, demo_keys):
    old = tmp_path / "old"
    publish(make_source(tmp_path / "src1", lessons=2, seed="a"), "cn-basic-edu", 1, DEMO_KEY,
            old)
    new = tmp_path / "new"
    publish(make_source(tmp_path / "src2", lessons=6, seed="b"), "cn-basic-edu", 2, DEMO_KEY,
            new)
    s = settings_for(tmp_path, demo_keys)
    lib = Library(s.device.data_dir)
    import_bundle(old, lib, load_trusted_keys(demo_keys))
    manifest = parse_manifest(next((new / "KETANG" / "releases").rglob("manifest.json"))
                              .read_bytes())
    wanted = manifest.blobs()
    img = make_image(tmp_path / "new.img", "vfat", 40, new)
    calls = 0

    with loop(img) as dev:
        watcher = DriveWatcher(s)

        def pull(done: int, total: int) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:  # two blobs are in; the drive vanishes while the third is read
                m = watcher._mounted[Path(dev).name]
                assert m.fuse_pid is not None, "this test pulls the drive by killing FUSE"
                os.kill(m.fuse_pid, signal.SIGKILL)

        watcher.on_progress = pull
        outcome = watcher.handle_event("add", udev_device(dev))
        assert outcome.state == "error"
        assert "pulled" in outcome.message and "resume" in outcome.message
        assert lib.active_version("cn-basic-edu") == 1  # still serving the old release
        store = BlobStore(s.device.data_dir)
        kept = [sha for sha in wanted if store.has(sha)]
        assert 1 <= len(kept) < len(wanted)
        assert not list(store.tmp_dir.iterdir()), "a partial blob was left behind"
        entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev).name]
        assert entry["state"] == "error" and "pulled" in entry["message"]
        assert not is_mounted(s.drives.mount_root / Path(dev).name)

        # Plugged in again: only what was not yet verified is copied.
        watcher.on_progress = None
        again = watcher.handle_event("add", udev_device(dev))
        assert again.state == "done", again.message
        (r,) = again.results
        assert (r.version, r.status) == (2, "activated")
        assert r.blobs_copied == len(wanted) - len(kept)
        assert lib.active_version("cn-basic-edu") == 2


def test_ketang_drives_insert_does_the_same_by_hand(tmp_path, sample_bundle, demo_keys):
    from click.testing import CliRunner

    from appliance.cli import main

    cfg = tmp_path / "ketang.toml"
    cfg.write_text(
        f'[device]\nid = "cli-01"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[trust]\nkeys_dir = "{demo_keys}"\n'
        f'[drives]\nmount_root = "{tmp_path / "media"}"\n'
        f'status_file = "{tmp_path / "drives.json"}"\n')
    img = make_image(tmp_path / "c.img", "vfat", 40, sample_bundle)
    with loop(img) as dev:
        r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "insert", dev])
        assert r.exit_code == 0, r.output
        assert "cn-basic-edu-demo v1: activated" in r.output
        assert "Report written: status-" in r.output
        r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "status"])
        assert f"{Path(dev).name}: 完成" in r.output and "safe to remove" in r.output
        assert len(outbox_files(read_drive(dev, tmp_path), "cli-01")) == 1


def test_a_drive_lacking_blobs_is_handed_to_the_sync_service(tmp_path, sample_bundle,
                                                             demo_keys):
    """A drive that carries a release's torrent but not all its blobs: what it has comes in,
    and the release is staged for the sync service to fetch the rest (issue 7's drive source)."""
    from dataclasses import replace

    from appliance.config import SyncSettings

    bundle = tmp_path / "bundle"
    shutil.copytree(sample_bundle, bundle)
    blobs = sorted(p for p in (bundle / "KETANG" / "blobs").rglob("*") if p.is_file())
    blobs[0].unlink()
    assert list((bundle / "KETANG").rglob("release.torrent"))
    img = make_image(tmp_path / "u.img", "vfat", 80, bundle)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        refused = DriveWatcher(s).handle_event("add", udev_device(dev))
        assert refused.state == "error" and "lacks blob" in refused.message  # sync off
        s = replace(s, sync=SyncSettings(enabled=True))
        outcome = DriveWatcher(s).handle_event("add", udev_device(dev))
    assert outcome.state == "done", outcome.message
    assert "handed to the sync service" in outcome.message
    assert Library(s.device.data_dir).active() == {}          # nothing half-activated
    staged = list((s.device.data_dir / "sync").rglob("release.torrent"))
    assert len(staged) == 1 and staged[0].parent.name == "1"
    have = {p.name for p in (s.device.data_dir / "blobs").rglob("*") if p.is_file()}
    assert blobs[0].name not in have and blobs[1].name in have   # verified blobs came in


def test_a_drive_brings_only_the_subscribed_subjects(tmp_path, sample_bundle, demo_keys):
    from dataclasses import replace

    from appliance.config import SubscriptionsSettings
    from content_cache.subscription import Subscription

    img = make_image(tmp_path / "u.img", "vfat", 80, sample_bundle)
    s = replace(settings_for(tmp_path, demo_keys),
                subscriptions=SubscriptionsSettings(subjects=["数学"]))
    with loop(img) as dev:
        outcome = DriveWatcher(s).handle_event("add", udev_device(dev))
    assert outcome.state == "done", outcome.message
    manifest_path = next((sample_bundle / "KETANG" / "releases").rglob("manifest.json"))
    manifest = parse_manifest(manifest_path.read_bytes())
    wanted = set(Subscription(subjects=("数学",)).blobs(manifest))
    have = {p.name for p in (s.device.data_dir / "blobs" / "sha256").rglob("*") if p.is_file()}
    assert have == wanted and len(wanted) < len(manifest.blobs())
