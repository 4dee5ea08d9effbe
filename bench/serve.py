"""Serving speed: our waitress server against nginx, and the API under load.

    .venv/bin/python bench/serve.py [--seconds 10] [--runs 3]

Needs Debian's ``nginx`` (nginx-light is enough) and ``wrk``:
``apt-get install nginx-light wrk``. Everything listens on 127.0.0.1 only.

What it does, in one run on this machine:

1. Publishes and imports two releases into a temporary data folder: one lesson whose
   video is a 50 MB blob, and a synthetic release of 22,000 lessons × 4 resources
   (88,000 resources, the size of the national library).
2. Starts ``ketang serve`` and times it from launch to its first 200.
3. Starts nginx (sendfile on) serving the same 50 MB blob file.
4. Loads each with wrk: 40 connections asking random 1 MiB ranges for N seconds;
   prints requests/s, MB/s and latency p50/p95 (median of the runs), and ours/nginx
   (of the medians, and the median of the run-by-run ratios).
5. Loads the API with 60 connections browsing lessons and tree nodes and searching,
   once saturated (each connection asks again as soon as it is answered) and once at
   a classroom's pace (0.5–1.5 s between a tablet's requests); prints p95 (target
   under 100 ms).
6. Prints the server's RSS after all that (target under 100 MB).

It also prints the machine's load average before and after: on a shared machine the
ratio against nginx moves with the load, so compare runs made under similar load.
Blob requests take the fast path in front of Flask (appliance/web/media_fast.py), as
under any ``ketang serve``.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from content_cache.importer import import_bundle  # noqa: E402
from content_cache.keys import generate_keypair, load_trusted_keys  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402

MIB = 1024 * 1024
BLOB_BYTES = 50 * 1000 * 1000
GRADES, SUBJECTS, EDITIONS, VOLUMES, UNITS, LESSONS = 11, 10, 2, 2, 10, 5   # 22,000 lessons
SUBJECT_NAMES = ["语文", "数学", "英语", "科学", "道德与法治", "音乐", "美术", "体育",
                 "信息科技", "劳动"]
TOPICS = ["分数的加法", "认识图形", "古诗两首", "植物的生长", "长方形的面积", "我们的家乡",
          "小数的意义", "天气与气候", "拼音复习", "乘法口诀"]
SEARCHES = ["分数", "加法", "古诗", "植物的生长", "长方形", "家乡", "第3课", "口诀"]

RANGE_LUA = """
local size = %(size)d
local path = "%(path)s"
init = function(args)
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
end
request = function()
  local s = math.random(0, size - %(chunk)d)
  return wrk.format("GET", path, {["Range"] = "bytes=" .. s .. "-" .. (s + %(chunk)d - 1)})
