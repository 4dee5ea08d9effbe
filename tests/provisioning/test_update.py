"""Software updates without QEMU: versions, RAUC's verification of real bundles (tampered,
unknown key, older, other device: each refused in one line with nothing installed), the
status file, and the health gate against a real ``ketang serve``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from provisioning import gate
from provisioning.update import (
    Device,
    UpdateError,
    check_version,
    compare_versions,
    install,
    parse_version,
    read_status,
    refusal,
)

from ..helpers import running_server, snapshot

REPO = Path(__file__).resolve().parents[2]
KEYS_SCRIPT = REPO / "image-build" / "update-keys.sh"


def require_rauc() -> None:
    if shutil.which("rauc") is None or shutil.which("mksquashfs") is None:
        why = "rauc or mksquashfs missing (make system-deps installs them)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


# --- versions ----------------------------------------------------------------------

@pytest.mark.parametrize("a,b,want", [
    ("0.2.0", "0.1.0", 1), ("0.1.0", "0.2.0", -1), ("0.1.0", "0.1.0", 0),
    ("0.10.0", "0.9.9", 1), ("1", "1.0.0", 0), ("0.2.0+g1234", "0.2.0", 0),
    ("2.0.0", "10.0.0", -1),
])
def test_compare_versions(a, b, want):
    assert compare_versions(a, b) == want


@pytest.mark.parametrize("bad", ["", "v1.0", "1..2", "latest", "1.0.0.0.0", "1.0 beta"])
def test_a_version_that_is_not_one_is_refused(bad):
    with pytest.raises(UpdateError, match="not a version"):
        parse_version(bad)


def test_older_or_same_version_refused_unless_forced():
    with pytest.raises(UpdateError, match="older than the running 0.2.0.*--force"):
        check_version("0.1.0", "0.2.0", force=False)
    with pytest.raises(UpdateError, match="already running"):
        check_version("0.2.0", "0.2.0", force=False)
    check_version("0.1.0", "0.2.0", force=True)
    check_version("0.3.0", "0.2.0", force=False)


def test_refusal_messages_are_one_line_and_say_what_happened():
    b = Path("/x/ketang-0.2.0-amd64.raucb")
    unknown = refusal("signature verification failed: Verify error: unable to get local "
                      "issuer certificate", b)
    tampered = refusal("Invalid bundle format: Signature size (38190524) exceeds bundle size", b)
    other = refusal("something new\nFailed: odd thing", b)
    for msg in (unknown, tampered, other):
        assert "\n" not in msg and "nothing installed" in msg and b.name in msg
    assert "does not trust" in unknown
    assert "damaged or was altered" in tampered
    assert "odd thing" in other


# --- real bundles, real RAUC -----------------------------------------------------------

def make_keys(where: Path, org: str) -> Path:
    subprocess.run(["bash", str(KEYS_SCRIPT), str(where), org], check=True,
                   capture_output=True)
    return where


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_rauc()
    base = tmp_path_factory.mktemp("pki")
    return make_keys(base / "ours", "Ketang Test"), make_keys(base / "stranger", "Stranger")


def make_bundle(out: Path, keys: Path, version: str, compatible: str = "ketang-amd64") -> Path:
    content = out.parent / f"content-{out.stem}"
    content.mkdir(parents=True)
    (content / "root.img").write_bytes(os.urandom(256 * 1024) * 4)
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible={compatible}\nversion={version}\n\n[bundle]\nformat=verity\n\n"
        "[image.rootfs]\nfilename=root.img\n")
    subprocess.run(["rauc", "bundle", f"--cert={keys / 'signer.pem'}",
                    f"--key={keys / 'signer.key'}", str(content), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def device(tmp_path, pki):
    """A device's files: RAUC's system.conf trusting our CA, image.env saying 0.2.0, a
    data folder, and `rauc` behind a wrapper that logs every call (so a test can tell
    that nothing was installed)."""
    ours, _ = pki
    root = tmp_path / "device"
    (root / "etc").mkdir(parents=True)
    conf = root / "etc" / "system.conf"
    conf.write_text(
        "[system]\ncompatible=ketang-amd64\nbootloader=custom\nbundle-formats=-plain\n"
        f"data-directory={root / 'rauc-state'}\n\n"
        "[handlers]\nbootloader-custom-backend=/bin/false\n\n"
        f"[keyring]\npath={ours / 'update-ca.pem'}\n"
        "check-purpose=codesign\n\n[slot.rootfs.0]\ndevice=/dev/null\ntype=raw\nbootname=a\n")
    env = root / "image.env"
    env.write_text("KETANG_IMAGE_VERSION=0.2.0\nKETANG_IMAGE_ARCH=amd64\n")
    log = root / "rauc-calls.log"
    wrapper = root / "rauc"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {shutil.which("rauc")} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    data = root / "data"
    (data / "lessons").mkdir(parents=True)
    (data / "lessons" / "kept.txt").write_text("课")
    return Device(rauc_conf=conf, image_env=env, data_dir=data, rauc=str(wrapper),
                  status_tries=1)


def calls(dev: Device) -> list[str]:
    log = Path(dev.rauc).parent / "rauc-calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_good_bundle_verifies_and_says_its_version(device, pki, tmp_path):
    from provisioning.update import check, verify
    bundle = make_bundle(tmp_path / "v3.raucb", pki[0], "0.3.0")
    got = verify(device, bundle)
    assert (got.version, got.compatible) == ("0.3.0", "ketang-amd64")
    check(device, got, force=False)


def refused(device: Device, bundle: Path, match: str, force: bool = False) -> None:
    before = snapshot(device.data_dir / "lessons")
    with pytest.raises(UpdateError, match=match) as e:
        install(device, bundle, force=force)
    assert "\n" not in str(e.value) and "nothing installed" in str(e.value)
    assert not any(c.startswith("install") for c in calls(device)), "RAUC was asked to install"
    assert snapshot(device.data_dir / "lessons") == before
    assert read_status(device)["last_refusal"]["bundle"] == bundle.name
    assert "last_update" not in read_status(device)


def test_tampered_bundle_refused(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "v3.raucb", pki[0], "0.3.0")
    data = bytearray(bundle.read_bytes())
    data[-200] ^= 0xFF            # inside the signature at the end of the file
    bundle.write_bytes(bytes(data))
    refused(device, bundle, "damaged or was altered")


def test_truncated_bundle_refused(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "v3.raucb", pki[0], "0.3.0")
    with bundle.open("r+b") as f:
        f.truncate(bundle.stat().st_size - 1)
    refused(device, bundle, "damaged or was altered")


def test_bundle_signed_by_an_unknown_key_refused(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "v3.raucb", pki[1], "0.3.0")
    refused(device, bundle, "does not trust")


def test_older_bundle_refused(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "v1.raucb", pki[0], "0.1.0")
    refused(device, bundle, "older than the running 0.2.0")


def test_bundle_for_another_device_refused(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "pi.raucb", pki[0], "0.3.0", compatible="ketang-arm64-rpi4")
    refused(device, bundle, "is for 'ketang-arm64-rpi4'")


def test_missing_file_refused(device, tmp_path):
    refused(device, tmp_path / "nope.raucb", "No such bundle file")


def test_cli_prints_one_line_and_exits_1(device, pki, tmp_path):
    bundle = make_bundle(tmp_path / "v1.raucb", pki[1], "0.3.0")
    cfg = tmp_path / "k.toml"
    cfg.write_text(f'[device]\ndata_dir = "{device.data_dir}"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "update", "install",
                                       "--rauc-conf", str(device.rauc_conf),
                                       "--image-env", str(device.image_env), str(bundle)],
                                env={"PATH": f"{Path(device.rauc).parent}:{os.environ['PATH']}"})
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not trust" in lines[0], result.output


# --- provisioning installs the certificate and RAUC's keyring ---------------------------

def test_update_certificate_checked_and_keyring_built(pki):
    from provisioning import updatekeys
    from provisioning.schema import Invalid, _update_certificate
    ours, stranger = pki
    pems = [(ours / "update-ca.pem").read_text(), (stranger / "update-ca.pem").read_text()]
    ring = updatekeys.keyring(pems)
    assert ring.count(b"BEGIN CERTIFICATE") == 2
    assert updatekeys.keyring(list(reversed(pems))) == ring
    with pytest.raises(Invalid, match="not a software-update certificate"):
        _update_certificate("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n"
                            "-----END PUBLIC KEY-----")


# --- the health gate -----------------------------------------------------------------

def units_ok(unit: str) -> dict[str, str]:
    return {"ActiveState": "active", "SubState": "running", "NRestarts": "0"}


def test_gate_passes_on_a_serving_device(sample_device):
    with running_server(sample_device) as base:
        verdict = gate.run(base + "/", timeout=30, units=units_ok)
    assert verdict.ok, verdict.reason


def test_gate_fails_fast_when_serve_keeps_failing():
    def failing(unit):
        if unit == gate.SERVE_UNIT:
            return {"ActiveState": "failed", "SubState": "failed", "NRestarts": "5"}
        return units_ok(unit)
    verdict = gate.run("http://127.0.0.1:9/", timeout=600, units=failing, sleep=lambda s: None)
    assert not verdict.ok
    assert "front page" in verdict.reason and "keeps failing" in verdict.reason


def test_gate_fails_when_the_drive_watcher_is_down(sample_device):
    def no_drives(unit):
        if unit == gate.DRIVES_UNIT:
            return {"ActiveState": "inactive", "SubState": "dead", "NRestarts": "0"}
        return units_ok(unit)
    ticks = iter(range(0, 1000, 10))
    with running_server(sample_device) as base:
        verdict = gate.run(base + "/", timeout=20, units=no_drives, clock=lambda: next(ticks),
                           sleep=lambda s: None)
    assert not verdict.ok and "drive watcher is not running" in verdict.reason


def test_status_file_is_json_for_the_dashboard(device):
    from provisioning.update import record
    record(device, health={"ok": False, "reason": "x"})
    record(device, health={"slot": "b"})
    doc = json.loads(device.status_file.read_text())
    assert doc["health"] == {"ok": False, "reason": "x", "slot": "b"}


# --- a drive's KETANG/updates/ ---------------------------------------------------------

def test_drive_folder_with_only_refused_bundles_installs_nothing(device, pki, tmp_path):
    from provisioning.update import install_from_folder
    folder = tmp_path / "KETANG" / "updates"
    folder.mkdir(parents=True)
    make_bundle(folder / "a-old.raucb", pki[0], "0.1.0")
    make_bundle(folder / "b-stranger.raucb", pki[1], "0.9.0")
    (folder / "notes.txt").write_text("ignored")
    with pytest.raises(UpdateError, match="nothing installed"):
        install_from_folder(device, folder)
    assert not any(c.startswith("install") for c in calls(device))
    assert not list((device.data_dir / "updates" / "incoming").glob("*"))


def test_drive_folder_newest_good_bundle_is_copied_then_installed(device, pki, tmp_path):
    """RAUC's service (which writes a disk slot) cannot run here: `rauc install` is
    answered by the wrapper; everything before it is the real RAUC."""
    from provisioning.update import install_from_folder
    folder = tmp_path / "KETANG" / "updates"
    folder.mkdir(parents=True)
    make_bundle(folder / "v3.raucb", pki[0], "0.3.0")
    make_bundle(folder / "v4.raucb", pki[0], "0.4.0")
    make_bundle(folder / "v1.raucb", pki[0], "0.1.0")
    wrapper = Path(device.rauc)
    wrapper.write_text(wrapper.read_text().replace(
        "exec ", 'case "$2" in install) test -f "$3" || exit 3; exit 0;; esac\nexec ', 1))
    line = install_from_folder(device, folder)
    assert "0.4.0" in line
    installs = [c for c in calls(device) if c.startswith("--conf") and " install " in f" {c} "]
    assert len(installs) == 1 and installs[0].endswith("incoming/v4.raucb")
    assert not list((device.data_dir / "updates" / "incoming").glob("*"))
    assert read_status(device)["last_update"]["version"] == "0.4.0"


def test_first_boot_installs_the_update_certificate_and_keyring_reset_removes_them(tmp_path,
                                                                                   pki):
    from provisioning.apply import apply
    from provisioning.layout import Layout
    from provisioning.state import factory_reset
    ours, _ = pki
    root, boot = tmp_path / "root", tmp_path / "boot"
    (root / "var/lib/ketang").mkdir(parents=True)
    (root / "etc/ketang").mkdir(parents=True)
    (root / "etc/ketang/ketang.toml").write_text("[server]\nport = 80\n")
    boot.mkdir()
    ca = (ours / "update-ca.pem").read_text()
    (boot / "ketang-setup.toml").write_text(
        '[school]\nname = "测试小学"\n[wifi]\nssid = "t"\ncountry = "CN"\n'
        f'passphrase = "a-long-passphrase"\n[trust]\nupdate_keys = [\'\'\'{ca}\'\'\']\n')
    layout = Layout(root=root, boot=boot)
    out = apply(layout)
    assert out is not None and out.ok, out.problems
    updates = root / "var/lib/ketang/trust/updates"
    assert sorted(p.name for p in updates.iterdir())[-1] == "keyring.pem"
    assert (updates / "keyring.pem").read_text().strip() == ca.strip()
    assert len(list(updates.glob("*.pem"))) == 2
    factory_reset(layout)
    assert list(updates.glob("*")) == []


def test_status_says_rolled_back_when_the_new_slot_ran_out_of_tries(device):
    """What `ketang update status` shows after the boot loader abandoned a slot."""
    from provisioning.update import record, summary
    record(device, last_update={"version": "0.3.0", "slot": "a", "outcome": "trial-failed",
                                "reason": "ketang serve does not answer its front page"})
    doc = summary(device, {"a": "bad", "b": "good"})
    assert doc["last_update"]["outcome"] == "rolled-back"
    assert "front page" in doc["last_update"]["reason"]
    assert summary(device, {"a": "trial", "b": "good"})["last_update"]["outcome"] == \
        "trial-failed"


def test_an_install_cut_short_by_a_restart_says_interrupted(device, tmp_path):
    """Power lost while RAUC wrote the idle slot: the next boot (a new boot id) reports the
    update as interrupted, with what to do; in the same boot it is still installing."""
    from provisioning.update import record, summary
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("11111111-1111-1111-1111-111111111111\n")
    device.boot_id_file = boot_id
    record(device, last_update={"version": "0.2.0", "outcome": "installing",
                                "boot_id": device.boot_id()})
    assert summary(device)["last_update"]["outcome"] == "installing"
    boot_id.write_text("22222222-2222-2222-2222-222222222222\n")
    last = summary(device)["last_update"]
    assert last["outcome"] == "interrupted"
    assert "Install it again" in last["reason"] and last["reason"].startswith("安装时")


def test_a_passed_gate_marks_the_slot_good_only_where_rauc_counts_the_tries(device, tmp_path):
    """The Pi 4 (RAUC's uboot backend) refills the running slot's tries with `rauc status
    mark-good booted`; amd64 (custom backend, systemd-bless-boot) asks RAUC nothing; a
    boot that did not come through U-Boot (no uboot.env: QEMU's -kernel) has no counter,
    and the gate says so instead of failing."""
    from provisioning.update import mark_good
    log = device.rauc_conf.parent.parent / "rauc-calls.log"
    assert mark_good(device) == "" and not log.exists()
    conf = device.rauc_conf.read_text()
    device.rauc_conf.write_text(conf.replace("bootloader=custom", "bootloader=uboot"))
    device.fw_env_config = tmp_path / "fw_env.config"
    env = tmp_path / "boot" / "uboot.env"
    device.fw_env_config.write_text(f"# comment\n{env} 0x0000 0x4000\n")
    said = mark_good(device)
    assert said.startswith("没有启动计数器。No boot counter: ") and str(env) in said
    assert "does not exist" in said and not log.exists()
    device.fw_env_config.unlink()
    assert "names no U-Boot environment" in mark_good(device) and not log.exists()
    device.fw_env_config.write_text(f"{env} 0x0000 0x4000\n")
    env.parent.mkdir()
    env.write_bytes(bytes(0x4000))
    with pytest.raises(UpdateError, match="could not mark the running slot good"):
        mark_good(device)                  # this machine's RAUC cannot write that environment
    assert "status mark-good booted" in log.read_text()


def test_a_trial_boot_is_told_by_the_boot_loader(device, tmp_path):
    """amd64: systemd-boot's LoaderBootCountPath. The Pi 4: U-Boot counts every boot, so a
    slot is on trial when its environment exists and the last update or rollback made
    this slot boot and it has not passed its gate; without U-Boot nothing is counted."""
    from provisioning.update import on_trial, record
    device.boot_count_var = tmp_path / "LoaderBootCountPath"
    assert not on_trial(device, "b")
    device.boot_count_var.write_text("x")
    assert on_trial(device, "b")
    conf = device.rauc_conf.read_text()
    device.rauc_conf.write_text(conf.replace("bootloader=custom", "bootloader=uboot"))
    env = tmp_path / "uboot.env"
    device.fw_env_config = tmp_path / "fw_env.config"
    device.fw_env_config.write_text(f"{env} 0x0000 0x4000\n")
    env.write_bytes(bytes(0x4000))
    assert not on_trial(device, "b")                     # no update: a good slot
    for outcome, trial in (("installed", True), ("trial-failed", True), ("good", False)):
        record(device, last_update={"slot": "b", "outcome": outcome})
        assert on_trial(device, "b") is trial, outcome
        assert not on_trial(device, "a"), outcome        # the previous slot is not on trial
    record(device, last_update={"slot": "b", "outcome": "installed"})
    env.unlink()
    assert not on_trial(device, "b")                     # no U-Boot: nothing counts tries
