"""Bad input, each signed by a trusted key (so only the rule under test can refuse it).

Every case gets a clear error and changes nothing on the device.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from content_cache.blobstore import blob_relpath
from content_cache.errors import BlobError, KetangError, ManifestError, ReplayError, SpaceError
from content_cache.importer import import_bundle
from content_cache.keys import load_private_key, load_trusted_keys, sign
from content_cache.library import Library
from content_cache.publisher import publish

from ..helpers import make_source, snapshot

CHANNEL = "test-channel"
# Reserves this far above the free space: tests in parallel workers free space meanwhile
# (their temporary folders go), and no run frees 100 GB while an import checks.
MARGIN = 100 * 10**9


def _bundle(tmp_path: Path, key: Path, version: int = 1, seed: str = "a") -> Path:
    out = tmp_path / f"bundle-{version}-{seed}"
    publish(make_source(tmp_path / f"src-{version}-{seed}", seed=seed), CHANNEL, version, key,
            out)
    return out


def _release(bundle: Path, version: int = 1) -> Path:
    return bundle / "KETANG" / "releases" / CHANNEL / str(version)


def _resign(bundle: Path, key: Path, mutate, version: int = 1, gz: bool = False) -> None:
    """Change the manifest's document with ``mutate`` and sign it again with ``key``."""
    rdir = _release(bundle, version)
    doc = json.loads((rdir / "manifest.json").read_bytes())
    mutate(doc)
    data = json.dumps(doc, ensure_ascii=False).encode()
    _write_signed(rdir, key, gzip.compress(data) if gz else data, gz)


def _write_signed(rdir: Path, key: Path, data: bytes, gz: bool = False) -> None:
    for old in rdir.glob("manifest.json*"):
        old.unlink()
    name = "manifest.json.gz" if gz else "manifest.json"
    (rdir / name).write_bytes(data)
    (rdir / f"{name}.sig").write_bytes(sign(load_private_key(key), data))


@pytest.fixture
def device(tmp_path, publisher_key):
    """A device serving v1 of the test channel; yields (library, trusted keys, key path)."""
    pair, trusted = publisher_key
    lib = Library(tmp_path / "data")
    import_bundle(_bundle(tmp_path, pair.private_path), lib, load_trusted_keys(trusted))
    return lib, load_trusted_keys(trusted), pair.private_path


def _refused(lib: Library, bundle: Path, trusted, error, match: str, **kw) -> None:
    before = snapshot(lib.data_dir)
    with pytest.raises(error, match=match):
        import_bundle(bundle, lib, trusted, **kw)
    assert snapshot(lib.data_dir) == before, "a refused import changed the device"
    assert lib.active_version(CHANNEL) == 1


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["nodes"].append(dict(d["nodes"][1])), "node id 'g3' appears twice"),
    (lambda d: d["resources"].append(dict(d["resources"][0])),
     "resource id 'l0-video' appears twice"),
    (lambda d: d["nodes"][1].update(parent="nowhere"), "names parent 'nowhere', which is missing"),
    (lambda d: d["nodes"][1].pop("parent"), "has no parent"),
    (lambda d: d["nodes"][1].update(parent=d["nodes"][2]["id"]),
     r"sits under 'g3-math' \(subject\); a node must sit under one of an earlier kind"),
    (lambda d: d["resources"][0].update(lesson="g3"), "not a lesson"),
    (lambda d: d["resources"][0].update(size=10 * 1024**3), "claims size 10737418240"),
    (lambda d: d["resources"][0].update(sha256="../../../etc/passwd"), "no valid sha256"),
    (lambda d: d["nodes"][0].update(id="../escape"), "not a valid id"),
    (lambda d: d.update(format="ketang-release/99"), "is not a ketang-release/1 manifest"),
])
def test_a_signed_manifest_that_breaks_a_rule_is_refused(tmp_path, device, mutate, match):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    _resign(bundle, key, mutate, version=2)
    _refused(lib, bundle, trusted, ManifestError, match)


