"""Software updates over BitTorrent (appliance/sync/software.py), with real libtorrent and
real RAUC bundles (a small payload, signed by a test update CA).

- In network namespaces the test makes: a mirror (web seed), device A that reaches only
  the mirror and device B that reaches only A. A fetches the update from the web seed, B
  from A as a LAN peer; each has RAUC verify the file before anything else reads it.
- On loopback: the fetch waits outside the transfer windows and when the daily quota is
  spent, then completes; a bundle signed by a key the device does not trust is fetched,
  refused by RAUC in one line and removed from the spool; a bad index is one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from appliance.sync.schedule import Quota, parse_windows
from appliance.sync.software import (
    Offer,
    SoftwareError,
    SoftwareFetch,
    choose,
    make_bundle_torrent,
    read_offers,
    spool_dir,
    window_gate,
    write_software_index,
)
from content_cache.transfer import make_session
from provisioning.update import Device, UpdateError

from ..support import needs
from ..support.webseed import web_seed

REPO = Path(__file__).resolve().parents[2]


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    needs.require(f"missing: {', '.join(missing)} (make system-deps)" if missing else None)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Path, Path]:
    _require("rauc", "mksquashfs", "openssl")
    base = tmp_path_factory.mktemp("keys")
    for name in ("ours", "stranger"):
        subprocess.run(["bash", str(REPO / "image-build/update-keys.sh"), str(base / name),
                        name], check=True, capture_output=True)
    return base / "ours", base / "stranger"


def make_bundle(folder: Path, keys: Path, version: str, mib: int = 3) -> Path:
    """A real RAUC bundle (verity) of ``mib`` MiB, with the .raucb.json make update-bundle
    writes beside it."""
    content = folder / f"content-{version}-{keys.name}"
    content.mkdir(parents=True)
    (content / "root.img").write_bytes(os.urandom(mib * 2**20))
    (content / "manifest.raucm").write_text(
        f"[update]\ncompatible=ketang-amd64\nversion={version}\n\n[bundle]\nformat=verity\n\n"
        "[image.rootfs]\nfilename=root.img\n")
    out = folder / f"ketang-{version}-amd64.raucb"
    subprocess.run(["rauc", "bundle", f"--cert={keys / 'signer.pem'}",
                    f"--key={keys / 'signer.key'}", str(content), str(out)], check=True,
                   capture_output=True)
    shutil.rmtree(content)
    Path(f"{out}.json").write_text(json.dumps({"version": version, "kind": "whole-os",
                                               "compatible": "ketang-amd64"}))
    return out


def device_files(where: Path, ca: Path, running: str = "0.1.0") -> Device:
    """A device's RAUC system.conf (trusting ``ca``), image.env and data folder."""
    where.mkdir(parents=True)
    conf = where / "system.conf"
    conf.write_text(
        "[system]\ncompatible=ketang-amd64\nbootloader=custom\nbundle-formats=-plain\n"
        f"data-directory={where / 'rauc'}\n\n[handlers]\nbootloader-custom-backend=/bin/false"
        f"\n\n[keyring]\npath={ca}\ncheck-purpose=codesign\n\n"
        "[slot.rootfs.0]\ndevice=/dev/null\ntype=raw\nbootname=a\n")
    env = where / "image.env"
    env.write_text(f"KETANG_IMAGE_VERSION={running}\n")
    return Device(rauc_conf=conf, image_env=env, data_dir=where / "data")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- choosing what to fetch ---------------------------------------------------------------

def offer(version: str, kind: str = "whole-os", base: str = "",
          compatible: str = "ketang-amd64") -> Offer:
    return Offer(name=f"ketang-{version}-{kind}.raucb", version=version, compatible=compatible,
                 kind=kind, base_version=base, size=1, torrent_url="http://127.0.0.1/x")


def test_choose_prefers_the_app_bundle_that_patches_the_running_version():
    offers = [offer("0.2.0"), offer("0.2.0", "app", "0.1.0"), offer("0.1.5"),
              offer("0.3.0", compatible="ketang-arm64-rpi4"), offer("bogus")]
    assert choose(offers, "ketang-amd64", "0.1.0") == offers[1]
    assert choose(offers, "ketang-amd64", "0.1.5") == offers[0]    # the patch is not for it
    assert choose(offers, "ketang-amd64", "0.2.0") is None          # nothing newer
    assert choose(offers, "ketang-arm64-rpi4", "0.2.0") == offers[3]


