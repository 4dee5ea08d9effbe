"""Provisioning on the amd64 image, in QEMU (TCG): one file on the boot partition makes the
flashed image one school's device, and what it set survives reboots.

One guest, three boots (each costs minutes under emulation):

1. ``ketang-setup.toml`` is put on the image's FAT boot partition before the first boot
   (mtools, as a technician's laptop would): the first boot applies it, writes
   ``ketang-setup-result.txt`` beside it, rewrites the file without what it applied (no
   secrets left on the card) and serves the school's name.
2. The technician edits the file (new SSID and school name) and powers the device off and
   on: it has them, and everything else of the first boot (host name, time zone, admin password,
   trusted key) is still there: those live on the data partition, /etc is RAM.
   A file that tries to change the trusted keys is then refused by the same unit the boot
   runs: the result file says why, nothing changes.
3. A broken file on the card: the device boots as it was and the result file says which
   setting, which line and what to write.

Optional, when the guest kernel has ``mac80211_hwsim``: hostapd comes up by itself on one
simulated radio with the provisioned SSID, a ``wpa_supplicant`` on another (in its own
network namespace, a "tablet") associates with WPA2, resolves ``ketang.lan`` through the
device's dnsmasq and fetches a lesson over that Wi-Fi link.

Figures (boot to serving the school's page under TCG, with the host's load) are printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from content_cache.keys import generate_keypair
from provisioning.render import wpa_psk

from .vm import BuiltImage, GuestVM, build_image, require_image_tools

pytestmark = [pytest.mark.slow, pytest.mark.image]
LESSON = "primary-g1-math-pep-v1-u3-l1"
WIFI_KEY = "our-own-wifi-key"
ADMIN_PASSWORD = "correct horse battery"
FIGURES: dict[str, object] = {}


def figure(name: str, value: object) -> None:
    FIGURES[name] = value
    print(f"[provision test] {name}: {value}", flush=True)


def load() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> BuiltImage:
    require_image_tools()
    dist = tmp_path_factory.mktemp("dist")
    t = time.monotonic()
    built = build_image("amd64", dist, dist / "build.log")
    figure("make image (cached when unchanged), s", round(time.monotonic() - t))
    return built


def first_boot_file(publisher: str) -> str:
    return f"""# 红星小学的课堂设备 (edited on a laptop)
[school]
name = "红星小学"
id = "cn-gz-0042"

[wifi]
ssid = "课堂-红星"
passphrase = "{WIFI_KEY}"
country = "CN"

[admin]
password = "{ADMIN_PASSWORD}"

[trust]
publisher_keys = ['''{publisher}''']

