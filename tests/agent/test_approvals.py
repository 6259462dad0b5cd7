"""Approvals that mean what the user meant: the scope of "always", the diff shown before an
edit, the modes, piped input never taken for an answer, `baton run`'s exit code when an action
was refused and its errors as one JSON object. The terminal itself: tests/agent/test_tmux.py."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from baton.agent.approvals import PLAN_REFUSED, Approver, command_prefix, preview
from baton.agent.loop import REFUSED
from baton.agent.slash import completions
from baton.agent.tools import Tools
from baton.cli.main import main
from tests.fixtures.cli import Result
from tests.fixtures.model import FakeModel, call


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


class Answers:
    """A terminal that answers from a list and records what it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, prompt: str) -> str | None:
        self.asked.append(prompt)
        return self.answers.pop(0) if self.answers else None


def test_the_prefix_always_allows_is_the_program_or_its_subcommand() -> None:
    assert command_prefix("pytest -q tests") == ("pytest",)
    assert command_prefix("npm test -- --watch") == ("npm", "test")
    assert command_prefix("python -m pytest -x") == ("python", "-m", "pytest")
    assert command_prefix("cargo --version") == ("cargo",)
    for unscoped in ("pytest; rm -rf x", "pytest && rm -rf x", "pytest | sh", "X=1 pytest", ""):
        assert command_prefix(unscoped) is None


def test_always_for_pytest_still_asks_for_rm(tmp_path: Path) -> None:
    answers = Answers("a", "n", "n")
    approve = Approver(Tools(tmp_path), "ask", answers, color=False)
    args = {"command": "pytest -q"}
    assert approve("run_command", args, "run: pytest -q") is True
    assert answers.asked == ['allow run: pytest -q? (a = always "pytest …" this session) [y/n/a] ']
    assert approve("run_command", {"command": "pytest tests/x.py"}, "run: pytest") is True
    assert len(answers.asked) == 1  # allowed by the prefix, not asked
    assert approve("run_command", {"command": "rm -rf x"}, "run: rm -rf x") is False
    assert answers.asked[1] == 'allow run: rm -rf x? (a = always "rm …" this session) [y/n/a] '
    chained = "pytest && rm -rf x"
    assert approve("run_command", {"command": chained}, f"run: {chained}") is False
    assert answers.asked[2] == f"allow run: {chained}? [y/n] "  # no "always" for a chain
    assert approve.refused == ["run: rm -rf x", f"run: {chained}"]
    # "always" for a command never covers edits
    answers.answers = ["n"]
    assert approve("write_file", {"path": "a.txt", "content": "A"}, "write a.txt") is False
    assert not (tmp_path / "a.txt").exists()


def test_always_for_edits_lasts_the_session_and_does_not_cover_commands(tmp_path: Path) -> None:
    shown: list[str] = []
    answers = Answers("a", "n")
    approve = Approver(Tools(tmp_path), "ask", answers, shown.append, color=False)
    assert approve("write_file", {"path": "a.txt", "content": "A\n"}, "write a.txt") is True
    assert answers.asked == ["allow write a.txt? (a = every edit this session) [y/n/a] "]
    assert approve("write_file", {"path": "b.txt", "content": "B\n"}, "write b.txt") is True
    assert len(answers.asked) == 1
    assert approve("run_command", {"command": "ls"}, "run: ls") is False
    assert shown[1] == "--- /dev/null\n+++ b/b.txt\n@@ -0,0 +1 @@\n+B"  # shown, not asked


