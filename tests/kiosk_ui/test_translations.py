"""Every user-facing string is translated, and the reader can switch language.

Message ids are English; the Simplified Chinese catalog must translate every one of
them. A template may show no bare words: text goes through ``_()`` (or is data, such
as a lesson's title). ``make translations`` fixes what these tests find.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from appliance.config import Settings
from appliance.web.app import create_app
from content_cache.library import Library

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "kiosk_ui" / "templates"
ZH_PO = ROOT / "kiosk_ui" / "translations" / "zh_Hans" / "LC_MESSAGES" / "messages.po"
SENTINEL = "\x00"
WORDS = re.compile(r"[A-Za-z\u3400-\u9fff]")
TEXT_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
FIX = "run `make translations`, then translate it in " + str(ZH_PO.relative_to(ROOT))


class _BareText(HTMLParser):
    """Collects words in text and in attributes people read, outside script and style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in TEXT_ATTRIBUTES and value:
                self._check(f"{tag}[{name}]", value)

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self._check("text", data)

    def _check(self, where: str, text: str) -> None:
        for piece in text.split(SENTINEL):
            if WORDS.search(piece):
                self.found.append(f"{where}: {piece.strip()!r}")


def _template_text(env: Environment, source: str) -> str:
    """The template with every Jinja tag and expression replaced by a sentinel."""
    out = []
    for _line, kind, value in env.lex(source):
        out.append(value if kind == "data" else SENTINEL)
    return "".join(out)


TEMPLATE_FILES = sorted(TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_templates_have_no_untranslated_words(path: Path) -> None:
    env = create_app(Settings(), Library(Path("/nonexistent"))).jinja_env
    parser = _BareText()
    parser.feed(_template_text(env, path.read_text(encoding="utf-8")))
    assert not parser.found, (
        f"{path.relative_to(ROOT)} shows words that are not translated; wrap them in "
        f"{{{{ _('…') }}}} and {FIX}: {parser.found}")


def _extracted(tmp_path: Path) -> set[str]:
    pybabel = shutil.which("pybabel", path=str(Path(sys.executable).parent))
    assert pybabel, "pybabel (from Babel) should be installed with the package"
    pot = tmp_path / "messages.pot"
    subprocess.run([pybabel, "extract", "-F", "kiosk_ui/babel.cfg", "-k", "_l", "-o", str(pot),
                    "appliance", "kiosk_ui"], cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as f:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}


def test_every_message_has_a_chinese_translation(tmp_path) -> None:
    with ZH_PO.open("rb") as f:
        catalog = read_po(f)
    translated = {}
    for m in catalog:
        if m.id and not m.fuzzy:
            key = m.id if isinstance(m.id, str) else m.id[0]
            strings = m.string if isinstance(m.string, tuple) else (m.string,)
            translated[key] = all(strings)
    wanted = _extracted(tmp_path)
    missing = sorted(wanted - translated.keys())
    empty = sorted(k for k in wanted & translated.keys() if not translated[k])
    assert not missing, f"strings missing from the Chinese catalog ({FIX}): {missing}"
    assert not empty, f"strings with no Chinese translation ({FIX}): {empty}"
    assert len(wanted) >= 10, "extraction found almost nothing: is kiosk_ui/babel.cfg right?"


def test_compiled_catalog_matches_the_po_file() -> None:
    with ZH_PO.open("rb") as f:
        po = {m.id: m.string for m in read_po(f) if m.id and not m.fuzzy}
    with ZH_PO.with_suffix(".mo").open("rb") as f:
        mo = {m.id: m.string for m in read_mo(f) if m.id}
    assert mo == po, f"messages.mo is older than messages.po: {FIX}"


@pytest.fixture
def client(tmp_path):
    return create_app(Settings(), Library(tmp_path / "data")).test_client()


def test_chinese_by_default_and_english_on_request(client) -> None:
    zh = client.get("/").get_data(as_text=True)
    assert "还没有课程" in zh and 'lang="zh-CN"' in zh
    en = client.get("/", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    assert "No lessons yet" in en and 'lang="en"' in en and "还没有课程" not in en


def test_the_switch_is_remembered_and_stays_on_this_site(client) -> None:
    r = client.get("/lang/en?next=/search%3Fq%3Dx")
    assert r.status_code == 302 and r.headers["Location"] == "/search?q=x"
    assert "No lessons found." in client.get("/search?q=x").get_data(as_text=True)
    r = client.get("/lang/zh_Hans?next=//elsewhere.example/")
    assert r.headers["Location"] == "/"
    assert "没有找到课程" in client.get("/search?q=x").get_data(as_text=True)
    r = client.get("/lang/fr")
    assert r.status_code == 302
    assert "没有找到课程" in client.get("/search?q=x").get_data(as_text=True)
