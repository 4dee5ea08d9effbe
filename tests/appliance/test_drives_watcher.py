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
from appliance.drives.mount import is_mounted, kernel_has, mount_at, mounts_under, unmount
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


def drive_config(tmp_path: Path, keys_dir: Path) -> Path:
    """A config file for `ketang drives insert` (device id cli-01) under ``tmp_path``."""
    cfg = tmp_path / "ketang.toml"
    cfg.write_text(
        f'[device]\nid = "cli-01"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[trust]\nkeys_dir = "{keys_dir}"\n'
        f'[drives]\nmount_root = "{tmp_path / "media"}"\n'
        f'status_file = "{tmp_path / "drives.json"}"\n')
    return cfg


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

    cfg = drive_config(tmp_path, demo_keys)
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


@pytest.mark.parametrize("content", ["empty-ketang", "no-ketang"])
def test_a_drive_brought_only_to_carry_reports_gets_them(tmp_path, demo_keys, content):
    """A drive with an empty KETANG/ (or an old outbox only), or none at all: the reports
    are written, `ketang drives insert` exits 0, and the status says why no lessons came."""
    from click.testing import CliRunner

    from appliance.cli import main

    cfg = tmp_path / "ketang.toml"
    cfg.write_text(
        f'[device]\nid = "cli-01"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[trust]\nkeys_dir = "{demo_keys}"\n'
        f'[drives]\nmount_root = "{tmp_path / "media"}"\n'
        f'status_file = "{tmp_path / "drives.json"}"\n')
    src = tmp_path / "drive-content"
    (src / "notes").mkdir(parents=True)
    (src / "notes" / "teacher.txt").write_text("mine")
    if content == "empty-ketang":
        (src / "KETANG" / "outbox" / "other-device").mkdir(parents=True)
    img = make_image(tmp_path / "r.img", "vfat", 40, src)
    with loop(img) as dev:
        r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "insert", dev])
        assert r.exit_code == 0, r.output
        assert "Report written: status-" in r.output and "no lessons" in r.output
        r = CliRunner().invoke(main, ["--config", str(cfg), "drives", "status"])
        assert "no lessons" in r.output and "safe to remove" in r.output, r.output
        files = read_drive(dev, tmp_path)
    assert len(outbox_files(files, "cli-01")) == 1
    assert files["notes/teacher.txt"] == b"mine"
    assert not (tmp_path / "data" / "blobs").exists() or \
        not any((tmp_path / "data" / "blobs").rglob("*"))


def test_no_drive_stops_the_watcher(tmp_path, sample_bundle, demo_keys, monkeypatch):
    """Whatever goes wrong with one drive (here an error nobody foresaw, as the RecursionError
    of a '[' * 4000 signature was), it is reported, the drive is unmounted, the status file
    never stays at "mounting", and the next drive is imported."""
    from appliance.drives import watcher as watcher_module

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    good = make_image(tmp_path / "good.img", "vfat", 40, sample_bundle)
    bad = make_image(tmp_path / "bad.img", "vfat", 40, sample_bundle)
    s = settings_for(tmp_path, demo_keys)
    watcher = DriveWatcher(s)
    with loop(bad) as dev_bad, loop(good) as dev_good:
        monkeypatch.setattr(watcher_module, "import_bundle", broken)
        assert watcher(udev_device_with_action(dev_bad, "add")) is not None  # no exception
        entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev_bad).name]
        assert entry["state"] == "error" and entry["error_code"] == "internal"
        assert "RecursionError" in entry["message"] and "you may remove it" in entry["message"]
        assert not is_mounted(s.drives.mount_root / Path(dev_bad).name)
        monkeypatch.undo()
        outcome = watcher(udev_device_with_action(dev_good, "add"))
        assert outcome.state == "done", outcome.message
        assert Library(s.device.data_dir).active_version("cn-basic-edu-demo") == 1


def test_a_drive_with_a_unicode_digit_version_folder_is_refused_in_words(tmp_path,
                                                                          sample_bundle,
                                                                          demo_keys):
    content = tmp_path / "content"
    shutil.copytree(sample_bundle, content)
    releases = content / "KETANG" / "releases" / "cn-basic-edu-demo"
    (releases / "1").rename(releases / "²")
    img = make_image(tmp_path / "u.img", "ext4", 40, content)  # fusefat cannot write '²'

    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        outcome = DriveWatcher(s).insert(dev)
    assert outcome.state == "error" and "holds no release" in outcome.message
    entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev).name]
    assert entry["state"] == "error"


