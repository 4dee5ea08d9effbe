"""The image's layout: /etc is RAM over a read-only root slot, and a device's settings are
links into the data partition (image-build/data-links.txt). A first boot's settings must be
there again after a reboot, when everything written outside /var/lib/ketang is gone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from appliance.config import load_settings
from content_cache.keys import generate_keypair
from provisioning.apply import apply
from provisioning.layout import Layout

from .test_apply import WIFI_KEY, first_boot_file

IMAGE_BUILD = Path(__file__).parents[2] / "image-build"


def data_links() -> list[tuple[str, str]]:
    out = []
    for line in (IMAGE_BUILD / "data-links.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            link, target = line.split()
            out.append((link, target))
    return out


def boot(root: Path) -> None:
    """The root slot as it comes up at every boot: /etc freshly made from the image (its
    links into the data partition), the data partition as it was left."""
    for child in root.iterdir():
        if child.name != "var":
            shutil.rmtree(child)
    for link, target in data_links():
        path = root / link.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)


@pytest.fixture
def publisher(tmp_path) -> str:
    return generate_keypair(tmp_path / "pub", "national").public_path.read_text()


@pytest.fixture
def image(tmp_path) -> Layout:
    """A device root as build.sh makes it: the data partition holds the image's defaults."""
    root, boot_dir = tmp_path / "root", tmp_path / "boot"
    data = root / "var/lib/ketang"
    shutil.copytree(IMAGE_BUILD / "data", data)
    os.symlink("/usr/share/zoneinfo/Etc/UTC", data / "etc/localtime")
    boot_dir.mkdir()
    boot(root)
    return Layout(root=root, boot=boot_dir)


def test_every_file_provisioning_writes_outside_the_data_partition_is_a_link(image, publisher):
    first_boot_file(image, publisher)
    out = apply(image)
    assert out.ok, out.problems
    data = image.root / "var/lib/ketang"
    outside = [f for f in out.changed_files if not f.startswith("/var/lib/ketang/")]
    assert outside == [], f"written into the RAM /etc, lost at the next boot: {outside}"
    links = dict(data_links())
    for link in links:
        assert (image.root / link.lstrip("/")).is_symlink(), link
    assert os.readlink(data / "etc/localtime") == "/usr/share/zoneinfo/Asia/Shanghai"
    assert (data / "etc/hostname").read_text() == "ketang-hongxing\n"
    assert 'ssid2=P"' in (data / "etc/hostapd/hostapd.conf").read_text()
    assert (data / "etc/hostapd/hostapd.conf").stat().st_mode & 0o777 == 0o600


def test_a_first_boots_settings_survive_a_reboot_and_a_second_file_changes_them(
        image, publisher):
    first_boot_file(image, publisher)
    first = apply(image)
    assert first.ok
    boot(image.root)     # links are absolute, as on the device: read through image.host
    config = load_settings(image.host("/etc/ketang/ketang.toml"))
    assert config.device.name == "红星小学" and config.device.id == first.device_id
    assert config.server.port == 80, "the image's own settings are kept"
    assert image.host("/etc/hostname").read_text() == "ketang-hongxing\n"
    hostapd = image.host("/etc/hostapd/hostapd.conf").read_text()
    assert 'ssid2=P"课堂-红星小学"' in hostapd and "country_code=CN" in hostapd
    assert "address=/#/192.168.4.1" in image.host("/etc/dnsmasq.d/ketang.conf").read_text()
    assert "Address=192.168.4.1/24" in image.host(
        "/etc/systemd/network/10-ketang-classroom.network").read_text()

    (image.boot / "ketang-setup.toml").write_text(
        '[school]\nname = "新华小学"\n[wifi]\nssid = "课堂-新华"\n', encoding="utf-8")
    out = apply(image)
    assert out.ok and not out.first_boot, out.problems
    boot(image.root)
    assert load_settings(image.host("/etc/ketang/ketang.toml")).device.name == "新华小学"
    hostapd = image.host("/etc/hostapd/hostapd.conf").read_text()
    assert 'ssid2=P"课堂-新华"' in hostapd and WIFI_KEY not in hostapd
    assert apply(image) is not None     # the rewritten file: nothing left to change
    assert "Nothing to change" in (image.boot / "ketang-setup-result.txt").read_text()
