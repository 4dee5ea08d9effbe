"""The loop closed, against a real LRS (Ralph) on loopback: two schools' usage reaches
the LRS (one by upload, one by drive and `ketang usage ingest`), the LRS's export
becomes the national co-usage table, signed into a release, imported by a third school,
whose tablets then see "others went on to"; a questionnaire answer is in the LRS once
and in the district report."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import load_settings
from appliance.drives.outbox import write_outbox
from appliance.usage import answers
from appliance.usage import outbox as usage_outbox
from appliance.usage.keys import key_paths
from appliance.usage.upload import upload
from appliance.web.app import create_app
from content_cache.importer import import_bundle
from content_cache.keys import load_trusted_keys
from content_cache.library import Library
from content_cache.questionnaire import parse_questionnaire

from ..helpers import DEMO_KEY, DEMO_PUB, SAMPLE_PACK, write_config
from ..support.lrs import ralph_missing, running_ralph
from ..support.needs import require
from .test_recommend import CHANNEL, A, C, D, settings_in, store_moves

require(ralph_missing() or None)
pytestmark = pytest.mark.slow
usage_outbox.register()  # as the device does at start


@pytest.fixture(scope="module")
def lrs(tmp_path_factory):
    with running_ralph(tmp_path_factory.mktemp("ralph")) as lrs:
        yield lrs


def test_two_schools_to_the_lrs_to_a_signed_table_to_a_third_school(tmp_path, lrs):
    runner = CliRunner()
    north = settings_in(tmp_path, "north").with_overrides(
        "usage", lrs_url=lrs.url, lrs_username=lrs.username, lrs_password=lrs.password)
    north = north.with_overrides("device", name="北山小学")
    for i in range(4):
        store_moves(north, f"tablet-north-{i}", [A, C, D])
    q = parse_questionnaire({
        "format": "ketang-questionnaire/1", "id": "q-loop", "title": {"zh": "问卷"},
        "audience": "teachers", "opens": "2026-01-01", "closes": "2099-01-01",
        "questions": [{"id": "useful", "kind": "scale", "text": {"zh": "帮助"}, "min": 1,
                       "max": 5}]}, "test")
    answer_id = answers.store(north, CHANNEL, 1, q, {"useful": 5})
    assert upload(north, force=True, backoff=0.01).error == ""
    assert upload(north, force=True, backoff=0.01).sent == 0

    south = settings_in(tmp_path, "south").with_overrides("device", name="南河小学")
    for i in range(4):
        store_moves(south, f"tablet-south-{i}", [A, C, D])
    write_outbox(tmp_path / "drive" / "KETANG", south, {})
    keys = tmp_path / "device-keys"
    keys.mkdir()
    shutil.copyfile(key_paths(south.device.data_dir)[1], keys / "south.pub")
    for _ in range(2):      # a drive ingested twice adds nothing
        r = runner.invoke(main, ["usage", "ingest", str(tmp_path / "drive"), "--lrs", lrs.url,
                                 "--keys", str(keys), "--user", lrs.username,
                                 "--password", lrs.password])
        assert r.exit_code == 0, r.output

    held = lrs.statements()
    assert Counter(s["id"] for s in held)[answer_id] == 1
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"statements": held}), encoding="utf-8")
    related = tmp_path / "related.json"
    r = runner.invoke(main, ["recommend", "build", str(export), "--out", str(related)])
    assert r.exit_code == 0, r.output
    assert json.loads(related.read_text())["lessons"][A][0][0] == C

    r = runner.invoke(main, ["report", str(export), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    index = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "北山小学" in index and "南河小学" in index
    assert "q-loop" in index and "<td>useful</td><td>5: 1</td>" in index

    bundle = tmp_path / "bundle"
    r = runner.invoke(main, ["publish", str(SAMPLE_PACK), "--channel", CHANNEL, "--version",
                             "2", "--key", str(DEMO_KEY), "--out", str(bundle),
                             "--related", str(related)])
    assert r.exit_code == 0, r.output
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copyfile(DEMO_PUB, trusted / DEMO_PUB.name)
    third = tmp_path / "third"
    import_bundle(bundle, Library(third), load_trusted_keys(trusted))
    config = write_config(tmp_path / "ketang.toml", third, trusted)
    with open(config, "a", encoding="utf-8") as f:
        f.write("\n[captive]\nenabled = false\n")
    page = create_app(load_settings(config)).test_client().get(
        f"/lessons/{CHANNEL}/{A}").get_data(as_text=True)
    assert f'data-recommended="{C}"' in page
