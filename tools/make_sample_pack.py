"""Generate the bundled sample channels (``content_cache/sample_pack/<channel>/``) from data.

Each file ``tools/sample_pack/channels/<channel>.yaml`` describes one channel: its tree
(stage → … → lesson), each lesson's text, task-sheet tasks, exercise questions and
interactive data (fields: ``tools/sample_pack/channel.schema.json``). For every lesson
this writes a short H.264/AAC video (ffmpeg test patterns with the title burned in), a
PDF task sheet that embeds a subset of Noto Sans CJK SC (fpdf2), the HTML5 interactive
as a zip (from ``tools/sample_pack/interactive/``) and the exercise as JSON, then the
channel's ``source.json``. Adding a channel is adding a data file (docs/sample-pack.md).

Run it from the repository root after changing a data file or an asset, and commit the
result (the repository carries the pack: keep it small)::

    .venv/bin/pip install -e '.[samples]'      # fpdf2, PyYAML, jsonschema
    .venv/bin/python tools/make_sample_pack.py  # needs Debian's ffmpeg and fonts-noto-cjk

A bad data file is refused with one line saying where and what, and nothing is written.
Output is deterministic for given ffmpeg, fpdf2 and font versions; the checks are
``tests/tools/test_sample_pack.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from fontTools import subset
from fontTools.ttLib import TTCollection
from fpdf import FPDF

from content_cache.manifest import CHANNEL_RE, ID_RE, NODE_KINDS

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "sample_pack"
CHANNELS = DATA / "channels"
INTERACTIVE = DATA / "interactive"
DEFAULT_OUT = REPO_ROOT / "content_cache" / "sample_pack"
FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")  # Debian fonts-noto-cjk
FONT_FACE = "Noto Sans CJK SC"
FIXED_DATE = datetime(2024, 9, 1, 8, 0, tzinfo=UTC)
ZIP_DATE = (2024, 9, 1, 8, 0, 0)
NAME_LINE = "班级：__________    姓名：__________    日期：__________"
SUFFIX = {"video": ".mp4", "pdf": ".pdf", "html5": ".zip", "exercise": ".exercise.json"}
NEEDS = {"pdf": "tasks", "html5": "interactive", "exercise": "questions"}

VIDEO_SIZE, VIDEO_FPS, VIDEO_SECONDS = "320x180", 15, 6
# lavfi sources cycled over a channel's lessons, with a hue shift and a tone per lesson
VIDEO_SOURCES = ("testsrc2", "smptebars", "mandelbrot", "testsrc", "rgbtestsrc", "yuvtestsrc")
TONES_HZ = (262, 294, 330, 349, 392, 440, 494, 523, 587, 659, 698, 784)


class PackError(Exception):
    """A channel that cannot be generated; the message says which file, where and what."""


@dataclass(frozen=True)
class Lesson:
    """One lesson of a channel with what the generator derives from its place in the tree."""

    data: dict[str, Any]
    ancestors: tuple[dict[str, Any], ...]  # stage first, the lesson itself excluded
    id: str
    stem: str  # media file names without suffix


@dataclass(frozen=True)
class Channel:
    """A loaded, checked data file."""

    name: str
    data: dict[str, Any]
    lessons: tuple[Lesson, ...]


# ---------------------------------------------------------------------------- loading


def _where(doc: Any, path: list[Any]) -> str:
    """A schema error's place in words: node keys, field names, 1-based list items."""
    names, item = [], doc
    for part in path:
        item = item[part]
        if isinstance(item, dict) and "key" in item and "kind" in item:
            names.append(str(item["key"]))
        elif part not in ("nodes", "children"):
            names.append(str(part + 1 if isinstance(part, int) else part))
    return "/".join(names) or "top level"


