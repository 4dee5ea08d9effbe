"""Fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from content_cache.importer import import_bundle
from content_cache.keys import generate_keypair, load_trusted_keys
from content_cache.library import Library
from content_cache.publisher import publish

from .helpers import DEMO_KEY, DEMO_PUB, SAMPLE_PACK, write_config


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