def udev_device_with_action(node: str, action: str):
    """A real pyudev device as a MonitorObserver hands it over (``action`` set)."""
    device = udev_device(node)

    class Event:
        def __init__(self) -> None:
            self.action = action

        def __getattr__(self, attr):
            return getattr(device, attr)

    return Event()


def _killed_mid_import(dev: str, s: Settings, fstype: str) -> None:
    """A Ketang process that mounted ``dev`` under the mount root, said so, and was killed."""
    import sys

    code = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from appliance.drives.mount import mount_readonly\n"
        "from appliance.drives.status import DriveStatus\n"
        f"DriveStatus(Path({str(s.drives.status_file)!r})).set({Path(dev).name!r}, 'mounting')\n"
        f"mount_readonly({dev!r}, Path({str(s.drives.mount_root)!r}), {fstype!r})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert is_mounted(s.drives.mount_root / Path(dev).name)


@pytest.mark.parametrize("fstype", ["ext4", "vfat"])
def test_a_drive_left_mounted_by_a_killed_import_is_taken_back(tmp_path, sample_bundle,
                                                               demo_keys, fstype):
    img = make_image(tmp_path / "k.img", fstype, 40, sample_bundle)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        try:
            # Plugged in again: the stale mount is Ketang's own (under its mount root).
            _killed_mid_import(dev, s, fstype)
            outcome = DriveWatcher(s).insert(dev)
            assert outcome.state == "done", outcome.message
            assert Library(s.device.data_dir).active_version("cn-basic-edu-demo") == 1
            assert not is_mounted(s.drives.mount_root / Path(dev).name)
            # Or the watcher starts again first: it unmounts the leftover and the drive's
            # status no longer says "mounting".
            _killed_mid_import(dev, s, fstype)
            released = DriveWatcher(s).recover()
            assert released == [s.drives.mount_root / Path(dev).name]
            assert not is_mounted(s.drives.mount_root / Path(dev).name)
            entry = json.loads(s.drives.status_file.read_text())["drives"][Path(dev).name]
            assert entry["state"] == "error" and entry["error_code"] == "interrupted"
            assert "plug the drive in again" in entry["message"]
        finally:
            for point in mounts_under(s.drives.mount_root):  # a failed run leaves none behind
                subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_mount_outside_the_mount_root_is_still_left_alone(tmp_path, demo_keys):
    img = make_image(tmp_path / "e.img", "ext4", 16)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        m = mount_at(dev, "ext4", tmp_path / "someone-else", rw=False)
        try:
            outcome = DriveWatcher(s).insert(dev)
            assert outcome.state == "ignored" and "left alone" in outcome.message
            assert DriveWatcher(s).recover() == []
            assert is_mounted(tmp_path / "someone-else")
        finally:
            unmount(m)


def test_a_windows_written_fat_drive_is_read_through_fusefat(tmp_path, sample_bundle,
                                                             demo_keys):
    """mtools (like Windows) stores lower-case 8.3 names (releases, blobs, sha256, ab,
    outbox, and a channel such as cn-math) as capitalised short names with a lower-case
    flag that fusefat ignores: its listings show RELEASES/CN-MATH."""
    content = tmp_path / "content"
    publish(make_source(tmp_path / "src", lessons=2, seed="w"), "cn-math", 1, DEMO_KEY, content)
    other = content / "KETANG" / "outbox" / "other"
    other.mkdir(parents=True)
    (other / "status.json").write_text("{}")
    img = tmp_path / "win.img"
    with open(img, "wb") as f:
        f.truncate(40 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "32", str(img)], check=True, capture_output=True)
    subprocess.run(["mcopy", "-s", "-i", str(img), str(content / "KETANG"), "::/"], check=True,
                   capture_output=True)
    s = settings_for(tmp_path, demo_keys)
    with loop(img) as dev:
        seen = read_drive(dev, tmp_path)
        if not kernel_has("vfat"):  # fusefat shows the short names
            assert any(k.startswith("KETANG/RELEASES/CN-MATH/1/") for k in seen)
        outcome = DriveWatcher(s).insert(dev)
        assert outcome.state == "done", outcome.message
        assert [(r.channel, r.status) for r in outcome.results] == [("cn-math", "activated")]
        after = read_drive(dev, tmp_path)
    outbox = "KETANG/outbox/" if kernel_has("vfat") else "KETANG/OUTBOX/"
    reports = [k for k in after if k.startswith(outbox + "rs-001/status-")]
    assert len(reports) == 1, sorted(k for k in after if "OUTBOX" in k.upper())
    assert len({k.split("/")[1] for k in after}) == 3  # one outbox folder, not a second one
