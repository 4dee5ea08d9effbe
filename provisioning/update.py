"""Software updates: verify a RAUC bundle, install it into the idle root slot, roll back.

RAUC (Debian's ``rauc``) does the cryptography and the writing: a bundle is one file
(squashfs payload + CMS signature, ``verity`` format) that RAUC verifies against the
keyring of the software-update certificates provisioning installed, before it reads
anything else of the file. This module decides *whether* to install (the device's
compatible string, the version against the booted one, ``--force`` for a technician's
rollback), turns RAUC's refusals into one line a technician can act on, and keeps the
outcome on the data partition (``/var/lib/ketang/updates/status.json``) for
``ketang update status`` and the dashboard. docs/updates.md.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from content_cache.atomic import atomic_write_json
from content_cache.errors import KetangError

from .imageenv import IMAGE_ENV, read_env
from .ubootenv import FW_ENV_CONFIG, missing_counter

RAUC_CONF = Path("/etc/rauc/system.conf")
DATA_DIR = Path("/var/lib/ketang")
STATUS_NAME = "status.json"
# How long `rauc` may take for one step (writing a 600 MB slot under emulation is slow).
INFO_TIMEOUT = 300
INSTALL_TIMEOUT = 3600
# What the last update or rollback says while its slot is on trial (not yet through its gate).
TRIAL_OUTCOMES = ("installed", "trial-failed")


class UpdateError(KetangError):
    """An update bundle was refused, or an update step failed: one line, what to do."""


@dataclass(frozen=True)
class Bundle:
    """What a verified bundle's manifest says."""

    path: Path
    compatible: str
    version: str


# --- versions ----------------------------------------------------------------------

_VERSION = re.compile(r"^\d+(\.\d+){0,3}([+~-][0-9A-Za-z.]+)?$")


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.2.10"`` → ``(0, 2, 10)``; a suffix after ``+``, ``-`` or ``~`` (a build label)
    is ignored. Anything else is refused (a bundle must say which version it is)."""
    text = text.strip()
    if not _VERSION.match(text):
        raise UpdateError(f"版本号 {text!r} 无法识别。The version {text!r} is not a version "
                          "this device understands (digits and dots, e.g. 0.2.0); the bundle "
                          "was built wrong: rebuild it with make update-bundle.")
    return tuple(int(p) for p in re.split(r"[+~-]", text, maxsplit=1)[0].split("."))


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, the same as, or newer than ``b``."""
    pa, pb = parse_version(a), parse_version(b)
    width = max(len(pa), len(pb))
    pa, pb = pa + (0,) * (width - len(pa)), pb + (0,) * (width - len(pb))
    return (pa > pb) - (pa < pb)


def check_version(bundle_version: str, booted_version: str, force: bool) -> None:
    """Refuse a bundle that is not newer than the booted system, unless ``force``."""
    order = compare_versions(bundle_version, booted_version)
    if order > 0 or force:
        return
    if order == 0:
        raise UpdateError(f"已是版本 {booted_version}，未安装。Version {bundle_version} is "
                          "already running; nothing installed.")
    raise UpdateError(f"更新包版本 {bundle_version} 比正在运行的 {booted_version} 旧，未安装。"
                      f"The bundle's version {bundle_version} is older than the running "
                      f"{booted_version}; nothing installed. A technician who means to go "
                      "back adds --force.")


# --- RAUC's words into ours ----------------------------------------------------------

_UNKNOWN_KEY = ("unable to get local issuer certificate", "self-signed certificate",
                "self signed certificate", "unable to get issuer certificate")


