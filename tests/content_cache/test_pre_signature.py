"""What a drive gives the device before (and as) its signature is checked: only KetangError.

The bundle's layout, the ``.sig`` file and the manifest's bytes are read from a drive
anyone may have written. Whatever they hold, the device answers with a KetangError (a
clear line) and changes nothing: never a Python traceback, which under the udev watcher
would end the thread that imports every later drive. The properties are fuzzed with
hypothesis; the named cases are the ones found by hand.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from content_cache.errors import KetangError, ManifestError, SignatureError
from content_cache.importer import import_bundle
from content_cache.keys import load_private_key, load_trusted_keys, sign, verify
from content_cache.library import Library
from content_cache.manifest import parse_manifest

from ..helpers import snapshot

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture
def trusted(publisher_key):
    pair, keys_dir = publisher_key
    return load_private_key(pair.private_path), load_trusted_keys(keys_dir)


def _bundle_with(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / "KETANG" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _refused_cleanly(bundle: Path, data: Path, trusted_keys) -> KetangError:
    before = snapshot(data)
    with pytest.raises(KetangError) as caught:
        import_bundle(bundle, Library(data), trusted_keys)
    after = {k: v for k, v in snapshot(data).items() if k != ".lock"}
    assert after == before, "a refused bundle changed the device"
    return caught.value


# --- the cases found by hand -------------------------------------------------------------

def test_a_version_folder_of_unicode_digits_is_ignored(tmp_path, trusted):
    key, keys = trusted
    data = b"{}"
    bundle = _bundle_with(tmp_path / "drive", {
        "releases/ch/²/manifest.json": data,
        "releases/ch/²/manifest.json.sig": sign(key, data),
        "releases/ch/٣/manifest.json": data,
    })
    e = _refused_cleanly(bundle, tmp_path / "data", keys)
    assert "holds no release" in str(e)


def test_a_signature_of_4000_brackets_is_malformed_not_a_crash(trusted):
    _, keys = trusted
    with pytest.raises(SignatureError, match="malformed"):
        verify(b"{}", b"[" * 4000, keys)


def test_a_deeply_nested_trusted_manifest_is_refused(tmp_path, trusted):
    key, keys = trusted
    body = b'{"format": "ketang-release/1", "created": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bundle = _bundle_with(tmp_path / "drive", {
        "releases/ch/1/manifest.json": body,
        "releases/ch/1/manifest.json.sig": sign(key, body),
    })
    e = _refused_cleanly(bundle, tmp_path / "data", keys)
    assert isinstance(e, ManifestError) and "deep" in str(e)


# --- fuzzed ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


def _nested(depth: int, opener: str) -> bytes:
    return (opener * depth).encode()


signature_bytes = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({
        "format": st.sampled_from(["ketang-signature/1", "x"]) | json_values,
        "algorithm": st.sampled_from(["ed25519"]) | json_values,
        "key_id": st.text(max_size=20) | json_values,
        "signature": st.text(max_size=90) | json_values,
    }).map(lambda d: json.dumps(d).encode()),
    st.builds(_nested, st.integers(1, 5000), st.sampled_from(["[", "{\"a\":"])),
)


@FUZZ
@given(sig=signature_bytes)
def test_any_signature_file_gives_only_a_signature_error(trusted, sig):
    _, keys = trusted
    with pytest.raises(SignatureError):
        verify(b"{}", sig, keys)


manifest_docs = st.fixed_dictionaries(
    {"format": st.just("ketang-release/1"), "channel": st.just("ch"), "version": st.just(1)},
    optional={
        "created": json_values,
        "title": json_values,
        "nodes": st.lists(json_values | st.fixed_dictionaries(
            {"id": st.text(max_size=10), "kind": st.sampled_from(["stage", "lesson"])},
            optional={"title": json_values, "parent": json_values,
                      "description": json_values}), max_size=5),
        "resources": st.lists(json_values | st.fixed_dictionaries(
            {"id": st.text(max_size=10), "kind": st.just("video"), "lesson": json_values,
             "sha256": st.just("a" * 64) | st.text(max_size=70)},
            optional={"size": json_values, "media_type": json_values,
                      "duration": json_values | st.integers(), "title": json_values}),
            max_size=5),
    })

manifest_bytes = st.one_of(
    st.binary(max_size=400),
    manifest_docs.map(lambda d: json.dumps(d).encode()),
    manifest_docs.map(lambda d: gzip.compress(json.dumps(d).encode())),
    st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),
    st.builds(_nested, st.integers(1, 200_000), st.sampled_from(["[", "{\"a\":"])),
)


@FUZZ
@given(data=manifest_bytes)
def test_any_trusted_manifest_gives_only_a_manifest_error_or_a_manifest(data):
    try:
        parse_manifest(data)
    except ManifestError:
        pass


names = st.sampled_from(["releases", "RELEASES", "ch", "cn-x", "1", "2", "²", "٣", "0",
                         "007", "99999999999999999999", "manifest.json", "manifest.json.gz",
                         "manifest.json.sig", "manifest.json.gz.sig", "blobs", "sha256",
                         "a" * 64, "x"]) | st.text(min_size=1, max_size=12).filter(
    lambda s: "/" not in s and "\0" not in s and s not in (".", ".."))
layouts = st.dictionaries(st.lists(names, min_size=1, max_size=4).map("/".join),
                          st.binary(max_size=64) | manifest_bytes, max_size=6)


@FUZZ
@given(layout=layouts, sign_them=st.booleans())
def test_any_bundle_layout_gives_only_a_ketang_error(trusted, layout, sign_them):
    key, keys = trusted
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {}
        for rel, data in layout.items():
            files[rel] = data
            if sign_them and rel.endswith(("manifest.json", "manifest.json.gz")):
                files[rel + ".sig"] = sign(key, data)
        try:
            _bundle_with(root / "drive", files)
        except OSError:  # the layout is impossible (a file where a folder must be, a long name)
            shutil.rmtree(root / "drive", ignore_errors=True)
            return
        data_dir = root / "data"
        try:
            import_bundle(root / "drive", Library(data_dir), keys)
        except KetangError:
            assert not (data_dir / "active.json").exists()
            assert not (data_dir / "catalogs").exists() or not any(
                (data_dir / "catalogs").rglob("*.sqlite"))
