"""The Cline / Roo Code / Kilo Code task-folder importer. No real task folder is in the
samples, so these tests write them in the shapes the extensions' source code writes
(docs/importers/cline.md): an older Cline task with XML tool calls, a Roo Code task with native
tool_use / tool_result blocks and `ts` stamps, and broken copies."""

from __future__ import annotations

import copy
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.importers.base import ImportedSession, Parsed
from baton.importers.cline import IMPORTER
from tests.importers.common import (
    SAMPLES,
    chain,
    damage,
    head,
    ids,
    parts,
    refusal,
    refused_or_valid,
    samples,
    single,
    typed_prompts,
    validated,
)

CLINE_ID = "1732000000000"  # 2024-11-19T07:06:40Z
ROO_ID = "1732000100000"
T = int(CLINE_ID)
CWD = "/home/dev/project"
PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/"
    "PchI7wAAAABJRU5ErkJggg=="
)


def env(minutes: int) -> dict[str, str]:
    return {
        "type": "text",
        "text": "<environment_details>\n# VSCode Visible Files\ngreet.py\n\n"
        f"# Current Time\n11/19/2024, 7:{minutes:02d}:00 AM (UTC)\n\n"
        f"# Current Working Directory ({CWD}) Files\nREADME.md\ngreet.py\n"
        "</environment_details>",
    }


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


def result(header: str, *body: str, minutes: int = 7) -> dict[str, Any]:
    return {"role": "user", "content": [text(header), *(text(b) for b in body), env(minutes)]}


# An older Cline task: XML tool calls in the assistant's text, results as user text blocks.
CLINE_HISTORY: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [
            text("<task>\nCreate greet.py that prints a greeting\n</task>"),
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            env(6),
        ],
    },
    {
        "role": "assistant",
        "content": [
            text(
                "<thinking>\nThe user wants a new file.\n</thinking>\n\n<write_to_file>\n"
                '<path>greet.py</path>\n<content>\nprint("<b>Hi</b>")\n</content>\n'
                "</write_to_file>"
            )
        ],
    },
    result(
        "[write_to_file for 'greet.py'] Result:", "The content was successfully saved to greet.py."
    ),
    {
        "role": "assistant",
        "content": [
            text(
                "<execute_command>\n<command>python3 greet.py</command>\n"
                "<requires_approval>false</requires_approval>\n</execute_command>"
            )
        ],
    },
    result(
        "[execute_command for 'python3 greet.py'] Result:", "Command executed.\nOutput:\n<b>Hi</b>"
    ),
    {
        "role": "assistant",
        "content": [
            text(
                "<attempt_completion>\n<result>\nCreated greet.py; it prints a greeting.\n"
                "</result>\n</attempt_completion>"
            )
        ],
    },
    result(
        "[attempt_completion] Result:",
        "The user has provided feedback on the results. Consider their input to continue the "
        "task, and then attempt completion again.\n"
        "<feedback>\nAlso read it back to me\n</feedback>",
    ),
    {
        "role": "assistant",
        "content": "I'll read it.\n\n<read_file>\n<path>greet.py</path>\n</read_file>",
    },
    result(
        "[read_file for 'greet.py'] Result:",
        "The tool execution failed with the following error:\n<error>\n"
        "Error reading file: ENOENT: no such file or directory\n</error>",
    ),
    {"role": "assistant", "content": [text("The file could not be read.")]},
    {
        "role": "user",
        "content": [
            text(
                "[ERROR] You did not use a tool in your previous response! Please retry with a "
                "tool use."
            ),
            env(8),
        ],
    },
    {
        "role": "assistant",
        "content": [
            text("<attempt_completion>\n<result>\nDone.\n</result>\n</attempt_completion>")
        ],
    },
    {
        "role": "user",
        "content": [
            text(
                "[TASK RESUMPTION] This task was interrupted 1 minute ago. It may or may not be "
                "complete, so please reassess the task context.\n\nNew instructions for task "
                "continuation:\n<user_message>\nNow add a main guard\n</user_message>"
            ),
            env(10),
        ],
    },
    {
        "role": "assistant",
        "content": [
            text(
                "<replace_in_file>\n<path>greet.py</path>\n<diff>\n<<<<<<< SEARCH\n"
                'print("<b>Hi</b>")\n=======\nif __name__ == "__main__":\n'
                '    print("<b>Hi</b>")\n>>>>>>> REPLACE\n</diff>\n</replace_in_file>'
            )
        ],
    },
    result(
        "[replace_in_file for 'greet.py'] Result:",
        "The content was successfully saved to greet.py.",
    ),
    {
        "role": "assistant",
        "content": [
            text(
                "<thinking>Done</thinking>\n<attempt_completion>\n<result>\nAdded a main guard."
                "\n</result>\n</attempt_completion>"
            )
        ],
    },
]
# (conversationHistoryIndex, tokensIn, tokensOut, cacheWrites, cacheReads, cost) per request
REQUESTS = [
    (-1, 1200, 80, 1000, 0, 0.0123),
    (1, 1300, 40, 0, 1000, 0.002),
    (3, 1400, 45, 0, 1100, 0.0021),
    (5, 1500, 50, 0, 1200, 0.0022),
    (7, 1600, 20, 0, 1300, 0.0023),
    (9, 1700, 30, 0, 1400, 0.0024),
    (11, 1800, 90, 200, 1500, 0.0035),
    (13, 1900, 25, 0, 1600, 0.0026),
]