[system]
hostname = "ketang-hongxing"
timezone = "Asia/Shanghai"
"""


def with_setup_file(image: BuiltImage, work: Path, text: str) -> Path:
    """A copy of the image (sparse) with ``ketang-setup.toml`` on its FAT boot partition,
    written with mtools as any laptop would (the cached image is never written)."""
    disk = work / "flashed.img"
    subprocess.run(["cp", "--sparse=always", str(image.raw), str(disk)], check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(disk)], check=True,
                                      capture_output=True, text=True).stdout)
    boot = next(p for p in table["partitiontable"]["partitions"] if p["name"] == "ketang-boot")
    setup = work / "ketang-setup.toml"
    setup.write_text(text, encoding="utf-8")
    subprocess.run(["mcopy", "-o", "-i", f"{disk}@@{boot['start'] * 512}", str(setup),
                    "::/ketang-setup.toml"], check=True)
    return disk


def page(vm: GuestVM, path: str = "/") -> str:
    with urllib.request.urlopen(vm.url(path), timeout=60) as r:
        return r.read().decode("utf-8")


def wait_for_school(vm: GuestVM, name: str, since: float, timeout: float = 1500) -> float:
    """Wait until the front page names ``name``; seconds since ``since``."""
    deadline = since + timeout
    last = ""
    while time.monotonic() < deadline:
        if vm.proc.poll() is not None:
            raise AssertionError(f"QEMU exited:\n{vm.serial_tail()}")
        try:
            last = page(vm)
            if name in last:
                return time.monotonic() - since
        except OSError:
            pass
        time.sleep(2)
    raise AssertionError(f"{name!r} not on the front page within {timeout:.0f} s (last page "
                         f"{len(last)} bytes); serial:\n{vm.serial_tail()}")


def boot_id(vm: GuestVM) -> str:
    return shell(vm, "cat /proc/sys/kernel/random/boot_id", timeout=60).strip()


def power_cycle(vm: GuestVM, boot: int) -> str:
    """Power the guest off and on again, as a technician does with the card edited (and a
    cold boot: a warm reset once hung in the firmware under TCG here). Returns the old
    boot's id; ``vm.started`` is the power-on."""
    old = boot_id(vm)
    vm.shell("sync", timeout=120)
    t = time.monotonic()
    try:
        vm.shell("systemctl poweroff --no-block; sleep 1", timeout=30)
    except (AssertionError, OSError):     # the shell went away with the guest
        pass
    disconnect(vm)
    vm.proc.wait(timeout=900)             # QEMU exits when the guest powers off
    figure(f"power-off before boot {boot}, s (TCG)", round(time.monotonic() - t))
    vm.serial_log.rename(vm.workdir / f"serial-boot{boot - 1}.log")
    vm.socket_path.unlink(missing_ok=True)
    vm.proc = subprocess.Popen(vm.cmd, stdout=(vm.workdir / "qemu.log").open("a"),
                               stderr=subprocess.STDOUT)
    vm.started = time.monotonic()
    return old


def disconnect(vm: GuestVM) -> None:
    if vm._sock is not None:
        vm._sock.close()
        vm._sock = None


def wait_rebooted(vm: GuestVM, name: str, since: float, old_boot: str,
                  timeout: float = 1500) -> float:
    """Wait until a new boot (not ``old_boot``) serves a front page naming ``name``;
    seconds since ``since``."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if vm.proc.poll() is not None:
            raise AssertionError(f"QEMU exited:\n{vm.serial_tail()}")
        try:
            if name in page(vm) and vm.shell("cat /proc/sys/kernel/random/boot_id",
                                             timeout=30).strip() != old_boot:
                return time.monotonic() - since
        except (OSError, AssertionError):
            disconnect(vm)                # the guest rebooted: reconnect the shell port
        time.sleep(3)
    raise AssertionError(f"no new boot serving {name!r} within {timeout:.0f} s; serial:\n"
                         f"{vm.serial_tail()}")


def shell(vm: GuestVM, command: str, timeout: float = 300) -> str:
    """vm.shell, reconnecting when the port went away with a reboot."""
    try:
        return vm.shell(command, timeout=timeout)
    except OSError:
        disconnect(vm)
        return vm.shell(command, timeout=timeout)


def projector(vm: GuestVM) -> str:
    """The projector's first screen, as the kiosk on the device loads it (from 127.0.0.1)."""
    return shell(vm, "python3 -c \"import urllib.request;print(urllib.request.urlopen("
                     "'http://127.0.0.1/projector',timeout=120).read().decode())\"")


def uptime(vm: GuestVM) -> int:
    """Seconds since the guest's kernel started (firmware and boot loader not counted)."""
    return round(float(shell(vm, "cut -d' ' -f1 /proc/uptime")))


def put_file(vm: GuestVM, path: str, text: str) -> None:
    """Write a file in the guest; on the boot partition (mounted read-only) through
    /usr/lib/ketang/boot-rw, as the image's own writers do."""
    rw = "/usr/lib/ketang/boot-rw " if path.startswith("/boot/") else ""
    shell(vm, f"{rw}sh -c 'cat > {path} && sync {path}' <<'KETANG_EOF'\n{text}KETANG_EOF")


def result_file(vm: GuestVM) -> str:
    return shell(vm, "cat /boot/efi/ketang-setup-result.txt").replace("\r\n", "\n")