def load_channel(path: Path) -> Channel:
    """Read and check one data file; raise PackError saying where it is wrong."""
    name = path.stem
    if not CHANNEL_RE.match(name):
        raise PackError(f"{path}: the file name must be the channel id ({CHANNEL_RE.pattern})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PackError(f"{path}: cannot read it: {' '.join(str(exc).split())}") from None
    schema = json.loads((DATA / "channel.schema.json").read_text(encoding="utf-8"))
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        raise PackError(f"{path}: {_where(doc, list(error.absolute_path))}: {error.message}")
    kinds = [r["kind"] for r in doc["resources"]]
    lessons: list[Lesson] = []

    def walk(node: dict[str, Any], ancestors: tuple[dict[str, Any], ...], parent: str) -> None:
        node_id = f"{parent}-{node['key']}" if parent else node["key"]
        where = f"{path}: {node_id}"
        if node["kind"] not in NODE_KINDS:
            raise PackError(f"{where}: kind {node['kind']!r} must be one of "
                            f"{', '.join(NODE_KINDS)}")
        if not ID_RE.match(node_id):
            raise PackError(f"{where}: the id is too long (ids match {ID_RE.pattern})")
        children = node.get("children", [])
        if len({c["key"] for c in children}) != len(children):
            raise PackError(f"{where}: two children share a key")
        for child in children:
            walk(child, (*ancestors, node), node_id)
        if node["kind"] != "lesson":
            return
        for kind in kinds:
            if kind in NEEDS and NEEDS[kind] not in node:
                raise PackError(f"{where}: the channel gives every lesson a {kind}, so the "
                                f"lesson needs '{NEEDS[kind]}'")
        for n, q in enumerate(node.get("questions", []), start=1):
            if q["answer"] >= len(q["choices"]):
                raise PackError(f"{where}/questions/{n}: answer {q['answer']} is not a choice "
                                f"(choices count from 0)")
        keys = {a["kind"]: a["key"] for a in (*ancestors, node)}
        try:
            stem = doc.get("media_name", "{id}").format(id=node_id, **keys)
        except (KeyError, IndexError, ValueError) as exc:
            raise PackError(f"{where}: media_name {doc.get('media_name')!r} does not fit "
                            f"this lesson ({exc!r})") from None
        if not ID_RE.match(stem):
            raise PackError(f"{where}: media_name makes the file name {stem!r}, which is not "
                            f"a plain name ({ID_RE.pattern})")
        lessons.append(Lesson(node, ancestors, node_id, stem))

    for top in doc["nodes"]:
        walk(top, (), "")
    stems = [lesson.stem for lesson in lessons]
    if len(set(stems)) != len(stems):
        raise PackError(f"{path}: media_name {doc.get('media_name')!r} gives two lessons the "
                        f"same file names")
    return Channel(name, doc, tuple(lessons))


# --------------------------------------------------------------------------- making


def font_face(font: Path) -> int:
    """The index of Noto Sans CJK SC in a font collection (0 for a single font)."""
    if font.suffix.lower() not in (".ttc", ".otc"):
        return 0
    for index, face in enumerate(TTCollection(str(font), lazy=True).fonts):
        if face["name"].getDebugName(1) == FONT_FACE:
            return index
    raise PackError(f"{font}: no {FONT_FACE} face in this collection")


def subset_font(font: Path, channel: Channel, out: Path) -> Path:
    """Noto Sans CJK SC cut down to the characters the channel's texts use (parsed in
    a fraction of the time the whole font takes; the PDFs embed a subset of it again)."""
    chars: set[str] = set(string.printable + NAME_LINE)

    def collect(item: Any) -> None:
        if isinstance(item, str):
            chars.update(item)
        elif isinstance(item, dict | list):
            for value in item.values() if isinstance(item, dict) else item:
                collect(value)

    collect(channel.data)
    options = subset.Options(font_number=font_face(font))
    small = subset.load_font(str(font), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(chars)))
    subsetter.subset(small)
    subset.save_font(small, str(out), options)
    return out


