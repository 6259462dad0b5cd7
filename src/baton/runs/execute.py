"""The executor of one server run: from queued to done, failed or stopped.

preparing: the session's workspace (runs.workspace: warm, or cloned from the mirror with the
session's snapshot restored; a new one's files are checked out in a thread, beside the first
model request, which has the instructions read from the start commit: the tools, the setup
commands and the git context wait for the files), the session's git context recorded (beside
the setup and the agent), then the setup commands
(the environment's, then the repository's `.baton/setup.toml`), each in the sandbox with the
network and the environment's variables and secrets, each recorded as a setup message.
running: the same Agent as `baton run`, every action approved (the sandbox holds), the
network as the environment says, model = the run's, else the environment's, else the
server's. At the end a git snapshot (so `baton restore ID` brings the work home) and, when
the environment says so, the work committed (titled by the prompt) and `baton/<session id>`
pushed to the repository.

The commands (setup and the agent's) see the workspace at a fixed path, /home/user/<repo>
(sandbox.shown_path), which the agent's prompt and the git snapshot name too: nothing a run
records holds the server's folders (what the worker words itself has them replaced).
Every secret value is masked (`[SECRET:NAME]`) in all the run records, before it is appended:
the agent and the setup recorder append through `Masked`, a service wrapper. A heartbeat
thread renews the run every HEARTBEAT seconds; when it sees a cancel request (or the wall
time is up) it sets the turn's Cancel, whose event also kills the sandbox of a running
command. Any failure ends the run failed with one line, also recorded in the session."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from baton import gitstate, sandbox
from baton.agent import instructions
from baton.agent import setup as setups
from baton.agent.approvals import Approver
from baton.agent.loop import Agent, system_prompt
from baton.agent.provider import Cancel, Interrupted, ModelConfig, ModelError, Provider
from baton.agent.tools import COMMAND_TIMEOUT, Outcome, Tools
from baton.contract import ANY_HEAD
from baton.core import ids
from baton.core.errors import BatonError, NotFound
from baton.core.models import JSON
from baton.core.runs import DONE, FAILED, PREPARING, QUEUED, RUNNING, STOPPED, Run
from baton.runs.masking import Mask, MaskedStream
from baton.runs.workspace import WARM, Prepared, Workspaces

if TYPE_CHECKING:
    from baton.config import Settings
    from baton.contract import AppendResult, Baton
    from baton.service import Service

log = logging.getLogger("baton.runs")

HEARTBEAT = 2.0  # seconds between a run's heartbeats (and cancel checks)
STOPPED_BY_USER = "stopped by the user"
SERVER_VARIABLES = ("BATON_", "AWS_")  # what a run's commands never see of the server's
SHUTDOWN = "the worker was shut down before the run ended: continue the session to go on"
ENVIRONMENT_SOURCE = "environment"


class Masked:
    """The service as the run's agent and setup recorder see it: every message appended and
    every metadata change has the secrets masked first. Everything else passes through."""

    def __init__(self, service: Service, mask: Mask) -> None:
        self._service = service
        self._mask = mask

    def append(
        self,
        owner: str,
        session_id: str,
        messages: Sequence[Any],
        expected_head: Any = ANY_HEAD,
        retries: int = 20,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        masked = [self._mask.value(m) for m in messages]
        return self._service.append(
            owner, session_id, masked, expected_head, retries, idempotency_key=idempotency_key
        )

    def update(self, owner: str, session_id: str, **changes: Any) -> Any:
        if changes.get("metadata") is not None:
            changes["metadata"] = self._mask.value(changes["metadata"])
        return self._service.update(owner, session_id, **changes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


class CheckedOut(Tools):
    """The run's tools: each waits until the workspace's files are checked out (a new
    workspace's checkout goes on beside the agent's first model request)."""

    def __init__(self, ready: Prepared, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ready = ready

    def path(self, value: Any, *, must_exist: bool = True) -> Path:
        self.ready.wait()
        return super().path(value, must_exist=must_exist)

    def run(self, name: str, args: dict[str, Any]) -> Outcome:
        self.ready.wait()
        return super().run(name, args)

    def describe(self, name: str, args: dict[str, Any]) -> str:
        self.ready.wait()
        return super().describe(name, args)


class RunAgent(Agent):
    """The agent of a run: a streamed answer is stored in partial chunks as in `baton run`,
    but a chunk never ends inside what may be a secret (it waits for the next), so every
    secret lies whole within one message, where Masked finds it."""

    def __init__(self, *args: Any, mask: Mask, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.mask = mask

    def _flush(self, draft: Any, cancel: Cancel) -> None:  # draft: the loop's _Draft
        rest = draft.rest
        held = self.mask.holdback(rest)
        if not held:
            super()._flush(draft, cancel)
            return
        draft.at = time.monotonic()
        safe = rest[: len(rest) - held]
        if safe:
            part: JSON = {"type": "text", "text": safe, "partial": True}
            self.record(
                {"role": "assistant", "parts": [part], "model": self.provider.model}, cancel
            )
            draft.stored += len(safe)


class Deltas:
    """The agent's Display for a run: the assistant's text while it streams goes to the
    session's watchers as `delta` events (masked; not stored: the messages are)."""

    def __init__(self, service: Service, session_id: str, mask: Mask) -> None:
        self.service = service
        self.session_id = session_id
        self.stream = MaskedStream(mask)

    def _publish(self, text: str) -> None:
        if text:
            try:
                self.service.events.publish(self.session_id, {"kind": "delta", "text": text})
            except Exception:  # watchers are a nicety: the run goes on
                log.exception("could not publish a delta of session %s", self.session_id)

    def text(self, delta: str) -> None:
        self._publish(self.stream.feed(delta))

    def reasoning(self, delta: str) -> None:
        pass

    def end_text(self) -> None:
        self._publish(self.stream.end())

    def tool_call(self, name: str, args: JSON) -> None:
        pass

    def tool_result(self, name: str, outcome: Any) -> None:
        pass

    def notice(self, text: str) -> None:
        log.info("session %s: %s", self.session_id, text)


