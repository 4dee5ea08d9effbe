"""The Raspberry Pi 4's slot kernels on the boot partition (provisioning/pislot.py), run
as RAUC runs its handlers: ``python3 -m provisioning.pislot pre-install|post-install``
with RAUC's environment (RAUC_TARGET_SLOTS, RAUC_SLOT_BOOTNAME_<n>, RAUC_SLOT_DEVICE_<n>),
on a real squashfs root image made by mksquashfs (as build.sh makes the root slot) and
mounted read-only the way the handler mounts the slot (loop; root only).

:func:`view` is what boot.scr (image-build/rauc/boot-arm64.cmd) sees of a slot: nothing
when ``ketang-<slot>/vmlinuz`` is missing, else the kernel and initramfs it loads."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning import pislot
from tests.support.needs import require, require_commands

REPO = Path(__file__).parents[2]
KVER = "6.12.57+deb13-arm64"
OLD = (b"old Image of slot b", b"old initramfs of slot b")


def image_kernel(tag: str) -> bytes:
    """Stands for an arm64 Image (what booti takes): big enough to compress."""
    return (f"ARM64 Image {tag} ".encode() * 4096)


def make_root(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    """A squashfs root slot (zstd, as build.sh) holding ``files``."""
    require_commands("mksquashfs")
    tree = tmp_path / f"{name}-tree"
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    (tree / "boot").mkdir(parents=True, exist_ok=True)
    (tree / "usr/bin").mkdir(parents=True, exist_ok=True)
    img = tmp_path / f"{name}.squashfs"
    subprocess.run(["mksquashfs", str(tree), str(img), "-quiet", "-noappend", "-comp", "zstd"],
                   check=True, capture_output=True)
    return img


def good_root(tmp_path: Path, tag: str = "v2") -> Path:
    return make_root(tmp_path, f"root-{tag}", {
        f"boot/vmlinuz-{KVER}": gzip.compress(image_kernel(tag)),
        f"boot/initrd.img-{KVER}": f"initramfs {tag}".encode() * 100,
        f"boot/config-{KVER}": b"CONFIG_ARM64=y\n",
    })


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    """The boot partition as the image leaves it after a first install into slot b."""
    b = tmp_path / "boot"
    for slot, (kernel, initrd) in {"a": (b"Image a", b"initramfs a"), "b": OLD}.items():
        (b / f"ketang-{slot}").mkdir(parents=True)
        (b / f"ketang-{slot}" / "vmlinuz").write_bytes(kernel)
        (b / f"ketang-{slot}" / "initrd.img").write_bytes(initrd)
    (b / "boot.scr").write_bytes(b"script")
    return b


@pytest.fixture
def root_user() -> None:
    require(None if os.geteuid() == 0 else "mounts the slot image read-only (loop): needs root")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def view(boot: Path, slot: str) -> tuple[bytes, bytes] | None:
    """What boot.scr boots for ``slot``: None when it skips it (no vmlinuz)."""
    folder = boot / f"ketang-{slot}"
    if not (folder / "vmlinuz").is_file():
        return None
    return (folder / "vmlinuz").read_bytes(), (folder / "initrd.img").read_bytes()


def rauc_env(boot: Path, device: Path | str, bundle: Path | None = None) -> dict[str, str]:
    """A handler's environment as RAUC 1.13 sets it (install.c, prepare_environment) for
    an install into slot b (rootfs.1), with an image.env naming the boot folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAUC_")}
    env.update(
        RAUC_SLOTS="1 2", RAUC_TARGET_SLOTS="2",
        RAUC_SLOT_NAME_1="rootfs.0", RAUC_SLOT_CLASS_1="rootfs", RAUC_SLOT_TYPE_1="raw",
        RAUC_SLOT_DEVICE_1="/dev/disk/by-partlabel/ketang-root-a", RAUC_SLOT_BOOTNAME_1="a",
        RAUC_SLOT_NAME_2="rootfs.1", RAUC_SLOT_CLASS_2="rootfs", RAUC_SLOT_TYPE_2="raw",
        RAUC_SLOT_DEVICE_2=str(device), RAUC_SLOT_BOOTNAME_2="b",
        RAUC_BUNDLE_MOUNT_POINT=str(bundle or boot.parent / "no-bundle"),
        KETANG_IMAGE_ENV=str(image_env(boot)), PYTHONPATH=str(REPO))
    return env


def image_env(boot: Path) -> Path:
    """An image.env naming ``boot`` as the boot partition (boot-rw and the handler read
    KETANG_BOOT_DIR from it)."""
    path = boot.parent / "image.env"
    path.write_text(f"KETANG_BOOT_DIR={boot}\n")
    return path


