"""The files provisioning writes, rendered from the applied settings (flat names, as in
:mod:`provisioning.schema`). Pure functions: text in, text out.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any

import tomlkit

from . import regdomain
from .layout import HOSTAPD_CTRL, LEASES

HEADER = ("# Written by `ketang provision` from ketang-setup.toml; edits here are replaced.\n"
          "# 由 ketang provision 根据 ketang-setup.toml 生成；请勿手工修改。\n")
PORTAL_HOST = "ketang.lan"
CAPPORT_PATH = "/api/v1/captive-portal"      # RFC 8908 API the DHCP option 114 names
DEFAULTS: dict[str, Any] = {
    "wifi.band": "2.4",
    "wifi.interface": "wlan0",
    "network.address": "192.168.4.1/24",
    "network.uplink": "eth0",
}


def effective(values: Mapping[str, Any]) -> dict[str, Any]:
    """The applied settings with every default filled in."""
    out = {**DEFAULTS, **values}
    out.setdefault("wifi.channel", regdomain.DEFAULT_CHANNEL[out["wifi.band"]])
    return out


def wpa_psk(passphrase: str, ssid: str) -> str:
    """WPA2's pre-shared key (PBKDF2-HMAC-SHA1, 4096 rounds, the SSID as salt), in hex.

    hostapd.conf gets this rather than the passphrase: no quoting rules to get wrong,
    and the passphrase is not in a file under /etc.
    """
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


def _printf_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def hostapd_conf(values: Mapping[str, Any]) -> str:
    """hostapd.conf for the classroom access point (WPA2-PSK or open, 802.11n)."""
    v = effective(values)
    lines = [
        f"interface={v['wifi.interface']}",
        "driver=nl80211",
        f"ctrl_interface={HOSTAPD_CTRL}",
        "ctrl_interface_group=0",
        # ssid2 with P"..." takes any UTF-8 name (hostapd's printf escapes).
        f'ssid2=P"{_printf_escaped(v["wifi.ssid"])}"',
        "utf8_ssid=1",
        f"country_code={v['wifi.country']}",
        "ieee80211d=1",
        f"hw_mode={'g' if v['wifi.band'] == '2.4' else 'a'}",
        f"channel={v['wifi.channel']}",
        "ieee80211n=1",
        "wmm_enabled=1",
        # Tablets talk to the device, not to each other.
        "ap_isolate=1",
        "ignore_broadcast_ssid=0",
        "auth_algs=1",
    ]
    if v.get("wifi.open") or not v.get("wifi.passphrase"):
        lines.append("wpa=0")
    else:
        lines += ["wpa=2", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP",
                  f"wpa_psk={wpa_psk(v['wifi.passphrase'], v['wifi.ssid'])}"]
    return HEADER + "\n".join(lines) + "\n"


def network(values: Mapping[str, Any]) -> ipaddress.IPv4Interface:
    """The device's address on the classroom network."""
    return ipaddress.IPv4Interface(effective(values)["network.address"])