def test_more_nodes_than_a_device_accepts_are_refused(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    extra = [{"id": f"n{i}", "kind": "stage", "title": {"zh": "x"}} for i in range(500_001)]
    _resign(bundle, key, lambda d: d["nodes"].extend(extra), version=2, gz=True)
    _refused(lib, bundle, trusted, ManifestError,
             r"lists 5000\d\d nodes .* the most a device accepts is 500000")


def test_a_gzip_bomb_is_refused_with_bounded_memory(tmp_path, publisher_key):
    """A signed manifest.json.gz that unpacks to 2 GB: refused after reading 256 MiB at most."""
    pair, trusted = publisher_key
    bundle = _bundle(tmp_path, pair.private_path)
    bomb = tmp_path / "bomb.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as g:
        chunk = b" " * (16 * 1024 * 1024)
        for _ in range(128):
            g.write(chunk)
    _write_signed(_release(bundle), pair.private_path, bomb.read_bytes(), gz=True)
    data = tmp_path / "data"
    out = _import_in_child(bundle, data, trusted, timeout=120)
    assert "REFUSED" in out and "unpacks to more than" in out, out
    peak_mb = _peak_mb(out)
    assert peak_mb < 700, f"peak memory {peak_mb:.0f} MB"
    assert not (data / "active.json").exists()


def test_a_symlinked_blob_is_refused(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    manifest = json.loads((_release(bundle, 2) / "manifest.json").read_bytes())
    sha = manifest["resources"][-1]["sha256"]
    blob = bundle / "KETANG" / blob_relpath(sha)
    outside = tmp_path / "outside-blob"
    shutil.copyfile(blob, outside)
    blob.unlink()
    blob.symlink_to(outside)
    _refused(lib, bundle, trusted, BlobError, f"lacks blob {sha}")


def test_a_blob_folder_that_leads_outside_the_bundle_is_refused(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    sha256_dir = bundle / "KETANG" / "blobs" / "sha256"
    shutil.move(sha256_dir, tmp_path / "elsewhere")
    sha256_dir.symlink_to(tmp_path / "elsewhere")
    _refused(lib, bundle, trusted, BlobError, "leads outside it")


def test_a_symlinked_release_folder_is_ignored(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    real = tmp_path / "real-release"
    shutil.move(_release(bundle, 2), real)
    _release(bundle, 2).symlink_to(real)
    _refused(lib, bundle, trusted, KetangError, "holds no release")


def test_a_replayed_older_release_is_refused(tmp_path, device):
    lib, trusted, key = device
    import_bundle(_bundle(tmp_path, key, 3, seed="c"), lib, trusted)
    before = snapshot(lib.data_dir)
    with pytest.raises(ReplayError, match="v2 is older than v3"):
        import_bundle(_bundle(tmp_path, key, 2, seed="b"), lib, trusted)
    assert snapshot(lib.data_dir) == before and lib.active_version(CHANNEL) == 3


def test_not_enough_disk_is_refused_with_numbers(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    free = shutil.disk_usage(lib.data_dir).free
    _refused(lib, bundle, trusted, SpaceError,
             r"needs \d+\.\d MB .* keeps \d+\.\d MB in reserve, but .* has \d+\.\d MB free",
             reserve_bytes=free + MARGIN)


def test_claimed_sizes_larger_than_the_disk_are_refused_before_copying(tmp_path, device):
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    huge = 4 * 1024**3

    def claim(doc):
        for i in range(40):
            doc["resources"].append({**doc["resources"][0], "id": f"huge-{i}",
                                     "sha256": f"{i:064x}", "size": huge})
    _resign(bundle, key, claim, version=2)
    if shutil.disk_usage(lib.data_dir).free > 40 * huge:
        pytest.skip("this disk really has 160 GB free")
    _refused(lib, bundle, trusted, SpaceError, "needs 1717")


def test_the_reserve_comes_from_the_config(tmp_path, device):
    lib, trusted, key = device
    from click.testing import CliRunner

    from appliance.cli import main

    from ..helpers import write_config
    keys = tmp_path / "trusted"
    config = write_config(tmp_path / "k.toml", lib.data_dir, keys)
    free_mb = shutil.disk_usage(lib.data_dir).free // 1_000_000
    config.write_text(config.read_text().replace(
        "[device]\n", f"[device]\nreserve_mb = {free_mb + MARGIN // 1_000_000}\n"))
    before = snapshot(lib.data_dir)
    r = CliRunner().invoke(main, ["--config", str(config), "import",
                                  str(_bundle(tmp_path, key, 2, seed="b"))])
    assert r.exit_code == 1 and "in reserve" in r.output, r.output
    assert snapshot(lib.data_dir) == before
    assert os.path.exists(lib.data_dir / "active.json")


def test_a_two_channel_bundle_activates_all_channels_or_none(tmp_path, device):
    """A bundle with two channels whose second (in import order) has a damaged blob:
    neither is activated (the first is not left imported beside a reported failure);
    once the drive is re-copied, both switch together."""
    lib, trusted, key = device
    bundle = _bundle(tmp_path, key, 2, seed="b")
    publish(make_source(tmp_path / "src-other", seed="o"), "other-channel", 5, key, bundle)
    second = json.loads((_release(bundle, 2) / "manifest.json").read_bytes())
    blob = bundle / "KETANG" / blob_relpath(second["resources"][-1]["sha256"])
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + b"!")
    before = lib.active()
    with pytest.raises(BlobError, match="does not match its sha256"):
        import_bundle(bundle, lib, trusted)
    assert lib.active() == before
    assert not (lib.data_dir / "releases" / CHANNEL / "2").exists()
    assert not list(lib.data_dir.glob("catalogs/*/2-*")), "a catalog was built for nothing"
    blob.write_bytes(good)
    results = import_bundle(bundle, lib, trusted)
    assert sorted((r.channel, r.version, r.status) for r in results) == [
        ("other-channel", 5, "activated"), (CHANNEL, 2, "activated")]
    assert {ch: r.version for ch, r in lib.active().items()} == {CHANNEL: 2, "other-channel": 5}


def test_a_replayed_channel_beside_a_new_one_copies_nothing(tmp_path, device):
    lib, trusted, key = device
    import_bundle(_bundle(tmp_path, key, 3, seed="c"), lib, trusted)
    bundle = _bundle(tmp_path, key, 2, seed="b")  # older than the v3 served
    publish(make_source(tmp_path / "src-other", seed="o"), "other-channel", 5, key, bundle)
    before = snapshot(lib.data_dir)
    with pytest.raises(ReplayError):
        import_bundle(bundle, lib, trusted)
    assert {k: v for k, v in snapshot(lib.data_dir).items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"}


@pytest.mark.slow
def test_too_many_nodes_are_refused_while_parsing_with_bounded_memory(tmp_path, publisher_key):
    """A signed manifest of 2,000,000 small valid nodes (90 MB): refused as the 500,001st
    node is read, long before a document of 2,000,000 dicts exists (that was 1.25 GB)."""
    pair, trusted = publisher_key
    bundle = _bundle(tmp_path, pair.private_path)
    body = ('{"format":"ketang-release/1","channel":"test-channel","version":1,"nodes":['
            + ",".join(f'{{"id":"{i:x}","kind":"stage","title":{{"zh":"x"}}}}'
                       for i in range(2_000_000))
            + '],"resources":[]}').encode()
    _write_signed(_release(bundle), pair.private_path, body)
    del body
    data = tmp_path / "data"
    out = _import_in_child(bundle, data, trusted, timeout=300)
    assert "REFUSED" in out and "lists 500001 nodes or more" in out, out
    peak_mb = _peak_mb(out)
    assert peak_mb < 700, f"peak memory {peak_mb:.0f} MB"  # it was 1,250 MB; 450-520 now
    assert not (data / "active.json").exists()


def _import_in_child(bundle, data, trusted, timeout: int) -> str:
    """Import ``bundle`` in a fresh interpreter (so its peak memory is the import's own);
    its output says REFUSED with the error, then PEAK_KB with the peak RSS."""
    code = (
        "import resource\n"
        "from content_cache.importer import import_bundle\n"
        "from content_cache.keys import load_trusted_keys\n"
        "from content_cache.library import Library\n"
        "from content_cache.errors import ManifestError\n"
        "try:\n"
        f"    import_bundle({str(bundle)!r}, Library({str(data)!r}), "
        f"load_trusted_keys({str(trusted)!r}))\n"
        "except ManifestError as e:\n"
        "    print('REFUSED', e)\n"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


def _peak_mb(out: str) -> float:
    return int(out.split("PEAK_KB")[1]) / 1024
