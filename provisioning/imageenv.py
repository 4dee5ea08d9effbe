"""The image's shell environment files (``/usr/lib/ketang/image.env``), read the one way.

Kept to the standard library: RAUC's handlers and boot-loader backend import it.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_ENV = Path("/usr/lib/ketang/image.env")


def read_env(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a shell environment file (comments skipped; {} when the
    file is missing or unreadable)."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    except (OSError, UnicodeDecodeError):
        return out
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip().strip('"')
    return out
