"""The opencode / Kilo CLI importer: the four real exports (a session and its fork from each
tool), databases built from them (by the real `opencode import` when it can be installed,
and by hand from the schema opencode 1.18 creates), and broken inputs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baton.core.ids import canonical_json
from baton.core.models import Message, Session
from baton.importers.base import ImportedSession, Parsed
from baton.importers.opencode import IMPORTER
from baton.render.document import export_document
from tests.importers.common import (
    NOW,
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

OPENCODE = SAMPLES / "opencode" / "export.json"
OPENCODE_FORK = SAMPLES / "opencode" / "fork-ses_df4f9bf35ffefoXyZVnVuIWSXL.export.json"
KILO = SAMPLES / "kilo" / "export.json"
KILO_FORK = SAMPLES / "kilo" / "fork-ses_df4f7bb99ffeshXTD7E028xpfp.export.json"
FIRST_PROMPT = (
    '"Create greet.py with a greet(name) function and a main block that greets the world."'
)
# opencode's version that wrote the samples; the real-binary test installs the same one.
OPENCODE_VERSION = os.environ.get("BATON_OPENCODE_VERSION", "1.18.33")


def read(path: Path) -> Parsed:
    return IMPORTER.read(path)


def only(path: Path) -> ImportedSession:
    return single(IMPORTER, path)


# --- the real exports ------------------------------------------------------------------------

CASES = {
    # file: (tool, version, session id, messages, user/assistant/tool, prompts, calls by name,
    #        input tokens, output tokens, created_at of the session)
    "opencode": (
        OPENCODE,
        "opencode",
        "1.18.33",
        "ses_df4f9eb0effeK6XfvFwLJt2EdU",
        20,
        {"user": 4, "assistant": 10, "tool": 6},
        4,
        {"bash": 3, "edit": 1, "read": 1, "write": 1},
        10650,
        200,
        "2026-11-24T00:47:57.681000Z",
    ),
    "opencode-fork": (
        OPENCODE_FORK,
        "opencode",
        "1.18.33",
        "ses_df4f9bf35ffefoXyZVnVuIWSXL",
        26,
        {"user": 5, "assistant": 13, "tool": 8},
        5,
        {"bash": 3, "edit": 2, "read": 2, "write": 1},
        14040,
        260,
        "2026-11-24T00:48:08.906000Z",
    ),
    "kilo": (
        KILO,
        "kilo",
        "7.7.9",
        "ses_df4f82753ffeHQwpKgpE04HMYa",
        20,
        {"user": 4, "assistant": 10, "tool": 6},
        4,
        {"bash": 3, "edit": 1, "read": 1, "write": 1},
        10550,
        200,
        "2026-11-24T00:49:53.325000Z",
    ),
    "kilo-fork": (
        KILO_FORK,
        "kilo",
        "7.7.9",
        "ses_df4f7bb99ffeshXTD7E028xpfp",
        26,
        {"user": 5, "assistant": 13, "tool": 8},
        5,
        {"bash": 3, "edit": 2, "read": 2, "write": 1},
        13910,
        260,
        "2026-11-24T00:50:20.902000Z",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_real_export_becomes_exactly_these_messages(case: str) -> None:
    path, tool, version, sid, count, roles, prompts, calls, tokens_in, tokens_out, created = CASES[
        case
    ]
    parsed = read(path)
    assert (parsed.tool, parsed.version, parsed.warnings, parsed.skipped_lines) == (
        tool,
        version,
        [],
        0,
    )
    session = only(path)
    assert (session.tool, session.source_id, session.created_at) == (tool, sid, created)
    assert len(session.messages) == count
    assert Counter(m["role"] for m in session.messages) == roles
    assert len(typed_prompts(session)) == prompts
    assert typed_prompts(session)[0] == FIRST_PROMPT
    assert session.task == FIRST_PROMPT
    assert Counter(p["name"] for p in parts(session, "tool_call")) == calls
    results = parts(session, "tool_result")
    assert len(results) == sum(calls.values())
    # every result answers a call, in order, in its own message right after the call's turn
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in parts(session, "tool_call")]
    assert not any(r["is_error"] for r in results)
    assert [r["exit_code"] for r in results if "exit_code" in r] == [0, 0, 0]
    assistants = [m for m in session.messages if m["role"] == "assistant"]
    assert {m["model"] for m in assistants} == {"fake/fake-model"}
    last = chain(session.messages)[-1]
    assert last.totals.input_tokens == tokens_in
    assert last.totals.output_tokens == tokens_out
    assert last.totals.input_tokens > 0 and last.totals.output_tokens > 0
    assert last.totals.cost_usd == 0.0  # the scripted model server charged nothing
    assert session.metadata["source"] == {"tool": tool, "version": version, "session_id": sid}
    assert session.metadata["imported_from"] == str(path.resolve())
    assert session.metadata["cwd"] == f"/home/dev/runs/{tool}-small/project"
    assert session.metadata["model"] == "fake/fake-model"


def plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without what is kept for the opencode export (the `opencode` of parts)."""
    return [
        {**m, "parts": [{k: v for k, v in p.items() if k != "opencode"} for p in m["parts"]]}
        for m in messages
    ]


