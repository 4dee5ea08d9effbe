"""Apply a setup file: validate everything, stage every file, rename them into place.

What first boot runs (``ketang provision --apply``). Idempotent: applying the same file
twice changes nothing the second time. Power-cut safe: nothing is in place until every
file is staged; the setup file loses its applied settings only after they are in place,
so a cut anywhere means the next boot applies the same file again, cleanly. The seal that
locks the security settings is written last.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from content_cache.atomic import atomic_write_bytes
from content_cache.errors import KetangError
from content_cache.keys import key_id, load_public_key, public_pem

from . import adminpw, render, state, updatekeys
from .layout import (
    DNSMASQ_CONF,
    HOSTAPD_CONF,
    HOSTNAME,
    LOCALTIME,
    NETWORKD_UPLINK,
    NETWORKD_WIFI,
    TIMEZONE,
    ZONEINFO,
    Layout,
)
from .schema import BY_NAME, Checked, validate
from .setupfile import DRIVE_SETUP, RESULT_NAME, SETUP_NAME, Problem, SetupFileError, without
from .transaction import Previous, Transaction

DEVICE_KEY = "device"            # <data_dir>/device.key and device.pub (as usage signing)


@dataclass
class Outcome:
    """What one apply did, for the result file, the CLI and the dashboard."""

    source: str
    ok: bool = False
    first_boot: bool = False
    device_id: str = ""
    applied: dict[str, Any] = field(default_factory=dict)
    unchanged: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    finished: str = ""
    kept: bool = False      # the setup file is left as it was (a drive's): not rewritten
    restarted: list[str] = field(default_factory=list)   # services told to take the change
    # What each changed file held before (provisioning.runtime puts it back if the access
    # point does not come up); never shown, never written anywhere.
    previous: dict[Path, Previous] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, secrets replaced by "(set)"."""
        return {"source": self.source, "ok": self.ok, "first_boot": self.first_boot,
                "device_id": self.device_id, "applied": _shown(self.applied),
                "unchanged": _shown(self.unchanged),
                "problems": [{"setting": p.setting, "line": p.line, "message": p.message}
                             for p in self.problems],
                "changed_files": self.changed_files, "warnings": self.warnings,
                "restarted": self.restarted, "finished": self.finished}

    def result_text(self) -> str:
        """ketang-setup-result.txt: applied settings without secrets, or the errors."""
        out = [f"Ketang 设置结果 / setup result — {self.finished}",
               f"来源 Source: {self.source}"]
        if self.ok:
            out.append("状态 Status: 已应用 APPLIED" + (" (首次启动 first boot)"
                                                       if self.first_boot else ""))
        elif self.kept:
            out.append("状态 Status: 未应用，设备保持原样 NOT APPLIED: the device is as it was. "
                       "改正下列问题后重新插入 U 盘。Fix the problems below and plug the drive "
                       "in again.")
        else:
            out.append("状态 Status: 未应用，设备保持原样 NOT APPLIED: the device is as it was. "
                       "改正下列问题后重新启动。Fix the problems below and restart the device.")
        if self.device_id:
            out.append(f"设备编号 Device id: {self.device_id}")
        if self.problems:
            out += ["", "问题 Problems:"] + [f"  - {p}" for p in self.problems]
        if self.warnings:
            out += ["", "注意 Warnings:"] + [f"  - {w}" for w in self.warnings]
        if self.applied and self.kept:
            out += ["", "已应用（U 盘上的文件保持不变）Applied (the file on the drive is "
                    "kept as it is):"]
            out += [f"  {k} = {v}" for k, v in _shown(self.applied).items()]
        elif self.applied:
            out += ["", "已应用（已从 ketang-setup.toml 删除）Applied (removed from "
                    "ketang-setup.toml):"]
            out += [f"  {k} = {v}" for k, v in _shown(self.applied).items()]
        if self.unchanged:
            out += ["", "已是当前设置 Already in place:" if self.kept else
                    "已是当前设置（已删除）Already in place (removed from the file):"]
            out += [f"  {k} = {v}" for k, v in _shown(self.unchanged).items()]
        if self.restarted:
            out += ["", "已重新启动 Restarted: " + ", ".join(self.restarted)]
        if self.ok and not self.applied:
            out += ["", "没有需要更改的设置。Nothing to change."]
        return "\n".join(out) + "\n"


