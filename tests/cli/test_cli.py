"""The command line as a user drives it: JSON shapes, tables, exit codes, one-line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import orjson
import pytest

from baton.cli.main import cli, main
from baton.store.sqlite import SQLiteStore
from tests.helpers import run_baton, streamed_turns
from tests.server.test_share_attachments import document

FAKE_KEY = "sk-proj-" + "Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9Ed8Cb7A"


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> Any:
        return orjson.loads(self.out)


@pytest.fixture
def baton(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `baton ARGS…` in this process through the real entry point."""

    def run(*args: str) -> Result:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    return result


def test_new_show_list_json_shapes(baton: Any) -> None:
    new = ok(baton("sessions", "new", "--task", "fix login", "--json")).json()
    assert re.fullmatch(r"ses_[0-9A-Z]{26}", new["id"])
    sid = new["id"]
    ok(baton("sessions", "append", sid, "--role", "user", "--text", "Why does login fail?"))
    head = ok(
        baton(
            "sessions", "append", sid, "--role", "assistant", "--text", "Cookies.", "--model", "m1"
        )
    ).out.strip()
    shown = ok(baton("sessions", "show", sid, "--json")).json()
    assert shown["id"] == sid and shown["head"] == head
    assert shown["title"] == "Why does login fail?" and shown["forked_from"] is None
    assert [(m["role"], m["parts"]) for m in shown["messages"]] == [
        ("user", [{"type": "text", "text": "Why does login fail?"}]),
        ("assistant", [{"type": "text", "text": "Cookies."}]),
    ]
    assert shown["messages"][1]["parent"] == shown["messages"][0]["id"]
    assert shown["messages"][1]["id"] == head
    listed = ok(baton("sessions", "list", "--json")).json()
    assert isinstance(listed, list) and [s["id"] for s in listed] == [sid]
    assert "messages" not in listed[0] and listed[0]["message_count"] == 2


def test_human_output(baton: Any) -> None:
    sid = ok(baton("sessions", "new", "--title", "Fix the login bug")).out.strip()
    assert ok(baton("sessions", "list")).out.count("Fix the login bug") == 1
    assert ok(baton("sessions", "list")).out.startswith("┏")  # a rich table
    ok(baton("sessions", "append", sid, "--role", "user", "--text", "hello there"))
    shown = ok(baton("sessions", "show", sid)).out
    assert "Fix the login bug" in shown and "#1 user" in shown and "hello there" in shown
    assert ok(baton("sessions", "list", "-q", "nothing-like-this")).out.strip() == (
        "no sessions match 'nothing-like-this'"
    )


def test_show_joins_a_streamed_answer(baton: Any, tmp_path: Path) -> None:
    sid = ok(baton("sessions", "new", "--title", "Counting")).out.strip()
    turns = tmp_path / "turns.json"
    turns.write_bytes(orjson.dumps({"messages": streamed_turns()}))
    ok(baton("sessions", "append", sid, "--file", str(turns)))
    for args in ((), ("--full",)):
        shown = ok(baton("sessions", "show", sid, *args)).out
        conversation = shown[shown.index("\n#1 ") :]
        assert re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "T", conversation) == (
            "\n#1 user T\nCount to four\n"
            "\n#2–#5 assistant · qwen-coder T\none two three four\n"
            "\n#6 user T\nAnd on?\n"
            "\n#7–#8 assistant T\nfive six\n"
            "\n#9 user T\nStop\n"
        )
        assert "messages  9" in shown  # the stored count
    # --last that starts inside the streamed answer shows the answer whole
    last = ok(baton("sessions", "show", sid, "--last", "6")).out
    assert "\n#2–#5 assistant · qwen-coder " in last and "one two three four\n" in last
    assert "#1 user" not in last and "\n#7–#8 assistant " in last
    assert "#3–#5" not in ok(baton("sessions", "show", sid, "--last", "7")).out
    raw = ok(baton("sessions", "show", sid, "--json")).json()["messages"]
    assert [m["parts"][0]["text"] for m in raw] == [
        "Count to four", "one tw", "o thr", "e", "e four", "And on?", "five s", "ix", "Stop"
    ]  # fmt: skip
    assert [m["parts"][0].get("partial", False) for m in raw].count(True) == 5