def cline_ui() -> list[dict[str, Any]]:
    """The chat view: the task, then per request an api_req_started entry (its cost) and what
    the reply showed; a resume, and user feedback."""
    ui: list[dict[str, Any]] = [{"ts": T + 10, "type": "say", "say": "task", "text": "Create…"}]
    shown = ["text", "tool", "command", "completion_result", "text", "text", "completion_result"]
    shown.append("tool")
    for n, (index, tin, tout, writes, reads, cost) in enumerate(REQUESTS):
        start = T + 1000 * (n + 1) + (60_000 if n >= 6 else 0)
        if n == 6:
            ui.append({"ts": start - 500, "type": "ask", "ask": "resume_completed_task"})
        info = {
            "request": "…",
            "tokensIn": tin,
            "tokensOut": tout,
            "cacheWrites": writes,
            "cacheReads": reads,
            "cost": cost,
        }
        ui.append(
            {
                "ts": start,
                "type": "say",
                "say": "api_req_started",
                "text": json.dumps(info),
                "conversationHistoryIndex": index,
                "modelInfo": {"providerId": "anthropic", "modelId": "claude-sonnet-4-5"},
            }
        )
        ui.append({"ts": start + 1, "type": "say", "say": "checkpoint_created"})
        ui.append({"ts": start + 400, "type": "say", "say": shown[n], "text": "…"})
    return ui


CLINE_METADATA = {
    "files_in_context": [
        {"path": "greet.py", "record_state": "active", "record_source": "cline_edited"},
        {"path": "greet.py", "record_state": "stale", "record_source": "read_tool"},
        {"path": "README.md", "record_state": "active", "record_source": "file_mentioned"},
    ],
    "model_usage": [
        {"ts": T + 900, "model_id": "claude-sonnet-4-5", "model_provider_id": "anthropic"},
    ],
}

# A Roo Code task: native tool calls, `ts` on every API message, no conversationHistoryIndex.
R = int(ROO_ID)
ROO_HISTORY: list[dict[str, Any]] = [
    {
        "role": "user",
        "content": [text("<task>\nList the files\n</task>"), env(20)],
        "ts": R + 5,
    },
    {
        "role": "assistant",
        "content": [
            text("Listing."),
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "list_files",
                "input": {"path": ".", "recursive": "false"},
            },
        ],
        "ts": R + 900,
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": [text("greet.py\nREADME.md")],
            },
            env(21),
        ],
        "ts": R + 1500,
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Two files.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            text("There are two files: greet.py and README.md."),
        ],
        "ts": R + 2400,
    },
]
ROO_UI = [
    {"ts": R, "type": "say", "say": "text", "text": "List the files"},
    {"ts": R + 4, "type": "say", "say": "api_req_started", "text": json.dumps({"tokensIn": 900})},
    {"ts": R + 800, "type": "ask", "ask": "tool", "text": "{}"},
    {
        "ts": R + 1400,
        "type": "say",
        "say": "api_req_started",
        "text": json.dumps({"tokensIn": 950, "tokensOut": 12, "cost": 0.001}),
    },
]


