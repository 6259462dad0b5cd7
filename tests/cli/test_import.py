"""`baton sessions import` on the files the other agents wrote, as a user runs it: counts,
forks stored once, re-imports that add nothing, damaged files, and `--scan`."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_baton, run_json

SAMPLES = Path(__file__).resolve().parent.parent / "importers" / "samples"
CLAUDE = SAMPLES / "claude-code" / "projects" / "-home-dev-runs-claude-small-project"
CLAUDE_MAIN = CLAUDE / "ac5220f9-09d0-44bd-a060-6addc8dcc165.jsonl"
CLAUDE_FORK = CLAUDE / "0cfc0f17-9fdd-44f1-963e-d40ee15573b3.jsonl"
CODEX = sorted((SAMPLES / "codex" / "sessions" / "2026" / "11" / "24").glob("rollout-*.jsonl"))
SUBAGENT_PARENT = "5b0e7c3a-2f41-4d8e-9c6a-7e1f0b2d4a93"
OPENCODE = SAMPLES / "opencode" / "export.json"
KILO = SAMPLES / "kilo" / "export.json"


def stored_messages(home: Path) -> int:
    conn = sqlite3.connect(home / "baton.db")
    try:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "tool", "messages", "prompts"),
    [
        (CLAUDE_MAIN, "claude-code", 20, 4),
        (CODEX[0], "codex", 20, 4),
        (OPENCODE, "opencode", 20, 4),
        (KILO, "kilo", 20, 4),
    ],
)
def test_each_tools_session_imports_and_exports_its_prompts(
    baton_home: Path, path: Path, tool: str, messages: int, prompts: int
) -> None:
    summary = run_json("sessions", "import", str(path), home=baton_home)
    assert (summary["format"], summary["sessions_created"]) == (tool, 1)
    [session] = summary["sessions"]
    assert session["messages"] == messages
    shown = run_json("sessions", "show", session["id"], home=baton_home)
    typed = [m for m in shown["messages"] if m["role"] == "user"]
    assert len(typed) == prompts
    assert shown["platform"] == "import"
    assert shown["metadata"]["source"]["tool"] == tool
    markdown = run_baton(
        "sessions", "export", session["id"], "--format", "markdown", home=baton_home
    )
    for message in typed:
        assert message["parts"][0]["text"].strip()[:40] in markdown.stdout
    again = run_json("sessions", "import", str(path), home=baton_home)
    assert (again["sessions_created"], again["messages_imported"]) == (0, 0)
    assert again["sessions"][0]["id"] == session["id"]


@pytest.mark.parametrize(
    ("parent", "fork"),
    [(CLAUDE_MAIN, CLAUDE_FORK), (CODEX[0], CODEX[1])],
    ids=["claude-code", "codex"],
)
def test_a_fork_stores_the_shared_history_once(baton_home: Path, parent: Path, fork: Path) -> None:
    first = run_json("sessions", "import", str(parent), home=baton_home)["sessions"][0]
    assert stored_messages(baton_home) == 20
    second = run_json("sessions", "import", str(fork), home=baton_home)["sessions"][0]
    assert second["messages"] == 26 and stored_messages(baton_home) == 26
    shown = run_json("sessions", "show", second["id"], home=baton_home)
    parent_shown = run_json("sessions", "show", first["id"], home=baton_home)
    assert [m["id"] for m in shown["messages"][:20]] == [m["id"] for m in parent_shown["messages"]]
    assert shown["forked_from"]["session"] == first["id"]


def test_a_torn_last_line_is_skipped_and_named(baton_home: Path, tmp_path: Path) -> None:
    data = CLAUDE_MAIN.read_bytes().rstrip(b"\n")
    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(data[: len(data) - 40])
    result = run_baton("sessions", "import", str(torn), home=baton_home)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 line(s)" in result.stdout
    assert "warning: torn.jsonl: line" in result.stderr and "cut short" in result.stderr


@pytest.mark.parametrize(
    "content",
    [b"", bytes(range(256)) * 8, b'{"type": "session_meta"', b"[1, 2, 3]\n"],
    ids=["empty", "binary", "truncated", "wrong-type"],
)
def test_damaged_files_are_refused_in_one_line_and_store_nothing(
    baton_home: Path, tmp_path: Path, content: bytes
) -> None:
    run_json("sessions", "import", str(OPENCODE), home=baton_home)
    before = stored_messages(baton_home)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = run_baton("sessions", "import", str(bad), home=baton_home)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert stored_messages(baton_home) == before


def test_scan_finds_every_tool_in_its_default_place(baton_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    shutil.copytree(SAMPLES / "claude-code", home / ".claude")
    shutil.copytree(SAMPLES / "codex", home / ".codex")
    env = {
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": "",
        "CODEX_HOME": "",
        "XDG_DATA_HOME": "",
        "XDG_CONFIG_HOME": "",
    }
    result = run_json("sessions", "import", "--scan", home=baton_home, env=env)
    found = {f["tool"]: f["files"] for f in result["found"]}
    assert found == {"claude-code": 3, "codex": 3}
    # two sessions and their forks (26 + 26 messages), a session with a sub-agent in a file
    # of its own (4 + 4) and a Codex session with a failed command (8)
    assert result["sessions_created"] == 7
    assert stored_messages(baton_home) == 68
    with_agent = [
        s
        for r in result["imports"]
        for s in r["sessions"]
        if s["source_session"] == SUBAGENT_PARENT
    ]
    assert len(with_agent) == 2  # the main session and its sub-agent
    again = run_json("sessions", "import", "--scan", home=baton_home, env=env)
    assert again["sessions_created"] == 0
    human = run_baton("sessions", "import", "--scan", home=baton_home, env=env)
    assert "claude-code" in human.stdout and "imported 0 session(s)" in human.stdout


@pytest.mark.parametrize("source", [CLAUDE_MAIN, CODEX[0]], ids=["claude-code", "codex"])
def test_a_grown_file_imported_again_grows_the_same_session(
    baton_home: Path, tmp_path: Path, source: Path
) -> None:
    lines = source.read_bytes().splitlines(keepends=True)
    live = tmp_path / source.name
    live.write_bytes(b"".join(lines[: len(lines) // 2]))
    first = run_json("sessions", "import", str(live), home=baton_home)["sessions"][0]
    assert first["created"] and 0 < first["messages"] < 20
    live.write_bytes(b"".join(lines))
    again = run_json("sessions", "import", str(live), home=baton_home)
    assert again["sessions_created"] == 0
    [grown] = again["sessions"]
    assert (grown["id"], grown["messages"]) == (first["id"], 20)
    # the new messages, and the last one stored before when the file had only begun it
    assert 20 - first["messages"] <= grown["messages_imported"] <= 21 - first["messages"]
    listed = run_json("sessions", "list", home=baton_home)
    assert [s["id"] for s in listed] == [first["id"]]
    whole = run_json("sessions", "import", str(source), home=baton_home)
    assert (whole["sessions_created"], whole["messages_imported"]) == (0, 0)


@pytest.mark.parametrize(
    ("parent", "fork"),
    [(CLAUDE_MAIN, CLAUDE_FORK), (CODEX[0], CODEX[1])],
    ids=["claude-code", "codex"],
)
def test_a_fork_imported_before_its_parent_is_linked_when_the_parent_comes(
    baton_home: Path, parent: Path, fork: Path
) -> None:
    first = run_json("sessions", "import", str(fork), home=baton_home)
    assert first["warnings"] == []
    [made] = first["sessions"]
    assert made["messages"] == 26 and stored_messages(baton_home) == 26
    shown = run_json("sessions", "show", made["id"], home=baton_home)
    assert shown["forked_from"] == {"source_session": parent_id(parent), "messages": 20}
    second = run_json("sessions", "import", str(parent), home=baton_home)
    [origin] = second["sessions"]
    assert (origin["created"], origin["messages"]) == (True, 20)
    assert stored_messages(baton_home) == 26  # the parent's messages were stored with the fork
    shown = run_json("sessions", "show", made["id"], home=baton_home)
    assert shown["forked_from"] == {
        "source_session": parent_id(parent),
        "messages": 20,
        "session": origin["id"],
    }
    again = run_json("sessions", "import", str(fork), home=baton_home)
    assert (again["sessions_created"], again["messages_imported"]) == (0, 0)
    assert again["sessions"][0]["id"] == made["id"]
    assert len(run_json("sessions", "list", home=baton_home)) == 2


def parent_id(path: Path) -> str:
    return path.stem.split("rollout-")[-1][20:] if path.stem.startswith("rollout-") else path.stem


def test_a_codex_fork_imported_alone_takes_its_history_when_the_parent_is_found(
    baton_home: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(CODEX[1], alone)
    first = run_json("sessions", "import", str(alone / CODEX[1].name), home=baton_home)
    [made] = first["sessions"]
    assert made["messages"] == 6
    assert "whose rollout was not found" in first["warnings"][0]
    shutil.copy(CODEX[0], alone)
    again = run_json("sessions", "import", str(alone / CODEX[1].name), home=baton_home)
    assert again["warnings"] == [] and again["sessions_created"] == 0
    [grown] = again["sessions"]
    assert (grown["id"], grown["messages"]) == (made["id"], 26)
    parent = run_json("sessions", "import", str(alone / CODEX[0].name), home=baton_home)
    shown = run_json("sessions", "show", made["id"], home=baton_home)
    assert shown["forked_from"]["session"] == parent["sessions"][0]["id"]
    assert len(run_json("sessions", "list", home=baton_home)) == 2


def test_a_claude_code_sub_agent_comes_with_its_session_linked_to_its_tool_call(
    baton_home: Path,
) -> None:
    main = SAMPLES / "claude-code" / "projects" / "-home-dev-runs-claude-subagent-project"
    result = run_json("sessions", "import", str(main / f"{SUBAGENT_PARENT}.jsonl"), home=baton_home)
    assert [s["messages"] for s in result["sessions"]] == [4, 4]
    agent = run_json("sessions", "show", result["sessions"][1]["id"], home=baton_home)
    meta = agent["metadata"]
    assert meta["source"] == {
        "tool": "claude-code",
        "version": "2.1.197",
        "session_id": SUBAGENT_PARENT,
        "agent_id": "a5f1c9d2e8b34706",
    }
    assert (meta["parent_session"], meta["parent_tool_call"]) == (
        SUBAGENT_PARENT,
        "toolu_sub000001_0",
    )
    assert (meta["agent_type"], meta["description"]) == (
        "general-purpose",
        "Count Python file lines",
    )
    first = agent["messages"][0]["parts"][0]["text"]
    assert first == "Find every Python file in the project and report how many lines each has."
    calls = [p for m in agent["messages"] for p in m["parts"] if p["type"] == "tool_call"]
    assert [(c["name"], c["input"]["command"]) for c in calls] == [("Bash", "wc -l *.py")]


def test_a_failed_codex_command_is_an_error_in_every_export(baton_home: Path) -> None:
    rollout = next((SAMPLES / "codex" / "sessions" / "2026" / "11" / "25").glob("*.jsonl"))
    [made] = run_json("sessions", "import", str(rollout), home=baton_home)["sessions"]
    shown = run_json("sessions", "show", made["id"], home=baton_home)
    results = [p for m in shown["messages"] for p in m["parts"] if p["type"] == "tool_result"]
    assert [(r.get("is_error", False), r.get("exit_code")) for r in results] == [
        (False, None),
        (True, 2),
    ]
    markdown = run_baton("sessions", "export", made["id"], "--format", "markdown", home=baton_home)
    assert "**Tool error** (`call_fake000003_0`, exit 2)" in markdown.stdout
    page = run_baton("sessions", "export", made["id"], "--format", "html", home=baton_home)
    assert 'class="tool-result error"' in page.stdout
    assert '<span class="facts">6 lines · exit 2 · 65 ms</span>' in page.stdout
    exported = run_baton("sessions", "export", made["id"], "--format", "opencode", home=baton_home)
    opencode = json.loads(exported.stdout)
    states = [
        p["state"]
        for m in opencode["messages"]
        for p in m["parts"]
        if p["type"] == "tool" and p["callID"] == "call_fake000003_0"
    ]
    assert [(s["status"], s["metadata"]) for s in states] == [("completed", {"exit": 2})]


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_ids(v)
            for k, v in value.items()
            if k not in ("id", "sessionID", "messageID")
        }
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


@pytest.mark.parametrize("original", [OPENCODE, KILO], ids=["opencode", "kilo"])
def test_an_opencode_session_exported_back_differs_only_where_documented(
    baton_home: Path, original: Path
) -> None:
    [made] = run_json("sessions", "import", str(original), home=baton_home)["sessions"]
    exported = run_baton("sessions", "export", made["id"], "--format", "opencode", home=baton_home)
    theirs, ours = json.loads(original.read_bytes()), json.loads(exported.stdout)
    # documented in docs/exporters.md: new ids (and the parentID of replies, an id), baton
    # as the version, its own metadata, the time of the export as time.updated
    assert ours["info"].pop("version").startswith("baton ")
    theirs["info"].pop("version")
    head = run_json("sessions", "show", made["id"], home=baton_home)["head"]
    assert ours["info"].pop("metadata") == {"baton": {"session": made["id"], "head": head}}
    for doc in (theirs, ours):
        doc["info"]["time"].pop("updated")
        for message in doc["messages"]:
            message["info"].pop("parentID", None)
    assert _without_ids(ours) == _without_ids(theirs)
    # what opencode keeps that baton has no field for came back with the rest
    kinds = {p["type"] for m in ours["messages"] for p in m["parts"]}
    assert kinds == {"text", "tool", "step-start", "step-finish", "patch"}
    assert ours["info"]["model"]["variant"] == "default"


def _long_session(tmp_path: Path) -> tuple[Any, str, str]:
    """A baton service with a session (and its owner) to export in opencode's format."""
    from baton.scanning import SecretScanner
    from baton.service import Service
    from baton.store.blobs import LocalBlobStore
    from baton.store.sqlite import SQLiteStore

    service = Service(
        SQLiteStore(tmp_path / "source" / "baton.db"),
        LocalBlobStore(tmp_path / "source" / "blobs"),
        scanner=SecretScanner({}),
    )
    owner = service.account("source").id
    return service, owner, service.create(owner, title="a long session").id