end
%(done)s
"""
PATHS_LUA = """
local paths = {%(paths)s}
init = function(args)
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))
end
request = function()
  return wrk.format("GET", paths[math.random(1, #paths)])
end
%(delay)s
%(done)s
"""
THINK_LUA = """
delay = function()
  return math.random(500, 1500)
end
"""
DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "bytes": %d, "duration_us": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "errors": %d, "status_errors": %d}\\n',
    summary.requests, summary.bytes, summary.duration, latency:percentile(50),
    latency:percentile(95), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_media_source(root: Path) -> Path:
    media = root / "media"
    media.mkdir(parents=True)
    with open(media / "big.mp4", "wb") as f:
        rnd = random.Random(1)
        left = BLOB_BYTES
        while left:
            n = min(left, 4 * MIB)
            f.write(rnd.randbytes(n))
            left -= n
    lesson = {"id": "big", "kind": "lesson", "title": {"zh": "大视频", "en": "Big video"},
              "resources": [{"id": "big-video", "kind": "video", "title": {"zh": "视频"},
                             "file": "media/big.mp4"}]}
    doc = {"format": "ketang-source/1", "title": {"zh": "测速", "en": "Bench"},
           "nodes": [{"id": "s", "kind": "stage", "title": {"zh": "小学"}, "children": [
               {"id": "u", "kind": "unit", "title": {"zh": "单元"}, "children": [lesson]}]}]}
    (root / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return root


def make_big_source(root: Path) -> tuple[Path, list[str], list[str]]:
    """A 22,000-lesson, 88,000-resource source tree sharing a few small media files."""
    media = root / "media"
    media.mkdir(parents=True)
    for name, data in (("v.mp4", b"\x00\x00\x00\x18ftypmp42" + b"v" * 500),
                       ("t.pdf", b"%PDF-1.4 task sheet"), ("a.zip", b"PK\x05\x06" + b"\0" * 18),
                       ("e.json", b'{"questions": []}')):
        (media / name).write_bytes(data)
    lessons, nodes = [], []

    def node(nid, kind, zh, children):
        nodes.append(nid)
        return {"id": nid, "kind": kind, "title": {"zh": zh, "en": nid}, "children": children}

    grades = []
    for g in range(GRADES):
        subjects = []
        for s in range(SUBJECTS):
            editions = []
            for e in range(EDITIONS):
                volumes = []
                for v in range(VOLUMES):
                    units = []
                    for u in range(UNITS):
                        ls = []
                        for n in range(LESSONS):
                            lid = f"g{g}-s{s}-e{e}-v{v}-u{u}-l{n}"
                            lessons.append(lid)
                            topic = TOPICS[(g + s + u + n) % len(TOPICS)]
                            ls.append({
                                "id": lid, "kind": "lesson",
                                "title": {"zh": f"第{n + 1}课 {topic}", "en": f"Lesson {n + 1}"},
                                "description": {"zh": f"{SUBJECT_NAMES[s]}：{topic}"},
                                "resources": [
                                    {"id": f"{lid}-v", "kind": "video", "file": "media/v.mp4"},
                                    {"id": f"{lid}-p", "kind": "pdf", "file": "media/t.pdf"},
                                    {"id": f"{lid}-a", "kind": "html5", "file": "media/a.zip"},
                                    {"id": f"{lid}-x", "kind": "exercise",
                                     "file": "media/e.json"},
                                ]})
                        units.append(node(f"g{g}-s{s}-e{e}-v{v}-u{u}", "unit",
                                          f"第{u + 1}单元", ls))
                    volumes.append(node(f"g{g}-s{s}-e{e}-v{v}", "volume", f"第{v + 1}册",
                                        units))
                editions.append(node(f"g{g}-s{s}-e{e}", "edition", f"版本{e + 1}", volumes))
            subjects.append(node(f"g{g}-s{s}", "subject", SUBJECT_NAMES[s], editions))
        grades.append(node(f"g{g}", "grade", f"{g + 1}年级", subjects))
    doc = {"format": "ketang-source/1", "title": {"zh": "全国课程（合成）", "en": "Synthetic"},
           "nodes": [node("primary", "stage", "小学", grades)]}
    (root / "source.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return root, lessons, nodes


def start_ketang(config: Path, port: int) -> tuple[subprocess.Popen, float]:
    """Start `ketang serve`; return it and the seconds from launch to its first 200."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--config", str(config), "serve", "--host",
         "127.0.0.1", "--port", str(port), "--apps-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.01)
    proc.kill()
    raise SystemExit("ketang serve did not answer within 30 s")


def start_nginx(tmp: Path, blob: Path, port: int) -> subprocess.Popen:
    return start_nginx_files(tmp, port, {"/big.mp4": blob})


def start_nginx_files(tmp: Path, port: int, files: dict[str, Path | bytes],
                      locations: str = "") -> subprocess.Popen:
    """Debian's nginx serving ``files`` (URL path → file or bytes) on 127.0.0.1:port;
    ``locations`` is more configuration for its ``server`` block."""
    www = tmp / "www"
    for url, src in files.items():
        dest = www / url.lstrip("/").split("?")[0]
        if url.endswith("/"):
            dest = dest / "index.html"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dest.write_bytes(src)
        else:
            os.link(src, dest) if src.stat().st_dev == tmp.stat().st_dev else \
                shutil.copyfile(src, dest)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir()
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""{user}daemon off;
worker_processes auto;
worker_rlimit_nofile 20000;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  types {{ video/mp4 mp4; }}
  default_type text/html;
  server {{ listen 127.0.0.1:{port}; root {www}; {locations} }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                r.read(1)
                return proc
        except urllib.error.HTTPError:      # it answers (there may be no index page)
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("nginx did not start: " + (tmp / "error.log").read_text())


def wrk(url: str, script: str, connections: int, seconds: int, tmp: Path) -> dict:
    lua = tmp / f"wrk-{time.monotonic_ns()}.lua"
    lua.write_text(script)
    threads = min(connections, max(1, (os.cpu_count() or 2)))
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d",
                          f"{seconds}s", "-s", str(lua), url],
                         capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    secs = r["duration_us"] / 1e6
    return {"rps": r["requests"] / secs, "mbps": r["bytes"] / secs / 1e6,
            "p50_ms": r["p50_us"] / 1000, "p95_ms": r["p95_us"] / 1000,
            "errors": r["errors"] + r["status_errors"]}


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def show(name: str, m: dict) -> None:
    print(f"  {name:<8} {m['rps']:9.1f} req/s  {m['mbps']:8.1f} MB/s  "
          f"p50 {m['p50_ms']:7.1f} ms  p95 {m['p95_ms']:7.1f} ms  errors {m['errors']:.0f}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--api-clients", type=int, default=60)
    args = ap.parse_args()
    missing = [c for c in ("nginx", "wrk") if shutil.which(c) is None]
    if missing:
        raise SystemExit(f"bench/serve.py needs {' and '.join(missing)}: "
                         "apt-get install nginx-light wrk")

    print(f"load average before: {_load()}")
    tmp = Path(tempfile.mkdtemp(prefix="ketang-bench-"))
    os.chmod(tmp, 0o755)
    try:
        pair = generate_keypair(tmp / "keys", "bench")
        trusted = tmp / "trusted"
        trusted.mkdir()
        shutil.copyfile(pair.public_path, trusted / "bench.pub")
        data = tmp / "data"
        lib = Library(data)
        t = time.perf_counter()
        publish(make_media_source(tmp / "src-media"), "bench-media", 1, pair.private_path,
                tmp / "bundle-media")
        import_bundle(tmp / "bundle-media", lib, load_trusted_keys(trusted))
        _, lessons, nodes = make_big_source(tmp / "src-big")
        publish(tmp / "src-big", "bench-88k", 1, pair.private_path, tmp / "bundle-big")
        import_bundle(tmp / "bundle-big", lib, load_trusted_keys(trusted))
        print(f"set-up: 50 MB blob and an 88,000-resource release imported in "
              f"{time.perf_counter() - t:.1f} s")
        blob_sha = lib.catalog("bench-media").lesson("big")["resources"][0]["sha256"]
        blob = lib.store.path_for(blob_sha)
        config = tmp / "ketang.toml"
        config.write_text(f'[device]\ndata_dir = "{data}"\n\n[trust]\nkeys_dir = "{trusted}"\n'
                          '\n[zeroconf]\nenabled = false\n')

        port = free_port()
        ketang, startup = start_ketang(config, port)
        nginx = None
        try:
            nginx_port = free_port()
            (tmp / "nginx").mkdir()
            nginx = start_nginx(tmp / "nginx", blob, nginx_port)
            size = blob.stat().st_size
            ours, theirs = [], []
            for _ in range(args.runs):
                ours.append(wrk(f"http://127.0.0.1:{port}", RANGE_LUA % {
                    "size": size, "path": f"/blobs/{blob_sha}", "chunk": MIB, "done": DONE_LUA},
                    args.clients, args.seconds, tmp))
                theirs.append(wrk(f"http://127.0.0.1:{nginx_port}", RANGE_LUA % {
                    "size": size, "path": "/big.mp4", "chunk": MIB, "done": DONE_LUA},
                    args.clients, args.seconds, tmp))
            o, n = median_of(ours), median_of(theirs)
            print(f"\nrandom 1 MiB ranges of a 50 MB blob, {args.clients} connections, "
                  f"{args.seconds} s, median of {args.runs} runs:")
            show("ketang", o)
            show("nginx", n)
            print(f"  ours/nginx: {o['rps'] / n['rps']:.2f} × requests/s, "
                  f"{o['mbps'] / n['mbps']:.2f} × MB/s   (target ≥ 0.5)")
            # Each of our runs is followed at once by nginx's, so their ratio sees about
            # the same load from the machine's other users; its median is the steadier
            # figure on a shared machine.
            pairs = [a["rps"] / b["rps"] for a, b in zip(ours, theirs, strict=True)]
            print(f"  ours/nginx run by run: {' '.join(f'{r:.2f}' for r in pairs)}   "
                  f"median {statistics.median(pairs):.2f}")

            rnd = random.Random(2)
            q = urllib.parse.quote
            paths = ([f"/api/v1/channels/bench-88k/lessons/{lid}"
                      for lid in rnd.sample(lessons, 400)]
                     + [f"/api/v1/channels/bench-88k/nodes/{nid}" for nid in rnd.sample(nodes, 200)]
                     + [f"/api/v1/search?q={q(s)}&limit=20" for s in SEARCHES] * 10)
            lua_paths = ", ".join(f'"{p}"' for p in paths)
            print(f"\nAPI (lessons, tree nodes, search) on 88,000 resources, "
                  f"{args.api_clients} connections, median of {args.runs} runs:")
            for label, delay in (("saturated (no pause between requests)", ""),
                                 ("classroom pace (0.5–1.5 s between requests)", THINK_LUA)):
                a = median_of([wrk(f"http://127.0.0.1:{port}", PATHS_LUA % {
                    "paths": lua_paths, "done": DONE_LUA, "delay": delay}, args.api_clients,
                    args.seconds, tmp) for _ in range(args.runs)])
                print(f"  {label}: {a['rps']:.1f} req/s  p50 {a['p50_ms']:.1f} ms  "
                      f"p95 {a['p95_ms']:.1f} ms  errors {a['errors']:.0f}   (target p95 < 100 ms)")
            rss = psutil.Process(ketang.pid).memory_info().rss
            print(f"\nserver RSS after the run: {rss / MIB:.1f} MiB   (target < 100 MB)")
            print(f"start-up to the first 200: {startup:.2f} s   (target < 2 s)")
            print(f"load average after: {_load()}   ({os.cpu_count()} CPUs)")
        finally:
            ketang.terminate()
            ketang.wait(10)
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
