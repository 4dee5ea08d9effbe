"""Live class answers against a real `ketang serve`: killing the server (SIGKILL, as a
power cut would) between answers loses no acknowledged answer, and a tablet that
answered before the kill is still counted once after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from appliance.classes.answers import round_of

from ..helpers import DEMO_PUB, KETANG, write_config

CH = "cn-basic-edu-demo"
L1 = "primary-g1-math-pep-v1-u3-l1"
EXERCISE = f"{L1}-exercise"


def start(config):
    proc = subprocess.Popen(
        [*KETANG, "--config", str(config), "serve", "--host", "127.0.0.1", "--port", "0",
         "--apps-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("Serving on "):
            return proc, line.split()[-1].replace("localhost", "127.0.0.1")
        if not line:
            break
    proc.kill()
    pytest.fail("ketang serve did not start")


def post(url, doc):
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def answer(base, tablet, choice):
    return post(base + "/api/v1/answers", {
        "round": round_of(0), "tablet": tablet, "channel": CH, "lesson": L1,
        "resource": EXERCISE, "question": 0, "choice": choice})


def counts(base):
    q = (f"/projector/answers?round={round_of(0)}&channel={CH}&lesson={L1}"
         f"&resource={EXERCISE}&question=0")
    with urllib.request.urlopen(base + q, timeout=10) as r:
        return json.loads(r.read())


def test_killing_the_server_between_answers_loses_no_acknowledged_answer(
        tmp_path, sample_bundle):
    import shutil

    from content_cache.importer import import_bundle
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library

    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
    data = tmp_path / "data"
    import_bundle(sample_bundle, Library(data), load_trusted_keys(keys))
    config = write_config(tmp_path / "ketang.toml", data, keys)
    acked = []
    proc, base = start(config)
    try:
        for i in range(5):
            doc = answer(base, f"tablet-kill-{i:04d}", i % 3)
            assert doc["counted"] is True
            acked.append(i)
        assert counts(base)["answered"] == 5
    finally:
        proc.send_signal(signal.SIGKILL)   # no shutdown, no checkpoint: a power cut
        proc.wait()
    proc, base = start(config)
    try:
        doc = counts(base)
        assert doc["answered"] == len(acked) == 5
        assert doc["counts"] == [2, 2, 1]
        assert answer(base, "tablet-kill-0000", 2) == {"counted": False, "choice": 0}
        assert answer(base, "tablet-kill-0099", 1)["counted"] is True
        assert counts(base)["answered"] == 6
    finally:
        proc.terminate()
        proc.wait(timeout=10)