def refusal(stderr: str, bundle: Path) -> str:
    """One line saying why RAUC refused ``bundle``, from what it printed."""
    text = stderr.lower()
    name = bundle.name
    if any(s in text for s in _UNKNOWN_KEY):
        return (f"{name}: 签名密钥不受信任，未安装。The bundle is signed by a key this device "
                "does not trust; nothing installed. Only bundles signed with a software-update "
                "certificate provisioned on this device (trust.update_keys) are installed.")
    if "certificate has expired" in text or "certificate is not yet valid" in text:
        return (f"{name}: 签名证书已过期或未生效，未安装。The signing certificate has expired or "
                "is not valid yet (check the device's clock); nothing installed.")
    if "signature verification failed" in text or "invalid bundle format" in text \
            or "signature size" in text or "digest failure" in text \
            or "failed to verify" in text or "verity" in text or "bundle too small" in text:
        return (f"{name}: 更新包已损坏或被篡改，未安装。The bundle is damaged or was altered "
                "after signing (its signature does not match); nothing installed. Copy it "
                "again from the original.")
    if "no keyring" in text or "keyring" in text and "not" in text:
        return ("本设备没有软件更新证书，未安装。This device has no software-update certificate "
                "(trust.update_keys was not provisioned); nothing installed.")
    last = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    detail = last[-1].strip() if last else "no message"
    return (f"{name}: RAUC 拒绝了更新包，未安装。RAUC refused the bundle ({detail}); "
            "nothing installed.")


# --- the device ----------------------------------------------------------------------

def system_compatible(conf: Path) -> str:
    """The ``compatible`` string of RAUC's system.conf."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(conf.read_text(encoding="utf-8"))
        return parser["system"]["compatible"]
    except (OSError, KeyError, configparser.Error) as e:
        raise UpdateError(f"{conf}: 无法读取更新配置。Cannot read RAUC's configuration ({e}); "
                          "this image was built without update support.") from None


def system_bootloader(conf: Path) -> str:
    """The ``bootloader`` of RAUC's system.conf ('' when unreadable)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(conf.read_text(encoding="utf-8"))
        return parser["system"].get("bootloader", "")
    except (OSError, KeyError, configparser.Error):
        return ""


def mark_good(device: Device) -> str:
    """After a passed health gate, refill the running slot's tries where RAUC's backend
    counts them (``uboot``, the Raspberry Pi 4: ``rauc status mark-good booted`` sets
    ``BOOT_<slot>_LEFT`` again). On amd64 systemd-bless-boot does it. Returns what was
    done ('' when nothing was needed; a "No boot counter" line when this boot has no
    U-Boot environment to write, :func:`provisioning.ubootenv.missing_counter`);
    UpdateError when RAUC refused."""
    if system_bootloader(device.rauc_conf) != "uboot":
        return ""
    missing = missing_counter(device.fw_env_config)
    if missing:
        return missing
    proc = device.run_rauc("status", "mark-good", "booted")
    if proc.returncode != 0:
        raise UpdateError("无法标记当前系统为正常。RAUC could not mark the running slot good "
                          f"({(proc.stderr.strip().splitlines() or ['no message'])[-1]}); "
                          "its tries run out and the other slot boots.")
    return "marked good"


def slot_on_trial(last_update: dict, slot: str) -> bool:
    """Whether the last update or rollback (``last_update`` of the status file) made
    ``slot`` boot and it has not passed its gate yet."""
    return bool(slot) and last_update.get("slot") == slot and \
        last_update.get("outcome") in TRIAL_OUTCOMES


def on_trial(device: Device, slot: str) -> bool:
    """Whether this boot tries a slot that the boot loader may still abandon: systemd-boot
    counted it (amd64), or U-Boot's counter runs (its environment exists) and the slot is
    on trial by :func:`slot_on_trial` (the Pi 4: U-Boot counts every boot, so the status
    file tells a new slot from a good one)."""
    if system_bootloader(device.rauc_conf) == "uboot":
        return not missing_counter(device.fw_env_config) and \
            slot_on_trial(read_status(device).get("last_update", {}), slot)
    return device.boot_count_var.exists()


