"""Stock BitTorrent clients of Debian, run on one torrent until it is downloaded.

Each ``run_<client>(torrent, download_dir, work_dir, timeout)`` returns the seconds it
took, or raises (RuntimeError, subprocess errors) when the client stops or times out
first. They listen on 127.0.0.1 only, with DHT, local peer discovery, PEX, UPnP/NAT-PMP
off; bench/sync_clients.py also runs them in a network namespace of their own.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a client that must be told its listening port
    (these clients cannot be handed a bound socket; a clash only fails one test run)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(folder: Path) -> set[str]:
    """Every file under ``folder``, relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def run_aria2(torrent: Path, dl: Path, work: Path, timeout: float = 300) -> float:
    t0 = time.monotonic()
    subprocess.run(
        ["aria2c", "--dir", str(dl), "--seed-time=0", "--enable-dht=false",
         "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
         "--disable-ipv6=true", "--interface=127.0.0.1", f"--listen-port={free_port()}",
         "--bt-stop-timeout=120", "--summary-interval=0", "--console-log-level=error",
         "--file-allocation=none", str(torrent)],
        check=True, capture_output=True, text=True, timeout=timeout)
    return time.monotonic() - t0


def run_transmission(torrent: Path, dl: Path, work: Path, timeout: float = 300) -> float:
    cfg = work / "transmission"
    shutil.rmtree(cfg, ignore_errors=True)
    cfg.mkdir(parents=True)
    (cfg / "settings.json").write_text(json.dumps({
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
        "utp-enabled": False, "port-forwarding-enabled": False,
        "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
        "peer-port": free_port(), "rpc-enabled": False, "speed-limit-up-enabled": False,
        "speed-limit-down-enabled": False, "ratio-limit-enabled": False}))
    done = work / "transmission.done"
    done.unlink(missing_ok=True)
    script = work / "transmission-done.sh"
    script.write_text(f"#!/bin/sh\ntouch {done}\n")
    script.chmod(0o755)
    t0 = time.monotonic()
    proc = subprocess.Popen(["transmission-cli", "-g", str(cfg), "-w", str(dl), "-f",
                             str(script), str(torrent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not done.exists():
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError("transmission-cli stopped or timed out before finishing")
            time.sleep(0.1)
        return time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_qbittorrent(torrent: Path, dl: Path, work: Path, timeout: float = 300) -> float:
    profile = work / "qbt"
    shutil.rmtree(profile, ignore_errors=True)
    conf = profile / "qBittorrent" / "config"
    conf.mkdir(parents=True)
    webui = free_port()
    (conf / "qBittorrent.conf").write_text(
        "[LegalNotice]\nAccepted=true\n\n"
        "[BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n"
        "Session\\PeXEnabled=false\nSession\\Interface=lo\nSession\\InterfaceName=lo\n"
        f"Session\\InterfaceAddress=127.0.0.1\nSession\\Port={free_port()}\n"
        "Session\\AddTorrentPaused=false\n\n"
        "[Network]\nPortForwardingEnabled=false\n\n"
        "[Preferences]\nConnection\\ResolvePeerCountries=false\nGeneral\\Locale=en\n"
        f"WebUI\\Address=127.0.0.1\nWebUI\\Port={webui}\nWebUI\\LocalHostAuth=false\n"
        "WebUI\\CSRFProtection=false\n")
    t0 = time.monotonic()
    proc = subprocess.Popen(["qbittorrent-nox", f"--profile={profile}",
                             f"--webui-port={webui}", f"--save-path={dl}", str(torrent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError("qbittorrent-nox stopped or timed out before finishing")
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{webui}/api/v2/torrents/info", timeout=2) as r:
                    info = json.load(r)
            except OSError:
                info = []
            if info and all(t["progress"] >= 1.0 for t in info):
                return time.monotonic() - t0
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


CLIENTS = {"aria2": run_aria2, "transmission": run_transmission,
           "qbittorrent": run_qbittorrent}