def test_the_first_turn_of_the_opencode_session_in_full() -> None:
    session = only(OPENCODE)
    first = plain(session.messages[:4])
    assert first == [
        {
            "role": "user",
            "parts": [{"type": "text", "text": FIRST_PROMPT}],
            "created_at": "2026-11-24T00:47:57.720000Z",
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "I'll create greet.py."},
                {
                    "type": "tool_call",
                    "id": "call_2_0",
                    "name": "write",
                    "input": {
                        "filePath": "/home/dev/runs/opencode-small/project/greet.py",
                        "content": 'def greet(name):\n    return f"Hi, {name}."\n\n\n'
                        'if __name__ == "__main__":\n    print(greet("world"))\n',
                    },
                },
            ],
            "created_at": "2026-11-24T00:47:58.288000Z",
            "model": "fake/fake-model",
            "usage": {
                "input_tokens": 1020,
                "output_tokens": 20,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "cost_usd": 0.0,
            },
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_result",
                    "tool_call_id": "call_2_0",
                    "output": "Wrote file successfully.",
                    "is_error": False,
                }
            ],
            "created_at": "2026-11-24T00:47:59.133000Z",
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Created greet.py with greet(name) and a main block."}
            ],
            "created_at": "2026-11-24T00:47:59.222000Z",
            "model": "fake/fake-model",
            "usage": {
                "input_tokens": 1030,
                "output_tokens": 20,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "cost_usd": 0.0,
            },
        },
    ]
    assert session.title == "Create greet.py with a greet(name) function"
    assert session.metadata["files_touched"] == ["/home/dev/runs/opencode-small/project/greet.py"]
    assert session.metadata["project_id"] == "c5797065b5d962009654f7be6e10bbe5d7198a3d"


@pytest.mark.parametrize(("parent", "fork"), [(OPENCODE, OPENCODE_FORK), (KILO, KILO_FORK)])
def test_a_fork_shares_its_parents_messages_byte_for_byte(parent: Path, fork: Path) -> None:
    mine, theirs = only(fork), only(parent)
    fork_ids, parent_ids = ids(mine.messages), ids(theirs.messages)
    assert fork_ids[:20] == parent_ids == parent_ids[:20]
    assert [canonical_json(m) for m in mine.messages[:20]] == [
        canonical_json(m) for m in theirs.messages
    ]
    assert fork_ids[20] not in parent_ids
    # the export copies the history but never names the parent; its export beside it does
    assert mine.forked_from == (theirs.source_id, 20)
    assert theirs.forked_from is None
    assert mine.metadata["fork"] == {
        "copied_messages": 20,
        "of_title": theirs.title,
        "of": theirs.source_id,
    }
    assert "fork" not in theirs.metadata
    assert typed_prompts(mine)[:4] == typed_prompts(theirs)


def test_kilo_titles_are_kept_as_kilo_shows_them() -> None:
    session, fork = only(KILO), only(KILO_FORK)
    assert session.title == "New session - 2026-11-24T00:49:53.325Z"
    assert fork.title == "New session - 2026-11-24T00:49:53.325Z (fork #1)"
    assert fork.metadata["fork"]["of_title"] == "New session - 2026-11-24T00:49:53.325Z"


@pytest.mark.parametrize("fork", [OPENCODE_FORK, KILO_FORK], ids=lambda p: p.parent.name)
def test_a_fork_without_its_parent_beside_it_says_what_it_copied(
    tmp_path: Path, fork: Path
) -> None:
    alone = tmp_path / fork.name
    alone.write_bytes(fork.read_bytes())
    (tmp_path / "notes.json").write_text('{"info": "not an export"}')
    session = only(alone)
    assert session.forked_from is None
    assert session.metadata["fork"] == {
        "copied_messages": 20,
        "of_title": session.title.removesuffix(" (fork #1)"),
    }
    assert ids(session.messages) == ids(only(fork).messages)


