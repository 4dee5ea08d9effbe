"""Zeroconf: advertise this device on the school LAN and find other Ketang devices.

Two services are registered (docs/zeroconf.md):

- ``_http._tcp``: the lesson pages, under the device's human name (``device.name``),
  so phones and laptops that browse for web services find "Ketang · 某某小学".
- ``_ketang._tcp``: for other Ketang devices. Its TXT records carry ``id`` (the device
  id), ``api`` (the API version), ``path`` (``/api/v1/``), ``apps`` (the lesson apps'
  port) and ``ch.<channel>=<version>`` for each active release, and what the owner's
  ``txt_source`` adds (the sync service: ``bt`` and ``fetch.<channel>=<version>`` for each
  release it is fetching now, so neighbours hear of a fetch at once, not at their next
  poll).

A browser for ``_ketang._tcp`` keeps the peers it sees (``/api/v1/peers``); peer
content sharing builds on it later. Both services are unregistered on shutdown.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from zeroconf import (
    InterfaceChoice,
    IPVersion,
    ServiceBrowser,
    ServiceInfo,
    ServiceListener,
    Zeroconf,
)

from appliance.addresses import machine_addresses
from content_cache.library import Library

from .identity import device_id  # noqa: F401  (re-exported)

HTTP_TYPE = "_http._tcp.local."
KETANG_TYPE = "_ketang._tcp.local."
API_VERSION = "1"
REFRESH_SECONDS = 10.0

log = logging.getLogger(__name__)


def _instance_name(name: str) -> str:
    raw = name.replace(".", "·").encode()[:63]
    return raw.decode("utf-8", "ignore").strip() or "Ketang"


WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def listening_interfaces(interfaces: list[str], host: str) -> list[str]:
    """The addresses zeroconf may use: ``zeroconf.interfaces`` when set, else the one
    address the server listens on; empty (every interface) only when the server itself
    listens on every address. A loopback-only server announces on loopback only."""
    if interfaces:
        return list(interfaces)
    if host in WILDCARD_HOSTS:
        return []
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:  # a name such as "localhost": what it resolves to
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return sorted({str(info[4][0]) for info in infos})


def advertised_addresses(interfaces: list[str], host: str) -> list[str]:
    """Addresses to advertise: the configured interfaces, the bound host, else this
    machine's addresses (:func:`appliance.addresses.machine_addresses`)."""
    return listening_interfaces(interfaces, host) or machine_addresses()


def txt_records(dev_id: str, library: Library, apps_port: int | None,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """The ``_ketang._tcp`` TXT records for this device now (``extra``: e.g. ``bt``)."""
    txt = {"id": dev_id, "api": API_VERSION, "path": "/api/v1/", **(extra or {})}
    if apps_port:
        txt["apps"] = str(apps_port)
    for channel, rel in sorted(library.active().items()):
        txt[f"ch.{channel}"] = str(rel.version)
    return txt


def peer_from_info(info: ServiceInfo) -> dict[str, Any]:
    """A peer as the API shows it, from a resolved ``_ketang._tcp`` service."""
    props = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
             for k, v in (info.properties or {}).items()}
    addresses = info.parsed_addresses()
    return {
        "id": props.get("id", ""),
        "name": info.name.removesuffix("." + KETANG_TYPE),
        "addresses": addresses,
        "port": info.port,
        "api": props.get("api"),
        "path": props.get("path", "/api/v1/"),
        "apps_port": int(props["apps"]) if props.get("apps", "").isdigit() else None,
        "bt_port": int(props["bt"]) if props.get("bt", "").isdigit() else None,
        "channels": {k[3:]: int(v) for k, v in props.items()
                     if k.startswith("ch.") and v.isdigit()},
        "fetching": {k[6:]: int(v) for k, v in props.items()
                     if k.startswith("fetch.") and v.isdigit()},
    }


