"""App-only update bundles (``make update-bundle KIND=app``) without QEMU.

The real image-build/update-bundle.sh builds a whole-OS and an app-only bundle of the same
new root from a small Ketang-like root (standing in for the image's root slot); RAUC
verifies both against the update CA; the app bundle's own install hook, run the way
RAUC's ``slot-install`` runs it, rebuilds into a file standing for the idle slot exactly
the root the whole-OS bundle carries; a device running another build, and a damaged
patch, are refused with one line and the running root is never written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from provisioning.update import Device, UpdateError, check, verify

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("rauc", "mksquashfs", "unsquashfs", "zstd")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    missing = [t for t in TOOLS if shutil.which(t) is None]
    why = f"missing: {', '.join(missing)} (make system-deps)" if missing else \
        ("" if os.geteuid() == 0 else "update-bundle.sh runs as root")
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    work = tmp_path_factory.mktemp("appbundle")
    root = work / "root"
    (root / "usr/lib/ketang").mkdir(parents=True)
    (root / "usr/lib/ketang/image.env").write_text("KETANG_IMAGE_VERSION=0.1.0\n")
    app = root / "usr/lib/python3/dist-packages/appliance"
    app.mkdir(parents=True)
    for i in range(40):
        (app / f"mod{i}.py").write_text(f'"""module {i}"""\n' + "x = 1\n" * (200 + i))
    lib = root / "usr/lib/x86_64-linux-gnu"          # the OS: 8 MB nothing compresses
    lib.mkdir(parents=True)
    for i in range(4):
        (lib / f"libos{i}.so").write_bytes(os.urandom(2 * 2**20))
    cache, dist = work / "cache", work / "dist"
    image = cache / "image-amd64-test"
    image.mkdir(parents=True)
    dist.mkdir()
    subprocess.run(["mksquashfs", str(root), str(image / "root.squashfs"), "-quiet",
                    "-noappend", "-comp", "zstd", "-b", "256K", "-mkfs-time", "0",
                    "-all-time", "0"], check=True, stdout=subprocess.DEVNULL)
    (dist / "ketang-0.1.0-amd64.cache-path").write_text(f"{image}\n")
    fix = work / "overlay/usr/lib/python3/dist-packages/appliance"   # a one-line code fix
    fix.mkdir(parents=True)
    # (with a new table of 24 KB that does not compress: RAUC refuses a bundle whose whole
    # payload packs into 4 KB, which a real root's patch never does)
    (fix / "mod7.py").write_text((app / "mod7.py").read_text() + "y = 2  # the fix\n"
                                 + f"TABLE = {os.urandom(12 * 1024).hex()!r}\n")
    env = dict(os.environ, KETANG_IMAGE_CACHE=str(cache), KETANG_IMAGE_DIST=str(dist),
               KETANG_UPDATE_VERSION="0.2.0", KETANG_UPDATE_OVERLAY=str(work / "overlay"))
    out = {}
    for kind in ("whole", "app"):
        proc = subprocess.run(["bash", str(REPO / "image-build/update-bundle.sh"), "amd64",
                               kind], cwd=REPO, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        name = "ketang-0.2.0-amd64" + ("-app" if kind == "app" else "")
        out[kind] = dist / f"{name}.raucb"
    keys = cache / "DEV-ONLY-update-keys"
    return work, image / "root.squashfs", out, keys


def device(where: Path, keyring: Path) -> Device:
    """RAUC's system.conf of a device trusting ``keyring`` (codesign purpose checked)."""
    where.mkdir(parents=True, exist_ok=True)
    conf = where / "system.conf"
    conf.write_text(
        "[system]\ncompatible=ketang-amd64\nbootloader=custom\nbundle-formats=-plain\n"
        f"data-directory={where / 'rauc-state'}\n\n"
        "[handlers]\nbootloader-custom-backend=/bin/false\n\n"
        f"[keyring]\npath={keyring}\ncheck-purpose=codesign\n\n"
        "[slot.rootfs.0]\ndevice=/dev/null\ntype=raw\nbootname=a\n")
    env = where / "image.env"
    env.write_text("KETANG_IMAGE_VERSION=0.1.0\n")
    return Device(rauc_conf=conf, image_env=env, data_dir=where / "data")


