"""The Claude Code importer, on the two real transcripts (a session and its --fork-session
fork), on broken copies of them, and on small transcripts that show the tree rules."""

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
from baton.importers.claude_code import IMPORTER
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
    validated,
    write_jsonl,
)

PROJECT = SAMPLES / "claude-code" / "projects" / "-home-dev-runs-claude-small-project"
PARENT_ID = "ac5220f9-09d0-44bd-a060-6addc8dcc165"
FORK_ID = "0cfc0f17-9fdd-44f1-963e-d40ee15573b3"
SESSION = PROJECT / f"{PARENT_ID}.jsonl"
FORK = PROJECT / f"{FORK_ID}.jsonl"
FIRST_PROMPT = "Create greet.py with a greet(name) function and a main block that greets the world."
CWD = "/home/dev/runs/claude-small/project"


def only(path: Path) -> ImportedSession:
    return single(IMPORTER, path)


# --- the real transcripts -----------------------------------------------------------------


def test_the_session_has_its_prompts_replies_and_tool_results() -> None:
    parsed = IMPORTER.read(SESSION)
    assert (parsed.tool, parsed.version, parsed.warnings, parsed.skipped_lines) == (
        "claude-code",
        "2.1.197",
        [],
        0,
    )
    session = only(SESSION)
    assert session.source_id == PARENT_ID
    assert Counter(m["role"] for m in session.messages) == {"user": 4, "assistant": 10, "tool": 6}
    assert len(session.messages) == 20
    assert len(prompts(session)) == 4
    assert prompts(session)[0] == FIRST_PROMPT
    calls = parts(session, "tool_call")
    assert Counter(c["name"] for c in calls) == {"Bash": 3, "Edit": 1, "Read": 1, "Write": 1}
    results = parts(session, "tool_result")
    assert len(results) == 6
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert {m.get("model") for m in session.messages if m["role"] == "assistant"} == {
        "claude-opus-4-8"
    }
    assert chain(session.messages)[-1].totals == Totals(10550, 200, 0, 0, 0.0)


def test_the_session_header_comes_from_the_transcript() -> None:
    session = only(SESSION)
    assert session.title == ""
    assert session.created_at == "2026-11-24T00:57:48.507000Z"
    assert session.metadata == {
        "source": {"tool": "claude-code", "version": "2.1.197", "session_id": PARENT_ID},
        "cwd": CWD,
        "imported_from": str(SESSION),
        "model": "claude-opus-4-8",
    }
    assert session.git == {"branch": "main", "cwd": CWD}
    assert (session.forked_from, session.parent) == (None, None)


def test_the_lines_of_one_reply_become_one_message() -> None:
    first_reply = only(SESSION).messages[1]
    assert first_reply == {
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "I'll create greet.py."},
            {
                "type": "tool_call",
                "id": "toolu_fake000001_0",
                "name": "Write",
                "input": {
                    "file_path": f"{CWD}/greet.py",
                    "content": 'def greet(name):\n    return f"Hi, {name}."\n\n\n'
                    'if __name__ == "__main__":\n    print(greet("world"))\n',
                },
            },
        ],
        "created_at": "2026-11-24T00:57:48.638000Z",
        "model": "claude-opus-4-8",
        "usage": {
            "input_tokens": 1010,
            "output_tokens": 20,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        },
    }
    assert only(SESSION).messages[6] == {
        "role": "tool",
        "parts": [
            {"type": "tool_result", "tool_call_id": "toolu_fake000003_0", "output": "Hi, world."}
        ],
        "created_at": "2026-11-24T00:57:49.309000Z",
    }


