"""Who executes queued runs, and the reaper of runs whose worker died.

On the embedded store: `Runners`, threads of `baton serve` (`--runners N`) that claim queued
runs and execute them, woken by `submit` and polling every POLL seconds (so a run queued by
another process is taken too). On PostgreSQL: a procrastinate App on the same database, task
`baton.run(run_id)`; `submit` defers it, and `baton worker` processes on any number of
machines run it (the task claims the run by compare-and-set queued → preparing, so a
duplicate delivery does nothing).

The `Reaper` (in every runner process and worker) fails active runs whose heartbeat is older
than REAP_AFTER seconds ("the worker stopped answering"), hands the queue again the runs
queued more than RESUBMIT_AFTER seconds ago (a defer that failed when the run was started
leaves a queued run without a job: it is deferred now; deferring is idempotent), and removes
idle workspaces and those of deleted sessions. A worker's reaper does its first round as the
worker starts."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from baton.core.errors import NotFound
from baton.core.runs import Run

if TYPE_CHECKING:  # the rest is imported where it is used: the CLI imports this module
    from baton.config import Settings
    from baton.runs.workspace import Workspaces
    from baton.service import Service

log = logging.getLogger("baton.runs")

POLL = 1.0  # seconds between looks for queued runs
REAP_EVERY = 10.0  # seconds between rounds of the reaper
REAP_AFTER = 30.0  # a run whose heartbeat (every 2 s) is this old (seconds) lost its worker
RESUBMIT_AFTER = 5.0  # a run queued this long ago (seconds) is handed to the queue again
QUEUE_NAME = "baton-runs"
TAIL = 200  # messages of a reaped run's session read back to find its unanswered tool calls
TASK_NAME = "baton.run"


def preload() -> threading.Thread:
    """Import what executing a run needs (the executor, the agent, the model SDK: 1.5–2 s on
    a loaded machine) in a thread as runners start, so a server's first run does not wait
    for it."""

    def load() -> None:
        try:
            import openai  # noqa: F401

            import baton.runs.execute  # noqa: F401
        except Exception:  # the run that needs it says why
            log.debug("preloading the executor failed", exc_info=True)

    thread = threading.Thread(target=load, name="baton preload", daemon=True)
    thread.start()
    return thread


def worker_name(index: int | str = 0) -> str:
    """Who executes a run, as recorded on it: host, process, runner."""
    return f"{socket.gethostname()}/{os.getpid()}/{index}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


class Reaper:
    """A thread that fails the runs whose worker stopped answering, every `every` seconds,
    and removes idle workspaces (and those whose session is gone)."""

    def __init__(
        self,
        service: Service,
        workspaces: Workspaces | None = None,
        *,
        every: float = REAP_EVERY,
        after: float = REAP_AFTER,
        resubmit_after: float = RESUBMIT_AFTER,
    ) -> None:
        self.service = service
        self.workspaces = workspaces
        self.every = every
        self.after = after
        self.resubmit_after = resubmit_after
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="baton reaper", daemon=True)

    def start(self) -> Reaper:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=30)

    def resubmit(self) -> list[Run]:
        """Hand the queue again the runs that wait longer than they should (no job)."""
        try:
            return self.service.resubmit_runs(self.resubmit_after)
        except Exception:  # the queue is away for a moment: next round
            log.exception("could not submit the waiting runs again")
            return []

    def reap(self) -> list[Run]:
        self.resubmit()
        reaped = self.service.reap_runs(self.after)
        for run in reaped:
            log.warning("run %s failed: its worker stopped answering", run.id)
            try:
                self._close(run)
            except Exception:  # the run is failed; the note is a nicety
                log.exception("could not record the end of run %s", run.id)
        if self.workspaces is not None:
            self.workspaces.clean(gone=self._gone)
        return reaped

    def _close(self, run: Run) -> None:
        """The session of a reaped run as the dead worker would have left it: each tool call
        it was running answered "interrupted", then why the run ended."""
        from baton.agent.loop import INTERRUPTED_TOOL, dangling

        session = self.service.get(run.owner, run.session_id)
        tail = self.service.messages(
            run.owner, run.session_id, start=max(session.message_count - TAIL, 0)
        )
        notes: list[Any] = [
            {
                "role": "tool",
                "parts": [
                    {
                        "type": "tool_result",
                        "tool_call_id": call["id"],
                        "name": call["name"],
                        "output": INTERRUPTED_TOOL,
                        "is_error": True,
                    }
                ],
            }
            for call in dangling(tail)
        ]
        notes.append(
            {"role": "system", "parts": [{"type": "text", "text": f"run failed: {run.error}"}]}
        )
        self.service.append(run.owner, run.session_id, notes, idempotency_key=f"reaped-{run.id}")

    def _gone(self, owner: str, session_id: str) -> bool:
        try:
            self.service.get(owner, session_id)
        except NotFound:
            return True
        return False

    def _loop(self) -> None:
        self.resubmit()  # at the start: runs left without a job while no worker ran
        while not self.stopping.wait(self.every):
            try:
                self.reap()
            except Exception:  # the store is away for a moment: next round
                log.exception("the reaper's round failed")


class Runners:
    """`n` threads executing the runs of an embedded store, and the reaper. Set as the
    service's queue: `submit` wakes a runner at once."""

    def __init__(
        self,
        service: Service,
        settings: Settings,
        n: int,
        *,
        poll: float = POLL,
        reaper: Reaper | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.n = n
        self.poll = poll
        from baton.runs.workspace import Workspaces

        self.workspaces = Workspaces(settings.home, settings.workspace_idle)
        self.reaper = reaper or Reaper(service, self.workspaces)
        self.wake = threading.Condition()
        self.pending = 0
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"baton runner {i}", daemon=True)
            for i in range(n)
        ]

    def start(self) -> Runners:
        self.service.queue = self
        if self.n > 0:
            preload()
        for thread in self.threads:
            thread.start()
        self.reaper.start()
        return self

    def submit(self, run: Run) -> None:
        with self.wake:
            self.pending += 1
            self.wake.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Take no more runs; the ones under way end (failed: the worker was shut down)
        within seconds, their work recorded."""
        self.stopping.set()
        with self.wake:
            self.wake.notify_all()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=timeout)
        self.reaper.stop()

    def _loop(self, index: int) -> None:
        from baton.runs.execute import execute

        name = worker_name(index)
        while not self.stopping.is_set():
            try:
                run = self.service.claim_run(name)
            except Exception:
                log.exception("runner %s could not claim a run", name)
                run = None
            if run is not None:
                try:
                    execute(
                        self.service,
                        self.settings,
                        run.id,
                        name,
                        workspaces=self.workspaces,
                        shutdown=self.stopping,
                    )
                except Exception:
                    log.exception("runner %s: run %s", name, run.id)
                continue
            with self.wake:
                if self.pending == 0 and not self.stopping.is_set():
                    self.wake.wait(self.poll)
                self.pending = max(self.pending - 1, 0)


# ---------------------------------------------------------------------------------------------
# PostgreSQL: procrastinate


class _Worker:
    """What the task of a `baton worker` process runs with (set before the worker starts)."""

    service: Service | None = None
    settings: Settings | None = None
    workspaces: Workspaces | None = None
    stopping = threading.Event()  # the worker is shutting down: its runs end at once


def _run_task(run_id: str) -> None:
    from baton.runs.execute import execute

    service, settings = _Worker.service, _Worker.settings
    if service is None or settings is None:
        raise RuntimeError("baton.run ran outside `baton worker`")
    name = worker_name(threading.current_thread().name)
    execute(
        service,
        settings,
        run_id,
        name,
        workspaces=_Worker.workspaces,
        shutdown=_Worker.stopping,
    )


def _conninfo(database_url: str) -> str:
    """procrastinate's (psycopg's) spelling of the database URL."""
    if database_url.startswith("postgres:"):
        return "postgresql:" + database_url[len("postgres:") :]
    return database_url


class Jobs:
    """The queue on PostgreSQL: `submit` defers the procrastinate task `baton.run`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = _conninfo(database_url)
        self._made: tuple[Any, Any] | None = None  # (the App, its task), made on first use
        self._opened = False
        self._lock = threading.Lock()
        self._stop: Callable[[], Any] | None = None  # set while `work` runs

    def _app(self) -> tuple[Any, Any]:
        if self._made is None:
            from baton.store import needs_extra

            with needs_extra("postgres", "server runs on PostgreSQL"):
                import procrastinate

            app = procrastinate.App(
                connector=procrastinate.PsycopgConnector(
                    conninfo=self.database_url, min_size=1, max_size=4
                )
            )
            self._made = (app, app.task(name=TASK_NAME, queue=QUEUE_NAME)(_run_task))
        return self._made

    def ensure_schema(self) -> None:
        """procrastinate's tables in the database, made once (under an advisory lock, so
        servers and workers starting together do not race)."""
        from baton.store import needs_extra

        with needs_extra("postgres", "server runs on PostgreSQL"):
            import psycopg
            from procrastinate.schema import SchemaManager

        with psycopg.connect(self.database_url, autocommit=False) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('baton procrastinate schema'))")
            row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is None or row[0] is None:
                conn.execute(SchemaManager.get_schema())
            conn.commit()

    def open(self) -> None:
        with self._lock:
            if not self._opened:
                self.ensure_schema()
                self._app()[0].open()
                self._opened = True

    def submit(self, run: Run) -> None:
        """Defer `baton.run(run_id)`, once: a run whose job still waits is not deferred
        again (its id is the job's queueing lock)."""
        from procrastinate.exceptions import AlreadyEnqueued

        self.open()
        with contextlib.suppress(AlreadyEnqueued):
            self._app()[1].configure(queueing_lock=run.id).defer(run_id=run.id)

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self._app()[0].close()
                self._opened = False

    def work(
        self,
        service: Service,
        settings: Settings,
        concurrency: int,
        *,
        reaper: Reaper | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        """Run the procrastinate worker (and the reaper) until SIGINT or SIGTERM (or `stop`
        from another thread): then the runs under way end at once (failed: the worker was
        shut down, their work recorded) and it returns."""
        import asyncio  # a worker's own (every command imports this module)

        from baton.runs.workspace import Workspaces

        self.ensure_schema()
        _Worker.service, _Worker.settings = service, settings
        _Worker.workspaces = Workspaces(settings.home, settings.workspace_idle)
        _Worker.stopping.clear()
        reaper = reaper or Reaper(service, _Worker.workspaces)
        reaper.start()
        preload()
        try:
            asyncio.run(self._work(concurrency, install_signal_handlers))
        finally:
            reaper.stop()

    async def _work(self, concurrency: int, install_signal_handlers: bool) -> None:
        import asyncio

        app = self._app()[0]
        async with app.open_async():
            task = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE_NAME],
                    concurrency=concurrency,
                    name=worker_name("worker"),
                    install_signal_handlers=False,
                    delete_jobs="always",
                    fetch_job_polling_interval=POLL,
                )
            )
            loop = asyncio.get_running_loop()

            def stop() -> None:
                _Worker.stopping.set()  # the runs end within seconds
                task.cancel()  # procrastinate takes no more jobs and waits for those

            self._stop = lambda: loop.call_soon_threadsafe(stop)
            if install_signal_handlers:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, stop)
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def stop(self) -> None:
        """Stop `work` (from another thread)."""
        if self._stop is not None:
            self._stop()


