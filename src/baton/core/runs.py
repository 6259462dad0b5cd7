"""Server-side runs as values: a repository the server can clone, an environment (variables,
write-only secrets, setup commands, network, model, push), and a run of the agent on a
session with its states. Pure: no I/O, no crypto (the service encrypts secrets; these hold
the ciphertext only, and never show it)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from baton.core.ids import new_ulid
from baton.core.models import JSON

REPO_PREFIX = "repo_"
ENVIRONMENT_PREFIX = "env_"
RUN_PREFIX = "run_"

QUEUED, PREPARING, RUNNING, DONE, FAILED, STOPPED = (
    "queued",
    "preparing",
    "running",
    "done",
    "failed",
    "stopped",
)
RUN_STATES = (QUEUED, PREPARING, RUNNING, DONE, FAILED, STOPPED)
ACTIVE_STATES = frozenset({QUEUED, PREPARING, RUNNING})
FINAL_STATES = frozenset({DONE, FAILED, STOPPED})
# state -> the states a run may move to from it
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({PREPARING, FAILED, STOPPED}),
    PREPARING: frozenset({RUNNING, FAILED, STOPPED}),
    RUNNING: frozenset({DONE, FAILED, STOPPED}),
    DONE: frozenset(),
    FAILED: frozenset(),
    STOPPED: frozenset(),
}

MAX_SETUP_COMMANDS = 20


def new_repo_id() -> str:
    return REPO_PREFIX + new_ulid()


def new_environment_id() -> str:
    return ENVIRONMENT_PREFIX + new_ulid()


def new_run_id() -> str:
    return RUN_PREFIX + new_ulid()


@dataclass(frozen=True, slots=True)
class Repo:
    """A clone URL the server can reach (https, ssh, file:// or a path on the server), with
    its credentials (if any) kept apart, encrypted."""

    id: str
    owner: str
    name: str
    url: str  # credentials stripped
    created_at: str
    default_branch: str | None = None
    credentials: bytes | None = field(default=None, repr=False)  # ciphertext

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "default_branch": self.default_branch,
            "has_credentials": self.credentials is not None,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Environment:
    """A named profile a run uses: plain variables, secrets (write-only: only their names are
    ever shown), ordered setup commands ({command, timeout}), whether the agent phase has the
    network (setup always has), the model, and whether to push the session's branch back."""

    id: str
    owner: str
    name: str
    created_at: str
    updated_at: str
    variables: dict[str, str] = field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    secrets: bytes | None = field(default=None, repr=False)  # ciphertext of {name: value}
    setup: tuple[JSON, ...] = ()
    network: bool = False
    model: str | None = None
    push: bool = False

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "variables": dict(self.variables),
            "secrets": list(self.secret_names),
            "setup": [dict(s) for s in self.setup],
            "network": self.network,
            "model": self.model,
            "push": self.push,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Run:
    """One run of the agent on a session, on the server. `times` holds when it entered each
    state it went through; `heartbeat_at` is renewed by the worker while it works, so a run
    whose worker died is found and failed."""

    id: str
    owner: str
    session_id: str
    repo_id: str | None
    environment_id: str | None
    branch: str | None
    prompt: str
    state: str
    created_at: str
    updated_at: str
    model: str | None = None
    times: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    worker: str | None = None
    heartbeat_at: str | None = None
    cancel_requested: bool = False
    workspace: str | None = None  # a path on a worker: never shown, never shared

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def moved(self, state: str, now: str, **changes: Any) -> Run:
        """This run in `state` (entered at `now`); refuses a move its state does not allow."""
        if state not in TRANSITIONS[self.state]:
            raise ValueError(f"a {self.state} run cannot become {state}")
        return replace(
            self, state=state, updated_at=now, times={**self.times, state: now}, **changes
        )

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "repo_id": self.repo_id,
            "environment_id": self.environment_id,
            "branch": self.branch,
            "prompt": self.prompt,
            "model": self.model,
            "state": self.state,
            "active": self.active,
            "times": dict(self.times),
            "error": self.error,
            "cancel_requested": self.cancel_requested,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


__all__ = [
    "ACTIVE_STATES",
    "DONE",
    "FAILED",
    "FINAL_STATES",
    "MAX_SETUP_COMMANDS",
    "PREPARING",
    "QUEUED",
    "RUNNING",
    "RUN_STATES",
    "STOPPED",
    "TRANSITIONS",
    "Environment",
    "Repo",
    "Run",
    "new_environment_id",
    "new_repo_id",
    "new_run_id",
]
