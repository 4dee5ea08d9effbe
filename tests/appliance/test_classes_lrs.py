"""Live class answers reach a real LRS (Ralph) as xAPI `answered` statements with their
result, once per tablet and question however often a tablet sends its answer."""

from __future__ import annotations

import shutil

import pytest

from appliance.classes.answers import round_of
from appliance.config import load_settings
from appliance.usage.upload import upload
from appliance.web.app import create_app
from content_cache.library import Library

from ..support.lrs import ralph_missing, running_ralph
from ..support.needs import require

require(ralph_missing() or None)

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"
L1 = "primary-g1-math-pep-v1-u3-l1"
EXERCISE = f"{L1}-exercise"


def test_live_answers_reach_the_lrs_as_answered_with_their_result(sample_device, tmp_path):
    with running_ralph(tmp_path / "ralph") as lrs:
        shutil.copyfile(sample_device, sample_device.with_suffix(".base"))
        with open(sample_device, "a", encoding="utf-8") as f:
            f.write(f'\n[usage]\nlrs_url = "{lrs.url}"\nlrs_username = "{lrs.username}"\n'
                    f'lrs_password = "{lrs.password}"\nupload_retries = 2\n')
        s = load_settings(sample_device)
        c = create_app(s, Library(s.device.data_dir)).test_client()
        rnd = round_of(7)
        for tablet, choice in (("tablet-lrs-0001", 1), ("tablet-lrs-0002", 0),
                               ("tablet-lrs-0001", 2)):
            r = c.post("/api/v1/answers", json={
                "round": rnd, "tablet": tablet, "channel": CH, "lesson": L1,
                "resource": EXERCISE, "question": 0, "choice": choice})
            assert r.status_code == 200
        done = upload(s, backoff=0.01)
        assert (done.sent, done.error) == (2, ""), done.error
        held = [st for st in lrs.statements()
                if st["verb"]["id"] == "http://adlnet.gov/expapi/verbs/answered"]
        assert len(held) == 2
        by_actor = {st["actor"]["account"]["name"]: st for st in held}
        right, wrong = by_actor["tablet-lrs-0001"], by_actor["tablet-lrs-0002"]
        assert right["result"]["response"] == "1" and right["result"]["success"] is True
        assert wrong["result"]["response"] == "0" and wrong["result"]["success"] is False
        assert right["object"]["id"].endswith(f"/{EXERCISE}/q1")
        ext = right["context"]["extensions"]
        assert ext["http://ketang.lan/xapi/extensions/class"] == 7
        assert upload(s, backoff=0.01).sent == 0
