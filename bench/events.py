"""Live event latency: from sending an append to `baton serve` until each of 50 watchers (10
with --quick) of the session (Server-Sent Events, GET /api/sessions/ID/events, as the session
page opens it) has read the message's event. The watchers and the appender share one asyncio
loop in this process (as 50 browser tabs would share a machine): the figure includes parsing
the events."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson

from bench.server import Record, Served, _check

WATCHERS = 50


def run(root: Path, quick: bool, record: Record) -> None:
    watchers = 10 if quick else WATCHERS
    print(f"event latency: {watchers} watchers of one session…", file=sys.stderr)
    served = Served(root / "events")
    try:
        appends = 5 if quick else 100
        samples, count = asyncio.run(_measure(served, appends, watchers))
    finally:
        served.stop()
    samples.sort()
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    note = (
        f"`baton serve` in its own process (SQLite); {watchers} SSE streams and the appender "
        f"on one asyncio loop in the bench process; {appends} appends of one 200-byte user "
        f"message, each timed from sending POST /api/sessions/ID/messages to each watcher "
        f"reading its event (message JSON + the page's HTML card); {len(samples)} samples of "
        f"{appends * watchers} expected, {count} received"
    )
    record(
        f"event latency, append → {watchers} SSE watchers on one server, p50 (vs 50 ms)",
        f"p50 {p50 * 1e3:.1f} ms",
        p50 / 0.050,
        "≤ 1× (p50 ≤ 50 ms)",
        p50 <= 0.050,
        note,
    )
    record(
        f"event latency, append → {watchers} SSE watchers on one server, p99 (vs 250 ms)",
        f"p99 {p99 * 1e3:.1f} ms",
        p99 / 0.250,
        "≤ 1× (p99 ≤ 250 ms)",
        p99 <= 0.250,
        note,
    )


async def _measure(served: Served, appends: int, watchers: int) -> tuple[list[float], int]:
    auth = {"Authorization": f"Bearer {served.token}"}
    limits = httpx.Limits(max_connections=watchers + 4, max_keepalive_connections=watchers + 4)
    timeout = httpx.Timeout(30.0, read=60.0)
    async with httpx.AsyncClient(
        base_url=served.url, headers=auth, timeout=timeout, limits=limits
    ) as http:
        created = await http.post("/api/sessions", json={"title": "watched"})
        session = _check(created, 201).json()["id"]
        sent: dict[int, float] = {}  # position -> when its append was sent
        seen: dict[int, int] = {}  # position -> watchers that read it
        samples: list[float] = []
        ready = 0
        all_ready = asyncio.Event()
        progress = asyncio.Event()

        async def watch() -> None:
            nonlocal ready
            path = f"/api/sessions/{session}/events"
            async with http.stream("GET", path, params={"after": 0}) as response:
                _check(response, 200)
                ready += 1
                if ready == watchers:
                    all_ready.set()
                data, kind = b"", ""
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        data = line[6:].encode()
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif not line and data:
                        now = time.perf_counter()
                        if kind == "message":
                            position = orjson.loads(data)["position"]
                            if position in sent:
                                samples.append(now - sent[position])
                                seen[position] = seen.get(position, 0) + 1
                                progress.set()
                        data = b""

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await asyncio.wait_for(all_ready.wait(), 60)
        await asyncio.sleep(0.5)  # every stream past its replay, waiting on events
        message = {"role": "user", "parts": [{"type": "text", "text": "x" * 200}]}
        path = f"/api/sessions/{session}/messages"
        for position in range(1, appends + 1):
            sent[position] = time.perf_counter()
            _check(await http.post(path, json={"messages": [message]}), 201)
            deadline = time.perf_counter() + 5
            while seen.get(position, 0) < watchers and time.perf_counter() < deadline:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), 0.5)
            await asyncio.sleep(0.02)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return samples, sum(seen.values())