def write_task(folder: Path, history: Any, ui: Any = None, metadata: Any = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "api_conversation_history.json").write_text(json.dumps(history))
    if ui is not None:
        (folder / "ui_messages.json").write_text(json.dumps(ui))
    if metadata is not None:
        (folder / "task_metadata.json").write_text(json.dumps(metadata, indent=2))
    return folder


def cline_task(root: Path) -> Path:
    return write_task(root / CLINE_ID, CLINE_HISTORY, cline_ui(), CLINE_METADATA)


def roo_task(root: Path) -> Path:
    return write_task(root / ROO_ID, ROO_HISTORY, ROO_UI)


def read(path: Path) -> Parsed:
    return IMPORTER.read(path)


def only(path: Path) -> ImportedSession:
    return single(IMPORTER, path)


def ms(offset: int, base: int = T) -> str:
    from datetime import UTC, datetime, timedelta

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=base + offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- an older Cline task ---------------------------------------------------------------------


def test_a_cline_task_becomes_exactly_these_messages(tmp_path: Path) -> None:
    folder = cline_task(tmp_path / "tasks")
    parsed = read(folder)
    assert (parsed.tool, parsed.version, parsed.warnings) == ("cline", None, [])
    session = only(folder)
    assert (session.tool, session.source_id) == ("cline", CLINE_ID)
    assert len(session.messages) == 16
    assert Counter(m["role"] for m in session.messages) == {"user": 3, "assistant": 8, "tool": 5}
    assert typed_prompts(session) == [
        "Create greet.py that prints a greeting",
        "Now add a main guard",
    ]
    calls = parts(session, "tool_call")
    assert Counter(c["name"] for c in calls) == {
        "attempt_completion": 3,
        "write_to_file": 1,
        "execute_command": 1,
        "read_file": 1,
        "replace_in_file": 1,
    }
    results = parts(session, "tool_result")
    assert len(results) == 5
    by_id = {c["id"]: c["name"] for c in calls}
    assert [by_id[r["tool_call_id"]] for r in results] == [
        "write_to_file",
        "execute_command",
        "attempt_completion",
        "read_file",
        "replace_in_file",
    ]
    assert [r["is_error"] for r in results] == [False, False, False, True, False]
    assert len(parts(session, "reasoning")) == 2
    assert session.title == "Create greet.py that prints a greeting"
    assert session.task == "Create greet.py that prints a greeting"
    assert session.created_at == "2024-11-19T07:06:40.000000Z"
    assert session.metadata == {
        "source": {"tool": "cline", "version": None, "session_id": CLINE_ID},
        "imported_from": str(folder.resolve()),
        "cwd": CWD,
        "files_in_context": ["greet.py", "README.md"],
        "models": ["claude-sonnet-4-5"],
    }
    last = chain(session.messages)[-1]
    assert last.totals.input_tokens == sum(r[1] for r in REQUESTS) == 12400
    assert last.totals.output_tokens == sum(r[2] for r in REQUESTS) == 380
    assert last.totals.cache_write_tokens == 1200
    assert last.totals.cache_read_tokens == 9100
    assert last.totals.cost_usd == pytest.approx(0.0294)
    assert {m.get("model") for m in session.messages if m["role"] == "assistant"} == {
        "claude-sonnet-4-5"
    }


def test_the_first_turns_of_the_cline_task_in_full(tmp_path: Path) -> None:
    session = only(cline_task(tmp_path))
    assert session.messages[:4] == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "text": "Create greet.py that prints a greeting"},
                {
                    "type": "file",
                    "name": "image-2.png",
                    "mime": "image/png",
                    "data": PNG,
                    "encoding": "base64",
                },
                {"type": "text", "text": env(6)["text"], "synthetic": True},
            ],
            "created_at": ms(10),  # when the task was typed
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "text": "The user wants a new file."},
                {
                    "type": "tool_call",
                    "id": "cline_1_0",
                    "name": "write_to_file",
                    "input": {"path": "greet.py", "content": 'print("<b>Hi</b>")'},
                },
            ],
            "created_at": ms(1400),  # the first thing the reply showed
            "model": "claude-sonnet-4-5",
            "usage": {
                "input_tokens": 1200,
                "output_tokens": 80,
                "cache_read_tokens": 0,
                "cache_write_tokens": 1000,
                "cost_usd": 0.0123,
            },
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_result",
                    "tool_call_id": "cline_1_0",
                    "output": "The content was successfully saved to greet.py.",
                    "is_error": False,
                },
                {"type": "text", "text": env(7)["text"], "synthetic": True},
            ],
            "created_at": ms(2000),
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "cline_3_0",
                    "name": "execute_command",
                    "input": {"command": "python3 greet.py", "requires_approval": "false"},
                }
            ],
            "created_at": ms(2400),
            "model": "claude-sonnet-4-5",
            "usage": {
                "input_tokens": 1300,
                "output_tokens": 40,
                "cache_read_tokens": 1000,
                "cache_write_tokens": 0,
                "cost_usd": 0.002,
            },
        },
    ]


