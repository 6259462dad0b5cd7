"""Figures of the scale-out store (PostgreSQL on 127.0.0.1:5432, database `test`):

- appends per second over HTTP with `baton serve --workers 2` vs `--workers 1`, both over
  the same PostgreSQL database, loaded by wrk (Debian's package) in alternating rounds; and
  where the time goes, from py-spy samples of the one-process server and the CPU time each
  process used (/proc), not guessed;
- loading a 10,000-message session from PostgreSQL vs from SQLite (same messages).

Skipped with a note when PostgreSQL, wrk or py-spy is missing."""

from __future__ import annotations

import collections
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import load
from bench.data import messages
from bench.server import Served, _check, cpu_seconds
from bench.timing import paired_medians

Record = Callable[..., None]
PG = "postgresql://postgres@127.0.0.1:5432/test"
CONNECTIONS = 8  # wrk threads, one keep-alive connection each, one session each


def run(root: Path, quick: bool, record: Record) -> None:
    try:
        import psycopg

        psycopg.connect(PG, connect_timeout=3).close()
    except Exception as exc:
        print(f"  (scale-out figures skipped: no PostgreSQL at {PG}: {exc})", file=sys.stderr)
        return
    schema = "bench_" + secrets.token_hex(4)
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        load_vs_sqlite(root, url, quick, record)
        if not load.available():
            print("  (HTTP scale-out figure skipped: install wrk)", file=sys.stderr)
            return
        appends_two_vs_one(root, url, quick, record)
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def load_vs_sqlite(root: Path, url: str, quick: bool, record: Record) -> None:
    from baton.scanning import SecretScanner
    from baton.service import Service
    from baton.store.blobs import LocalBlobStore
    from baton.store.postgres import PostgresStore
    from baton.store.sqlite import SQLiteStore

    count = 500 if quick else 10_000
    print(f"loading {count} messages into PostgreSQL and SQLite…", file=sys.stderr)
    batch = messages(count, seed=count)
    services = {
        "postgres": Service(
            PostgresStore(url), LocalBlobStore(root / "pg-blobs"), scanner=SecretScanner({})
        ),
        "sqlite": Service(
            SQLiteStore(root / "pg-vs" / "baton.db"),
            LocalBlobStore(root / "pg-vs" / "blobs"),
            scanner=SecretScanner({}),
        ),
    }
    sessions = {}
    for name, service in services.items():
        owner = service.account("bench").id
        sid = service.create(owner).id
        for start in range(0, count, 500):
            service.append(owner, sid, batch[start : start + 500])
        sessions[name] = (owner, sid)

    def load(name: str) -> Callable[[], Any]:
        service, (owner, sid) = services[name], sessions[name]
        return lambda: service.messages(owner, sid)

    t_sqlite, t_pg = paired_medians(load("sqlite"), load("postgres"), 3 if quick else 15)
    # the same conversation (ids differ: each store stamped its own arrival times)
    assert [m.parts for m in load("sqlite")()] == [m.parts for m in load("postgres")()]
    for service in services.values():
        service.close()
    ratio = t_pg / t_sqlite
    record(
        f"load a {count:,}-message session from PostgreSQL vs from SQLite",
        f"{t_pg * 1e3:.0f} ms vs {t_sqlite * 1e3:.0f} ms",
        ratio,
        "≤ 2×",
        ratio <= 2,
        "Service.messages (headers of every message; long tool outputs are blobs), the same "
        "messages in both; PostgreSQL on loopback, one query along the (root, depth) index",
    )


def _cpu_of(pids: list[int]) -> float:
    return cpu_seconds(pids) or 0.0


def _postgres_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and "postgres" in _comm(int(p))]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wrk(server: Served, token: str, paths: list[str], seconds: float, root: Path) -> float:
    return load.wrk(server.url, round(seconds), load.append_script(root, paths, token), CONNECTIONS)


