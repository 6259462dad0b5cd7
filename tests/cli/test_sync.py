"""`baton sync` as a user runs it: a Claude Code transcript and a Codex rollout written line by
line while it runs grow one baton session each, within a second of each write; a torn last
line is stored only once it is whole; `--once` goes on where it stopped; `--install` writes a
systemd user unit."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.importers.claude_code import IMPORTER as CLAUDE
from baton.importers.codex import IMPORTER as CODEX
from tests.helpers import run_baton, run_json

SAMPLES = Path(__file__).resolve().parent.parent / "importers" / "samples"
CLAUDE_MAIN = next((SAMPLES / "claude-code").rglob("ac5220f9-*.jsonl"))
CODEX_MAIN = next((SAMPLES / "codex").rglob("rollout-*cce1*.jsonl"))


def user_env(home: Path) -> dict[str, str]:
    """The tools' places under `home`, whatever the machine running the tests has set."""
    return {
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": "",
        "CODEX_HOME": "",
        "XDG_DATA_HOME": "",
        "XDG_CONFIG_HOME": "",
    }


def counts(importer: Any, source: Path, tmp: Path) -> list[int]:
    """The messages of the source's (first) session after each of its lines, as an import
    of the file cut there reads them (0 before there is a session)."""
    lines = source.read_bytes().splitlines(keepends=True)
    out = []
    for n in range(1, len(lines) + 1):
        cut = tmp / source.name
        cut.write_bytes(b"".join(lines[:n]))
        try:
            sessions = importer.read(cut).sessions
        except Exception:
            sessions = []
        out.append(len(sessions[0].messages) if sessions else 0)
    cut.unlink()
    return out


