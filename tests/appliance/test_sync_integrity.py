"""Invariant 1 as a classroom sees it: a bad mirror never changes what the device serves,
and a blob damaged in the store (SD-card bit rot) is never served."""

from __future__ import annotations

import hashlib
import os

import pytest
from werkzeug.test import EnvironBuilder

from appliance.config import Settings
from appliance.web.app import create_app
from appliance.web.media_fast import FastMedia
from content_cache.blobstore import sha256_file
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library

from ..content_cache.test_transfer import (
    fetch_from_a_corrupting_mirror,
    publish_two_versions,
    verified,
)


def _get(wsgi, sha: str) -> tuple[str, bytes]:
    env = EnvironBuilder(path=f"/blobs/{sha}", base_url="http://127.0.0.1").get_environ()
    got: list = []
    body_iter = wsgi(env, lambda status, hdrs, exc_info=None: got.append(status))
    body = b"".join(body_iter)
    if hasattr(body_iter, "close"):
        body_iter.close()
    return got[0], body


def _servers(lib: Library):
    """The two ways a device answers GET /blobs/<sha>: FastMedia, and the Flask view."""
    app = create_app(Settings(), library=lib)
    return FastMedia(app), app.wsgi_app


def test_after_a_corrupting_mirror_the_device_serves_only_blobs_matching_their_names(
        tmp_path, publisher_key):
    pair, trusted = publisher_key
    out1, out2 = publish_two_versions(tmp_path, pair.private_path)
    lib = Library(tmp_path / "device")
    import_bundle(out1, lib, load_trusted_keys(trusted))  # v1 active, every blob held
    m1 = lib.active()["test-channel"]
    fetch_from_a_corrupting_mirror(lib, out2, tmp_path / "mirror", verified(out2, trusted))
    assert lib.active_version("test-channel") == m1.version
    store = lib.data_dir / "blobs" / "sha256"
    blobs = sorted(p.name for p in store.glob("*/*"))
    assert blobs
    for sha in blobs:
        assert sha256_file(store / sha[:2] / sha) == sha
        for wsgi in _servers(lib):
            status, body = _get(wsgi, sha)
            assert status.startswith("200"), (sha, status)
            assert hashlib.sha256(body).hexdigest() == sha


@pytest.mark.parametrize("served_before", [False, True])
def test_a_blob_damaged_in_the_store_is_never_served(tmp_path, sample_bundle, demo_keys,
                                                     served_before):
    lib = Library(tmp_path / "data")
    import_bundle(sample_bundle, lib, load_trusted_keys(demo_keys))
    store = lib.data_dir / "blobs" / "sha256"
    sha = max((p.name for p in store.glob("*/*")), key=lambda s: (store / s[:2] / s).stat()
              .st_size)
    fast, flask_view = _servers(lib)
    if served_before:
        assert _get(fast, sha)[0].startswith("200")
    path = lib.store.path_for(sha)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:  # one flipped bit, same size
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    for wsgi in (fast, flask_view):
        status, body = _get(wsgi, sha)
        assert status.startswith("404"), status
        assert hashlib.sha256(body).hexdigest() != sha
    assert not path.exists() and (lib.data_dir / "blobs" / "damaged" / sha).is_file()
    assert not lib.store.has(sha)  # the next import or sync brings it back
    import_bundle(sample_bundle, lib, load_trusted_keys(demo_keys))
    assert sha256_file(path) == sha and _get(fast, sha)[0].startswith("200")