def test_xml_details_text_around_calls_feedback_and_resumption(tmp_path: Path) -> None:
    messages = only(cline_task(tmp_path)).messages
    read_turn = messages[7]
    assert read_turn["parts"] == [
        {"type": "text", "text": "I'll read it."},
        {
            "type": "tool_call",
            "id": "cline_7_0",
            "name": "read_file",
            "input": {"path": "greet.py"},
        },
    ]
    feedback = messages[6]["parts"][0]
    assert feedback["output"].endswith("<feedback>\nAlso read it back to me\n</feedback>")
    nudge = messages[10]
    assert nudge["role"] == "user" and all(p.get("synthetic") for p in nudge["parts"])
    resumed = messages[12]
    assert resumed["role"] == "user"
    assert resumed["parts"][0] == {"type": "text", "text": "Now add a main guard"}
    assert resumed["parts"][1]["text"].startswith("[TASK RESUMPTION] This task was interrupted")
    assert "<user_message>" not in resumed["parts"][1]["text"]
    assert resumed["created_at"] == ms(67_000)
    diff = messages[13]["parts"][0]["input"]["diff"]
    assert diff.startswith("<<<<<<< SEARCH\n") and diff.endswith(">>>>>>> REPLACE")
    # a finished task ends with attempt_completion, which never gets a result
    assert messages[-1]["parts"][-1]["name"] == "attempt_completion"
    times = [m["created_at"] for m in messages]
    assert times == sorted(times)


def test_every_cline_message_validates_and_reimports_identically(tmp_path: Path) -> None:
    first = only(cline_task(tmp_path / "a"))
    again = only(cline_task(tmp_path / "b"))
    assert ids(first.messages) == ids(again.messages)
    for raw, item in zip(first.messages, validated(first.messages), strict=True):
        assert item.created_at == raw["created_at"]


def test_without_the_chat_view_times_come_from_the_task_id(tmp_path: Path) -> None:
    folder = write_task(tmp_path / CLINE_ID, CLINE_HISTORY)
    session = only(folder)
    times = [m["created_at"] for m in session.messages]
    assert times[0] == ms(0)
    assert times[1] == ms(1)  # task id + index of the API message
    assert times[-1] == ms(15)
    assert session.messages == only(folder).messages
    assert all("usage" not in m for m in session.messages)