def test_the_fork_copies_the_parent_and_names_it() -> None:
    parent, fork = only(SESSION), only(FORK)
    assert fork.source_id == FORK_ID
    assert fork.forked_from == (PARENT_ID, 20)
    assert fork.parent is None
    assert Counter(m["role"] for m in fork.messages) == {"user": 5, "assistant": 13, "tool": 8}
    assert len(prompts(fork)) == 5
    assert prompts(fork)[0] == FIRST_PROMPT
    assert (
        prompts(fork)[4] == "In a fork of this session, add a farewell(name) function to greet.py."
    )
    assert len(parts(fork, "tool_call")) == 8
    assert len(parts(fork, "tool_result")) == 8
    assert fork.created_at == "2026-11-24T00:57:51.184000Z"
    assert chain(fork.messages)[-1].totals == Totals(13910, 260, 0, 0, 0.0)
    # The copied lines give byte-identical messages, so the prefix is stored once.
    assert fork.messages[:20] == parent.messages
    assert ids(fork.messages)[:20] == ids(parent.messages)
    assert ids(fork.messages)[20] not in ids(parent.messages)


def test_a_fork_without_its_parent_beside_it_is_a_session_of_its_own(tmp_path: Path) -> None:
    alone = tmp_path / FORK.name
    shutil.copy(FORK, alone)
    session = only(alone)
    assert session.forked_from is None
    assert session.messages == only(FORK).messages


def test_the_parent_is_not_taken_for_a_fork_of_its_fork() -> None:
    assert only(SESSION).forked_from is None


@pytest.mark.parametrize("path", [SESSION, FORK], ids=["session", "fork"])
def test_every_message_is_valid_and_chains(path: Path) -> None:
    for session in IMPORTER.read(path).sessions:
        assert_chains(session)


@pytest.mark.parametrize("path", [SESSION, FORK], ids=["session", "fork"])
def test_reading_again_gives_the_same_output(path: Path) -> None:
    assert IMPORTER.read(path) == IMPORTER.read(path)


# --- detection ----------------------------------------------------------------------------


def test_detect_knows_its_own_files() -> None:
    assert IMPORTER.detect(SESSION, head(SESSION))
    assert IMPORTER.detect(FORK, head(FORK))


@pytest.mark.parametrize("other", sample_names("opencode", "kilo", "codex"))
def test_detect_refuses_other_formats(other: str) -> None:
    path = SAMPLES / other
    assert not IMPORTER.detect(path, head(path))


def test_detect_refuses_a_folder() -> None:
    assert not IMPORTER.detect(PROJECT, b"")


def test_detect_judges_a_first_line_longer_than_the_head() -> None:
    data = SESSION.read_bytes()
    line = data.split(b"\n")[2]  # the first user line
    long = line.replace(b'"content":"', b'"content":"' + b"x" * 70000, 1)
    assert IMPORTER.detect(SESSION, long[:65536])


# --- broken files -------------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    kept = lines_of(SESSION)[:37]  # line 37 is the last assistant reply
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(b"\n".join([*kept[:36], kept[36][:150]]))
    parsed = IMPORTER.read(torn)
    assert parsed.warnings == ["torn.jsonl: line 37 is cut short (torn write); skipped"]
    assert parsed.skipped_lines == 1
    assert parsed.sessions[0].messages == only(SESSION).messages[:19]


