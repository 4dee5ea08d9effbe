"""Screenshots the docs show, refreshed only when asked: ``KETANG_SCREENSHOTS=1``.

Tests always take their screenshots (into their own temporary folder, where they check
them); only with ``KETANG_SCREENSHOTS=1`` is a copy written to docs/screenshots/, so a
plain test run leaves the working tree clean.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def asked() -> bool:
    """True when ``KETANG_SCREENSHOTS=1`` asks to refresh docs/screenshots/."""
    return os.environ.get("KETANG_SCREENSHOTS", "") == "1"


def keep_for_docs(shot: Path, name: str) -> None:
    """Copy the screenshot ``shot`` to docs/screenshots/``name`` when asked; else nothing."""
    if asked():
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOTS / name)


def shoot(page: Any, folder: Path, name: str, docs_name: str | None = None) -> Path:
    """Screenshot ``page`` into ``folder``/``name``; with ``docs_name``, also keep it
    for the docs as docs/screenshots/``docs_name`` when asked. Returns the shot's path."""
    shot = folder / name
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot))
    if docs_name is not None:
        keep_for_docs(shot, docs_name)
    return shot
