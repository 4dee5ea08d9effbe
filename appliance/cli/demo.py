"""``ketang demo``: the bundled sample lessons, published with the demo key and imported.

The demo key is committed to the repository and plainly marked DEMO ONLY: anyone
can sign with it, so no real device may ever trust it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import content_cache
from appliance.auth import demo_password
from appliance.config import Settings
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

SAMPLE_PACK = Path(content_cache.__file__).parent / "sample_pack"
DEMO_KEY = SAMPLE_PACK / "demo-key" / "DEMO-ONLY-publisher.key"
DEMO_PUB = SAMPLE_PACK / "demo-key" / "DEMO-ONLY-publisher.pub"
DEMO_CHANNEL = "cn-basic-edu-demo"
DEMO_VERSION = 1


def setup_demo(settings: Settings, data_dir: Path, echo: Callable[[str], None] = print,
               admin_url: str = "http://localhost:8080/admin") -> Settings:
    """Publish and import the sample pack into ``data_dir``; return settings that serve it.

    Also prints the dashboard's address and password: one generated on the first run
    and kept in the demo folder, so every run prints the same one.
    """
    keys_dir = data_dir / "trusted-keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_PUB, keys_dir / DEMO_PUB.name)
    bundle = data_dir / "demo-bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    rel = publish(SAMPLE_PACK, DEMO_CHANNEL, DEMO_VERSION, DEMO_KEY, bundle)
    echo(f"Published the sample lessons as {rel.channel} v{rel.version} "
         f"({rel.resources} resources, signed by the DEMO-ONLY key {rel.key_id}).")
    s = settings.with_overrides("device", data_dir=data_dir)
    s = s.with_overrides("trust", keys_dir=keys_dir)
    for r in import_bundle(bundle, Library(data_dir), load_trusted_keys(keys_dir)):
        echo(f"{r.channel} v{r.version}: {r.status}")
    password = demo_password(data_dir)
    shown = password or "（已用 `ketang admin password` 设置 set with `ketang admin password`）"
    echo(f"Dashboard 管理页面: {admin_url}  password 密码: {shown}")
    return s
