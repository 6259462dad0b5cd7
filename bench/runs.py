"""Figures of server runs (issue 15), with the fake model of the tests (a local HTTP server,
no hosted model):

- from Start (POST /api/runs to `baton serve`, embedded store, its runner thread) to the first
  event on the session's event stream, and to the first model request, setup commands
  excluded, with a warm mirror, for a repository of 10,000 files (300 with --quick): ≤ 1 s;
- cold resume of a session whose snapshot has 100 unpushed commits (and a patch) into a new
  workspace, against a plain `git clone` of the same repository: ≤ 2×;
- runs per minute with two `baton worker` processes against one on PostgreSQL (two runner
  threads against one on the embedded store when PostgreSQL does not answer), with a scripted
  model whose answer streams for about two seconds: ≥ 1.8×.

`python -m bench --only runs` runs these alone."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.fixtures.model import FakeModel, Step, model_env

from baton import gitstate
from baton.config import Settings, build_service
from baton.core import ids
from baton.core.runs import FINAL_STATES
from baton.runs.queue import Jobs, Runners, attach
from baton.runs.workspace import Workspaces
from baton.service import Service
from bench.git import build
from bench.server import Served, _check
from bench.timing import paired_medians

Record = Callable[..., None]


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


def _service(home: Path, fake: FakeModel) -> tuple[Service, Settings, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        **model_env(fake),
        "BATON_HOME": str(home),
        "BATON_MAX_RUNS": "1000",
    }
    settings = Settings.load(env)
    service = build_service(settings, env={})
    return service, settings, service.account("bench").id


def first_event_and_request(root: Path, quick: bool, record: Record) -> None:
    """`baton serve` (embedded store, its one runner thread) in its own process, the fake model
    in this one: POST /api/runs of a new session, then GET /api/sessions/ID/events as the
    session page opens it. Timed from sending the POST: the first event read on the stream,
    and the first request reaching the model. A first run warms the mirror; each measured run
    is a new session, so its workspace is cloned and checked out (beside the first request:
    runs.execute)."""
    files = 300 if quick else 10_000
    print(f"server runs: Start → first event / model request, {files} files…", file=sys.stderr)
    base = root / "runs-first"
    build(base, files)
    origin = base / f"git-{files}-origin.git"
    fake = FakeModel()
    asked: list[float] = []

    def answer(body: dict[str, Any]) -> Step:
        asked.append(time.perf_counter())
        return Step(text="ok")

    fake.responder = answer
    load = os.getloadavg()[0]
    served = Served(root / "runs-first-home", env={**model_env(fake), "BATON_MAX_RUNS": "1000"})
    firsts: list[float] = []
    kinds: list[str] = []
    runnings: list[float] = []
    requests: list[float] = []
    clones: list[float] = []

    def clone() -> None:
        _git(base, "clone", "-q", str(origin), str(base / "clone"))
        shutil.rmtree(base / "clone")

    try:
        auth = {"Authorization": f"Bearer {served.token}"}
        with httpx.Client(base_url=served.url, headers=auth, timeout=60) as http:
            repo = _check(http.post("/api/repos", json={"url": str(origin)}), 201).json()["id"]
            for i in range(1 + (1 if quick else 7)):  # the first warms the mirror
                asked.clear()
                start = time.perf_counter()
                started = http.post("/api/runs", json={"repo": repo, "prompt": f"say ok {i}"})
                session = _check(started, 201).json()["session"]["id"]
                first, kind, running = _watch(http, session, start)
                if i == 0:
                    continue
                firsts.append(first)
                kinds.append(kind)
                runnings.append(running)
                requests.append(asked[0] - start)
                clones.append(_timed(clone))  # in alternation: the same load on the machine
    finally:
        served.stop()
        fake.close()
    plain = statistics.median(clones)
    first = statistics.median(firsts)
    request = statistics.median(requests)
    running = statistics.median(runnings)
    note = (
        f"`baton serve` (SQLite, --runners 1) in its own process, the fake model in the bench "
        f"process; a warm mirror, a new session each time (workspace cloned from the mirror "
        f"and checked out: {files} files), no setup commands; medians of {len(firsts)} runs; "
        f"load average {load:.1f} at the start (the machine is shared)"
    )
    record(
        f"server run: Start to the first event on the session's stream, warm mirror, {files} files",
        f"{first * 1e3:.0f} ms (target 1 s)",
        first / 1.0,
        "≤ 1 s",
        first <= 1.0,
        f"{note}; the first event is `{kinds[0]}` (the run, queued, sent on connect); the run "
        f"event `running` came at {running * 1e3:.0f} ms; timed from sending POST /api/runs "
        f"to reading the event on GET /api/sessions/ID/events opened after its answer",
    )
    record(
        f"server run: Start to the first model request, warm mirror, {files} files",
        f"{request * 1e3:.0f} ms (target 1 s)",
        request / 1.0,
        "≤ 1 s",
        request <= 1.0,
        f"{note}; timed from sending POST /api/runs to the request reaching the fake model "
        f"(the runner claimed the run, fetched the mirror, cloned the workspace without "
        f"its files, read AGENTS.md and .baton/setup.toml from the commit, started the agent; "
        f"the files are checked out and the git context recorded beside the request, the "
        f"tools wait for them); a plain `git clone` of "
        f"the repository (after each run, in alternation) took {plain * 1e3:.0f} ms: "
        f"{request / plain:.2f}× of it",
    )


def _timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _watch(http: httpx.Client, session: str, start: float) -> tuple[float, str, float]:
    """Read the session's event stream until its run ends: when the first event was read
    (and its kind), and when the run's `running` state was."""
    first: tuple[float, str] | None = None
    running = 0.0
    path = f"/api/sessions/{session}/events"
    with http.stream("GET", path, params={"after": 0}) as response:
        _check(response, 200)
        data, kind = b"", ""
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[6:].encode()
            elif line.startswith("event: "):
                kind = line[7:]
            elif not line and data:
                now = time.perf_counter()
                if first is None:
                    first = (now - start, kind)
                if kind == "run":
                    state = orjson.loads(data)["state"]
                    if state == "running" and not running:
                        running = now - start
                    if state in FINAL_STATES:
                        if state != "done":
                            raise RuntimeError(f"the run ended {state}: {data.decode()}")
                        break
                data, kind = b"", ""
    assert first is not None
    return first[0], first[1], running