def handler(step: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning.pislot", step], env=env,
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_an_install_into_b_puts_its_kernel_gunzipped_and_initramfs_on_the_boot_partition(
        tmp_path, boot, root_user):
    img = good_root(tmp_path)
    env = rauc_env(boot, img)
    pre = handler("pre-install", env)
    assert pre.returncode == 0, pre.stderr
    assert view(boot, "b") is None          # RAUC now overwrites b: its old kernel is gone
    post = handler("post-install", env)
    assert post.returncode == 0, post.stderr
    assert view(boot, "b") == (image_kernel("v2"), b"initramfs v2" * 100)
    assert view(boot, "a") == (b"Image a", b"initramfs a")
    assert sorted(p.name for p in (boot / "ketang-b").iterdir()) == ["initrd.img", "vmlinuz"]
    assert "slot b: kernel" in post.stderr


def test_a_first_install_into_an_empty_slot_makes_its_folder(tmp_path, boot, root_user):
    (boot / "ketang-b" / "vmlinuz").unlink()
    (boot / "ketang-b" / "initrd.img").unlink()
    (boot / "ketang-b").rmdir()
    img = good_root(tmp_path)
    assert handler("pre-install", rauc_env(boot, img)).returncode == 0
    post = handler("post-install", rauc_env(boot, img))
    assert post.returncode == 0, post.stderr
    assert view(boot, "b") == (image_kernel("v2"), b"initramfs v2" * 100)


def test_an_uncompressed_kernel_is_copied_as_it_is(tmp_path, boot, root_user):
    img = make_root(tmp_path, "plain", {f"boot/vmlinuz-{KVER}": b"plain Image",
                                        f"boot/initrd.img-{KVER}": b"initramfs"})
    post = handler("post-install", rauc_env(boot, img))
    assert post.returncode == 0, post.stderr
    assert view(boot, "b") == (b"plain Image", b"initramfs")


BAD_ROOTS = {
    "no kernel": ({f"boot/initrd.img-{KVER}": b"initramfs"}, "has no /boot/vmlinuz-*"),
    "two kernels": ({f"boot/vmlinuz-{KVER}": b"one", "boot/vmlinuz-6.1.0-arm64": b"two",
                     f"boot/initrd.img-{KVER}": b"i", "boot/initrd.img-6.1.0-arm64": b"i"},
                    "has 2 kernels in /boot"),
    "no initramfs": ({f"boot/vmlinuz-{KVER}": b"Image"}, f"no /boot/initrd.img-{KVER}"),
    "broken gzip": ({f"boot/vmlinuz-{KVER}": b"\x1f\x8b\x08\x00broken",
                     f"boot/initrd.img-{KVER}": b"i"}, "is not valid gzip"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROOTS))
def test_a_bad_slot_is_refused_in_one_line_and_the_boot_partition_is_unchanged(
        tmp_path, boot, root_user, case):
    files, message = BAD_ROOTS[case]
    img = make_root(tmp_path, "bad", files)
    before = snapshot(boot)
    post = handler("post-install", rauc_env(boot, img))
    assert post.returncode == 1
    assert message in post.stderr and len(post.stderr.strip().splitlines()) == 1, post.stderr
    assert snapshot(boot) == before


def test_an_unreadable_image_is_refused_and_the_boot_partition_is_unchanged(
        tmp_path, boot, root_user):
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(256 * 1024))
    before = snapshot(boot)
    post = handler("post-install", rauc_env(boot, junk))
    assert post.returncode == 1
    assert "Cannot mount the new root slot" in post.stderr
    assert len(post.stderr.strip().splitlines()) == 1, post.stderr
    assert snapshot(boot) == before


def test_without_rauc_environment_it_says_how_to_run_it_and_changes_nothing(tmp_path, boot):
    env = {k: v for k, v in rauc_env(boot, "x").items() if k != "RAUC_TARGET_SLOTS"}
    before = snapshot(boot)
    for step in ("pre-install", "post-install"):
        done = handler(step, env)
        assert done.returncode == 1 and "No target root slot" in done.stderr
    assert handler("install", env).returncode == 2
    assert snapshot(boot) == before


def test_a_strange_bootname_is_refused(tmp_path, boot):
    env = rauc_env(boot, "x") | {"RAUC_SLOT_BOOTNAME_2": "../a"}
    before = snapshot(boot)
    done = handler("pre-install", env)
    assert done.returncode == 1 and "expected one lower-case letter" in done.stderr
    assert snapshot(boot) == before


def test_a_bundle_for_another_device_does_not_remove_the_idle_kernel(tmp_path, boot):
    """RAUC runs pre-install before its compatible check: a bundle it will refuse must
    not cost the idle slot its kernel."""
    conf = tmp_path / "system.conf"
    conf.write_text("[system]\ncompatible=ketang-arm64-rpi4\n")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.raucm").write_text("[update]\ncompatible=ketang-amd64\nversion=2\n")
    before = snapshot(boot)
    out = pislot.pre_install(rauc_env(boot, "x", bundle), boot, conf)
    assert "RAUC will refuse it" in out and snapshot(boot) == before
    (bundle / "manifest.raucm").write_text("[update]\ncompatible=ketang-arm64-rpi4\n")
    pislot.pre_install(rauc_env(boot, "x", bundle), boot, conf)
    assert view(boot, "b") is None and view(boot, "a") == (b"Image a", b"initramfs a")


