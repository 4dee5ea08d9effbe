"""The classroom network for real, between two network namespaces this test makes: the
dnsmasq config `ketang provision --apply` rendered hands a lease to busybox's udhcpc,
answers every name with the device, and the OS connectivity probes get the captive
portal's answers from a `ketang serve` running in the device's namespace on port 80.

Nothing leaves the namespaces: the device and tablet ends of a veth pair live only there.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from provisioning.apply import apply
from provisioning.layout import Layout
from provisioning.render import captive_portal_uri
from provisioning.status import active_leases

from ..helpers import KETANG, stop_process
from ..support import needs
from .tools import require

pytestmark = pytest.mark.slow

DEVICE_IP = "10.77.0.1"
PROBES = [   # (host, path) of each OS's connectivity check (docs/captive-portal.md)
    ("connectivitycheck.gstatic.com", "/generate_204"),
    ("clients3.google.com", "/generate_204"),
    ("www.google.com", "/gen_204"),
    ("captive.apple.com", "/hotspot-detect.html"),
    ("www.apple.com", "/library/test/success.html"),
    ("www.msftconnecttest.com", "/connecttest.txt"),
    ("www.msftncsi.com", "/ncsi.txt"),
    ("detectportal.firefox.com", "/canonical.html"),
    ("www.baidu.com", "/"),
    ("anything.example", "/some/page"),
]

DHCP_SCRIPT = """#!/bin/sh
# udhcpc's script: keep what the server offered, configure the address it leased.
if [ "$1" = bound ]; then
  env > "{out}"
  ip addr add "$ip/$mask" dev "$interface"
fi
exit 0
"""

CLIENT = r"""
import http.client, json, subprocess, sys
out = {}
for host, path in json.loads(sys.argv[1]):
    ns = subprocess.run(["busybox", "nslookup", host, sys.argv[2]], capture_output=True,
                        text=True, timeout=10).stdout
    answers = [l.split()[-1] for l in ns.split("Name:", 1)[-1].splitlines()
               if l.startswith("Address")]
    six = subprocess.run(["busybox", "nslookup", "-type=AAAA", host, sys.argv[2]],
                         capture_output=True, text=True, timeout=10)
    entry = {"dns": answers, "aaaa_ok": "can't find" not in six.stdout + six.stderr}
    if answers:
        c = http.client.HTTPConnection(answers[0], 80, timeout=10)
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        entry.update(status=r.status, location=r.getheader("Location"),
                     body=r.read(200).decode("utf-8", "replace"))
    out[host + path] = entry
