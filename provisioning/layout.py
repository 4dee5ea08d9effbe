"""Where provisioning reads and writes, under a root prefix (``/`` on the device, a temp
folder in tests).

Paths are the device's own (``/etc/hostapd/hostapd.conf``); :meth:`Layout.host` maps one
into the root, following symbolic links *inside* the root, so an image whose root is
read-only may make these paths links into the data partition and provisioning writes
through them (docs/provisioning.md, "Contract with the image").
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ETC_KETANG_CONFIG = PurePosixPath("/etc/ketang/ketang.toml")
HOSTAPD_CONF = PurePosixPath("/etc/hostapd/hostapd.conf")
DNSMASQ_CONF = PurePosixPath("/etc/dnsmasq.d/ketang.conf")
NETWORKD_WIFI = PurePosixPath("/etc/systemd/network/10-ketang-classroom.network")
NETWORKD_UPLINK = PurePosixPath("/etc/systemd/network/20-ketang-uplink.network")
HOSTNAME = PurePosixPath("/etc/hostname")
LOCALTIME = PurePosixPath("/etc/localtime")
TIMEZONE = PurePosixPath("/etc/timezone")
ZONEINFO = PurePosixPath("/usr/share/zoneinfo")
DATA_DIR = PurePosixPath("/var/lib/ketang")
LEASES = PurePosixPath("/run/ketang/dnsmasq.leases")
HOSTAPD_CTRL = PurePosixPath("/run/hostapd")


@dataclass(frozen=True)
class Layout:
    """The folders one apply works on."""

    root: Path = Path("/")
    boot: Path | None = None                  # the FAT partition holding the setup file
    data_dir: PurePosixPath = DATA_DIR        # as the device sees it
    config: PurePosixPath = ETC_KETANG_CONFIG

    def host(self, device_path: PurePosixPath | str, follow_last: bool = True) -> Path:
        """The file ``device_path`` of the device, as a path on this machine
        (``follow_last=False``: the link itself when the last component is one)."""
        path = PurePosixPath(device_path)
        if follow_last:
            return resolve_in_root(self.root, path)
        return resolve_in_root(self.root, path.parent) / path.name

    def link_host(self, device_path: PurePosixPath | str) -> Path:
        """Where to make the symbolic link ``device_path``: the path itself, or, when the
        image already made it a link into the data partition (``/etc/localtime ->
        /var/lib/ketang/etc/localtime``: a read-only root under a RAM overlay), that link's
        target, so the new link survives a reboot."""
        path = PurePosixPath(device_path)
        link = self.host(path, follow_last=False)
        if link.is_symlink():
            target = PurePosixPath(os.path.normpath(path.parent / os.readlink(link)))
            if target.is_relative_to(self.data_dir):
                return self.host(target, follow_last=False)
        return link

    def data(self, *parts: str) -> PurePosixPath:
        """A path in the data partition, as the device sees it."""
        return self.data_dir.joinpath(*parts)

    # Files on the data partition (device paths).
    @property
    def state_file(self) -> PurePosixPath:
        return self.data("provisioning", "state.json")

    @property
    def last_result_file(self) -> PurePosixPath:
        return self.data("provisioning", "last-result.json")

    @property
    def sealed_file(self) -> PurePosixPath:
        return self.data("provisioning", "sealed.json")

    @property
    def publisher_keys_dir(self) -> PurePosixPath:
        return self.data("trust", "publishers")

    @property
    def update_keys_dir(self) -> PurePosixPath:
        return self.data("trust", "updates")


def resolve_in_root(root: Path, path: PurePosixPath, _hops: int = 0) -> Path:
    """``root/path`` with every symbolic link on the way resolved as if ``root`` were /.

    The last component is resolved too when it is a link (writing replaces the link's
    target, not the link). A link that leaves the root cannot: ``..`` stops at the root.
    """
    parts = [p for p in path.parts if p not in ("/", "", ".")]
    current = PurePosixPath("/")
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        host = Path(root, *candidate.parts[1:])
        if host.is_symlink():
            _hops += 1
            if _hops > 40:
                raise OSError(f"too many symbolic links under {root}: {path}")
            target = PurePosixPath(os.readlink(host))
            base = PurePosixPath("/") if target.is_absolute() else current
            parts = [p for p in (base / target).parts if p not in ("/", "", ".")] + parts
            current = PurePosixPath("/")
            continue
        current = candidate
    return Path(root, *current.parts[1:])
