"""Small text helpers every part shares (numbers a person reads)."""

from __future__ import annotations


def human_bytes(n: int) -> str:
    """1234567890 -> '1.2 GB' (decimal units, as drives are labelled)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
