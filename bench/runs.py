"""Figures of server runs (issue 15), with the fake model of the tests (a local HTTP server,
no hosted model) and a service as `baton serve` builds it:

- from Start (the run queued) to the first model request, setup commands excluded, with a
  warm mirror, for a repository of 10,000 files (2,000 with --quick): ≤ 1 s;
- cold resume of a session whose snapshot has 100 unpushed commits (and a patch) into a new
  workspace, against a plain `git clone` of the same repository: ≤ 2×;
- runs per minute with two runner threads against one, with a scripted model whose answer
  streams for about two seconds: ≥ 1.8×."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.model import FakeModel, Step, model_env

from baton import gitstate
from baton.config import Settings, build_service
from baton.core import ids
from baton.core.runs import FINAL_STATES
from baton.runs.execute import execute
from baton.runs.queue import Runners
from baton.runs.workspace import Workspaces
from baton.service import Service
from bench.git import build
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


def first_request(root: Path, quick: bool, record: Record) -> None:
    files = 2_000 if quick else 10_000
    repo = build(root / "runs-first", files)
    origin = root / "runs-first" / f"git-{files}-origin.git"
    fake = FakeModel()
    asked: list[float] = []

    def answer(body: dict[str, Any]) -> Step:
        asked.append(time.perf_counter())
        return Step(text="ok")

    fake.responder = answer
    service, settings, owner = _service(root / "runs-first-home", fake)
    try:
        added = service.add_repo(owner, str(origin))
        Workspaces(settings.home).mirror(added.url)  # a warm mirror
        times, whole = [], []
        for _ in range(3 if quick else 5):
            asked.clear()
            start = time.perf_counter()
            run, _ = service.start_run(owner, "say ok", repo=added.id)
            ended = execute(service, settings, run.id, "bench")
            assert ended is not None and ended.state == "done", ended
            times.append(asked[0] - start)
            whole.append(time.perf_counter() - start)
        took = statistics.median(times)
    finally:
        service.close()
        fake.close()
    del repo
    record(
        f"server run: Start to the first model request, warm mirror, {files} files",
        f"{took * 1e3:.0f} ms (target 1 s; the run done, its files checked out and its "
        f"snapshot taken, at {statistics.median(whole) * 1e3:.0f} ms)",
        took / 1.0,
        "≤ 1 s",
        took <= 1.0,
        "a new session: mirror fetched, workspace cloned, the instructions and setup files "
        "read from the start commit; the files are checked out (then the git context "
        "recorded) beside the first request, the tools wait for them; no setup commands",
    )


def cold_resume(root: Path, quick: bool, record: Record) -> None:
    files = 1_000 if quick else 10_000
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

    t_clone, t_resume = paired_medians(clone, resume, 3 if quick else 5, 1)
    record(
        f"cold resume (100 unpushed commits, {files} files) vs git clone",
        f"{t_resume * 1e3:.0f} ms vs {t_clone * 1e3:.0f} ms",
        t_resume / t_clone,
        "≤ 2×",
        t_resume / t_clone <= 2,
        "clone from the warm mirror, the bundle fetched, checkout, the patch applied",
    )


def two_runners(root: Path, quick: bool, record: Record) -> None:
    runs = 4 if quick else 8
    base = root / "runs-pool"
    build(base, 200)
    origin = base / "git-200-origin.git"

    def go(n: int) -> float:
        fake = FakeModel()
        fake.responder = lambda body: Step(text="done " * 8, chunk=2, delay=0.1)
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


def run(root: Path, quick: bool, record: Record) -> None:
    from baton import sandbox

    try:
        sandbox.check()
    except sandbox.SandboxUnavailable as exc:
        print(f"  server runs: skipped ({exc})", file=sys.stderr)
        return
    first_request(root, quick, record)
    cold_resume(root, quick, record)
    two_runners(root, quick, record)


FIGURES = {"first": first_request, "cold": cold_resume, "pool": two_runners}

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
