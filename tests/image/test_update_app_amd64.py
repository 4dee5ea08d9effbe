"""An app-only update on the amd64 image (QEMU TCG): ``make update-bundle KIND=app`` makes
a patch from the image's root (v1) to v2.1 (the same root with one Python file changed);
the device installs it with ``ketang update install`` (RAUC checks the signature, the
bundle's hook checks the running root, rebuilds the new one into slot B and checks its
hash), boots it on trial, the gate keeps it, it serves lessons; the scratch copy is gone
and the lessons and usage on the data partition are unchanged.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .test_update_amd64 import CACHE, TIMES, bundle, ext4_disk, timed
from .update_steps import booted_v1, reboot_and_keep
from .vm import build_image, require_image_tools

pytestmark = [pytest.mark.slow, pytest.mark.image]


def test_an_app_only_bundle_rebuilds_the_new_root_and_is_kept(tmp_path: Path) -> None:
    require_image_tools()
    dist = tmp_path / "dist"
    dist.mkdir()
    t = time.monotonic()
    image = build_image("amd64", dist, dist / "build.log")
    timed("make image (cached when unchanged)", t)
    fix = CACHE / "test-overlays" / "app-fix"        # a fixed place: the bundle is cached
    target = fix / "usr/lib/python3/dist-packages/appliance/text.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    from appliance import text
    target.write_text(Path(text.__file__).read_text() + "\n# the app-only test's fix\n")
    t = time.monotonic()
    app = bundle(dist, "0.2.1", dist / "app.log", overlay=fix, kind="app")
    timed("make update-bundle KIND=app", t)
    print(f"[update test] app-only bundle bytes: {app.stat().st_size}", flush=True)
    disk = ext4_disk(tmp_path / "updates.img", {app.name: app}, mb=64)

    with booted_v1(image.raw, tmp_path, (disk,)) as (vm, before):
        vm.shell("mkdir -p /mnt/u && mount -o ro /dev/vdb /mnt/u")
        t = time.monotonic()
        out = vm.shell(f"ketang update install /mnt/u/{app.name} 2>&1; echo rc=$?",
                       timeout=1800)
        timed("app-only bundle installed into slot B (patch applied)", t)
        assert "rc=0" in out and "Installed 0.2.1" in out, \
            out + vm.shell("journalctl -b -u rauc --no-pager | tail -30", timeout=120)
        assert vm.shell("ls -A /var/lib/ketang/updates/delta").strip() == ""
        reboot_and_keep(vm, "b", "0.2.1", before,
                        "reboot into 0.2.1 (trial) → served, gate passed, blessed")
        assert "the app-only test's fix" in vm.shell(
            "tail -1 /usr/lib/python3/dist-packages/appliance/text.py")
        print(f"[update test] times: {TIMES}", flush=True)
