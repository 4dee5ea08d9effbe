"""Subscriptions: a school keeps only the stages, grades, subjects and editions it teaches."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import parse_settings
from content_cache.catalog import Catalog, build_catalog
from content_cache.errors import KetangError
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.subscription import Subscription
from content_cache.synthetic import generate_sample

from ..helpers import write_config


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("sub-bundle")
    rel = generate_sample(400, out)
    return out, parse_manifest(rel.manifest_path.read_bytes())


def _subjects(cat: Catalog) -> set[str]:
    return {lesson["path"][2]["title"]["zh"] for lesson in cat.lessons(limit=10_000)}


def test_import_copies_only_subscribed_blobs(tmp_path, bundle, demo_keys):
    out, manifest = bundle
    lib = Library(tmp_path / "data")
    sub = Subscription(subjects=("数学", "Chinese"), grades=("一年级", "primary-g2"))
    [r] = import_bundle(out, lib, load_trusted_keys(demo_keys), subscription=sub)
    wanted = sub.blobs(manifest)
    assert 0 < len(wanted) < len(manifest.blobs())
    assert r.blobs_copied == len(wanted)
    stored = {p.name for p in (lib.data_dir / "blobs" / "sha256").glob("*/*")}
    assert stored == set(wanted)
    cat = lib.catalog(manifest.channel)
    assert _subjects(cat) == {"数学", "语文"}
    assert {lesson["path"][1]["id"] for lesson in cat.lessons()} == {"primary-g1", "primary-g2"}
    assert cat.search("数学") and not cat.search("英语")
    # Every lesson the catalog shows can be served: all its blobs are here.
    for lesson in cat.lessons():
        assert all(lib.store.has(res["sha256"]) for res in cat.lesson(lesson["id"])["resources"])
    # Nothing above a hidden lesson is left dangling in the tree.
    assert [c["title"]["zh"] for c in cat.children("primary-g1")] == ["语文", "数学"]
    assert cat.children("junior") == []

    # Widening the subscription and importing the same bundle copies what is now wanted.
    [again] = import_bundle(out, lib, load_trusted_keys(demo_keys))
    assert again.status == "activated"
    assert again.blobs_copied == len(manifest.blobs()) - len(wanted)
    assert len(lib.catalog(manifest.channel).lessons(limit=10_000)) == 100
    [same] = import_bundle(out, lib, load_trusted_keys(demo_keys))
    assert same.status == "up-to-date"


def test_the_catalog_shows_a_lesson_only_when_all_its_blobs_are_present(tmp_path, bundle):
    _, manifest = bundle
    first = [r for r in manifest.resources if r.lesson == manifest.resources[0].lesson]
    missing = first[-1].sha256
    cat = Catalog(build_catalog(manifest, tmp_path / "c.sqlite",
                                has_blob=lambda sha: sha != missing))
    shown = {lesson["id"] for lesson in cat.lessons(limit=10_000)}
    assert first[0].lesson not in shown
    assert len(shown) == 99
    assert cat.lesson(first[0].lesson) is None
    assert cat.resource_by_sha256(missing) is None


def test_subscriptions_come_from_the_config(tmp_path, bundle, demo_keys):
    out, manifest = bundle
    config = write_config(tmp_path / "k.toml", tmp_path / "data", demo_keys)
    config.write_text(config.read_text() + '\n[subscriptions]\nsubjects = ["英语"]\n')
    r = CliRunner().invoke(main, ["--config", str(config), "import", str(out)])
    assert r.exit_code == 0, r.output
    assert "需要 needs" in r.output and "MB free, keeping 256.0 MB in reserve" in r.output
    assert _subjects(Library(tmp_path / "data").catalog(manifest.channel)) == {"英语"}


def test_a_subscription_must_be_a_list_of_names():
    s = parse_settings({"subscriptions": {"subjects": ["数学"], "stages": []}}, "t.toml")
    assert s.subscriptions.subscription() == Subscription(subjects=("数学",))
    with pytest.raises(KetangError, match="subscriptions.subjects should be a list of strings"):
        parse_settings({"subscriptions": {"subjects": "数学"}}, "t.toml")
    with pytest.raises(KetangError, match="unknown setting subscriptions.teachers"):
        parse_settings({"subscriptions": {"teachers": []}}, "t.toml")
