"""What a test needs from the machine: skip saying what is missing, or fail in CI.

A developer without Chromium or loop devices still gets a green run of the rest; CI
(``CI=true``) must run every real part, so there a missing one fails the test.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    """True when the suite runs in CI (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(missing: str | None) -> None:
    """Go on when ``missing`` is None; else skip with it as the reason, or fail in CI.

    Works inside a test or fixture and at a module's top level.
    """
    if missing is None:
        return
    if in_ci():
        pytest.fail(f"{missing}. With CI=true a missing real part fails the test instead "
                    "of skipping it; `make test` installs what the suite needs.", pytrace=False)
    pytest.skip(missing, allow_module_level=True)


def require_commands(*commands: str) -> None:
    """Go on when every command is on PATH; else skip naming the missing ones (CI: fail)."""
    missing = [c for c in commands if shutil.which(c) is None]
    require(f"needs {', '.join(missing)} (make test installs it: tests/system-packages.txt)"
            if missing else None)
