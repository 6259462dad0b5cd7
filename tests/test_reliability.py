"""Real processes, real files: kill -9, concurrent writers, and bad input that changes nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from baton.config import Settings, build_service
from tests.helpers import run_baton, run_json

ROOT = Path(__file__).resolve().parent.parent


def start_appender(
    home: Path, session_id: str, count: int, label: str, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fixtures.appender",
            str(home),
            session_id,
            str(count),
            label,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def new_session(home: Path) -> str:
    service = build_service(Settings.load(home=str(home)))
    owner = service.account("alice").id
    session_id: str = service.create(owner).id
    service.store.close()
    return session_id


def chain_ids(home: Path, session_id: str) -> list[str]:
    service = build_service(Settings.load(home=str(home)))
    owner = service.account("alice").id
    ids = [m.id for m in service.messages(owner, session_id)]
    service.store.close()
    return ids


@pytest.mark.parametrize("kill_after", [1, 25, 80])
def test_kill_9_loses_no_acknowledged_append(baton_home: Path, kill_after: int) -> None:
    session_id = new_session(baton_home)
    child = start_appender(baton_home, session_id, 100_000, "stream")
    acked: list[str] = []
    assert child.stdout is not None
    while len(acked) < kill_after:
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        acked.append(line.split()[1])
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # whatever was printed after our count was acknowledged too
    acked += [
        line.split()[1] for line in child.stdout.read().splitlines() if line.startswith("ack")
    ]
    stored = chain_ids(baton_home, session_id)
    assert stored[: len(acked)] == acked
    assert len(stored) - len(acked) <= 1  # at most the append that was in flight
    verify = run_baton("sessions", "verify", env={"BATON_USER": "alice"}, home=baton_home)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ok: 1 session(s)")
    conn = sqlite3.connect(baton_home / "baton.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_two_writers_on_one_session_lose_nothing(baton_home: Path) -> None:
    session_id = new_session(baton_home)
    go = baton_home / "go"
    children = [
        start_appender(baton_home, session_id, 150, label, str(go)) for label in ("left", "right")
    ]
    for child in children:  # both are up and waiting: start them at the same moment
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    go.touch()
    outputs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0, 0], [o[1] for o in outputs]
    acked = [
        line.split()[1] for out, _ in outputs for line in out.splitlines() if line.startswith("ack")
    ]
    conflicts = sum(
        int(line.split()[1])
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("conflicts")
    )
    assert len(acked) == 300
    stored = chain_ids(baton_home, session_id)
    assert sorted(stored) == sorted(acked)  # every acknowledged append, exactly once
    assert len(set(stored)) == 300
    service = build_service(Settings.load(home=str(baton_home)))
    chain = service.store.chain(stored[-1])
    assert [m.parent for m in chain] == [None, *stored[:-1]]  # linear
    assert conflicts > 0  # the loser saw a conflict and retried
    assert service.verify().ok


def snapshot(home: Path) -> tuple[object, ...]:
    """Everything a user could see in the store: row counts and every session's export."""
    conn = sqlite3.connect(home / "baton.db")
    counts = tuple(
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("messages", "sessions", "shares", "accounts")
    )
    heads = tuple(conn.execute("SELECT id, head, version, title FROM sessions ORDER BY id"))
    shares = tuple(conn.execute("SELECT id, revoked_at FROM shares ORDER BY id"))
    conn.close()
    return counts, heads, shares


