"""The health gate: is the system that just booted good enough to keep?

``ketang-health.service`` (``RequiredBy=boot-complete.target``) runs
``ketang update health-check`` at every boot. It passes when ``ketang serve`` answers its
front page and one lesson's page, and the drive watcher runs. Then
``boot-complete.target`` is reached and ``systemd-bless-boot`` marks a slot on trial
good (amd64), or the gate has RAUC refill the slot's tries in U-Boot's environment (the
Pi 4, :func:`provisioning.update.mark_good`). When it fails on a trial boot
(:func:`provisioning.update.on_trial`) it records why on the data partition and
reboots: the boot loader has counted the try, and once a slot has none left the
previous slot boots again by itself. On a slot already good, a failure is recorded and nothing else
happens (rebooting a good system would not help a school). docs/updates.md.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

SERVE_UNIT = "ketang-serve.service"
DRIVES_UNIT = "ketang-drives.service"
# ketang serve restarted this often during one gate: it is failing, not starting.
MAX_RESTARTS = 3


@dataclass
class Verdict:
    """The gate's result: ``ok`` and the problems found (one line each)."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    """Status and body of one GET (status 0 when nothing answered)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (urllib.error.URLError, OSError):
        return 0, b""


def find_lesson_page(base: str) -> str | None:
    """The page URL of one lesson this server serves, found through its API."""
    status, body = get(urljoin(base, "/api/v1/channels"))
    if status != 200:
        return None
    try:
        channels = json.loads(body)["channels"]
    except (ValueError, KeyError, TypeError):
        return None
    for ch in channels:
        queue = [urljoin(base, ch.get("url") or f"/api/v1/channels/{ch.get('channel', '')}")]
        for _ in range(50):           # a breadth-first walk down the tree, bounded
            if not queue:
                break
            status, body = get(queue.pop(0))
            if status != 200:
                continue
            try:
                children = json.loads(body).get("children", [])
            except ValueError:
                continue
            for child in children:
                if child.get("kind") == "lesson" and child.get("page_url"):
                    return urljoin(base, child["page_url"])
                if child.get("url"):
                    queue.append(urljoin(base, child["url"]))
    return None


def unit_state(unit: str) -> dict[str, str]:
    """systemd's ActiveState, SubState and NRestarts of ``unit``."""
    proc = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState,SubState,NRestarts"],
                          capture_output=True, text=True, check=False)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def check_once(base: str, units: Callable[[str], dict[str, str]] = unit_state) -> list[str]:
    """Every problem now (empty: healthy)."""
    problems = []
    serve = units(SERVE_UNIT)
    status, _ = get(urljoin(base, "/"))
    if status != 200:
        problems.append(f"ketang serve 没有回应首页。ketang serve does not answer its front page "
                        f"(HTTP {status or 'no answer'}; unit {serve.get('ActiveState', '?')}/"
                        f"{serve.get('SubState', '?')}, restarted {serve.get('NRestarts', '?')}"
                        " times)")
    else:
        lesson = find_lesson_page(base)
        if lesson is None:
            problems.append("找不到课。ketang serve lists no lesson (no channel or an empty "
                            "catalog)")
        elif (code := get(lesson)[0]) != 200:
            problems.append(f"课页面打不开。ketang serve does not answer a lesson page "
                            f"({lesson}: HTTP {code or 'no answer'})")
    drives = units(DRIVES_UNIT)
    if drives.get("ActiveState") != "active":
        problems.append(f"U 盘监视器没有运行。The drive watcher is not running (unit "
                        f"{drives.get('ActiveState', '?')}/{drives.get('SubState', '?')})")
    return problems


def hopeless(units: Callable[[str], dict[str, str]]) -> str:
    """A reason to stop waiting: a service that keeps failing or gave up."""
    for unit in (SERVE_UNIT, DRIVES_UNIT):
        st = units(unit)
        restarts = int(st.get("NRestarts", "0") or 0)
        if st.get("ActiveState") == "failed" or restarts >= MAX_RESTARTS:
            return f"{unit} keeps failing ({st.get('ActiveState')}, restarted {restarts} times)"
    return ""


def run(base: str, timeout: float, interval: float = 3.0,
        units: Callable[[str], dict[str, str]] = unit_state,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """Check until healthy, until a service is plainly failing, or ``timeout`` seconds."""
    start = clock()
    problems: list[str] = []
    while True:
        problems = check_once(base, units)
        if not problems:
            return Verdict(True, [], clock() - start)
        stuck = hopeless(units)
        if stuck:
            return Verdict(False, problems + [stuck], clock() - start)
        if clock() - start >= timeout:
            return Verdict(False, problems + [f"not healthy within {timeout:.0f} s"],
                           clock() - start)
        sleep(interval)