print(json.dumps(out))
"""


def _need_root_and_netns() -> None:
    needs.require("the network namespace test needs root" if os.geteuid() != 0 else None)
    require("ip", "dnsmasq", "busybox")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextmanager
def two_namespaces() -> Iterator[tuple[str, str, str, str]]:
    """(device ns, tablet ns, device veth, tablet veth), removed afterwards."""
    tag = secrets.token_hex(3)
    dev, tab, dev_if, tab_if = f"ketang-dev-{tag}", f"ketang-tab-{tag}", f"kd{tag}", f"kt{tag}"
    _ip("netns", "add", dev)
    try:
        _ip("netns", "add", tab)
        try:
            _ip("link", "add", dev_if, "type", "veth", "peer", "name", tab_if)
            _ip("link", "set", dev_if, "netns", dev)
            _ip("link", "set", tab_if, "netns", tab)
            _ip("-n", dev, "addr", "add", f"{DEVICE_IP}/24", "dev", dev_if)
            for ns, ifname in ((dev, dev_if), (dev, "lo"), (tab, tab_if), (tab, "lo")):
                _ip("-n", ns, "link", "set", ifname, "up")
            yield dev, tab, dev_if, tab_if
        finally:
            _ip("netns", "del", tab)
    finally:
        _ip("netns", "del", dev)


@contextmanager
def process(args: list[str], log: Path, ready: str, timeout: float = 30.0) -> Iterator[str]:
    """Run ``args`` until the block ends; wait for ``ready`` in its output; yield the
    line it was in."""
    with open(log, "w") as f:
        proc = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [x for x in log.read_text().splitlines() if ready in x]
            if found:
                yield found[0]
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            raise AssertionError(f"{args[0]} did not get ready:\n{log.read_text()}")
    finally:
        stop_process(proc)


def test_lease_dns_and_captive_portal_between_namespaces(tmp_path, sample_device):
    _need_root_and_netns()
    with two_namespaces() as (dev, tab, dev_if, tab_if):
        # Provision a device root whose Wi-Fi is the veth end in the device namespace.
        layout = Layout(root=tmp_path / "root", boot=tmp_path / "boot")
        (layout.root / "var/lib/ketang").mkdir(parents=True)
        layout.boot.mkdir()
        (layout.boot / "ketang-setup.toml").write_text(
            f'[school]\nname = "红星小学"\n[wifi]\nssid = "课堂"\ncountry = "CN"\n'
            f'open = true\ninterface = "{dev_if}"\n[network]\naddress = "{DEVICE_IP}/24"\n',
            encoding="utf-8")
        assert apply(layout).ok
        conf = (layout.root / "etc/dnsmasq.d/ketang.conf").read_text()
        # The lease file lives in the device's /run; here it goes to the test's folder.
        conf = conf.replace("/run/ketang/dnsmasq.leases", str(tmp_path / "leases"))
        (tmp_path / "dnsmasq.conf").write_text(conf)
        dnsmasq = ["ip", "netns", "exec", dev, "dnsmasq", "-k", "-u", "root",
                   "-C", str(tmp_path / "dnsmasq.conf"), "--pid-file=" + str(tmp_path / "pid"),
                   "--log-facility=-"]
        serve = ["ip", "netns", "exec", dev, *KETANG, "--config", str(sample_device),
                 "serve", "--host", DEVICE_IP, "--port", "80", "--apps-port", "0"]
        with process(dnsmasq, tmp_path / "dnsmasq.log", "DHCP, sockets bound"), \
                process(serve, tmp_path / "serve.log", "Serving on"):
            script = tmp_path / "dhcp.sh"
            script.write_text(DHCP_SCRIPT.format(out=tmp_path / "lease.env"))
            script.chmod(0o755)
            started = time.monotonic()
            dhcp = subprocess.run(["ip", "netns", "exec", tab, "busybox", "udhcpc", "-i",
                                   tab_if, "-f", "-q", "-n", "-t", "10", "-T", "1", "-O",
                                   "114", "-s", str(script)], capture_output=True, text=True,
                                  timeout=60)
            lease_seconds = time.monotonic() - started
            assert dhcp.returncode == 0, dhcp.stdout + dhcp.stderr
            print(f"lease obtained in {lease_seconds:.1f} s")
            lease = dict(line.split("=", 1) for line in
                         (tmp_path / "lease.env").read_text().splitlines() if "=" in line)
            assert lease["ip"].startswith("10.77.0.") and lease["ip"] != DEVICE_IP
            assert lease["router"] == DEVICE_IP and lease["dns"] == DEVICE_IP
            assert lease["domain"] == "lan"
            # RFC 8910: option 114 carries the captive-portal URI.
            assert bytes.fromhex(lease["opt114"]).decode() == captive_portal_uri()
            # What ketang status reports: the lease dnsmasq holds.
            assert active_leases(tmp_path / "leases") == 1

            client = subprocess.run(
                ["ip", "netns", "exec", tab, sys.executable, "-c", CLIENT,
                 json.dumps(PROBES + [("ketang.lan", "/")]), DEVICE_IP],
                capture_output=True, text=True, timeout=120)
            assert client.returncode == 0, client.stderr
            answers = json.loads(client.stdout)
    for host, path in PROBES:
        a = answers[host + path]
        assert a["dns"] == [DEVICE_IP], (host, a)
        assert a["aaaa_ok"], (host, "AAAA must be an empty answer, not an error")
        assert a["status"] == 302 and a["location"] == "http://ketang.lan/", (host, a)
    home = answers["ketang.lan/"]
    assert home["dns"] == [DEVICE_IP] and home["status"] == 200, home