@pytest.mark.slow
def test_bad_input_changes_nothing(baton_home: Path, tmp_path: Path) -> None:
    alice = {"BATON_USER": "alice"}
    session = run_json("sessions", "new", "--title", "kept", home=baton_home, env=alice)
    sid = session["id"]
    run_json(
        "sessions", "append", sid, "--role", "user", "--text", "hello", home=baton_home, env=alice
    )
    share = run_json("share", sid, home=baton_home, env=alice)
    revoked = run_json("share", sid, home=baton_home, env=alice)
    run_json("unshare", revoked["id"], home=baton_home, env=alice)
    export = run_baton("sessions", "export", sid, home=baton_home, env=alice).stdout.encode()
    bob_sid = run_json("sessions", "new", home=baton_home, env={"BATON_USER": "bob"})["id"]
    before = snapshot(baton_home)

    files = {
        "truncated.json": export[: len(export) // 2],
        "empty.json": b"",
        "garbage.json": bytes(range(256)) * 4,
        "wrong.json": orjson.dumps(
            {
                "format": "baton-session",
                "version": 1,
                "session": {},
                "messages": [{"role": "user", "parts": "nope"}],
            }
        ),
        "torn-last-line.json": export.rstrip()[:-3],
        "bad-append.json": b'{"role": "user", "parts": [',
        "bad-role.json": b'{"role": "wizard", "parts": [{"type": "text", "text": "x"}]}',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    big = tmp_path / "big.json"
    big.write_bytes(
        orjson.dumps(
            {"role": "user", "parts": [{"type": "text", "text": "z" * (17 * 1024 * 1024)}]}
        )
    )
    cases = [
        (["sessions", "import", str(tmp_path / "truncated.json")], 2, "not valid JSON"),
        (["sessions", "import", str(tmp_path / "torn-last-line.json")], 2, "the JSON ends early"),
        (["sessions", "import", str(tmp_path / "empty.json")], 2, "empty"),
        (["sessions", "import", str(tmp_path / "garbage.json")], 2, "not valid JSON"),
        (["sessions", "import", str(tmp_path / "wrong.json")], 2, "created_at is missing"),
        (["sessions", "import", str(tmp_path / "missing.json")], 2, "cannot read"),
        (
            ["sessions", "append", sid, "--file", str(tmp_path / "bad-append.json")],
            2,
            "not valid JSON",
        ),
        (
            ["sessions", "append", sid, "--file", str(tmp_path / "bad-role.json")],
            2,
            "role must be one of",
        ),
        (["sessions", "append", sid, "--file", str(big)], 1, "16 MiB"),
        (["sessions", "append", sid, "--role", "user"], 2, "give --role and --text"),
        (
            [
                "sessions",
                "append",
                sid,
                "--role",
                "user",
                "--text",
                "x",
                "--expected-head",
                "m_" + "0" * 64,
            ],
            1,
            "is not a message of this session",
        ),
        (["sessions", "show", "ses_01JUNKJUNKJUNKJUNKJUNKJUNK"], 1, "no session"),
        (["sessions", "show", bob_sid], 1, "no session"),
        (["sessions", "append", bob_sid, "--role", "user", "--text", "x"], 1, "no session"),
        (["sessions", "rename", bob_sid, "mine"], 1, "no session"),
        (["sessions", "delete", bob_sid, "--yes"], 1, "no session"),
        (["share", bob_sid], 1, "no session"),
        (["fork", bob_sid], 1, "no session"),
        (["sessions", "delete", sid, "--yes"], 1, "live share"),
        (["fork", revoked["id"]], 1, "was revoked"),
        (["fork", "A" * 23], 1, "no share"),
        (["unshare", "B" * 23], 1, "no share"),
        (["share", sid, "--expires", "soon"], 2, "not a duration"),
        (["sessions", "update", sid, "--if-version", "1", "--status", "done"], 1, "version"),
        (["sessions", "update", sid, "--metadata", "{bad"], 2, "not valid JSON"),
    ]
    for args, code, message in cases:
        result = run_baton(*args, home=baton_home, env=alice)
        assert result.returncode == code, (args, result.returncode, result.stderr)
        assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], (
            args,
            result.stderr,
        )
    assert snapshot(baton_home) == before
    assert share["url"].endswith(f"/share/{share['id']}")


def test_an_expired_share_is_gone_and_changes_nothing(baton_home: Path) -> None:
    service = build_service(Settings.load(home=str(baton_home)))
    owner = service.account("alice").id
    session = service.create(owner)
    service.append(owner, session.id, [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}])
    real_now = service.now
    service.now = lambda: "2020-01-01T00:00:00.000000Z"
    share = service.share(owner, session.id, expires="1h")  # expired since 2020
    service.now = real_now
    service.store.close()
    before = snapshot(baton_home)
    started = time.monotonic()
    result = run_baton("fork", share.id, home=baton_home, env={"BATON_USER": "bob"})
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: share {share.id} was expired"
    # bob's account is created by the call; nothing else changes
    counts, heads, shares = snapshot(baton_home)
    assert (counts[:3], heads, shares) == (before[0][:3], before[1], before[2])
