"""Tablet pages at national scale: bytes against the 60 KB budget, response and render times.

    .venv/bin/python bench/pages.py [--resources 88000] [--rounds 15] [--cpu-slowdown 6]

1. Writes a synthetic release (``ketang sample``: 88,000 resources, 22,000 lessons)
   and the bundled sample pack (real PDFs, videos, exercises), imports both into a
   fresh data folder and starts ``ketang serve`` on 127.0.0.1.
2. For each page type prints the bytes of its HTML plus every stylesheet and script
   it references (the budget is 60 KB, media excluded), and the median and p95 of
   the server's response time over ``--rounds`` requests (different lessons, nodes
   and queries each round).
3. Opens each page in Chromium made to behave like a cheap 2016 tablet: the CPU slowed
   ``--cpu-slowdown`` times (DevTools CPU throttling) on a 20 Mbit/s, 20 ms Wi-Fi
   link, 800×1280; prints the median time from navigation start to the load event
   (target: under a second), with JavaScript on.
4. The PDF reader: the first view of a task sheet (rendered by pdftoppm) against a
   cached one.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.cli.demo import DEMO_KEY, DEMO_PUB, SAMPLE_PACK  # noqa: E402
from bench.serve import free_port, start_ketang  # noqa: E402
from content_cache.importer import import_bundle  # noqa: E402
from content_cache.keys import load_trusted_keys  # noqa: E402
from content_cache.library import Library  # noqa: E402
from content_cache.publisher import publish  # noqa: E402
from content_cache.synthetic import generate_sample  # noqa: E402

BUDGET = 60 * 1024
DEMO = "cn-basic-edu-demo"
QUERIES = ["分数", "加法", "古诗", "分数的加法", "光合作用", "欧姆定律", "三年级 古诗", "fraction"]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "stylesheet":
            self.urls.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.urls.append(a["src"])


# Cookies kept across requests, like a tablet's browser.
_opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(
    http.cookiejar.CookieJar()))


def fetch(url: str, data: bytes | None = None) -> tuple[int, bytes, float]:
    t = time.perf_counter()
    try:
        with _opener.open(urllib.request.Request(url, data=data), timeout=60) as r:
            body, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    return status, body, time.perf_counter() - t


def exercise_form(base: str, lesson_path: str, resource_id: str,
                  answers: dict[str, str]) -> tuple[str, None]:
    """The (path, body) a tablet asks to check ``answers`` to an exercise of a lesson:
    a GET with the answers in the query string (no body)."""
    del base
    query = urllib.parse.urlencode(answers)
    return f"{lesson_path}/exercise/{resource_id}?{query}", None


def page_weight(base: str, path: str, data: bytes | None = None) -> tuple[int, dict[str, int]]:
    """A page's status and the bytes of its HTML and of each stylesheet and script it names.

    An absent script (a 404) counts as 0 bytes. ``data`` POSTs instead of GETting.
    The tablet tests check the budget with it too.
    """
    status, html, _ = fetch(base + path, data)
    parser = _Assets()
    parser.feed(html.decode())
    sizes = {"html": len(html)}
    for url in parser.urls:
        asset_status, body, _ = fetch(urllib.parse.urljoin(base + path, url))
        sizes[url] = len(body) if asset_status == 200 else 0
    return status, sizes


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resources", type=int, default=88_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cpu-slowdown", type=float, default=6.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ketang-bench-pages-"))
    proc = None
    try:
        keys, data = work / "keys", work / "data"
        keys.mkdir()
        shutil.copyfile(DEMO_PUB, keys / DEMO_PUB.name)
        t = time.perf_counter()
        rel = generate_sample(args.resources, work / "sample")
        import_bundle(work / "sample", Library(data), load_trusted_keys(keys))
        publish(SAMPLE_PACK, DEMO, 1, DEMO_KEY, work / "demo")
        import_bundle(work / "demo", Library(data), load_trusted_keys(keys))
        print(f"{rel.resources} resources ({rel.nodes} nodes) + the sample pack, imported in "
              f"{time.perf_counter() - t:.1f} s")
        config = work / "ketang.toml"
        config.write_text(f'[device]\ndata_dir = "{data}"\n\n[trust]\nkeys_dir = "{keys}"\n\n'
                          "[zeroconf]\nenabled = false\n", encoding="utf-8")
        port = free_port()
        proc, started = start_ketang(config, port)
        base = f"http://127.0.0.1:{port}"
        print(f"ketang serve answered after {started:.1f} s\n")

        cat = Library(data).catalog(rel.channel)
        rng = random.Random(1)
        ch = rel.channel
        nodes = {kind: [r[0] for r in cat.db.execute_sql(
            "SELECT id FROM node WHERE kind = ?", (kind,))] for kind in
            ("grade", "subject", "volume", "unit", "lesson")}
        demo = Library(data).catalog(DEMO)
        demo_lessons = [n["id"] for n in demo.lessons()]

        def pick(kind: str) -> str:
            return rng.choice(nodes[kind])

        def demo_pdf() -> str:
            lid = rng.choice(demo_lessons)
            return f"/lessons/{DEMO}/{lid}/pdf/{lid}-pdf"

        def exercise() -> tuple[str, None]:
            lid = rng.choice(demo_lessons)
            return exercise_form(base, f"/lessons/{DEMO}/{lid}", f"{lid}-exercise",
                                 {"q0": "1", "q1": "0", "q2": "2"})

        # Warm the PDF cache for the reader's page figures (cold renders are timed below).
        cold = []
        for lid in demo_lessons:
            cold.append(fetch(f"{base}/lessons/{DEMO}/{lid}/pdf/{lid}-pdf")[2])
        kinds = {
            "front page (grades)": lambda: "/",
            "grade (subjects)": lambda: f"/browse/{ch}/{pick('grade')}",
            "subject (editions)": lambda: f"/browse/{ch}/{pick('subject')}",
            "volume (units + lessons)": lambda: f"/browse/{ch}/{pick('volume')}",
            "unit (lessons)": lambda: f"/browse/{ch}/{pick('unit')}",
            "lesson": lambda: f"/lessons/{ch}/{pick('lesson')}",
            "search": lambda: "/search?q=" + urllib.parse.quote(rng.choice(QUERIES)),
            "pdf reader page (cached)": demo_pdf,
            "exercise checked": exercise,
            "not found": lambda: f"/lessons/{ch}/no-such-lesson",
        }
        print(f"{'page':28} {'bytes':>7} {'of 60 KB':>8} {'median':>10} {'p95':>10}")
        for name, make in kinds.items():
            times, sizes = [], []
            for _ in range(args.rounds):
                target = make()
                path, body = target if isinstance(target, tuple) else (target, None)
                status, _, took = fetch(base + path, body)
                assert status in (200, 404), (path, status)
                times.append(took)
                sizes.append(sum(page_weight(base, path, body)[1].values()))
            times.sort()
            size = max(sizes)
            print(f"{name:28} {size:7d} {size / BUDGET:8.0%} {ms(statistics.median(times))} "
                  f"{ms(times[int(0.95 * (len(times) - 1))])}")
        again = [fetch(f"{base}/lessons/{DEMO}/{lid}/pdf/{lid}-pdf")[2] for lid in demo_lessons]
        print(f"\npdf reader, first view (pdftoppm renders the sheet): median "
              f"{ms(statistics.median(cold))}; cached: median {ms(statistics.median(again))} "
              f"(×{statistics.median(cold) / statistics.median(again):.0f})")

        render(base, ch, nodes, demo_lessons, args)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def render(base: str, ch: str, nodes: dict, demo_lessons: list[str], args) -> None:
    """Median paint and load times in Chromium slowed down like a cheap tablet."""
    from playwright.sync_api import sync_playwright

    rng = random.Random(2)
    pages = {
        "front page (grades)": lambda: "/",
        "volume (units + lessons)": lambda: f"/browse/{ch}/{rng.choice(nodes['volume'])}",
        "lesson": lambda: f"/lessons/{ch}/{rng.choice(nodes['lesson'])}",
        "lesson with real media": lambda: f"/lessons/{DEMO}/{rng.choice(demo_lessons)}",
        "search": lambda: "/search?q=" + urllib.parse.quote(rng.choice(QUERIES)),
        "pdf reader page": lambda: (lambda lid: f"/lessons/{DEMO}/{lid}/pdf/{lid}-pdf")(
            rng.choice(demo_lessons)),
    }
    reference = "data:text/html;charset=utf-8," + urllib.parse.quote(
        "<!doctype html><meta name=viewport content='width=device-width'><title>t</title>"
        "<p>课堂 Ketang</p>")
    pages = {"reference: a one-line page": lambda: reference, **pages}
    print(f"\nrender in Chromium, CPU ÷{args.cpu_slowdown:g}, 20 Mbit/s, 20 ms, 800×1280, "
          "fresh context each time; medians of first contentful paint (FCP) and of the "
          "load event; the reference is a one-line page (the browser's own cost):")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ref_fcp = None
            for name, make in pages.items():
                fcps, loads = [], []
                for _ in range(max(5, args.rounds // 2)):
                    context = browser.new_context(viewport={"width": 800, "height": 1280},
                                                  locale="zh-CN")
                    page = context.new_page()
                    cdp = context.new_cdp_session(page)
                    cdp.send("Emulation.setCPUThrottlingRate", {"rate": args.cpu_slowdown})
                    cdp.send("Network.enable")
                    cdp.send("Network.emulateNetworkConditions", {
                        "offline": False, "latency": 20,
                        "downloadThroughput": 20e6 / 8, "uploadThroughput": 10e6 / 8})
                    target = make()
                    page.goto(target if target.startswith("data:") else base + target,
                              wait_until="load")
                    page.wait_for_timeout(50)  # loadEventEnd is set after the load handlers
                    page.wait_for_function("performance.getEntriesByName("
                                           "'first-contentful-paint').length > 0")
                    fcp, load = page.evaluate(
                        "(() => { const n = performance.getEntriesByType('navigation')[0];"
                        " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                        " return [p ? p.startTime : 0, n ? n.loadEventEnd : 0]; })()")
                    fcps.append(fcp / 1000)
                    loads.append(load / 1000)
                    context.close()
                fcp = statistics.median(fcps)
                ref_fcp = ref_fcp or fcp
                print(f"  {name:28} FCP {ms(fcp)} (×{fcp / ref_fcp:.2f} the reference), "
                      f"load {ms(statistics.median(loads))}")
        finally:
            browser.close()


if __name__ == "__main__":
    main()
