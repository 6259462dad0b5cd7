"""Stored text never reaches a terminal raw: escape sequences (window title, clear screen,
hyperlinks), C1 controls and bidi overrides in titles, messages, tool outputs and metadata are
printed visibly by every human printer, and display names refuse them on input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.cli.main import main
from baton.cli.output import safe_console
from baton.core.terminal import printable

TITLE = "\x1b]0;pwned\x07"  # OSC 0: set the window title
CLEAR = "\x1b[2J"  # CSI: clear the screen
LINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"  # OSC 8 hyperlink
RLO = "\u202e"  # right-to-left override
CSI = "\x9b"  # C1 control sequence introducer
EVIL = f"{TITLE}a{CLEAR}b{LINK}c{RLO}d{CSI}2Je"
RAW = ["\x1b", "\x07", "\x9b", "\u202e"]


def clean(text: str) -> None:
    found = [r for r in RAW if r in text]
    assert found == [], text


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def baton(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Result:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def test_every_printer_of_stored_text_shows_controls_visibly(
    baton: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = baton("sessions", "new", "--title", EVIL, "--task", EVIL).out.strip()
    turn = [
        {"role": "user", "parts": [{"type": "text", "text": EVIL}]},
        {
            "role": "assistant",
            "model": EVIL,
            "parts": [
                {"type": "reasoning", "text": EVIL},
                {"type": "tool_call", "id": "c1", "name": "bash", "input": {"cmd": EVIL}},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "c1", "output": EVIL}]},
    ]
    (tmp_path / "turn.json").write_bytes(orjson.dumps(turn))
    assert baton("sessions", "append", sid, "--file", str(tmp_path / "turn.json")).code == 0
    meta = json.dumps({"mode": EVIL})
    assert baton("sessions", "update", sid, "--metadata", meta).code == 0
    outputs = {
        "list": baton("sessions", "list"),
        "search": baton("sessions", "list", "-q", "pwned"),
        "show": baton("sessions", "show", sid),
        "show --full": baton("sessions", "show", sid, "--full"),
        "share": baton("share", sid, "--allow-secrets"),
        "shares": baton("shares"),
        "fork": baton("fork", sid),
        "rename": baton("sessions", "rename", sid, EVIL),
    }
    for name, result in outputs.items():
        assert result.code == 0, (name, result.err)
        clean(result.out + result.err)
    shown = outputs["show"].out
    assert "\\x1b]0;pwned\\x07" in shown and "\\u202e" in shown and "\\x9b2J" in shown
    # the title, the task, the prompt, the reasoning, the tool call and its result
    assert shown.count("\\x1b[2J") == 6
    assert outputs["rename"].out.startswith(f"renamed {sid}: \\x1b]0;pwned\\x07a\\x1b[2Jb")
    # --json stays exact: JSON escapes every control character.
    data = baton("sessions", "show", sid, "--json")
    clean(data.out)
    assert orjson.loads(data.out)["messages"][0]["parts"][0]["text"] == EVIL


def test_an_error_naming_stored_or_typed_text_is_printed_visibly(baton: Any) -> None:
    result = baton("sessions", "show", f"ses_{CLEAR}")
    assert result.code == 1
    clean(result.err)
    assert "\\x1b[2J" in result.err


def test_a_terminal_console_keeps_its_own_styles_but_no_injected_sequence() -> None:
    from rich.markdown import Markdown

    buffer = io.StringIO()
    out = safe_console(file=buffer, force_terminal=True, color_system="standard", width=200)
    out.print(Markdown(f"**bold** {EVIL}"))
    out.print(f"[red]{printable('x')}[/red]")
    text = buffer.getvalue()
    assert "\x1b[1m" in text and "\x1b[31m" in text  # rich's own bold and red
    for raw in ("\x1b]0;", "\x1b[2J", "\x1b]8;;https://evil", "\x07", "\x9b", RLO):
        assert raw not in text
    assert "\\x1b]0;pwned" in text  # (rich drops the BEL itself)


def test_the_chat_shows_a_model_reply_and_tool_output_visibly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from baton.agent.tools import Outcome as ToolOutcome
    from baton.cli.chat import ChatDisplay, StreamDisplay

    stream = StreamDisplay(show_text=True)
    stream.text(EVIL)
    stream.end_text()
    stream.tool_call("bash", {"cmd": EVIL})
    stream.tool_result("bash", ToolOutcome(EVIL, is_error=False))
    captured = capsys.readouterr()
    clean(captured.out + captured.err)
    assert captured.out == printable(EVIL) + "\n"
    buffer = io.StringIO()
    display = ChatDisplay(safe_console(file=buffer, force_terminal=True, width=200))
    display.text(EVIL)
    display.end_text()
    display.tool_call("bash", {"cmd": EVIL})
    display.tool_result("bash", ToolOutcome(EVIL, is_error=False))
    display.notice(EVIL)
    for raw in ("\x1b]0;", "\x1b[2J", "\x07", "\x9b", RLO):
        assert raw not in buffer.getvalue()


@pytest.mark.parametrize("name", ["Alice\u202eecilA", "Al\x1b[2Jice", "Alice\x9b", "two\nlines"])
def test_a_display_name_with_controls_is_refused(baton: Any, name: str) -> None:
    result = baton("users", "add", "alice", "--display-name", name)
    assert result.code == 2  # bad input
    assert result.err == (
        f"error: display name {printable(repr(name))} holds control or bidi characters; "
        "give plain text\n"
    )
    clean(result.err)
    assert "alice" not in baton("users", "list").out