@pytest.mark.parametrize("path", [OPENCODE, OPENCODE_FORK, KILO, KILO_FORK], ids=lambda p: p.name)
def test_reading_twice_gives_the_same_ids(path: Path) -> None:
    assert ids(only(path).messages) == ids(only(path).messages)


def test_every_message_passes_validation_unchanged() -> None:
    for path in (OPENCODE, OPENCODE_FORK, KILO, KILO_FORK):
        messages = only(path).messages
        for raw, item in zip(messages, validated(messages), strict=True):
            assert item.created_at == raw["created_at"]
            assert item.parts == raw["parts"]
            assert item.blobs == {}


# --- detection -------------------------------------------------------------------------------


def baton_export(tmp_path: Path) -> Path:
    session = Session(
        id="ses_01JAAAAAAAAAAAAAAAAAAAAAAA",
        owner="acc_1",
        title="t",
        task="",
        status="active",
        head=None,
        message_count=0,
        created_at=NOW,
        updated_at=NOW,
        version=1,
    )
    message = Message("m_" + "0" * 64, None, "user", [{"type": "text", "text": "hi"}], NOW)
    path = tmp_path / "baton.json"
    path.write_text(json.dumps(export_document(session, [message], NOW)))
    return path


def test_detect_knows_its_own_formats_and_nothing_else(tmp_path: Path) -> None:
    for path in (OPENCODE, OPENCODE_FORK, KILO, KILO_FORK):
        assert IMPORTER.detect(path, head(path)), path
    db = database_from_exports(tmp_path / "opencode.db", [OPENCODE])
    assert IMPORTER.detect(db, head(db))
    others = [
        *samples("claude-code", "codex"),
        baton_export(tmp_path),
        SAMPLES / "opencode",  # a folder
    ]
    assert len(others) == 9
    for path in others:
        assert not IMPORTER.detect(path, head(path)), path
    other_db = tmp_path / "other.db"
    with sqlite3.connect(other_db) as conn:
        conn.execute("CREATE TABLE sessions (id TEXT)")
    conn.close()
    assert not IMPORTER.detect(other_db, head(other_db))


# --- broken input ----------------------------------------------------------------------------


