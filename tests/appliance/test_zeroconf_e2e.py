"""Zeroconf on loopback, real multicast: a `ketang serve` advertises _http._tcp and _ketang._tcp;
separate processes (`ketang peers`, a plain zeroconf browser, another server) discover it."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack

import pytest

from ..helpers import KETANG, http_json, running_server, sample_data

pytestmark = pytest.mark.slow
CH = "cn-basic-edu-demo"

HTTP_BROWSER = r"""
import json, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
found = {}
class L(ServiceListener):
    def add_service(self, zc, t, name):
        info = zc.get_service_info(t, name, timeout=3000)
        if info:
            found[name] = {"port": info.port, "addresses": info.parsed_addresses()}
    update_service = add_service
    def remove_service(self, zc, t, name):
        found.pop(name, None)
b = ServiceBrowser(zc, "_http._tcp.local.", L())
time.sleep(float(sys.argv[1]))
b.cancel(); zc.close()
print(json.dumps(found, ensure_ascii=False))
"""

WATCHER = r"""
import sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
class L(ServiceListener):
    def add_service(self, zc, t, name):
        print("added", name, flush=True)
    def update_service(self, zc, t, name):
        pass
    def remove_service(self, zc, t, name):
        print("removed", name, flush=True)
b = ServiceBrowser(zc, "_ketang._tcp.local.", L())
time.sleep(float(sys.argv[1]))
b.cancel(); zc.close()
"""


class Lines:
    """The output lines of a process, collected by a thread, waited for by content."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.queue.put(line.strip())

    def wait_for(self, wanted: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.queue.get(timeout=left) == wanted:
                    return True
            except queue.Empty:
                return False
        return False


def device(tmp_path, sample_bundle, name: str):
    """A config for a device with the sample release, advertising on 127.0.0.1 only."""
    data, keys = sample_data(tmp_path, sample_bundle)
    dev_id = uuid.uuid4().hex[:16]
    config = tmp_path / "ketang.toml"
    config.write_text(
        f'[device]\nname = "{name}"\nid = "{dev_id}"\ndata_dir = "{data}"\n\n'
        f'[trust]\nkeys_dir = "{keys}"\n\n'
        '[zeroconf]\nenabled = true\ninterfaces = ["127.0.0.1"]\n', encoding="utf-8")
    return config, dev_id


def peers(seconds: float = 3.0) -> list[dict]:
    r = subprocess.run([*KETANG, "peers", "--interface", "127.0.0.1", "--timeout",
                        str(seconds), "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_device_is_discovered_with_its_txt_records_and_leaves_cleanly(tmp_path,
                                                                        sample_bundle):
    name = f"Ketang · 红星小学 {uuid.uuid4().hex[:4]}"
    config, dev_id = device(tmp_path, sample_bundle, name)
    watcher = subprocess.Popen([sys.executable, "-c", WATCHER, "40"], stdout=subprocess.PIPE,
                               text=True)
    try:
        _discovered_and_unregistered(config, dev_id, name, Lines(watcher))
    finally:
        watcher.kill()
        watcher.wait()


def _discovered_and_unregistered(config, dev_id, name, watcher):
    service = f"{name}._ketang._tcp.local."
    with running_server(config) as base:
        assert watcher.wait_for(f"added {service}", 10)
        port = int(base.rsplit(":", 1)[1])
        _, me = http_json(base + "/api/v1/device")
        assert me["id"] == dev_id
        found = [p for p in peers() if p["id"] == dev_id]
        assert len(found) == 1, found
        peer = found[0]
        assert peer["name"] == name
        assert peer["port"] == port and "127.0.0.1" in peer["addresses"]
        assert peer["api"] == "1" and peer["path"] == "/api/v1/"
        assert peer["channels"] == {CH: 1}
        assert peer["apps_port"] and peer["apps_port"] != port
        # The human-named web service, seen by a plain zeroconf browser in another process.
        r = subprocess.run([sys.executable, "-c", HTTP_BROWSER, "3"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        http_services = json.loads(r.stdout)
        assert http_services.get(f"{name}._http._tcp.local.", {}).get("port") == port
        # What the peer advertises is where its API really is.
        status, channels = http_json(f"http://127.0.0.1:{peer['port']}{peer['path']}channels")
        assert status == 200 and channels["channels"][0]["channel"] == CH
    # Stopped (SIGTERM): it said goodbye, so a browser that saw it drops it at once
    # (without the goodbye it would stay until its records' TTL ran out: over an hour).
    assert watcher.wait_for(f"removed {service}", 5)
    assert not [p for p in peers(2.0) if p["id"] == dev_id]


def test_devices_list_each_other_as_peers(tmp_path, sample_bundle):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config_a, id_a = device(tmp_path / "a", sample_bundle, f"Ketang A {uuid.uuid4().hex[:4]}")
    config_b, id_b = device(tmp_path / "b", sample_bundle, f"Ketang B {uuid.uuid4().hex[:4]}")
    with ExitStack() as stack:
        base_a = stack.enter_context(running_server(config_a))
        base_b = stack.enter_context(running_server(config_b))
        deadline = time.monotonic() + 15
        seen: list[str] = []
        while time.monotonic() < deadline:
            _, doc = http_json(base_a + "/api/v1/peers")
            seen = [p["id"] for p in doc["peers"]]
            if id_b in seen:
                break
            time.sleep(0.3)
        assert doc["enabled"] is True
        assert id_b in seen and id_a not in seen      # the other one, never itself
        b = next(p for p in doc["peers"] if p["id"] == id_b)
        assert b["port"] == int(base_b.rsplit(":", 1)[1]) and b["channels"] == {CH: 1}