def test_a_torn_line_in_the_middle_is_refused(tmp_path: Path) -> None:
    refuses_a_torn_line_in_the_middle(IMPORTER, SESSION, tmp_path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    refuses_an_empty_file(IMPORTER, tmp_path, b"\n  \n")


def test_binary_garbage_is_refused(tmp_path: Path) -> None:
    refuses_binary_garbage(IMPORTER, tmp_path)


def test_a_line_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    refuses_a_line_that_is_not_an_object(IMPORTER, SESSION, tmp_path)


def test_a_line_without_a_type_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_bytes(b'{"hello": "world"}\n' + SESSION.read_bytes())
    with pytest.raises(InvalidInput, match=r'^wrong.jsonl: line 1 has no "type"'):
        IMPORTER.read(wrong)


def test_a_codex_rollout_is_refused() -> None:
    rollout = next((SAMPLES / "codex").rglob("*.jsonl"))
    with pytest.raises(InvalidInput, match="line 1 is not a Claude Code line"):
        IMPORTER.read(rollout)


# --- small transcripts: the tree rules ----------------------------------------------------


class Transcript:
    """Writes Claude Code lines: uuid/parentUuid chains with one line per content block."""

    def __init__(self, session: str = "sess-1") -> None:
        self.session = session
        self.lines: list[dict[str, Any]] = []

    def add(self, kind: str, uuid: str, parent: str | None, **extra: Any) -> Transcript:
        second = len(self.lines) + 1
        self.lines.append(
            {
                "parentUuid": parent,
                "isSidechain": False,
                "type": kind,
                "uuid": uuid,
                "timestamp": (START + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "sessionId": self.session,
                "version": "2.1.0",
                "cwd": "/w",
                "gitBranch": "dev",
                **extra,
            }
        )
        return self

    def user(self, uuid: str, parent: str | None, content: Any, **extra: Any) -> Transcript:
        return self.add("user", uuid, parent, message={"role": "user", "content": content}, **extra)

    def reply(
        self, uuid: str, parent: str | None, reply: str, block: dict[str, Any], **extra: Any
    ) -> Transcript:
        message = {
            "id": reply,
            "role": "assistant",
            "model": "claude-test",
            "content": [block],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
        }
        return self.add("assistant", uuid, parent, message=message, **extra)

    def write(self, path: Path) -> Path:
        return write_jsonl(path, self.lines)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(call_id: str, name: str = "Bash") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {"command": call_id}}


def result(call_id: str) -> list[dict[str, Any]]:
    return [{"type": "tool_result", "tool_use_id": call_id, "content": f"out {call_id}"}]


def test_a_rewound_branch_becomes_a_fork_at_the_shared_message(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first").reply("a1", "u1", "r1", text("one"))
    t.user("u2", "a1", "second").reply("a2", "u2", "r2", text("two"))
    t.user("u3", "a1", "second, again").reply("a3", "u3", "r3", text("two again"))
    parsed = IMPORTER.read(t.write(tmp_path / "s.jsonl"))
    main, branch = parsed.sessions
    assert prompts(main) == ["first", "second, again"]
    assert main.forked_from is None
    assert branch.source_id == "sess-1#a2"
    assert branch.forked_from == ("sess-1", 2)
    assert branch.metadata["branch_of"] == "sess-1"
    assert prompts(branch) == ["first", "second"]
    assert branch.created_at == "2026-01-01T00:00:03.000000Z"  # its own first prompt
    assert ids(branch.messages)[:2] == ids(main.messages)[:2]
    assert ids(branch.messages)[2] != ids(main.messages)[2]


def test_parallel_tool_calls_are_one_reply_not_branches(tmp_path: Path) -> None:
    # Claude Code hangs the first result off the first tool_use line, a sibling of the second.
    t = Transcript()
    t.user("u1", None, "run both")
    t.reply("x1", "u1", "r1", tool_use("call-a")).reply("x2", "x1", "r1", tool_use("call-b"))
    t.user("res-a", "x1", result("call-a")).user("res-b", "x2", result("call-b"))
    t.reply("a2", "res-b", "r2", text("both ran"))
    parsed = IMPORTER.read(t.write(tmp_path / "s.jsonl"))
    assert len(parsed.sessions) == 1
    messages = parsed.sessions[0].messages
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [p["id"] for p in messages[1]["parts"]] == ["call-a", "call-b"]
    assert [m["parts"][0]["tool_call_id"] for m in messages[2:4]] == ["call-a", "call-b"]
    assert messages[1]["usage"] == {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": 2}


def test_a_subagent_is_its_own_session_linked_to_the_parent(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "look around")
    task = {"type": "tool_use", "id": "task-1", "name": "Task", "input": {"prompt": "find it"}}
    t.reply("a1", "u1", "r1", task)
    t.user("s1", None, "find it", isSidechain=True, agentId="ag7")
    t.reply("s2", "s1", "r9", text("found it"), isSidechain=True, agentId="ag7")
    t.user("res", "a1", result("task-1")).reply("a2", "res", "r2", text("done"))
    main, agent = IMPORTER.read(t.write(tmp_path / "s.jsonl")).sessions
    assert prompts(main) == ["look around"]
    assert [m["role"] for m in main.messages] == ["user", "assistant", "tool", "assistant"]
    assert agent.source_id == "sess-1/agent-ag7"
    assert agent.metadata["parent_session"] == "sess-1"
    assert agent.metadata["parent_tool_call"] == "task-1"
    assert agent.metadata["source"]["agent_id"] == "ag7"
    assert prompts(agent) == ["find it"]
    assert (agent.forked_from, agent.parent) == (None, None)


def test_only_typed_prompts_are_user_messages(tmp_path: Path) -> None:
    t = Transcript()
    t.user(
        "u0",
        None,
        "Caveat: The messages below were generated by the user while running "
        "local commands. DO NOT respond.",
        isMeta=True,
    )
    t.user("u1", "u0", "<command-name>/model</command-name>\n<command-args></command-args>")
    t.user("u2", "u1", "<local-command-stdout>Set model</local-command-stdout>")
    t.user("u3", "u2", [text("fix the bug"), text("<system-reminder>be careful</system-reminder>")])
    t.reply("a1", "u3", "r1", {"type": "thinking", "thinking": "hmm", "signature": "sig"})
    t.reply("a2", "a1", "r1", text("fixed"))
    t.add("system", "c1", None, subtype="compact_boundary", logicalParentUuid="a2")
    t.user("u4", "c1", "Summary: the bug was fixed.", isCompactSummary=True)
    t.user("u5", "u4", "thanks")
    messages = IMPORTER.read(t.write(tmp_path / "s.jsonl")).sessions[0].messages
    assert [(m["role"], [p["type"] for p in m["parts"]]) for m in messages] == [
        ("user", ["text"]),
        ("assistant", ["reasoning", "text"]),
        ("system", ["text"]),
        ("user", ["text"]),
    ]
    assert messages[0]["parts"] == [text("fix the bug")]
    assert messages[1]["parts"][0] == {"type": "reasoning", "text": "hmm"}
    assert messages[2]["parts"] == [text("Summary: the bug was fixed.")]


def test_lines_marked_forked_from_name_the_parent(tmp_path: Path) -> None:
    t = Transcript(session="child")
    marker = {"sessionId": "parent-9", "messageUuid": "x"}
    t.user("u1", None, "first", forkedFrom=marker).reply(
        "a1", "u1", "r1", text("one"), forkedFrom=marker
    )
    t.user("u2", "a1", "second").reply("a2", "u2", "r2", text("two"))
    assert only(t.write(tmp_path / "child.jsonl")).forked_from == ("parent-9", 2)


def test_the_title_is_the_custom_title_else_the_summary_of_the_leaf(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first").reply("a1", "u1", "r1", text("one"))
    t.lines.append({"type": "summary", "summary": "Greeting script", "leafUuid": "a1"})
    assert only(t.write(tmp_path / "s.jsonl")).title == "Greeting script"
    t.lines.insert(0, {"type": "custom-title", "customTitle": "My name", "sessionId": "sess-1"})
    assert only(t.write(tmp_path / "s.jsonl")).title == "My name"


def test_blocks_baton_cannot_map_are_counted_in_a_warning(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, [text("see this"), {"type": "mystery", "x": 1}])
    t.reply("a1", "u1", "r1", {"type": "hologram"})
    parsed = IMPORTER.read(t.write(tmp_path / "s.jsonl"))
    assert parsed.warnings == [
        "s.jsonl: skipped 2 content block(s) baton does not map (hologram x1, mystery x1)"
    ]
    assert [m["role"] for m in parsed.sessions[0].messages] == ["user"]


def test_an_error_result_and_an_image_keep_their_meaning(tmp_path: Path) -> None:
    t = Transcript()
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    t.user("u1", None, [text("what is this?"), image]).reply("a1", "u1", "r1", tool_use("c1"))
    failed = [{"type": "tool_result", "tool_use_id": "c1", "content": "boom", "is_error": True}]
    t.user("res", "a1", failed)
    messages = IMPORTER.read(t.write(tmp_path / "s.jsonl")).sessions[0].messages
    assert messages[0]["parts"][1] == {
        "type": "file",
        "path": "image-2.png",
        "mime": "image/png",
        "data": "iVBO",
        "encoding": "base64",
    }
    assert messages[2]["parts"] == [
        {"type": "tool_result", "tool_call_id": "c1", "output": "boom", "is_error": True}
    ]
    validated(messages)


def test_a_user_or_assistant_line_without_a_timestamp_is_refused(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first")
    del t.lines[0]["timestamp"]
    with pytest.raises(InvalidInput, match="line 1: a user line without a valid timestamp"):
        IMPORTER.read(t.write(tmp_path / "s.jsonl"))


def test_usage_beyond_baton_bounds_saturates(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first").reply("a1", "u1", "r1", text("one"), costUSD=1e308)
    t.lines[-1]["message"]["usage"]["input_tokens"] = 2**62
    (message,) = [m for m in only(t.write(tmp_path / "s.jsonl")).messages if "usage" in m]
    assert message["usage"] == {
        "input_tokens": 2**53,
        "output_tokens": 5,
        "cache_read_tokens": 2,
        "cost_usd": 1_000_000.0,
    }


def test_a_timestamp_before_year_1_in_utc_is_not_a_valid_timestamp(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first", timestamp="0001-01-01T00:00:00+14:00")
    with pytest.raises(InvalidInput, match="line 1: a user line without a valid timestamp"):
        IMPORTER.read(t.write(tmp_path / "s.jsonl"))


def test_a_branch_that_leaves_late_reuses_the_messages_before_it(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", None, "first").reply("a1", "u1", "r1", text("one"))
    t.user("u2", "a1", "second").reply("a2", "u2", "r2", tool_use("c2"))
    t.user("res", "a2", result("c2")).reply("a3", "res", "r3", text("it ran"))
    t.reply("b3", "res", "r4", text("it ran, retried"))  # an earlier attempt's dead end...
    t.user("u3", "a3", "third").reply("a4", "u3", "r5", text("three"))
    main, branch = IMPORTER.read(t.write(tmp_path / "s.jsonl")).sessions
    assert len(main.messages) == 8
    assert branch.source_id == "sess-1#b3"
    assert branch.forked_from == ("sess-1", 5)
    assert branch.messages[:5] == main.messages[:5]
    assert [m["role"] for m in branch.messages] == ["user", "assistant"] * 2 + ["tool", "assistant"]
    assert branch.messages[5]["parts"] == [text("it ran, retried")]


def test_a_loop_of_parent_links_ends(tmp_path: Path) -> None:
    t = Transcript()
    t.user("u1", "a1", "first").reply("a1", "u1", "r1", text("one"))
    session = only(t.write(tmp_path / "s.jsonl"))
    assert [m["role"] for m in session.messages] == ["user", "assistant"]


def test_a_fork_beside_large_siblings_reads_them_in_bounded_memory(tmp_path: Path) -> None:
    """Finding the parent of a --fork-session file streams the siblings line by line and keeps
    only the lines the fork has too: a 34 KB fork next to 50 MB of siblings stays small."""
    import tracemalloc

    parent, fork = tmp_path / SESSION.name, tmp_path / FORK.name
    shutil.copy(FORK, fork)
    lines = lines_of(SESSION)
    last = next(orjson.loads(x) for x in reversed(lines) if b'"uuid":' in x)
    filler = "x" * 100_000
    with parent.open("wb") as out:
        out.write(b"\n".join(lines) + b"\n")
        above = last["uuid"]
        for n in range(250):  # the parent went on after the fork: 25 MB more of it
            uuid = f"00000000-0000-4000-8000-{n:012d}"
            line = {**last, "uuid": uuid, "parentUuid": above, "type": "user"}
            line["message"] = {"role": "user", "content": filler}
            out.write(orjson.dumps(line) + b"\n")
            above = uuid
    other = {**last, "sessionId": "other", "uuid": "u", "parentUuid": None, "filler": filler}
    write_jsonl(tmp_path / "zz-unrelated.jsonl", [other] * 250)  # 25 MB that is no parent
    tracemalloc.start()
    try:
        session = only(fork)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert session.forked_from == (PARENT_ID, 20)
    assert session.messages == only(FORK).messages
    assert peak < 4_000_000, peak  # 77 MB when the siblings were read whole