def broken(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_broken_exports_are_refused_with_one_line(tmp_path: Path) -> None:
    whole = OPENCODE.read_bytes()
    doc = json.loads(whole)
    cases = {
        "truncated.json": (whole[: len(whole) // 2], "the JSON ends early"),
        "empty.json": (b"", "is empty"),
        "blank.json": (b" \n\n", "is empty"),
        "binary.json": (bytes(range(256)) * 8, "is not UTF-8 text"),
        "garbage.json": (b'{"info": {"id": "ses_x"}, "messages": [}', "is not valid JSON"),
        "list.json": (b"[1, 2, 3]", "not an opencode or Kilo export"),
        "dict-messages.json": (
            json.dumps({**doc, "messages": {"a": 1}}).encode(),
            "messages must be a list, got dict",
        ),
        "no-messages.json": (
            json.dumps({"info": doc["info"]}).encode(),
            "messages must be a list, got nothing",
        ),
        "string-info.json": (
            json.dumps({**doc, "info": "x"}).encode(),
            "not an opencode or Kilo export",
        ),
        "numeric-id.json": (
            json.dumps({**doc, "info": {**doc["info"], "id": 7}}).encode(),
            "info.id (the session id) must be a string",
        ),
        "message-string.json": (
            json.dumps({**doc, "messages": ["hello"]}).encode(),
            "message 1 must be an object with info and parts",
        ),
        "parts-dict.json": (
            json.dumps({**doc, "messages": [{"info": {"role": "user"}, "parts": {}}]}).encode(),
            "message 1: parts must be a list of objects",
        ),
        "part-number.json": (
            json.dumps({**doc, "messages": [{"info": {"role": "user"}, "parts": [3]}]}).encode(),
            "message 1: parts must be a list of objects",
        ),
    }
    for name, (data, why) in cases.items():
        message = refusal(IMPORTER, broken(tmp_path, name, data))
        assert message.startswith(f"{name}: "), message
        assert why in message, (name, message)


def test_broken_databases_are_refused_with_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE sessions (id TEXT)")
    conn.close()
    assert "without opencode's session, message and part tables" in refusal(IMPORTER, other)
    garbage = broken(tmp_path, "garbage.db", b"SQLite format 3\x00" + bytes(range(256)) * 40)
    assert refusal(IMPORTER, garbage).startswith("garbage.db: cannot ")
    db = database_from_exports(tmp_path / "torn.db", [OPENCODE])
    torn = broken(tmp_path, "half.db", db.read_bytes()[:4096])
    assert refusal(IMPORTER, torn).startswith("half.db: cannot ")
    assert "is a folder" in refusal(IMPORTER, tmp_path)


def test_parts_that_lose_content_are_reported(tmp_path: Path) -> None:
    doc = json.loads(OPENCODE.read_bytes())
    first = doc["messages"][1]
    first["parts"].insert(1, {"type": "retry", "attempt": 1, "error": {"name": "APIError"}})
    first["parts"].insert(1, {"type": "hologram", "text": "?"})
    doc["messages"].append(
        {
            "info": {
                "role": "assistant",
                "time": {"created": 1795481287800},
                "error": {"name": "MessageAbortedError", "data": {"message": "Aborted"}},
            },
            "parts": [{"type": "step-start"}],
        }
    )
    path = broken(tmp_path, "warned.json", json.dumps(doc).encode())
    parsed = read(path)
    sid = "ses_df4f9eb0effeK6XfvFwLJt2EdU"
    assert parsed.warnings == [
        f"session {sid}: skipped an assistant message with no content (it ended in Aborted)",
        f"session {sid}: skipped 1 part(s) of type 'hologram'",
        f"session {sid}: skipped 1 part(s) of type 'retry'",
    ]
    assert len(parsed.sessions[0].messages) == 20


# --- databases -------------------------------------------------------------------------------

# The tables `opencode import` creates (opencode 1.18.33), as `sqlite3 .schema` shows them.
SCHEMA = """
CREATE TABLE `project` (
  `id` text PRIMARY KEY, `worktree` text NOT NULL, `vcs` text, `name` text,
  `icon_url` text, `icon_url_override` text, `icon_color` text,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL,
  `time_initialized` integer, `sandboxes` text NOT NULL, `commands` text
);
CREATE TABLE `session` (
  `id` text PRIMARY KEY, `project_id` text NOT NULL, `workspace_id` text, `parent_id` text,
  `slug` text NOT NULL, `directory` text NOT NULL, `path` text, `title` text NOT NULL,
  `version` text NOT NULL, `share_url` text, `summary_additions` integer,
  `summary_deletions` integer, `summary_files` integer, `summary_diffs` text, `metadata` text,
  `cost` real DEFAULT 0 NOT NULL, `tokens_input` integer DEFAULT 0 NOT NULL,
  `tokens_output` integer DEFAULT 0 NOT NULL, `tokens_reasoning` integer DEFAULT 0 NOT NULL,
  `tokens_cache_read` integer DEFAULT 0 NOT NULL, `tokens_cache_write` integer DEFAULT 0 NOT NULL,
  `revert` text, `permission` text, `agent` text, `model` text,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL,
  `time_compacting` integer, `time_archived` integer,
  CONSTRAINT `fk_session_project_id_project_id_fk` FOREIGN KEY (`project_id`)
    REFERENCES `project`(`id`) ON DELETE CASCADE
);
CREATE TABLE `message` (
  `id` text PRIMARY KEY, `session_id` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL,
  CONSTRAINT `fk_message_session_id_session_id_fk` FOREIGN KEY (`session_id`)
    REFERENCES `session`(`id`) ON DELETE CASCADE
);
CREATE TABLE `part` (
  `id` text PRIMARY KEY, `message_id` text NOT NULL, `session_id` text NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL,
  CONSTRAINT `fk_part_message_id_message_id_fk` FOREIGN KEY (`message_id`)
    REFERENCES `message`(`id`) ON DELETE CASCADE
);
CREATE INDEX `message_session_time_created_id_idx` ON `message` (`session_id`,`time_created`,`id`);
CREATE INDEX `part_message_id_id_idx` ON `part` (`message_id`,`id`);
CREATE INDEX `part_session_idx` ON `part` (`session_id`);
CREATE TABLE `account` (
  `id` text PRIMARY KEY, `email` text NOT NULL, `url` text NOT NULL,
  `access_token` text NOT NULL, `refresh_token` text NOT NULL, `token_expiry` integer,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL
);
"""
KILO_TABLE = """
CREATE TABLE `kilo_board` (
  `root_session_id` text PRIMARY KEY, `objective` text NOT NULL, `objective_message_id` text,
  `next_seq` integer DEFAULT 1 NOT NULL, `cleared_seq` integer DEFAULT 0 NOT NULL,
  `message_count` integer DEFAULT 0 NOT NULL, `message_bytes` integer DEFAULT 0 NOT NULL,
  `time_created` integer NOT NULL, `time_updated` integer NOT NULL
);
"""


def create_database(path: Path, kilo: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA + (KILO_TABLE if kilo else ""))
    conn.execute(
        "INSERT INTO project VALUES ('global', '/', NULL, NULL, NULL, NULL, NULL, 1, 1, NULL,"
        " '[]', NULL)"
    )
    conn.execute(
        "INSERT INTO account VALUES ('acc', 'a@example.com', 'https://x', 'secret-access',"
        " 'secret-refresh', NULL, 1, 1)"
    )
    return conn


def insert_session(conn: sqlite3.Connection, info: dict[str, Any], messages: list[Any]) -> None:
    """One session the way opencode stores it: the JSON of each message and part in `data`,
    without the ids that have their own columns."""
    tokens = info.get("tokens", {})
    conn.execute(
        "INSERT INTO session (id, project_id, parent_id, slug, directory, path, title, version,"
        " cost, tokens_input, tokens_output, agent, model, time_created, time_updated)"
        " VALUES (?, 'global', ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            info["id"],
            info.get("parentID"),
            info.get("slug", "slug"),
            info["directory"],
            info["title"],
            info["version"],
            info.get("cost", 0),
            tokens.get("input", 0),
            tokens.get("output", 0),
            info.get("agent"),
            json.dumps(info["model"]) if "model" in info else None,
            info["time"]["created"],
            info["time"]["updated"],
        ),
    )
    for message in messages:
        data = {k: v for k, v in message["info"].items() if k not in ("id", "sessionID")}
        created = message["info"]["time"]["created"]
        conn.execute(
            "INSERT INTO message VALUES (?, ?, ?, ?, ?)",
            (message["info"]["id"], info["id"], created, created + 1, json.dumps(data)),
        )
        for part in message["parts"]:
            body = {k: v for k, v in part.items() if k not in ("id", "sessionID", "messageID")}
            conn.execute(
                "INSERT INTO part VALUES (?, ?, ?, ?, ?, ?)",
                (part["id"], message["info"]["id"], info["id"], 5, 5, json.dumps(body)),
            )


def database_from_exports(path: Path, exports: list[Path], kilo: bool = False) -> Path:
    conn = create_database(path, kilo)
    with conn:
        for export in exports:
            doc = json.loads(export.read_bytes())
            insert_session(conn, doc["info"], doc["messages"])
    conn.close()
    return path


@pytest.mark.parametrize(
    ("tool", "parent", "fork"), [("opencode", OPENCODE, OPENCODE_FORK), ("kilo", KILO, KILO_FORK)]
)
def test_a_database_gives_the_same_messages_as_the_exports(
    tmp_path: Path, tool: str, parent: Path, fork: Path
) -> None:
    db = database_from_exports(tmp_path / f"{tool}.db", [fork, parent], kilo=tool == "kilo")
    parsed = read(db)
    assert (parsed.tool, parsed.warnings) == (tool, [])
    assert [s.source_id for s in parsed.sessions] == [only(parent).source_id, only(fork).source_id]
    from_db = {s.source_id: s for s in parsed.sessions}
    for export in (parent, fork):
        expected = only(export)
        got = from_db[expected.source_id]
        assert ids(got.messages) == ids(expected.messages)
        assert (got.title, got.task, got.created_at, got.tool) == (
            expected.title,
            expected.task,
            expected.created_at,
            tool,
        )
        assert got.metadata["imported_from"] == str(db.resolve())
    # in a database the parent is there to find: the fork names it
    parent_id = only(parent).source_id
    assert from_db[only(fork).source_id].forked_from == (parent_id, 20)
    assert from_db[only(fork).source_id].metadata["fork"] == {
        "copied_messages": 20,
        "of_title": from_db[parent_id].title,
        "of": parent_id,
    }
    assert from_db[parent_id].forked_from is None


# A real `opencode run` (1.18.33, against a scripted OpenAI-compatible server) wrote these rows:
# reasoning, a shell command that failed (exit 3, still status "completed"), and a cost.
RUN_SESSION = {
    "id": "ses_debc74e18ffepGUHC13cqXRnwH",
    "directory": "/tmp/oc/proj",
    "title": "Failing command test",
    "version": "1.18.33",
    "agent": "build",
    "model": {"id": "fake-model", "providerID": "fake", "variant": "default"},
    "cost": 0.000747,
    "tokens": {"input": 150, "output": 19},
    "time": {"created": 1795635589608, "updated": 1795635593500},
}
RUN_MESSAGES: list[dict[str, Any]] = [
    {
        "info": {
            "id": "msg_21438b272001FiqmVijqARoOM5",
            "role": "user",
            "time": {"created": 1795635589746},
            "agent": "build",
            "model": {"providerID": "fake", "modelID": "fake-model"},
            "summary": {"diffs": []},
        },
        "parts": [
            {"id": "prt_21438b27b001O3HC2G53kg7oRW", "type": "text", "text": "Run exit 3 please"},
            {
                "id": "prt_21438b27b002aaaaaaaaaaaaaa",
                "type": "file",
                "mime": "image/png",
                "filename": "shot.png",
                "url": "data:image/png;base64,iVBORw0KGgo=",
            },
        ],
    },
    {
        "info": {
            "id": "msg_21438b7de001Nk8kMmqJxmL1pA",
            "parentID": "msg_21438b272001FiqmVijqARoOM5",
            "role": "assistant",
            "mode": "build",
            "agent": "build",
            "path": {"cwd": "/tmp/oc/proj", "root": "/tmp/oc/proj"},
            "cost": 0.000342,
            "tokens": {
                "total": 102,
                "input": 50,
                "output": 12,
                "reasoning": 0,
                "cache": {"write": 0, "read": 40},
            },
            "modelID": "fake-model",
            "providerID": "fake",
            "time": {"created": 1795635591135, "completed": 1795635592925},
            "finish": "tool-calls",
        },
        "parts": [
            {
                "id": "prt_21438bd82001SoguohRXNG35uu",
                "type": "step-start",
                "snapshot": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            },
            {
                "id": "prt_21438bd87001VFLCMl9oTyN0ii",
                "type": "reasoning",
                "text": "I should run it.",
                "time": {"start": 1795635592583, "end": 1795635592590},
            },
            {
                "id": "prt_21438bd90001KpvzsYyT4fzXEN",
                "type": "text",
                "text": "Running it.",
                "time": {"start": 1795635592592, "end": 1795635592615},
            },
            {
                "id": "prt_21438bd9a001yR4zFtbPh9JcF9",
                "type": "tool",
                "tool": "bash",
                "callID": "call_x1",
                "state": {
                    "status": "completed",
                    "input": {"command": "exit 3", "description": "Fail on purpose"},
                    "output": "(no output)",
                    "metadata": {"output": "(no output)", "exit": 3, "truncated": False},
                    "title": "exit 3",
                    "time": {"start": 1795635592610, "end": 1795635592737},
                },
            },
            {
                "id": "prt_21438bd9b001yR4zFtbPh9JcF9",
                "type": "tool",
                "tool": "read",
                "callID": "call_x2",
                "state": {
                    "status": "error",
                    "input": {"filePath": "/tmp/oc/proj/missing.py"},
                    "error": "File not found: /tmp/oc/proj/missing.py",
                    "time": {"start": 1795635592700, "end": 1795635592800},
                },
            },
            {
                "id": "prt_21438be72001XAVWBokmMfjsyE",
                "type": "step-finish",
                "reason": "tool-calls",
                "snapshot": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                "cost": 0.000342,
                "tokens": {
                    "total": 102,
                    "input": 50,
                    "output": 12,
                    "reasoning": 0,
                    "cache": {"write": 0, "read": 40},
                },
            },
        ],
    },
    {
        "info": {
            "id": "msg_21438bee5001eNLPBFyx2ommsT",
            "parentID": "msg_21438b272001FiqmVijqARoOM5",
            "role": "assistant",
            "modelID": "fake-model",
            "providerID": "fake",
            "time": {"created": 1795635592933, "completed": 1795635593473},
            "finish": "stop",
        },
        "parts": [
            {"id": "prt_21438bf55001noheyPot4xUkZT", "type": "step-start"},
            {
                "id": "prt_21438bf59001AOUY373qRsAkdz",
                "type": "text",
                "text": "Done: the command failed as expected.",
            },
            {
                "id": "prt_21438bf5a001AOUY373qRsAkdz",
                "type": "tool",
                "tool": "bash",
                "callID": "call_x3",
                "state": {
                    "status": "running",
                    "input": {"command": "sleep 9"},
                    "time": {"start": 1},
                },
            },
            {
                "id": "prt_21438c03f001cWzSjYTRTrHS5M",
                "type": "step-finish",
                "reason": "stop",
                "cost": 0.000405,
                "tokens": {
                    "total": 107,
                    "input": 100,
                    "output": 4,
                    "reasoning": 3,
                    "cache": {"write": 2, "read": 0},
                },
            },
        ],
    },
]
RUN_EXPECTED: list[dict[str, Any]] = [
    {
        "role": "user",
        "parts": [
            {"type": "text", "text": "Run exit 3 please"},
            {
                "type": "file",
                "path": "shot.png",
                "mime": "image/png",
                "data": "iVBORw0KGgo=",
                "encoding": "base64",
            },
        ],
        "created_at": "2026-11-25T19:39:49.746000Z",
    },
    {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "text": "I should run it."},
            {"type": "text", "text": "Running it."},
            {
                "type": "tool_call",
                "id": "call_x1",
                "name": "bash",
                "input": {"command": "exit 3", "description": "Fail on purpose"},
            },
            {
                "type": "tool_call",
                "id": "call_x2",
                "name": "read",
                "input": {"filePath": "/tmp/oc/proj/missing.py"},
            },
        ],
        "created_at": "2026-11-25T19:39:51.135000Z",
        "model": "fake/fake-model",
        "usage": {
            "input_tokens": 50,
            "output_tokens": 12,
            "cache_read_tokens": 40,
            "cache_write_tokens": 0,
            "cost_usd": 0.000342,
        },
    },
    {
        "role": "tool",
        "parts": [
            {
                "type": "tool_result",
                "tool_call_id": "call_x1",
                "output": "(no output)",
                "is_error": True,
                "exit_code": 3,
            }
        ],
        "created_at": "2026-11-25T19:39:52.737000Z",
    },
    {
        "role": "tool",
        "parts": [
            {
                "type": "tool_result",
                "tool_call_id": "call_x2",
                "output": "File not found: /tmp/oc/proj/missing.py",
                "is_error": True,
            }
        ],
        "created_at": "2026-11-25T19:39:52.800000Z",
    },
    {
        "role": "assistant",
        "parts": [
            {"type": "text", "text": "Done: the command failed as expected."},
            {"type": "tool_call", "id": "call_x3", "name": "bash", "input": {"command": "sleep 9"}},
        ],
        "created_at": "2026-11-25T19:39:52.933000Z",
        "model": "fake/fake-model",
        "usage": {
            "input_tokens": 100,
            "output_tokens": 7,
            "cache_read_tokens": 0,
            "cache_write_tokens": 2,
            "cost_usd": 0.000405,
            "reasoning_tokens": 3,
        },
    },
]