CUT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from provisioning import pislot
    cut_at, boot = int(sys.argv[1]), Path(sys.argv[2])
    n = 0
    def step(real):
        def wrapped(*args, **kwargs):
            global n
            n += 1
            if n == cut_at:
                os._exit(9)       # the power fails before this write reaches the card
            return real(*args, **kwargs)
        return wrapped
    for name in ("fsync", "replace", "unlink", "mkdir", "rename"):
        setattr(os, name, step(getattr(os, name)))
    pislot.install(boot, "b", b"new Image" * 1000, b"new initramfs" * 1000)
    print(n)
""")


def test_a_power_cut_at_any_write_leaves_boot_scr_the_old_pair_the_new_pair_or_no_kernel(
        tmp_path, boot):
    """The copy is killed before each of its file-system writes in turn (os._exit: no
    clean-up runs); after each cut boot.scr sees the old pair, the new pair, or no
    vmlinuz (it boots the other slot), never a mix or a partial file. Then the next
    install over the leftovers gives the new pair."""
    new = (b"new Image" * 1000, b"new initramfs" * 1000)
    seen = set()
    cut_at = 1
    while True:
        trial = tmp_path / f"cut{cut_at}"
        subprocess.run(["cp", "-a", str(boot), str(trial)], check=True)
        done = subprocess.run([sys.executable, "-c", CUT, str(cut_at), str(trial)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        got = view(trial, "b")
        assert got in (OLD, new, None), f"cut at write {cut_at}: {got!r:.80}"
        assert view(trial, "a") == (b"Image a", b"initramfs a")
        seen.add("old" if got == OLD else "new" if got == new else "none")
        if done.returncode == 0:
            break
        assert done.returncode == 9, done.stderr
        pislot.install(trial, "b", *new)
        assert view(trial, "b") == new
        assert sorted(p.name for p in (trial / "ketang-b").iterdir()) == ["initrd.img",
                                                                           "vmlinuz"]
        cut_at += 1
    assert seen == {"old", "none", "new"} and cut_at > 5


HANDLER = REPO / "image-build/rauc/pi-slot-handler"
BOOT_RW = REPO / "image-build/rootfs/usr/lib/ketang/boot-rw"


@pytest.fixture
def ro_boot(tmp_path: Path, boot: Path, root_user) -> Iterator[Path]:
    """The boot folder on a read-only mount, as the image mounts its boot partition (a
    tmpfs: boot-rw's remounts are the same system calls as on the FAT partition)."""
    mnt = tmp_path / "ro-boot"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{boot}/.", str(mnt)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def installed_handler(tmp_path: Path, name: str) -> Path:
    """The handler script as build.sh installs it (under RAUC's handler name), pointing
    at this checkout's boot-rw and Python instead of the image's."""
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(HANDLER.read_text().replace("/usr/lib/ketang/boot-rw", str(BOOT_RW))
                    .replace("/usr/bin/python3", sys.executable))
    path.chmod(0o755)
    return path


def test_rauc_handlers_write_through_boot_rw_on_a_read_only_boot_partition(tmp_path,
                                                                           ro_boot):
    img = good_root(tmp_path)
    env = rauc_env(ro_boot, img) | {"KETANG_BOOT_RW_LOCK": str(tmp_path / "lock")}
    env.pop("KETANG_BOOT_RW", None)
    for step in ("rauc-pre-install", "rauc-post-install"):
        done = subprocess.run([str(installed_handler(tmp_path, step))], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert os.statvfs(ro_boot).f_flag & os.ST_RDONLY
    assert view(ro_boot, "b") == (image_kernel("v2"), b"initramfs v2" * 100)
    other = subprocess.run([str(installed_handler(tmp_path, "rauc-install"))], env=env,
                           capture_output=True, text=True)
    assert other.returncode == 2 and "usage" in other.stderr


def test_a_write_outside_boot_rw_fails_on_the_read_only_partition_and_changes_nothing(
        tmp_path, ro_boot):
    before = snapshot(ro_boot)
    done = handler("pre-install", rauc_env(ro_boot, good_root(tmp_path)))
    assert done.returncode == 1 and "Read-only file system" in done.stderr
    assert snapshot(ro_boot) == before


def test_a_full_boot_partition_keeps_the_old_pair_and_leaves_no_temp_files(tmp_path, boot,
                                                                            root_user):
    full = tmp_path / "small"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(full)], check=True)
    try:
        subprocess.run(["cp", "-a", f"{boot}/.", str(full)], check=True)
        before = snapshot(full)
        with pytest.raises(OSError, match="No space left"):
            pislot.install(full, "b", b"K" * 512 * 1024, b"initramfs")
        assert snapshot(full) == before and view(full, "b") == OLD
    finally:
        subprocess.run(["umount", str(full)], check=False)
