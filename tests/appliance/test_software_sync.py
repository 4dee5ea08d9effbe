"""The sync service's software channel (appliance/sync/software.py ``SoftwareChannel``),
with the real sync service, real libtorrent, real RAUC bundles and HTTP on 127.0.0.1.

- A feed that carries lessons and a software update: nothing is asked of it outside the
  transfer window or while the daily quota is spent; inside it the update is fetched
  from the web seed, RAUC checks its signature before anything else reads it, and the
  verified file is handed to the installer (``updates/ready/``), still seeded.
- A newer bundle signed by a key the device does not trust: fetched, refused by RAUC in
  one line, deleted, never fetched again, nothing handed over.
- Device B with no feed finds device A by zeroconf (real multicast on loopback), reads
  A's own feed, and fetches the update from A as a LAN peer after the mirror is gone.
- ``ketang update install-ready`` (root's side) takes every bundle out of the folder,
  installing none that RAUC refuses.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from appliance.discovery import Discovery
from appliance.sync.service import SyncService
from appliance.sync.software import ready_dir, spool_dir, write_software_index
from appliance.sync.status import format_summary, sync_summary
from content_cache.library import Library
from provisioning.update import Device, UpdateError, install_ready, read_status

from ..support.webseed import web_seed
from .test_software_torrent import device_files, keys, make_bundle, sha  # noqa: F401
from .test_sync_service import Clock, feed, settings_for, wait_for  # noqa: F401


def _device(tmp_path: Path, ca: Path, data_dir: Path) -> Device:
    """RAUC's configuration trusting ``ca``, on the service's data folder."""
    return dataclasses.replace(device_files(tmp_path / "rauc", ca), data_dir=Path(data_dir))


def _service(settings, device: Device, **kw) -> SyncService:
    svc = SyncService(settings, Library(settings.device.data_dir), device=device,
                      session_settings={"urlseed_wait_retry": 1}, **kw)
    svc.start()
    return svc


def _software(svc: SyncService) -> dict:
    return svc.status()["software"]


def test_the_service_fetches_the_update_in_its_window_verifies_and_hands_it_over(
        tmp_path, feed, keys):  # noqa: F811
    url, out, trusted, requests = feed
    ours, stranger = keys
    bundle = make_bundle(out / "software", ours, "0.2.0")
    write_software_index(out, web_seed=url + "software/")
    clock = Clock(datetime(2026, 11, 30, 0, 30))
    uplink = [0]
    s = settings_for(tmp_path, trusted, feeds=[url], windows=["01:00-06:00"],
                     daily_quota_mb=5)
    dev = _device(tmp_path, ours / "update-ca.pem", s.device.data_dir)
    svc = _service(s, dev, clock=clock, counter=lambda: uplink[0])
    try:
        uplink[0] = 6_000_000                            # the day's quota spent (counted
        time.sleep(3)                                    # each second), outside the window:
        assert not any("software" in r for r in requests), requests    # not one request
        assert _software(svc)["state"] == "idle"
        clock.now = datetime(2026, 11, 30, 2, 0)         # inside, but the quota is spent
        svc.poll_feeds_now()
        time.sleep(3)
        assert not any("software" in r for r in requests), requests
        clock.now = datetime(2026, 12, 1, 2, 0)          # a new day: the quota starts again
        svc.poll_feeds_now()
        wait_for(lambda: _software(svc)["state"] == "ready", 60, "the update handed over")
        sw = _software(svc)
        assert sw["version"] == "0.2.0" and sw["done"] == sw["size"] == bundle.stat().st_size
        ready = ready_dir(dev.data_dir) / bundle.name
        spooled = spool_dir(dev.data_dir) / bundle.name
        assert sha(ready) == sha(bundle)
        assert ready.stat().st_ino == spooled.stat().st_ino    # one file: still seeded
        assert sorted(p.name for p in ready.parent.iterdir()) == [bundle.name]
        assert any(r.endswith(f"software/{bundle.name}") or f"/{bundle.name}" in r
                   for r in requests)                          # from the web seed
        wait_for(lambda: sync_summary(s)["software"]["state"] == "ready", 10, "status file")
        assert "0.2.0" in format_summary(sync_summary(s))

        # A newer bundle from a signer the device does not trust: fetched, refused, gone.
        bad = make_bundle(out / "software", stranger, "0.3.0")
        write_software_index(out, web_seed=url + "software/")
        svc.poll_feeds_now()
        wait_for(lambda: _software(svc)["state"] == "refused", 60, "RAUC's refusal")
        sw = _software(svc)
        assert sw["version"] == "0.3.0" and "does not trust" in sw["error"]
        assert "\n" not in sw["error"]
        assert not (spool_dir(dev.data_dir) / bad.name).exists()
        assert not (ready_dir(dev.data_dir) / bad.name).exists()
        asked = sum(bad.name + ".torrent" in r for r in requests)
        svc.poll_feeds_now()
        time.sleep(3)
        assert sum(bad.name + ".torrent" in r for r in requests) == asked  # not again
    finally:
        svc.close()


def test_a_neighbour_found_by_zeroconf_gives_the_update_when_the_mirror_is_gone(
        tmp_path, keys, publisher_key):  # noqa: F811
    """A fetched the update from the mirror; the mirror goes away; B, which has no feed and
    whose uplink window is closed, finds A by zeroconf (multicast on loopback), reads A's
    own feed and takes the bundle from A over BitTorrent (LAN bytes are not held)."""
    from waitress import create_server

    from appliance.web.app import create_app
    from appliance.web.context import state

    ours, _ = keys
    _, trusted = publisher_key
    # Ids and names of this run only: loopback multicast is shared with whatever else
    # runs on this machine (other test runs announce devices too).
    tag = secrets.token_hex(4)
    a_id, b_id = f"a-{tag}", f"b-{tag}"
    mirror = tmp_path / "mirror"
    bundle = make_bundle(mirror / "software", ours, "0.2.0", mib=6)
    sb = settings_for(tmp_path / "b", trusted, hub_timeout=4, windows=["01:00-02:00"])
    dev_b = _device(tmp_path / "b", ours / "update-ca.pem", sb.device.data_dir)
    with web_seed(mirror) as (url, requests):
        write_software_index(mirror, web_seed=url + "software/")
        sa = settings_for(tmp_path / "a", trusted, feeds=[url])
        dev_a = _device(tmp_path / "a", ours / "update-ca.pem", sa.device.data_dir)
        a = _service(sa, dev_a, dev_id=a_id)
        wait_for(lambda: _software(a)["state"] == "ready", 60, "A's update")
    # The mirror is gone: whatever B gets, it gets from A.
    app = create_app(sa, library=a.library)
    state(app).sync = a
    server = create_server(app, host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    disco_a = Discovery(name=f"Ketang A {tag}", dev_id=a_id, library=a.library,
                        port=int(server.effective_port), apps_port=None,  # type: ignore[union-attr]
                        interfaces=["127.0.0.1"], host="127.0.0.1",
                        extra_txt={"bt": str(a.listen_port)})
    disco_b = Discovery(name=f"Ketang B {tag}", dev_id=b_id, library=Library(sb.device.data_dir),
                        port=1, apps_port=None, interfaces=["127.0.0.1"], host="127.0.0.1")
    b = None
    try:
        disco_a.start()
        disco_b.start()
        b = SyncService(sb, Library(sb.device.data_dir), device=dev_b, dev_id=b_id,
                        clock=Clock(datetime(2026, 11, 30, 14, 0)))   # B's window: closed
        b.peer_source = disco_b.peers
        t = time.monotonic()
        b.start()
        wait_for(lambda: _software(b)["state"] == "ready", 90, "B's update from A")
        seconds = time.monotonic() - t
        sw = _software(b)
        assert b.software is not None and b.software.fetch is not None
        assert b.software.fetch.waiting == "window"        # the uplink held, the LAN not
        assert sw["source"] == f"neighbour Ketang A {tag}" and sw["version"] == "0.2.0", sw
        got = ready_dir(dev_b.data_dir) / bundle.name
        assert sha(got) == sha(bundle)
        print(f"[software] {bundle.stat().st_size} bytes from neighbour A (zeroconf on "
              f"loopback): {seconds:.1f} s from B's start")
    finally:
        if b is not None:
            b.close()
        disco_b.close()
        disco_a.close()
        server.close()
        a.close()


def test_install_ready_takes_out_what_rauc_refuses_and_installs_nothing(tmp_path, keys):  # noqa: F811
    ours, stranger = keys
    dev = device_files(tmp_path / "dev", ours / "update-ca.pem")
    ready = ready_dir(dev.data_dir)
    ready.mkdir(parents=True)
    make_bundle(ready, stranger, "0.3.0")
    (ready / ".ketang-0.2.0-amd64.raucb.ready").write_bytes(b"a leftover")
    with pytest.raises(UpdateError, match="does not trust") as e:
        install_ready(dev, ready)
    assert "\n" not in str(e.value)
    assert list(ready.iterdir()) == []
    doc = read_status(dev)
    assert "does not trust" in doc["last_refusal"]["reason"]
    assert doc["last_refusal"]["source"] == "sync" and "last_update" not in doc
    (ready / "stray").write_bytes(b"x")
    assert install_ready(dev, ready) == ""                 # nothing waits: nothing to say
    assert list(ready.iterdir()) == []                     # an empty folder stops the path unit
    json.dumps(doc)