def make_video(path: Path, index: int, lines: list[str], font: Path, tmp: Path) -> None:
    """A VIDEO_SECONDS H.264/AAC clip: a test pattern, three caption lines, a progress bar."""
    steps = [f"hue=h={(index * 67) % 360}", "format=yuv420p"]
    for n, (line, size, y) in enumerate(zip(lines, (13, 26, 13),
                                            ("10", "(h-text_h)/2-8", "h-44"), strict=True)):
        text = tmp / f"{path.stem}-{n}.txt"
        text.write_text(line, encoding="utf-8")
        steps.append(f"drawtext=fontfile={font}:textfile={text}:fontsize={size}:fontcolor=white"
                     f":x=(w-text_w)/2:y={y}:box=1:boxcolor=black@0.55:boxborderw=6")
    steps.append(f"drawbox=x=0:y=ih-8:w=iw*t/{VIDEO_SECONDS}:h=8:color=white@0.85:t=fill")
    source = f"{VIDEO_SOURCES[index % len(VIDEO_SOURCES)]}=size={VIDEO_SIZE}:rate={VIDEO_FPS}"
    tone = f"sine=frequency={TONES_HZ[index % len(TONES_HZ)]}:sample_rate=22050"
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", source, "-f", "lavfi", "-i", f"{tone}:duration={VIDEO_SECONDS}",
        "-vf", ",".join(steps), "-t", str(VIDEO_SECONDS),
        "-c:v", "libx264", "-profile:v", "main", "-level", "3.0", "-pix_fmt", "yuv420p",
        "-preset", "slow", "-b:v", "56k", "-maxrate", "80k", "-bufsize", "160k",
        "-g", str(VIDEO_FPS * 2), "-threads", "1",
        "-bsf:v", "filter_units=remove_types=6",  # drop x264's settings banner (SEI)
        "-c:a", "aac", "-b:a", "24k", "-ac", "1", "-ar", "22050",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-flags:a", "+bitexact", "-movflags", "+faststart", str(path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise PackError(f"ffmpeg failed on {path.name}: {done.stderr.strip()[-300:]}")


def wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """Greedy character wrap (Chinese has no spaces to break at)."""
    lines, current = [], ""
    for ch in text:
        if current and pdf.get_string_width(current + ch) > width:
            lines.append(current)
            current = ""
        current += ch
    return [*lines, current] if current else lines


