"""Power fails during an import: a real subprocess is SIGKILLed at several points.

Afterwards the previous release still serves (over HTTP, from a real `ketang serve`),
the store holds no unverified blob, and running the import again completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from content_cache.blobstore import sha256_file
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.synthetic import DEFAULT_CHANNEL, generate_sample

from ..helpers import running_server, write_config

# The child imports v2 with tiny blob batches, and stops itself (printing READY) at
# the named point; the test then kills it with SIGKILL, as a power cut would.
CHILD = textwrap.dedent('''
    import sys, time
    import content_cache.importer as importer
    import content_cache.catalog as catalog
    import content_cache.library as library
    from content_cache.blobstore import BlobStore
    from content_cache.atomic import atomic_writer, json_bytes
    from content_cache.keys import load_trusted_keys

    bundle, data, keys, point = sys.argv[1:5]
    importer.BATCH_BLOBS = 5

    def stop():
        print("READY", flush=True)
        time.sleep(120)

    if point == "blob-copy":
        real_add = BlobStore.add_stream
        calls = []

        class HalfThenStop:
            def __init__(self, src):
                self.src, self.done = src, False
            def read(self, n=-1):
                if self.done:
                    stop()
                self.done = True
                return self.src.read(100)

        def add_stream(self, src, *a, **kw):
            calls.append(1)
            return real_add(self, HalfThenStop(src) if len(calls) == 12 else src, *a, **kw)
        BlobStore.add_stream = add_stream
    elif point == "catalog-build":
        real_search = catalog._build_search
        def build_search(db, manifest, *rest):
            real_search(db, manifest, *rest)
            stop()
        catalog._build_search = build_search
    elif point == "switch":
        real_write = library.atomic_write_json
        def write(path, doc, mode=0o644):
            if path.name != library.ACTIVE_FILE:
                return real_write(path, doc, mode)
            with atomic_writer(path, mode) as f:
                f.write(json_bytes(doc))
                f.flush()
                stop()
        library.atomic_write_json = write
    importer.import_bundle(bundle, library.Library(data), load_trusted_keys(keys))
    print("FINISHED", flush=True)
''')


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("power")
    v1 = generate_sample(40, root / "v1", version=1, seed=1)
    v2 = generate_sample(60, root / "v2", version=2, seed=2)
    return root / "v1", root / "v2", v1, v2


def _assert_store_verified(data):
    for blob in (data / "blobs" / "sha256").glob("*/*"):
        assert sha256_file(blob) == blob.name, f"unverified blob {blob} in the store"


def _first_lesson(lib: Library) -> dict:
    cat = lib.catalog(DEFAULT_CHANNEL)
    return cat.lesson(cat.lessons(limit=1)[0]["id"])


@pytest.mark.slow
@pytest.mark.parametrize("point", ["blob-copy", "catalog-build", "switch"])
def test_sigkill_during_import_leaves_the_old_release_serving(tmp_path, bundles, demo_keys,
                                                              point):
    v1_bundle, v2_bundle, _, v2 = bundles
    data = tmp_path / "data"
    import_bundle(v1_bundle, Library(data), load_trusted_keys(demo_keys))
    v1_lesson = _first_lesson(Library(data))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(v2_bundle), str(data),
                             str(demo_keys), point], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "READY", f"the child did not reach {point}: {line!r}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    lib = Library(data)
    assert lib.active_version(DEFAULT_CHANNEL) == 1
    # The kill happened where intended: what it interrupted is on disk.
    leftovers = {
        "blob-copy": list(lib.store.tmp_dir.iterdir()),
        "catalog-build": list(data.glob("catalogs/*/*.building")),
        "switch": list(data.glob(".active.json.*.tmp")),
    }[point]
    assert leftovers, f"nothing of the interrupted {point} is on disk"
    if point == "blob-copy":
        stored = len(list((data / "blobs" / "sha256").glob("*/*")))
        assert stored > 40, "no batch of v2 blobs was committed before the kill"
    _assert_store_verified(data)
    assert _first_lesson(lib)["id"] == v1_lesson["id"]
    config = write_config(tmp_path / "ketang.toml", data, demo_keys)
    with running_server(config) as url:
        with urllib.request.urlopen(f"{url}/lessons/{DEFAULT_CHANNEL}/{v1_lesson['id']}") as r:
            assert r.status == 200
        sha = v1_lesson["resources"][0]["sha256"]
        with urllib.request.urlopen(f"{url}/blobs/{sha}") as r:
            assert r.status == 200 and r.read()

    [result] = import_bundle(v2_bundle, lib, load_trusted_keys(demo_keys))
    assert result.status == "activated" and lib.active_version(DEFAULT_CHANNEL) == 2
    assert len(lib.catalog(DEFAULT_CHANNEL).lessons(limit=1000)) == v2.resources // 4
    _assert_store_verified(data)
    assert list(lib.store.tmp_dir.iterdir()) == []
    assert not list(data.glob("catalogs/*/*.building"))
    assert not list(data.glob(".active.json.*"))