def appends_two_vs_one(root: Path, url: str, quick: bool, record: Record) -> None:
    print("starting `baton serve --workers 1` and `--workers 2` over PostgreSQL…", file=sys.stderr)
    one = Served(root / "serve-1", 1, {"BATON_DATABASE_URL": url})
    two = None
    try:
        token = one.token
        assert token, one.log.read_text()
        two = Served(root / "serve-2", 2, {"BATON_DATABASE_URL": url})
        with httpx.Client(base_url=one.url, headers={"Authorization": f"Bearer {token}"}) as c:
            paths = [
                "/api/sessions/"
                + _check(c.post("/api/sessions", json={"title": f"load {i}"}), 201).json()["id"]
                + "/messages"
                for i in range(CONNECTIONS)
            ]
        seconds = 1.0 if quick else 4.0
        rounds = 1 if quick else 7
        for server in (one, two) if not quick else ():  # warm up
            _wrk(server, token, paths, 1.0, root)
        rates: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(rounds):
            for workers, server in ((1, one), (2, two)):
                pg_pids = _postgres_pids()
                before = (_cpu_of(server.pids()), _cpu_of(pg_pids), time.perf_counter())
                rate = _wrk(server, token, paths, seconds, root)
                elapsed = time.perf_counter() - before[2]
                rates[workers].append(rate)
                cpu[f"server{workers}"].append((_cpu_of(server.pids()) - before[0]) / elapsed)
                cpu[f"pg{workers}"].append((_cpu_of(pg_pids) - before[1]) / elapsed)
        profile = _profile(one, token, paths, root, 1 if quick else 4)
    finally:
        one.stop()
        if two is not None:
            two.stop()
    r1, r2 = statistics.median(rates[1]), statistics.median(rates[2])
    med = {k: statistics.median(v) for k, v in cpu.items()}
    note = (
        f"wrk, {CONNECTIONS} connections, one session each, 200-byte user messages; medians "
        f"of {rounds} alternating rounds of {seconds:.0f} s. CPU in cores: one process "
        f"{med['server1']:.2f} + PostgreSQL {med['pg1']:.2f}; two processes "
        f"{med['server2']:.2f} + PostgreSQL {med['pg2']:.2f} (of 2 cores, wrk uses the rest). "
        f"py-spy of the one-process server: {profile}"
    )
    ratio = r2 / r1
    record(
        "appends per second over HTTP on PostgreSQL, two server processes vs one",
        f"{r2:,.0f} vs {r1:,.0f} requests/s",
        ratio,
        "≥ 1.3×",
        ratio >= 1.3,
        note,
    )


# Where a sample of the server's threads is. First by the innermost frame: a thread waiting
# (for PostgreSQL's answer, or idle: a worker thread waiting for work, the event loop waiting
# for sockets); the others run Python, attributed to the innermost frame naming a library.
WAITING = [
    ("waiting for PostgreSQL's answer", ("Connection.wait (psycopg",)),
    ("idle", ("Condition.wait", "EpollSelector.select", "Event.wait", "Queue.get")),
]
CATEGORIES = [
    ("psycopg (sending queries, reading rows)", ("psycopg",)),
    ("baton (validation, hashing, rules)", ("baton/",)),
    ("JSON (orjson, pydantic)", ("orjson", "pydantic")),
    ("HTTP (uvicorn, h11, starlette, fastapi)", ("uvicorn", "h11", "starlette", "fastapi")),
    ("thread hand-off (anyio, asyncio)", ("anyio", "asyncio", "threading", "concurrent")),
]


def _profile(server: Served, token: str, paths: list[str], root: Path, seconds: int) -> str:
    beside = Path(sys.executable).with_name("py-spy")  # in the venv, when it is not on PATH
    spy = shutil.which("py-spy") or (str(beside) if beside.is_file() else None)
    if spy is None:
        return "not measured (pip install py-spy)"
    raw = root / "profile.txt"
    record = subprocess.Popen(
        [spy, "record", "-p", str(server.pids()[0]), "-d", str(seconds), "-r", "200",
         "-f", "raw", "-o", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    _wrk(server, token, paths, seconds, root)
    record.wait(timeout=60)
    if not raw.exists():
        return "not measured (py-spy could not attach)"
    waiting: collections.Counter[str] = collections.Counter()
    running: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        kind = next((name for name, keys in WAITING if any(k in leaf for k in keys)), None)
        if kind is not None:
            waiting[kind] += int(n)
        else:
            running[_category(frames)] += int(n)
    busy = sum(running.values())
    if not busy:
        return "no samples"
    pg_wait = waiting["waiting for PostgreSQL's answer"]
    parts = [f"{name} {100 * c / busy:.0f}%" for name, c in running.most_common()]
    return (
        f"threads running Python: {', '.join(parts)} ({busy} samples); "
        f"samples of threads waiting for PostgreSQL's answer: {pg_wait} "
        f"({pg_wait / (busy + pg_wait) * 100:.0f}% of non-idle samples)"
    )


def _category(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in frame for n in needles):
                return name
    return "other (interpreter, logging, ...)"
