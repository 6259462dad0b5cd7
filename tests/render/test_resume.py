"""The conversation another agent resumes (`baton.render.resume.turns`), on the cases a
provider would refuse, and Claude Code's folder names."""

from __future__ import annotations

from typing import Any

from baton.core.models import Message
from baton.render.claude_code import project_folder
from baton.render.resume import NO_RESULT, turns


def message(role: str, *parts: dict[str, Any], at: str = "2026-11-25T09:00:00.000000Z") -> Message:
    return Message("m_x", None, role, list(parts), at)


def call(cid: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": cid, "name": "run", "input": {"command": "ls"}}


def result(cid: str, output: Any = "ok") -> dict[str, Any]:
    return {"type": "tool_result", "tool_call_id": cid, "output": output}


def shape(messages: list[Message]) -> list[tuple[str, list[Any]]]:
    return [(t.role, t.parts) for t in turns(messages)]


def test_results_follow_their_call_and_strays_become_text() -> None:
    later = "2026-11-25T09:00:09.000000Z"
    assert shape(
        [
            message("user", {"type": "text", "text": "go"}),
            message(
                "assistant",
                {"type": "reasoning", "text": "hm"},
                call("a"),
                call("b"),
                result("a"),  # a result stored inside the reply
            ),
            message("tool", result("zzz", {"n": 1})),  # its call is unknown
            message("assistant", call("a"), {"type": "text", "text": "again"}, at=later),
            message("tool", result("b", "late")),
        ]
    ) == [
        ("user", [{"type": "text", "text": "go"}]),
        ("assistant", [call("a"), call("b")]),
        ("tool", [result("a")]),
        ("tool", [{**result("b", NO_RESULT), "is_error": True}]),
        ("user", [{"type": "text", "text": '[tool result zzz] {\n  "n": 1\n}'}]),
        (
            "assistant",
            [
                {"type": "text", "text": '[tool call run] {\n  "command": "ls"\n}'},
                {"type": "text", "text": "again"},
            ],
        ),
        ("user", [{"type": "text", "text": "[tool result b] late"}]),
    ]


def test_a_call_left_open_at_the_end_is_answered_at_its_time() -> None:
    out = turns([message("assistant", call("a"), at="2026-11-25T09:00:01.000000Z")])
    assert [(t.role, t.created_at, t.synthetic) for t in out] == [
        ("assistant", "2026-11-25T09:00:01.000000Z", False),
        ("tool", "2026-11-25T09:00:01.000000Z", True),
    ]


def test_claude_code_folder_names() -> None:
    assert project_folder("/home/dev/my_app.v2") == "-home-dev-my-app-v2"
    assert project_folder("/tmp/grüße 🙂") == "-tmp-gr--e---"
    long = "/" + "a" * 250
    assert project_folder(long).startswith("-" + "a" * 199 + "-")
    assert project_folder(long) == project_folder(long)  # the hash is stable
    assert len(project_folder(long)) > 201
