"""Approvals in a real terminal (tmux): type-ahead never approves, the diff is shown before the
question, "always" is scoped to a command's prefix, and the modes (`--mode`, `/mode`), each
turn's mode recorded. Every wait is on what the screen shows, never a fixed sleep."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.test_tmux import Tmux
from tests.fixtures.model import FakeModel, Step, call, model_env

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


def environment(fake_model: FakeModel, baton_home: Path) -> dict[str, str]:
    prefixes = ("GIT_", "PATH", "PYTHONPATH", "HOME", "LANG")
    env = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
    env.update(model_env(fake_model), BATON_HOME=str(baton_home), TERM="xterm-256color")
    return env


def shown(baton_home: Path, session_id: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "baton", "sessions", "show", session_id, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "BATON_HOME": str(baton_home)},
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_type_ahead_never_approves_and_the_diff_comes_first(
    term: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    calc = term.folder / "calc.py"
    calc.write_text("def add(a, b):\n    return a - b\n")
    edit = call("c1", "edit_file", path="calc.py", old_text="a - b", new_text="a + b")
    fake_model.add(
        Step(text="Looking at calc.py, " * 6, chunk=3, delay=0.1, tool_calls=[edit]),
        Step(text="Left it alone."),
    )
    term.start("t", environment(fake_model, baton_home), "chat")
    term.wait("t", "Ctrl-D leaves")
    term.type("t", "fix calc")
    term.wait("t", "Looking at")  # the model is still streaming: type ahead now
    term.type("t", "a")
    screen = term.wait("t", "allow edit calc.py?")
    # the change is on the screen before the question
    question = screen.index("allow edit calc.py?")
    assert screen.index("-    return a - b") < question
    assert screen.index("+    return a + b") < question
    assert calc.read_text() == "def add(a, b):\n    return a - b\n"
    term.type("t", "n")  # the typed-ahead "a" was discarded: this answer decides
    term.wait("t", "Left it alone.")
    assert calc.read_text() == "def add(a, b):\n    return a - b\n"
    term.type("t", "/exit")
    term.wait_gone("t")


def test_always_is_scoped_to_the_command_prefix(
    term: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    (term.folder / "x").mkdir()
    fake_model.add(
        Step(tool_calls=[call("c1", "run_command", command="echo first")]),
        Step(tool_calls=[call("c2", "run_command", command="echo second")]),
        Step(tool_calls=[call("c3", "run_command", command="rm -rf x")]),
        Step(text="All done."),
    )
    term.start("t", environment(fake_model, baton_home), "chat", "--sandbox", "off")
    term.wait("t", "Ctrl-D leaves")
    term.type("t", "run things")
    term.wait("t", 'allow run: echo first? (a = always "echo …" this session) [y/n/a]')
    term.type("t", "a")
    screen = term.wait("t", "allow run: rm -rf x?")
    assert "allow run: echo second?" not in screen  # covered by "always echo"
    assert "second" in screen.split("allow run: rm -rf x?")[0]
    term.type("t", "n")
    term.wait("t", "All done.")
    assert (term.folder / "x").is_dir()
    term.type("t", "/exit")
    term.wait_gone("t")


def test_modes_switch_with_slash_mode_and_each_turn_records_its_mode(
    term: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    fake_model.add(
        Step(tool_calls=[call("c1", "write_file", path="a.txt", content="A\n")]),
        Step(text="Planned."),
        Step(tool_calls=[call("c2", "write_file", path="a.txt", content="A\n")]),
        Step(tool_calls=[call("c3", "run_command", command="ls")]),
        Step(text="Built."),
    )
    term.start("t", environment(fake_model, baton_home), "chat", "--mode", "plan")
    term.wait("t", "Ctrl-D leaves")
    term.type("t", "plan it")
    screen = term.wait("t", "Planned.")
    assert "refused write a.txt (2 bytes) (plan mode: read-only tools only)" in screen
    assert "allow write" not in screen
    assert not (term.folder / "a.txt").exists()
    term.type("t", "/mode auto-edit")
    term.wait("t", "mode: auto-edit (edits without asking, commands are asked)")
    term.type("t", "build it")
    screen = term.wait("t", "allow run: ls?")
    assert "allow write" not in screen and "+A" in screen  # written without asking, diff shown
    assert (term.folder / "a.txt").read_text() == "A\n"
    term.type("t", "y")
    term.wait("t", "Built.")
    term.type("t", "/exit")
    session = re.search(r"session (ses_\w+)", term.wait("t", lambda s: "session ses_" in s))
    assert session
    term.wait_gone("t")
    messages = shown(baton_home, session.group(1))["messages"]
    prompts = [m["parts"][0] for m in messages if m["role"] == "user"]  # type: ignore[attr-defined]
    assert prompts == [
        {"type": "text", "text": "plan it", "mode": "plan"},
        {"type": "text", "text": "build it", "mode": "auto-edit"},
    ]


def test_ctrl_c_at_the_question_stops_the_turn_and_writes_nothing(
    term: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    fake_model.add(
        Step(tool_calls=[call("c1", "write_file", path="a.txt", content="A\n")]),
        Step(text="Next turn."),
    )
    term.start("t", environment(fake_model, baton_home), "chat")
    term.wait("t", "Ctrl-D leaves")
    term.type("t", "write it")
    term.wait("t", "allow write a.txt (2 bytes)?")
    term.keys("t", "C-c")
    term.wait("t", "interrupted: the turn was stopped")
    assert not (term.folder / "a.txt").exists()
    term.type("t", "go on")  # the chat goes on
    term.wait("t", "Next turn.")
    term.type("t", "/exit")
    term.wait_gone("t")