def _grow(service: Any, owner: str, sid: str, start: int, stop: int) -> None:
    batch = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "parts": [{"type": "text", "text": f"message number {i} " + "word " * 200}],
            "created_at": f"2026-11-01T{9 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
        }
        for i in range(start, stop)
    ]
    service.append(owner, sid, batch)


def _opencode_export(service: Any, owner: str, sid: str, path: Path) -> Path:
    from baton.render.opencode import export_opencode

    path.parent.mkdir(parents=True, exist_ok=True)
    messages = service.messages(owner, sid, hydrate=True)
    path.write_bytes(json.dumps(export_opencode(service.get(owner, sid), messages)).encode())
    return path


def _exported(tmp_path: Path, count: int) -> Path:
    """An opencode export of a session of `count` messages."""
    service, owner, sid = _long_session(tmp_path)
    _grow(service, owner, sid, 0, count)
    return _opencode_export(service, owner, sid, tmp_path / "a" / "export.json")


def test_a_big_opencode_export_is_imported_as_it_is_read_and_grows_the_same_session(
    baton_home: Path, tmp_path: Path
) -> None:
    service, owner, sid = _long_session(tmp_path)
    _grow(service, owner, sid, 0, 300)
    short = _opencode_export(service, owner, sid, tmp_path / "a" / "export.json")
    _grow(service, owner, sid, 300, 700)
    long = _opencode_export(service, owner, sid, tmp_path / "b" / "export.json")
    torn = tmp_path / "c" / "export.json"
    torn.parent.mkdir()
    torn.write_bytes(long.read_bytes()[:-300])

    refused = run_baton("sessions", "import", str(torn), home=baton_home)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: export.json: the JSON ends early (a truncated or half-written file?)"
    ]
    assert run_json("sessions", "list", home=baton_home) == []

    first = run_json("sessions", "import", str(short), home=baton_home)["sessions"][0]
    assert first["created"] and first["messages"] == 300
    grown = run_json("sessions", "import", str(long), home=baton_home)["sessions"][0]
    assert (grown["id"], grown["created"]) == (first["id"], False)
    assert (grown["messages"], grown["messages_imported"]) == (700, 400)
    assert stored_messages(baton_home) == 700
    shown = run_json("sessions", "show", grown["id"], home=baton_home)
    assert shown["task"].startswith("message number 0 word")
    assert shown["metadata"]["source"]["tool"] == "opencode"
    texts = [m["parts"][0]["text"].split(" word")[0] for m in shown["messages"]]
    assert texts == [f"message number {i}" for i in range(700)]


