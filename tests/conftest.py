"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from content_cache.importer import import_bundle
from content_cache.keys import generate_keypair, load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from .appliance.loopdev import loop_skip_reason
from .helpers import DEMO_KEY, DEMO_PUB, SAMPLE_PACK, write_config
from .support import chromium as chromium_support
from .support.needs import require


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory) -> Path:
    """The bundled sample pack, published with the demo key (read-only: copy to alter)."""
    out = tmp_path_factory.mktemp("sample-bundle")
    publish(SAMPLE_PACK, "cn-basic-edu-demo", 1, DEMO_KEY, out)
    return out


@pytest.fixture
def demo_keys(tmp_path) -> Path:
    """A trusted keys folder holding only the demo key."""
    d = tmp_path / "trusted-keys"
    d.mkdir()
    shutil.copyfile(DEMO_PUB, d / DEMO_PUB.name)
    return d


@pytest.fixture
def publisher_key(tmp_path):
    """A fresh publisher key pair, trusted by a keys folder of its own."""
    pair = generate_keypair(tmp_path / "keys", "publisher")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copyfile(pair.public_path, trusted / "publisher.pub")
    return pair, trusted


@pytest.fixture
def sample_device(tmp_path, sample_bundle, demo_keys) -> Path:
    """A device config whose data folder has the sample release imported and active."""
    data = tmp_path / "data"
    import_bundle(sample_bundle, Library(data), load_trusted_keys(demo_keys))
    return write_config(tmp_path / "ketang.toml", data, demo_keys)


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium; a test without it is skipped (with CI=true: fails)."""
    require(chromium_support.chromium_missing())
    return chromium_support.CHROMIUM


@pytest.fixture(scope="module")
def playwright(chromium) -> Iterator[Any]:
    """Playwright's sync API, for one test module (launch with tests/support/chromium.py)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    """A headless Chromium shared by a module's tests; give each test a new context."""
    b = chromium_support.launch(playwright)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def loop_devices() -> None:
    """Root, loop devices, FUSE and the mkfs tools (tests/appliance/loopdev.py's needs_loop)."""
    require(loop_skip_reason())