def test_append_from_a_file_with_expected_head(baton: Any, tmp_path: Path) -> None:
    sid = ok(baton("sessions", "new")).out.strip()
    turn = tmp_path / "turn.json"
    turn.write_bytes(
        orjson.dumps(
            {
                "expected_head": None,
                "messages": [
                    {
                        "role": "user",
                        "created_at": "2026-11-24T10:00:00Z",
                        "parts": [{"type": "text", "text": "run the tests"}],
                    },
                    {
                        "role": "assistant",
                        "created_at": "2026-11-24T10:00:01Z",
                        "parts": [
                            {
                                "type": "tool_call",
                                "id": "c1",
                                "name": "bash",
                                "input": {"cmd": "pytest"},
                            }
                        ],
                    },
                    {
                        "role": "tool",
                        "created_at": "2026-11-24T10:00:02Z",
                        "parts": [
                            {"type": "tool_result", "tool_call_id": "c1", "output": "3 passed"}
                        ],
                    },
                ],
            }
        )
    )  # with their times, a re-send is the same messages: a retry adds nothing
    first = ok(baton("sessions", "append", sid, "--file", str(turn), "--json")).json()
    assert first["id"] == sid and first["message_count"] == 3 and len(first["appended"]) == 3
    again = ok(baton("sessions", "append", sid, "--file", str(turn), "--json")).json()
    assert again["appended"] == [] and again["head"] == first["head"]
    stale = baton(
        "sessions",
        "append",
        sid,
        "--role",
        "user",
        "--text",
        "x",
        "--expected-head",
        first["appended"][0],
    )
    assert stale.code == 1
    assert stale.err.strip() == (
        f"error: the session moved on: its head is {first['head']}, not {first['appended'][0]}"
    )


def test_show_and_list_keep_a_forks_own_cost_apart(baton: Any, tmp_path: Path) -> None:
    sid = ok(baton("sessions", "new", "--title", "Costly")).out.strip()
    reply = tmp_path / "reply.json"
    reply.write_bytes(
        orjson.dumps(
            {
                "role": "assistant",
                "parts": [{"type": "text", "text": "hi"}],
                "usage": {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096},
            }
        )
    )
    ok(baton("sessions", "append", sid, "--file", str(reply)))
    fork = ok(baton("fork", sid, "--json")).json()
    assert (fork["own"]["cost_usd"], fork["inherited"]["cost_usd"]) == (0.0, 0.00096)
    assert fork["totals"]["cost_usd"] == 0.00096  # the whole chain's, as before
    lines = ok(baton("sessions", "show", fork["id"])).out.splitlines()
    assert "      tokens  0 in / 0 out, $0.0000 own" in lines
    assert "   inherited  900 in / 12 out, $0.0010" in lines
    assert "      tokens  900 in / 12 out, $0.0010" in ok(baton("sessions", "show", sid)).out
    listed = ok(baton("sessions", "list")).out.splitlines()
    rows = {line.split("│")[1].strip(): line.split("│") for line in listed if "│ses_" in line}
    assert [c.strip() for c in rows[fork["id"]][-3:-1]] == ["$0.0000", "$0.0010"]
    assert [c.strip() for c in rows[sid][-3:-1]] == ["$0.0010", "-"]
    assert listed[-1] == "2 sessions, own cost $0.0010"  # each message counted once


def test_share_json_and_refusal(baton: Any) -> None:
    sid = ok(baton("sessions", "new")).out.strip()
    ok(baton("sessions", "append", sid, "--role", "user", "--text", "hello"))
    share = ok(baton("share", sid, "--expires", "7d", "--json")).json()
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{22}", share["id"])
    assert share["url"].endswith(f"/share/{share['id']}")
    assert share["expires_at"] and share["command"] == f"baton --fork {share['url']}"
    ok(baton("sessions", "append", sid, "--role", "user", "--text", f"key={FAKE_KEY}"))
    refused = baton("share", sid, "--json")
    assert refused.code == 1
    error = refused.json()["error"]
    assert error["code"] == "secrets_found"
    assert [(f["where"], f["kind"]) for f in error["findings"]] == [("message 2", "OpenAI Token")]
    assert FAKE_KEY not in refused.out + refused.err
    assert refused.err.startswith("error: this session holds 1 secret(s); nothing was shared")
    human = baton("share", sid)
    assert human.code == 1 and "message 2: OpenAI Token sk-p" in human.out
    redacted = ok(baton("share", sid, "--redact", "--json")).json()
    assert redacted["redacted"][0]["kind"] == "OpenAI Token"
    forked = ok(baton("fork", redacted["url"], "--json")).json()
    shown = ok(baton("sessions", "show", forked["id"], "--json")).json()
    assert shown["messages"][-1]["parts"][0]["text"] == "key=[REDACTED:OpenAI Token]"
    allowed = ok(baton("share", sid, "--allow-secrets", "--json")).json()
    assert allowed["redacted"] == []