def make_pdf(path: Path, sheet: dict[str, Any], lesson: Lesson, font: Path) -> None:
    """One A4 学习任务单: goals, numbered tasks with tick boxes, lines for notes."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(f"{sheet['title']['zh']} · {lesson.data['title']['zh']}")
    pdf.set_author("Ketang sample pack")
    pdf.set_subject(lesson.data["title"]["en"])
    pdf.add_font("cjk", fname=str(font))
    pdf.set_auto_page_break(False)
    pdf.set_line_width(1)
    pdf.add_page()
    width, margin = pdf.w, 60.0
    text_width = width - 2 * margin

    def at(x: float, y: float, text: str, size: float, gray: int = 0) -> None:
        pdf.set_font("cjk", size=size)
        pdf.set_text_color(gray)
        pdf.text(x, y, text)

    def centred(y: float, text: str, size: float, gray: int = 0) -> None:
        pdf.set_font("cjk", size=size)
        at((width - pdf.get_string_width(text)) / 2, y, text, size, gray)

    title = lesson.data["title"]
    centred(40, sheet["header"], 9, gray=115)
    centred(90, sheet["title"]["zh"], 26)
    centred(125, title["zh"], 18)
    centred(145, f"{sheet['title']['en']}: {title['en']}", 11)
    centred(170, " · ".join(a["title"]["zh"] for a in lesson.ancestors), 10)
    at(margin, 200, NAME_LINE, 11)
    pdf.line(margin, 212, width - margin, 212)
    y = 245.0
    at(margin, y, sheet["goals"], 14)
    pdf.set_font("cjk", size=12)
    for line in wrap(pdf, lesson.data["description"]["zh"], text_width - 20):
        y += 22
        at(margin + 20, y, line, 12)
    y += 40
    at(margin, y, sheet["tasks"], 14)
    for number, task in enumerate(lesson.data["tasks"], start=1):
        pdf.set_font("cjk", size=12)
        for k, line in enumerate(wrap(pdf, task, text_width - 60)):
            y += 18 if k else 26
            if k == 0:
                pdf.rect(margin + 20, y - 8, 10, 10)
                at(margin + 38, y, f"{number}.", 12)
            at(margin + 56, y, line, 12)
    y += 45
    at(margin, y, sheet["notes"], 14)
    for _ in range(3):
        y += 34
        pdf.line(margin + 20, y, width - margin, y)
    centred(pdf.h - 36, sheet["footer"], 8, gray=115)
    pdf.output(str(path))


def make_zip(path: Path, lesson: Lesson) -> None:
    """The HTML5 interactive: the shared app.js and style.css, index.html with the data."""
    data = json.dumps(lesson.data["interactive"], ensure_ascii=False, separators=(",", ":"))
    page = string.Template((INTERACTIVE / "index.html").read_text(encoding="utf-8"))
    members = {
        "index.html": page.substitute(title_zh=escape(lesson.data["title"]["zh"]),
                                      title_en=escape(lesson.data["title"]["en"]),
                                      data=data.replace("</", "<\\/")),
        "app.js": (INTERACTIVE / "app.js").read_text(encoding="utf-8"),
        "style.css": (INTERACTIVE / "style.css").read_text(encoding="utf-8"),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))


def exercise(lesson: Lesson) -> dict[str, Any]:
    """The ``ketang-exercise/1`` document."""
    return {"format": "ketang-exercise/1", "questions": [
        {"id": f"q{n}", **q} for n, q in enumerate(lesson.data["questions"], start=1)]}


def source_document(channel: Channel) -> dict[str, Any]:
    """The channel's ``source.json`` (``ketang-source/1``, docs/formats.md)."""
    by_id = {lesson.id: lesson for lesson in channel.lessons}

    def node(item: dict[str, Any], parent: str) -> dict[str, Any]:
        node_id = f"{parent}-{item['key']}" if parent else item["key"]
        out = {"id": node_id, "kind": item["kind"], "title": item["title"]}
        if item["kind"] != "lesson":
            return {**out, "children": [node(child, node_id) for child in item["children"]]}
        resources = []
        for res in channel.data["resources"]:
            entry = {"id": f"{node_id}-{res['kind']}", "kind": res["kind"], "title": res["title"],
                     "file": f"media/{by_id[node_id].stem}{SUFFIX[res['kind']]}"}
            resources.append({**entry, "duration": float(VIDEO_SECONDS)}
                             if res["kind"] == "video" else entry)
        return {**out, "description": item["description"], "resources": resources}

    return {"format": "ketang-source/1", "title": channel.data["title"],
            "nodes": [node(top, "") for top in channel.data["nodes"]]}


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build(channel: Channel, out: Path, font: Path) -> Path:
    """Write ``out/<channel>/`` whole: into a temporary folder, then swapped in."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{channel.name}-", dir=out))
    old = out / f".{channel.name}.old"
    try:
        tmp.chmod(0o755)
        media = tmp / "media"
        media.mkdir()
        small_font = subset_font(font, channel, tmp / "font.otf")
        kinds = {r["kind"] for r in channel.data["resources"]}
        captions = channel.data.get("video_caption", [])
        for index, lesson in enumerate(channel.lessons):
            title = lesson.data["title"]
            file = {kind: media / f"{lesson.stem}{suffix}" for kind, suffix in SUFFIX.items()}
            if "video" in kinds:
                top = " · ".join(a["title"]["zh"] for a in lesson.ancestors
                                 if a["kind"] in captions)
                make_video(file["video"], index, [top, title["zh"], title["en"]], small_font, tmp)
            if "pdf" in kinds:
                make_pdf(file["pdf"], channel.data["task_sheet"], lesson, small_font)
            if "html5" in kinds:
                make_zip(file["html5"], lesson)
            if "exercise" in kinds:
                write_json(file["exercise"], exercise(lesson))
        for leftover in [small_font, *tmp.glob("*.txt")]:
            leftover.unlink()
        write_json(tmp / "source.json", source_document(channel))
        final = out / channel.name
        shutil.rmtree(old, ignore_errors=True)  # left by a run that was killed
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--channels", type=Path, default=CHANNELS,
                        help="folder of <channel>.yaml data files")
    parser.add_argument("--channel", action="append", help="only this channel (repeatable)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="pack folder")
    parser.add_argument("--font", type=Path, default=FONT,
                        help="CJK font (Noto Sans CJK SC, or a collection holding it)")
    args = parser.parse_args(argv)
    try:
        files = sorted(args.channels.glob("*.yaml"))
        if args.channel:
            files = [args.channels / f"{name}.yaml" for name in args.channel]
        if not files:
            raise PackError(f"{args.channels}: no <channel>.yaml data files")
        if shutil.which("ffmpeg") is None:
            raise PackError("ffmpeg is missing: install Debian's ffmpeg "
                            "(tests/system-packages.txt)")
        if not args.font.is_file():
            raise PackError(f"{args.font} is missing: install Debian's fonts-noto-cjk "
                            f"(tests/system-packages.txt) or name a font with --font")
        channels = [load_channel(path) for path in files]  # all checked before any is written
        for channel in channels:
            folder = build(channel, args.out, args.font)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            print(f"{channel.name}: {len(channel.lessons)} lessons, {size / 1024:.0f} KiB "
                  f"in {folder}")
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
