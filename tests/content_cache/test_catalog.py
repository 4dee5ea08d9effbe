"""The catalog: browsing, lesson pages and full-text search that works for Chinese."""

from __future__ import annotations

import pytest

from content_cache.catalog import Catalog, bigram_query, bigrams, build_catalog
from content_cache.manifest import Manifest, Node, Resource

SHA = "ab" * 32


def _catalog(tmp_path, lessons: list[tuple[str, str, str]]) -> Catalog:
    """A two-grade tree; ``lessons`` are (grade, zh title, zh description)."""
    nodes = [Node("primary", "stage", {"zh": "小学", "en": "Primary"})]
    for g, zh in (("g1", "一年级"), ("g3", "三年级")):
        nodes += [Node(g, "grade", {"zh": zh, "en": f"Grade {g[1]}"}, "primary"),
                  Node(f"{g}-math", "subject", {"zh": "数学", "en": "Mathematics"}, g),
                  Node(f"{g}-chinese", "subject", {"zh": "语文", "en": "Chinese"}, g)]
    resources = []
    for i, (grade, title, desc) in enumerate(lessons):
        subject = f"{grade}-chinese" if "诗" in title else f"{grade}-math"
        nodes.append(Node(f"l{i}", "lesson", {"zh": title, "en": f"Lesson {i}"}, subject,
                          {"zh": desc}))
        resources.append(Resource(f"r{i}", f"l{i}", "video", {"zh": "视频"}, SHA, 10,
                                  "video/mp4", 6.0))
    m = Manifest("test", 1, "2026-01-01T00:00:00Z", {"zh": "测试"}, nodes, resources)
    return Catalog(build_catalog(m, tmp_path / "c.sqlite"))


@pytest.fixture
def cat(tmp_path):
    return _catalog(tmp_path, [
        ("g3", "分数的初步认识", "认识几分之一"),
        ("g3", "分数的加法", "Adding FRACTIONS with the same denominator"),
        ("g1", "10以内的加法", "学习加法"),
        ("g3", "古诗三首", "学习古诗，背诵古诗"),
        ("g1", "认识图形", "长方形、正方形和三角形里有分数吗？"),
    ])


def _ids(results):
    return [r["id"] for r in results]


@pytest.mark.parametrize("query, expected", [
    ("分数", {"l0", "l1", "l4"}),       # two characters, inside titles and a description
    ("加法", {"l1", "l2"}),
    ("古诗", {"l3"}),
    ("分数的加法", {"l1"}),           # trigram index
    ("诗", {"l3"}),                  # one character
    ("三年级 分数", {"l0", "l1"}),     # a grade narrows (titles above the lesson)
    ("数学 加法", {"l1", "l2"}),
    ("语文", {"l3"}),
    ("fraction", {"l1"}),            # ASCII, case-insensitive, inside a word
    ("FRACTIONS denominator", {"l1"}),
    ("10", {"l2"}),
    ("分数 长方形", {"l4"}),
    ("加减", set()),
    ("纳米", set()),
])
def test_search_finds_substrings_in_chinese_and_english(cat, query, expected):
    assert set(_ids(cat.search(query))) == expected


def test_title_matches_rank_above_description_matches(cat):
    assert _ids(cat.search("分数"))[-1] == "l4"
    assert _ids(cat.search("加法"))[0] in {"l1", "l2"}


@pytest.mark.parametrize("query", ["", "   ", "+", '"', "分数\" OR \"", "a*", "NEAR(", "—"])
def test_odd_queries_never_raise(cat, query):
    assert isinstance(cat.search(query), list)


def test_search_results_carry_their_breadcrumb(cat):
    [hit] = cat.search("古诗三首")
    assert [p["title"]["zh"] for p in hit["path"]] == ["小学", "三年级", "语文"]


def test_lesson_opens_with_resources_and_path(cat):
    lesson = cat.lesson("l1")
    assert lesson["title"]["zh"] == "分数的加法"
    assert [p["kind"] for p in lesson["path"]] == ["stage", "grade", "subject"]
    assert [r["id"] for r in lesson["resources"]] == ["r1"]
    assert cat.lesson("nope") is None
    assert cat.lesson("g3") is None  # not a lesson
    assert [n["id"] for n in cat.breadcrumb("g3-math")] == ["primary", "g3", "g3-math"]


def test_lessons_lists_every_lesson_with_its_path(cat):
    lessons = cat.lessons()
    assert _ids(lessons) == ["l0", "l1", "l2", "l3", "l4"]
    assert all(len(lesson["path"]) == 3 for lesson in lessons)


def test_bigrams_cover_every_substring():
    assert bigrams("分数的加法") == "分数 数的 的加 加法 法"
    assert bigrams("Ohm's law") == "oh hm m s la aw w"
    assert bigram_query("分") == '"分"*'
    assert bigram_query("分数的") == '"分数 数的"'
    assert bigram_query("+") is None
