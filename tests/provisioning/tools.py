"""The real network tools the provisioning tests run (dnsmasq, hostapd, busybox, ip)."""

from __future__ import annotations

# Skip a test when a tool is missing; with CI=true, fail instead (tests/support/needs.py).
from ..support.needs import require_commands as require  # noqa: F401 - used by the tests