class Watch:
    """The heartbeat of a run, in a thread: renews it every `every` seconds; a cancel request,
    the end of the wall time or a run that is no longer ours sets `cancel` (and `reason`)."""

    def __init__(
        self,
        service: Service,
        run_id: str,
        cancel: Cancel,
        timeout: float,
        every: float,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.service = service
        self.shutdown = shutdown
        self.run_id = run_id
        self.cancel = cancel
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.every = every
        self.reason: str | None = None  # "user", "timeout", "lost" or "shutdown"
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"heartbeat {run_id}", daemon=True)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join()

    def _stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.cancel.set()

    def check(self) -> None:
        """Raise Interrupted between steps of the preparation once the run is to stop."""
        if self.reason is not None:
            raise Interrupted()

    def _loop(self) -> None:
        while not self.done.wait(min(self.every, max(self.deadline - time.monotonic(), 0.01))):
            if self.shutdown is not None and self.shutdown.is_set():
                self._stop("shutdown")
            if time.monotonic() >= self.deadline:
                self._stop("timeout")
                continue
            try:
                run = self.service.heartbeat(self.run_id)
            except NotFound:
                self._stop("lost")
                continue
            except Exception:  # the store is away for a moment: the reaper decides
                log.exception("heartbeat of run %s failed", self.run_id)
                continue
            if not run.active:
                self._stop("lost")
            elif run.cancel_requested:
                self._stop("user")
            elif self.reason is not None:
                self.cancel.set()  # keep it set: the agent clears its flag after a turn


def setup_key(specs: Sequence[setups.SetupSpec], plain: JSON, names: Sequence[str]) -> str:
    """What a workspace's setup was made with: the commands, the plain variables, the names
    (not the values) of the secrets."""
    made = [[spec.source, [c.to_dict() for c in spec.commands]] for spec in specs]
    return ids.sha256_hex(orjson.dumps([made, plain, list(names)], option=orjson.OPT_SORT_KEYS))