# --- loopback: windows, quota, refusals -----------------------------------------------------

def test_fetch_waits_for_its_window_and_quota_and_rauc_refuses_an_unknown_signer(
        tmp_path, keys):
    ours, stranger = keys
    feed = tmp_path / "feed"
    good = make_bundle(feed / "software", ours, "0.2.0")
    device = device_files(tmp_path / "device", ours / "update-ca.pem")
    now = [datetime(2026, 11, 30, 0, 30)]
    uplink = [0]
    quota = Quota(5_000_000, lambda: uplink[0], tmp_path / "quota.json", lambda: now[0],
                  boot_time=lambda: 1.0)
    gate = window_gate(parse_windows(["01:00-06:00"]), quota, lambda: now[0])
    session = make_session("127.0.0.1:0")
    with web_seed(feed) as (url, requests):
        write_software_index(feed, web_seed=url + "software/")
        offers = read_offers(url)
        assert [o.version for o in offers] == ["0.2.0"]
        torrent = (feed / "software" / f"{good.name}.torrent").read_bytes()
        fetch = SoftwareFetch(session, torrent, spool_dir(device.data_dir), gate=gate)
        fetch.start()
        for _ in range(15):                      # outside the window: nothing moves
            assert not fetch.poll()
            time.sleep(0.2)
        assert fetch.waiting == "window" and fetch.progress()["done"] == 0
        assert not any("raucb" in r for r in requests)
        now[0] = datetime(2026, 11, 30, 2, 0)    # in the window, but the quota is spent
        uplink[0] = 6_000_000
        for _ in range(10):
            assert not fetch.poll()
            time.sleep(0.2)
        assert fetch.waiting == "quota" and fetch.progress()["done"] == 0
        now[0] = datetime(2026, 12, 1, 2, 0)     # a new day: the quota starts again
        path = fetch.run(timeout=120)
        assert fetch.waiting == "" and sha(path) == sha(good)
        bundle = fetch.verified(device)
        assert bundle.version == "0.2.0" and bundle.path == path

    # A bundle signed by a stranger travels fine, and RAUC refuses it on arrival.
    other = tmp_path / "other"
    bad = make_bundle(other / "software", stranger, "0.3.0")
    with web_seed(other) as (url, _):
        write_software_index(other, web_seed=url + "software/")
        torrent = (other / "software" / f"{bad.name}.torrent").read_bytes()
        fetch = SoftwareFetch(session, torrent, spool_dir(device.data_dir))
        path = fetch.run(timeout=120)
        with pytest.raises(UpdateError, match="does not trust") as e:
            fetch.verified(device)
        assert "\n" not in str(e.value)
        assert not path.exists()


def test_a_bad_index_or_torrent_is_one_line_and_fetches_nothing(tmp_path):
    feed = tmp_path / "feed"
    (feed / "software").mkdir(parents=True)
    (feed / "software" / "index.json").write_text('{"software": [{"name": 1}]}')
    with web_seed(feed) as (url, _):
        with pytest.raises(SoftwareError, match="Not a software index") as e:
            read_offers(url)
        assert "\n" not in str(e.value)
        assert read_offers(url + "nothing-here/") == []            # no software channel
    session = make_session("127.0.0.1:0")
    with pytest.raises(SoftwareError, match="Not a torrent"):
        SoftwareFetch(session, b"d4:spam", tmp_path / "spool")
    lesson = tmp_path / "lesson.mp4"
    lesson.write_bytes(b"x" * 100_000)
    with pytest.raises(SoftwareError, match="not one update bundle"):
        SoftwareFetch(session, make_bundle_torrent(lesson), tmp_path / "spool")
    with pytest.raises(SoftwareError, match="must be an http"):
        make_bundle_torrent(lesson, ["ftp://mirror/"])
    assert not (tmp_path / "spool").exists()


# --- network namespaces: mirror → device A (web seed) → device B (LAN peer) ------------------