def test_shares_unshare_and_fork(baton: Any) -> None:
    sid = ok(baton("sessions", "new")).out.strip()
    first = ok(baton("sessions", "append", sid, "--role", "user", "--text", "one")).out.strip()
    ok(baton("sessions", "append", sid, "--role", "assistant", "--text", "two"))
    share = ok(baton("share", sid, "--json")).json()
    states = ok(baton("shares", "--json")).json()
    assert [(s["id"], s["state"]) for s in states] == [(share["id"], "live")]
    assert ok(baton("unshare", share["id"])).out.strip() == f"revoked {share['id']}"
    assert ok(baton("shares", "--json")).json()[0]["state"] == "revoked"
    gone = baton("fork", share["id"])
    assert gone.code == 1 and gone.err.strip() == f"error: share {share['id']} was revoked"
    early = ok(baton("fork", sid, "--at", first, "--json")).json()
    assert early["message_count"] == 1 and early["forked_from"] == {
        "session": sid,
        "message": first,
    }
    assert ok(baton("shares")).out.count(share["id"]) == 1


def test_rename_update_delete(baton: Any) -> None:
    sid = ok(baton("sessions", "new")).out.strip()
    assert (
        ok(baton("sessions", "rename", sid, "Better name")).out.strip()
        == f"renamed {sid}: Better name"
    )
    updated = ok(
        baton(
            "sessions",
            "update",
            sid,
            "--status",
            "done",
            "--metadata",
            '{"mode": "plan"}',
            "--if-version",
            "2",
            "--json",
        )
    ).json()
    assert (updated["status"], updated["metadata"], updated["version"]) == (
        "done",
        {"mode": "plan"},
        3,
    )
    ok(baton("sessions", "append", sid, "--role", "user", "--text", "x"))
    share = ok(baton("share", sid, "--json")).json()
    refused = baton("sessions", "delete", sid, "--yes")
    assert refused.code == 1 and share["id"] in refused.err and "--revoke-shares" in refused.err
    deleted = ok(baton("sessions", "delete", sid, "--revoke-shares", "--json")).json()
    assert deleted == {"id": sid, "deleted": True, "revoked_shares": [share["id"]]}
    assert baton("sessions", "show", sid).code == 1


def test_export_import_verify(baton: Any, tmp_path: Path) -> None:
    sid = ok(baton("sessions", "new", "--title", "Export me")).out.strip()
    ok(baton("sessions", "append", sid, "--role", "user", "--text", "the prompt"))
    ok(baton("sessions", "append", sid, "--role", "assistant", "--text", "x" * 70_000))
    markdown = ok(baton("sessions", "export", sid, "--format", "markdown")).out
    assert (
        markdown.startswith("# Export me\n") and "## User" in markdown and "the prompt" in markdown
    )
    out = tmp_path / "s.json"
    ok(baton("sessions", "export", sid, "-o", str(out)))
    doc = orjson.loads(out.read_bytes())
    assert (
        doc["format"] == "baton-session" and len(doc["messages"][1]["parts"][0]["text"]) == 70_000
    )
    again = ok(baton("sessions", "import", str(out), "--json")).json()
    assert again["created"] is False and again["id"] == sid
    verify = ok(baton("sessions", "verify", "--json")).json()
    assert verify == {"sessions": 1, "shares": 0, "messages": 2, "problems": [], "ok": True}
    assert ok(baton("gc", "--json")).json() == {"messages_deleted": 0, "blobs_deleted": 0}


def test_list_pages_through_everything(baton: Any) -> None:
    ids = [ok(baton("sessions", "new", "--title", f"s{i}")).out.strip() for i in range(5)]
    page = ok(baton("sessions", "list", "--limit", "2"))
    assert "more: baton sessions list --cursor" in page.out
    everything = ok(baton("sessions", "list", "--limit", "2", "--all", "--json")).json()
    assert [s["id"] for s in everything] == list(reversed(ids))
    cursor = page.out.split("--cursor ")[1].split()[0]
    nxt = ok(baton("sessions", "list", "--limit", "2", "--cursor", cursor, "--json")).json()
    assert [s["id"] for s in nxt] == list(reversed(ids))[2:4]
    bad = baton("sessions", "list", "--cursor", "!!!")
    assert bad.code == 2 and bad.err.startswith("error: cursor")


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_command_has_help_with_an_example_and_json(baton: Any) -> None:
    for command in _commands(cli):
        result = ok(baton(*command, "--help"))
        assert "Example" in result.out, command
        if command not in (("sessions", "export"), ("serve",), ("worker",), ("users", "passwd")):
            assert "--json" in result.out, command


