"""The chat's prompt in a real terminal (tmux): Alt-Enter inserts a new line (Enter sends the
whole prompt), the start-up hint says so, and `@` + Tab completes a path of the repository."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_tmux import Tmux
from tests.fixtures.model import FakeModel, Step, model_env

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("CI") != "true",
    reason="tmux is not installed (CI=true makes this a failure)",
)


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Tmux]:
    folder = tmp_path / "project"
    folder.mkdir()
    session = Tmux(folder)
    yield session
    session.kill()


def test_alt_enter_inserts_a_new_line_and_at_completes_a_path(
    term: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    fake_model.responder = lambda body: Step(text="got it", usage=(10, 1, 0))
    (term.folder / "hello.py").write_text("print('hello')\n")
    env = {k: v for k, v in os.environ.items() if k.startswith(("GIT_", "PATH", "HOME", "LANG"))}
    env.update(model_env(fake_model), BATON_HOME=str(baton_home), TERM="xterm-256color")
    term.start("one", env, "chat")
    term.wait("one", "Alt-Enter for a new line")
    term.tmux("send-keys", "-t", "one", "-l", "line one")
    term.keys("one", "M-Enter")
    term.tmux("send-keys", "-t", "one", "-l", "line two")
    term.wait("one", "line two")
    assert not fake_model.requests  # Alt-Enter did not send
    term.keys("one", "Enter")
    term.wait("one", "got it")
    assert fake_model.requests[0]["messages"][-1]["content"] == "line one\nline two"
    # Shift-Enter as kitty, foot and WezTerm send it (CSI u) is a new line too
    term.tmux("send-keys", "-t", "one", "-l", "first")
    term.tmux("send-keys", "-t", "one", "-H", *[f"{b:02x}" for b in b"\x1b[13;2u"])
    term.tmux("send-keys", "-t", "one", "-l", "second")
    term.wait("one", "second")
    term.keys("one", "Enter")
    term.wait("one", lambda s: s.count("got it") == 2)
    assert fake_model.requests[1]["messages"][-1]["content"] == "first\nsecond"
    # @ + Tab completes a file of the repository, which the prompt then attaches
    term.tmux("send-keys", "-t", "one", "-l", "read @hel")
    term.wait("one", "› read @hel")
    time.sleep(0.3)  # let the completer start, as a person would (not an assertion)
    term.keys("one", "Tab")
    term.wait("one", "› read @hello.py")
    term.keys("one", "Enter")
    term.wait("one", lambda s: s.count("got it") == 3)
    assert fake_model.requests[2]["messages"][-1]["content"] == (
        "read @hello.py\n\n<file path=\"hello.py\">\nprint('hello')\n\n</file>"
    )
    term.keys("one", "C-d")
    term.wait_gone("one")