def cold_resume(root: Path, quick: bool, record: Record) -> None:
    files = 300 if quick else 10_000
    base = root / "runs-cold"
    repo = build(base, files)
    origin = base / f"git-{files}-origin.git"
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "pushed")
    _git(repo, "push", "-q", "origin", "main")
    for i in range(100):  # 100 commits the remote does not have
        (repo / "pkg0" / "mod0" / f"file{i}.py").write_text(f"VALUE = {i} + 1\n")
        _git(repo, "commit", "-q", "-am", f"local {i}")
    (repo / "pkg0" / "mod1" / "file100.py").write_text("UNCOMMITTED = True\n")
    store: dict[str, bytes] = {}

    def put(data: bytes) -> str:
        sha = ids.sha256_hex(data)
        store[sha] = data
        return sha

    git = gitstate.capture(repo, put)
    assert git is not None and git["ahead"] == 100 and git["patch"]
    spaces = Workspaces(base / "home")
    spaces.mirror(str(origin))  # the mirror is warm, the workspace is not
    count = [0]

    def resume() -> None:
        count[0] += 1
        ready = spaces.prepare(f"ses_bench{count[0]}", str(origin), git=git, get_blob=store.get)
        assert ready.how == "cold"
        shutil.rmtree(ready.path)

    def clone() -> None:
        dest = base / "clone"
        _git(base, "clone", "-q", str(origin), str(dest))
        shutil.rmtree(dest)

    t_clone, t_resume = paired_medians(clone, resume, 1 if quick else 5, 0 if quick else 1)
    record(
        f"cold resume (100 unpushed commits, {files} files) vs git clone",
        f"{t_resume * 1e3:.0f} ms vs {t_clone * 1e3:.0f} ms",
        t_resume / t_clone,
        "≤ 2×",
        t_resume / t_clone <= 2,
        "clone from the warm mirror, the bundle fetched, checkout, the patch applied",
    )


def two_runners(root: Path, quick: bool, record: Record) -> None:
    runs = 2 if quick else 8
    delay = 0.02 if quick else 0.1  # 20 chunks: the answer streams for 0.4 s or 2 s
    base = root / "runs-pool"
    build(base, 200)
    origin = base / "git-200-origin.git"

    def go(n: int) -> float:
        fake = FakeModel()
        fake.responder = lambda body: Step(text="done " * 8, chunk=2, delay=delay)
        service, settings, owner = _service(base / f"home-{n}", fake)
        try:
            added = service.add_repo(owner, str(origin))
            Workspaces(settings.home).mirror(added.url)
            pool = Runners(service, settings, n)
            start = time.perf_counter()
            pool.start()
            queued = [service.start_run(owner, f"run {i}", repo=added.id)[0] for i in range(runs)]
            while not all(service.run(owner, r.id).state in FINAL_STATES for r in queued):
                time.sleep(0.05)
            took = time.perf_counter() - start
            pool.stop()
            assert all(service.run(owner, r.id).state == "done" for r in queued)
            return took
        finally:
            service.close()
            fake.close()

    one, two = go(1), go(2)
    record(
        f"runs per minute, two runners vs one ({runs} runs, scripted model)",
        f"{60 * runs / two:.1f} vs {60 * runs / one:.1f} runs/min",
        one / two,
        "≥ 1.8×",
        one / two >= 1.8,
    )


