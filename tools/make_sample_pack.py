"""Generate the bundled Ketang sample lesson pack (``content_cache/sample_pack``).

The pack imitates China's national basic-education library: 小学 → 2 grades →
3 subjects → 1 edition → 1 volume → 1 unit → 2 lessons, i.e. 12 lessons, each with a
video, a PDF task sheet, an HTML5 interactive (zip) and a multiple-choice exercise (JSON).

This script is run once by a developer when the sample content changes; it is NOT part
of the build. Its output is committed to git, so keep the whole folder under 3 MB.

Requirements:
    * ffmpeg with libx264, the native AAC encoder and drawtext (Debian: ``ffmpeg``).
    * reportlab, for the PDFs (uses the built-in ``STSong-Light`` CID font).
    * Optional: a CJK font (Debian ``fonts-wqy-microhei`` or ``fonts-noto-cjk``) to
      burn the lesson title into each video; without one the videos have no text.

How to run (from the repository root)::

    apt-get update && apt-get install -y ffmpeg fonts-wqy-microhei
    python3 -m venv /tmp/packgen && /tmp/packgen/bin/pip install reportlab
    /tmp/packgen/bin/python tools/make_sample_pack.py

It rewrites ``source.json`` and everything in ``media/`` and then checks the result
(codecs, durations, zip contents, answer indexes, size budget). Other files in the pack
folder are left alone. Output is deterministic for a given ffmpeg/reportlab version.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "content_cache" / "sample_pack"
SIZE_BUDGET = 3 * 1024 * 1024

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
PDF_FONT = "STSong-Light"
# U+00B7 is not in the UniGB-UCS2-H CMap; U+30FB is, and looks the same.
PDF_DOT = "\u30fb"
ZIP_DATE = (2024, 9, 1, 8, 0, 0)

VIDEO_SIZE = "320x180"
VIDEO_FPS = 15
VIDEO_SECONDS = 6
# lavfi sources cycled over the lessons; combined with a hue shift and a tone per lesson.
VIDEO_SOURCES = (
    "testsrc2",
    "smptebars",
    "mandelbrot",
    "testsrc",
    "rgbtestsrc",
    "yuvtestsrc",
)
TONES_HZ = (262, 294, 330, 349, 392, 440, 494, 523, 587, 659, 698, 784)

Text = tuple[str, str]  # (zh, en)


@dataclass(frozen=True)
class Question:
    prompt: Text
    choices: tuple[Text, ...]
    answer: int


@dataclass(frozen=True)
class Lesson:
    title: Text
    description: Text
    tasks: tuple[str, ...]
    questions: tuple[Question, ...]
    interactive: dict[str, Any]


@dataclass(frozen=True)
class Course:
    """One subject of one grade: a single edition, volume and unit."""

    key: str
    subject: Text
    edition_key: str
    edition: Text
    volume: Text
    unit_no: int
    unit: Text
    lessons: tuple[Lesson, ...]


@dataclass(frozen=True)
class Grade:
    key: str
    title: Text
    courses: tuple[Course, ...]


def q(prompt: Text, choices: list[Text], answer: int) -> Question:
    return Question(prompt, tuple(choices), answer)


# --------------------------------------------------------------------------- content

GRADE_1 = Grade("g1", ("一年级", "Grade 1"), (
    Course(
        "chinese", ("语文", "Chinese"), "tongbian", ("统编版", "National unified edition"),
        ("一年级上册", "Grade 1, Book 1"), 1, ("第一单元 识字", "Unit 1 Learning characters"),
        (
            Lesson(
                ("天地人", "Sky, earth and people"),
                ("认识“天、地、人、你、我、他”六个生字，感受汉字和生活的联系。",
                 "Learn the characters 天, 地, 人, 你, 我 and 他 and see how they "
                 "connect to daily life."),
                ("跟着视频读一读“天、地、人、你、我、他”。",
                 "指一指：哪里是天？哪里是地？",
                 "用“你、我、他”说一句话，说给同桌听。",
                 "在田字格里描一描“天”和“人”。"),
                (
                    q(("哪个字表示我们头顶上的天空？", "Which character means the sky above us?"),
                      [("天", "天 (sky)"), ("地", "地 (earth)"), ("人", "人 (person)")], 0),
                    q(("说到自己的时候，用哪个字？", "Which character do you use for yourself?"),
                      [("你", "你 (you)"), ("我", "我 (I, me)"), ("他", "他 (he)")], 1),
                ),
                {"kind": "cards", "items": [
                    ["天", "tiān", "头顶上的天空", "sky"],
                    ["地", "dì", "我们脚下的大地", "earth, ground"],
                    ["人", "rén", "我们都是人", "person"],
                    ["你", "nǐ", "和我说话的人", "you"],
                    ["我", "wǒ", "说话的人自己", "I, me"],
                    ["他", "tā", "说到别的男孩或男人", "he, him"],
                ]},
            ),
            Lesson(
                ("金木水火土", "Metal, wood, water, fire and earth"),
                ("读准“金、木、水、火、土”的字音，会背儿歌，知道“木”字有四笔。",
                 "Read 金, 木, 水, 火, 土 correctly, recite the rhyme and learn that 木 "
                 "has four strokes."),
                ("读一读儿歌：“一二三四五，金木水火土。”",
                 "找一找：教室里哪些东西是木头做的？",
                 "数一数：“木”字一共有几笔？",
                 "和家人一起拍手读儿歌。"),
                (
                    q(("“一二三四五”的下一句是什么？",
                       "Which line comes after “一二三四五”?"),
                      [("金木水火土", "金木水火土"), ("天地人你我", "天地人你我"),
                       ("日月山水田", "日月山水田")], 0),
                    q(("“木”字一共有几笔？", "How many strokes does 木 have?"),
                      [("三笔", "3"), ("四笔", "4"), ("五笔", "5")], 1),
                    q(("哪个字是“水”？", "Which character is 'water'?"),
                      [("火", "火"), ("水", "水"), ("土", "土")], 1),
                ),
                {"kind": "cards", "items": [
                    ["金", "jīn", "金子，金属", "gold, metal"],
                    ["木", "mù", "树木，木头", "tree, wood"],
                    ["水", "shuǐ", "河里流的水", "water"],
                    ["火", "huǒ", "会发光发热的火", "fire"],
                    ["土", "tǔ", "泥土，土地", "soil, earth"],
                ]},
            ),
        ),
    ),
    Course(
        "math", ("数学", "Maths"), "pep", ("人教版", "PEP"),
        ("一年级上册", "Grade 1, Book 1"), 3,
        ("第三单元 1～5的认识和加减法", "Unit 3 Numbers 1 to 5: adding and subtracting"),
        (
            Lesson(
                ("5以内的加法", "Addition within 5"),
                ("通过数一数、合一合，理解加法的含义，会计算5以内的加法。",
                 "Count and put groups together to understand adding, and add numbers "
                 "up to 5."),
                ("看视频，说一说：左手有3个苹果，右手有2个，一共有几个？",
                 "用小棒摆一摆，写出算式：3 + 2 = 5。",
                 "口算：1 + 2 = （  ），2 + 2 = （  ），4 + 1 = （  ）。",
                 "说一说生活中哪里用到了加法。"),
                (
                    q(("2 + 3 = ?", "2 + 3 = ?"), [("4", "4"), ("5", "5"), ("6", "6")], 1),
                    q(("小明有1支铅笔，妈妈又给了他3支，现在一共有几支？",
                       "Xiao Ming has 1 pencil and Mum gives him 3 more. How many now?"),
                      [("3支", "3"), ("4支", "4"), ("5支", "5")], 1),
                    q(("“+”读作什么？", "What is '+' called?"),
                      [("减号", "minus sign"), ("加号", "plus sign"), ("等号", "equals sign")], 1),
                ),
                {"kind": "count", "op": "+", "problems": [[2, 3], [1, 3], [4, 1], [2, 2]]},
            ),
            Lesson(
                ("5以内的减法", "Subtraction within 5"),
                ("通过“拿走”的情境理解减法的含义，会计算5以内的减法。",
                 "Use 'taking away' to understand subtraction, and subtract within 5."),
                ("看视频：树上有5个桃，小猴摘走了2个，还剩几个？",
                 "伸出手指表示：5 - 2 = 3。",
                 "口算：4 - 1 = （  ），5 - 3 = （  ），3 - 3 = （  ）。",
                 "编一个减法小故事，讲给家人听。"),
                (
                    q(("5 - 2 = ?", "5 - 2 = ?"), [("2", "2"), ("3", "3"), ("7", "7")], 1),
                    q(("盘子里有4个苹果，吃掉了1个，还剩几个？",
                       "There are 4 apples on a plate and 1 is eaten. How many are left?"),
                      [("3个", "3"), ("4个", "4"), ("5个", "5")], 0),
                    q(("3 - 3 = ?", "3 - 3 = ?"), [("0", "0"), ("3", "3"), ("6", "6")], 0),
                ),
                {"kind": "count", "op": "-", "problems": [[5, 2], [4, 1], [3, 2], [5, 4]]},
            ),
        ),
    ),
    Course(
        "science", ("科学", "Science"), "jiaoke", ("教科版", "ESPH edition"),
        ("一年级上册", "Grade 1, Book 1"), 1, ("第一单元 植物", "Unit 1 Plants"),
        (
            Lesson(
                ("我们知道的植物", "Plants we know"),
                ("说出身边常见的植物，知道植物生长在不同的地方。",
                 "Name common plants around us and learn that plants grow in many "
                 "different places."),
                ("说一说你认识哪些植物。",
                 "在校园里找一找植物，画下其中的一种。",
                 "分一分：哪些是植物，哪些不是植物？",
                 "和同学交流：植物长在哪些地方？"),
                (
                    q(("下面哪一个是植物？", "Which one is a plant?"),
                      [("小草", "grass"), ("石头", "a stone"), ("小猫", "a kitten")], 0),
                    q(("植物生长在哪里？", "Where do plants grow?"),
                      [("只长在花盆里", "only in flowerpots"),
                       ("陆地上和水里都有", "on land and in water"),
                       ("只长在森林里", "only in forests")], 1),
                ),
                {"kind": "classify",
                 "categories": [["是植物", "plant"], ["不是植物", "not a plant"]],
                 "items": [
                     ["大树", "tree", 0], ["石头", "stone", 1], ["小草", "grass", 0],
                     ["小猫", "kitten", 1], ["向日葵", "sunflower", 0], ["桌子", "desk", 1],
                     ["荷花", "lotus", 0], ["青菜", "bok choy", 0],
                 ]},
            ),
            Lesson(
                ("观察一棵植物", "Observing a plant"),
                ("用眼睛看、用手摸，观察一棵植物的根、茎、叶、花和果实。",
                 "Use your eyes and hands to observe the roots, stem, leaves, flowers "
                 "and fruit of a plant."),
                ("选一棵校园里的植物，看一看它有多高。",
                 "摸一摸它的叶和茎，说说有什么感觉。",
                 "画一画这棵植物，标出根、茎、叶。",
                 "注意：不摘花，不折枝，爱护植物。"),
                (
                    q(("植物长在土里的部分叫什么？", "What is the part of a plant in the soil?"),
                      [("叶", "leaf"), ("根", "root"), ("花", "flower")], 1),
                    q(("观察植物时，哪种做法是对的？",
                       "Which is the right way to observe a plant?"),
                      [("把花摘下来", "pick the flowers"),
                       ("用放大镜仔细看", "look closely with a magnifier"),
                       ("折断树枝", "break off a branch")], 1),
                ),
                {"kind": "cards", "items": [
                    ["根", "gēn", "长在土里，吸收水分", "root: in the soil, takes up water"],
                    ["茎", "jīng", "支撑植物，运送水分", "stem: holds the plant up"],
                    ["叶", "yè", "绿色的，晒太阳", "leaf: green, catches sunlight"],
                    ["花", "huā", "五颜六色，很漂亮", "flower: colourful"],
                    ["果实", "guǒshí", "里面有种子", "fruit: holds the seeds"],
                ]},
            ),
        ),
    ),
))

GRADE_3 = Grade("g3", ("三年级", "Grade 3"), (
    Course(
        "chinese", ("语文", "Chinese"), "tongbian", ("统编版", "National unified edition"),
        ("三年级上册", "Grade 3, Book 1"), 2, ("第二单元 金秋时节", "Unit 2 Golden autumn"),
        (
            Lesson(
                ("古诗三首", "Three classical poems"),
                ("朗读《山行》《赠刘景文》《夜书所见》，想象诗中描绘的秋天景色。",
                 "Read aloud three classical poems about autumn and picture the scenes "
                 "they describe."),
                ("有感情地朗读三首古诗，背诵《山行》。",
                 "圈出《山行》中表示颜色的词语。",
                 "说一说“霜叶红于二月花”是什么意思。",
                 "选一首古诗，为它配一幅秋天的画。"),
                (
                    q(("《山行》的作者是谁？", "Who wrote “Mountain Walk” (山行)?"),
                      [("杜牧", "Du Mu"), ("李白", "Li Bai"), ("苏轼", "Su Shi")], 0),
                    q(("“停车坐爱枫林晚”中的“坐”是什么意思？",
                       "In “停车坐爱枫林晚”, what does 坐 mean?"),
                      [("坐下", "to sit down"), ("因为", "because"), ("乘坐", "to ride")], 1),
                    q(("《夜书所见》的作者是谁？", "Who wrote “Written at Night” (夜书所见)?"),
                      [("叶绍翁", "Ye Shaoweng"), ("杜牧", "Du Mu"), ("王维", "Wang Wei")], 0),
                ),
                {"kind": "poem", "poems": [
                    {"title": "山行", "author": "［唐］杜牧", "lines": [
                        "远上寒山石径斜，", "白云生处有人家。",
                        "停车坐爱枫林晚，", "霜叶红于二月花。"]},
                    {"title": "赠刘景文", "author": "［宋］苏轼", "lines": [
                        "荷尽已无擎雨盖，", "菊残犹有傲霜枝。",
                        "一年好景君须记，", "最是橙黄橘绿时。"]},
                    {"title": "夜书所见", "author": "［宋］叶绍翁", "lines": [
                        "萧萧梧叶送寒声，", "江上秋风动客情。",
                        "知有儿童挑促织，", "夜深篱落一灯明。"]},
                ]},
            ),
            Lesson(
                ("铺满金色巴掌的水泥道", "The path paved with golden palms"),
                ("默读课文，找出描写落叶的句子，体会作者对秋天的喜爱。",
                 "Read silently, find the sentences about fallen leaves and feel the "
                 "writer's love of autumn."),
                ("默读课文，用横线画出描写水泥道的句子。",
                 "说一说：作者为什么把落叶比作“金色的巴掌”？",
                 "积累词语：明朗、凌乱、熨帖、小心翼翼。",
                 "捡一片落叶，仔细观察后写两三句话。"),
                (
                    q(("课文中“金色的巴掌”指的是什么？",
                       "What are the “golden palms” in the text?"),
                      [("法国梧桐的落叶", "fallen plane-tree leaves"),
                       ("小朋友的手", "children's hands"),
                       ("金色的地砖", "golden floor tiles")], 0),
                    q(("这篇课文写的是哪个季节？", "Which season is the text about?"),
                      [("春天", "spring"), ("夏天", "summer"), ("秋天", "autumn")], 2),
                ),
                {"kind": "cards", "items": [
                    ["水泥道", "shuǐnídào", "用水泥铺成的小路", "concrete path"],
                    ["明朗", "mínglǎng", "光线充足，很明亮", "bright and clear"],
                    ["凌乱", "língluàn", "杂乱，没有次序", "scattered, messy"],
                    ["熨帖", "yùtiē", "平平整整，很服帖", "smooth and flat"],
                    ["小心翼翼", "xiǎoxīn yìyì", "非常小心的样子", "very carefully"],
                ]},
            ),
        ),
    ),
    Course(
        "math", ("数学", "Maths"), "pep", ("人教版", "PEP"),
        ("三年级上册", "Grade 3, Book 1"), 8,
        ("第八单元 分数的初步认识", "Unit 8 A first look at fractions"),
        (
            Lesson(
                ("认识几分之一", "Unit fractions"),
                ("把一个物体平均分成几份，认识几分之一，会读、写简单的分数。",
                 "Split a whole into equal parts to meet unit fractions, and read and "
                 "write simple fractions."),
                ("把一张圆形纸片对折，涂出它的1/2。",
                 "说一说：1/4表示什么意思？",
                 "比一比：1/2和1/4，哪个大？",
                 "找一找生活中的“几分之一”。"),
                (
                    q(("把一个蛋糕平均分成4份，每份是它的几分之几？",
                       "A cake is cut into 4 equal pieces. What fraction is each piece?"),
                      [("1/2", "1/2"), ("1/4", "1/4"), ("4/1", "4/1")], 1),
                    q(("1/2和1/3，哪个大？", "Which is bigger, 1/2 or 1/3?"),
                      [("1/2", "1/2"), ("1/3", "1/3"), ("一样大", "they are equal")], 0),
                    q(("分数1/5中的“5”叫作什么？", "In the fraction 1/5, what is 5 called?"),
                      [("分子", "numerator"), ("分母", "denominator"),
                       ("分数线", "fraction bar")], 1),
                ),
                {"kind": "fraction", "tasks": [
                    {"zh": "涂出这个长方形的 1/2", "en": "Shade 1/2 of the bar",
                     "parts": 2, "target": 1},
                    {"zh": "涂出这个长方形的 1/4", "en": "Shade 1/4 of the bar",
                     "parts": 4, "target": 1},
                    {"zh": "涂出这个长方形的 1/3", "en": "Shade 1/3 of the bar",
                     "parts": 3, "target": 1},
                    {"zh": "涂出这个长方形的 1/8", "en": "Shade 1/8 of the bar",
                     "parts": 8, "target": 1},
                ]},
            ),
            Lesson(
                ("分数的简单计算", "Simple fraction calculations"),
                ("借助图形计算同分母分数的加减法，会计算“1减几分之几”。",
                 "Use shapes to add and subtract fractions with the same denominator, "
                 "including 1 minus a fraction."),
                ("涂一涂，算一算：2/5 + 1/5 = （  ）。",
                 "想一想：1 - 3/8 中的“1”可以看成几分之几？",
                 "计算：3/7 + 2/7 = （  ），5/6 - 1/6 = （  ）。",
                 "一块比萨吃了3/8，还剩几分之几？"),
                (
                    q(("2/5 + 1/5 = ?", "2/5 + 1/5 = ?"),
                      [("3/10", "3/10"), ("3/5", "3/5"), ("2/5", "2/5")], 1),
                    q(("1 - 3/8 = ?", "1 - 3/8 = ?"),
                      [("5/8", "5/8"), ("3/8", "3/8"), ("2/8", "2/8")], 0),
                    q(("5/6 - 1/6 = ?", "5/6 - 1/6 = ?"),
                      [("4/6", "4/6"), ("4/0", "4/0"), ("6/6", "6/6")], 0),
                ),
                {"kind": "fraction", "tasks": [
                    {"zh": "2/5 + 1/5 = ？涂出结果", "en": "Shade the answer to 2/5 + 1/5",
                     "parts": 5, "target": 3},
                    {"zh": "3/7 + 2/7 = ？涂出结果", "en": "Shade the answer to 3/7 + 2/7",
                     "parts": 7, "target": 5},
                    {"zh": "1 - 3/8 = ？涂出结果", "en": "Shade the answer to 1 - 3/8",
                     "parts": 8, "target": 5},
                    {"zh": "5/6 - 1/6 = ？涂出结果", "en": "Shade the answer to 5/6 - 1/6",
                     "parts": 6, "target": 4},
                ]},
            ),
        ),
    ),
    Course(
        "science", ("科学", "Science"), "jiaoke", ("教科版", "ESPH edition"),
        ("三年级上册", "Grade 3, Book 1"), 1, ("第一单元 水", "Unit 1 Water"),
        (
            Lesson(
                ("水到哪里去了", "Where did the water go?"),
                ("观察水痕和湿纸巾的变化，认识蒸发，知道温度和风会影响蒸发的快慢。",
                 "Watch water marks and wet tissues dry to learn about evaporation and "
                 "how warmth and wind speed it up."),
                ("用湿抹布在黑板上画一道水痕，观察它的变化。",
                 "记录：水痕过了多长时间消失？",
                 "想一想：湿衣服怎样晾干得更快？",
                 "说一说生活中还有哪些蒸发现象。"),
                (
                    q(("水变成水蒸气散发到空气中，这种现象叫什么？",
                       "What do we call water turning into vapour in the air?"),
                      [("蒸发", "evaporation"), ("沸腾", "boiling"), ("结冰", "freezing")], 0),
                    q(("湿衣服怎样晾干得更快？", "How does wet washing dry fastest?"),
                      [("放在阴暗的柜子里", "in a dark cupboard"),
                       ("放在有阳光和风的地方", "in the sun and wind"),
                       ("叠起来放着", "folded in a pile")], 1),
                ),
                {"kind": "classify",
                 "categories": [["蒸发更快", "evaporates faster"],
                                ["蒸发更慢", "evaporates slower"]],
                 "items": [
                     ["放在太阳下", "in the sun", 0], ["放在阴凉处", "in the shade", 1],
                     ["有风吹", "in the wind", 0], ["没有风", "no wind", 1],
                     ["把衣服摊开", "spread out", 0], ["把衣服叠起来", "folded up", 1],
                 ]},
            ),
            Lesson(
                ("水沸腾了", "Water boils"),
                ("观察把水加热到沸腾的过程，知道水沸腾时的现象和温度。",
                 "Watch water being heated until it boils and learn what happens and "
                 "how hot it gets."),
                ("在老师指导下加热一杯水，注意安全。",
                 "每隔1分钟记录一次水温。",
                 "描述水沸腾时的现象。",
                 "想一想：水沸腾后继续加热，温度还会升高吗？"),
                (
                    q(("通常情况下，水沸腾时的温度大约是多少？",
                       "Usually, at about what temperature does water boil?"),
                      [("0℃", "0 °C"), ("50℃", "50 °C"), ("100℃", "100 °C")], 2),
                    q(("水沸腾时会出现什么现象？", "What can you see when water boils?"),
                      [("产生大量气泡", "lots of bubbles"), ("水变成冰", "it turns to ice"),
                       ("水变成红色", "it turns red")], 0),
                    q(("做加热实验时，哪种做法是对的？",
                       "Which is safe when heating water?"),
                      [("用手摸烧杯", "touch the beaker"),
                       ("在老师指导下戴好护目镜", "wear goggles, with the teacher"),
                       ("把脸凑近杯口看", "put your face over the beaker")], 1),
                ),
                {"kind": "classify",
                 "categories": [["是沸腾现象", "happens when boiling"],
                                ["不是沸腾现象", "does not happen"]],
                 "items": [
                     ["产生大量气泡", "lots of bubbles", 0],
                     ["水面结了一层冰", "ice forms on top", 1],
                     ["冒出很多“白气”", "lots of 'white steam'", 0],
                     ["温度保持在100℃左右", "stays at about 100 °C", 0],
                     ["水变成了红色", "water turns red", 1],
                 ]},
            ),
        ),
    ),
))

GRADES = (GRADE_1, GRADE_3)

# ------------------------------------------------------------------- html5 template

STYLE_CSS = """\
body { margin: 0; padding: 12px; font-family: sans-serif; background: #fdf8ee; color: #333; }
h1 { margin: 0; font-size: 24px; color: #b03a2e; }
.en { margin: 2px 0 12px; color: #777; font-size: 14px; }
.btn, .card { margin: 4px; padding: 8px 14px; font-size: 18px; border: 2px solid #d9a441;
  border-radius: 8px; background: #fff; cursor: pointer; }
.btn.pick { background: #d9a441; color: #fff; }
.next { border-color: #2e86c1; }
.card { min-width: 64px; font-size: 28px; }
.card.seen { background: #fcefd2; }
.detail { margin: 12px 4px; padding: 12px; background: #fff; border-radius: 8px; }
.big { font-size: 48px; color: #b03a2e; }
.pinyin { font-size: 20px; color: #2e86c1; }
.question { font-size: 28px; margin: 8px 4px; }
.hint { color: #666; margin: 4px; }
.tray { margin: 8px 0; }
.apple { display: inline-block; width: 44px; height: 44px; margin: 4px; border-radius: 50%;
  background: #e74c3c; color: #fff; font-size: 22px; line-height: 44px; text-align: center;
  cursor: pointer; }
.apple.counted { background: #c0392b; }
.apple.gap { margin-left: 28px; }
.apple.gone { background: #ccc; text-decoration: line-through; cursor: default; }
.feedback { min-height: 24px; font-size: 18px; margin: 8px 4px; }
.feedback.ok, .row.right { color: #1e8449; }
.feedback.no, .row.wrong { color: #c0392b; }
.row { margin: 4px; padding: 4px; background: #fff; border-radius: 8px; }
.item { display: inline-block; min-width: 150px; font-size: 18px; }
.line { font-size: 24px; margin: 6px 4px; }
.line.hidden { visibility: hidden; }
.author { color: #777; }
.bar { margin: 12px 4px; white-space: nowrap; }
.cell { display: inline-block; height: 60px; margin-right: 4px; background: #fff;
  border: 2px solid #2e86c1; cursor: pointer; }
.cell.shaded { background: #5dade2; }
"""

APP_JS = """\
/* Ketang sample interactive: plain ES5, works offline, no network access. */
(function () {
  var data = window.KETANG_DATA;
  var app = document.getElementById('app');

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined) { node.appendChild(document.createTextNode(String(text))); }
    return node;
  }
  function add(parent, child) { parent.appendChild(child); return child; }
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function setText(node, text) { clear(node); node.appendChild(document.createTextNode(text)); }
  function button(label, cls, onClick) {
    var b = el('button', cls || 'btn', label);
    b.type = 'button';
    b.onclick = onClick;
    return b;
  }
  function say(box, ok, extra) {
    box.className = 'feedback ' + (ok ? 'ok' : 'no');
    setText(box, (ok ? '答对了！Well done! ' : '再想一想。Try again. ') + (extra || ''));
  }

  function cards() {
    var seen = {}, count = 0, i;
    var grid = add(app, el('div', 'grid'));
    var detail = add(app, el('div', 'detail', '点一点卡片。Tap a card.'));
    var progress = add(app, el('p', 'hint'));
    function show(item, idx, node) {
      node.className = 'card seen';
      clear(detail);
      add(detail, el('div', 'big', item[0]));
      add(detail, el('div', 'pinyin', item[1]));
      add(detail, el('div', '', item[2]));
      add(detail, el('div', 'en', item[3]));
      if (!seen[idx]) { seen[idx] = true; count += 1; }
      setText(progress, '已学习 ' + count + ' / ' + data.items.length + ' learned');
    }
    function makeCard(item, idx) {
      var node = add(grid, button(item[0], 'card', function () { show(item, idx, node); }));
    }
    for (i = 0; i < data.items.length; i++) { makeCard(data.items[i], i); }
  }

  function counting() {
    var index = 0;
    var board = add(app, el('div', 'board'));
    function render() {
      var p = data.problems[index], plus = data.op === '+';
      var answer = plus ? p[0] + p[1] : p[0] - p[1], counted = 0, i, n;
      clear(board);
      add(board, el('p', 'question', p[0] + ' ' + data.op + ' ' + p[1] + ' = ?'));
      add(board, el('p', 'hint', plus ? '点一点苹果，数一数一共有几个。Tap the apples to count.'
        : '灰色的苹果被吃掉了，数一数还剩几个。Grey apples are eaten; count the rest.'));
      var tray = add(board, el('div', 'tray'));
      function makeApple(gone, gap) {
        var node = add(tray, el('span', 'apple' + (gone ? ' gone' : '') + (gap ? ' gap' : '')));
        if (gone) { return; }
        node.onclick = function () {
          if (node.className.indexOf('counted') >= 0) { return; }
          counted += 1;
          node.className += ' counted';
          setText(node, String(counted));
        };
      }
      for (i = 0; i < p[0] + (plus ? p[1] : 0); i++) {
        makeApple(!plus && i >= p[0] - p[1], plus && i === p[0]);
      }
      var choices = add(board, el('div', 'choices'));
      var feedback = add(board, el('p', 'feedback'));
      function makeChoice(value) {
        add(choices, button(String(value), 'btn', function () {
          say(feedback, value === answer, value === answer ? '= ' + answer : '');
        }));
      }
      for (n = 0; n <= 5; n++) { makeChoice(n); }
      add(board, button('下一题 Next', 'btn next', function () {
        index = (index + 1) % data.problems.length;
        render();
      }));
    }
    render();
  }

  function classify() {
    var picks = [], rows = [], i;
    var list = add(app, el('div', 'rows'));
    function makeRow(item, idx) {
      var row = add(list, el('div', 'row'));
      var buttons = [], c;
      add(row, el('span', 'item', item[0] + ' ' + item[1]));
      function makePick(cat) {
        buttons.push(add(row, button(data.categories[cat][0] + ' ' + data.categories[cat][1],
          'btn', function () {
            var k;
            picks[idx] = cat;
            for (k = 0; k < buttons.length; k++) {
              buttons[k].className = k === cat ? 'btn pick' : 'btn';
            }
          })));
      }
      for (c = 0; c < data.categories.length; c++) { makePick(c); }
      rows.push(row);
    }
    for (i = 0; i < data.items.length; i++) { makeRow(data.items[i], i); }
    var feedback = add(app, el('p', 'feedback'));
    add(app, button('检查 Check', 'btn next', function () {
      var right = 0, k;
      for (k = 0; k < data.items.length; k++) {
        var ok = picks[k] === data.items[k][2];
        rows[k].className = 'row ' + (ok ? 'right' : 'wrong');
        if (ok) { right += 1; }
      }
      say(feedback, right === data.items.length, right + ' / ' + data.items.length);
    }));
  }

  function poem() {
    var tabs = add(app, el('div', 'tabs'));
    var page = add(app, el('div', 'detail'));
    function open(p) {
      var shown = 0, lines = [], i;
      clear(page);
      add(page, el('div', 'big', p.title));
      add(page, el('p', 'author', p.author));
      for (i = 0; i < p.lines.length; i++) {
        lines.push(add(page, el('p', 'line hidden', p.lines[i])));
      }
      add(page, button('下一句 Next line', 'btn next', function () {
        if (shown < lines.length) { lines[shown].className = 'line'; shown += 1; }
      }));
      add(page, button('重来 Restart', 'btn', function () { open(p); }));
    }
    function makeTab(p) { add(tabs, button(p.title, 'btn', function () { open(p); })); }
    for (var i = 0; i < data.poems.length; i++) { makeTab(data.poems[i]); }
    open(data.poems[0]);
  }

  function fraction() {
    var index = 0;
    var board = add(app, el('div', 'board'));
    function render() {
      var t = data.tasks[index], cells = [], i;
      clear(board);
      add(board, el('p', 'question', t.zh));
      add(board, el('p', 'hint', t.en + ' (tap the parts)'));
      var bar = add(board, el('div', 'bar'));
      var status = add(board, el('p', 'hint'));
      var feedback = add(board, el('p', 'feedback'));
      function shaded() {
        var n = 0, k;
        for (k = 0; k < cells.length; k++) {
          if (cells[k].className.indexOf('shaded') >= 0) { n += 1; }
        }
        setText(status, '已涂 ' + n + ' 份，共 ' + t.parts + ' 份：' + n + '/' + t.parts);
        return n;
      }
      function makeCell() {
        var cell = add(bar, el('span', 'cell'));
        cell.style.width = (Math.floor(288 / t.parts) - 4) + 'px';
        cell.onclick = function () {
          cell.className = cell.className === 'cell' ? 'cell shaded' : 'cell';
          shaded();
        };
        cells.push(cell);
      }
      for (i = 0; i < t.parts; i++) { makeCell(); }
      shaded();
      add(board, button('检查 Check', 'btn', function () {
        say(feedback, shaded() === t.target);
      }));
      add(board, button('下一题 Next', 'btn next', function () {
        index = (index + 1) % data.tasks.length;
        render();
      }));
    }
    render();
  }

  var kinds = { cards: cards, count: counting, classify: classify, poem: poem,
    fraction: fraction };
  kinds[data.kind]();
}());
"""

INDEX_HTML = """\
<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title_zh} · 互动练习</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<h1>{title_zh}</h1>
<p class="en">{title_en} · Interactive</p>
<div id="app"></div>
<noscript>请开启 JavaScript。Please enable JavaScript.</noscript>
<script>var KETANG_DATA = {data};</script>
<script src="app.js"></script>
</body>
</html>
"""

# ------------------------------------------------------------------------ helpers


def bilingual(text: Text) -> dict[str, str]:
    return {"zh": text[0], "en": text[1]}


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def iter_lessons() -> list[tuple[Grade, Course, int, Lesson]]:
    """All lessons in teaching order, with their grade, course and 1-based number."""
    return [
        (grade, course, number, lesson)
        for grade in GRADES
        for course in grade.courses
        for number, lesson in enumerate(course.lessons, start=1)
    ]


def media_stem(grade: Grade, course: Course, number: int) -> str:
    return f"{grade.key}-{course.key}-u{course.unit_no}-l{number}"


# ---------------------------------------------------------------------------- video


def find_font(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    return next((path for path in FONT_CANDIDATES if path.exists()), None)


def drawtext(font: Path, text_file: Path, size: int, y: str) -> str:
    for path in (font, text_file):
        if any(ch in str(path) for ch in ":,;'[]\\"):
            raise ValueError(f"path not safe for an ffmpeg filter graph: {path}")
    return (
        f"drawtext=fontfile={font}:textfile={text_file}:fontsize={size}:fontcolor=white"
        f":x=(w-text_w)/2:y={y}:box=1:boxcolor=black@0.55:boxborderw=6"
    )


def video_filter(index: int, font: Path | None, texts: list[Path]) -> str:
    steps = [f"hue=h={(index * 67) % 360}", "format=yuv420p"]
    if font is not None:
        steps += [
            drawtext(font, texts[0], 13, "10"),
            drawtext(font, texts[1], 26, "(h-text_h)/2-8"),
            drawtext(font, texts[2], 13, "h-44"),
        ]
    steps.append(f"drawbox=x=0:y=ih-8:w=iw*t/{VIDEO_SECONDS}:h=8:color=white@0.85:t=fill")
    return ",".join(steps)


def make_video(
    path: Path, index: int, grade: Grade, course: Course, lesson: Lesson,
    font: Path | None, tmp: Path,
) -> None:
    lines = [
        f"{grade.title[0]} · {course.subject[0]} · {course.edition[0]}",
        lesson.title[0],
        lesson.title[1],
    ]
    texts = []
    for n, line in enumerate(lines):
        text_file = tmp / f"{path.stem}-{n}.txt"
        text_file.write_text(line, encoding="utf-8")
        texts.append(text_file)
    source = VIDEO_SOURCES[index % len(VIDEO_SOURCES)]
    source += f"{':' if '=' in source else '='}size={VIDEO_SIZE}:rate={VIDEO_FPS}"
    tone = f"sine=frequency={TONES_HZ[index]}:sample_rate=22050:duration={VIDEO_SECONDS}"
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", source,
        "-f", "lavfi", "-i", tone,
        "-vf", video_filter(index, font, texts),
        "-t", str(VIDEO_SECONDS),
        "-c:v", "libx264", "-profile:v", "main", "-level", "3.0", "-pix_fmt", "yuv420p",
        "-preset", "slow", "-b:v", "56k", "-maxrate", "80k", "-bufsize", "160k",
        "-g", str(VIDEO_FPS * 2), "-threads", "1",
        # drop SEI NAL units (x264's settings banner, which embeds a URL)
        "-bsf:v", "filter_units=remove_types=6",
        "-c:a", "aac", "-b:a", "24k", "-ac", "1", "-ar", "22050",
        "-map_metadata", "-1", "-fflags", "+bitexact",
        "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart",
        str(path),
    ]
    subprocess.run(cmd, check=True)


# ------------------------------------------------------------------------------ pdf


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy character wrap (fine for Chinese, which has no spaces)."""
    lines, current = [], ""
    for ch in text:
        if current and pdfmetrics.stringWidth(current + ch, font, size) > width:
            lines.append(current)
            current = ""
        current += ch
    return lines + [current] if current else lines


def make_pdf(path: Path, grade: Grade, course: Course, lesson: Lesson) -> None:
    width, height = A4
    margin = 60
    text_width = width - 2 * margin
    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    pdf.setTitle(f"学习任务单 · {lesson.title[0]}")
    pdf.setAuthor("Ketang sample pack")
    pdf.setSubject(lesson.title[1])

    def centred(text: str, font: str, size: float, y: float) -> None:
        pdf.setFont(font, size)
        pdf.drawCentredString(width / 2, y, text)

    pdf.setFillGray(0.45)
    centred(f"国家中小学智慧教育平台 {PDF_DOT} 示例课程（演示用）", PDF_FONT, 9, height - 40)
    pdf.setFillGray(0)
    centred("学习任务单", PDF_FONT, 26, height - 90)
    centred(lesson.title[0], PDF_FONT, 18, height - 125)
    centred(f"Task sheet: {lesson.title[1]}", "Helvetica", 11, height - 145)
    parts = ("小学", grade.title[0], course.subject[0], course.edition[0], course.volume[0])
    info = f" {PDF_DOT} ".join(parts) + f"  {course.unit[0]}"
    centred(info, PDF_FONT, 10, height - 170)
    pdf.setFont(PDF_FONT, 11)
    pdf.drawString(margin, height - 200, "班级：__________    姓名：__________    日期：__________")
    pdf.line(margin, height - 212, width - margin, height - 212)

    y = height - 245
    pdf.setFont(PDF_FONT, 14)
    pdf.drawString(margin, y, "【学习目标】")
    for line in wrap(lesson.description[0], PDF_FONT, 12, text_width - 20):
        y -= 22
        pdf.setFont(PDF_FONT, 12)
        pdf.drawString(margin + 20, y, line)

    y -= 40
    pdf.setFont(PDF_FONT, 14)
    pdf.drawString(margin, y, "【学习任务】")
    for number, task in enumerate(lesson.tasks, start=1):
        for k, line in enumerate(wrap(task, PDF_FONT, 12, text_width - 60)):
            y -= 26 if k == 0 else 18
            pdf.setFont(PDF_FONT, 12)
            if k == 0:
                pdf.rect(margin + 20, y - 2, 10, 10)
                pdf.drawString(margin + 38, y, f"{number}.")
            pdf.drawString(margin + 56, y, line)

    y -= 45
    pdf.setFont(PDF_FONT, 14)
    pdf.drawString(margin, y, "【我的收获】")
    for _ in range(3):
        y -= 34
        pdf.line(margin + 20, y, width - margin, y)

    pdf.setFillGray(0.45)
    footer = f"Ketang 课堂 {PDF_DOT} 示例资料，仅供演示 {PDF_DOT} Sample material, demo only"
    centred(footer, PDF_FONT, 8, 36)
    pdf.showPage()
    pdf.save()


# ---------------------------------------------------------------------------- html5


def index_html(lesson: Lesson) -> str:
    data = json.dumps(lesson.interactive, ensure_ascii=False, separators=(",", ":"))
    return INDEX_HTML.format(
        title_zh=html.escape(lesson.title[0]),
        title_en=html.escape(lesson.title[1]),
        data=data.replace("</", "<\\/"),
    )


def make_zip(path: Path, lesson: Lesson) -> None:
    members = {"index.html": index_html(lesson), "app.js": APP_JS, "style.css": STYLE_CSS}
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode("utf-8"))


# ------------------------------------------------------------------------- exercise


def exercise_payload(lesson: Lesson) -> dict[str, Any]:
    return {
        "format": "ketang-exercise/1",
        "questions": [
            {
                "id": f"q{n}",
                "prompt": bilingual(question.prompt),
                "choices": [bilingual(choice) for choice in question.choices],
                "answer": question.answer,
            }
            for n, question in enumerate(lesson.questions, start=1)
        ],
    }


# ---------------------------------------------------------------------- source.json


def resource_nodes(lesson_id: str, stem: str) -> list[dict[str, Any]]:
    kinds = (
        ("video", ("微课视频", "Video lesson"), ".mp4"),
        ("pdf", ("学习任务单", "Task sheet"), ".pdf"),
        ("html5", ("互动练习", "Interactive"), ".zip"),
        ("exercise", ("课后练习", "Exercise"), ".exercise.json"),
    )
    nodes = []
    for kind, title, suffix in kinds:
        node: dict[str, Any] = {
            "id": f"{lesson_id}-{kind}",
            "kind": kind,
            "title": bilingual(title),
            "file": f"media/{stem}{suffix}",
        }
        if kind == "video":
            node["duration"] = float(VIDEO_SECONDS)
        nodes.append(node)
    return nodes


def node(node_id: str, kind: str, title: Text, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": node_id, "kind": kind, "title": bilingual(title), "children": children}


def course_node(grade_id: str, grade: Grade, course: Course) -> dict[str, Any]:
    subject_id = f"{grade_id}-{course.key}"
    edition_id = f"{subject_id}-{course.edition_key}"
    volume_id = f"{edition_id}-v1"
    unit_id = f"{volume_id}-u{course.unit_no}"
    lessons = []
    for number, lesson in enumerate(course.lessons, start=1):
        lesson_id = f"{unit_id}-l{number}"
        lessons.append({
            "id": lesson_id,
            "kind": "lesson",
            "title": bilingual(lesson.title),
            "description": bilingual(lesson.description),
            "resources": resource_nodes(lesson_id, media_stem(grade, course, number)),
        })
    unit = node(unit_id, "unit", course.unit, lessons)
    volume = node(volume_id, "volume", course.volume, [unit])
    edition = node(edition_id, "edition", course.edition, [volume])
    return node(subject_id, "subject", course.subject, [edition])


def source_document() -> dict[str, Any]:
    grades = []
    for grade in GRADES:
        grade_id = f"primary-{grade.key}"
        courses = [course_node(grade_id, grade, course) for course in grade.courses]
        grades.append(node(grade_id, "grade", grade.title, courses))
    return {
        "format": "ketang-source/1",
        "title": {"zh": "国家中小学智慧教育平台 · 示例课程（演示用）",
                  "en": "Sample lessons (demo only)"},
        "nodes": [node("primary", "stage", ("小学", "Primary"), grades)],
    }


# ------------------------------------------------------------------------ checking


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def check_video(path: Path) -> list[str]:
    info = probe(path)
    codecs = sorted(stream["codec_name"] for stream in info["streams"])
    problems = [] if codecs == ["aac", "h264"] else [f"{path.name}: streams {codecs}"]
    duration = float(info["format"]["duration"])
    if abs(duration - VIDEO_SECONDS) > 0.1:
        problems.append(f"{path.name}: duration {duration}")
    return problems


def check_resource(path: Path, kind: str) -> list[str]:
    if not path.is_file():
        return [f"missing {path}"]
    if kind == "video":
        return check_video(path)
    if kind == "pdf":
        return [] if path.read_bytes().startswith(b"%PDF") else [f"{path.name}: not a PDF"]
    if kind == "html5":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            blob = b"".join(archive.read(name) for name in names)
        problems = [] if "index.html" in names else [f"{path.name}: no index.html"]
        if b"http:" in blob or b"https:" in blob or b"//" + b"cdn" in blob:
            problems.append(f"{path.name}: contains an external URL")
        return problems
    payload = json.loads(path.read_text(encoding="utf-8"))
    return [
        f"{path.name}: bad answer in {question['id']}"
        for question in payload["questions"]
        if not 0 <= question["answer"] < len(question["choices"])
    ]


def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in nodes:
        found.append(item)
        found.extend(walk(item.get("children", [])))
        found.extend(item.get("resources", []))
    return found


def check_pack(out: Path) -> list[str]:
    document = json.loads((out / "source.json").read_text(encoding="utf-8"))
    entries = walk(document["nodes"])
    ids = [entry["id"] for entry in entries]
    problems = [] if len(ids) == len(set(ids)) else ["duplicate ids"]
    hashes: dict[str, str] = {}
    for entry in entries:
        if "file" not in entry:
            continue
        path = out / entry["file"]
        problems += check_resource(path, entry["kind"])
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if entry["kind"] != "html5" and digest in hashes:
                problems.append(f"{path.name} has the same content as {hashes[digest]}")
            hashes[digest] = path.name
    total = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    if total > SIZE_BUDGET:
        problems.append(f"pack is {total} bytes, over the {SIZE_BUDGET} byte budget")
    print(f"checked {len(entries)} nodes; pack size {total / 1024:.0f} KiB")
    return problems


# ---------------------------------------------------------------------------- main


def build(out: Path, font: Path | None) -> None:
    media = out / "media"
    if media.exists():
        shutil.rmtree(media)
    media.mkdir(parents=True)
    pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
    with tempfile.TemporaryDirectory(prefix="ketang-pack-") as tmp:
        for index, (grade, course, number, lesson) in enumerate(iter_lessons()):
            stem = media_stem(grade, course, number)
            print(f"{stem}: {lesson.title[0]}")
            make_video(media / f"{stem}.mp4", index, grade, course, lesson, font, Path(tmp))
            make_pdf(media / f"{stem}.pdf", grade, course, lesson)
            make_zip(media / f"{stem}.zip", lesson)
            write_json(media / f"{stem}.exercise.json", exercise_payload(lesson))
    write_json(out / "source.json", source_document())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="pack folder")
    parser.add_argument("--font", type=Path, help="CJK font file for the video captions")
    parser.add_argument("--check-only", action="store_true", help="only check an existing pack")
    args = parser.parse_args(argv)

    if not args.check_only:
        font = find_font(args.font)
        if font is None:
            print("warning: no CJK font found; videos will have no captions", file=sys.stderr)
        build(args.out, font)
    problems = check_pack(args.out)
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
