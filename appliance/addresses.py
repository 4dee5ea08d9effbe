"""This machine's own addresses and names, for every part that must say where it is.

One place lists them, so zeroconf's announcement, the projector's join address and the
captive portal's "is this Host me?" agree: the real network interfaces' addresses
(never loopback, link-local, or a container, VPN or bridge interface), and the names
that mean this device (its host name, ``<host name>.local``, ``localhost``).
"""

from __future__ import annotations

import ipaddress
import socket

import psutil

# Interfaces that are not the school's network: containers, bridges, VPNs.
VIRTUAL_PREFIXES = ("docker", "veth", "br-", "virbr", "lxc", "tun", "tap", "wg")


def machine_addresses(ipv6: bool = True) -> list[str]:
    """Every address of this machine's real interfaces, IPv4 first, in interface order.

    Leaves out loopback, link-local and the interfaces in :data:`VIRTUAL_PREFIXES`;
    ``ipv6=False`` lists IPv4 only.
    """
    families = (socket.AF_INET, socket.AF_INET6) if ipv6 else (socket.AF_INET,)
    v4: list[str] = []
    v6: list[str] = []
    for name, addrs in psutil.net_if_addrs().items():
        if name == "lo" or name.startswith(VIRTUAL_PREFIXES):
            continue
        for a in addrs:
            if a.family not in families:
                continue
            ip = ipaddress.ip_address(a.address.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local):
                (v4 if ip.version == 4 else v6).append(str(ip))
    return v4 + v6


def own_names(configured: list[str]) -> set[str]:
    """Host names that mean this device: ``configured`` ones, localhost, this machine's
    name and its ``.local`` name (lower case)."""
    name = socket.gethostname().lower()
    return {n.lower() for n in configured} | {"localhost", name, f"{name}.local"}
