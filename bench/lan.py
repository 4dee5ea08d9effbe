"""A school on one device: hundreds of tablets streaming video at playback rate while
others browse and the projector's kiosk works, against nginx in the same run; then one
laptop flooding the server.

    .venv/bin/python bench/lan.py [--streams 300] [--seconds 40] [--browsers 30]

Needs Debian's ``nginx`` (``apt-get install nginx-light``). Everything listens on
127.0.0.1; each simulated tablet connects from its own loopback address (127.0.1.x,
127.0.2.x …), the kiosk from 127.0.0.1, as on the device.

1. Imports the sample lessons and a 200 s lesson video of 2 Mbit/s (a 50 MB blob).
2. ``ketang serve`` (its waitress server with appliance/server_guard.py), then nginx
   (sendfile on) serving the same blob and static copies of the same pages, then nginx in
   front of ``ketang serve`` (the blob straight from the blob store, every other request
   proxied to the app), each under the same load for ``--seconds``:

   - ``--streams`` tablets, started over 5 s, each reading the video as a player does
     (``Range: bytes=0-``; 10 s of read-ahead, then exactly the playback rate). A
     stream *keeps up* when, after a 2 s start-up buffer, the bytes it has received
     never fall behind the playback position (sampled every 0.2 s; stalls under 0.5 s in
     all are forgiven);
   - ``--browsers`` tablets each opening a lesson page, the projector's lesson page or a
     search every 0.5–1.5 s (p50/p95 of the time to the whole answer; target p95 under
     100 ms);
   - the kiosk (127.0.0.1) opening the projector's lesson page every second.

3. A flood against ``ketang serve`` from one address (127.0.4.1): it keeps reopening up
   to 500 idle connections, while another (127.0.4.2) trickles a header line a second on
   100; prints how many connections the flooding address holds, and the kiosk's and a
   tablet's latency meanwhile.

Also prints each server's CPU time and the machine's load average. Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from serve import (  # noqa: E402
    _load,
    free_port,
    make_media_source,
    start_ketang,
    start_nginx_files,
)

from appliance.cli.demo import SAMPLE_PACK  # noqa: E402
from appliance.web.media import BLOB_CSP  # noqa: E402
from content_cache.importer import import_bundle  # noqa: E402
from content_cache.keys import generate_keypair, load_trusted_keys  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402

RATE = 2_000_000 / 8            # bytes a second of a 2 Mbit/s video
LEAD = 10 * RATE                # a player's read-ahead before it settles to the rate
STARTUP = 2.0                   # seconds of buffering before playback starts
FORGIVEN_STALL = 0.5            # seconds of stall in all still counted as keeping up
RAMP = 5.0                      # seconds over which the streams start
SAMPLE = 0.2


def tablet_address(i: int) -> str:
    """The i-th tablet's loopback address (127.0.1.1 …), never the kiosk's."""
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


@dataclass
class Stream:
    src: str
    t0: float = 0.0
    received: int = 0
    stall: float = 0.0
    running: bool = False
    error: str = ""


@dataclass
class Latencies:
    ms: list[float] = field(default_factory=list)
    errors: int = 0

    def summary(self) -> str:
        if not self.ms:
            return f"no answers ({self.errors} errors)"
        q = statistics.quantiles(self.ms, n=20) if len(self.ms) > 1 else self.ms * 19
        return (f"p50 {statistics.median(self.ms):.1f} ms, p95 {q[18]:.1f} ms, "
                f"max {max(self.ms):.0f} ms, {len(self.ms)} answers, {self.errors} errors")


async def get(port: int, path: str, src: str, timeout: float = 30.0) -> float:
    """One GET from ``src`` on a fresh connection; seconds to the whole answer."""
    t = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, local_addr=(src, 0)), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Accept-Language: zh-CN\r\n\r\n".encode())
        body = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    if not body.startswith(b"HTTP/1.1 200"):
        raise OSError(body[:40])
    return time.monotonic() - t


async def stream(port: int, path: str, s: Stream, until: float) -> None:
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(s.src, 0), limit=1 << 20)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-\r\n\r\n"
                     .encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith((b"HTTP/1.1 206", b"HTTP/1.1 200")):
            raise OSError(head[:40])
        s.t0, s.running = time.monotonic(), True
        while (now := time.monotonic()) < until:
            allowed = RATE * (now - s.t0) + LEAD
            if s.received >= allowed:
                await asyncio.sleep(min(0.5, (s.received - allowed) / RATE + 0.02))
                continue
            chunk = await reader.read(min(256 * 1024, int(allowed - s.received) + 1))
            if not chunk:
                raise OSError("the server closed the stream")
            s.received += len(chunk)
        writer.close()
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
        s.error = str(e) or type(e).__name__
    finally:
        s.running = False


async def sampler(streams: list[Stream], until: float) -> None:
    while time.monotonic() < until:
        await asyncio.sleep(SAMPLE)
        now = time.monotonic()
        for s in streams:
            if s.running and s.received < RATE * max(0.0, now - s.t0 - STARTUP):
                s.stall += SAMPLE


async def browser(port: int, paths: list[str], src: str, out: Latencies, until: float,
                  pace: tuple[float, float]) -> None:
    rnd = random.Random(src)
    while time.monotonic() < until:
        await asyncio.sleep(rnd.uniform(*pace))
        try:
            out.ms.append(1000 * await get(port, rnd.choice(paths), src))
        except (TimeoutError, OSError):
            out.errors += 1


async def streams_part(port: int, blob_path: str, streams_n: int, seconds: float,
                       start_at: float) -> dict:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    until = time.monotonic() + RAMP + seconds
    streams = [Stream(tablet_address(i)) for i in range(streams_n)]

    async def delayed(s: Stream, delay: float) -> None:
        await asyncio.sleep(delay)
        await stream(port, blob_path, s, until)

    await asyncio.gather(*(delayed(s, RAMP * i / max(1, streams_n))
                           for i, s in enumerate(streams)), sampler(streams, until))
    return {"kept": sum(1 for s in streams if not s.error and s.stall < FORGIVEN_STALL),
            "streams": streams_n, "errors": sum(1 for s in streams if s.error),
            "stall_total": sum(s.stall for s in streams),
            "stall_max": max((s.stall for s in streams), default=0.0),
            "mbps": sum(s.received for s in streams) * 8 / 1e6 / (RAMP + seconds),
            "first_error": next((s.error for s in streams if s.error), "")}


async def browsing_part(port: int, pages: list[str], kiosk_page: str, first: int,
                        browsers_n: int, seconds: float, start_at: float) -> dict:
    await asyncio.sleep(max(0.0, start_at - time.time()))
    until = time.monotonic() + RAMP + seconds
    browse, kiosk = Latencies(), Latencies()
    await asyncio.gather(
        *(browser(port, pages, tablet_address(first + i), browse, until, (0.5, 1.5))
          for i in range(browsers_n)),
        browser(port, [kiosk_page], "127.0.0.1", kiosk, until, (1.0, 1.0)))
    return {"browse": browse, "kiosk": kiosk}


def _run(coro_fn: Any, *args: Any) -> dict:
    return asyncio.run(coro_fn(*args))


def school(port: int, blob_path: str, pages: list[str], kiosk_page: str, streams_n: int,
           browsers_n: int, seconds: float) -> dict:
    """The streams and the browsing (with the kiosk) from two processes, so neither's
    measurement waits on the other's event loop."""
    start_at = time.time() + 1.0
    with ProcessPoolExecutor(2) as pool:
        a = pool.submit(_run, streams_part, port, blob_path, streams_n, seconds, start_at)
        b = pool.submit(_run, browsing_part, port, pages, kiosk_page, streams_n, browsers_n,
                        seconds, start_at)
        return {**a.result(), **b.result()}


