"""The national co-usage table: published inside the signed manifest, strictly checked,
copied into the catalog; a bad or tampered table is refused and changes nothing."""

from __future__ import annotations

import json

import pytest

from content_cache.catalog import Catalog
from content_cache.errors import ManifestError, SignatureError
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish
from content_cache.related import FORMAT, MAX_PER_LESSON, load_file, write_file

from ..helpers import make_source, resign_release, snapshot

CHANNEL = "test-channel"


def table_file(tmp_path, lessons):
    p = tmp_path / "related.json"
    p.write_text(json.dumps({"format": FORMAT, "lessons": lessons}), encoding="utf-8")
    return p


@pytest.fixture
def published(tmp_path, publisher_key):
    pair, trusted = publisher_key
    src = make_source(tmp_path / "src", lessons=4)
    related = table_file(tmp_path, {
        "l0": [["l2", 7], ["l1", 3], ["elsewhere", 9]],   # not in this release: left out
        "l2": [["l3", 1.5]],
        "other-channel-lesson": [["l1", 4]],
    })
    out = tmp_path / "bundle"
    rel = publish(src, CHANNEL, 1, pair.private_path, out, related=related)
    return rel, out, pair, trusted


def catalog_of(lib: Library) -> Catalog:
    cat = lib.catalog(CHANNEL)
    assert cat is not None
    return cat


def test_publish_signs_the_table_and_the_catalog_serves_it(tmp_path, published):
    rel, out, _, trusted = published
    assert rel.related == 2
    manifest = parse_manifest(rel.manifest_path.read_bytes())
    assert manifest.related == {"l0": [("l2", 7.0), ("l1", 3.0)], "l2": [("l3", 1.5)]}
    lib = Library(tmp_path / "data")
    import_bundle(out, lib, load_trusted_keys(trusted))
    cat = catalog_of(lib)
    assert cat.related("l0") == [("l2", 7.0), ("l1", 3.0)]
    assert cat.related("l1") == []
    assert [n["id"] for n in cat.following("l1", 3)] == ["l2", "l3"]


@pytest.mark.parametrize("related, message", [
    ({"l0": [["l9", 1]]}, "'l9', which is not another lesson"),
    ({"g3": [["l1", 1]]}, "'g3' is not a lesson of this release"),
    ({"l0": [["l0", 1]]}, "not another lesson"),
    ({"l0": [["l1", -2]]}, "must be a number above 0"),
    ({"l0": [["l1", float("inf")]]}, "must be a number above 0"),
    ({"l0": [["l1", True]]}, "not a [lesson, score] pair"),
    ({"l0": [["l1"]]}, "not a [lesson, score] pair"),
    ({"l0": [["l1", 1], ["l1", 2]]}, "appears twice"),
    ({"l0": [["l1", 1]] * (MAX_PER_LESSON + 1)}, f"at most {MAX_PER_LESSON}"),
    (["l0", "l1"], "must map lesson ids to lists"),
])
def test_a_bad_table_in_a_trusted_release_is_refused_and_changes_nothing(
        tmp_path, published, related, message):
    _, out, pair, trusted = published
    resign_release(out, CHANNEL, 1, pair.private_path,
                   lambda doc: doc.__setitem__("related", related))
    lib = Library(tmp_path / "data")
    before = snapshot(lib.data_dir)
    with pytest.raises(ManifestError) as e:
        import_bundle(out, lib, load_trusted_keys(trusted))
    assert message in str(e.value)
    assert "related" in str(e.value)
    assert snapshot(lib.data_dir) == before


def test_a_tampered_table_is_refused_like_any_tampered_release(tmp_path, published):
    _, out, _, trusted = published
    path = out / "KETANG" / "releases" / CHANNEL / "1" / "manifest.json"
    doc = json.loads(path.read_bytes())
    doc["related"]["l0"] = [["l3", 1000]]
    path.write_bytes(json.dumps(doc).encode())
    lib = Library(tmp_path / "data")
    before = snapshot(lib.data_dir)
    with pytest.raises(SignatureError):
        import_bundle(out, lib, load_trusted_keys(trusted))
    assert snapshot(lib.data_dir) == before


def test_publish_refuses_a_bad_table_file_and_writes_nothing(tmp_path, publisher_key):
    pair, _ = publisher_key
    src = make_source(tmp_path / "src", lessons=2)
    out = tmp_path / "bundle"
    for text, message in [("{not json", "is not valid JSON"),
                          ('{"format": "other"}', "is not a ketang-related/1 file"),
                          (json.dumps({"format": FORMAT, "lessons": {"l0": [["l1", 0]]}}),
                           "must be a number above 0")]:
        bad = tmp_path / "bad.json"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ManifestError, match=message):
            publish(src, CHANNEL, 1, pair.private_path, out, related=bad)
        assert not (out / "KETANG" / "releases").exists()
    with pytest.raises(ManifestError, match="does not exist"):
        load_file(tmp_path / "missing.json")


def test_a_table_file_round_trips(tmp_path):
    table = {"b": [("c", 2.0)], "a": [("b", 1.0), ("c", 3.0)]}
    path = write_file(tmp_path / "t.json", table)
    assert load_file(path) == {"a": [("c", 3.0), ("b", 1.0)], "b": [("c", 2.0)]}


def test_a_release_without_a_table_is_unchanged(tmp_path, publisher_key):
    pair, _ = publisher_key
    rel = publish(make_source(tmp_path / "src"), CHANNEL, 1, pair.private_path,
                  tmp_path / "bundle")
    assert b'"related"' not in rel.manifest_path.read_bytes()
    assert parse_manifest(rel.manifest_path.read_bytes()).related == {}