def test_an_edit_shows_its_diff_before_it_is_asked(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    tools = Tools(tmp_path)
    events: list[str] = []
    answers = Answers("y")

    def reader(prompt: str) -> str | None:
        events.append(prompt)
        return answers(prompt)

    approve = Approver(tools, "ask", reader, events.append, color=False)
    args = {"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}
    assert approve("edit_file", args, "edit calc.py") is True
    assert events == [
        "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
        "-    return a - b\n+    return a + b",
        "allow edit calc.py? (a = every edit this session) [y/n/a] ",
    ]
    assert (tmp_path / "calc.py").read_text() == "def add(a, b):\n    return a - b\n"
    assert preview(tools, "edit_file", {**args, "old_text": "missing"}) is None
    coloured = Approver(tools, "ask", Answers("n"), events.append)
    coloured("edit_file", args, "edit calc.py")
    assert "\x1b[31m-    return a - b\x1b[0m" in events[-1]
    assert "\x1b[32m+    return a + b\x1b[0m" in events[-1]


def test_modes_plan_refuses_writes_and_auto_edit_asks_only_for_commands(tmp_path: Path) -> None:
    answers = Answers("n")
    shown: list[str] = []
    approve = Approver(Tools(tmp_path), "plan", answers, shown.append, color=False)
    write = {"path": "a.txt", "content": "A"}
    assert approve("write_file", write, "write a.txt (1 bytes)") == PLAN_REFUSED
    assert approve("run_command", {"command": "ls"}, "run: ls") == PLAN_REFUSED
    assert approve("read_file", {"path": "a.txt"}, "read") is True
    assert answers.asked == []
    assert shown[0] == "baton: refused write a.txt (1 bytes) (plan mode: read-only tools only)"
    approve.mode = "auto-edit"
    assert approve("write_file", write, "write a.txt (1 bytes)") is True
    assert answers.asked == []
    assert approve("run_command", {"command": "ls"}, "run: ls") is False
    assert answers.asked == ['allow run: ls? (a = always "ls …" this session) [y/n/a] ']
    approve.mode = "yolo"
    assert approve("run_command", {"command": "ls"}, "run: ls") is True


def test_slash_mode_completes_the_modes() -> None:
    assert completions("/mode a") == ["/mode ask", "/mode auto-edit"]
    assert completions("/mode ") == ["/mode ask", "/mode auto-edit", "/mode plan", "/mode yolo"]


def test_piped_chat_never_takes_a_prompt_line_for_an_answer(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.reply("", call("c1", "write_file", path="a.txt", content="A"))
    model_settings.reply("Not allowed.")
    model_settings.reply("You said y.")
    result = baton("chat", stdin="write a.txt\ny\n")
    assert result.code == 0, result.err
    assert "baton: refused write a.txt (1 bytes) (no terminal to ask; pass --yes to allow)" in (
        result.out
    )
    assert not Path("a.txt").exists()
    # the next line was a prompt, not an answer
    prompts = [r["messages"][-1] for r in model_settings.requests]
    assert prompts[1] == {"role": "tool", "tool_call_id": "c1", "content": REFUSED}
    assert prompts[2] == {"role": "user", "content": "y"}
    assert "You said y." in result.out


def test_piped_chat_never_answers_a_slash_command_question(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.reply("Hello.")
    model_settings.reply("You said y.")
    result = baton("chat", stdin="hello\n/session delete\ny\n")
    assert result.code == 0, result.err
    out = "\n".join(line.rstrip() for line in result.out.splitlines())
    assert re.search(r"\nDelete ses_\w+ \(hello\)\? no \(no terminal to ask\)\nnot deleted\n", out)
    assert model_settings.requests[-1]["messages"][-1] == {"role": "user", "content": "y"}
    assert "You said y." in result.out


def test_run_in_plan_mode_refuses_writes_exits_3_and_records_the_mode(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.reply("", call("c1", "write_file", path="a.txt", content="A"))
    model_settings.reply("Here is the plan.")
    result = baton("run", "plan it", "--mode", "plan", "--yes", "--json")
    assert result.code == 3  # an explicit --mode wins over --yes: plan stays read-only
    assert not Path("a.txt").exists()
    model_settings.reply("", call("c1", "write_file", path="a.txt", content="A"))
    model_settings.reply("Here is the plan.")
    result = baton("run", "plan it", "--mode", "plan", "--json")
    assert result.code == 3
    out = json.loads(result.out)
    assert out["refused"] == ["write a.txt (1 bytes)"] and out["answer"] == "Here is the plan."
    assert not Path("a.txt").exists()
    assert model_settings.requests[-1]["messages"][-1]["content"] == PLAN_REFUSED
    shown = baton("sessions", "show", out["session_id"], "--json").json()
    assert shown["messages"][0]["parts"][0] == {"type": "text", "text": "plan it", "mode": "plan"}
    tool = shown["messages"][2]["parts"][0]
    assert tool["metadata"] == {"refused": True} and tool["output"] == PLAN_REFUSED


def test_an_edit_keeps_its_diff_in_the_transcript(baton: Any, model_settings: FakeModel) -> None:
    Path("calc.py").write_text("x = 1\n")
    model_settings.reply(
        "", call("c1", "edit_file", path="calc.py", old_text="x = 1", new_text="x = 2")
    )
    model_settings.reply("Done.")
    result = baton("run", "bump", "--mode", "auto-edit", "--json")
    assert result.code == 0, result.err
    assert Path("calc.py").read_text() == "x = 2\n"
    sid = json.loads(result.out)["session_id"]
    shown = baton("sessions", "show", sid, "--json").json()
    assert shown["messages"][0]["parts"][0]["mode"] == "auto-edit"
    assert shown["messages"][2]["parts"][0]["metadata"] == {
        "diff": "--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n",
        "files_written": ["calc.py"],
    }
    # and the chat shows it again when the session is resumed
    resumed = baton("chat", "-s", sid, stdin="")
    lines = [line.rstrip() for line in resumed.out.splitlines()]
    at = lines.index("  ← edited calc.py (1 replacement(s))")
    assert lines[at + 1 : at + 6] == [
        "--- a/calc.py",
        "+++ b/calc.py",
        "@@ -1 +1 @@",
        "-x = 1",
        "+x = 2",
    ]


def test_run_json_prints_an_error_as_one_json_object(baton: Any, model_settings: FakeModel) -> None:
    model_settings.fail(401, "Incorrect API key provided: sk-bad")
    result = baton("run", "hello", "--json")
    assert result.code == 1 and result.err == ""
    error = json.loads(result.out)
    assert list(error) == ["error"] and error["error"]["code"] == "model_error"
    assert error["error"]["message"].startswith(
        f"the model endpoint {model_settings.url} refused the API key (401)"
    )
    missing = baton("run", "hello", "--json", "--session", "ses_nope")
    assert missing.code == 1 and missing.err == ""
    assert json.loads(missing.out) == {
        "error": {"code": "not_found", "message": json.loads(missing.out)["error"]["message"]}
    }
