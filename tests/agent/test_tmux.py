"""The interactive chat in a real terminal (tmux): prompt, streamed answer, completion of
slash commands, the status line, /session share and fork, Ctrl-C, /exit, then `baton chat -c`
showing the history."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from baton.agent.loop import INTERRUPTED_TURN
from tests.fixtures.model import FakeModel, Step, model_env

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("CI") != "true",
    reason="tmux is not installed (CI=true makes this a failure)",
)


class Tmux:
    """One tmux server of our own (its own socket), so no user session is touched."""

    def __init__(self, folder: Path) -> None:
        self.socket = f"baton-test-{os.getpid()}-{time.monotonic_ns()}"
        self.folder = folder

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        if check and done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self, name: str, env: dict[str, str], *args: str) -> None:
        script = self.folder / f"{name}.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "baton", *args])
        script.write_text(f"{exports}cd {shlex.quote(str(self.folder))}\nexec {command}\n")
        self.tmux("new-session", "-d", "-s", name, "-x", "150", "-y", "40", f"bash {script}")

    def keys(self, name: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", name, *keys)

    def type(self, name: str, text: str) -> None:
        self.tmux("send-keys", "-t", name, "-l", text)
        self.keys(name, "Enter")

    def screen(self, name: str) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", name, "-S", "-300", check=False)

    def wait(self, name: str, what: str | Callable[[str], bool], timeout: float = 30) -> str:
        test = (lambda text: what in text) if isinstance(what, str) else what
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen(name)
            if test(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"waited for {what!r}; the screen shows:\n{self.screen(name)}")

    def wait_gone(self, name: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = subprocess.run(
                ["tmux", "-L", self.socket, "has-session", "-t", name], capture_output=True
            )
            if alive.returncode != 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} did not exit; the screen shows:\n{self.screen(name)}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    folder = tmp_path / "project"
    folder.mkdir()
    session = Tmux(folder)
    yield session
    session.kill()


def answer(body: dict[str, object]) -> Step:
    prompt = str(body["messages"][-1]["content"])  # type: ignore[index]
    if prompt.startswith("slow"):
        return Step(text="counting " + " ".join(str(n) for n in range(200)), chunk=6, delay=0.1)
    return Step(text=f"**echo**: {prompt}", chunk=3, delay=0.02, usage=(1000, 10, 0))


def test_chat_in_a_terminal(tmux: Tmux, fake_model: FakeModel, baton_home: Path) -> None:
    fake_model.responder = answer
    env = {k: v for k, v in os.environ.items() if k.startswith(("GIT_", "PATH", "HOME", "LANG"))}
    env.update(model_env(fake_model), BATON_HOME=str(baton_home), TERM="xterm-256color")
    tmux.start("one", env, "chat")
    tmux.wait("one", "Ctrl-D leaves")
    tmux.type("one", "hello tmux")
    screen = tmux.wait("one", "echo: hello tmux")  # streamed, rendered as Markdown
    assert "**echo**" not in screen
    tmux.wait("one", lambda s: "hello tmux · fake-model · 1,000 in / 10 out · $0.0010" in s)
    # completion of slash commands: "/he" + Tab becomes /help
    tmux.keys("one", "/he")
    tmux.wait("one", "› /he")
    time.sleep(0.3)
    tmux.keys("one", "Tab")
    tmux.wait("one", "› /help")
    tmux.keys("one", "Enter")
    tmux.wait("one", "Ctrl-C stops the current turn; Ctrl-D leaves.")
    # Ctrl-C stops a turn; the chat goes on
    tmux.type("one", "slow count")
    tmux.wait("one", "counting 0 1 2")
    tmux.keys("one", "C-c")
    tmux.wait("one", "interrupted: the turn was stopped")
    tmux.type("one", "/session share")
    share = re.search(r"/share/([A-Za-z0-9_-]{20,})", tmux.wait("one", "fork it with"))
    assert share
    tmux.type("one", f"/session fork {share.group(1)}")
    screen = tmux.wait("one", "now in the fork")
    forked = re.search(r"into (ses_\w+) \(\d+ messages\); you are now in the fork", screen)
    assert forked, screen
    tmux.type("one", "in the fork")
    tmux.wait("one", "echo: in the fork")
    tmux.type("one", "/exit")
    tmux.wait_gone("one")
    # the original keeps the interruption; the fork the conversation up to the share
    home = {"BATON_HOME": str(baton_home)}
    listed = subprocess.run(
        [sys.executable, "-m", "baton", "sessions", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **home},
        check=True,
    ).stdout
    assert forked.group(1) in listed
    shown = subprocess.run(
        [sys.executable, "-m", "baton", "sessions", "show", forked.group(1), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **home},
        check=True,
    ).stdout
    assert INTERRUPTED_TURN in shown and "in the fork" in shown
    # `baton chat -c` resumes the latest session of this folder: the fork, with its history
    tmux.start("two", env, "chat", "-c")
    screen = tmux.wait("two", "Ctrl-D leaves")
    assert "› hello tmux" in screen and "echo: in the fork" in screen
    assert "› in the fork" in screen
    tmux.keys("two", "C-d")
    tmux.wait_gone("two")


def waits(body: dict[str, object]) -> Step:
    messages = body["messages"]
    prompt = str(messages[-1]["content"])  # type: ignore[index]
    if messages[-1]["role"] == "tool":  # type: ignore[index]
        return Step(text="The command is done.")
    if prompt == "wait":  # the first words come after three seconds
        return Step(text="late answer", chunk=20, delay=3.0)
    if prompt == "lines":
        return Step(text="\n\n".join(f"line {n}" for n in range(90)), chunk=9, delay=0.03)
    if prompt == "heading":
        words = " ".join(f"w{n}" for n in range(300))
        return Step(text=f"# Big heading\n\n{words}", chunk=6, delay=0.1)
    return Step(tool_calls=[("c1", "run_command", {"command": "sleep 4; echo slept"})])


def test_spinners_and_a_long_reply_in_a_terminal(
    tmux: Tmux, fake_model: FakeModel, baton_home: Path
) -> None:
    fake_model.responder = waits
    env = {k: v for k, v in os.environ.items() if k.startswith(("GIT_", "PATH", "HOME", "LANG"))}
    env.update(model_env(fake_model), BATON_HOME=str(baton_home), TERM="xterm-256color")
    if "BATON_SANDBOX" in os.environ:
        env["BATON_SANDBOX"] = os.environ["BATON_SANDBOX"]
    tmux.start("spin", env, "chat", "--yes")
    tmux.wait("spin", "Ctrl-D leaves")
    # waiting for the first token: a spinner with the seconds so far, gone once text comes
    tmux.type("spin", "wait")
    tmux.wait("spin", lambda s: re.search(r"waiting for the model · [1-9]\d*s", s) is not None)
    screen = tmux.wait("spin", "late answer")
    tmux.wait("spin", lambda s: re.search(r"^late answer\s*\n›", s, re.M) is not None)
    assert "waiting for the model" not in tmux.screen("spin")
    # a command running: a spinner with the command and its seconds
    tmux.type("spin", "run it")
    tmux.wait(
        "spin", lambda s: re.search(r"running sleep 4; echo slept · [1-9]\d*s", s) is not None
    )
    tmux.wait("spin", "The command is done.")
    assert "running sleep 4" not in tmux.screen("spin").replace("→ run_command(sleep 4", "")
    # a reply longer than the terminal: its newest lines are in view while it streams
    tmux.type("spin", "lines")
    visible = tmux.tmux("capture-pane", "-p", "-t", "spin")  # the screen alone, no history
    deadline = time.monotonic() + 60
    while "line 60" not in visible and time.monotonic() < deadline:
        visible = tmux.tmux("capture-pane", "-p", "-t", "spin")
        time.sleep(0.05)
    assert "line 60" in visible
    screen = tmux.wait("spin", lambda s: re.search(r"^line 89\s*\n›", s, re.M) is not None)
    # printed once when it ended: every line once, no doubled start
    for n in (0, 1, 45, 89):
        assert len(re.findall(rf"^line {n}\s*$", screen, re.M)) == 1, screen
    # Ctrl-C mid-reply: what was shown stays, once, heading and all
    tmux.type("spin", "heading")
    tmux.wait("spin", "w20")
    tmux.keys("spin", "C-c")
    screen = tmux.wait("spin", "interrupted: the turn was stopped")
    assert screen.count("Big heading") == 1, screen
    assert "w1 w2 w3" in screen
    tmux.keys("spin", "C-d")
    tmux.wait_gone("spin")
