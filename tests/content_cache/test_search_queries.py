"""What a child types finds what she means: a query set with expected answers (issue 18).

Over the bundled sample lessons (published and imported as ``make demo`` does) and a
small catalog with an exercise. ``bench/catalog.py`` prints precision at 10 and p95
latency for the same kinds of query on a national-scale catalog.
"""

from __future__ import annotations

import json

import pytest

from appliance.cli.demo import setup_demo
from appliance.config import Settings
from content_cache.catalog import Catalog, build_catalog
from content_cache.library import Library
from content_cache.manifest import Manifest, Node, Resource
from content_cache.search_text import exercise_text, pinyin_text, syllables

G1, G3 = "primary-g1", "primary-g3"
MATH = {f"{G1}-math-pep-v1-u3-l1", f"{G1}-math-pep-v1-u3-l2",
        f"{G3}-math-pep-v1-u8-l1", f"{G3}-math-pep-v1-u8-l2"}
FRACTIONS = {f"{G3}-math-pep-v1-u8-l1", f"{G3}-math-pep-v1-u8-l2"}
PLANTS = {f"{G1}-science-jiaoke-v1-u1-l1", f"{G1}-science-jiaoke-v1-u1-l2"}
POEMS = {f"{G3}-chinese-tongbian-v1-u2-l1"}
GRADE3 = {f"{G3}-{s}-v1-u{u}-l{n}" for s, u in (("chinese-tongbian", 2), ("math-pep", 8),
                                                   ("science-jiaoke", 1)) for n in (1, 2)}
WATER = {f"{G1}-chinese-tongbian-v1-u1-l2", f"{G3}-chinese-tongbian-v1-u2-l2",
         f"{G3}-science-jiaoke-v1-u1-l1", f"{G3}-science-jiaoke-v1-u1-l2"}

# query -> the lessons a child means (all of them, and nothing else, in the first ten)
QUERY_SET = {
    "分数": FRACTIONS,
    "fenshu": FRACTIONS,       # pinyin, no spaces
    "fen shu": FRACTIONS,      # pinyin, syllables apart
    "fs": FRACTIONS,           # initials
    "shu": MATH,               # 数学: whole syllables, so 水 (shui) is not found
    "shui": WATER,
    "植": PLANTS,              # one character
    "zhiwu": PLANTS,
    "古诗": POEMS,
    "gushi": POEMS,
    "Grade 3": GRADE3,         # not every lesson with a 3 in it
    "三年级": GRADE3,
    "三年级 数学": FRACTIONS,
    "addition": {f"{G1}-math-pep-v1-u3-l1"},
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Catalog:
    data = tmp_path_factory.mktemp("sample")
    setup_demo(Settings(), data, echo=lambda _: None)
    lib = Library(data)
    assert "cn-basic-edu-demo" in lib.active()   # beside it: the teacher-training channel
    cat = lib.catalog("cn-basic-edu-demo")
    assert cat is not None
    return cat


@pytest.mark.parametrize("query", sorted(QUERY_SET))
def test_the_query_set_finds_what_is_meant(sample, query):
    top = [r["id"] for r in sample.search(query, limit=10)]
    assert set(top) == QUERY_SET[query], query


def test_exercise_text_is_searched(tmp_path):
    """春 appears only in a question of the lesson's exercise."""
    exercise = json.dumps({"questions": [
        {"question": "《春晓》的作者是谁？", "choices": ["孟浩然", "李白"], "answer": 0}]},
        ensure_ascii=False).encode()
    sha = "cd" * 32
    nodes = [Node("s", "subject", {"zh": "语文", "en": "Chinese"}),
             Node("l1", "lesson", {"zh": "古诗二首", "en": "Two poems"}, "s"),
             Node("l2", "lesson", {"zh": "秋天", "en": "Autumn"}, "s")]
    resources = [Resource("e1", "l1", "exercise", {"zh": "练习"}, sha, len(exercise),
                          "application/json")]
    m = Manifest("t", 1, "2026-01-01T00:00:00Z", {"zh": "测试"}, nodes, resources)
    cat = Catalog(build_catalog(m, tmp_path / "c.sqlite",
                                read_blob=lambda s, n: exercise if s == sha else None))
    assert [r["id"] for r in cat.search("春")] == ["l1"]
    assert [r["id"] for r in cat.search("孟浩然")] == ["l1"]
    assert [r["id"] for r in cat.search("mhr")] == []   # exercise text has no pinyin


@pytest.mark.parametrize("data", [b"", b"[" * 5000, b'{"questions": 3}', b"\xff\xfe",
                                  b'{"questions": [{"question": {"zh": 1}}]}'])
def test_a_broken_exercise_adds_nothing_and_never_raises(data):
    assert exercise_text(data) == ""


def test_pinyin_helpers():
    assert pinyin_text("分数的加法") == ("|fen|shu|de|jia|fa|", "fsdjf")
    assert syllables("fenshu") == ["fen", "shu"]
    assert syllables("xian") == ["xian"]
    assert syllables("fs") is None and syllables("grade") is None