def one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def execute(
    service: Service,
    settings: Settings,
    run_id: str,
    worker: str,
    *,
    workspaces: Workspaces | None = None,
    heartbeat: float = HEARTBEAT,
    shutdown: threading.Event | None = None,
) -> Run | None:
    """Execute run `run_id` on this worker; the run as it ended, or None when it was not
    ours to execute (another worker took it, or it is no longer queued). When `shutdown`
    is set (the worker is stopping) the run ends failed within seconds, its work recorded."""
    try:
        run = service.heartbeat(run_id)  # as stored (a queued run's heartbeat means nothing)
    except NotFound:
        return None  # its session was deleted meanwhile
    if run.state == QUEUED:
        try:
            run = service.move_run(run_id, PREPARING, worker=worker, heartbeat_at=service.now())
        except BatonError:
            return None  # taken by another worker, or stopped meanwhile
    elif run.state != PREPARING or run.worker != worker:
        return None
    return _Execution(service, settings, run, worker, workspaces, heartbeat, shutdown).execute()


class _Execution:
    def __init__(
        self,
        service: Service,
        settings: Settings,
        run: Run,
        worker: str,
        workspaces: Workspaces | None,
        heartbeat: float,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.service = service
        self.shutdown = shutdown
        self.settings = settings
        self.run = run
        self.worker = worker
        self.spaces = workspaces or Workspaces(settings.home, settings.workspace_idle)
        self.heartbeat = heartbeat
        self.mask = Mask({})
        self.masked: Baton = cast("Baton", Masked(service, self.mask))
        self.cancel = Cancel()
        self.workspace: Path | None = None
        self.shown = sandbox.shown_path("repo")  # where the commands see the workspace
        self.ready: Prepared | None = None  # the workspace (its files may be checking out)
        self.set_up = False  # setup commands ran in the workspace (they may change its files)
        self.saved = False  # the end's snapshot is recorded
        self._context: threading.Thread | None = None  # records the workspace's first state

    # the steps
    def execute(self) -> Run:
        run = self.run
        watch = Watch(
            self.service,
            run.id,
            self.cancel,
            self.settings.run_timeout,
            self.heartbeat,
            self.shutdown,
        )
        try:
            context = self.service.run_context(run.id)
            secrets = dict(context.secrets)
            if context.credentials:  # never in a URL, but git's messages are masked too
                secrets["REPOSITORY_CREDENTIALS"] = context.credentials
                password = context.credentials.partition(":")[2]
                if password:
                    secrets["REPOSITORY_PASSWORD"] = password
            self.shown = self._shown(context.repo.name if context.repo else "repo")
            self.mask = Mask(secrets, self._paths())
            self.masked = cast("Baton", Masked(self.service, self.mask))
            with watch, self.spaces.using(run.session_id, run.owner) as _:
                try:
                    self._execute(context, watch)
                finally:
                    if self.ready is not None:  # the checkout ends before the workspace is let go
                        with contextlib.suppress(Exception):
                            self.ready.wait()
                    if self.workspace is not None and not self.saved:
                        self._last_snapshot()
        except (Interrupted, KeyboardInterrupt):
            return self._interrupted(watch.reason)
        except BatonError as exc:
            return self._fail(exc.message)
        except sandbox.SandboxUnavailable as exc:
            return self._fail(f"commands cannot run on this worker: {exc}")
        except Exception as exc:
            log.exception("run %s failed", run.id)
            return self._fail(f"{type(exc).__name__}: {one_line(str(exc))}")
        if watch.reason is not None:
            return self._interrupted(watch.reason)
        return self._end(DONE)

    def _execute(self, context: Any, watch: Watch) -> None:
        run, session = self.run, context.session
        repo, environment = context.repo, context.environment
        if repo is None:
            raise BatonError(f"run {run.id} has no repository to work in")
        git = session.git if isinstance(session.git, dict) and session.git.get("head") else None
        ready = self.ready = self.spaces.prepare(
            run.session_id,
            repo.url,
            credentials=context.credentials,
            branch=run.branch or repo.default_branch,
            git=git,
            get_blob=self._blob,
            early=True,  # a new workspace's files are checked out beside the first request
        )
        self.workspace = ready.path
        watch.check()
        if ready.how != WARM:  # a warm workspace holds the session's snapshot already
            self._context = threading.Thread(target=self._first_snapshot, daemon=True)
            self._context.start()  # beside the setup and the agent's first request
        variables = {
            **(environment.variables if environment else {}),
            **dict(context.secrets),
        }
        self._setup(ready, environment, variables)
        watch.check()
        self.run = self._move(RUNNING)
        self._agent(ready, environment, variables)
        ready.wait()  # a checkout that failed fails the run
        watch.check()  # stopped: no push (the snapshot still records the work)
        if environment is not None and environment.push:
            self._snapshot()  # the work as the agent left it, before it is committed
            title = one_line(self.mask.text(run.prompt))[:72]
            self.spaces.commit(
                ready.path, f"{title}\n\nbaton session {run.session_id}, run {run.id}"
            )
            self.spaces.push(ready.path, ready.branch, repo.url, context.credentials)
        self._snapshot()  # a failure here fails the run: the work would not come home
        self.saved = True

    def _setup(self, ready: Prepared, environment: Any, variables: dict[str, str]) -> None:
        """Run the setup commands, unless the workspace is warm and these very commands
        (with these variables) succeeded in it already."""
        root, warm = ready.path, ready.how == WARM
        specs = []
        declared = tuple(
            setups.SetupCommand(str(item["command"]), float(item.get("timeout") or 600))
            for item in (environment.setup if environment else ())
        )
        if declared:
            specs.append(setups.SetupSpec(declared, ENVIRONMENT_SOURCE))
        in_tree = (
            setups.from_repository(root) if ready.files is None else setups.from_files(ready.files)
        )
        if in_tree is not None and in_tree.commands:
            specs.append(in_tree)
        plain = dict(environment.variables) if environment else {}
        done = setup_key(specs, plain, sorted(variables))
        if warm and self.spaces.setup_of(self.run.session_id) == done:
            return
        self.spaces.set_setup(self.run.session_id, None)
        if specs:
            ready.wait()  # the commands work on the checked-out tree
            self.set_up = True
            self._wait_context()  # the commands change the tree: the context is taken first
        policy = self._policy(network=True)
        record = setups.recorder(self.masked, self.run.owner, self.run.session_id)
        for spec in specs:
            results = setups.run(
                spec, root, policy, on_result=record, env=variables, stop=self.cancel.event
            )
            setups.check(results, None)
        self.spaces.set_setup(self.run.session_id, done)

    def _agent(self, ready: Prepared, environment: Any, variables: dict[str, str]) -> None:
        settings, root = self.settings, ready.path
        model = self.run.model or (environment.model if environment else None)
        config = ModelConfig.from_settings(settings, model)
        network = bool(environment.network) if environment else False
        timeout = COMMAND_TIMEOUT if settings.command_timeout is None else settings.command_timeout
        tools = CheckedOut(
            ready,
            root,
            command_timeout=timeout,
            policy=self._policy(network),
            env=variables,
            stop=self.cancel.event,
        )
        display = Deltas(self.service, self.run.session_id, self.mask)
        if ready.files is not None and not self.set_up:  # the tree is the start commit's
            found = instructions.from_files(ready.files)
        else:
            found = instructions.find(root, root)
        agent = RunAgent(
            self.masked,
            self.run.owner,
            self.run.session_id,
            Provider(config, notice=display.notice),
            tools,
            display=display,
            confirm=Approver(tools, "yolo", None, diffs=False),
            mode="run",
            snapshot=None,  # taken once at the end of the run
            system=instructions.prompt(system_prompt(self.shown), found),
            mask=self.mask,
        )
        try:
            agent.turn(self.run.prompt, self.cancel)
        except ModelError as exc:
            raise BatonError(f"the model failed: {exc.message}") from None

    # helpers
    def _policy(self, network: bool) -> sandbox.Policy:
        """The sandbox of the run's commands: as the settings say, and the server's own data
        (BATON_HOME: its store, the mirrors, the other sessions' workspaces; the blob folder)
        and settings (BATON_*, AWS_* variables) out of sight."""
        settings = self.settings
        hidden = [settings.home]
        if settings.blob_url.startswith("file://"):
            hidden.append(Path(settings.blob_url[len("file://") :]))
        chosen = sandbox.choose(settings.sandbox, network, settings.sandbox_limits)
        mount = self.shown if chosen.confined else None
        return dataclasses.replace(
            chosen, hidden=tuple(hidden), env_drop=SERVER_VARIABLES, mount=mount
        )

    def _shown(self, name: str) -> Path:
        """Where the run's commands see the workspace: the neutral path in the sandbox, the
        workspace itself without one."""
        if self.settings.sandbox:
            return sandbox.shown_path(name)
        return self.spaces.path(self.run.session_id)

    def _paths(self) -> dict[str, str]:
        """The server's folders as the run's records show them: the workspace as the
        commands see it, the rest of BATON_HOME as `[BATON_HOME]`."""
        paths: dict[str, str] = {}
        workspace, home = self.spaces.path(self.run.session_id), self.settings.home
        for real in {workspace, workspace.resolve()}:
            if self.settings.sandbox:
                paths[str(real)] = str(self.shown)
        for real in {home, home.resolve()}:
            paths[str(real)] = "[BATON_HOME]"
        return paths

    def _blob(self, sha256: str) -> bytes | None:
        try:
            return self.service.blob(self.run.owner, sha256, session_id=self.run.session_id)
        except NotFound:
            return None

    def _put_blob(self, data: bytes) -> str:
        sha = ids.sha256_hex(data)
        self.service.put_blob(sha, data, self.run.owner)
        return sha

    def _first_snapshot(self) -> None:
        """The session's git context as the run starts (in a thread, beside the agent's
        first request, once the files are checked out: a failure is logged, the snapshot at
        the end is the one that counts)."""
        try:
            if self.ready is not None:
                self.ready.wait()
            self._snapshot(first=True)
        except Exception:
            log.exception("run %s: no git snapshot at the start", self.run.id)

    def _wait_context(self) -> None:
        if self._context is not None:
            self._context.join()
            self._context = None

    def _snapshot(self, first: bool = False) -> None:
        """Record the workspace's git state in the session (nothing when it is unchanged);
        after the first one, which records the session's git context as the run starts."""
        if not first:
            self._wait_context()
        assert self.workspace is not None
        settings = self.settings
        git = gitstate.capture(
            self.workspace,
            self._put_blob,
            patch_cap=settings.patch_cap,
            file_cap=settings.file_cap,
            bundle_cap=settings.bundle_cap,
        )
        if git is not None:  # the root as the run's commands saw it
            git = self.mask.value({**git, "root": str(self.shown)})
            self.service.snapshot(self.run.owner, self.run.session_id, git)

    def _last_snapshot(self) -> None:
        """The snapshot at the end, whatever ended the run (a failure here is logged: it
        must not hide why the run ended)."""
        try:
            self._snapshot()
        except Exception:
            log.exception("run %s: no git snapshot at the end", self.run.id)

    def _note(self, text: str) -> None:
        message = {"role": "system", "parts": [{"type": "text", "text": text}]}
        try:
            self.masked.append(
                self.run.owner, self.run.session_id, [message], idempotency_key=str(uuid.uuid4())
            )
        except Exception:
            log.exception("could not record %r in session %s", text, self.run.session_id)

    def _move(self, state: str, **changes: Any) -> Run:
        return self.service.move_run(self.run.id, state, **changes)

    def _fail(self, error: str) -> Run:
        error = self.mask.text(one_line(error))
        self._note(f"run failed: {error}")
        return self._end(FAILED, error=error)

    def _interrupted(self, reason: str | None) -> Run:
        if reason == "timeout":
            return self._fail(f"the run took longer than {self.settings.run_timeout:g}s")
        if reason == "shutdown":
            return self._fail(SHUTDOWN)
        if reason == "lost":  # someone else ended it (the reaper), or deleted its session
            try:
                return self.service.heartbeat(self.run.id)
            except NotFound:
                return self.run
        self._note(STOPPED_BY_USER)
        return self._end(STOPPED)

    def _end(self, state: str, **changes: Any) -> Run:
        try:
            return self._move(state, **changes)
        except BatonError:  # it ended meanwhile (reaped), or its session was deleted
            try:
                return self.service.heartbeat(self.run.id)
            except NotFound:
                return self.run
