"""docs/manifest.schema.json describes what publishers write and what devices accept."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from content_cache.errors import ManifestError
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish
from content_cache.synthetic import generate_sample

from ..helpers import make_source

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "manifest.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _manifest_doc(bundle: Path) -> dict:
    [path] = (bundle / "KETANG" / "releases").glob("*/*/manifest.json")
    return json.loads(path.read_bytes())


def test_the_published_sample_pack_validates(validator, sample_bundle):
    validator.validate(_manifest_doc(sample_bundle))


def test_a_published_source_tree_validates(validator, tmp_path, publisher_key):
    pair, _ = publisher_key
    publish(make_source(tmp_path / "src", lessons=3), "test-channel", 4, pair.private_path,
            tmp_path / "out")
    validator.validate(_manifest_doc(tmp_path / "out"))


def test_a_synthetic_release_validates(validator, tmp_path):
    generate_sample(120, tmp_path / "out")
    validator.validate(_manifest_doc(tmp_path / "out"))


@pytest.mark.parametrize("path, value", [
    (("format",), "ketang-release/2"),
    (("channel",), "Has Spaces"),
    (("version",), 0),
    (("nodes", 1, "kind"), "chapter"),
    (("nodes", 0, "id"), "../up"),
    (("resources", 0, "sha256"), "ABC"),
    (("resources", 0, "size"), 10 * 1024**3),
    (("resources", 0, "kind"), "flash"),
    (("resources", 0, "duration"), -1),
    (("nodes", 1, "title"), {}),
])
def test_the_schema_and_the_device_refuse_the_same_mistakes(validator, sample_bundle, path,
                                                            value):
    doc = copy.deepcopy(_manifest_doc(sample_bundle))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(validator.iter_errors(doc)), f"the schema accepts {path}={value!r}"
    with pytest.raises(ManifestError):
        parse_manifest(json.dumps(doc).encode())


def test_only_stages_may_lack_a_parent(validator, sample_bundle):
    doc = copy.deepcopy(_manifest_doc(sample_bundle))
    grade = next(n for n in doc["nodes"] if n["kind"] == "grade")
    del grade["parent"]
    assert list(validator.iter_errors(doc))
    with pytest.raises(ManifestError, match="has no parent"):
        parse_manifest(json.dumps(doc).encode())
