"""Page timings in a real browser: a session page of 10,000 messages against one of 10, in the
same Chromium, in alternation. The page opens at the latest turn and holds one page of messages
(earlier ones load as the reader scrolls up), so its cost should not grow with the session.

Figures: first contentful paint and interactive (DOMContentLoaded done: the page's scripts
have run) from the browser's own Performance timeline, medians of alternating loads."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.data import chat
from bench.server import Record, Served, _check

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  return {paint: paint ? paint.startTime : null, interactive: nav.domContentLoadedEventEnd,
          bytes: nav.transferSize};
}"""


def available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


def _session(client: httpx.Client, count: int) -> str:
    sid = str(
        _check(client.post("/api/sessions", json={"title": f"{count} messages"}), 201).json()["id"]
    )
    batch = chat(count, seed=count)
    for start in range(0, count, 500):
        _check(
            client.post(
                f"/api/sessions/{sid}/messages", json={"messages": batch[start : start + 500]}
            ),
            201,
        )
    return sid


def run(root: Path, quick: bool, record: Record) -> None:
    if not available():
        print("  (page timings skipped: needs playwright and /usr/bin/chromium)", file=sys.stderr)
        return
    from playwright.sync_api import sync_playwright

    big, small = (500 if quick else 10_000), 10
    print(f"page timings: building sessions of {small} and {big:,} messages…", file=sys.stderr)
    served = Served(root / "pages")
    try:
        auth = {"Authorization": f"Bearer {served.token}"}
        with httpx.Client(base_url=served.url, headers=auth, timeout=300) as owner:
            ids = {count: _session(owner, count) for count in (small, big)}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                measured = _measure(browser, served, ids, 1 if quick else 15, 1 if quick else 2)
            finally:
                browser.close()
    finally:
        served.stop()
    paint = {c: statistics.median(v["paint"] for v in measured[c]) for c in (small, big)}
    ready = {c: statistics.median(v["interactive"] for v in measured[c]) for c in (small, big)}
    size = {c: measured[c][-1]["bytes"] for c in (small, big)}
    rounds = len(measured[small])
    note = (
        f"Chromium (headless) against `baton serve`, logged in; the page opens at the latest "
        f"turn with one page of 100 messages; first contentful paint {paint[big]:.0f} ms vs "
        f"{paint[small]:.0f} ms; {size[big] / 1e3:.0f} KB vs {size[small] / 1e3:.0f} KB "
        f"transferred; {rounds} alternating loads, medians"
    )
    record(
        f"session page of {big:,} messages vs of {small}: time to interactive, Chromium",
        f"{ready[big]:.0f} ms vs {ready[small]:.0f} ms",
        ready[big] / ready[small],
        "≤ 1 s",
        ready[big] <= 1000,
        note,
    )
    record(
        f"session page of {big:,} messages vs of {small}: first contentful paint, Chromium",
        f"{paint[big]:.0f} ms vs {paint[small]:.0f} ms",
        paint[big] / paint[small],
        "≤ 1 s",
        paint[big] <= 1000,
        note,
    )


def _measure(
    browser: Any, served: Served, ids: dict[int, str], rounds: int, warmup: int
) -> dict[int, list[dict[str, float]]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(served.url + "/login")
    page.fill("input[name=token]", served.token or "")
    with page.expect_navigation():
        page.click("#login")
    out: dict[int, list[dict[str, float]]] = {count: [] for count in ids}
    for i in range(rounds + warmup):
        for count, sid in ids.items():
            page.goto(f"{served.url}/sessions/{sid}", wait_until="load")
            timings = page.evaluate(TIMINGS)
            while timings["paint"] is None:  # painted after load: rare, but wait for it
                page.wait_for_timeout(20)
                timings = page.evaluate(TIMINGS)
            if i >= warmup:
                out[count].append(timings)
    context.close()
    return out


if __name__ == "__main__":  # python -m bench.pages: this figure alone
    import json
    import tempfile

    figures: list[dict[str, Any]] = []

    def keep(name: str, measured: str, ratio: float, target: str, ok: bool, note: str = "") -> None:
        figures.append({"figure": name, "measured": measured, "ratio": round(ratio, 3),
                        "target": target, "pass": ok, "note": note})  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        run(Path(folder), "--quick" in sys.argv, keep)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