def security_fingerprint(vm: GuestVM) -> str:
    """The device's settings and security state on the data partition (not the record of
    the last apply), with the name the system runs under."""
    return shell(vm, "cd /var/lib/ketang && find config etc trust admin provisioning/state.json"
                     " provisioning/sealed.json device.pub \\( -type f -o -type l \\) "
                     "| LC_ALL=C sort | while read f; do printf '%s ' \"$f\"; "
                     "if [ -L \"$f\" ]; then readlink \"$f\"; else sha256sum < \"$f\"; fi; done;"
                     " hostname")


def boot_to_serving(vm: GuestVM) -> str:
    """How long the provisioning unit took and when the server started (systemd's clock)."""
    return shell(vm, "systemd-analyze blame --no-pager | grep -E "
                     "'ketang-(provision|grow-data)|systemd-networkd.service' || true")


def test_setup_file_applied_at_first_boot_then_changed_refused_and_broken(
        image: BuiltImage, tmp_path: Path) -> None:
    keys = generate_keypair(tmp_path / "keys", "hongxing-district")
    publisher = keys.public_path.read_text()
    stranger = generate_keypair(tmp_path / "stranger", "stranger").public_path.read_text()
    disk = with_setup_file(image, tmp_path, first_boot_file(publisher))
    vm = GuestVM(disk, tmp_path)
    try:
        # --- boot 1: the first boot applies the file from the card
        t = vm.started
        seconds = wait_for_school(vm, "红星小学", t)
        figure("first boot to serving the school's page, s (TCG)", round(seconds))
        figure("host load during first boot", load())
        figure("first boot: guest uptime when serving, s", uptime(vm))
        result = result_file(vm)
        assert "已应用 APPLIED" in result and "first boot" in result, result
        assert "school.name" in result and "wifi.ssid" in result, result
        for secret in (WIFI_KEY, ADMIN_PASSWORD):
            assert secret not in result, "a secret in the result file"
        assert "wifi.passphrase = (已设置 set)" in result, result
        setup_now = shell(vm, "cat /boot/efi/ketang-setup.toml")
        assert WIFI_KEY not in setup_now and ADMIN_PASSWORD not in setup_now, setup_now
        assert "[school]" in setup_now, "section headers and notes stay"

        assert shell(vm, "readlink /etc/hostapd/hostapd.conf").strip() == \
            "/var/lib/ketang/etc/hostapd/hostapd.conf"
        hostapd = shell(vm, "cat /etc/hostapd/hostapd.conf")
        assert 'ssid2=P"课堂-红星"' in hostapd and "country_code=CN" in hostapd, hostapd
        assert f"wpa_psk={wpa_psk(WIFI_KEY, '课堂-红星')}" in hostapd
        assert shell(vm, "hostname").strip() == "ketang-hongxing"
        assert shell(vm, "date +%Z").strip() == "CST"
        assert shell(vm, "systemctl is-active ketang-dnsmasq").strip() == "active"
        screen = projector(vm)
        assert "设置文件已应用" in screen and "Setup file applied" in screen, screen[-3000:]
        assert "wifi.ssid = &#34;课堂-红星&#34;" in screen or 'wifi.ssid = "课堂-红星"' in screen
        assert WIFI_KEY not in screen and ADMIN_PASSWORD not in screen
        status = shell(vm, "ketang status 2>&1 || true")
        assert "Setup file: applied" in status, status
        shell(vm, "systemctl is-system-running --wait >/dev/null || true", timeout=900)
        failed = shell(vm, "systemctl --failed --no-legend --plain")
        assert failed.strip() == "", f"failed units:\n{failed}"
        figure("first boot: slow units (systemd-analyze blame)", boot_to_serving(vm).strip())
        first = security_fingerprint(vm)
        assert "trust/publishers/" in first and "admin/password.hash" in first, first

        # --- boot 2: the technician changes the SSID and the school's name
        put_file(vm, "/boot/efi/ketang-setup.toml",
                 '[school]\nname = "新华小学"\n\n[wifi]\nssid = "课堂-新华"\n')
        old = power_cycle(vm, 2)
        seconds = wait_rebooted(vm, "新华小学", vm.started, old)
        figure("second boot (SSID and name changed): power-on to serving, s (TCG)",
               round(seconds))
        figure("second boot: guest uptime when serving, s", uptime(vm))
        figure("host load during second boot", load())
        result = result_file(vm)
        assert "已应用 APPLIED" in result and "first boot" not in result, result
        assert 'school.name = "新华小学"' in result and 'wifi.ssid = "课堂-新华"' in result
        hostapd = shell(vm, "cat /etc/hostapd/hostapd.conf")
        assert 'ssid2=P"课堂-新华"' in hostapd, hostapd
        assert f"wpa_psk={wpa_psk(WIFI_KEY, '课堂-新华')}" in hostapd, "passphrase kept"
        assert shell(vm, "hostname").strip() == "ketang-hongxing", "host name kept"
        assert shell(vm, "date +%Z").strip() == "CST", "time zone kept"
        second = security_fingerprint(vm)
        unchanged = [ln for ln in first.splitlines()
                     if ln.startswith(("trust/", "admin/", "device.pub", "provisioning/sealed"))]
        for line in unchanged:
            assert line in second, f"changed by the second file: {line}"

        # --- later: a file that changes the trusted keys is refused as a whole
        put_file(vm, "/boot/efi/ketang-setup.toml",
                 f"[school]\nname = \"不该出现\"\n\n[trust]\npublisher_keys = ['''{stranger}''']\n")
        shell(vm, "systemctl restart ketang-provision.service")
        result = result_file(vm)
        assert "未应用" in result and "NOT APPLIED" in result, result
        assert "trust.publisher_keys" in result and "factory reset" in result, result
        assert security_fingerprint(vm) == second, "a refused file changed the device"
        assert "不该出现" in shell(vm, "cat /boot/efi/ketang-setup.toml"), "file left as it was"
        assert "新华小学" in page(vm)

        # --- boot 3: a broken file; the device boots as it was and says why
        put_file(vm, "/boot/efi/ketang-setup.toml",
                 '[school]\nname = "坏文件小学"\n\n[wifi]\ncountry = "XX"\n')
        old = power_cycle(vm, 3)
        seconds = wait_rebooted(vm, "新华小学", vm.started, old)
        figure("third boot (broken file): power-on to serving, s (TCG)", round(seconds))
        figure("third boot: guest uptime when serving, s", uptime(vm))
        figure("host load during third boot", load())
        result = result_file(vm)
        assert "NOT APPLIED" in result and "wifi.country" in result, result
        assert re.search(r"line 5\b", result), result
        assert "坏文件小学" not in page(vm)
        assert security_fingerprint(vm) == second, "a broken file changed the device"
        assert 'ssid2=P"课堂-新华"' in shell(vm, "cat /etc/hostapd/hostapd.conf")
        screen = projector(vm)
        assert "设置文件未应用" in screen and "wifi.country" in screen, screen[-3000:]

        wifi_end_to_end(vm, tmp_path)
        print(f"[provision test] figures: {json.dumps(FIGURES, ensure_ascii=False)}")
    finally:
        vm.stop()