class _PeerListener(ServiceListener):
    def __init__(self, owner: Discovery) -> None:
        self.owner = owner

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.owner._resolve(name)

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.owner._resolve(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        with self.owner._lock:
            self.owner._peers.pop(name, None)


def make_zeroconf(interfaces: list[str]) -> Zeroconf:
    """A Zeroconf instance on the given addresses (all interfaces when empty)."""
    if interfaces:
        versions = {ipaddress.ip_address(a).version for a in interfaces}
        ipv = IPVersion.V4Only if versions == {4} else (
            IPVersion.V6Only if versions == {6} else IPVersion.All)
        return Zeroconf(interfaces=list(interfaces), ip_version=ipv)
    return Zeroconf(interfaces=InterfaceChoice.All)


class Discovery:
    """Advertises this device and browses for peers until :meth:`close`."""

    def __init__(self, *, name: str, dev_id: str, library: Library, port: int,
                 apps_port: int | None, interfaces: list[str], host: str,
                 extra_txt: dict[str, str] | None = None,
                 txt_source: Callable[[], dict[str, str]] | None = None) -> None:
        self.name = _instance_name(name)
        self.dev_id = dev_id
        self.library = library
        self.port = port
        self.apps_port = apps_port
        self.extra_txt = dict(extra_txt or {})
        #: More TXT fields, asked for at each refresh (:meth:`refresh_now` for at once).
        self.txt_source = txt_source
        #: Called with a peer (as :meth:`peers` lists it) when its record appears or changes.
        self.on_change: Callable[[dict[str, Any]], None] | None = None
        self._refresh = threading.Event()
        self.addresses = advertised_addresses(interfaces, host)
        self.zc = make_zeroconf(listening_interfaces(interfaces, host))
        self._lock = threading.Lock()
        self._peers: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        server = f"ketang-{dev_id}.local."
        packed = [socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)
                  for a in self.addresses]
        self.http_info = ServiceInfo(
            HTTP_TYPE, f"{self.name}.{HTTP_TYPE}", port=port, addresses=packed,
            server=server, properties={"path": "/"})
        self.ketang_info = ServiceInfo(
            KETANG_TYPE, f"{self.name}.{KETANG_TYPE}", port=port, addresses=packed,
            server=server, properties=txt_records(dev_id, library, apps_port, self._extra()))
        self._browser: ServiceBrowser | None = None
        self._refresher: threading.Thread | None = None

    def start(self) -> None:
        """Register both services and start browsing (names made unique if taken)."""
        self.zc.register_service(self.http_info, allow_name_change=True)
        self.zc.register_service(self.ketang_info, allow_name_change=True)
        self._browser = ServiceBrowser(self.zc, KETANG_TYPE, _PeerListener(self))
        self._refresher = threading.Thread(target=self._refresh_loop, daemon=True,
                                           name="ketang-zeroconf-refresh")
        self._refresher.start()

    def _extra(self) -> dict[str, str]:
        return {**self.extra_txt, **(self.txt_source() if self.txt_source else {})}

    def refresh_now(self) -> None:
        """Announce the TXT records again now if they changed (not in REFRESH_SECONDS)."""
        self._refresh.set()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            self._refresh.wait(REFRESH_SECONDS)
            self._refresh.clear()
            if self._stop.is_set():
                return
            txt = txt_records(self.dev_id, self.library, self.apps_port, self._extra())
            current = {k.decode(): (v or b"").decode()
                       for k, v in self.ketang_info.properties.items()}
            if txt != current:
                self.ketang_info = ServiceInfo(
                    KETANG_TYPE, self.ketang_info.name, port=self.port,
                    addresses=self.ketang_info.addresses, server=self.ketang_info.server,
                    properties=txt)
                self.zc.update_service(self.ketang_info)

    def _resolve(self, name: str) -> None:
        info = self.zc.get_service_info(KETANG_TYPE, name, timeout=3000)
        if info is None:
            return
        peer = peer_from_info(info)
        if peer["id"] == self.dev_id:
            return
        with self._lock:
            old = self._peers.get(name)
            self._peers[name] = dict(peer, seen=time.time())
        if self.on_change is not None and (old is None or {**old, "seen": 0} != {
                **peer, "seen": 0}):
            try:
                self.on_change(peer)
            except Exception:  # a listener's trouble must not stop discovery
                log.exception("zeroconf: on_change")

    def peers(self) -> list[dict[str, Any]]:
        """Other Ketang devices seen on the LAN, by name."""
        with self._lock:
            return sorted(self._peers.values(), key=lambda p: p["name"])

    def close(self) -> None:
        """Unregister both services (goodbye packets) and stop browsing."""
        self._stop.set()
        self._refresh.set()
        if self._browser is not None:
            self._browser.cancel()
        try:
            self.zc.unregister_all_services()
        finally:
            self.zc.close()


def browse(interfaces: list[str], seconds: float) -> list[dict[str, Any]]:
    """Every ``_ketang._tcp`` device that answers within ``seconds`` (for ``ketang peers``)."""
    zc = make_zeroconf(interfaces)
    found: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    class Listener(ServiceListener):
        def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            info = zc.get_service_info(type_, name, timeout=3000)
            if info is not None:
                with lock:
                    found[name] = peer_from_info(info)

        update_service = add_service

        def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
            with lock:
                found.pop(name, None)

    browser = ServiceBrowser(zc, KETANG_TYPE, Listener())
    try:
        time.sleep(seconds)
    finally:
        browser.cancel()
        zc.close()
    with lock:
        return sorted(found.values(), key=lambda p: p["name"])
