"""A real xAPI LRS for tests: Ralph (as `ralph runserver -b fs`) on a free loopback port.

Users come from `ralph auth`; the server is started by lrs_ralph_server.py (why: there).

Ralph lives in its own virtualenv, ``.venv-ralph``, which ``make test`` creates. Where it
could not be installed, tests that need it are skipped saying so (in CI they fail).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RALPH = ROOT / ".venv-ralph" / "bin" / "ralph"


def ralph_missing() -> str:
    """Why Ralph cannot run here ('' when it can)."""
    if RALPH.exists():
        return ""
    return (f"Ralph (the LRS) is not installed at {RALPH}; `make test` installs it "
            "(`make .venv-ralph/.installed`)")


@dataclass
class Lrs:
    """A running LRS: its xAPI endpoint and Basic credentials."""

    url: str
    username: str
    password: str

    def _get(self, url: str) -> dict:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}",
                                                   "X-Experience-API-Version": "1.0.3"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def statements(self) -> list[dict]:
        """Every statement the LRS holds (following its ``more`` links)."""
        out: list[dict] = []
        base = self.url.split("/xAPI/")[0]
        url = self.url + "statements?limit=500"
        while url:
            doc = self._get(url)
            out += doc["statements"]
            more = doc.get("more")
            url = base + more if more else ""
        return out


@contextmanager
def running_ralph(workdir: Path, timeout: float = 60.0) -> Iterator[Lrs]:
    """Start Ralph with a fresh file store and a fresh user; yield its :class:`Lrs`."""
    workdir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_hex(8)
    env = {**os.environ, "RALPH_APP_DIR": str(workdir / "app"),
           "RALPH_AUTH_FILE": str(workdir / "auth.json"), "RALPH_RUNSERVER_BACKEND": "fs",
           "RALPH_LRS_RESTRICT_BY_AUTHORITY": "false"}
    subprocess.run([str(RALPH), "auth", "-u", "ketang", "-p", password, "-s", "all",
                    "-A", "ketang", "http://district.test", "-w"], env=env, check=True,
                   capture_output=True, cwd=workdir)
    # The port is bound here and the listening socket handed to Ralph, so no other
    # process can take it between choosing and binding (as bind-then-close allows).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        log = open(workdir / "ralph.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [str(RALPH.with_name("python")),
             str(Path(__file__).with_name("lrs_ralph_server.py")),
             str(listener.fileno()), str(workdir / "store")],
            env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=(listener.fileno(),))
    lrs = Lrs(f"http://127.0.0.1:{port}/xAPI/", "ketang", password)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                lrs.statements()
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("Ralph did not start:\n" + (
                        workdir / "ralph.log").read_text(errors="replace")) from None
                time.sleep(0.2)
        yield lrs
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.close()