def start_simulated_ap(vm: GuestVM) -> bool:
    """Load ``mac80211_hwsim`` with two radios and wait for the access point on wlan0 (udev
    starts it); False when the guest kernel has no such module."""
    if "mac80211_hwsim" not in shell(vm, "modinfo -n mac80211_hwsim 2>&1 || true"):
        figure("mac80211_hwsim", "not in the guest kernel: Wi-Fi not tried")
        return False
    t = time.monotonic()
    shell(vm, "modprobe mac80211_hwsim radios=2 && udevadm settle")
    # udev starts ketang-hostapd@wlan0 (the interface hostapd.conf names) by itself.
    ap = shell(vm, "for i in $(seq 90); do hostapd_cli -p /run/hostapd -i wlan0 status "
                   "2>/dev/null | grep -q '^state=ENABLED' && break; sleep 2; done; "
                   "systemctl is-active ketang-hostapd@wlan0; hostapd_cli -p /run/hostapd "
                   "-i wlan0 status", timeout=400)
    assert "state=ENABLED" in ap, ap
    address = shell(vm, "for i in $(seq 60); do ip -4 addr show wlan0 | grep -q 192.168.4.1/24"
                        " && break; sleep 2; done; ip -4 addr show wlan0")
    assert "192.168.4.1/24" in address, f"networkd did not give wlan0 its address:\n{address}"
    figure("hwsim: radio loaded to access point up, s", round(time.monotonic() - t))
    return True