def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextmanager
def three_namespaces() -> Iterator[dict[str, str]]:
    """mirror ─ A ─ B on two veth links; B has no route to the mirror. (Each node listens
    on one address: libtorrent gives every interface of 0.0.0.0:0 its own port.)"""
    _require("ip")
    needs.require("network namespaces need root" if os.geteuid() != 0 else None)
    tag = secrets.token_hex(3)
    ns = {n: f"ketang-{n}-{tag}" for n in ("mirror", "a", "b")}
    made: list[str] = []
    try:
        for name in ns.values():
            _ip("netns", "add", name)
            made.append(name)
        links = [("mirror", "10.231.1.1", "a", "10.231.1.2", f"km{tag}", f"ka{tag}"),
                 ("a", "10.231.2.1", "b", "10.231.2.2", f"kb{tag}", f"kc{tag}")]
        for left, lip, right, rip, lif, rif in links:
            _ip("link", "add", lif, "type", "veth", "peer", "name", rif)
            for n, ifname, addr in ((left, lif, lip), (right, rif, rip)):
                _ip("link", "set", ifname, "netns", ns[n])
                _ip("-n", ns[n], "addr", "add", f"{addr}/24", "dev", ifname)
                _ip("-n", ns[n], "link", "set", ifname, "up")
                _ip("-n", ns[n], "link", "set", "lo", "up")
        yield ns
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


@contextmanager
def node(ns: str, log: Path, *args: str) -> Iterator[subprocess.Popen]:
    """tests/support/software_node.py in namespace ``ns``; stopped by closing its stdin."""
    with log.open("w") as err:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m",
                                 "tests.support.software_node", *args], cwd=REPO,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True)
    try:
        yield proc
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_line(proc: subprocess.Popen, log: Path) -> str:
    """The node's next line of output (it prints a few, then waits; its own timeouts end
    it, and so this read, when something hangs)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"the node said nothing (exit {proc.poll()}):\n{log.read_text()[-3000:]}"
    return line.strip()


def test_update_from_a_web_seed_then_from_a_lan_peer_in_namespaces(tmp_path, keys):
    ours, _ = keys
    feed = tmp_path / "feed"
    bundle = make_bundle(feed / "software", ours, "0.2.0", mib=6)
    dev_a = device_files(tmp_path / "a", ours / "update-ca.pem")
    dev_b = device_files(tmp_path / "b", ours / "update-ca.pem")
    with three_namespaces() as ns:
        with node(ns["mirror"], tmp_path / "mirror.log", "mirror", str(feed),
                  "10.231.1.1") as mirror:
            url = read_line(mirror, tmp_path / "mirror.log").split()[-1]
            write_software_index(feed, web_seed=url + "software/")
            t = time.monotonic()
            with node(ns["a"], tmp_path / "a.log", "device", url, str(dev_a.data_dir),
                      str(dev_a.rauc_conf), str(dev_a.image_env), "10.231.2.1") as a:
                got_a = json.loads(read_line(a, tmp_path / "a.log"))
                seconds_a = time.monotonic() - t
                port_a = read_line(a, tmp_path / "a.log").split()[-1]
                assert got_a["version"] == "0.2.0"
                assert sha(Path(got_a["path"])) == sha(bundle)
                # B reaches A only: the mirror (and so the web seed) is out of its reach.
                probe = subprocess.run(
                    ["ip", "netns", "exec", ns["b"], sys.executable, "-c",
                     f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"],
                    capture_output=True, text=True)
                assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()
                torrent = feed / "software" / f"{bundle.name}.torrent"
                t = time.monotonic()
                with node(ns["b"], tmp_path / "b.log", "peer", str(torrent),
                          str(dev_b.data_dir), str(dev_b.rauc_conf), str(dev_b.image_env),
                          "10.231.2.2", f"10.231.2.1:{port_a}") as b:
                    got_b = json.loads(read_line(b, tmp_path / "b.log"))
                    seconds_b = time.monotonic() - t
    assert got_b["version"] == "0.2.0"
    assert got_b["downloaded"] >= bundle.stat().st_size       # all of it from A
    assert sha(Path(got_b["path"])) == sha(bundle)
    print(f"[software] {bundle.stat().st_size} bytes: web seed → A {seconds_a:.1f} s "
          f"(with RAUC's check), A → B {seconds_b:.1f} s")
