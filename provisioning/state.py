"""What provisioning already applied, kept on the data partition, and the factory reset.

- ``<data_dir>/provisioning/state.json`` (0600): every setting applied so far, secrets
  included (the Wi-Fi passphrase and LRS password are needed to render the files again
  when only the SSID changes; the admin password never is: only its hash exists).
- ``<data_dir>/provisioning/sealed.json``: written by the first successful apply. While
  it exists, security settings (admin password, trusted keys, update keys) in the setup
  file are refused unless they equal what is installed. :func:`factory_reset` removes it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from content_cache.atomic import atomic_write_bytes
from content_cache.errors import KetangError

from . import adminpw
from .layout import Layout
from .schema import SETTINGS, Device

SECURITY = tuple(s.name for s in SETTINGS if s.security)


def load_values(layout: Layout) -> dict[str, Any]:
    """The settings applied so far (empty before the first apply)."""
    path = layout.host(layout.state_file)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise KetangError(f"{path} is damaged ({e}); run `ketang provision --factory-reset` "
                          "and apply a full ketang-setup.toml again.") from e
    values = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise KetangError(f"{path} is damaged (no values); run `ketang provision "
                          "--factory-reset` and apply a full ketang-setup.toml again.")
    return values


def is_sealed(layout: Layout) -> bool:
    """Whether first boot has applied (security settings are locked)."""
    return layout.host(layout.sealed_file).is_file()


def device(layout: Layout) -> Device:
    """The device as :func:`provisioning.schema.validate` checks a file against."""
    data_dir = layout.host(layout.data_dir)
    return Device(values=load_values(layout), sealed=is_sealed(layout),
                  password_matches=lambda p: adminpw.matches(data_dir, p))


def state_bytes(values: dict[str, Any]) -> bytes:
    """state.json's bytes (no time stamp in it: an unchanged state is not rewritten)."""
    return (json.dumps({"format": "ketang-provisioning/1", "values": values},
                       ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


def sealed_bytes(device_id: str) -> bytes:
    """sealed.json's bytes."""
    return (json.dumps({"sealed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "device_id": device_id}) + "\n").encode()


def factory_reset(layout: Layout) -> list[str]:
    """Forget the security settings so the next setup file may set them again.

    Removes the seal, the admin password, the trusted publisher and update keys, and the
    security settings from the state. Keeps lessons, usage, the device's identity and
    every other setting. Returns what was removed.
    """
    removed = []
    data_dir = layout.host(layout.data_dir)
    values = load_values(layout)
    for name in SECURITY:
        if values.pop(name, None) is not None:
            removed.append(name)
    if values:
        atomic_write_bytes(layout.host(layout.state_file), state_bytes(values), mode=0o600)
    for folder in (layout.publisher_keys_dir, layout.update_keys_dir):
        host = layout.host(folder)
        for p in sorted([*host.glob("*.pub"), *host.glob("*.pem")]) if host.is_dir() else []:
            p.unlink()
            removed.append(str(folder / p.name))
    for path in (adminpw.hash_file(data_dir), layout.host(layout.sealed_file)):
        if path.is_file():
            path.unlink()
            removed.append(str(path))
    return removed

