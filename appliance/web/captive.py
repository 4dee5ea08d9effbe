"""Captive portal: send phones, tablets and laptops that join the Wi-Fi to the lessons.

When a device joins a network it asks a well-known address whether the internet is
reachable (Android ``/generate_204``, Apple ``/hotspot-detect.html``, Windows
``/connecttest.txt``, Firefox ``/canonical.html``…). Provisioning's DNS points every
name at this device, so those requests land here. Answering anything but the
expected reply (204, "Success", "Microsoft Connect Test"…) — here a 302 to the
landing page — makes the OS open its portal window on the lesson list. Requests for
any Host that is not this device are redirected the same way, so a typed address
(say www.baidu.com) also opens the lessons. See docs/captive-portal.md.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, redirect, request

from appliance.addresses import own_names
from content_cache.errors import KetangError

# Connectivity-check paths by OS (any Host: the path alone is enough).
PROBE_PATHS = frozenset({
    "/generate_204", "/gen_204",                       # Android, Chrome OS
    "/hotspot-detect.html", "/library/test/success.html",  # iOS, macOS
    "/connecttest.txt", "/ncsi.txt", "/redirect",      # Windows 10/11, older Windows
    "/canonical.html", "/success.txt",                 # Firefox
    "/kindle-wifi/wifistub.html", "/check_network_status.txt",  # Kindle, some Linux
})


def host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def landing_url(portal_host: str) -> str:
    """The lesson landing page on ``portal_host`` at the port this request came to."""
    port = request.environ.get("SERVER_PORT", "80")
    return f"http://{portal_host}/" if port == "80" else f"http://{portal_host}:{port}/"


def install(app: Flask, host_names: list[str]) -> None:
    """Answer OS connectivity probes and foreign Hosts with a 302 to the landing page.

    ``host_names[0]`` is the name used in the redirect; IP literals always count as
    this device (a tablet that typed the address).
    """
    if not host_names or not all(isinstance(n, str) and n.strip() for n in host_names):
        raise KetangError("captive.host_names should be a list of host names such as "
                          f'["ketang.lan"], not {host_names!r}; see docs/configuration.md.')
    names = own_names(host_names)
    portal_host = host_names[0]

    @app.before_request
    def captive_portal():
        host = host_only(request.host)
        if request.path in PROBE_PATHS or not (host in names or is_ip(host)):
            response = redirect(landing_url(portal_host), code=302)
            response.headers["Cache-Control"] = "no-store"
            return response
        return None
