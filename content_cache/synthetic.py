"""Synthetic releases at national scale, for benchmarks and tests (``ketang sample``).

The tree looks like the national library's: stage → grade → subject → edition →
volume → unit → lesson, with realistic Chinese (and English) titles. Each lesson
has four resources (video, pdf, exercise, and html5/audio/image in turn) whose blobs
are small random bytes, so a release of 88,000 resources is quick to write and import.
The result is a signed ``KETANG/`` bundle, like ``ketang publish`` writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .atomic import atomic_write_bytes, fsync_dir
from .blobstore import blob_relpath
from .bundle import BUNDLE_DIR, release_dir
from .errors import SourceError
from .keys import key_id, load_private_key, sign
from .manifest import CHANNEL_RE, Manifest, Node, Resource
from .publisher import PublishedRelease

DEMO_KEY = Path(__file__).parent / "sample_pack" / "demo-key" / "DEMO-ONLY-publisher.key"
DEFAULT_CHANNEL = "cn-basic-edu-sample"

CN_NUM = "一二三四五六七八九十"
STAGES = [
    ("primary", "小学", "Primary", 6, ["chinese", "math", "english", "science", "morality",
                                       "music", "art"]),
    ("junior", "初中", "Junior secondary", 3, ["chinese", "math", "english", "physics",
                                               "chemistry", "biology", "history", "geography"]),
    ("senior", "高中", "Senior secondary", 3, ["chinese", "math", "english", "physics",
                                               "chemistry", "biology", "history", "geography"]),
]
SUBJECTS = {
    "chinese": ("语文", "Chinese"), "math": ("数学", "Mathematics"),
    "english": ("英语", "English"), "science": ("科学", "Science"),
    "morality": ("道德与法治", "Morality and Law"), "music": ("音乐", "Music"),
    "art": ("美术", "Art"), "physics": ("物理", "Physics"), "chemistry": ("化学", "Chemistry"),
    "biology": ("生物", "Biology"), "history": ("历史", "History"),
    "geography": ("地理", "Geography"),
}
EDITIONS = [("pep", "人教版", "PEP edition"), ("bnu", "北师大版", "BNU edition")]
VOLUMES = [("v1", "上册", "Volume 1"), ("v2", "下册", "Volume 2")]
# Lesson topics per subject: (zh, en). Titles combine a topic with a lesson number.
TOPICS = {
    "chinese": [("古诗二首", "Two classical poems"), ("静夜思", "Quiet night thoughts"),
                ("春晓", "Spring dawn"), ("识字", "Learning characters"),
                ("拼音", "Pinyin"), ("课文朗读", "Reading aloud"), ("寓言故事", "Fables"),
                ("作文指导", "Composition"), ("古诗三首", "Three classical poems"),
                ("文言文阅读", "Classical Chinese reading"), ("口语交际", "Speaking")],
    "math": [("分数的初步认识", "Introducing fractions"), ("分数的加法", "Adding fractions"),
             ("加法", "Addition"), ("减法", "Subtraction"), ("乘法口诀", "Times tables"),
             ("除法", "Division"), ("小数的意义", "Decimals"), ("长方形和正方形",
                                                              "Rectangles and squares"),
             ("一元一次方程", "Linear equations"), ("三角形", "Triangles"),
             ("函数", "Functions"), ("概率初步", "Probability"), ("圆的面积", "Area of a circle")],
    "english": [("字母歌", "The alphabet song"), ("问候", "Greetings"), ("颜色", "Colours"),
                ("我的家庭", "My family"), ("天气", "Weather"), ("一般现在时", "Present simple"),
                ("阅读理解", "Reading comprehension")],
    "science": [("植物的生长", "How plants grow"), ("水的三态", "Three states of water"),
                ("磁铁", "Magnets"), ("简单电路", "Simple circuits"), ("昼夜交替",
                                                                   "Day and night")],
    "morality": [("我们的班级", "Our class"), ("安全出行", "Travelling safely"),
                 ("爱护环境", "Caring for the environment"), ("宪法", "The constitution")],
    "music": [("歌曲演唱", "Singing"), ("节奏练习", "Rhythm"), ("民族乐器", "Folk instruments")],
    "art": [("色彩的魅力", "The charm of colour"), ("剪纸", "Paper cutting"),
            ("中国画", "Chinese painting")],
    "physics": [("牛顿运动定律", "Newton's laws"), ("浮力", "Buoyancy"), ("光的折射",
                                                                      "Refraction"),
                ("欧姆定律", "Ohm's law"), ("机械能", "Mechanical energy")],
    "chemistry": [("化学方程式", "Chemical equations"), ("氧气的性质", "Oxygen"),
                  ("酸和碱", "Acids and bases"), ("元素周期表", "The periodic table")],
    "biology": [("细胞的结构", "Cell structure"), ("光合作用", "Photosynthesis"),
                ("遗传与变异", "Heredity and variation"), ("生态系统", "Ecosystems")],
    "history": [("秦统一中国", "Qin unifies China"), ("丝绸之路", "The Silk Road"),
                ("唐朝的繁荣", "The Tang dynasty"), ("工业革命", "The industrial revolution")],
    "geography": [("地球的运动", "Earth's motion"), ("中国的河流", "Rivers of China"),
                  ("气候", "Climate"), ("地图的阅读", "Reading maps")],
}
EXTRA_KINDS = [("html5", "application/zip", "互动课件", "Interactive"),
               ("audio", "audio/mpeg", "课文录音", "Audio"),
               ("image", "image/png", "板书图片", "Board image")]


def _volumes() -> Iterator[tuple[list[Node], str, str]]:
    """Every (ancestor nodes of a volume, subject key, volume id), in teaching order."""
    for sid, szh, sen, grades, subjects in STAGES:
        stage = Node(sid, "stage", {"zh": szh, "en": sen})
        for g in range(grades):
            gid = f"{sid}-g{g + 1}"
            grade = Node(gid, "grade", {"zh": f"{CN_NUM[g]}年级" if sid == "primary" else
                                        f"{szh}{CN_NUM[g]}年级", "en": f"{sen} grade {g + 1}"},
                         sid)
            for subj in subjects:
                zh, en = SUBJECTS[subj]
                sub = Node(f"{gid}-{subj}", "subject", {"zh": zh, "en": en}, gid)
                for eid, ezh, een in EDITIONS:
                    ed = Node(f"{sub.id}-{eid}", "edition", {"zh": ezh, "en": een}, sub.id)
                    for vid, vzh, ven in VOLUMES:
                        vol = Node(f"{ed.id}-{vid}", "volume",
                                   {"zh": f"{grade.title['zh']}{vzh}", "en": ven}, ed.id)
                        yield [stage, grade, sub, ed, vol], subj, vol.id


def _exercise(rng: random.Random, zh: str, en: str) -> bytes:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    doc = {"format": "ketang-exercise/1", "questions": [{
        "id": "q1", "prompt": {"zh": f"{zh}：{a} + {b} = ?", "en": f"{en}: {a} + {b} = ?"},
        "choices": [{"zh": str(a + b)}, {"zh": str(a + b + 1)}, {"zh": str(a * b + 2)}],
        "answer": 0}]}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def generate_sample(
    resources: int,
    out: Path,
    key_path: Path = DEMO_KEY,
    channel: str = DEFAULT_CHANNEL,
    version: int = 1,
    seed: int = 1,
    blob_bytes: int = 256,
) -> PublishedRelease:
    """Write a signed synthetic release of about ``resources`` resources into ``out/KETANG``.

    Blobs are ``blob_bytes`` random bytes (exercises are real exercise JSON). The
    same ``seed`` gives the same tree and titles (blob bytes too).
    """
    if resources < 1:
        raise SourceError("a sample release needs at least one resource.")
    if not CHANNEL_RE.match(channel):
        raise SourceError(f"channel {channel!r} must be lowercase letters, digits and '-'.")
    private = load_private_key(key_path)
    rng = random.Random(seed)
    root = Path(out) / BUNDLE_DIR
    volumes = list(_volumes())
    lessons_needed = math.ceil(resources / 4)
    per_volume = max(1, math.ceil(lessons_needed / len(volumes)))
    nodes: list[Node] = []
    res: list[Resource] = []
    seen: set[str] = set()
    written_dirs: set[Path] = set()
    total = 0

    def blob(data: bytes) -> str:
        nonlocal total
        sha = hashlib.sha256(data).hexdigest()
        path = root / blob_relpath(sha)
        if path.parent not in written_dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            written_dirs.add(path.parent)
        if not path.exists():
            # A benchmark fixture: no per-file fsync (one sync at the end), but still
            # written under a temporary name so a blob is whole or absent.
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        total += len(data)
        return sha

    for ancestors, subj, vol_id in volumes:
        if len(res) >= resources:
            break
        for a in ancestors:
            if a.id not in seen:
                seen.add(a.id)
                nodes.append(a)
        topics = TOPICS[subj]
        unit = None
        for i in range(per_volume):
            if len(res) >= resources:
                break
            if i % 6 == 0:
                u = i // 6 + 1
                tzh, ten = topics[(u + rng.randrange(len(topics))) % len(topics)]
                unit = Node(f"{vol_id}-u{u}", "unit",
                            {"zh": f"第{u}单元 {tzh}", "en": f"Unit {u}: {ten}"}, vol_id)
                nodes.append(unit)
            tzh, ten = topics[rng.randrange(len(topics))]
            n = i % 6 + 1
            assert unit is not None, "i == 0 made the first unit"
            lid = f"{unit.id}-l{n}"
            nodes.append(Node(lid, "lesson", {"zh": f"第{n}课 {tzh}", "en": f"Lesson {n}: {ten}"},
                              unit.id, {"zh": f"本课学习{tzh}，配有视频、任务单和练习。",
                                        "en": f"This lesson covers {ten.lower()}, with a video, "
                                              "a task sheet and an exercise."}))
            ekind, etype, ezh, een = EXTRA_KINDS[len(res) // 4 % len(EXTRA_KINDS)]
            specs = [
                ("video", "video/mp4", f"{tzh} 微课视频", f"{ten} (video)",
                 float(rng.randint(180, 900))),
                ("pdf", "application/pdf", f"{tzh} 学习任务单", f"{ten} task sheet", None),
                ("exercise", "application/vnd.ketang.exercise+json", f"{tzh} 课后练习",
                 f"{ten} exercise", None),
                (ekind, etype, f"{tzh} {ezh}", f"{ten} ({een.lower()})",
                 float(rng.randint(60, 300)) if ekind == "audio" else None),
            ]
            for kind, mtype, rzh, ren, duration in specs:
                if len(res) >= resources:
                    break
                data = (_exercise(rng, tzh, ten) if kind == "exercise"
                        else rng.randbytes(blob_bytes))
                sha = blob(data)
                res.append(Resource(f"{lid}-{kind}", lid, kind, {"zh": rzh, "en": ren}, sha,
                                    len(data), mtype, duration))
    os.sync()
    for d in written_dirs:
        fsync_dir(d)
    title = {"zh": f"国家基础教育资源（模拟，{len(res)} 个资源）",
             "en": f"National basic education library (synthetic, {len(res)} resources)"}
    manifest = Manifest(channel, version, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        title, nodes, res)
    data = manifest.to_json_bytes()
    manifest_path = release_dir(root, channel, version) / "manifest.json"
    atomic_write_bytes(manifest_path, data)
    atomic_write_bytes(manifest_path.with_name("manifest.json.sig"), sign(private, data))
    return PublishedRelease(channel, version, manifest_path, key_id(private.public_key()),
                            len(nodes), len(res), total)
