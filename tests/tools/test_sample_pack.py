"""The bundled sample pack (content_cache/sample_pack/) and its generator.

tools/make_sample_pack.py turns tools/sample_pack/channels/<channel>.yaml into
content_cache/sample_pack/<channel>/. These tests regenerate the pack with the real
ffmpeg, fpdf2 and Noto Sans CJK, check that the committed pack is what the generator
makes, that every lesson's files are sound, that every task sheet embeds its fonts
(pdffonts) and shows its Chinese (pdftoppm), that `ketang publish` and `ketang demo`
take what it writes, and that a bad data file is refused in one line, changing nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from appliance.cli.demo import DEMO_KEY, SAMPLE_PACKS, sample_channels, setup_demo
from appliance.config import Settings
from content_cache.library import Library

from ..helpers import KETANG, SAMPLE_PACK, snapshot
from ..support.needs import require_commands as require

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "tools" / "make_sample_pack.py"
CHANNELS = ROOT / "tools" / "sample_pack" / "channels"
BASIC = CHANNELS / "cn-basic-edu-demo.yaml"
SIZE_BUDGET = 3 * 1024 * 1024  # the repository carries the pack
KINDS = ["video", "pdf", "html5", "exercise"]


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GENERATOR), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def resources(source: Path) -> list[tuple[dict, dict]]:
    """(lesson, resource) pairs of a source tree, in order."""
    found: list[tuple[dict, dict]] = []

    def walk(nodes: list[dict]) -> None:
        for node in nodes:
            walk(node.get("children", []))
            found.extend((node, r) for r in node.get("resources", []))

    walk(json.loads((source / "source.json").read_text(encoding="utf-8"))["nodes"])
    return found


def probe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of",
                          "json", str(path)], check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    return {"codecs": sorted(s["codec_name"] for s in info["streams"]),
            "size": (video["width"], video["height"]),
            "duration": round(float(info["format"]["duration"]), 1)}


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """Every channel regenerated from its data file into a fresh folder."""
    require("ffmpeg", "ffprobe")
    out = tmp_path_factory.mktemp("regenerated")
    done = generate("--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_every_data_file_is_a_committed_channel_and_back():
    assert sorted(p.stem for p in CHANNELS.glob("*.yaml")) == \
        [p.name for p in sample_channels(SAMPLE_PACKS)]


def test_the_basic_education_channel_keeps_the_shape_tests_and_demo_rely_on():
    doc = json.loads((SAMPLE_PACK / "source.json").read_text(encoding="utf-8"))
    [stage] = doc["nodes"]
    assert (stage["id"], stage["title"]["zh"]) == ("primary", "小学")
    assert [g["title"]["zh"] for g in stage["children"]] == ["一年级", "三年级"]
    for grade in stage["children"]:
        assert [s["title"]["zh"] for s in grade["children"]] == ["语文", "数学", "科学"]
    pairs = resources(SAMPLE_PACK)
    lessons = {lesson["id"]: lesson for lesson, _ in pairs}
    assert len(lessons) == 12
    assert list(lessons)[0] == "primary-g1-chinese-tongbian-v1-u1-l1"
    assert lessons["primary-g1-math-pep-v1-u3-l1"]["title"]["zh"] == "5以内的加法"
    for lesson in lessons.values():
        assert [r["kind"] for r in lesson["resources"]] == KINDS, lesson["id"]


@pytest.mark.slow
def test_the_committed_pack_is_what_the_generator_makes(regenerated):
    """Text, JSON and zips byte for byte; PDFs by their text and fonts, videos by their
    streams (encoders may differ by a bit from one ffmpeg or fpdf2 release to another)."""
    hint = "run .venv/bin/python tools/make_sample_pack.py and commit content_cache/sample_pack"
    for made in sorted(regenerated.iterdir()):
        committed = SAMPLE_PACKS / made.name
        files = sorted(str(p.relative_to(made)) for p in made.rglob("*") if p.is_file())
        assert files == sorted(str(p.relative_to(committed)) for p in committed.rglob("*")
                               if p.is_file()), hint
        for name in files:
            new, old = made / name, committed / name
            if new.suffix == ".pdf":
                assert pdf_text(new) == pdf_text(old), f"{old}: {hint}"
            elif new.suffix == ".mp4":
                assert probe(new) == probe(old), f"{old}: {hint}"
            else:
                assert new.read_bytes() == old.read_bytes(), f"{old}: {hint}"


@pytest.mark.slow
def test_every_lessons_files_are_sound_and_the_pack_stays_small():
    require("ffprobe")
    total = 0
    for source in sample_channels(SAMPLE_PACKS):
        seen: dict[str, str] = {}
        for lesson, res in resources(source):
            path = source / res["file"]
            assert path.is_file(), path
            total += path.stat().st_size
            if res["kind"] == "video":
                assert probe(path) == {"codecs": ["aac", "h264"], "size": (320, 180),
                                       "duration": res["duration"]}, path
            elif res["kind"] == "pdf":
                assert path.read_bytes().startswith(b"%PDF"), path
            elif res["kind"] == "html5":
                with zipfile.ZipFile(path) as archive:
                    assert sorted(archive.namelist()) == ["app.js", "index.html", "style.css"]
                    blob = b"".join(archive.read(n) for n in archive.namelist())
                assert lesson["title"]["zh"].encode() in blob
                assert b"http:" not in blob and b"https:" not in blob, f"{path}: external URL"
            elif res["kind"] == "exercise":
                payload = json.loads(path.read_text(encoding="utf-8"))
                assert payload["format"] == "ketang-exercise/1"
                for q in payload["questions"]:
                    assert 0 <= q["answer"] < len(q["choices"]), f"{path}: {q['id']}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if res["kind"] != "html5":
                assert digest not in seen, f"{path} has the same bytes as {seen.get(digest)}"
                seen[digest] = str(path)
    assert total <= SIZE_BUDGET, f"the sample pack is {total} bytes, over {SIZE_BUDGET}"


def ink_in_title_band(pdf: Path, tmp_path: Path) -> float:
    """Share of dark pixels where the sheet's Chinese title is (72 to 130 pt from the top)."""
    subprocess.run(["pdftoppm", "-gray", "-r", "36", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(tmp_path / "page")], check=True, capture_output=True)
    pgm = (tmp_path / "page.pgm").read_bytes()
    magic, width, height, depth, pixels = pgm.split(maxsplit=4)
    assert magic == b"P5" and depth == b"255"
    width_px = int(width)
    rows = pixels[int(72 / 2) * width_px: int(130 / 2) * width_px]   # 36 dpi: 2 pt a pixel
    return sum(1 for b in rows if b < 128) / max(1, len(rows))