def wifi_end_to_end(vm: GuestVM, tmp_path: Path) -> None:
    """hostapd on a simulated radio, a WPA2 client on another, a lesson over the link."""
    if not start_simulated_ap(vm):
        return
    ssid_hex = "课堂-新华".encode().hex()
    # The "tablet": the second radio in its own network namespace, so its packets go over
    # the simulated air, not through the device's own routing table.
    shell(vm, "ip netns add tablet && phy=$(cat /sys/class/net/wlan1/phy80211/name) && "
              "iw phy $phy set netns name tablet && ip -n tablet link set wlan1 up && "
              # ip netns exec binds /etc/netns/tablet/resolv.conf over /etc/resolv.conf,
              # which must exist (this image has none: nothing resolves names for it).
              "{ [ -e /etc/resolv.conf ] || { rm -f /etc/resolv.conf; "
              ": > /etc/resolv.conf; }; } && "
              "mkdir -p /etc/netns/tablet && echo 'nameserver 192.168.4.1' > "
              "/etc/netns/tablet/resolv.conf && printf 'ctrl_interface=/run/tablet-wpa\\n"
              "network={\\n ssid=%s\\n psk=\"%s\"\\n "
              "key_mgmt=WPA-PSK\\n}\\n' " + ssid_hex + f" '{WIFI_KEY}' > /run/tablet-wpa.conf")
    t = time.monotonic()
    cli = "ip netns exec tablet wpa_cli -p /run/tablet-wpa -i wlan1 status"
    assoc = shell(vm, "ip netns exec tablet wpa_supplicant -B -i wlan1 -c /run/tablet-wpa.conf "
                      "-P /run/tablet-wpa.pid -f /run/tablet-wpa.log && for i in $(seq 90); do "
                      f"{cli} 2>/dev/null | grep -q wpa_state=COMPLETED && break; sleep 1; done;"
                      f" {cli} 2>&1 || true", timeout=300)
    if "wpa_state=COMPLETED" not in assoc:
        log = shell(vm, "tail -40 /run/tablet-wpa.log; hostapd_cli -p /run/hostapd -i wlan0 "
                        "status; journalctl -u ketang-hostapd@wlan0 --no-pager | tail -20")
        raise AssertionError(f"the tablet did not associate:\n{assoc}\n{log}")
    assert "key_mgmt=WPA2-PSK" in assoc, assoc
    figure("hwsim: WPA2 association, s", round(time.monotonic() - t, 1))
    # No DHCP client in the image: a fixed address (the namespace test on the host proves
    # the rendered dnsmasq's leases); DNS and the lesson go through the device.
    fetch = shell(vm, "ip -n tablet addr add 192.168.4.77/24 dev wlan1 && ip netns exec tablet "
                      "python3 -c \"import socket,urllib.request;"
                      "print(socket.gethostbyname('ketang.lan'));"
                      "print(socket.gethostbyname('connectivitycheck.gstatic.com'));"
                      f"r=urllib.request.urlopen('http://ketang.lan/lessons/cn-basic-edu-demo/{LESSON}',"
                      "timeout=120);b=r.read();print(r.status,len(b),'新华小学' in b.decode())\"",
                  timeout=400)
    lines = fetch.split()
    assert lines[:2] == ["192.168.4.1", "192.168.4.1"], fetch
    assert lines[2] == "200" and lines[-1] == "True", fetch
    leases = shell(vm, "hostapd_cli -p /run/hostapd -i wlan0 all_sta | head -1")
    assert re.match(r"[0-9a-f:]{17}", leases.strip()), leases
    figure("hwsim: lesson page over the simulated Wi-Fi, bytes", int(lines[3]))


