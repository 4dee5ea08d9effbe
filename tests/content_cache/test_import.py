"""Publishing and importing releases, and every way a bad bundle is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from content_cache.blobstore import blob_relpath, sha256_file
from content_cache.errors import BlobError, KetangError, ReplayError, SignatureError
from content_cache.importer import import_bundle
from content_cache.keys import generate_keypair, load_trusted_keys
from content_cache.library import Library
from content_cache.manifest import parse_manifest
from content_cache.publisher import publish

from ..helpers import make_source


def _publish(tmp_path: Path, key, version: int = 1, seed: str = "a") -> Path:
    src = make_source(tmp_path / f"src-{version}-{seed}", seed=seed)
    out = tmp_path / f"bundle-{version}-{seed}"
    publish(src, "test-channel", version, key, out)
    return out


def _manifest(bundle: Path, version: int = 1) -> Path:
    return bundle / "KETANG" / "releases" / "test-channel" / str(version) / "manifest.json"


def test_publish_then_import_serves_every_lesson(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    lib = Library(tmp_path / "data")
    [result] = import_bundle(bundle, lib, load_trusted_keys(trusted))
    assert (result.channel, result.version, result.status) == ("test-channel", 1, "activated")
    assert result.key_id == pair.key_id
    manifest = parse_manifest(_manifest(bundle).read_bytes())
    assert result.blobs_copied == len(manifest.blobs()) == 4
    for sha in manifest.blobs():
        assert sha256_file(lib.store.path_for(sha)) == sha
    cat = lib.catalog("test-channel")
    assert cat.info()["version"] == 1
    assert [lesson["id"] for lesson in cat.lessons()] == ["l0", "l1"]
    lesson = cat.lesson("l1")
    assert [r["kind"] for r in lesson["resources"]] == ["video", "pdf"]
    assert lesson["resources"][0]["media_type"] == "video/mp4"
    assert [p["kind"] for p in lesson["path"]] == ["stage", "grade", "subject", "edition",
                                                   "volume", "unit"]


def test_reimporting_the_same_version_copies_nothing(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    lib = Library(tmp_path / "data")
    import_bundle(bundle, lib, load_trusted_keys(trusted))
    [again] = import_bundle(bundle, lib, load_trusted_keys(trusted))
    assert again.status == "up-to-date" and again.blobs_copied == 0


def test_a_new_version_copies_only_the_blobs_the_device_lacks(tmp_path, publisher_key):
    pair, trusted = publisher_key
    v1 = _publish(tmp_path, pair.private_path, 1)
    lib = Library(tmp_path / "data")
    import_bundle(v1, lib, load_trusted_keys(trusted))
    src = make_source(tmp_path / "src-v2", lessons=3)  # same two lessons plus one new
    v2 = tmp_path / "bundle-v2"
    publish(src, "test-channel", 2, pair.private_path, v2)
    [r] = import_bundle(v2, lib, load_trusted_keys(trusted))
    assert (r.version, r.blobs_copied, r.blobs_present) == (2, 2, 4)
    assert len(lib.catalog("test-channel").lessons()) == 3


def test_tampered_manifest_is_refused_and_nothing_changes(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    m = _manifest(bundle)
    doc = json.loads(m.read_bytes())
    doc["nodes"][0]["title"]["zh"] = "被篡改"
    m.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    data = tmp_path / "data"
    with pytest.raises(SignatureError, match="altered after signing"):
        import_bundle(bundle, Library(data), load_trusted_keys(trusted))
    assert not (data / "blobs" / "sha256").exists()
    assert not (data / "active.json").exists()


def test_untrusted_key_is_refused_with_its_id(tmp_path, publisher_key):
    _, trusted = publisher_key
    stranger = generate_keypair(tmp_path / "stranger", "stranger")
    bundle = _publish(tmp_path, stranger.private_path)
    data = tmp_path / "data"
    with pytest.raises(SignatureError, match=f"key {stranger.key_id}.*does not trust") as e:
        import_bundle(bundle, Library(data), load_trusted_keys(trusted))
    assert f"to the trusted keys folder {trusted}." in str(e.value)   # where to put the .pub
    assert not data.exists()


@pytest.mark.parametrize("damage, message", [
    ("delete", "signature .* is missing"),
    ("garbage", "signature of .* is malformed"),
])
def test_missing_or_malformed_signature_is_refused(tmp_path, publisher_key, damage, message):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    sig = _manifest(bundle).with_name("manifest.json.sig")
    if damage == "delete":
        sig.unlink()
    else:
        sig.write_text("{not json")
    data = tmp_path / "data"
    with pytest.raises(SignatureError, match=message):
        import_bundle(bundle, Library(data), load_trusted_keys(trusted))
    assert not (data / "active.json").exists()


def test_tampered_blob_is_refused_and_the_old_release_keeps_serving(tmp_path, publisher_key):
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    import_bundle(_publish(tmp_path, pair.private_path, 1), lib, load_trusted_keys(trusted))
    before = (tmp_path / "data" / "active.json").read_bytes()
    v2 = _publish(tmp_path, pair.private_path, 2, seed="b")
    manifest = parse_manifest(_manifest(v2, 2).read_bytes())
    victim = v2 / "KETANG" / blob_relpath(manifest.resources[-1].sha256)
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[3] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(BlobError, match="does not match its sha256"):
        import_bundle(v2, lib, load_trusted_keys(trusted))
    assert (tmp_path / "data" / "active.json").read_bytes() == before
    assert lib.active_version("test-channel") == 1
    assert not lib.store.has(manifest.resources[-1].sha256)
    assert list((tmp_path / "data" / "blobs" / "tmp").iterdir()) == []


def test_truncated_blob_is_refused(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    sha = parse_manifest(_manifest(bundle).read_bytes()).resources[0].sha256
    victim = bundle / "KETANG" / blob_relpath(sha)
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(BlobError, match="truncated: 100 of"):
        import_bundle(bundle, Library(tmp_path / "data"), load_trusted_keys(trusted))
    assert not (tmp_path / "data" / "active.json").exists()


def test_missing_blob_is_refused_before_anything_is_copied(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    sha = parse_manifest(_manifest(bundle).read_bytes()).resources[-1].sha256
    (bundle / "KETANG" / blob_relpath(sha)).unlink()
    with pytest.raises(BlobError, match=f"lacks blob {sha}"):
        import_bundle(bundle, Library(tmp_path / "data"), load_trusted_keys(trusted))
    assert not (tmp_path / "data" / "blobs" / "sha256").exists()


def test_an_older_version_is_refused_unless_forced(tmp_path, publisher_key):
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    old = _publish(tmp_path, pair.private_path, 1)
    import_bundle(_publish(tmp_path, pair.private_path, 2, seed="b"), lib,
                  load_trusted_keys(trusted))
    with pytest.raises(ReplayError, match="v1 is older than v2"):
        import_bundle(old, lib, load_trusted_keys(trusted))
    assert lib.active_version("test-channel") == 2
    [r] = import_bundle(old, lib, load_trusted_keys(trusted), force=True)
    assert r.status == "activated" and lib.active_version("test-channel") == 1


def test_a_device_that_trusts_no_key_imports_nothing(tmp_path, publisher_key):
    pair, _ = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    with pytest.raises(SignatureError, match="trusts no publisher key"):
        import_bundle(bundle, Library(tmp_path / "data"), {})
    empty = tmp_path / "no-keys-yet"
    with pytest.raises(SignatureError, match=f"in the trusted keys folder {empty}\\."):
        import_bundle(bundle, Library(tmp_path / "data"), load_trusted_keys(empty))


def test_publish_refuses_a_file_outside_the_source_tree(tmp_path, publisher_key):
    pair, _ = publisher_key
    src = make_source(tmp_path / "src")
    (tmp_path / "secret.txt").write_text("nope")
    doc = json.loads((src / "source.json").read_text())
    lesson = doc["nodes"][0]["children"][0]["children"][0]["children"][0]["children"][0][
        "children"][0]["children"][0]
    lesson["resources"][0]["file"] = "../secret.txt"
    (src / "source.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="leaves the source folder"):
        publish(src, "test-channel", 1, pair.private_path, tmp_path / "out")
    assert not (tmp_path / "out" / "KETANG" / "releases").exists()


def test_the_sample_pack_is_signed_by_the_demo_key(sample_bundle, tmp_path, demo_keys):
    [r] = import_bundle(sample_bundle, Library(tmp_path / "data"), load_trusted_keys(demo_keys))
    assert r.status == "activated"
    cat = Library(tmp_path / "data").catalog("cn-basic-edu-demo")
    lessons = cat.lessons()
    assert len(lessons) >= 12
    grades = {lesson["path"][1]["title"]["zh"] for lesson in lessons}
    subjects = {(lesson["path"][1]["id"], lesson["path"][2]["title"]["zh"]) for lesson in lessons}
    assert len(grades) >= 2 and len(subjects) >= 6
    for lesson in lessons:
        kinds = {r["kind"] for r in cat.lesson(lesson["id"])["resources"]}
        assert {"video", "pdf", "html5", "exercise"} <= kinds, lesson["id"]
    assert cat.search("加法"), "Chinese search finds 加法"


def test_a_symlinked_ketang_folder_is_refused(tmp_path, publisher_key):
    pair, trusted = publisher_key
    bundle = _publish(tmp_path, pair.private_path)
    drive = tmp_path / "drive"
    drive.mkdir()
    (drive / "KETANG").symlink_to(bundle / "KETANG")
    with pytest.raises(KetangError, match="is a symlink"):
        import_bundle(drive, Library(tmp_path / "data"), load_trusted_keys(trusted))
    assert not (tmp_path / "data").exists()
