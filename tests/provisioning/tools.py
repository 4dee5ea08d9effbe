"""The real network tools the provisioning tests run (dnsmasq, hostapd, busybox, ip)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(*commands: str) -> None:
    """Skip the test when a tool is missing; with CI=true, fail instead (make test
    installs them from tests/system-packages.txt)."""
    missing = [c for c in commands if shutil.which(c) is None]
    if not missing:
        return
    reason = f"needs {', '.join(missing)} (make test installs it: tests/system-packages.txt)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