def rauc_extract(bundle: Path, keyring: Path, dest: Path) -> Path:
    conf = device(dest.with_name(dest.name + "-device"), keyring).rauc_conf
    subprocess.run(["rauc", f"--conf={conf}", "extract", str(bundle), str(dest)],
                   check=True, capture_output=True)
    return dest


def run_hook(content: Path, booted: Path, slot: Path, scratch: Path):
    env = dict(os.environ, RAUC_BUNDLE_MOUNT_POINT=str(content),
               RAUC_IMAGE_NAME=str(content / "root.patch.zst"), RAUC_SLOT_DEVICE=str(slot),
               RAUC_SLOT_BOOTNAME="b", KETANG_BOOTED_ROOT=str(booted),
               KETANG_DELTA_SCRATCH=str(scratch))
    return subprocess.run(["sh", str(content / "hook.sh"), "slot-install"], env=env,
                          capture_output=True, text=True)


def sha(path: Path, size: int | None = None) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data if size is None else data[:size]).hexdigest()


def test_app_bundle_is_small_signed_and_says_its_base(bundles):
    work, base, out, keys = bundles
    whole, app = out["whole"], out["app"]
    meta = json.loads(Path(f"{app}.json").read_text())
    assert meta["kind"] == "app" and meta["base_version"] == "0.1.0"
    assert meta["base_sha256"] == sha(base)
    print(f"[app bundle] whole {whole.stat().st_size} bytes, app {app.stat().st_size} bytes")
    assert app.stat().st_size * 10 < whole.stat().st_size
    ours = device(work / "device", keys / "update-ca.pem")
    bundle = verify(ours, app)                 # what `ketang update install` checks first
    assert (bundle.version, bundle.compatible) == ("0.2.0", "ketang-amd64")
    check(ours, bundle, force=False)
    stranger = work / "stranger"
    subprocess.run(["bash", str(REPO / "image-build/update-keys.sh"), str(stranger), "S"],
                   check=True, capture_output=True)
    with pytest.raises(UpdateError, match="does not trust"):
        verify(device(work / "other", stranger / "update-ca.pem"), app)


def test_the_hook_rebuilds_exactly_the_whole_bundles_root(bundles, tmp_path):
    _, base, out, keys = bundles
    ring = keys / "update-ca.pem"
    whole = rauc_extract(out["whole"], ring, tmp_path / "whole")
    app = rauc_extract(out["app"], ring, tmp_path / "app")
    booted = tmp_path / "slot-a"           # a partition is larger than its squashfs
    booted.write_bytes(base.read_bytes() + os.urandom(3 * 2**20))
    before = sha(booted)
    slot = tmp_path / "slot-b"
    slot.write_bytes(os.urandom(2**20))
    proc = run_hook(app, booted, slot, tmp_path / "scratch")
    assert proc.returncode == 0, proc.stderr
    new = whole / "root.img"
    assert sha(slot, new.stat().st_size) == sha(new)
    assert sha(booted) == before
    assert list((tmp_path / "scratch").iterdir()) == []      # the base copy is gone


def test_another_build_or_a_damaged_patch_is_refused_and_the_running_root_untouched(
        bundles, tmp_path):
    _, base, out, keys = bundles
    app = rauc_extract(out["app"], keys / "update-ca.pem", tmp_path / "app")
    other = tmp_path / "slot-a"
    other.write_bytes(base.read_bytes()[:-4096] + os.urandom(4096))  # another build
    slot = tmp_path / "slot-b"
    slot.write_bytes(b"old system" * 1000)
    running, idle = sha(other), sha(slot)
    proc = run_hook(app, other, slot, tmp_path / "scratch")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "applies to the root of version 0.1.0 only" in lines[0]
    assert "whole-OS bundle" in lines[0]
    assert (sha(other), sha(slot)) == (running, idle)          # nothing written

    good = tmp_path / "slot-a2"
    good.write_bytes(base.read_bytes())
    patch = app / "root.patch.zst"
    data = bytearray(patch.read_bytes())
    data[len(data) // 2] ^= 0xFF
    patch.write_bytes(bytes(data))
    before = sha(good)
    proc = run_hook(app, good, slot, tmp_path / "scratch")
    assert proc.returncode == 1
    assert "does not match the bundle" in proc.stderr.strip().splitlines()[-1]
    assert sha(good) == before