def two_workers(root: Path, url: str, quick: bool, record: Record) -> None:
    """`baton worker` processes on PostgreSQL (procrastinate), one then two, each executing
    one run at a time; the runs queued by a service in this process at once, timed until
    every one is done. The scripted model streams its answer for about two seconds."""
    count = 2 if quick else 12
    delay = 0.02 if quick else 0.1  # 20 chunks: the answer streams for 0.4 s or 2 s
    base = root / "runs-workers"
    build(base, 200)
    origin = base / "git-200-origin.git"
    fake = FakeModel()
    fake.responder = lambda body: Step(text="done " * 8, chunk=2, delay=delay)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        **model_env(fake),
        "BATON_DATABASE_URL": url,
        "BATON_BLOB_URL": f"file://{base / 'blobs'}",
        "BATON_MAX_RUNS": "1000",
        "BATON_USER": "bench",
    }

    cpu: dict[int, float] = {}
    load = os.getloadavg()[0]

    def go(n: int) -> float:
        home = base / f"home-{n}"
        home.mkdir()
        settings = Settings.load({**env, "BATON_HOME": str(home)})
        service = attach(build_service(settings, env={}), settings)
        logs = [home / f"worker-{i}.log" for i in range(n)]
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "baton", "worker", "--concurrency", "1"],
                env={**env, "BATON_HOME": str(home)},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        try:
            owner = service.account("bench").id
            added = service.add_repo(owner, str(origin), name=f"workers-{n}")
            Workspaces(settings.home).mirror(added.url)  # one machine: the mirror is shared
            deadline = time.monotonic() + 60
            while not all("executing runs" in log.read_text() for log in logs):
                if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                    raise RuntimeError("baton worker did not start: " + _tails(logs))
                time.sleep(0.1)
            time.sleep(0.2 if quick else 1)  # past their start: waiting for jobs
            cpu_before = _cpu_with_children([w.pid for w in workers])
            start = time.perf_counter()
            queued = [service.start_run(owner, f"run {i}", repo=added.id)[0] for i in range(count)]
            while not all(service.run(owner, r.id).state in FINAL_STATES for r in queued):
                if time.perf_counter() - start > 300:
                    raise RuntimeError("the runs did not end: " + _tails(logs))
                time.sleep(0.05)
            took = time.perf_counter() - start
            cpu[n] = (_cpu_with_children([w.pid for w in workers]) - cpu_before) / count
            states = [service.run(owner, r.id).state for r in queued]
            if states != ["done"] * count:
                raise RuntimeError(f"runs ended {states}: " + _tails(logs))
            return took
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            if isinstance(service.queue, Jobs):
                service.queue.close()
            service.close()

    try:
        one, two = go(1), go(2)
    finally:
        fake.close()
    record(
        f"runs per minute, two workers vs one on PostgreSQL ({count} runs, scripted model)",
        f"{60 * count / two:.1f} vs {60 * count / one:.1f} runs/min",
        one / two,
        "≥ 1.8×",
        one / two >= 1.8,
        f"`baton worker --concurrency 1` processes (procrastinate) on one machine of "
        f"{os.cpu_count()} cores, sharing its mirror; {count} runs queued at once, each a new "
        f"session of a 200-file repository whose model answer streams for {20 * delay:g} s; "
        f"timed from "
        f"queueing to the last run done; CPU per run (workers and their git and sandbox "
        f"processes): {cpu[1]:.2f} s with one worker, {cpu[2]:.2f} s with two; load average "
        f"{load:.1f} at the start (the machine is shared)",
    )


def _cpu_with_children(pids: list[int]) -> float:
    """User + system CPU seconds of these processes and of their children they waited for."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def _tails(logs: list[Path]) -> str:
    return " | ".join(log.read_text("utf-8", "replace")[-1500:] for log in logs if log.exists())


def run(root: Path, quick: bool, record: Record) -> None:
    from baton import sandbox

    try:
        sandbox.check()
    except sandbox.SandboxUnavailable as exc:
        print(f"  server runs: skipped ({exc})", file=sys.stderr)
        return
    first_event_and_request(root, quick, record)
    cold_resume(root, quick, record)
    url = _postgres()
    if url is None:  # the embedded store's runner threads instead
        two_runners(root, quick, record)
        return
    try:
        two_workers(root, url, quick, record)
    finally:
        _drop(url)


def _postgres() -> str | None:
    """A fresh schema in the PostgreSQL of bench/scaleout.py (None when there is none)."""
    from bench.scaleout import PG

    try:
        import psycopg

        with psycopg.connect(PG, connect_timeout=3, autocommit=True) as conn:
            schema = "bench_runs_" + secrets.token_hex(4)
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:
        print(f"  (two workers on PostgreSQL skipped: {exc}): runner threads", file=sys.stderr)
        return None
    return f"{PG}?options=-csearch_path%3D{schema}"


def _drop(url: str) -> None:
    import psycopg

    from bench.scaleout import PG

    schema = url.rsplit("%3D", 1)[1]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


FIGURES = {"first": first_event_and_request, "cold": cold_resume, "pool": two_runners}

if __name__ == "__main__":  # python -m bench.runs [--quick] [first|cold|pool …]: these alone
    import tempfile

    chosen = [a for a in sys.argv[1:] if not a.startswith("--")] or list(FIGURES)
    with tempfile.TemporaryDirectory(prefix="baton-bench-runs-") as folder:
        for name in chosen:
            FIGURES[name](
                Path(folder),
                "--quick" in sys.argv,
                lambda *figure: print(*figure[:4], sep=" | "),
            )