def test_a_database_row_by_row(tmp_path: Path) -> None:
    """Failed commands and tools, reasoning, attachments, costs, an unfinished call, and a
    fork (`opencode run --continue --fork`: copies, new ids, no link to the parent)."""
    db = tmp_path / "opencode.db"
    conn = create_database(db)
    with conn:
        insert_session(conn, RUN_SESSION, RUN_MESSAGES)
        fork_messages = json.loads(json.dumps(RUN_MESSAGES))
        for n, message in enumerate(fork_messages):
            message["info"]["id"] = f"msg_fork{n:04d}"
            for k, part in enumerate(message["parts"]):
                part["id"] = f"prt_fork{n:04d}{k:04d}"
        fork_messages.append(
            {
                "info": {"id": "msg_fork9999", "role": "user", "time": {"created": 1795635610000}},
                "parts": [{"id": "prt_fork9999", "type": "text", "text": "again"}],
            }
        )
        fork = {
            **RUN_SESSION,
            "id": "ses_debc6fe84ffeeA2QU7qNA1Rb6x",
            "title": "Failing command test (fork #1)",
            "time": {"created": 1795635609980, "updated": 1795635613000},
        }
        insert_session(conn, fork, fork_messages)
    conn.close()
    parsed = read(db)
    first, second = parsed.sessions
    assert plain(first.messages) == RUN_EXPECTED
    assert (first.title, first.task, first.created_at) == (
        "Failing command test",
        "Run exit 3 please",
        "2026-11-25T19:39:49.608000Z",
    )
    last = chain(first.messages)[-1]
    assert (last.totals.input_tokens, last.totals.output_tokens) == (150, 19)
    assert last.totals.cost_usd == pytest.approx(0.000747)
    assert last.totals.cost_usd > 0
    assert parsed.warnings == [
        f"session {first.source_id}: tool call call_x3 (bash) has no result: it was running",
        f"session {second.source_id}: tool call call_x3 (bash) has no result: it was running",
    ]
    assert plain(second.messages[:5]) == RUN_EXPECTED
    assert len(second.messages) == 6
    assert second.forked_from == (first.source_id, 5)
    assert parsed.version == "1.18.33"
    # the reader never looks at the other tables (this one holds credentials)
    assert "secret" not in json.dumps([s.metadata for s in parsed.sessions])


