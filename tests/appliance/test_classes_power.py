"""The classes database through power cuts: a process adding classes and marking lessons
is killed (SIGKILL) at random moments; every time, the database opens, passes SQLite's
integrity check, and holds every change whole or not at all."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from appliance.classes.store import ClassesDB

WRITER = """
import sys
from appliance.classes.store import ClassesDB
db = ClassesDB(sys.argv[1])
i = len(db.all())
while True:
    i += 1
    k = db.add(f"({i})班", "ch", "node", "一年级", "数学", "人教版")
    db.mark(k.id, "ch", f"lesson-{i}", True)
    db.record_parts([(k.id, "ch", f"lesson-{i}", "r1", "2026-11-30T01:00:00.000Z")], i,
                    {(k.id, "ch", f"lesson-{i}"): ["r1"]})
    print(i, flush=True)
"""


@pytest.mark.slow
def test_killed_writers_leave_the_classes_database_whole(tmp_path):
    rng = random.Random(19)
    done: list[int] = []
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        done.append(int(proc.stdout.readline()))     # it has started writing
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done += [int(line) for line in proc.stdout.read().split()]
        raw = sqlite3.connect(tmp_path / "classes.db")
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        raw.close()
        db = ClassesDB(tmp_path)
        by_name = {k.name: k for k in db.all()}
        for i in done:                      # every step it reported is there, whole
            k = by_name[f"({i})班"]
            assert k.label() == f"一年级({i})班 · 数学 · 人教版"
            assert db.taught(k.id)[("ch", f"lesson-{i}")][0] is True
        db.close()
    assert len(done) > 6