def fat_drive(work: Path, text: str) -> Path:
    """A technician's USB stick: FAT32 with KETANG/setup/ketang-setup.toml (mtools)."""
    drive = work / "usb-stick.img"
    with open(drive, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "KETANGUSB", str(drive)], check=True,
                   capture_output=True)
    setup = work / "usb-ketang-setup.toml"
    setup.write_text(text, encoding="utf-8")
    subprocess.run(["mmd", "-i", str(drive), "::KETANG", "::KETANG/setup"], check=True)
    subprocess.run(["mcopy", "-i", str(drive), str(setup), "::KETANG/setup/ketang-setup.toml"],
                   check=True)
    return drive


def on_stick(drive: Path, name: str, work: Path) -> bytes:
    out = work / f"from-stick-{name}"
    subprocess.run(["mcopy", "-n", "-i", str(drive), f"::KETANG/setup/{name}", str(out)],
                   check=True)
    return out.read_bytes()


def drive_handled(vm: GuestVM, since: float, before: str = "", timeout: float = 900) -> dict:
    """vdb's entry in the drive watcher's status file once it is done (or refused) and is
    not the entry ``before`` (its "updated" time) left by an earlier plug-in."""
    entry: dict = {}
    while time.monotonic() - since < timeout:
        entry = drive_entry(vm)
        if entry.get("state") in ("done", "error") and entry.get("updated") != before:
            return entry
        time.sleep(3)
    return entry


def drive_entry(vm: GuestVM) -> dict:
    doc = shell(vm, "cat /run/ketang/drives.json 2>/dev/null || echo '{}'")
    return json.loads(doc or "{}").get("drives", {}).get("vdb", {})


MISTYPED = '[wifi]\ninterface = "wlan9"\n'


def mistyped_interface(vm: GuestVM, first: str) -> None:
    """The same stick, now naming a Wi-Fi interface this device lacks: hostapd cannot come
    up there, so every file goes back and the access point is on again as before.
    ``first``: the stick's file as the technician wrote it (still so after the first
    plug-in, with the result beside it)."""
    files = shell(vm, "mkdir -p /run/stick && mount /dev/vdb /run/stick && "
                      "cat /run/stick/KETANG/setup/ketang-setup-result.txt && echo ==== && "
                      "cat /run/stick/KETANG/setup/ketang-setup.toml")
    written, setup = files.replace("\r\n", "\n").split("====\n")
    assert setup == first, "the technician's file was changed"
    assert "已应用 APPLIED" in written and "kept as it is" in written, written
    shell(vm, "printf '[wifi]\\ninterface = \"wlan9\"\\n' > "
              "/run/stick/KETANG/setup/ketang-setup.toml && umount /run/stick")
    before = drive_entry(vm).get("updated", "")
    t = time.monotonic()
    shell(vm, "udevadm trigger --action=add --sysname-match=vdb && udevadm settle")
    entry = drive_handled(vm, t, before)
    figure("setup stick with a wrong interface: plugged in to the access point back, s "
           "(TCG)", round(time.monotonic() - t))
    assert entry.get("state") == "error" and entry.get("error_code") == "setup", entry
    assert entry.get("error_params", {}).get("setting") == "wifi.interface", entry
    result = json.loads(shell(vm, "cat /var/lib/ketang/provisioning/last-result.json"))
    assert not result["ok"] and "Wi-Fi is on as before" in result["problems"][0]["message"], \
        result
    assert "interface=wlan0" in shell(vm, "cat /etc/hostapd/hostapd.conf")
    status = json.loads(shell(vm, "ketang provision --status --json"))
    assert status["state"] == "ENABLED" and status["ssid"] == "课堂-东方", status


