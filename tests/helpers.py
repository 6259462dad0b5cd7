"""Builders shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson


def text_message(role: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "text": text}], **extra}


def tool_turn(call_id: str, name: str, args: dict[str, Any], output: str) -> list[dict[str, Any]]:
    """An assistant tool call and its result, as two messages."""
    return [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": call_id, "name": name, "input": args}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_result", "tool_call_id": call_id, "output": output}],
        },
    ]


def run_baton(
    *args: str,
    home: Path,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `baton` command line in a subprocess with BATON_HOME=home."""
    full_env = {**os.environ, "BATON_HOME": str(home), "COLUMNS": "200", **(env or {})}
    full_env.pop("BATON_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "baton", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        cwd=cwd,
    )


def run_json(*args: str, home: Path, **kw: Any) -> Any:
    result = run_baton(*args, "--json", home=home, **kw)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def stored_ids(service: Any) -> set[str]:
    """Every message id in the store, whoever reaches it: the rows of its database, read
    over a connection of our own (the memory store lists what it holds)."""
    import sqlite3

    import psycopg

    from baton.store.memory import MemoryStore
    from baton.store.postgres import PostgresStore
    from baton.store.sqlite import SQLiteStore

    store = service.store
    if isinstance(store, MemoryStore):
        return store.message_ids()
    if isinstance(store, PostgresStore):
        with psycopg.connect(store.url) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM messages")}
    assert isinstance(store, SQLiteStore)
    conn = sqlite3.connect(store.path)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM messages")}
    finally:
        conn.close()


def streamed_turns() -> list[dict[str, Any]]:
    """Two answers the agent streamed and stored in chunks (text parts marked "partial"): one
    finished by its last message ("e four", with the usage), one cut short before the user
    spoke again."""

    def chunk(text: str) -> dict[str, Any]:
        return {"role": "assistant", "parts": [{"type": "text", "text": text, "partial": True}]}

    return [
        text_message("user", "Count to four"),
        chunk("one tw"),
        chunk("o thr"),
        chunk("e"),
        {
            **text_message("assistant", "e four", model="qwen-coder"),
            "usage": {"input_tokens": 120, "output_tokens": 7},
        },
        text_message("user", "And on?"),
        chunk("five s"),
        chunk("ix"),
        text_message("user", "Stop"),
    ]