def test_a_retried_request_and_a_call_cline_did_not_run(tmp_path: Path) -> None:
    history = [
        {"role": "user", "content": [text("<task>\nShow both files\n</task>"), env(6)]},
        {
            "role": "assistant",
            "content": "<read_file>\n<path>a.py</path>\n</read_file>\n"
            "<read_file>\n<path>b.py</path>\n</read_file>",
        },
        {
            "role": "user",
            "content": [
                text("[read_file for 'a.py'] Result:"),
                text("print('a')"),
                text(
                    "Tool [read_file] was not executed because a tool has already been used in "
                    "this message. Only one tool may be used per message."
                ),
                env(7),
            ],
        },
    ]
    usage = {"tokensIn": 10, "tokensOut": 2, "cost": 0.5}
    ui = [
        {"ts": T + 10, "type": "say", "say": "task", "text": "Show both files"},
        {"ts": T + 100, "type": "say", "say": "api_req_started", "conversationHistoryIndex": -1},
        {"ts": T + 150, "type": "ask", "ask": "api_req_failed", "conversationHistoryIndex": 0},
        {
            "ts": T + 900,
            "type": "say",
            "say": "api_req_started",
            "text": json.dumps(usage),
            "conversationHistoryIndex": -1,
        },
        {"ts": T + 1300, "type": "ask", "ask": "tool", "conversationHistoryIndex": 0},
    ]
    session = only(write_task(tmp_path / CLINE_ID, history, ui))
    assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "tool"]
    assistant = session.messages[1]
    assert [p["input"] for p in assistant["parts"]] == [{"path": "a.py"}, {"path": "b.py"}]
    # the reply came after the retry, and its usage is the retry's
    assert assistant["created_at"] == ms(1300)
    assert assistant["usage"] == {"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5}
    first, second = (m["parts"][0] for m in session.messages[2:])
    assert (first["tool_call_id"], first["output"], first["is_error"]) == (
        "cline_1_0",
        "print('a')",
        False,
    )
    assert (second["tool_call_id"], second["is_error"]) == ("cline_1_1", True)
    assert second["output"].startswith("Tool [read_file] was not executed")
    assert session.messages[3]["parts"][1]["synthetic"] is True


# --- a Roo Code task, and a folder of tasks --------------------------------------------------


def test_a_roo_code_task_with_native_tool_calls(tmp_path: Path) -> None:
    session = only(roo_task(tmp_path))
    assert session.tool == "roo-code"
    assert session.messages == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "text": "List the files"},
                {"type": "text", "text": env(20)["text"], "synthetic": True},
            ],
            "created_at": ms(5, R),
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Listing."},
                {
                    "type": "tool_call",
                    "id": "toolu_01",
                    "name": "list_files",
                    "input": {"path": ".", "recursive": "false"},
                },
            ],
            "created_at": ms(900, R),
            "usage": {"input_tokens": 900},
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_result",
                    "tool_call_id": "toolu_01",
                    "output": "greet.py\nREADME.md",
                    "is_error": False,
                },
                {"type": "text", "text": env(21)["text"], "synthetic": True},
            ],
            "created_at": ms(1500, R),
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "text": "Two files."},
                {"type": "text", "text": "There are two files: greet.py and README.md."},
            ],
            "created_at": ms(2400, R),
            "usage": {"input_tokens": 950, "output_tokens": 12, "cost_usd": 0.001},
        },
    ]
    assert read(tmp_path / ROO_ID).warnings == [
        f"task {ROO_ID}: skipped 1 block(s) of type 'redacted_thinking'"
    ]


