"""The device's own Ed25519 key, which signs the usage files it writes to drives.

Made on first start when missing and kept in the data folder (``device.key``, mode 0600,
and ``device.pub``); provisioning will own it later. The district keeps each device's
``device.pub`` (``ketang usage key`` prints it) in ``usage.device_keys_dir``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from content_cache.errors import KetangError
from content_cache.keys import generate_keypair, load_private_key

KEY_NAME = "device"


def key_paths(data_dir: Path) -> tuple[Path, Path]:
    """(private, public) key paths in the data folder."""
    return Path(data_dir) / f"{KEY_NAME}.key", Path(data_dir) / f"{KEY_NAME}.pub"


def ensure_device_key(data_dir: Path) -> Ed25519PrivateKey:
    """The device key, made now if the device has none."""
    private, _ = key_paths(data_dir)
    if not private.exists():
        try:
            generate_keypair(Path(data_dir), KEY_NAME)
        except KetangError:  # another process made it meanwhile
            pass
    return load_private_key(private)
