"""Server runs' tests: the service as `baton serve` builds it (SQLite and blobs in BATON_HOME),
the fake model, a bare repository (tests/fixtures/git.py's `origin`) and the sandbox."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import sandbox
from baton.config import Settings, build_service
from baton.core.models import JSON
from baton.service import Service
from tests.fixtures.model import FakeModel, model_env

MODEL_VARS = ("BATON_SANDBOX", "BATON_NETWORK", "BATON_SANDBOX_LIMITS", "OPENAI_API_KEY")


class Recorded:
    """Events as a watcher would get them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, JSON]] = []
        self.lock = threading.Lock()

    def publish(self, session_id: str, event: JSON) -> None:
        with self.lock:
            self.events.append((session_id, event))

    def of(self, kind: str) -> list[JSON]:
        with self.lock:
            return [e for _, e in self.events if e.get("kind") == kind]


@pytest.fixture(autouse=True)
def bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs execute in the sandbox; on a laptop without bubblewrap unconfined (CI: must run)."""
    for name in MODEL_VARS:
        monkeypatch.delenv(name, raising=False)
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable:
        if os.environ.get("CI"):
            raise
        monkeypatch.setenv("BATON_SANDBOX", "off")


@pytest.fixture
def run_env(fake_model: FakeModel, baton_home: Path) -> dict[str, str]:
    """The environment of a server (or worker) process that runs against the fake model."""
    return {**os.environ, **model_env(fake_model), "BATON_HOME": str(baton_home)}


@pytest.fixture
def settings(run_env: dict[str, str]) -> Settings:
    return Settings.load(run_env)


@pytest.fixture
def events() -> Recorded:
    return Recorded()


@pytest.fixture
def service(settings: Settings, events: Recorded) -> Iterator[Service]:
    built = build_service(settings, env={})
    built.events = events
    yield built
    built.close()


@pytest.fixture
def owner(service: Service) -> str:
    return service.account("alice", "Alice").id


@pytest.fixture
def repo(service: Service, owner: str, git_repo: Path, origin: Path) -> Any:
    return service.add_repo(owner, f"file://{origin}", name="project")


def texts(service: Service, owner: str, session_id: str) -> list[tuple[str, str]]:
    """(role, text) of each text part and tool result of the session, hydrated."""
    out = []
    for message in service.messages(owner, session_id, hydrate=True):
        for part in message.parts:
            if part.get("type") == "text":
                out.append((message.role, str(part.get("text"))))
            elif part.get("type") == "tool_result":
                out.append((message.role, str(part.get("output"))))
    return out