def test_every_task_sheet_embeds_its_fonts_and_shows_its_chinese(tmp_path):
    require("pdffonts", "pdftotext", "pdftoppm")
    sheets = [(lesson, r, source / r["file"]) for source in sample_channels(SAMPLE_PACKS)
              for lesson, r in resources(source) if r["kind"] == "pdf"]
    assert len(sheets) >= 18
    for lesson, resource, pdf in sheets:
        listing = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True,
                                 text=True).stdout.splitlines()[2:]
        assert listing, f"{pdf}: no fonts"
        for row in listing:
            # name type [type...] encoding emb sub uni object-id generation
            assert row.split()[-5] == "yes", f"{pdf}: font not embedded: {row}"
        text = pdf_text(pdf)
        # the sheet's heading is its resource title (学习任务单, 研修阅读)
        assert lesson["title"]["zh"] in text and resource["title"]["zh"] in text, pdf
        assert ink_in_title_band(pdf, tmp_path) > 0.01, f"{pdf}: its title draws no ink"


@pytest.mark.slow
def test_ketang_publish_accepts_a_regenerated_channel(regenerated, tmp_path):
    source = regenerated / "cn-basic-edu-demo"
    done = subprocess.run([*KETANG, "publish", str(source), "--channel", "cn-basic-edu-demo",
                           "--version", "1", "--key", str(DEMO_KEY), "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Published cn-basic-edu-demo v1:" in done.stdout and " 48 resources" in done.stdout


TEACHERS = """\
title: {zh: 教师研修 · 示例, en: Teacher training (sample)}
resources:
- {kind: video, title: {zh: 讲座视频, en: Talk}}
- {kind: pdf, title: {zh: 研修任务单, en: Worksheet}}
video_caption: [subject]
task_sheet:
  header: 教师研修 · 示例课程（演示用）
  title: {zh: 研修任务单, en: Worksheet}
  goals: 【研修目标】
  tasks: 【研修任务】
  notes: 【我的反思】
  footer: Ketang 课堂 · 示例资料，仅供演示 · Sample material, demo only
nodes:
- key: teachers
  kind: stage
  title: {zh: 教师研修, en: Teacher training}
  children:
  - key: reading
    kind: subject
    title: {zh: 阅读教学, en: Teaching reading}
    children:
    - key: l1
      kind: lesson
      title: {zh: 整本书阅读, en: Reading whole books}
      description: {zh: 如何带领学生读完一本书。, en: Leading a class through a whole book.}
      tasks: [读一读案例。, 设计一节阅读课。]
"""


@pytest.mark.slow
def test_adding_a_channel_is_adding_a_data_file(tmp_path):
    require("ffmpeg")
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "teacher-training-demo.yaml").write_text(TEACHERS, encoding="utf-8")
    packs = tmp_path / "packs"
    shutil.copytree(SAMPLE_PACK, packs / SAMPLE_PACK.name)
    done = generate("--channels", str(channels), "--out", str(packs))
    assert done.returncode == 0, done.stderr
    assert "teacher-training-demo: 1 lessons" in done.stdout
    said: list[str] = []
    setup_demo(Settings(), tmp_path / "data", echo=said.append, packs=packs)
    assert "cn-basic-edu-demo v1: activated" in said
    assert "teacher-training-demo v1: activated" in said
    [lesson] = Library(tmp_path / "data").catalog("teacher-training-demo").lessons()
    assert lesson["id"] == "teachers-reading-l1"
    assert lesson["path"][0]["title"]["zh"] == "教师研修"


def _mutated(change) -> str:
    doc = yaml.safe_load(BASIC.read_text(encoding="utf-8"))
    change(doc)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _first_lesson(doc: dict) -> dict:
    return doc["nodes"][0]["children"][0]["children"][0]["children"][0]["children"][0][
        "children"][0]["children"][0]


def _set(path: list, value):
    def change(doc):
        item = doc
        for part in path[:-1]:
            item = item[part]
        if value is KeyError:
            del item[path[-1]]
        else:
            item[path[-1]] = value
    return change


def _in_lesson(field: str, value):
    return lambda doc: _set([field], value)(_first_lesson(doc))


BAD = {
    "answer out of range": (
        lambda: _mutated(lambda d: _first_lesson(d)["questions"][0].update(answer=3)),
        "primary-g1-chinese-tongbian-v1-u1-l1/questions/1: answer 3 is not a choice"),
    "a node without a title": (
        lambda: _mutated(_set(["nodes", 0, "children", 0, "title"], KeyError)),
        "primary/g1: 'title' is a required property"),
    "two siblings share a key": (
        lambda: _mutated(lambda d: d["nodes"][0]["children"][1].update(key="g1")),
        "primary: two children share a key"),
    "a lesson lacks its interactive": (
        lambda: _mutated(_in_lesson("interactive", KeyError)),
        "gives every lesson a html5, so the lesson needs 'interactive'"),
    "an interactive nobody can play": (
        lambda: _mutated(_in_lesson("interactive", {"kind": "crossword"})),
        "u1/l1/interactive/kind: 'crossword' is not one of"),
    "a kind the manifest does not know": (
        lambda: _mutated(lambda d: d["nodes"][0]["children"][0].update(kind="year")),
        "primary-g1: kind 'year' must be one of stage"),
    "media names leaving the media folder": (
        lambda: _mutated(lambda d: d.update(media_name="../{grade}-{subject}-{unit}-{lesson}")),
        "media_name makes the file name '../g1-chinese-u1-l1', which is not a plain name"),
    "media names that collide": (
        lambda: _mutated(lambda d: d.update(media_name="{grade}-{lesson}")),
        "gives two lessons the same file names"),
    "media names naming a missing level": (
        lambda: _mutated(lambda d: d.update(media_name="{topic}-{lesson}")),
        "media_name '{topic}-{lesson}' does not fit this lesson"),
    "not YAML at all": (lambda: "title: [unclosed\n", "cannot read it"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_data_file_is_refused_in_one_line_and_nothing_changes(case, tmp_path):
    require("ffmpeg")
    make_text, expected = BAD[case]
    channels = tmp_path / "channels"
    channels.mkdir()
    shutil.copyfile(BASIC, channels / "aaa-good-channel.yaml")   # checked and fine
    bad = channels / "cn-basic-edu-demo.yaml"
    bad.write_text(make_text(), encoding="utf-8")
    out = tmp_path / "out"
    (out / "cn-basic-edu-demo" / "media").mkdir(parents=True)
    (out / "cn-basic-edu-demo" / "source.json").write_text("{}", encoding="utf-8")
    before = snapshot(out)
    done = generate("--channels", str(channels), "--out", str(out))
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: {bad}: ") and expected in line, line
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == [
        "cn-basic-edu-demo"]
