"""How well "others went on to" predicts the next lesson, on a synthetic usage log.

    .venv/bin/python bench/recommend.py [--runs 3] [--schools 40] [--lessons 40]

The log has a known structure. A curriculum of 6 subjects × ``--lessons`` lessons, in
teaching order. Each lesson has a hidden *companion* in another subject (what teachers
pair it with nationally); the test school pairs a third of its lessons with companions
of its own. From a lesson, a learner goes on to the curriculum's next lesson (45 %),
its companion (35 %), or a popular lesson anywhere (20 %, Zipf); a session opens 5–15
lessons starting from a popular one.

The national table is counted with the device's own code
(:class:`appliance.usage.cousage.Counter`) from ``--schools`` schools' logs; the test
school's first half of tablets build its own table, and its second half is the test:
for each move A → B, is B among the 5 lessons a method offers after A (hit rate at 5)?

Methods, side by side: most popular (top 5 opened), curriculum order only (the next
5), national co-usage only, and what the device does (school + national blended,
:func:`appliance.usage.cousage.blend`). Also the whole "what next" block a page shows
(3 next in the course + 5 others: 8 links, so not comparable at 5) and an oracle that
knows the structure (its curriculum next + companion, the ceiling at 5 apart from the
20 % random moves). Medians over the runs. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections import Counter as Tally
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.usage.cousage import Counter, blend  # noqa: E402

SUBJECTS = 6
K = 5


class World:
    """The hidden structure of one synthetic log."""

    def __init__(self, rng: random.Random, per_subject: int) -> None:
        self.lessons = [f"s{s}-l{i:03d}" for s in range(SUBJECTS) for i in range(per_subject)]
        self.order = {lesson: i for i, lesson in enumerate(self.lessons)}
        n = len(self.lessons)
        self.weights = [1 / (1 + rng.randrange(n)) ** 0.8 for _ in range(n)]

        def companions() -> dict[str, str]:
            out = {}
            for lesson in self.lessons:
                s = int(lesson[1])
                other = rng.choice([x for x in range(SUBJECTS) if x != s])
                out[lesson] = f"s{other}-l{rng.randrange(per_subject):03d}"
            return out

        self.national = companions()
        local = companions()
        self.school = {k: (local[k] if rng.random() < 1 / 3 else v)
                       for k, v in self.national.items()}

    def next_in_course(self, lesson: str, k: int) -> list[str]:
        i = self.order[lesson]
        return self.lessons[i + 1:i + 1 + k]

    def session(self, rng: random.Random, companion: dict[str, str]) -> list[str]:
        here = rng.choices(self.lessons, self.weights)[0]
        out = [here]
        for _ in range(rng.randint(4, 14)):
            r = rng.random()
            nxt = self.next_in_course(here, 1)
            if r < 0.45 and nxt:
                here = nxt[0]
            elif r < 0.80:
                here = companion[here]
            else:
                here = rng.choices(self.lessons, self.weights)[0]
            if here != out[-1]:
                out.append(here)
        return out


def count(sessions: list[list[str]]) -> Counter:
    c = Counter()
    for i, s in enumerate(sessions):
        for lesson in s:
            c.add(f"t{i}", lesson)
    return c


def run(seed: int, schools: int, per_subject: int) -> dict[str, float]:
    rng = random.Random(seed)
    w = World(rng, per_subject)
    national_sessions = [w.session(rng, w.national) for _ in range(schools * 60)]
    school_sessions = [w.session(rng, w.school) for _ in range(120)]
    train, test = school_sessions[:60], school_sessions[60:]
    national = count(national_sessions).table()
    local = count(train).pairs
    opened = Tally(x for s in national_sessions + train for x in s)
    popular = [x for x, _ in opened.most_common(K + 1)]

    methods = {
        "most popular": lambda a: [x for x in popular if x != a][:K],
        "curriculum order only": lambda a: w.next_in_course(a, K),
        "national co-usage only": lambda a: blend({}, national.get(a, []), {a}, K),
        "device: school + national": lambda a: blend(local.get(a, {}), national.get(a, []),
                                                     {a}, K),
        "page block (3 next + 5 others, 8 links)": lambda a: (
            w.next_in_course(a, 3) + blend(local.get(a, {}), national.get(a, []),
                                           {a} | set(w.next_in_course(a, 1)), K)),
        "oracle (knows the structure)": lambda a: w.next_in_course(a, 1) + [w.school[a]],
    }
    hits = dict.fromkeys(methods, 0)
    moves = 0
    for s in test:
        for a, b in zip(s, s[1:], strict=False):
            moves += 1
            for name, offer in methods.items():
                hits[name] += b in offer(a)
    return {name: h / moves for name, h in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--schools", type=int, default=40)
    ap.add_argument("--lessons", type=int, default=40, help="lessons per subject")
    args = ap.parse_args()
    results = [run(seed, args.schools, args.lessons) for seed in range(args.runs)]
    print(f"{SUBJECTS * args.lessons} lessons, {args.schools} schools × 60 sessions "
          f"nationally, test school 60 + 60 sessions; hit rate at {K}, median of "
          f"{args.runs} runs (each run's figures after it)")
    for name in results[0]:
        values = [r[name] for r in results]
        print(f"  {name:42s} {statistics.median(values):6.1%}   "
              + " ".join(f"{v:.1%}" for v in values))


if __name__ == "__main__":
    main()