def test_usage_errors_exit_2_without_traceback(baton: Any) -> None:
    for args in (
        ["sessions", "frobnicate"],
        ["sessions", "show"],
        ["share", "x", "--expires"],
        ["sessions", "list", "--limit", "0"],
    ):
        result = baton(*args)
        assert result.code == 2, args
        assert "Traceback" not in result.err


def test_the_real_command_runs_as_a_process(baton_home: Path) -> None:
    result = run_baton("--version", home=baton_home)
    assert result.returncode == 0 and result.stdout.strip() == "baton, version 0.1.0"
    result = run_baton("sessions", "show", "ses_01JUNKJUNKJUNKJUNKJUNKJUNK", home=baton_home)
    assert result.returncode == 1
    assert result.stderr == "error: no session ses_01JUNKJUNKJUNKJUNKJUNKJUNK\n"


def test_a_relative_baton_home_keeps_blobs_under_it(
    baton: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BATON_HOME", "home")  # relative to the working directory
    sid = ok(baton("sessions", "new", "--title", "big output")).out.strip()
    ok(baton("sessions", "append", sid, "--role", "tool", "--text", "x" * 70_000))
    blobs = [p for p in (tmp_path / "cwd" / "home" / "blobs").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in blobs] == [b"x" * 70_000]
    assert not Path("/blobs").exists()


def test_a_file_blob_url_with_a_host_is_refused(
    baton: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_BLOB_URL", "file://home/blobs")
    result = baton("sessions", "new", "--title", "nowhere")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "error: blob URL 'file://home/blobs' names a host (home): use file:///ABSOLUTE/PATH\n"
    )


def test_a_bad_trusted_proxy_is_refused_before_serving(
    baton: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_TRUSTED_PROXIES", "10.0.0.1,10.0.0.300")
    result = baton("serve", "--port", "0")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        "error: BATON_TRUSTED_PROXIES: '10.0.0.300' is not an IP address or CIDR "
        "(use e.g. 10.0.0.5,10.1.0.0/16)\n"
    )


def test_version_starts_without_loading_the_heavy_modules() -> None:
    """`baton --version` (and so every command's start) loads click and the CLI's own modules,
    nothing more: the store, the service, the server, the agent and their libraries are
    imported by the commands that use them."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "from baton.cli.main import main\n"
        "main(['--version'])\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version, printed = done.stdout.splitlines()
    assert version == "baton, version 0.1.0"
    modules = set(orjson.loads(printed))
    tops = {m.split(".")[0] for m in modules}
    assert tops - set(sys.stdlib_module_names) == {"baton", "click"}
    assert not tops & {"sqlite3", "asyncio", "multiprocessing", "concurrent"}
    ours = {m for m in modules if m.split(".")[0] == "baton" and not m.startswith("baton.cli")}
    assert ours == {"baton", "baton.core", "baton.core.errors"}


PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
S3_URL = "s3://bucket?endpoint=http://127.0.0.1:9"
NO_PSYCOPG = "error: a postgresql:// store needs psycopg, which is not installed: pip install 'baton[postgres]'"
NO_POOL = NO_PSYCOPG.replace("psycopg,", "psycopg_pool,")
NO_OBSTORE = (
    "error: an s3:// blob store needs obstore, which is not installed: pip install 'baton[s3]'"
)


@pytest.mark.parametrize(
    ("missing", "env", "args", "message"),
    [
        ("psycopg", {"BATON_DATABASE_URL": PG_URL}, ["sessions", "list"], NO_PSYCOPG),
        ("psycopg_pool", {"BATON_DATABASE_URL": PG_URL}, ["sessions", "list"], NO_POOL),
        ("psycopg", {"BATON_DATABASE_URL": PG_URL}, ["migrate", "--list"], NO_PSYCOPG),
        ("psycopg", {"BATON_DATABASE_URL": PG_URL}, ["migrate"], NO_PSYCOPG),
        ("obstore", {"BATON_BLOB_URL": S3_URL}, ["sessions", "list"], NO_OBSTORE),
        (
            "psycopg",
            {},
            ["copy", "--from", "memory://", "--to", PG_URL, "--to-blobs", "memory://"],
            NO_PSYCOPG,
        ),
        (
            "obstore",
            {},
            ["copy", "--from", "memory://", "--to", "memory://", "--to-blobs", S3_URL],
            NO_OBSTORE,
        ),
    ],
    ids=["psycopg", "psycopg_pool", "migrate-list", "migrate", "obstore", "copy-pg", "copy-s3"],
)
def test_a_team_backend_without_its_extra_installed_is_one_line(
    baton_home: Path, missing: str, env: dict[str, str], args: list[str], message: str
) -> None:
    """psycopg, psycopg-pool and obstore are the `postgres` and `s3` extras: a laptop install
    has none of them, and pointing baton at such a store says what to install. The library is
    made missing in the subprocess (None in sys.modules stops its import)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "from baton.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    full_env = {**os.environ, "BATON_HOME": str(baton_home), **env}
    for name in ("BATON_DEBUG", "BATON_DATABASE_URL", "BATON_BLOB_URL"):
        if name not in env:
            full_env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=full_env
    )
    assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", "")