def test_a_tasks_folder_gives_one_session_per_task(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    cline_task(tasks)
    roo_task(tasks)
    (tasks / "notes").mkdir()  # not a task: ignored
    assert IMPORTER.detect(tasks, b"")
    parsed = read(tasks)
    assert [s.source_id for s in parsed.sessions] == [CLINE_ID, ROO_ID]
    assert [len(s.messages) for s in parsed.sessions] == [16, 4]
    assert [s.tool for s in parsed.sessions] == ["cline", "roo-code"]
    assert parsed.tool == "cline"


def test_the_extension_folder_names_the_tool(tmp_path: Path) -> None:
    for extension, tool in (
        ("saoudrizwan.claude-dev", "cline"),
        ("rooveterinaryinc.roo-cline", "roo-code"),
        ("kilocode.kilo-code", "kilo-code"),
    ):
        folder = write_task(tmp_path / extension / "tasks" / CLINE_ID, CLINE_HISTORY)
        assert only(folder).tool == tool
        assert read(folder.parent).tool == tool


def test_a_damaged_task_in_a_folder_is_skipped_with_a_warning(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    cline_task(tasks)
    broken = write_task(tasks / ROO_ID, ROO_HISTORY)
    (broken / "api_conversation_history.json").write_text('[{"role": "user", "content": "hi')
    parsed = read(tasks)
    assert [s.source_id for s in parsed.sessions] == [CLINE_ID]
    assert parsed.warnings == [
        f"skipped task {ROO_ID}: api_conversation_history.json ends early (a truncated or "
        "half-written file?)"
    ]


# --- detection and broken input --------------------------------------------------------------


def test_detect_knows_task_folders_and_nothing_else(tmp_path: Path) -> None:
    folder = cline_task(tmp_path / "tasks")
    history = folder / "api_conversation_history.json"
    assert IMPORTER.detect(folder, b"")
    assert IMPORTER.detect(folder.parent, b"")
    assert IMPORTER.detect(history, head(history))
    assert only(history).messages == only(folder).messages
    others = [
        *samples("claude-code", "codex", "opencode", "kilo"),
        SAMPLES / "opencode",
        tmp_path / "empty",
    ]
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain.json").write_text('[{"role": "user", "content": "hello"}]')
    others.append(tmp_path / "plain.json")  # a bare message list, nothing of Cline's
    baton = tmp_path / "baton.json"
    baton.write_text(json.dumps({"format": "baton-session", "version": 1, "messages": []}))
    others.append(baton)
    assert len(others) == 15
    for path in others:
        assert not IMPORTER.detect(path, head(path)), path


def test_broken_tasks_are_refused_with_one_line(tmp_path: Path) -> None:
    whole = json.dumps(CLINE_HISTORY).encode()
    cases: dict[str, tuple[bytes, str]] = {
        "truncated": (whole[: len(whole) // 2], "ends early"),
        "empty": (b"", "is empty"),
        "binary": (bytes(range(256)) * 8, "is not UTF-8 text"),
        "garbage": (b"[{]", "is not valid JSON"),
        "dict": (b'{"messages": []}', "must be a list of messages, got an object"),
        "string-message": (b'["hi"]', "message 1 must be an object, got a string"),
        "bad-role": (b'[{"role": "robot", "content": "x"}]', "has role 'robot'"),
        "content-number": (
            b'[{"role": "user", "content": 5}]',
            "content must be a string or a list, got int",
        ),
        "block-string": (
            b'[{"role": "user", "content": ["x"]}]',
            "block 1 must be an object with a type",
        ),
    }
    for name, (data, why) in cases.items():
        folder = tmp_path / name / CLINE_ID
        folder.mkdir(parents=True)
        (folder / "api_conversation_history.json").write_bytes(data)
        message = refusal(IMPORTER, folder)
        assert message.startswith(f"{CLINE_ID}: api_conversation_history.json"), message
        assert why in message, (name, message)
    folder = write_task(tmp_path / "ui" / CLINE_ID, CLINE_HISTORY)
    (folder / "ui_messages.json").write_text('[{"ts": 1, "type": "say"')
    assert refusal(IMPORTER, folder) == (
        f"{CLINE_ID}: ui_messages.json ends early (a truncated or half-written file?)"
    )
    (folder / "ui_messages.json").write_text('{"ts": 1}')
    assert (
        refusal(IMPORTER, folder)
        == f"{CLINE_ID}: ui_messages.json must be a list of objects, got an object"
    )
    assert refusal(IMPORTER, tmp_path / "ui") == (
        f"ui: none of its 1 task(s) could be read: skipped task {CLINE_ID}: ui_messages.json "
        "must be a list of objects, got an object"
    )
    (tmp_path / "nothing").mkdir()
    assert "is not a Cline task folder" in refusal(IMPORTER, tmp_path / "nothing")
    assert "does not exist" in refusal(IMPORTER, tmp_path / "nowhere")


def test_a_broken_task_metadata_file_is_only_a_warning(tmp_path: Path) -> None:
    folder = cline_task(tmp_path)
    (folder / "task_metadata.json").write_text('{"files_in_context": [')
    parsed = read(folder)
    assert parsed.warnings == [
        f"task {CLINE_ID}: task_metadata.json ends early (a truncated or half-written file?); "
        "ignored it"
    ]
    assert len(parsed.sessions[0].messages) == 16
    assert "files_in_context" not in parsed.sessions[0].metadata


# --- any damage: refused in one line, or messages that validate ------------------------------


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_damaged_task_is_refused_or_imported_validly(data: st.DataObject) -> None:
    files: dict[str, Any] = {
        "history": copy.deepcopy(CLINE_HISTORY),
        "ui": cline_ui(),
        "meta": copy.deepcopy(CLINE_METADATA),
    }
    for _ in range(data.draw(st.integers(1, 3))):
        damage(data, files[data.draw(st.sampled_from(sorted(files)))])
    with tempfile.TemporaryDirectory() as folder:
        task = write_task(Path(folder) / CLINE_ID, files["history"], files["ui"], files["meta"])
        refused_or_valid(IMPORTER, task)
