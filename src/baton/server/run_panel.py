"""What the pages show of server runs (issue 15), as values for the templates: the latest run
of each listed session, the run panel of a session page (state, times, setup results, error,
whether a prompt may be sent now, how to continue elsewhere) and the choices of the "New
session" form. No routes here: baton.server.pages and baton.server.run_pages render these."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from baton.core.models import JSON, Session
from baton.core.runs import RUN_STATES, Environment, Repo, Run

if TYPE_CHECKING:
    from baton.service import Service

RECENT_RUNS = 200  # runs read to mark the sessions of the list
SETUP_WINDOW = 200  # last messages of a session searched for the latest run's setup results
STATE_LABELS = {
    "queued": "Queued",
    "preparing": "Preparing the workspace",
    "running": "Running",
    "done": "Done",
    "failed": "Failed",
    "stopped": "Stopped",
}


@dataclass(frozen=True)
class SetupLine:
    """One setup command of a run, as the run panel lists it."""

    command: str
    exit_code: int | None
    duration: float
    timed_out: bool
    message_id: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.exit_code is None:
            return "stopped"
        return "ok" if self.exit_code == 0 else f"exit {self.exit_code}"


def latest_runs(service: Service, owner: str, session_ids: Iterable[str]) -> dict[str, Run]:
    """The newest run of each of these sessions that has one (among the account's recent
    runs: every active run is among them)."""
    wanted = set(session_ids)
    found: dict[str, Run] = {}
    for run in service.runs(owner, limit=RECENT_RUNS):
        if run.session_id not in wanted:
            continue
        seen = found.get(run.session_id)
        if seen is None or run.created_at > seen.created_at:
            found[run.session_id] = run
    return found


def start_choices(service: Service, owner: str) -> JSON:
    """The repositories and environments the "New session" form offers."""
    return {"repos": service.repos(owner), "environments": service.environments(owner)}


def _normal(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def matching_repo(repos: Sequence[Repo], remote: str | None) -> Repo | None:
    """The repository whose URL is the session's recorded remote, if any."""
    if not remote:
        return None
    target = _normal(remote)
    return next((r for r in repos if _normal(r.url) == target), None)


def setup_lines(service: Service, owner: str, session: Session, run: Run) -> list[SetupLine]:
    """The setup commands recorded in the session since `run` was queued."""
    start = max(session.message_count - SETUP_WINDOW, 0)
    lines = []
    for message in service.messages(owner, session.id, start=start):
        if message.role != "system" or message.created_at < run.created_at:
            continue
        for part in message.parts:
            info = part.get("setup")
            if isinstance(info, dict) and part.get("type") == "text":
                code = info.get("exit_code")
                lines.append(
                    SetupLine(
                        command=str(info.get("command", "")),
                        exit_code=code if isinstance(code, int) else None,
                        duration=float(info.get("duration") or 0),
                        timed_out=bool(info.get("timed_out")),
                        message_id=message.id,
                    )
                )
    return lines


def state_times(run: Run) -> list[tuple[str, str]]:
    """(state, when) for each state the run went through, in the order of the states."""
    return [(state, run.times[state]) for state in RUN_STATES if state in run.times]


def session_panel(service: Service, owner: str, session: Session) -> JSON:
    """The run panel and the ways on of a session page."""
    runs = service.runs(owner, session_id=session.id)
    run = max(runs, key=lambda r: r.created_at) if runs else None
    on_server = bool(runs) or isinstance(session.metadata.get("run"), dict)
    offer_server = not on_server and bool(session.git)
    repos: list[Repo] = service.repos(owner) if run is not None or offer_server else []
    environments: list[Environment] = (
        service.environments(owner) if run is not None or offer_server else []
    )
    remote = session.git.get("remote") if session.git else None
    return {
        "run": run,
        "run_count": len(runs),
        "busy": run is not None and run.active,
        "setup": setup_lines(service, owner, session, run) if run is not None else [],
        "on_server": on_server,
        "offer_server": offer_server,
        "repos": repos,
        "environments": environments,
        "matching": matching_repo(repos, remote if isinstance(remote, str) else None),
        "labels": STATE_LABELS,
        "repo_names": {r.id: r.name for r in repos},
        "environment_names": {e.id: e.name for e in environments},
        "times": state_times(run) if run is not None else [],
    }