def test_reading_a_database_never_writes_to_it(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    db = database_from_exports(folder / "opencode.db", [OPENCODE])
    before = db.read_bytes()
    db.chmod(0o444)
    try:
        assert len(read(db).sessions) == 1
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["opencode.db"]  # no -wal, no -shm


# --- the real opencode -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def opencode_bin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real opencode binary: under $BATON_NPM_PREFIX (where .ci/run installs it), on PATH,
    or installed once from npm into pytest's cache."""
    ci = os.environ.get("CI") == "true"
    prefix = os.environ.get("BATON_NPM_PREFIX")
    if prefix and (installed := _installed(Path(prefix))) is not None:
        return installed
    found = shutil.which("opencode")
    if found and _runs(Path(found)):
        return Path(found)
    npm = shutil.which("npm")
    if npm is None:
        if ci:
            pytest.fail("npm is needed in CI to install opencode-ai")
        pytest.skip("neither opencode nor npm is installed")
    cache = getattr(request.config, "cache", None)
    name = f"opencode-ai-{OPENCODE_VERSION}"
    folder = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    binary = _installed(folder)
    if binary is None:
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(folder),
                "--no-audit",
                "--no-fund",
                "--silent",
                f"opencode-ai@{OPENCODE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        binary = _installed(folder)
        if binary is None:
            if ci:
                pytest.fail(f"npm install opencode-ai failed: {result.stderr[-500:]}")
            pytest.skip(f"could not install opencode-ai from npm: {result.stderr[-200:]}")
    return binary


def _installed(folder: Path) -> Path | None:
    """npm leaves the platform binary in node_modules/opencode-<os>-<arch>[-baseline]/bin."""
    for candidate in sorted(folder.glob("node_modules/opencode-*/bin/opencode")):
        if _runs(candidate):
            return candidate
    return None


def _runs(binary: Path) -> bool:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.slow
def test_the_real_opencode_import_writes_a_database_we_read(
    tmp_path: Path, opencode_bin: Path
) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_STATE_HOME": str(home / "state"),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
    }
    for export in (OPENCODE, OPENCODE_FORK):
        done = subprocess.run(
            [str(opencode_bin), "import", str(export)],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    db = home / "data" / "opencode" / "opencode.db"
    assert IMPORTER.detect(db, head(db))
    parsed = read(db)
    assert (parsed.tool, parsed.warnings) == ("opencode", [])
    assert isinstance(parsed.version, str)
    got = {s.source_id: s for s in parsed.sessions}
    parent, fork = only(OPENCODE), only(OPENCODE_FORK)
    assert sorted(got) == sorted([parent.source_id, fork.source_id])
    for expected in (parent, fork):
        assert [canonical_json(m) for m in got[expected.source_id].messages] == [
            canonical_json(m) for m in expected.messages
        ]
        assert got[expected.source_id].title == expected.title
    assert got[fork.source_id].forked_from == (parent.source_id, 20)
    # opencode import records the folder it ran in, not the exported one
    assert got[parent.source_id].metadata["cwd"] == str(project)


# --- any damage: refused in one line, or messages that validate ------------------------------


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_damaged_export_is_refused_or_imported_validly(data: st.DataObject) -> None:
    doc = json.loads(OPENCODE.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        damage(data, doc)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.json"
        path.write_text(json.dumps(doc))
        refused_or_valid(IMPORTER, path)