def attach(service: Service, settings: Settings) -> Service:
    """Where the service hands its queued runs: on PostgreSQL to procrastinate (deferred
    jobs); on the embedded store nowhere (the runners of `baton serve` poll for them, and
    take this process's at once when they run in it)."""
    if is_postgres(settings.database_url) and not isinstance(service.queue, Jobs):
        service.queue = Jobs(settings.database_url)
    return service


class _Terminated(BaseException):
    """SIGTERM reached `baton serve` (uvicorn raises it again once it has stopped)."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated


@contextlib.contextmanager
def _stopped_at_the_end(stop: Callable[[], None]) -> Iterator[None]:
    """Call `stop` when the block ends, SIGTERM included: the signal becomes an exception
    for the duration, and is raised again once `stop` returned (so the process still ends
    as SIGTERM ends it)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main else None
    terminated = False
    try:
        yield
    except _Terminated:
        terminated = True
    finally:
        stop()
        if main:
            signal.signal(signal.SIGTERM, previous)
        if terminated:
            signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def running(service: Service, settings: Settings, runners: int) -> Iterator[Any]:
    """What `baton serve` runs beside the web server: `runners` Runner threads on the
    embedded store; on PostgreSQL, when runners > 0, a procrastinate worker thread. When the
    server stops (Ctrl-C, SIGTERM) the runs under way end at once, failed with a line that
    says so."""
    if runners <= 0:
        yield None
        return
    if not is_postgres(settings.database_url):
        pool = Runners(service, settings, runners).start()
        with _stopped_at_the_end(pool.stop):
            yield pool
        return
    jobs = service.queue if isinstance(service.queue, Jobs) else Jobs(settings.database_url)
    thread = threading.Thread(
        target=jobs.work,
        args=(service, settings, runners),
        kwargs={"install_signal_handlers": False},
        name="baton worker",
        daemon=True,
    )
    thread.start()

    def stop() -> None:
        jobs.stop()
        thread.join(timeout=30)

    with _stopped_at_the_end(stop):
        yield jobs