def dhcp_range(iface: ipaddress.IPv4Interface) -> tuple[str, str]:
    """The addresses handed to tablets: the whole network but the device's own address and
    the first few (kept for fixed devices such as a second access point)."""
    hosts = [h for h in iface.network.hosts() if h != iface.ip]
    keep = min(9, len(hosts) // 4)
    return str(hosts[keep]), str(hosts[-1])


def captive_portal_uri() -> str:
    """The URI DHCP option 114 announces (RFC 8910)."""
    return f"http://{PORTAL_HOST}{CAPPORT_PATH}"


def dnsmasq_conf(values: Mapping[str, Any]) -> str:
    """dnsmasq: DHCP on the Wi-Fi, DNS answering every name with the device."""
    v = effective(values)
    iface = network(v)
    first, last = dhcp_range(iface)
    ip = iface.ip
    lines = [
        f"interface={v['wifi.interface']}",
        # Listen only on the Wi-Fi (and loopback), also when it comes up after dnsmasq.
        "bind-dynamic",
        "no-resolv",
        "no-hosts",
        "no-poll",
        "domain-needed",
        "domain=lan",
        # Every name is the device: OS connectivity probes reach the captive portal.
        f"address=/{PORTAL_HOST}/{ip}",
        f"address=/#/{ip}",
        # Nothing is forwarded: other questions (AAAA: no IPv6 on the classroom network)
        # get an empty answer, not an error that would make a tablet give up.
        "local=/#/",
        f"dhcp-range={first},{last},{iface.network.netmask},12h",
        f"dhcp-option=option:router,{ip}",
        f"dhcp-option=option:dns-server,{ip}",
        "dhcp-option=option:domain-search,lan",
        # RFC 8910: the captive-portal API's URI.
        f'dhcp-option=114,"{captive_portal_uri()}"',
        "dhcp-authoritative",
        "dhcp-rapid-commit",
        f"dhcp-leasefile={LEASES}",
        "dhcp-lease-max=1000",
    ]
    return HEADER + "\n".join(lines) + "\n"


def networkd_classroom(values: Mapping[str, Any]) -> str:
    """systemd-networkd: the device's fixed address on the classroom Wi-Fi (up even before
    a tablet joins, no IPv6, no DHCP client)."""
    v = effective(values)
    return HEADER + (f"[Match]\nName={v['wifi.interface']}\n\n[Network]\n"
                     f"Address={v['network.address']}\nConfigureWithoutCarrier=yes\n"
                     "LinkLocalAddressing=no\nIPv6AcceptRA=no\nDHCP=no\n")


def networkd_uplink(values: Mapping[str, Any]) -> str:
    """systemd-networkd: the Ethernet uplink takes its address by DHCP. Nothing bridges it
    to the classroom, and forwarding stays off (the kernel's default), so tablets never
    reach the internet through the device."""
    v = effective(values)
    return HEADER + f"[Match]\nName={v['network.uplink']}\n\n[Network]\nDHCP=yes\n"


def ketang_toml(existing: str, values: Mapping[str, Any], device: Mapping[str, str]) -> str:
    """The device's ketang.toml: ``existing`` (the image's file, comments kept) with the
    provisioned settings set. ``device`` gives ``id``, ``data_dir`` and, when publisher
    keys were provisioned, ``keys_dir``."""
    v = effective(values)
    doc = tomlkit.parse(existing) if existing.strip() else tomlkit.document()
    if not existing.strip():
        doc.add(tomlkit.comment(HEADER.splitlines()[0].lstrip("# ")))

    def put(section: str, key: str, value: Any) -> None:
        if section not in doc:
            doc.add(section, tomlkit.table())
        doc[section][key] = value   # type: ignore[index]

    put("device", "id", device["id"])
    put("device", "data_dir", device["data_dir"])
    if "school.name" in v:
        put("device", "name", v["school.name"])
    if device.get("keys_dir"):
        put("trust", "keys_dir", device["keys_dir"])
    put("projector", "join_url", f"http://{PORTAL_HOST}")
    for level in ("stages", "grades", "subjects", "editions"):
        if f"subscriptions.{level}" in v:
            put("subscriptions", level, list(v[f"subscriptions.{level}"]))
    if "sync.feeds" in v:
        put("sync", "enabled", bool(v["sync.feeds"]))
        put("sync", "feeds", list(v["sync.feeds"]))
    for key in ("channels", "windows", "daily_quota_mb"):
        if f"sync.{key}" in v:
            value = v[f"sync.{key}"]
            put("sync", key, list(value) if isinstance(value, list) else value)
    put("sync", "uplink_interfaces", [v["network.uplink"]])
    for key, target in (("url", "lrs_url"), ("username", "lrs_username"),
                        ("password", "lrs_password")):
        if f"lrs.{key}" in v:
            put("usage", target, v[f"lrs.{key}"])
    if "school.homepage" in v:
        put("usage", "school_homepage", v["school.homepage"])
    return doc.as_string()
