"""This device's id: one value for zeroconf TXT records, the API, and drive outboxes."""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

MACHINE_ID = Path("/etc/machine-id")


def device_id(configured: str = "") -> str:
    """``device.id`` if configured, else 16 hex digits derived from /etc/machine-id.

    The result is safe as a folder name (``KETANG/outbox/<device-id>/``).
    """
    if configured:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", configured).lstrip(".-_") or "ketang"
    try:
        seed = MACHINE_ID.read_text().strip()
    except OSError:
        seed = ""
    return hashlib.sha256((seed or socket.gethostname()).encode()).hexdigest()[:16]
