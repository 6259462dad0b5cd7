"""Figures of the HTTP server. `baton serve` runs in its own process (so the load does not
share a GIL with it), with its defaults (SQLite synchronous=FULL); this process is the client."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.data import chat
from bench.timing import paired_medians

CONNECTIONS = 4  # concurrent keep-alive connections, one client and one thread each
Record = Callable[..., None]


class Served:
    """`baton serve [--workers N]` on a free loopback port, over a fresh BATON_HOME (and the
    store `env` names); the owner's API token is read from its first-start output (None when
    the store had tokens already and none was printed)."""

    def __init__(self, home: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}
        full_env.update(BATON_HOME=str(home), BATON_USER="bench", **(env or {}))
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "serve.log"
        command = [sys.executable, "-m", "baton", "serve", "--port", str(port)]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, "--workers", str(workers)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=full_env,
            )
        try:
            self.token = self._wait()
        except BaseException:
            self.stop()
            raise

    def _wait(self) -> str | None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if "baton serving" in text:
                try:
                    if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                        found = re.search(r"API token:\s+(\S+)", text)
                        return found.group(1) if found else None
                except httpx.HTTPError:
                    pass
            if self.process.poll() is not None:
                raise RuntimeError(f"baton serve exited: {text}")
            time.sleep(0.05)
        raise RuntimeError(f"baton serve did not start: {self.log.read_text()}")

    def pids(self) -> list[int]:
        """The processes serving requests: the server itself, or its worker processes."""
        pid = self.process.pid
        try:
            kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            kids = []
        return [p for p in kids if "spawn_main" in _cmdline(p)] or [pid]

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the serving processes so far (Linux only)."""
        return cpu_seconds(self.pids())

    def stop(self) -> None:
        self.process.terminate()  # the server stops its workers
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU time of these processes so far (one that has exited counts nothing;
    None off Linux)."""
    if not Path("/proc/self/stat").exists():
        return None
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response


def run(root: Path, quick: bool, record: Record) -> None:
    print("starting `baton serve`…", file=sys.stderr)
    served = Served(root / "serve")
    try:
        appends_vs_noop(served, quick, record)
        share_page(served, quick, record)
    finally:
        served.stop()


def appends_vs_noop(served: Served, quick: bool, record: Record) -> None:
    """Requests per second of appends and of GET /api/health, loaded by wrk over the same
    number of connections, in alternating rounds of equal length; medians of the rounds. (A
    Python client in this process could not keep up with the no-op route.)"""
    from bench import load

    if not load.available():
        print("  (HTTP appends figure skipped: install wrk)", file=sys.stderr)
        return
    auth = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, headers=auth, timeout=60) as c:
        paths = [
            "/api/sessions/"
            + _check(c.post("/api/sessions", json={"title": f"appends {i}"}), 201).json()["id"]
            + "/messages"
            for i in range(CONNECTIONS)
        ]
    root = served.home
    scripts = {
        "append": (served.url, load.append_script(root, paths, served.token)),
        "noop": (served.url + "/api/health", load.get_script(root)),
    }
    seconds = 1 if quick else 2
    rounds = 1 if quick else 7
    for url, script in (
        scripts.values() if not quick else ()
    ):  # warm up connections, threads, caches
        load.wrk(url, 1, script, CONNECTIONS)
    rates: dict[str, list[float]] = {"noop": [], "append": []}
    cpu: dict[str, list[float]] = {"noop": [], "append": []}
    for _ in range(rounds):
        for name, (url, script) in scripts.items():
            before, started = served.cpu_seconds(), time.perf_counter()
            rate = load.wrk(url, seconds, script, CONNECTIONS)
            elapsed, after = time.perf_counter() - started, served.cpu_seconds()
            rates[name].append(rate)
            if before is not None and after is not None:
                cpu[name].append((after - before) / (rate * elapsed))
    appends, noops = statistics.median(rates["append"]), statistics.median(rates["noop"])
    ratio = appends / noops
    note = (
        f"`baton serve` in its own process, SQLite synchronous=FULL (the default); wrk, "
        f"{CONNECTIONS} keep-alive connections, one session each, 200-byte user messages; "
        f"medians of {rounds} alternating rounds of {seconds} s"
    )
    if cpu["append"] and cpu["noop"]:
        note += (
            f"; server CPU per request {statistics.median(cpu['append']) * 1e3:.2f} ms "
            f"vs {statistics.median(cpu['noop']) * 1e3:.2f} ms"
        )
    record(
        f"appends per second through the HTTP API vs a no-op route (GET /api/health) of the "
        f"same server, {CONNECTIONS} connections",
        f"{appends:,.0f} vs {noops:,.0f} requests/s",
        ratio,
        "≥ 0.5×",
        ratio >= 0.5,
        note,
    )


def share_page(served: Served, quick: bool, record: Record) -> None:
    """GET /share/ID of a 1,000-message session and of a 10-message one, in alternation, as
    an anonymous visitor would (no token); paired medians."""
    big, small = 1_000, 10
    auth = {"Authorization": f"Bearer {served.token}"}
    with httpx.Client(base_url=served.url, headers=auth, timeout=120) as owner:
        shares = {}
        for count in (small, big):
            sid = _check(
                owner.post("/api/sessions", json={"title": f"{count} messages"}), 201
            ).json()["id"]
            batch = chat(count, seed=count)
            for start in range(0, count, 100):
                _check(
                    owner.post(
                        f"/api/sessions/{sid}/messages",
                        json={"messages": batch[start : start + 100]},
                    ),
                    201,
                )
            share = _check(owner.post(f"/api/sessions/{sid}/shares", json={"mode": "allow"}), 201)
            shares[count] = share.json()["id"]
    sizes: dict[int, int] = {}
    with httpx.Client(base_url=served.url, timeout=60) as visitor:

        def page(count: int) -> Callable[[], None]:
            def go() -> None:
                sizes[count] = len(_check(visitor.get(f"/share/{shares[count]}"), 200).content)

            return go

        # The server allows 300 share-page requests a minute from one address: stay under.
        repeat = 3 if quick else 40
        t_small, t_big = paired_medians(page(small), page(big), repeat, 2)
    ratio = t_big / t_small
    record(
        f"share page (GET /share/ID) of a {big:,}-message session vs of a {small}-message one",
        f"{t_big * 1e3:.1f} ms vs {t_small * 1e3:.1f} ms",
        ratio,
        "≤ 2×",
        ratio <= 2,
        f"the page holds the first 100 messages (its script loads the rest), so 100 vs {small} "
        f"({sizes[big] / 1e3:.0f} KB vs {sizes[small] / 1e3:.0f} KB of HTML); messages are "
        "prompts, Markdown replies with a Python block, tool outputs of 2-6 KB; "
        f"{repeat} alternating pairs, medians",
    )
