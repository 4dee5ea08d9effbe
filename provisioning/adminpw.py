"""The admin password, hashed exactly as the dashboard checks it.

The rules (length, no surrounding spaces), the hash (werkzeug's scrypt) and the file
(``<data_dir>/admin/password.hash``) are the dashboard's own, taken from
``appliance.auth``: this is the one place provisioning reaches into the appliance
(neither module imports Flask). The plain password is hashed the moment it is applied and
never written anywhere else.
"""

from __future__ import annotations

from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from appliance.auth import ADMIN_DIR, HASH_METHOD, PASSWORD_FILE, check_new_password
from content_cache.errors import KetangError


def check(password: str) -> None:
    """Raise ValueError (the dashboard's own message) for a password it would refuse."""
    try:
        check_new_password(password)
    except KetangError as e:
        raise ValueError(str(e)) from None


def hash_file(data_dir: Path) -> Path:
    """Where the dashboard reads the hash from."""
    return Path(data_dir) / ADMIN_DIR / PASSWORD_FILE


def hashed(password: str) -> bytes:
    """The hash file's bytes for ``password``."""
    return (generate_password_hash(password, method=HASH_METHOD) + "\n").encode()


def matches(data_dir: Path, password: str) -> bool:
    """Whether ``password`` is the one stored for the data folder ``data_dir``."""
    try:
        digest = hash_file(data_dir).read_text(encoding="ascii").strip()
        return bool(digest) and check_password_hash(digest, password)
    except (OSError, ValueError):
        return False
