"""Who executes queued runs: Runner threads on the embedded store (woken by the service, or
finding a run another process queued), `baton worker` processes on PostgreSQL (procrastinate),
and the reaper that fails the run of a worker killed with kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.config import Settings, build_service
from baton.core.runs import DONE, FAILED, RUNNING
from baton.runs.execute import SHUTDOWN
from baton.runs.queue import Jobs, Reaper, Runners, attach
from baton.service import Service
from tests.agent.test_sandbox import running
from tests.fixtures.model import FakeModel, call
from tests.runs.conftest import texts

SRC = Path(__file__).resolve().parents[2] / "src"


def wait_for(condition: Any, timeout: float = 60.0, why: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"not in time: {why}"
        time.sleep(0.1)


def test_runners_execute_queued_runs(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    fake_model.reply("First done.").reply("Second done.")
    runners = Runners(service, settings, 2).start()
    try:
        assert service.queue is runners
        run, session = service.start_run(owner, "Say done", repo=repo.id)
        wait_for(lambda: service.run(owner, run.id).state == DONE, why="the first run")
        # a run queued by another process (its own service, no runners): found by polling
        other = build_service(settings, env={})
        try:
            later, _ = other.start_run(owner, "Say done again", repo=repo.id)
        finally:
            other.close()
        wait_for(lambda: service.run(owner, later.id).state == DONE, why="the second run")
    finally:
        runners.stop()
    ended = service.run(owner, run.id)
    assert ended.worker is not None and ended.worker.startswith(f"{socket.gethostname()}/")
    assert texts(service, owner, session.id)[-1] == ("assistant", "First done.")
    # the reaper removes the workspace of a deleted session
    workspace = runners.workspaces.path(session.id)
    assert workspace.is_dir()
    Reaper(service, runners.workspaces).reap()
    assert workspace.is_dir()
    service.delete(owner, session.id)
    Reaper(service, runners.workspaces).reap()
    assert not workspace.exists()


# ---------------------------------------------------------------------------------------------
# PostgreSQL: procrastinate and `baton worker`


@pytest.fixture
def pg_env(run_env: dict[str, str], postgres_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **run_env,
        "BATON_DATABASE_URL": postgres_url,
        "BATON_BLOB_URL": f"file://{tmp_path / 'shared-blobs'}",
        "PYTHONPATH": str(SRC),
    }


@pytest.fixture
def pg_service(pg_env: dict[str, str]) -> Iterator[Service]:
    settings = Settings.load(pg_env)
    service = attach(build_service(settings, env={}), settings)
    assert isinstance(service.queue, Jobs)
    yield service
    service.queue.close()
    service.close()


class Workers:
    """`baton worker` processes, killed at the end of the test."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, home: Path) -> subprocess.Popen[bytes]:
        home.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"worker-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "baton", "worker", "--concurrency", "2"],
            env={**self.env, "BATON_HOME": str(home)},
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text("utf-8", "replace") for p in self.folder.glob("worker-*.log"))

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(pg_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    made = Workers(pg_env, tmp_path)
    yield made
    made.close()


def test_a_worker_process_executes_a_run_on_postgresql(
    pg_service: Service, workers: Workers, fake_model: FakeModel, origin: Path, git_repo: Path
) -> None:
    service = pg_service
    owner = service.account("alice", "Alice").id
    repo = service.add_repo(owner, str(origin))
    fake_model.reply("", call("c1", "write_file", path="done.txt", content="done\n"))
    fake_model.reply("Wrote done.txt.")
    workers.start(Path(workers.folder) / "machine-a")
    run, session = service.start_run(owner, "Write done.txt", repo=repo.id)
    wait_for(
        lambda: service.run(owner, run.id).state == DONE, 90, f"the run: {workers.logs()[-2000:]}"
    )
    assert texts(service, owner, session.id)[-1] == ("assistant", "Wrote done.txt.")
    snapshot = service.get(owner, session.id).git
    assert snapshot is not None and snapshot["patch"]["files"] == 1


def test_a_worker_killed_mid_run_is_reaped_and_the_session_continues(
    pg_service: Service, workers: Workers, fake_model: FakeModel, origin: Path, git_repo: Path
) -> None:
    service = pg_service
    owner = service.account("alice", "Alice").id
    repo = service.add_repo(owner, str(origin))
    tag = f"baton-worker-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    first = workers.start(Path(workers.folder) / "machine-a")
    run, session = service.start_run(owner, "Wait a long time", repo=repo.id)
    wait_for(lambda: running(tag), 90, f"the command: {workers.logs()[-2000:]}")
    assert service.run(owner, run.id).state == RUNNING
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed = time.monotonic()
    wait_for(lambda: not running(tag), 10, "the sandbox died with its worker")
    reaper = Reaper(service, every=0.5, after=4).start()
    try:
        wait_for(lambda: service.run(owner, run.id).state == FAILED, 30, "the reaper")
    finally:
        reaper.stop()
    assert time.monotonic() - killed < 30
    failed = service.run(owner, run.id)
    assert failed.error == "the worker stopped answering"
    assert service.verify(owner, session.id).ok
    # Continue: another worker, on another machine, takes the next run of the session
    fake_model.reply("Picked it up again.")
    workers.start(Path(workers.folder) / "machine-b")
    again, same = service.start_run(owner, "Carry on", session_id=session.id)
    assert same.id == session.id
    wait_for(
        lambda: service.run(owner, again.id).state == DONE, 90, f"the next run: {workers.logs()}"
    )
    found = texts(service, owner, session.id)
    assert found[-4:] == [
        (
            "tool",
            "interrupted: this tool call did not finish (the session stopped before its "
            "result was recorded); check the state before trying again",
        ),
        ("system", "run failed: the worker stopped answering"),
        ("user", "Carry on"),
        ("assistant", "Picked it up again."),
    ]
    assert service.verify(owner, session.id).ok


def test_baton_worker_needs_postgresql(run_env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "baton", "worker"],
        env={**run_env, "PYTHONPATH": str(SRC)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: baton worker needs the PostgreSQL store (BATON_DATABASE_URL=postgresql://…); "
        "on the embedded store `baton serve --runners N` executes the runs\n"
    )


def serve(env: dict[str, str], folder: Path, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "baton", "serve", "--port", "0", *flags],
        env={**env, "PYTHONPATH": str(SRC)},
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "serve.log").open("ab"),
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_baton_serve_executes_runs_with_its_runners(
    service: Service,
    owner: str,
    repo: Any,
    fake_model: FakeModel,
    run_env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake_model.reply("Served.")
    idle = serve(run_env, tmp_path, "--runners", "0")
    try:
        run, session = service.start_run(owner, "Say served", repo=repo.id)
        time.sleep(3)
        assert service.run(owner, run.id).state == "queued"  # no runner in that server
    finally:
        stop(idle)
    tag = f"baton-serve-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    working = serve(run_env, tmp_path, "--runners", "1")
    log = tmp_path / "serve.log"
    try:
        wait_for(lambda: service.run(owner, run.id).state == DONE, 60, log.read_text())
        assert texts(service, owner, session.id)[-1] == ("assistant", "Served.")
        # stopping the server ends the run under way, at once
        long, _ = service.start_run(owner, "Wait a long time", repo=repo.id)
        wait_for(lambda: running(tag), 60, f"the command: {log.read_text()}")
    finally:
        asked = time.monotonic()
        stop(working)
    assert time.monotonic() - asked < 15
    assert working.returncode == -signal.SIGTERM
    assert running(tag) == []
    ended = service.run(owner, long.id)
    assert (ended.state, ended.error) == (FAILED, SHUTDOWN)


def test_runners_stopping_end_their_runs_at_once(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    tag = f"baton-runner-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    runners = Runners(service, settings, 1).start()
    try:
        run, session = service.start_run(owner, "Wait a long time", repo=repo.id)
        wait_for(lambda: running(tag), 60, "the command started")
    finally:
        asked = time.monotonic()
        runners.stop()
    assert time.monotonic() - asked < 10
    assert running(tag) == []
    ended = service.run(owner, run.id)
    assert (ended.state, ended.error) == (FAILED, SHUTDOWN)
    assert texts(service, owner, session.id)[-1] == ("system", f"run failed: {SHUTDOWN}")
    assert service.verify(owner, session.id).ok


def test_a_worker_stopped_by_sigterm_ends_its_run_and_exits(
    pg_service: Service, workers: Workers, fake_model: FakeModel, origin: Path, git_repo: Path
) -> None:
    service = pg_service
    owner = service.account("alice", "Alice").id
    repo = service.add_repo(owner, str(origin))
    tag = f"baton-worker-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    worker = workers.start(Path(workers.folder) / "machine-a")
    run, _ = service.start_run(owner, "Wait a long time", repo=repo.id)
    wait_for(lambda: running(tag), 90, f"the command: {workers.logs()[-2000:]}")
    asked = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, workers.logs()
    assert time.monotonic() - asked < 15
    assert running(tag) == []
    ended = service.run(owner, run.id)
    assert (ended.state, ended.error) == (FAILED, SHUTDOWN)


def test_baton_serve_on_postgresql_executes_runs_with_runners_given(
    pg_service: Service,
    pg_env: dict[str, str],
    fake_model: FakeModel,
    origin: Path,
    git_repo: Path,
    tmp_path: Path,
) -> None:
    service = pg_service
    owner = service.account("alice", "Alice").id
    repo = service.add_repo(owner, str(origin))
    fake_model.reply("Served on PostgreSQL.")
    server = serve(pg_env, tmp_path, "--runners", "1")
    try:
        run, session = service.start_run(owner, "Say it", repo=repo.id)
        log = tmp_path / "serve.log"
        wait_for(lambda: service.run(owner, run.id).state == DONE, 90, log.read_text())
    finally:
        stop(server)
    assert server.returncode == -signal.SIGTERM  # as uvicorn ends on SIGTERM
    assert texts(service, owner, session.id)[-1] == ("assistant", "Served on PostgreSQL.")


def test_a_run_is_deferred_once_while_its_job_waits(pg_service: Service, postgres_url: str) -> None:
    import psycopg

    from baton.runs.queue import QUEUE_NAME, TASK_NAME

    owner = pg_service.account("alice", "Alice").id
    repo = pg_service.add_repo(owner, "file:///srv/nowhere.git")
    run, _ = pg_service.start_run(owner, "Queued only", repo=repo.id)
    assert isinstance(pg_service.queue, Jobs)
    pg_service.queue.submit(run)  # again: nothing more
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT task_name, queue_name, args, status FROM procrastinate_jobs"
        ).fetchall()
    assert rows == [(TASK_NAME, QUEUE_NAME, {"run_id": run.id}, "todo")]


def test_a_run_whose_defer_failed_is_deferred_by_the_reaper_once(
    pg_service: Service, postgres_url: str
) -> None:
    import psycopg

    from baton.runs.queue import QUEUE_NAME, TASK_NAME

    owner = pg_service.account("alice", "Alice").id
    repo = pg_service.add_repo(owner, "file:///srv/nowhere.git")
    jobs = pg_service.queue
    pg_service.queue = Jobs("postgresql://postgres@127.0.0.1:1/nowhere")  # the defer fails
    run, _ = pg_service.start_run(owner, "Queued without a job", repo=repo.id)
    assert pg_service.run(owner, run.id).state == "queued"  # stored, and said so (201)

    def jobs_in_db() -> list[Any]:
        with psycopg.connect(postgres_url) as conn:
            return conn.execute(
                "SELECT task_name, queue_name, args, status FROM procrastinate_jobs"
            ).fetchall()

    pg_service.queue.close()
    pg_service.queue = jobs
    assert isinstance(jobs, Jobs)
    jobs.ensure_schema()
    assert jobs_in_db() == []
    reaper = Reaper(pg_service, resubmit_after=60)
    assert reaper.reap() == [] and jobs_in_db() == []  # queued just now: not yet
    reaper = Reaper(pg_service, resubmit_after=0)
    reaper.reap()
    reaper.reap()  # again, and at a worker's start: still one job
    assert reaper.resubmit() == [pg_service.run(owner, run.id)]
    assert jobs_in_db() == [(TASK_NAME, QUEUE_NAME, {"run_id": run.id}, "todo")]
