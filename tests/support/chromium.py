"""Debian's Chromium (tests/system-packages.txt), driven by Playwright.

Tests take the ``browser`` or ``playwright`` fixtures of tests/conftest.py; this module
says where Chromium is, how it is launched, and what is missing when it cannot be.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's launcher
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_missing() -> str | None:
    """Why Chromium cannot be driven here, or None when it can."""
    if not CHROMIUM.exists():
        return f"Debian's chromium is not installed ({CHROMIUM})"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


def launch(playwright: Any) -> Any:
    """A headless Chromium; each context gets a fresh temporary profile."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def persistent_context(playwright: Any, profile: Path) -> Any:
    """A Chromium context whose profile (storage, cache) lives in the folder ``profile``."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), args=ARGS)