@dataclass
class Device:
    """Where this device keeps what updates need (tests point it at temp folders)."""

    rauc_conf: Path = RAUC_CONF
    image_env: Path = IMAGE_ENV
    data_dir: Path = DATA_DIR
    rauc: str = "rauc"
    boot_id_file: Path = Path("/proc/sys/kernel/random/boot_id")
    status_tries: int = 3       # `rauc status` asked again while RAUC's service starts
    fw_env_config: Path = FW_ENV_CONFIG     # where U-Boot's environment is (the Pi 4)
    # The variable systemd-boot sets when it counted this boot's try (amd64).
    boot_count_var: Path = Path("/sys/firmware/efi/efivars/LoaderBootCountPath-"
                                "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f")

    def boot_id(self) -> str:
        """This boot's id (a new one after every restart or power cut; '' if unknown)."""
        try:
            return self.boot_id_file.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    @property
    def status_file(self) -> Path:
        return self.data_dir / "updates" / STATUS_NAME

    def booted_version(self) -> str:
        version = read_env(self.image_env).get("KETANG_IMAGE_VERSION")
        if not version:
            raise UpdateError(f"{self.image_env}: 找不到系统版本。The running system's version "
                              "is not recorded; is this a Ketang image?")
        return version

    def run_rauc(self, *args: str, timeout: float = INFO_TIMEOUT) -> subprocess.CompletedProcess:
        if shutil.which(self.rauc) is None:
            raise UpdateError("找不到 rauc。RAUC is not installed on this system; software "
                              "updates need a Ketang image.")
        return subprocess.run([self.rauc, f"--conf={self.rauc_conf}", *args], text=True,
                              capture_output=True, timeout=timeout, check=False)


def verify(device: Device, path: Path) -> Bundle:
    """Have RAUC check ``path``'s signature (before anything else of it is read) and
    return what its manifest says; UpdateError with one line when it is refused."""
    if not path.is_file():
        raise UpdateError(f"{path}: 文件不存在。No such bundle file; nothing installed. Give "
                          "the path of a .raucb file.")
    proc = device.run_rauc("info", "--output-format=json", str(path))
    if proc.returncode != 0:
        raise UpdateError(refusal(proc.stderr, path))
    try:
        info = json.loads(proc.stdout)
        bundle = Bundle(path=path, compatible=str(info["compatible"]), version=str(info["version"]))
    except (ValueError, KeyError, TypeError):
        raise UpdateError(f"{path.name}: RAUC 的回答无法读取。RAUC's description of the bundle "
                          "could not be read; nothing installed.") from None
    return bundle


def check(device: Device, bundle: Bundle, force: bool) -> None:
    """Refuse a verified bundle made for another device, or not newer (without force)."""
    wanted = system_compatible(device.rauc_conf)
    if bundle.compatible != wanted:
        raise UpdateError(f"{bundle.path.name}: 此更新包不适用于本设备，未安装。The bundle is for "
                          f"'{bundle.compatible}', this device is '{wanted}'; nothing installed.")
    check_version(bundle.version, device.booted_version(), force)


# --- the status file (for ketang update status and the dashboard) ---------------------

