"""The agent's tests: the fake model (tests/fixtures/model.py) and a memory service."""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton import sandbox
from baton.agent import tools
from baton.cli.main import main
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore
from tests.fixtures.cli import Result
from tests.fixtures.model import FakeModel, model_env

MODEL_VARS = (
    "BATON_MODEL",
    "BATON_BASE_URL",
    "BATON_API_KEY",
    "OPENAI_API_KEY",
    "BATON_PRICES",
    "BATON_CONTEXT_WINDOW",
    "BATON_RETRIES",
    "BATON_RETRY_DELAY",
    "BATON_RETRY_MAX_WAIT",
    "BATON_COMMAND_TIMEOUT",
    "BATON_SANDBOX",
    "BATON_NETWORK",
    "BATON_SANDBOX_LIMITS",
)


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model settings leak in from the machine. Commands run in the sandbox; on a laptop
    without a usable bubblewrap they run unconfined instead (in CI the sandbox must work,
    and tests/agent/test_sandbox.py checks it)."""
    for name in MODEL_VARS:
        monkeypatch.delenv(name, raising=False)
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable:
        if not os.environ.get("CI"):
            monkeypatch.setenv("BATON_SANDBOX", "off")
            monkeypatch.setattr(tools, "Policy", sandbox.Policy.unconfined)


@pytest.fixture
def model_settings(fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    for name, value in model_env(fake_model).items():
        monkeypatch.setenv(name, value)
    return fake_model


@pytest.fixture
def memory_service() -> Service:
    return Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))


@pytest.fixture
def me(memory_service: Service) -> str:
    return memory_service.account("alice", "Alice").id


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "hello.py").write_text("print('hello')\n")
    return folder


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) raises KeyboardInterrupt in this process, as in a terminal, even when
    pytest was started with SIGINT ignored (a background job of a shell script is)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def baton(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """`baton ARGS…` in this process; `stdin` is what a pipe would give it."""

    def run(*args: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
