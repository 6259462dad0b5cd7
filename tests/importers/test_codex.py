"""The Codex importer, on the two real rollouts (a session and its fork, which names its parent
instead of copying it), on broken copies of them, and on small rollouts."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.core.errors import InvalidInput
from baton.core.models import Totals
from baton.importers.base import ImportedSession
from baton.importers.codex import IMPORTER
from tests.importers.common import (
    SAMPLES,
    START,
    assert_chains,
    chain,
    head,
    ids,
    lines_of,
    parts,
    prompts,
    refuses_a_line_that_is_not_an_object,
    refuses_a_torn_line_in_the_middle,
    refuses_an_empty_file,
    refuses_binary_garbage,
    sample_names,
    single,
    write_jsonl,
)

DAY = SAMPLES / "codex" / "sessions" / "2026" / "11" / "24"
PARENT_ID = "01a20b0d-cce1-7932-a0df-05c5beeb2a74"
FORK_ID = "01a20b0d-d1c7-7673-8784-9ef46f82a556"
SESSION = DAY / f"rollout-2026-11-24T00-56-23-{PARENT_ID}.jsonl"
FORK = DAY / f"rollout-2026-11-24T00-56-24-{FORK_ID}.jsonl"
FIRST_PROMPT = "Create greet.py with a greet(name) function and a main block that greets the world."
CWD = "/home/dev/runs/codex-small/project"


def only(path: Path) -> ImportedSession:
    return single(IMPORTER, path)


# --- the real rollouts --------------------------------------------------------------------


def test_the_session_has_its_prompts_replies_and_tool_results() -> None:
    parsed = IMPORTER.read(SESSION)
    assert (parsed.tool, parsed.version, parsed.warnings, parsed.skipped_lines) == (
        "codex",
        "0.169.0",
        [],
        0,
    )
    session = only(SESSION)
    assert session.source_id == PARENT_ID
    assert Counter(m["role"] for m in session.messages) == {"user": 4, "assistant": 10, "tool": 6}
    assert len(prompts(session)) == 4
    assert prompts(session)[0] == FIRST_PROMPT
    calls = parts(session, "tool_call")
    assert Counter(c["name"] for c in calls) == {"exec_command": 4, "apply_patch": 2}
    results = parts(session, "tool_result")
    assert len(results) == 6
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert {m.get("model") for m in session.messages if m["role"] == "assistant"} == {"gpt-5.5"}
    assert chain(session.messages)[-1].totals == Totals(10550, 200, 0, 0, 0.0)


def test_instructions_and_environment_context_are_left_out() -> None:
    texts = [p.get("text", "") for m in only(SESSION).messages for p in m["parts"]]
    assert not [t for t in texts if t.lstrip().startswith(("<", "#"))]
    assert {m["role"] for m in only(SESSION).messages} == {"user", "assistant", "tool"}


def test_the_session_header_comes_from_session_meta() -> None:
    session = only(SESSION)
    assert session.title == ""
    assert session.created_at == "2026-11-24T00:56:23.528000Z"
    assert session.metadata == {
        "source": {"tool": "codex", "version": "0.169.0", "session_id": PARENT_ID},
        "cwd": CWD,
        "imported_from": str(SESSION),
        "model": "gpt-5.5",
    }
    assert session.git == {
        "branch": "main",
        "head": "84f8be601fc6c1a45ef7ae934099b0c4e8af9eb7",
        "cwd": CWD,
    }
    assert (session.forked_from, session.parent) == (None, None)


def test_the_items_of_one_reply_become_one_message() -> None:
    messages = only(SESSION).messages
    assert messages[1] == {
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "I'll create greet.py."},
            {
                "type": "tool_call",
                "id": "call_fake000001_0",
                "name": "apply_patch",
                "input": "*** Begin Patch\n*** Add File: greet.py\n+def greet(name):\n"
                '+    return f"Hi, {name}."\n+\n+\n+if __name__ == "__main__":\n'
                '+    print(greet("world"))\n*** End Patch\n',
            },
        ],
        "created_at": "2026-11-24T00:56:23.608000Z",
        "model": "gpt-5.5",
        "usage": {
            "input_tokens": 1010,
            "output_tokens": 20,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        },
    }
    # function_call arguments are a JSON string: the call's input is the parsed value.
    assert messages[5]["parts"] == [
        {
            "type": "tool_call",
            "id": "call_fake000003_0",
            "name": "exec_command",
            "input": {"cmd": "python3 greet.py", "yield_time_ms": 10000},
        }
    ]
    assert messages[6]["parts"][0]["output"].endswith("Output:\nHi, world.\n")


def test_the_fork_names_its_parent_and_how_much_of_it_comes_first() -> None:
    parent, fork = only(SESSION), only(FORK)
    assert fork.source_id == FORK_ID
    assert fork.parent == (PARENT_ID, 20)
    assert fork.forked_from is None
    assert fork.metadata["source"]["forked_from"] == PARENT_ID
    assert Counter(m["role"] for m in fork.messages) == {"user": 1, "assistant": 3, "tool": 2}
    assert prompts(fork) == [
        "In a fork of this session, add a farewell(name) function to greet.py."
    ]
    assert Counter(c["name"] for c in parts(fork, "tool_call")) == {
        "exec_command": 1,
        "apply_patch": 1,
    }
    assert len(parts(fork, "tool_result")) == 2
    assert fork.created_at == "2026-11-24T00:56:24.783000Z"
    assert chain(fork.messages)[-1].totals == Totals(3360, 60, 0, 0, 0.0)
    # Stored after the parent's first 20 messages, the prefix is the parent's own chain.
    whole = ids(parent.messages[:20] + fork.messages)
    assert whole[:20] == ids(parent.messages)
    assert len(whole) == 26


def test_the_parent_is_found_in_another_day_folder(tmp_path: Path) -> None:
    sessions = tmp_path / "sessions"
    (sessions / "2026" / "11" / "23").mkdir(parents=True)
    (sessions / "2026" / "11" / "25").mkdir(parents=True)
    shutil.copy(SESSION, sessions / "2026" / "11" / "23" / SESSION.name)
    fork = sessions / "2026" / "11" / "25" / FORK.name
    shutil.copy(FORK, fork)
    assert only(fork).parent == (PARENT_ID, 20)


def test_the_count_follows_history_base(tmp_path: Path) -> None:
    shutil.copy(SESSION, tmp_path / SESSION.name)
    lines = lines_of(FORK)
    meta = orjson.loads(lines[0])
    meta["payload"]["history_base"]["end_ordinal_exclusive"] = 36  # after turn 2
    fork = tmp_path / FORK.name
    fork.write_bytes(b"\n".join([orjson.dumps(meta), *lines[1:]]))
    assert only(fork).parent == (PARENT_ID, 8)


def test_a_fork_without_its_parent_is_imported_with_a_warning(tmp_path: Path) -> None:
    alone = tmp_path / FORK.name
    shutil.copy(FORK, alone)
    parsed = IMPORTER.read(alone)
    assert parsed.sessions[0].parent is None
    assert parsed.sessions[0].messages == only(FORK).messages
    assert parsed.warnings == [
        f"{FORK.name}: forked from Codex session {PARENT_ID}, whose rollout was not found; "
        "imported without its history"
    ]


@pytest.mark.parametrize("path", [SESSION, FORK], ids=["session", "fork"])
def test_every_message_is_valid_and_chains(path: Path) -> None:
    assert_chains(only(path))


@pytest.mark.parametrize("path", [SESSION, FORK], ids=["session", "fork"])
def test_reading_again_gives_the_same_output(path: Path) -> None:
    assert IMPORTER.read(path) == IMPORTER.read(path)


# --- detection ----------------------------------------------------------------------------


def test_detect_knows_its_own_files() -> None:
    assert IMPORTER.detect(SESSION, head(SESSION))
    assert IMPORTER.detect(FORK, head(FORK))


@pytest.mark.parametrize("other", sample_names("opencode", "kilo", "claude-code"))
def test_detect_refuses_other_formats(other: str) -> None:
    path = SAMPLES / other
    assert not IMPORTER.detect(path, head(path))


def test_detect_refuses_a_folder() -> None:
    assert not IMPORTER.detect(DAY, b"")


def test_detect_judges_a_first_line_longer_than_the_head() -> None:
    first = lines_of(SESSION)[0]
    long = first.replace(
        b'"base_instructions":{"text":"', b'"base_instructions":{"text":"' + b"x" * 70000
    )
    assert len(long) > 65536
    assert IMPORTER.detect(SESSION, long[:65536])


# --- broken files -------------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    lines = lines_of(SESSION)[:75]  # line 75 is the last assistant message
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"\n".join([*lines[:74], lines[74][:120]]))
    parsed = IMPORTER.read(torn)
    assert parsed.warnings == ["torn.jsonl: line 75 is cut short (torn write); skipped"]
    assert parsed.skipped_lines == 1
    assert parsed.sessions[0].messages == only(SESSION).messages[:19]  # all but the cut reply


def test_a_torn_line_in_the_middle_is_refused(tmp_path: Path) -> None:
    refuses_a_torn_line_in_the_middle(IMPORTER, SESSION, tmp_path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    refuses_an_empty_file(IMPORTER, tmp_path, b"")


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    refuses_binary_garbage(IMPORTER, tmp_path)


def test_a_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    refuses_a_line_that_is_not_an_object(IMPORTER, SESSION, tmp_path)


def test_a_line_of_another_shape_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_bytes(b"\n".join([*lines_of(SESSION)[:3], b'{"type": "event_msg"}']))
    with pytest.raises(InvalidInput, match=r"^wrong.jsonl: line 4 is not a \{timestamp, type"):
        IMPORTER.read(wrong)


def test_a_claude_code_transcript_is_refused() -> None:
    transcript = next((SAMPLES / "claude-code").rglob("*.jsonl"))
    with pytest.raises(InvalidInput, match=r"is not a \{timestamp, type, payload\} line"):
        IMPORTER.read(transcript)


def test_a_rollout_without_session_meta_is_refused(tmp_path: Path) -> None:
    headless = tmp_path / "headless.jsonl"
    headless.write_bytes(b"\n".join(lines_of(SESSION)[1:]))
    with pytest.raises(InvalidInput, match="no session_meta line with an id"):
        IMPORTER.read(headless)


# --- small rollouts -----------------------------------------------------------------------


class Rollout:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.add("session_meta", {"id": "thread-1", "cwd": "/w", "cli_version": "0.1.0"})
        self.add("turn_context", {"model": "gpt-test"})

    def add(self, kind: str, payload: dict[str, Any]) -> Rollout:
        second = len(self.lines)
        stamp = (START + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        self.lines.append({"timestamp": stamp, "type": kind, "payload": payload})
        return self

    def item(self, **payload: Any) -> Rollout:
        return self.add("response_item", payload)

    def tokens(self, total: int, last: dict[str, int]) -> Rollout:
        info = {"total_token_usage": {"total_tokens": total}, "last_token_usage": last}
        return self.add("event_msg", {"type": "token_count", "info": info})

    def write(self, path: Path) -> Path:
        return write_jsonl(path, self.lines)


def typed(text: str) -> list[dict[str, str]]:
    return [{"type": "input_text", "text": text}]


def test_context_messages_without_provenance_are_recognised_by_their_tags(tmp_path: Path) -> None:
    r = Rollout()
    r.item(
        type="message", role="user", content=typed("<environment_context>\n</environment_context>")
    )
    r.item(type="message", role="user", content=typed("# AGENTS.md instructions for /w\n..."))
    r.item(type="message", role="developer", content=typed("be brief"))
    r.item(type="message", role="user", content=typed("hello"))
    r.add("event_msg", {"type": "user_message", "message": "hello"})
    messages = only(r.write(tmp_path / "r.jsonl")).messages
    assert messages == [
        {
            "role": "user",
            "parts": [{"type": "text", "text": "hello"}],
            "created_at": messages[0]["created_at"],
        }
    ]


def test_usage_counts_each_reply_once_and_cached_tokens_apart(tmp_path: Path) -> None:
    r = Rollout()
    r.item(type="message", role="user", content=typed("go"))
    r.item(type="reasoning", summary=[{"type": "summary_text", "text": "thinking it over"}])
    r.item(type="message", role="assistant", content=[{"type": "output_text", "text": "done"}])
    last = {"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 7}
    r.tokens(107, last).tokens(107, last)  # Codex repeats a token_count now and then
    r.add("token_usage_record", {"usage": last})  # the same usage again, not counted
    session = only(r.write(tmp_path / "r.jsonl"))
    reply = session.messages[1]
    assert reply["parts"] == [
        {"type": "reasoning", "text": "thinking it over"},
        {"type": "text", "text": "done"},
    ]
    assert reply["usage"] == {"input_tokens": 60, "output_tokens": 7, "cache_read_tokens": 40}
    assert reply["model"] == "gpt-test"


def test_usage_records_count_when_there_are_no_token_counts(tmp_path: Path) -> None:
    r = Rollout()
    r.item(type="message", role="user", content=typed("go"))
    r.item(type="message", role="assistant", content=[{"type": "output_text", "text": "done"}])
    r.add("token_usage_record", {"usage": {"input_tokens": 5, "output_tokens": 1}})
    assert only(r.write(tmp_path / "r.jsonl")).messages[1]["usage"] == {
        "input_tokens": 5,
        "output_tokens": 1,
    }


def test_a_compaction_is_kept_as_a_system_message(tmp_path: Path) -> None:
    r = Rollout()
    r.item(type="message", role="user", content=typed("go"))
    r.add("compacted", {"message": "We set up greet.py.", "replacement_history": []})
    messages = only(r.write(tmp_path / "r.jsonl")).messages
    assert [(m["role"], m["parts"]) for m in messages] == [
        ("user", [{"type": "text", "text": "go"}]),
        ("system", [{"type": "text", "text": "We set up greet.py."}]),
    ]


def test_arguments_that_are_not_json_stay_text_and_unknown_items_are_counted(
    tmp_path: Path,
) -> None:
    r = Rollout()
    r.item(type="message", role="user", content=typed("go"))
    r.item(type="function_call", name="shell", arguments="{not json", call_id="c1")
    r.item(type="function_call_output", call_id="c1", output={"content": "no", "success": False})
    r.item(type="hologram")
    r.item(type="ghost_snapshot", ghost_commit={})
    parsed = IMPORTER.read(r.write(tmp_path / "r.jsonl"))
    messages = parsed.sessions[0].messages
    assert messages[1]["parts"] == [
        {"type": "tool_call", "id": "c1", "name": "shell", "input": "{not json"}
    ]
    assert messages[2]["parts"] == [
        {"type": "tool_result", "tool_call_id": "c1", "output": "no", "is_error": True}
    ]
    assert parsed.warnings == ["r.jsonl: skipped items baton does not map (hologram x1)"]
