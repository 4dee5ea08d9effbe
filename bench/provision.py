"""Provisioning speed: ``python bench/provision.py [--rounds 5]``.

Each round, into a fresh temp root: (a) a first-boot apply of the shipped example (with
an admin password and a publisher key: identity made, password hashed, every file staged
and renamed, fsynced), (b) the same apply again (nothing to do), (c) a second-boot SSID
change. The reference, measured in the same run, is the dashboard's own password hash
(``appliance.auth.set_password``), which a first boot includes. Prints medians and
ratios; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from appliance.auth import set_password
from content_cache.keys import generate_keypair
from provisioning.apply import apply
from provisioning.layout import Layout

EXAMPLE = Path(__file__).parents[1] / "provisioning" / "ketang-setup.example.toml"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_round(tmp: Path) -> dict[str, float]:
    root, boot = tmp / "root", tmp / "boot"
    (root / "var/lib/ketang").mkdir(parents=True)
    boot.mkdir()
    pem = generate_keypair(tmp / "keys", "pub").public_path.read_text()
    text = EXAMPLE.read_text(encoding="utf-8").replace("change-me-please", "our-own-key-1")
    text = text.replace('# password = "a few words make a good one"',
                        'password = "a few words make a good one"')
    text = text.replace("# update_keys = []", f"publisher_keys = ['''{pem}''']")
    (boot / "ketang-setup.toml").write_text(text, encoding="utf-8")
    layout = Layout(root=root, boot=boot)
    out = {}
    out["first_boot"] = timed(lambda: _ok(apply(layout)))
    out["again"] = timed(lambda: _ok(apply(layout)))
    (boot / "ketang-setup.toml").write_text('[wifi]\nssid = "课堂-新华"\n', encoding="utf-8")
    out["ssid_change"] = timed(lambda: _ok(apply(layout)))
    ref = tmp / "ref"
    ref.mkdir()
    out["password_hash_ref"] = timed(lambda: set_password(ref, "a few words make a good one"))
    return out


def _ok(outcome) -> None:
    assert outcome is not None and outcome.ok, outcome and outcome.problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rounds.append(one_round(Path(tmp)))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ref = med["password_hash_ref"]
    for k, v in med.items():
        print(f"{k:18s} median {v * 1000:8.1f} ms   {v / ref:5.2f} x password hash")
    print(json.dumps({k: round(v, 4) for k, v in med.items()}))


if __name__ == "__main__":
    main()