def test_an_import_killed_part_way_leaves_nothing_and_can_be_run_again(
    baton_home: Path, tmp_path: Path
) -> None:
    export = _exported(tmp_path, 4000)
    database = baton_home / "baton.db"
    journal = baton_home / "baton.db-journal"
    run_json("sessions", "list", home=baton_home)  # the store exists
    empty = database.stat().st_size
    process = subprocess.Popen(
        [sys.executable, "-m", "baton", "sessions", "import", str(export)],
        env={**os.environ, "BATON_HOME": str(baton_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # killed once its one transaction has written a good part of the messages (the import has
    # the database alone: into the file, with a rollback journal instead of the WAL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if journal.exists() and database.stat().st_size > empty + 2_000_000:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert process.wait() == -signal.SIGKILL, "the import ended before it could be killed"
    assert run_json("sessions", "list", home=baton_home) == []
    assert not journal.exists()  # rolled back by the next process, which is back on the WAL
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert stored_messages(baton_home) == 0
    verified = run_baton("sessions", "verify", home=baton_home)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = run_json("sessions", "import", str(export), home=baton_home)["sessions"][0]
    assert again["created"] and again["messages"] == 4000


def _on_a_terminal(args: list[str], baton_home: Path) -> tuple[int, str]:
    """`baton ARGS` run in a pty: its exit code, and what the terminal showed (no escapes)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "baton", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "BATON_HOME": str(baton_home), "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    code = process.wait()
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))


def test_a_big_import_shows_its_progress_on_a_terminal(baton_home: Path, tmp_path: Path) -> None:
    export = _exported(tmp_path, 4000)
    size = export.stat().st_size // 1_000_000
    code, text = _on_a_terminal(["sessions", "import", str(export)], baton_home)
    assert code == 0
    assert "importing (MB read)" in text
    assert re.search(rf"\b\d+/{size}\b", text), text
    assert "imported 1 session(s) from opencode (4000 messages)" in text


def test_the_first_share_after_a_big_import_shows_the_scan_it_was_left(
    baton_home: Path, tmp_path: Path
) -> None:
    export = _exported(tmp_path, 4000)
    sid = run_json("sessions", "import", str(export), home=baton_home)["sessions"][0]["id"]
    code, text = _on_a_terminal(["share", sid, "--redact"], baton_home)
    assert code == 0, text
    assert "scanning imported messages for secrets" in text
    assert re.search(r"\b\d+/4000\b", text), text
    assert "/share/" in text
    code, text = _on_a_terminal(["share", sid, "--redact"], baton_home)  # scanned once
    assert code == 0 and "/share/" in text
    assert "scanning imported" not in text