def held_by(server_pid: int, port: int, address: str) -> int:
    """Connections the server process has open from ``address`` (what it holds for it)."""
    return sum(1 for c in psutil.Process(server_pid).net_connections("tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
               and c.raddr and c.raddr.ip == address)


async def flood(port: int, server_pid: int, kiosk_page: str, tablet_page: str,
                seconds: float) -> dict:
    """One address keeps up to 500 idle connections open, another trickles 100."""
    until = time.monotonic() + seconds
    idle: set[asyncio.StreamWriter] = set()
    held_samples: list[tuple[int, int]] = []
    refused = 0

    async def hold_one() -> None:
        nonlocal refused
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.4.1", 0))
            except OSError:
                await asyncio.sleep(0.1)
                continue
            idle.add(writer)
            try:
                data = await asyncio.wait_for(reader.read(1), until - time.monotonic())
                if data:
                    refused += 1
            except (TimeoutError, OSError):
                pass
            idle.discard(writer)
            writer.close()
            await asyncio.sleep(0.05)

    async def trickle_one() -> None:
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=("127.0.4.2", 0))
                writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while time.monotonic() < until and not reader.at_eof():
                    await asyncio.sleep(1)
                    writer.write(b"X-Trickle: 1\r\n")
                    await writer.drain()
                writer.close()
            except OSError:
                await asyncio.sleep(0.1)

    async def count_held() -> None:
        while time.monotonic() < until:
            await asyncio.sleep(0.5)
            held_samples.append((held_by(server_pid, port, "127.0.4.1"),
                                 held_by(server_pid, port, "127.0.4.2")))

    kiosk, tablet = Latencies(), Latencies()
    await asyncio.gather(*(hold_one() for _ in range(500)), *(trickle_one() for _ in range(100)),
                         count_held(),
                         browser(port, [kiosk_page], "127.0.0.1", kiosk, until, (0.5, 0.5)),
                         browser(port, [tablet_page], "127.0.3.250", tablet, until,
                                 (0.5, 0.5)))
    return {"held_max": max((h[0] for h in held_samples), default=0),
            "trickling_max": max((h[1] for h in held_samples), default=0), "refused": refused,
            "kiosk": kiosk, "tablet": tablet}


