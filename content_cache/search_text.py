"""What the catalog's full-text search indexes beside titles: pinyin and exercise text.

A child types 分数, or ``fenshu``, or the initials ``fs``, or one character such as 春.
Titles are indexed as written; this module adds, for each title, its pinyin written
without spaces (``fenshudejiandanjisuan``) and its initials (``fsdjdjs``), using pypinyin
(well kept, with a phrase dictionary for characters read more than one way), and the
text of a lesson's exercises (questions and choices), read from their blobs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from pypinyin import Style, lazy_pinyin
from pypinyin.constants import PINYIN_DICT
from pypinyin.contrib.tone_convert import to_normal

MAX_EXERCISE_BYTES = 256 * 1024  # a larger exercise blob is not read for search
_HAN_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")


# Every pinyin syllable without tones (from pypinyin's own dictionary), less the
# vowel-less interjections (m, n, ng, hm) that would let any English word "segment".
SYLLABLES = frozenset(s for v in PINYIN_DICT.values() for s in map(to_normal, v.split(","))
                      if s.isascii() and s.isalpha() and re.search("[aeiouv]", s))
_LONGEST = max(map(len, SYLLABLES))


@lru_cache(maxsize=65536)
def pinyin_text(text: str) -> tuple[str, str]:
    """Each run of Chinese in ``text`` as syllables between bars, and as initials.

    ``分数的加法`` → (``|fen|shu|de|jia|fa|``, ``fsdjf``): ``|shu|`` matches 数 but not
    水 (``|shui|``); the initials match as a substring.
    """
    full, initials = [], []
    for run in _HAN_RUN.findall(text):
        full.append("|" + "|".join(lazy_pinyin(run)) + "|")
        initials.append("".join(lazy_pinyin(run, style=Style.FIRST_LETTER)))
    return " ".join(full), " ".join(initials)


def syllables(term: str) -> list[str] | None:
    """``fenshu`` → ``["fen", "shu"]``: the fewest whole syllables spelling ``term``,
    or None when it is not pinyin (an English word, initials such as ``fs``)."""
    term = term.lower()
    if not term.isascii() or not term.isalpha():
        return None
    best: list[list[str] | None] = [[]] + [None] * len(term)
    for end in range(1, len(term) + 1):
        for start in range(max(0, end - _LONGEST), end):
            prev = best[start]
            if prev is not None and term[start:end] in SYLLABLES and (
                    best[end] is None or len(prev) + 1 < len(best[end] or [])):
                best[end] = prev + [term[start:end]]
    return best[len(term)]


def exercise_text(data: bytes) -> str:
    """The questions and choices of an exercise blob (``{"questions": [...]}``), or ''.

    Lesson content is untrusted: anything that is not the expected shape adds nothing.
    """
    if len(data) > MAX_EXERCISE_BYTES:
        return ""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list):
        return ""
    words: list[str] = []
    for q in doc["questions"]:
        if not isinstance(q, dict):
            continue
        words += _strings(q.get("question"), q.get("text"), q.get("prompt"))
        choices = q.get("choices")
        if isinstance(choices, list):
            words += _strings(*choices)
    return " ".join(words)


def _strings(*values: object) -> Iterable[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):  # {"zh": ..., "en": ...}
            yield from (s for s in v.values() if isinstance(s, str))


ReadBlob = Callable[[str, int], bytes | None]