def _shown(values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        setting = BY_NAME.get(k)
        if setting and setting.secret:
            out[k] = "(已设置 set)"
        elif k.startswith("trust."):
            out[k] = f"{len(v)} key(s)"
        else:
            out[k] = json.dumps(v, ensure_ascii=False)
    return out


def find_setup(layout: Layout, drives: Sequence[Path] = ()) -> Path | None:
    """The setup file to apply: on the boot partition, else on the first drive that has
    ``KETANG/setup/ketang-setup.toml``."""
    if layout.boot is not None and (layout.boot / SETUP_NAME).is_file():
        return layout.boot / SETUP_NAME
    for drive in drives:
        candidate = Path(drive).joinpath(*DRIVE_SETUP)
        if candidate.is_file():
            return candidate
    return None


def apply_file(layout: Layout, setup: Path, rewrite: bool = True) -> Outcome:
    """Validate and apply ``setup``; write the result file onto the boot partition.

    ``rewrite``: remove the applied settings from ``setup`` (False for a read-only drive).
    Raises KetangError only when the device itself is broken (data partition missing);
    a bad file gives an Outcome with problems and changes nothing.
    """
    outcome = Outcome(source=str(setup), kept=not rewrite)
    data_dir = layout.host(layout.data_dir)
    if not data_dir.is_dir():
        raise KetangError(f"数据分区未挂载。The data folder {layout.data_dir} does not exist "
                          f"under {layout.root}: is the data partition mounted?")
    try:
        data = setup.read_bytes()
        device = state.device(layout)
        outcome.first_boot = not device.sealed
        checked = validate(data, device)
    except SetupFileError as e:
        outcome.problems = e.problems
    except (KetangError, OSError) as e:
        outcome.problems = [Problem("", None, str(e))]
    if outcome.problems:
        finish(layout, outcome)
        return outcome
    _apply(layout, checked, device.values, outcome)
    outcome.applied = checked.changes
    outcome.unchanged = checked.unchanged
    outcome.ok = True
    if rewrite:
        applied = [BY_NAME[name].path for name in checked.given]
        try:
            atomic_write_bytes(setup, without(checked.text, applied).encode("utf-8"))
        except OSError as e:    # applied all the same; the next boot finds it in place
            outcome.warnings.append(
                f"无法改写设置文件。Could not rewrite {setup.name} ({e.strerror}): the "
                "settings are applied, but still in the file; delete them by hand.")
    finish(layout, outcome)
    return outcome


def finish(layout: Layout, outcome: Outcome) -> None:
    """Stamp the outcome's time and write it down: ``ketang-setup-result.txt`` on the boot
    partition (when the layout has one) and ``last-result.json`` on the data partition."""
    outcome.finished = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if layout.boot is not None and layout.boot.is_dir():
        # FAT has no journal: temp file, fsync, rename, fsync of the folder.
        try:
            atomic_write_bytes(layout.boot / RESULT_NAME,
                               outcome.result_text().replace("\n", "\r\n").encode("utf-8"))
        except OSError as e:    # a full or read-only card: the outcome is still printed
            outcome.warnings.append(f"无法写入结果文件。Could not write {RESULT_NAME} on "
                                    f"{layout.boot} ({e.strerror}).")
    # The same outcome on the data partition, for the dashboard and the projector (they
    # need not know where the boot partition is mounted). Secrets are hidden in it too.
    data_dir = layout.host(layout.data_dir)
    if data_dir.is_dir():
        path = layout.host(layout.last_result_file)
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write_bytes(path, (json.dumps(outcome.as_dict(), ensure_ascii=False,
                                                 indent=1) + "\n").encode("utf-8"))
            if os.geteuid() == 0:
                os.chown(path, *_owner(data_dir))
        except OSError as e:
            outcome.warnings.append(f"Could not write {layout.last_result_file} "
                                    f"({e.strerror}).")


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


def _apply(layout: Layout, checked: Checked, before: Mapping[str, Any],
           outcome: Outcome) -> None:
    data_dir = layout.host(layout.data_dir)
    owner = _owner(data_dir)
    root_owned = (0, owner[1])
    given = checked.given
    values = {**before, **{k: v for k, v in given.items() if k != "admin.password"}}
    # A new passphrase closes an open network; open = true drops the passphrase.
    if "wifi.passphrase" in given:
        values["wifi.open"] = False
    elif given.get("wifi.open"):
        values.pop("wifi.passphrase", None)
    sealed = state.is_sealed(layout)
    tx = Transaction()

    # Identity: made once, kept for ever (a factory reset keeps it too).
    private_path, public_path = data_dir / f"{DEVICE_KEY}.key", data_dir / f"{DEVICE_KEY}.pub"
    if public_path.is_file() and private_path.is_file():
        outcome.device_id = key_id(load_public_key(public_path))
    else:
        private = Ed25519PrivateKey.generate()
        tx.write(private_path, private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()), 0o600, owner)
        tx.write(public_path, public_pem(private.public_key()), 0o644, owner)
        outcome.device_id = key_id(private.public_key())

    # Security settings: only before the seal (validate refused changes after it).
    keys_dir = None
    if not sealed:
        for name, folder in (("trust.publisher_keys", layout.publisher_keys_dir),
                             ("trust.update_keys", layout.update_keys_dir)):
            if name not in given:
                continue
            host = layout.host(folder)
            wanted = {}
            if name == "trust.update_keys":     # certificates, and RAUC's keyring of them
                for pem in given[name]:
                    cert = updatekeys.load_certificate(pem)
                    wanted[f"{updatekeys.certificate_id(cert)}.pem"] = pem.encode("ascii")
                wanted[updatekeys.KEYRING_NAME] = updatekeys.keyring(given[name])
            else:
                for pem in given[name]:
                    key = serialization.load_pem_public_key(pem.encode("ascii"))
                    wanted[f"{key_id(key)}.pub"] = pem.encode("ascii")   # type: ignore
            for file_name, pem_bytes in wanted.items():
                tx.write(host / file_name, pem_bytes, 0o644, owner)
            for old in sorted([*host.glob("*.pub"), *host.glob("*.pem")]) \
                    if host.is_dir() else []:
                if old.name not in wanted:
                    tx.remove(old)
        if "admin.password" in given:
            path = adminpw.hash_file(data_dir)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            if os.geteuid() == 0:     # the service reads it and keeps its session key there
                os.chown(path.parent, *owner)
            tx.write(path, adminpw.hashed(given["admin.password"]), 0o600, owner)
    if "trust.publisher_keys" in values:
        keys_dir = str(layout.publisher_keys_dir)

    # The network and the system.
    tx.write(layout.host(HOSTAPD_CONF), render.hostapd_conf(values).encode(), 0o600)
    tx.write(layout.host(DNSMASQ_CONF), render.dnsmasq_conf(values).encode(), 0o644)
    tx.write(layout.host(NETWORKD_WIFI), render.networkd_classroom(values).encode(), 0o644)
    tx.write(layout.host(NETWORKD_UPLINK), render.networkd_uplink(values).encode(), 0o644)
    config_path = layout.host(layout.config)
    existing = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    config = render.ketang_toml(existing, values, {"id": outcome.device_id,
                                                   "data_dir": str(layout.data_dir),
                                                   "keys_dir": keys_dir or ""})
    tx.write(config_path, config.encode("utf-8"), 0o640, root_owned)
    if "system.hostname" in values:
        tx.write(layout.host(HOSTNAME), (values["system.hostname"] + "\n").encode())
    if "system.timezone" in values:
        tz = values["system.timezone"]
        tx.write(layout.host(TIMEZONE), (tz + "\n").encode())
        tx.symlink(layout.link_host(LOCALTIME), str(ZONEINFO / tz))
    tx.write(layout.host(layout.state_file), state.state_bytes(values), 0o600)
    _run(tx, layout)
    outcome.changed_files = [str(PurePosixPath("/") / p.relative_to(layout.root))
                             for p in tx.changed]
    outcome.previous.update(tx.previous)

    if not sealed:      # last: from now on security settings are locked
        seal = Transaction()
        seal.write(layout.host(layout.sealed_file), state.sealed_bytes(outcome.device_id),
                   0o644)
        _run(seal, layout)
        outcome.changed_files.append(str(layout.sealed_file))
        outcome.previous.update(seal.previous)
    # (On the image /etc/hostname is a link: the changed file is its target.)
    if (layout.root == Path("/") and layout.host(HOSTNAME) in tx.changed
            and os.geteuid() == 0):
        try:
            socket.sethostname(values["system.hostname"])
        except OSError:
            pass        # takes effect at the next boot


def _run(tx: Transaction, layout: Layout) -> None:
    try:
        tx.stage()
    except BaseException:
        tx.abandon()
        raise
    tx.commit()


def apply(layout: Layout, drives: Sequence[Path] = ()) -> Outcome | None:
    """Apply the setup file from the boot partition or a drive; None when there is none.

    A file on a drive is not rewritten (drives are mounted read-only); its result goes to
    the boot partition.
    """
    setup = find_setup(layout, list(drives))
    if setup is None:
        return None
    on_boot = layout.boot is not None and setup.parent == layout.boot
    return apply_file(layout, setup, rewrite=on_boot)


__all__ = ["Outcome", "apply", "apply_file", "finish", "find_setup", "SETUP_NAME",
           "RESULT_NAME"]