def read_status(device: Device) -> dict[str, Any]:
    """The recorded update history; ``{}`` when none (or unreadable: never fatal)."""
    try:
        doc = json.loads(device.status_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def record(device: Device, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the status file (atomically) and return the new document."""
    doc = read_status(device)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    doc["written_at"] = now()
    device.status_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(device.status_file, doc, 0o644)
    return doc


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


INTERRUPTED = ("安装时断电或重启，未完成；当前系统不受影响，请重新安装。The device restarted while "
               "the update was being written; it was not installed and the running system is "
               "unchanged. Install it again.")


# --- the commands' work ----------------------------------------------------------------

def install(device: Device, path: Path, force: bool = False, source: str = "file") -> Bundle:
    """Verify, check, then have RAUC write the idle slot and make it boot next, on trial.

    A refused bundle changes no slot and no boot entry; the refusal is recorded.
    """
    try:
        bundle = verify(device, path)
        check(device, bundle, force)
    except UpdateError as e:
        record(device, last_refusal={"bundle": path.name, "at": now(), "reason": str(e),
                                     "source": source})
        raise
    record(device, last_update={"bundle": path.name, "version": bundle.version,
                                "from_version": device.booted_version(), "source": source,
                                "forced": force, "started_at": now(), "outcome": "installing",
                                "reason": "", "boot_id": device.boot_id()})
    proc = device.run_rauc("install", str(path), timeout=INSTALL_TIMEOUT)
    if proc.returncode != 0:
        reason = refusal(proc.stderr, path)
        record(device, last_update={"outcome": "install-failed", "reason": reason,
                                    "finished_at": now()})
        raise UpdateError(reason)
    slot = primary_bootname(device)      # the slot RAUC wrote boots next, on trial
    record(device, last_update={"outcome": "installed", "slot": slot, "finished_at": now(),
                                "reason": ""})
    return bundle


def rauc_status(device: Device, pause: float = 5.0) -> dict[str, Any]:
    """``rauc status --output-format=json`` (``{}`` when RAUC cannot tell).

    Asked again after a failure: the first call of a boot starts RAUC's service, which
    asks the boot loader backend about every slot, and on a slow machine that can take
    longer than D-Bus waits for an answer.
    """
    tries = device.status_tries
    for attempt in range(tries):
        proc = device.run_rauc("status", "--detailed", "--output-format=json")
        if proc.returncode == 0:
            try:
                doc = json.loads(proc.stdout)
            except ValueError:
                return {}
            return doc if isinstance(doc, dict) else {}
        if attempt + 1 < tries:
            time.sleep(pause)
    return {}


def rauc_slots(device: Device, doc: dict[str, Any] | None = None) -> list[tuple[str, dict]]:
    """(slot name, slot info) pairs of the root slots RAUC knows."""
    doc = rauc_status(device) if doc is None else doc
    out = []
    for item in doc.get("slots", []):
        for name, info in (item.items() if isinstance(item, dict) else []):
            if isinstance(info, dict) and info.get("class") == "rootfs":
                out.append((name, info))
    return out


def primary_bootname(device: Device, doc: dict[str, Any] | None = None) -> str:
    doc = rauc_status(device) if doc is None else doc
    primary = doc.get("boot_primary")
    for name, info in rauc_slots(device, doc):
        if name == primary:
            return str(info.get("bootname", ""))
    return ""


def summary(device: Device, boot_state: dict[str, str] | None = None) -> dict[str, Any]:
    """Both slots (version, state), the booted one, the next boot, the last update.

    ``boot_state``: the boot loader's view, slot → ``good``/``trial``/``bad``/``absent``.
    """
    doc = rauc_status(device)
    slots: dict[str, dict[str, Any]] = {}
    booted = ""
    for name, info in rauc_slots(device, doc):
        bootname = str(info.get("bootname") or name)
        bundle = (info.get("slot_status") or {}).get("bundle") or {}
        slots[bootname] = {"device": info.get("device", ""), "rauc_state": info.get("state", ""),
                           "version": bundle.get("version", ""),
                           "boot": (boot_state or {}).get(bootname, info.get("boot_status", ""))}
        if info.get("state") == "booted":
            booted = bootname
    booted_version = device.booted_version()
    if booted in slots and not slots[booted]["version"]:
        slots[booted]["version"] = booted_version     # the factory-flashed slot
    status = read_status(device)
    out = {"booted_slot": booted, "booted_version": booted_version,
           "next_boot": primary_bootname(device, doc), "slots": slots,
           "last_update": status.get("last_update", {}),
           "last_refusal": status.get("last_refusal", {}),
           "health": status.get("health", {})}
    last = out["last_update"]
    if last.get("outcome") == "installing" and last.get("boot_id") != device.boot_id():
        # The device restarted (power cut, reset) while RAUC wrote the idle slot: RAUC had
        # marked that slot bad first, so the running one still boots; install again.
        last = dict(last, outcome="interrupted", reason=INTERRUPTED)
        out["last_update"] = last
    if last.get("slot") and last.get("slot") != booted and \
            (boot_state or {}).get(last["slot"]) == "bad":
        last = dict(last, outcome="rolled-back")
        out["last_update"] = last
    return out


def rollback(device: Device) -> str:
    """Make the other slot boot next (on trial, through the health gate). Returns its name."""
    current = summary(device)
    other = [s for s in current["slots"] if s != current["booted_slot"]]
    if not other or not current["slots"][other[0]].get("version"):
        raise UpdateError("另一个系统分区是空的，无法回退。The other root slot holds no installed "
                          "system; there is nothing to roll back to.")
    proc = device.run_rauc("status", "mark-active", "other")
    if proc.returncode != 0:
        raise UpdateError(f"回退失败。RAUC could not make the other slot boot next: "
                          f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    record(device, last_update={"bundle": "", "version": current["slots"][other[0]]["version"],
                                "from_version": current["booted_version"], "source": "rollback",
                                "forced": True, "started_at": now(), "outcome": "installed",
                                "slot": other[0], "reason": ""})
    return other[0]


# --- a drive carrying KETANG/updates/ (the drive watcher hands it here) ------------------

UPDATES_FOLDER = "updates"
BUNDLE_SUFFIX = ".raucb"


def _verified(device: Device, found: list[Path]) -> tuple[list[Bundle], list[str]]:
    """Each bundle verified where it lies (signature first) and checked for this device:
    the acceptable ones, and the refusals (one line each)."""
    refusals, good = [], []
    for path in found:
        try:
            bundle = verify(device, path)
            check(device, bundle, force=False)
            good.append(bundle)
        except UpdateError as e:
            refusals.append(str(e))
    return good, refusals


def _bundles_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(BUNDLE_SUFFIX)
                  and p.is_file() and not p.is_symlink()) if folder.is_dir() else []


def install_ready(device: Device, folder: Path) -> str:
    """Install what the sync service fetched and verified (``folder``: its hand-over
    folder on the data partition, ``updates/ready/``): verified again here, the newest
    acceptable one installed; every bundle is taken out of ``folder`` either way (the
    sync service keeps its own copy to seed). Returns one line; UpdateError when every
    bundle was refused or the install failed."""
    found = _bundles_in(folder)
    if not found:
        for path in folder.iterdir() if folder.is_dir() else []:
            if not path.is_dir():
                path.unlink(missing_ok=True)
        return ""
    try:
        good, refusals = _verified(device, found)
        if not good:
            record(device, last_refusal={"bundle": found[-1].name, "at": now(),
                                         "reason": refusals[-1], "source": "sync"})
            raise UpdateError(refusals[-1])
        best = max(good, key=lambda b: parse_version(b.version))
        install(device, best.path, source="sync")
    finally:
        for path in folder.iterdir():    # the bundles, and anything else: an empty folder
            if not path.is_dir():        # is what stops ketang-update-ready.path
                path.unlink(missing_ok=True)
    return (f"已安装软件更新 {best.version}，重启后试用。Software update {best.version} "
            "installed; it is tried at the next restart.")


def install_from_folder(device: Device, folder: Path, source: str = "drive") -> str:
    """Install the newest acceptable bundle in ``folder`` (a drive's ``KETANG/updates/``).

    Every bundle is verified where it lies (RAUC checks the signature first); only one
    that is newer than the running system is copied to the data partition (so RAUC's
    service, outside the watcher's sandbox, can read it, and the drive may be pulled)
    and installed. Returns one line saying what happened; UpdateError when every bundle
    was refused (nothing installed).
    """
    found = _bundles_in(folder)
    if not found:
        return ""
    good, refusals = _verified(device, found)
    if not good:
        record(device, last_refusal={"bundle": found[-1].name, "at": now(),
                                     "reason": refusals[-1], "source": source})
        raise UpdateError(refusals[-1])
    best = max(good, key=lambda b: parse_version(b.version))
    spool = device.data_dir / "updates" / "incoming"
    spool.mkdir(parents=True, exist_ok=True)
    copy = spool / best.path.name
    need = best.path.stat().st_size
    if shutil.disk_usage(spool).free < need + 64 * 1024 * 1024:
        raise UpdateError(f"{best.path.name}: 数据分区空间不足，未安装。Not enough room on the "
                          f"data partition to take the bundle ({need // 1_000_000} MB); "
                          "nothing installed.")
    tmp = copy.with_name(copy.name + ".part")
    try:
        with best.path.open("rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, copy)
        install(device, copy, source=source)   # verified again there (the copy)
    finally:
        for p in (tmp, copy):
            p.unlink(missing_ok=True)
    return (f"已安装软件更新 {best.version}，重启后试用。Software update {best.version} "
            "installed; it is tried at the next restart.")
