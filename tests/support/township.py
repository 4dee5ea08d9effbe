"""A township in network namespaces: N schools on one bridged LAN, each behind its own
emulated satellite uplink to one national mirror.

Used by the slow test (tests/appliance/test_sync_township.py) and bench/township.py.
Every packet stays in namespaces made here (root only):

- ``<tag>-lan``: the township's LAN, a bridge (multicast snooping off, so zeroconf's
  multicast reaches every school) that each school's ``lan0`` is plugged into;
- ``<tag>-mirror``: the national mirror (nginx, or tests/support/webseed.py) on its
  127.0.0.1:8081, with one veth per school: ``w<i>`` (198.19.<i>.1/30) ↔ the school's
  ``wan0`` (198.19.<i>.2/30). The satellite is a link emulator per school
  (tests/support/linkemu.py: ``rate`` each way, ``latency`` one way) listening on
  198.19.<i>.1:8080 (this kernel has no netem);
- ``<tag>-s<i>``: school i, ``lan0`` 10.21.0.<10+i>/24 and ``wan0``; `ketang serve` runs
  there (``ip netns exec``) with its feed at ``http://198.19.<i>.1:8080/``.

:meth:`Township.mirror_egress` is what the mirror sent to all schools (its veths'
transmit counters), so the mirror's egress is measured, not estimated.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..helpers import stop_process

ROOT = Path(__file__).resolve().parents[2]
MIRROR_PORT = 8080       # each school's uplink (a link emulator) to the mirror
FILES_PORT = 8081        # the mirror's file server, on the mirror's own loopback
LAN_PREFIX = "10.21.0."


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True,
                          timeout=30)


def give_release(data_dir: Path, bundle: Path, channel: str, version: int,
                 trusted: Path) -> None:
    """Make ``version`` of ``channel`` in ``bundle`` the active release of a device at
    ``data_dir``: its blobs hard-linked from the bundle (no copies), then activated."""
    from content_cache.blobstore import blob_relpath
    from content_cache.bundle import bundle_root, find_releases
    from content_cache.importer import verify_release
    from content_cache.keys import load_trusted_keys
    from content_cache.library import Library

    found = next(r for r in find_releases(bundle_root(bundle))
                 if (r.channel, r.version) == (channel, version))
    manifest, data, sig, _ = verify_release(found, load_trusted_keys(trusted))
    lib = Library(data_dir)
    for sha in manifest.blobs():
        dst = lib.store.path_for(sha)
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(bundle / "KETANG" / blob_relpath(sha), dst)
    with lib.exclusive():
        lib.activate(manifest, data, sig)


def missing_tools(mirror: str = "python") -> str | None:
    """Why a township cannot be built here (None when it can)."""
    if os.geteuid() != 0:
        return "the township needs root (network namespaces)"
    need = ["ip"] + (["nginx"] if mirror == "nginx" else [])
    gone = [c for c in need if shutil.which(c) is None]
    if gone:
        return f"the township needs {', '.join(gone)}"
    return None


class Township:
    """Build with ``with Township(work, n) as t:``; everything is removed afterwards."""

    def __init__(self, work: Path, n: int, *, rate: float = 4_000_000 / 8,
                 latency: float = 0.3, mirror: str = "python") -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.n = n
        self.rate = rate
        self.latency = latency
        self.mirror_kind = mirror
        self.tag = "kt" + secrets.token_hex(2)
        self.lan_ns = f"{self.tag}-lan"
        self.mirror_ns = f"{self.tag}-mirror"
        self.schools = [f"{self.tag}-s{i}" for i in range(n)]
        self.procs: dict[int, subprocess.Popen] = {}
        self._mirror: subprocess.Popen | None = None
        self._uplinks: subprocess.Popen | None = None
        self._made: list[str] = []

    # -- network -----------------------------------------------------------------------

    def __enter__(self) -> Township:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._netns(self.lan_ns)
        self._netns(self.mirror_ns)
        _ip("-n", self.lan_ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        _ip("-n", self.lan_ns, "link", "set", "br0", "up")
        for i, ns in enumerate(self.schools):
            self._netns(ns)
            # The LAN: lan0 in the school, its peer on the bridge.
            _ip("-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", f"l{i}",
                "netns", self.lan_ns)
            _ip("-n", self.lan_ns, "link", "set", f"l{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.lan_address(i)}/24", "dev", "lan0")
            _ip("-n", ns, "link", "set", "lan0", "up")
            # The uplink: wan0 in the school, w<i> in the mirror.
            _ip("-n", ns, "link", "add", "wan0", "type", "veth", "peer", "name", f"w{i}",
                "netns", self.mirror_ns)
            _ip("-n", ns, "addr", "add", f"198.19.{i}.2/30", "dev", "wan0")
            _ip("-n", self.mirror_ns, "addr", "add", f"198.19.{i}.1/30", "dev", f"w{i}")
            _ip("-n", ns, "link", "set", "wan0", "up")
            _ip("-n", self.mirror_ns, "link", "set", f"w{i}", "up")

    def lan_address(self, i: int) -> str:
        """School i's address on the township LAN."""
        return f"{LAN_PREFIX}{10 + i}"

    def feed_url(self, i: int) -> str:
        """The mirror as school i reaches it, over its own uplink."""
        return f"http://198.19.{i}.1:{MIRROR_PORT}/"

    def _counters(self, ns: str, prefix: str, stat: str) -> int:
        """The sum of ``stat`` over the interfaces ``<prefix>0…<prefix>N-1`` in ``ns``."""
        paths = [f"/sys/class/net/{prefix}{i}/statistics/{stat}" for i in range(self.n)]
        out = subprocess.run(["ip", "netns", "exec", ns, "cat", *paths],
                             capture_output=True, text=True, check=True, timeout=10)
        return sum(int(x) for x in out.stdout.split())

    def mirror_egress(self) -> int:
        """Bytes the mirror sent to all schools (its veths' transmit counters)."""
        return self._counters(self.mirror_ns, "w", "tx_bytes")

    def lan_bytes(self) -> int:
        """Bytes carried on the township LAN (what the bridge's ports received)."""
        return self._counters(self.lan_ns, "l", "rx_bytes")

    # -- the mirror ----------------------------------------------------------------------

    def start_mirror(self, root: Path) -> None:
        """Serve ``root`` (a folder holding KETANG/) on every mirror address, port 8080."""
        log = open(self.work / "mirror.log", "w")
        if self.mirror_kind == "nginx":
            tmp = self.work / "nginx"
            for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
                (tmp / d).mkdir(parents=True, exist_ok=True)
            conf = tmp / "nginx.conf"
            conf.write_text(f"""user root;
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  default_type application/octet-stream;
  server {{ listen 127.0.0.1:{FILES_PORT}; root {root}; }}
}}
""")
            cmd = ["nginx", "-c", str(conf), "-p", str(tmp)]
        else:
            cmd = [sys.executable, "-m", "tests.support.webseed", str(root), "127.0.0.1",
                   str(FILES_PORT)]
        self._mirror = subprocess.Popen(["ip", "netns", "exec", self.mirror_ns, *cmd],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self._uplinks = subprocess.Popen(
            ["ip", "netns", "exec", self.mirror_ns, sys.executable, "-m",
             "tests.support.township", str(self.n), str(self.rate), str(self.latency)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = subprocess.run(["ip", "netns", "exec", self.mirror_ns, sys.executable,
                                    "-c", "import socket\nfor a in [('127.0.0.1', "
                                    f"{FILES_PORT}), ('198.19.{self.n - 1}.1', "
                                    f"{MIRROR_PORT})]:\n socket.create_connection(a, 1)"],
                                   capture_output=True, timeout=10)
            if probe.returncode == 0:
                return
            assert self._mirror.poll() is None, (self.work / "mirror.log").read_text()
            assert self._uplinks.poll() is None, (self.work / "mirror.log").read_text()
            time.sleep(0.2)
        raise AssertionError("the mirror did not start: "
                             + (self.work / "mirror.log").read_text())

    # -- schools -------------------------------------------------------------------------

    def school_config(self, i: int, trusted: Path, *, zeroconf: bool = True,
                      **sync: Any) -> Path:
        """Write school i's ketang.toml; returns its path. ``sync`` overrides [sync] keys;
        ``zeroconf=False`` leaves the school without neighbours (each school alone, as
        before a township shared its satellite)."""
        d = self.work / f"school{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        addr = self.lan_address(i)
        opts: dict[str, Any] = {
            "enabled": True, "feeds": [self.feed_url(i)], "listen_interfaces": "0.0.0.0:6881",
            "lsd": False, "poll_interval": 5, "resume_interval": 2,
            "status_file": str(d / "sync.json"), **sync}
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in opts.items())
        conf = d / "ketang.toml"
        conf.write_text(
            f'[device]\ndata_dir = "{d / "data"}"\nid = "school-{i:02d}"\n'
            f'name = "Ketang school {i:02d}"\nreserve_mb = 0\n\n'
            f'[trust]\nkeys_dir = "{trusted}"\n\n'
            f'[server]\nhost = "{addr}"\nport = 8000\n\n'
            f'[zeroconf]\nenabled = {json.dumps(zeroconf)}\ninterfaces = ["{addr}"]\n\n'
            f'[sync]\n{body}\n', encoding="utf-8")
        return conf

    def data_dir(self, i: int) -> Path:
        return self.work / f"school{i:02d}" / "data"

    def status(self, i: int) -> dict[str, Any]:
        try:
            return json.loads((self.work / f"school{i:02d}" / "sync.json").read_text())
        except (OSError, ValueError):
            return {}

    def start_school(self, i: int) -> None:
        """`ketang serve` in school i's namespace (log in the school's folder)."""
        conf = self.work / f"school{i:02d}" / "ketang.toml"
        log = open(self.work / f"school{i:02d}" / "serve.log", "a")
        self.procs[i] = subprocess.Popen(
            ["ip", "netns", "exec", self.schools[i], sys.executable, "-m", "appliance",
             "--config", str(conf), "serve", "--apps-port", "0"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill_school(self, i: int, sig: int = signal.SIGKILL) -> None:
        """Stop school i's `ketang serve` (SIGKILL: no goodbye on zeroconf)."""
        proc = self.procs.pop(i, None)
        if proc is not None:
            stop_process(proc, sig, timeout=20)

    def close(self) -> None:
        """Stop every process started here and remove every namespace made here."""
        for proc in self.procs.values():  # every thread's stack into serve.log (diagnosis)
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5 if self.procs else 0)
        for i in list(self.procs):
            self.kill_school(i, signal.SIGTERM)
        for proc in (self._uplinks, self._mirror):
            if proc is not None:
                stop_process(proc)
        self._mirror = self._uplinks = None
        for ns in reversed(self._made):
            _ip("netns", "del", ns, check=False)
        self._made = []


def run_uplinks(n: int, rate: float, latency: float) -> None:
    """In the mirror's namespace: one link emulator per school, 198.19.<i>.1:8080 →
    the file server on 127.0.0.1:8081, until killed."""
    from .linkemu import LinkEmulator

    links = [LinkEmulator(("127.0.0.1", FILES_PORT), rate=rate, latency=latency,
                          listen=(f"198.19.{i}.1", MIRROR_PORT)).start() for i in range(n)]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    finally:
        for link in links:
            link.stop()


if __name__ == "__main__":  # python -m tests.support.township N RATE LATENCY
    run_uplinks(int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
