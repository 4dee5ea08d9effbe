"""Fuzz the new parsers (co-usage tables, questionnaires, answers, LRS exports): any
mutation of a valid document is either accepted or refused with a clear error — never
another exception."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from appliance.usage.sources import read_export
from content_cache.errors import KetangError, ManifestError
from content_cache.questionnaire import check_answers, parse_questionnaire
from content_cache.related import parse_table

from ..kiosk_ui.test_questionnaires import questionnaire

NASTY: list[Any] = [None, True, 0, -1, 1e308, float("nan"), "", "x" * 5000, "Ω/../..", [],
                    {}, [[]], {"a": 1}, ["l1", 1], [["l1", 1]], "2026-13-40", 10**30]


def mutate(doc: Any, rng: random.Random) -> Any:
    """Replace, drop or add one thing somewhere in ``doc``."""
    doc = copy.deepcopy(doc)
    node = doc
    for _ in range(rng.randint(0, 4)):
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            if not isinstance(node[key], dict | list) or rng.random() < 0.3:
                break
            node = node[key]
        elif isinstance(node, list) and node:
            i = rng.randrange(len(node))
            if not isinstance(node[i], dict | list) or rng.random() < 0.3:
                break
            node = node[i]
    if isinstance(node, dict):
        choice = rng.random()
        if node and choice < 0.4:
            node[rng.choice(list(node))] = rng.choice(NASTY)
        elif node and choice < 0.7:
            del node[rng.choice(list(node))]
        else:
            node[rng.choice(["id", "kind", "l0", "extra", "min"])] = rng.choice(NASTY)
    elif isinstance(node, list):
        if node and rng.random() < 0.5:
            node[rng.randrange(len(node))] = rng.choice(NASTY)
        else:
            node.append(rng.choice(NASTY))
    return doc


@pytest.mark.parametrize("seed", range(4))
def test_co_usage_tables(seed):
    rng = random.Random(seed)
    valid = {"l0": [["l1", 2.5], ["l2", 1]], "l1": [["l0", 3]]}
    ids = {"l0", "l1", "l2"}
    for _ in range(500):
        doc = mutate(valid, rng)
        try:
            parse_table(doc, "fuzz", lambda s: s in ids)
        except ManifestError:
            pass


@pytest.mark.parametrize("seed", range(4))
def test_questionnaires_and_their_answers(seed):
    rng = random.Random(seed)
    valid = questionnaire()
    for _ in range(500):
        doc = mutate(valid, rng)
        try:
            q = parse_questionnaire(doc, "fuzz")
        except ManifestError:
            continue
        form = MultiDict([(rng.choice(["use", "parts", "useful", "wish", "zz"]),
                           rng.choice(["0", "1", "7", "-1", "", "x" * 3000, "٣", "1.5"]))
                          for _ in range(rng.randint(0, 6))])
        try:
            check_answers(q, form)
        except ValueError:
            pass


def test_lrs_exports(tmp_path):
    rng = random.Random(7)
    valid = {"statements": [{"id": "a", "verb": {"id": "v"}}, {"id": "b"}]}
    path = tmp_path / "export.json"
    for _ in range(300):
        text = json.dumps(mutate(valid, rng))
        if rng.random() < 0.3:
            cut = rng.randrange(len(text))
            text = text[:cut] + rng.choice(["", "\x00", "{", "]", "\n"]) + text[cut + 1:]
        path.write_text(text, encoding="utf-8")
        try:
            read_export(path)
        except KetangError:
            pass


def test_an_export_of_json_lines_with_one_statement(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text('{"id": "a"}\n', encoding="utf-8")
    assert read_export(path) == [{"id": "a"}]
    path.write_text('{"more": "", "statements": [{"id": "b"}]}', encoding="utf-8")
    assert read_export(path) == [{"id": "b"}]