def cpu_seconds(pid: int) -> float:
    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    return sum(sum(x.cpu_times()[:2]) for x in procs if x.is_running())


FRONT = """
  location ~ "^/blobs/(([0-9a-f]{2})[0-9a-f]{62})$" {
    alias %(store)s/blobs/sha256/$2/$1;
    default_type video/mp4;
    add_header Cache-Control "public, max-age=31536000, immutable";
    add_header Content-Security-Policy "%(csp)s";
    add_header X-Content-Type-Options nosniff;
  }
  location / {
    proxy_pass http://127.0.0.1:%(port)d;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
  }
"""


def show(name: str, r: dict, cpu: float) -> None:
    print(f"  {name}: {r['kept']} of {r['streams']} streams kept up "
          f"({r['errors']} failed{': ' + r['first_error'] if r['errors'] else ''}; "
          f"stalls {r['stall_total']:.1f} s in all, worst {r['stall_max']:.1f} s), "
          f"{r['mbps']:.0f} Mbit/s")
    print(f"      browsing {r['browse'].summary()}")
    print(f"      kiosk    {r['kiosk'].summary()}")
    print(f"      server CPU {cpu:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--browsers", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--flood-seconds", type=float, default=20)
    ap.add_argument("--no-nginx", action="store_true")
    args = ap.parse_args()
    if shutil.which("nginx") is None and not args.no_nginx:
        raise SystemExit("bench/lan.py needs Debian's nginx: apt-get install nginx-light")
    print(f"load average before: {_load()}")
    tmp = Path(tempfile.mkdtemp(prefix="ketang-lan-"))
    os.chmod(tmp, 0o755)
    try:
        pair = generate_keypair(tmp / "keys", "bench")
        trusted = tmp / "trusted"
        trusted.mkdir()
        shutil.copyfile(pair.public_path, trusted / "bench.pub")
        data = tmp / "data"
        lib = Library(data)
        publish(make_media_source(tmp / "src-media"), "bench-media", 1, pair.private_path,
                tmp / "bundle-media")
        import_bundle(tmp / "bundle-media", lib, load_trusted_keys(trusted))
        publish(SAMPLE_PACK, "cn-basic-edu-demo", 1, pair.private_path, tmp / "bundle-sample")
        import_bundle(tmp / "bundle-sample", lib, load_trusted_keys(trusted))
        sha = lib.catalog("bench-media").lesson("big")["resources"][0]["sha256"]
        blob_path = f"/blobs/{sha}"
        cat = lib.catalog("cn-basic-edu-demo")
        lessons = [x["id"] for x in cat.lessons()]
        ch = "cn-basic-edu-demo"
        pages = ([f"/lessons/{ch}/{lid}" for lid in lessons]
                 + [f"/projector/lesson/{ch}/{lid}" for lid in lessons[:2]]
                 + ["/search?q=%E5%88%86%E6%95%B0", "/"])
        kiosk_page = f"/projector/lesson/{ch}/{lessons[0]}"
        config = tmp / "ketang.toml"
        config.write_text(f'[device]\ndata_dir = "{data}"\n\n[trust]\nkeys_dir = "{trusted}"\n'
                          '\n[zeroconf]\nenabled = false\n\n[captive]\nenabled = false\n')
        print(f"{args.streams} tablets streaming a 2 Mbit/s video ({RATE * 8 / 1e6:.0f} "
              f"Mbit/s each, {args.streams * RATE * 8 / 1e6:.0f} Mbit/s in all), "
              f"{args.browsers} browsing, the kiosk; {args.seconds:.0f} s after a "
              f"{RAMP:.0f} s ramp:")

        port = free_port()
        ketang, _startup = start_ketang(config, port)
        try:
            copies = {p: urllib.request.urlopen(f"http://127.0.0.1:{port}{p}").read()
                      for p in pages}
            cpu0 = cpu_seconds(ketang.pid)
            ours = school(port, blob_path, pages, kiosk_page, args.streams, args.browsers,
                          args.seconds)
            show("ketang serve", ours, cpu_seconds(ketang.pid) - cpu0)
            f = asyncio.run(flood(port, ketang.pid, kiosk_page, f"/lessons/{ch}/{lessons[0]}",
                                  args.flood_seconds))
        finally:
            ketang.terminate()
            ketang.wait(10)
        if not args.no_nginx:
            nport = free_port()
            (tmp / "nginx").mkdir()
            nginx = start_nginx_files(tmp / "nginx", nport,
                                {blob_path: lib.store.path_for(sha), **copies})
            try:
                cpu0n = cpu_seconds(nginx.pid)
                theirs = school(nport, blob_path, pages, kiosk_page, args.streams,
                                args.browsers, args.seconds)
                show("nginx (static copies of the same pages)", theirs,
                     cpu_seconds(nginx.pid) - cpu0n)
            finally:
                nginx.terminate()
                nginx.wait(10)
            # What nginx in front would give: it sends the blobs straight from the blob
            # store, every other request goes to ketang serve (pages rendered as usual).
            ketang, _startup = start_ketang(config, port)
            fport = free_port()
            (tmp / "front").mkdir()
            front = start_nginx_files(tmp / "front", fport, {}, locations=FRONT % {
                "store": lib.store.root, "port": port, "csp": BLOB_CSP})
            try:
                for p in pages:                 # warm, as the first instance was
                    urllib.request.urlopen(f"http://127.0.0.1:{fport}{p}").read()
                cpu0, cpu0n = cpu_seconds(ketang.pid), cpu_seconds(front.pid)
                fronted = school(fport, blob_path, pages, kiosk_page, args.streams,
                                 args.browsers, args.seconds)
                show("nginx in front (blobs from the store) + ketang serve (pages)", fronted,
                     cpu_seconds(ketang.pid) - cpu0 + cpu_seconds(front.pid) - cpu0n)
            finally:
                front.terminate()
                front.wait(10)
                ketang.terminate()
                ketang.wait(10)
        print(f"\nflood for {args.flood_seconds:.0f} s from one address (up to 500 idle "
              "connections, reopened as they close) and another (100 trickling a header "
              "line a second), against ketang serve:")
        print(f"  connections the server held open for the flooding address: at most "
              f"{f['held_max']} (for the trickling one: {f['trickling_max']}); flood "
              f"connections answered 503 and closed: {f['refused']}")
        print(f"  kiosk (127.0.0.1) meanwhile: {f['kiosk'].summary()}")
        print(f"  a tablet (127.0.3.250) meanwhile: {f['tablet'].summary()}")
        print(f"load average after: {_load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
