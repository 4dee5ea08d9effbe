"""``ketang sample``: synthetic signed releases that import like real ones."""

from __future__ import annotations

from click.testing import CliRunner

from appliance.cli import main
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.synthetic import generate_sample


def test_a_sample_release_imports_and_is_searchable_in_chinese(tmp_path, demo_keys):
    rel = generate_sample(200, tmp_path / "bundle")
    assert rel.resources == 200
    manifest = parse_manifest(rel.manifest_path.read_bytes())
    assert len(manifest.resources) == 200
    assert {n.kind for n in manifest.nodes} == {"stage", "grade", "subject", "edition",
                                                "volume", "unit", "lesson"}
    lib = Library(tmp_path / "data")
    [r] = import_bundle(tmp_path / "bundle", lib, load_trusted_keys(demo_keys))
    assert r.status == "activated" and r.blobs_copied == len(manifest.blobs())
    cat = lib.catalog(rel.channel)
    lessons = cat.lessons()
    assert len(lessons) == 50
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in lesson["title"]["zh"])
               for lesson in lessons)
    lesson = cat.lesson(lessons[0]["id"])
    assert [res["kind"] for res in lesson["resources"]][:3] == ["video", "pdf", "exercise"]
    assert cat.search("课") and cat.search("数学")


def test_the_same_seed_gives_the_same_tree(tmp_path):
    a = generate_sample(40, tmp_path / "a", seed=7)
    b = generate_sample(40, tmp_path / "b", seed=7)
    ma, mb = (parse_manifest(x.manifest_path.read_bytes()) for x in (a, b))
    assert [(n.id, n.title) for n in ma.nodes] == [(n.id, n.title) for n in mb.nodes]
    assert ma.blobs() == mb.blobs()


def test_ketang_sample_signs_with_the_given_key(tmp_path, publisher_key):
    pair, trusted = publisher_key
    result = CliRunner().invoke(main, ["sample", "--resources", "12", "--out",
                                       str(tmp_path / "out"), "--key", str(pair.private_path),
                                       "--channel", "bench", "--version", "3"])
    assert result.exit_code == 0, result.output
    assert f"signed by key {pair.key_id}" in result.output
    [r] = import_bundle(tmp_path / "out", Library(tmp_path / "data"), load_trusted_keys(trusted))
    assert (r.channel, r.version, r.key_id) == ("bench", 3, pair.key_id)
