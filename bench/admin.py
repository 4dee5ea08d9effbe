"""Dashboard benchmark: ``python bench/admin.py [--rounds 30]``.

Prints medians for what a technician and the device pay: one admin password check
(scrypt, the slow hash, against a fast hash measured in the same run for scale), a
whole login round trip, and one ``/admin/status.json`` poll (every 2 s while the
dashboard is open) against ``/api/v1/health`` (the health report alone). Through
Flask's test client over the bundled sample release; figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from appliance import auth as admin_auth
from appliance.cli.demo import setup_demo
from appliance.config import Settings
from appliance.web.app import create_app

PASSWORD = "correct horse battery"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = setup_demo(Settings(), data, echo=lambda _line: None)
        admin_auth.set_password(data, PASSWORD)
        app = create_app(settings)
        client = app.test_client()

        scrypt = median_ms(lambda: admin_auth.verify_password(data, PASSWORD), args.rounds)
        fast_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1")
        fast = median_ms(lambda: check_password_hash(fast_hash, PASSWORD), args.rounds)

        def login():
            page = client.get("/admin/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            r = client.post("/admin/login", data={"csrf_token": token, "password": PASSWORD})
            assert r.status_code == 302, r.status_code

        login_ms = median_ms(login, args.rounds)
        poll = median_ms(lambda: client.get("/admin/status.json"), args.rounds)
        health = median_ms(lambda: client.get("/api/v1/health"), args.rounds)
        size = len(client.get("/admin/status.json").data)
        page = len(client.get("/admin/").data)

    print(f"password check (scrypt n=2^15 r=8): median {scrypt:.1f} ms "
          f"({scrypt / fast:.0f}x a 1-round pbkdf2 check, {fast:.3f} ms)")
    print(f"login round trip (GET form + POST): median {login_ms:.1f} ms")
    print(f"/admin/status.json poll: median {poll:.2f} ms, {size} bytes "
          f"({poll / health:.1f}x /api/v1/health at {health:.2f} ms)")
    print(f"/admin/ page: {page} bytes of HTML")


if __name__ == "__main__":
    main()
