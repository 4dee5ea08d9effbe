"""The amd64 image: built from Debian's packages, booted in QEMU (TCG), serving lessons.

Slow: builds the image (or reuses the cached one for unchanged inputs, see
image-build/README.md) and boots it under emulation, then checks what a technician
would: the sample lessons on port 80, no failed unit, least privilege, logs in RAM,
the data partition grown, and no disk writes while idle (invariant 4).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .vm import REPO, BuiltImage, GuestVM, build_image, require_image_tools

CHANNEL = "cn-basic-edu-demo"  # the sample pack has one folder per channel (docs/sample-pack.md)
SAMPLE = REPO / "content_cache" / "sample_pack" / CHANNEL
pytestmark = [pytest.mark.slow, pytest.mark.image]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> BuiltImage:
    require_image_tools()
    dist = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    built = build_image("amd64", dist, dist / "build.log")
    print(f"make image (amd64): {time.monotonic() - started:.0f} s")
    return built


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, dict(r.headers), r.read()


def sample_video() -> tuple[str, bytes]:
    """A lesson of the bundled sample pack that has a video, and that video's bytes."""
    source = json.loads((SAMPLE / "source.json").read_text(encoding="utf-8"))
    stack = list(source["nodes"])
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", []))
        for res in node.get("resources", []):
            if res["kind"] == "video":
                return node["id"], (SAMPLE / res["file"]).read_bytes()
    raise AssertionError("the sample pack has no video")


def test_image_files_are_complete_and_verify(image: BuiltImage, tmp_path: Path) -> None:
    """dist/ holds the .img.zst, its .bmap, .sha256 and package list; the hashes hold."""
    for suffix in (".img.zst", ".img.zst.bmap", ".sha256", ".packages.txt"):
        assert image.dist_file(suffix).is_file(), f"missing {image.name}{suffix}"
    check = subprocess.run(["sha256sum", "-c", "--ignore-missing", image.dist_file(".sha256")],
                           cwd=image.dist, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    sums = dict(reversed(line.split()) for line in image.dist_file(".sha256").read_text()
                .splitlines())
    with image.raw.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == sums[f"{image.name}.img"]
    packages = image.dist_file(".packages.txt").read_text()
    for pkg in ("linux-image-amd64", "python3-flask", "python3-libtorrent", "cage", "chromium"):
        assert re.search(rf"^{re.escape(pkg)}\t\S+\t(amd64|all)$", packages, re.M), pkg
    assert re.search(r"^ketang\t", packages, re.M)

    table = json.loads(subprocess.run(["sfdisk", "--json", image.raw], check=True,
                                      capture_output=True, text=True).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    names = [p["name"] for p in table["partitions"]]
    assert names == ["ketang-boot", "ketang-root-a", "ketang-root-b", "ketang-data"]
    a, b = table["partitions"][1], table["partitions"][2]
    assert a["size"] == b["size"] and a["type"] == b["type"]


def test_image_boots_and_serves_the_sample_lessons(image: BuiltImage, tmp_path: Path) -> None:
    vm = GuestVM(image.raw, tmp_path)
    try:
        first_page = vm.wait_for_page("/")
        print(f"boot to first served page under TCG: {first_page:.0f} s")

        status, _, body = get(vm.url("/"))
        assert status == 200 and "课堂" in body.decode(), "front page"
        lesson, video = sample_video()
        status, _, body = get(vm.url(f"/lessons/{CHANNEL}/{lesson}"))
        assert status == 200, f"lesson page {lesson}"
        blob = hashlib.sha256(video).hexdigest()
        assert f"/blobs/{blob}" in body.decode(), "the lesson page links its video"
        status, headers, part = get(vm.url(f"/blobs/{blob}"), {"Range": "bytes=100-1123"})
        assert status == 206, "a Range request gets a partial answer"
        assert part == video[100:1124]
        assert headers["Content-Range"] == f"bytes 100-1123/{len(video)}"

        vm.shell("systemctl is-system-running --wait >/dev/null || true")
        failed = vm.failed_units()
        assert failed == "", failed

        # Least privilege: the server is user ketang with only CAP_NET_BIND_SERVICE (bit 10).
        pid = vm.shell("systemctl show -P MainPID ketang-serve").strip()
        proc_status = vm.shell(f"cat /proc/{pid}/status")
        assert re.search(r"^Uid:\s+990\s+990\s+990\s+990$", proc_status, re.M), proc_status
        assert re.search(r"^CapEff:\s+0000000000000400$", proc_status, re.M), proc_status

        # Read-only root slot under a RAM overlay; data on ext4 with noatime; logs in RAM.
        mounts = vm.shell("findmnt -rn -o TARGET,FSTYPE,OPTIONS")
        assert re.search(r"^/ overlay ", mounts, re.M), mounts
        assert re.search(r"^/run/ketang-root/lower squashfs ro,", mounts, re.M), mounts
        assert re.search(r"^/var/lib/ketang ext4 \S*noatime", mounts, re.M), mounts
        assert "Storage=volatile" in vm.shell("systemd-analyze cat-config systemd/journald.conf")
        assert vm.shell("ls /var/log/journal 2>/dev/null || true").strip() == ""

        # The data partition grew to fill the 8 GiB disk on first boot.
        size = int(vm.shell("df --output=size -B1 /var/lib/ketang | tail -n1"))
        assert size > 3 * 2**30, f"data partition did not grow: {size} bytes"

        # The boot partition is mounted read-only whenever it is mounted (a read-write FAT
        # writes its dirty flag at every mount and unmount), and its writers ran: the boot
        # loader's random seed was refreshed through boot-rw (image-build/README.md).
        esp = vm.shell("ls /boot/efi/loader/ >/dev/null; findmnt -rn -o FSTYPE,OPTIONS "
                       "/boot/efi | grep vfat")
        assert re.match(r"vfat ro,", esp), f"the boot partition is not read-only: {esp}"
        seed = vm.shell("systemctl show -P Result,ExecMainStatus systemd-boot-random-seed")
        assert seed.split() == ["success", "0"], f"systemd-boot-random-seed: {seed}"

        # Idle: once what the requests above left in the page cache is on disk (sync),
        # nothing is written to any partition for 60 seconds.
        written = vm.idle_writes(60)
        print(f"bytes written in 60 idle seconds: {written.get('vda', 0)}")
        assert not written, vm.idle_writes_report(written, "/boot/efi")
    finally:
        vm.stop()