def test_a_setup_drive_renames_the_running_wifi_and_school(image: BuiltImage,
                                                          tmp_path: Path) -> None:
    """The drive watcher's service applies KETANG/setup/ketang-setup.toml on a running
    device and restarts what changed, in its own sandbox: the access point comes back
    with the new SSID, the lesson server with the new name, no reboot."""
    publisher = generate_keypair(tmp_path / "keys", "hongxing-district").public_path.read_text()
    disk = with_setup_file(image, tmp_path, first_boot_file(publisher))
    text = ('# 东方小学 (this stick goes on to the next school)\n[school]\nname = "东方小学"\n\n'
            '[wifi]\nssid = "课堂-东方"\n')
    stick = fat_drive(tmp_path, text)
    vm = GuestVM(disk, tmp_path, extra_drives=(stick,))
    try:
        wait_for_school(vm, "红星小学", vm.started)
        # An image default the data partition lacks (as when an updated slot brings a new
        # one) comes from the slot's own copy at the next run of the provisioning unit.
        shell(vm, "rm /var/lib/ketang/etc/timezone && systemctl restart ketang-provision")
        log = shell(vm, "journalctl -u ketang-provision --no-pager | tail -30")
        assert "added the image's default etc/timezone" in log, log
        assert shell(vm, "cat /var/lib/ketang/etc/timezone").strip() == "Asia/Shanghai", \
            "then the setup file's own zone, as provisioning keeps it"
        ap = start_simulated_ap(vm)
        # The stick was attached at power-on, before the watcher listened: plug it in now.
        t = time.monotonic()
        shell(vm, "udevadm trigger --action=add --sysname-match=vdb && udevadm settle")
        entry = drive_handled(vm, t)
        figure("setup stick: plugged in to handled, s (TCG)", round(time.monotonic() - t))
        assert entry.get("state") == "done" and entry.get("setup") == "applied", \
            f"{entry}\n" + shell(vm, "journalctl -u ketang-drives --no-pager | tail -40")
        seconds = wait_for_school(vm, "东方小学", t, timeout=900)
        figure("setup stick: plugged in to the new name served, s (TCG)", round(seconds))
        result = json.loads(shell(vm, "cat /var/lib/ketang/provisioning/last-result.json"))
        assert result["ok"] and set(result["applied"]) == {"school.name", "wifi.ssid"}, result
        assert result["restarted"] == ["ketang-hostapd@wlan0", "ketang-serve"], result
        assert result["warnings"] == [], result
        assert 'ssid2=P"课堂-东方"' in shell(vm, "cat /etc/hostapd/hostapd.conf")
        if ap:
            status = json.loads(shell(vm, "ketang provision --status --json"))
            assert status["state"] == "ENABLED" and status["ssid"] == "课堂-东方", status
            # The dashboard's server is not root: the kernel's view, through iw.
            other = json.loads(shell(vm, "setpriv --reuid=ketang --regid=ketang "
                                         "--clear-groups ketang provision --status --json"))
            assert other["state"] == "ENABLED" and other["ssid"] == "课堂-东方", other
            assert other["channel"] == 6 and other["country"] == "CN", other
            mistyped_interface(vm, text)
        vm.stop()
        vm.proc.wait(timeout=120)
        written = on_stick(stick, "ketang-setup-result.txt", tmp_path).decode("utf-8")
        if ap:      # the last file on the stick is the mistyped one, kept as written
            assert on_stick(stick, "ketang-setup.toml", tmp_path) == MISTYPED.encode()
            assert "NOT APPLIED" in written and "wifi.interface" in written, written
            assert "plug the drive in again" in written, written
        else:
            assert on_stick(stick, "ketang-setup.toml", tmp_path) == text.encode("utf-8")
            assert "已应用 APPLIED" in written and "kept as it is" in written, written
        print(f"[provision test] figures: {json.dumps(FIGURES, ensure_ascii=False)}")
    finally:
        vm.stop()