class Running:
    """`baton sync --json` in the background; its change lines as they come."""

    def __init__(self, baton_home: Path, env: dict[str, str]) -> None:
        full = {**os.environ, "BATON_HOME": str(baton_home), **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "baton", "sync", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self.lines.put(orjson.loads(raw))

    def until(self, count: int, timeout: float = 5.0) -> dict[str, Any]:
        """The first change whose session has `count` messages."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no change with {count} messages in {timeout} s")
            try:
                change = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert "error" not in change, change
            if change["sessions"] and change["sessions"][0]["messages"] == count:
                return change

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        return err.decode()


@pytest.fixture
def running(baton_home: Path, tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    home = tmp_path / "user-home"
    home.mkdir()
    sync = Running(baton_home, user_env(home))
    yield sync, home
    sync.stop()


@pytest.mark.parametrize(
    ("importer", "source", "place"),
    [
        (CLAUDE, CLAUDE_MAIN, ".claude/projects/-home-dev-project"),
        (CODEX, CODEX_MAIN, ".codex/sessions/2026/11/24"),
    ],
    ids=["claude-code", "codex"],
)
def test_a_file_written_line_by_line_grows_one_session_within_a_second(
    running: tuple[Running, Path],
    baton_home: Path,
    tmp_path: Path,
    importer: Any,
    source: Path,
    place: str,
) -> None:
    sync, home = running
    expected = counts(importer, source, tmp_path)
    live = home / place / source.name
    live.parent.mkdir(parents=True)
    lines = source.read_bytes().splitlines(keepends=True)
    seen: set[str] = set()
    slowest = 0.0
    last = 0
    with live.open("ab") as out:
        for n, line in enumerate(lines):
            if n == len(lines) // 2:
                # a torn write: half a line, stored only when the rest arrives
                out.write(line[: len(line) // 2])
                out.flush()
                time.sleep(1.2)
                assert all(
                    c["sessions"][0]["messages"] == last for c in _drain(sync) if c["sessions"]
                )
                written = time.monotonic()
                out.write(line[len(line) // 2 :])
            else:
                written = time.monotonic()
                out.write(line)
            out.flush()
            if expected[n] != last and expected[n]:
                change = sync.until(expected[n])
                if last:  # (the first import also makes the store)
                    slowest = max(slowest, time.monotonic() - written)
                seen.add(change["sessions"][0]["id"])
                last = expected[n]
    assert slowest < 1.0
    assert len(seen) == 1
    # The last lines change no count (Codex's token usage of the last reply): wait until
    # sync stored them too, the head an import of the whole file has elsewhere.
    elsewhere = tmp_path / "elsewhere"
    run_json("sessions", "import", str(source), home=elsewhere)
    [whole] = run_json("sessions", "list", home=elsewhere)
    deadline = time.monotonic() + 10
    while (session := run_json("sessions", "list", home=baton_home)[0])["head"] != whole["head"]:
        assert time.monotonic() < deadline, "sync did not store the file's last lines"
        time.sleep(0.1)
    assert session["id"] in seen and session["message_count"] == expected[-1]
    assert len(run_json("sessions", "list", home=baton_home)) == 1
    imported = run_json("sessions", "import", str(source), home=baton_home)
    assert (imported["sessions_created"], imported["messages_imported"]) == (0, 0)


def _drain(sync: Running) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(sync.lines.get_nowait())
        except queue.Empty:
            return out


def test_once_goes_on_where_it_stopped(baton_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "user-home"
    live = home / ".codex" / "sessions" / CODEX_MAIN.name
    live.parent.mkdir(parents=True)
    lines = CODEX_MAIN.read_bytes().splitlines(keepends=True)
    live.write_bytes(b"".join(lines[:30]))
    env = user_env(home)
    first = run_json("sync", "--once", home=baton_home, env=env)
    assert (first["files"], first["sessions_created"]) == (1, 1)
    [made] = first["changes"][0]["sessions"]
    again = run_json("sync", "--once", home=baton_home, env=env)
    assert (again["changes"], again["messages_imported"]) == ([], 0)  # nothing changed
    live.write_bytes(b"".join(lines))
    grown = run_json("sync", "--once", home=baton_home, env=env)
    [after] = grown["changes"][0]["sessions"]
    assert (after["id"], after["messages"], after["created"]) == (made["id"], 20, False)
    assert grown["messages_imported"] == after["messages_imported"] > 0
    text = run_baton("sync", "--once", home=baton_home, env=env)
    assert text.stdout == "1 file(s) followed; 0 new session(s), 0 message(s) added\n"


def test_a_configured_path_is_followed(baton_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / CLAUDE_MAIN.name).write_bytes(CLAUDE_MAIN.read_bytes())
    env = {**user_env(tmp_path / "empty-home"), "BATON_SYNC_PATHS": str(folder)}
    result = run_json("sync", "--once", home=baton_home, env=env)
    assert result["files"] == 1
    [change] = result["changes"]
    assert (change["format"], change["sessions"][0]["messages"]) == ("claude-code", 20)


def test_install_writes_a_systemd_user_unit(baton_home: Path, tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"XDG_CONFIG_HOME": str(config)}
    result = run_json("sync", "--install", home=baton_home, env=env)
    unit = config / "systemd" / "user" / "baton-sync.service"
    assert result == {
        "unit": str(unit),
        "enable": "systemctl --user daemon-reload && systemctl --user enable --now "
        "baton-sync.service",
    }
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m baton --home {baton_home} sync\n" in text
    assert "WantedBy=default.target" in text


def test_after_login_sync_grows_the_session_on_the_server(baton_home: Path, tmp_path: Path) -> None:
    from tests.fixtures.servers import start_serve, stop

    served = start_serve(tmp_path / "server-home")
    try:
        login = run_baton("login", served.url, "--token", served.token, home=baton_home)
        assert login.returncode == 0, login.stderr
        home = tmp_path / "user-home"
        live = home / ".claude" / "projects" / "-home-dev-project" / CLAUDE_MAIN.name
        live.parent.mkdir(parents=True)
        lines = CLAUDE_MAIN.read_bytes().splitlines(keepends=True)
        live.write_bytes(b"".join(lines[:20]))
        env = user_env(home)
        first = run_json("sync", "--once", home=baton_home, env=env)
        [made] = first["changes"][0]["sessions"]
        live.write_bytes(b"".join(lines))
        grown = run_json("sync", "--once", home=baton_home, env=env)
        [after] = grown["changes"][0]["sessions"]
        assert (after["id"], after["created"], after["messages"]) == (made["id"], False, 20)
        [listed] = run_json("sessions", "list", home=baton_home)  # the server's list
        assert (listed["id"], listed["message_count"]) == (made["id"], 20)
    finally:
        stop(served)


def test_a_growing_sub_agent_file_grows_its_session(baton_home: Path, tmp_path: Path) -> None:
    sample = SAMPLES / "claude-code" / "projects" / "-home-dev-runs-claude-subagent-project"
    home = tmp_path / "user-home"
    project = home / ".claude" / "projects" / sample.name
    shutil.copytree(sample, project)
    agent = next(project.rglob("agent-*.jsonl"))
    lines = agent.read_bytes().splitlines(keepends=True)
    agent.write_bytes(b"".join(lines[:2]))
    env = user_env(home)
    first = run_json("sync", "--once", home=baton_home, env=env)
    assert first["files"] == 1  # the transcript; its sub-agent comes with it
    main, sub = first["changes"][0]["sessions"]
    assert (main["messages"], sub["messages"]) == (4, 2)
    agent.write_bytes(b"".join(lines))
    again = run_json("sync", "--once", home=baton_home, env=env)
    grown = {s["id"]: s for s in again["changes"][0]["sessions"]}
    assert grown[sub["id"]]["messages"] == 4 and not grown[sub["id"]]["created"]
    assert grown[main["id"]]["messages_imported"] == 0