# `baton sessions verify --rescan`: messages scanned for secrets with older rules (before baton
# read attached files) are rescanned once.


def test_verify_rescan_flags_what_older_rules_missed_once(
    baton: Any, baton_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "attachments.json"
    path.write_bytes(orjson.dumps(document()))
    sid = ok(baton("sessions", "import", str(path), "--json")).json()["id"]
    store = SQLiteStore(baton_home / "baton.db")
    store.set_findings([(sm.message.id, [], None) for sm in store.messages_in_order(None, 100)])
    store.set_scan_rules(1)
    store.close()
    done = ok(baton("sessions", "verify", "--rescan", "--json")).json()
    assert done == {
        "sessions": 1,
        "shares": 0,
        "messages": 7,
        "problems": [],
        "ok": True,
        "rescan": {"rules": 2, "was": 1, "rescanned": 7, "flagged": 5, "exposed_shares": []},
    }
    refused = baton("share", sid, "--json")
    assert refused.code == 1
    assert "this session holds 5 secret(s); nothing was shared" in refused.err
    again = ok(baton("sessions", "verify", "--rescan"))
    assert again.out == (
        "secret-scan rules version 2: nothing to rescan\n"
        "ok: 1 session(s), 0 share(s), 7 message(s) verified\n"
    )


def test_links_printed_beside_a_running_server_name_the_address_it_serves(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    from tests.fixtures.servers import start_serve, stop
    from tests.helpers import run_json

    home = tmp_path / "home"
    served = start_serve(home, "--runners", "0")
    try:
        sid = run_json("sessions", "new", "--task", "fix login", home=home)["id"]
        run_json("sessions", "append", sid, "--role", "user", "--text", "hi", home=home)
        shared = run_json("share", sid, home=home)
        assert shared["url"].startswith(f"{served.url}/share/"), shared["url"]
        assert served.url != "http://127.0.0.1:8765"
    finally:
        stop(served)
    assert not (home / "serving.json").exists()
    # one killed with kill -9 cannot say it stopped: its address is not used any more
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    (home / "serving.json").write_text(f'{{"url": "{served.url}", "pid": {gone}}}')
    again = run_json("share", sid, home=home)
    assert again["url"].startswith("http://127.0.0.1:8765/share/"), again["url"]


def test_an_import_beside_a_running_server_keeps_the_wal_and_the_server_serving(
    tmp_path: Path,
) -> None:
    """The server has the database open: the import does not take it alone."""
    import sqlite3

    import httpx

    from tests.fixtures.servers import start_serve, stop
    from tests.helpers import run_json

    home = tmp_path / "home"
    sample = Path(__file__).parents[1] / "importers" / "samples" / "opencode" / "export.json"
    served = start_serve(home, "--runners", "0")
    try:
        done = run_json("sessions", "import", str(sample), home=home)
        assert done["sessions_created"] == 1
        with sqlite3.connect(home / "baton.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert httpx.get(served.url + "/api/health", timeout=5).status_code == 200
        [listed] = run_json("sessions", "list", home=home)
        assert listed["id"] == done["sessions"][0]["id"]
    finally:
        stop(served)
