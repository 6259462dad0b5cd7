"""`baton run`, `baton chat` (its line mode, when stdin is not a terminal), `baton --fork`
and the slash commands, in this process through the real entry point."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from baton.agent.loop import REFUSED
from baton.agent.provider import NO_MODEL
from baton.agent.slash import ChatState, handle
from baton.service import Service
from tests.fixtures.git import commit_all, git
from tests.fixtures.model import MODEL, FakeModel, Step, call, model_env


def test_without_a_model_chat_and_run_say_how_to_configure_one(
    baton: Any, baton_home: Path
) -> None:
    for args in (["chat"], ["run", "fix it"], ["chat", "-c"]):
        result = baton(*args)
        assert (result.code, result.out, result.err) == (2, "", f"error: {NO_MODEL}\n"), args
    # plain `baton`: nothing went wrong yet, so the help and how to configure a model, exit 0
    plain = baton()
    assert (plain.code, plain.err) == (0, "")
    assert plain.out.startswith("Usage: baton [OPTIONS] [COMMAND] [ARGS]...\n")
    assert re.search(r"^  chat +Talk to the coding agent", plain.out, re.M)  # the command list
    assert plain.out.endswith(
        "\n\nThe coding agent (`baton chat`, also plain `baton`) needs a model; none is "
        "configured.\nConfigure one, for example:\n"
        "  export BATON_MODEL=gpt-4.1 OPENAI_API_KEY=sk-...          # OpenAI\n"
        "  export BATON_MODEL=NAME BATON_BASE_URL=URL BATON_API_KEY=KEY  "
        "# any OpenAI-compatible endpoint\n"
        "  export BATON_MODEL=qwen3 BATON_BASE_URL=http://localhost:11434/v1  "
        "# a local server, no key\n"
        f"or put model, base_url and api_key in {baton_home / 'config.toml'}, "
        "or pass --model to `baton chat`.\n"
    )
    assert baton("sessions", "list").out == "no sessions\n"  # the rest still works
    assert baton("sessions", "new", "--title", "kept").code == 0


def test_run_json_prints_the_answer_usage_and_cost(
    baton: Any, model_settings: FakeModel, tmp_path: Path
) -> None:
    model_settings.reply(
        "", call("c1", "write_file", path="out.txt", content="hi\n"), usage=(1000, 100, 0)
    )
    model_settings.reply("Wrote out.txt.", usage=(2000, 50, 1000))
    result = baton("run", "write out.txt", "--yes", "--json")
    assert result.code == 0, result.err
    data = result.json()
    sid = data.pop("session_id")
    assert data == {
        "answer": "Wrote out.txt.",
        "usage": {
            "input_tokens": 2000,
            "output_tokens": 150,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 0,
        },
        "cost_usd": 0.0028,  # (1000 + 200 + 1000 + 100 + 500 [cached at half]) / 1e6
        "turns": 2,
        "interrupted": False,
        "files_read": [],
        "files_written": ["out.txt"],
        "refused": [],
        "session_totals": {
            "input_tokens": 2000,
            "output_tokens": 150,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 0,
            "cost_usd": 0.0028,
        },
        "session_own": {
            "input_tokens": 2000,
            "output_tokens": 150,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 0,
            "cost_usd": 0.0028,
        },
        "session_inherited": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.0,
        },
    }
    assert Path("out.txt").read_text() == "hi\n"
    shown = baton("sessions", "show", sid, "--json").json()
    assert shown["task"] == "write out.txt" and shown["title"] == "write out.txt"
    assert shown["metadata"]["mode"] == "run" and shown["metadata"]["model"] == MODEL
    from baton.cli.chat import folder_key  # after baton.cli.main, which registers it

    assert shown["metadata"]["folder"] == folder_key(Path.cwd())
    assert str(Path.cwd()) not in json.dumps(shown["metadata"])  # no local path to publish
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant", "tool", "assistant"]
    # --session continues it
    model_settings.reply("Still here.")
    again = baton("run", "anything else?", "--session", sid, "--json").json()
    assert again["session_id"] == sid and again["answer"] == "Still here."
    assert [m["role"] for m in model_settings.requests[-1]["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


def test_run_json_on_a_fork_reports_its_own_and_inherited_totals_apart(
    baton: Any, model_settings: FakeModel, tmp_path: Path
) -> None:
    model_settings.reply("First.", usage=(1000, 100, 0))
    first = baton("run", "start", "--json").json()
    fork = baton("fork", first["session_id"], "--json").json()
    model_settings.reply("Second.", usage=(2000, 50, 0))
    data = baton("run", "go on", "--session", fork["id"], "--json").json()
    assert data["session_id"] == fork["id"]
    assert (
        data["session_totals"]["cost_usd"],
        data["session_own"]["cost_usd"],
        data["session_inherited"]["cost_usd"],
    ) == (0.0033, 0.0021, 0.0012)  # (1000 + 200) / 1e6 inherited, (2000 + 100) / 1e6 own
    assert (data["session_own"]["input_tokens"], data["session_inherited"]["input_tokens"]) == (
        2000,
        1000,
    )
    assert data["session_totals"]["input_tokens"] == 3000  # the whole chain's, as documented


def test_run_json_usage_errors_are_one_json_object(baton: Any, model_settings: FakeModel) -> None:
    bad = baton("run", "a task", "--mode", "bogus", "--json")
    assert bad.code == 2 and bad.err == ""
    assert bad.json() == {
        "error": {
            "code": "usage",
            "message": "Invalid value for '--mode': 'bogus' is not one of "
            "'ask', 'auto-edit', 'plan', 'yolo'.",
        }
    }
    missing = baton("run", "--json")
    assert missing.code == 2
    assert missing.json() == {"error": {"code": "usage", "message": "Missing argument 'TASK'."}}
    # without --json, and other commands with it, click's usage text on stderr as before
    plain = baton("run", "a task", "--mode", "bogus")
    assert plain.code == 2 and plain.out == ""
    assert plain.err.splitlines()[-1] == (
        "Error: Invalid value for '--mode': 'bogus' is not one of 'ask', 'auto-edit', 'plan', "
        "'yolo'."
    )
    other = baton("sessions", "list", "--limit", "x", "--json")
    assert (
        other.code == 2 and other.out == "" and other.err.startswith("Usage: baton sessions list")
    )
    assert model_settings.requests == []


def test_run_without_yes_or_a_terminal_refuses_and_tells_the_model(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.reply("", call("c1", "write_file", path="a.txt", content="A"))
    model_settings.reply("I was not allowed to write a.txt.")
    result = baton("run", "write a.txt")
    assert result.code == 3  # documented: an action the agent needed was refused
    assert result.out == "I was not allowed to write a.txt.\n"
    assert "baton: refused write a.txt (1 bytes) (no terminal to ask; pass --yes to allow)\n" in (
        result.err
    )
    assert re.search(
        r"session ses_\w+ · 200 in / 40 out tokens · \$0\.0003\n"
        r"baton: 1 action\(s\) refused; exit code 3\n$",
        result.err,
    )
    assert not Path("a.txt").exists()
    assert model_settings.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": REFUSED,
    }


def test_an_auth_error_is_one_line_and_the_prompt_is_kept(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.fail(401, "Incorrect API key provided: sk-bad")
    result = baton("run", "hello")
    assert result.code == 1 and result.out == ""
    match = re.fullmatch(
        r"error: the model endpoint (\S+) refused the API key \(401\): check BATON_API_KEY "
        r"\(or OPENAI_API_KEY\) \(session (ses_\w+) keeps the turn\)\n",
        result.err,
    )
    assert match and match.group(1) == model_settings.url
    shown = baton("sessions", "show", match.group(2), "--json").json()
    assert [m["parts"][0]["text"] for m in shown["messages"]] == ["hello"]


def test_run_streams_the_answer_to_stdout_as_it_arrives(
    fake_model: FakeModel, baton_home: Path
) -> None:
    fake_model.reply("one two three four five", chunk=4, delay=0.25)
    env = {**os.environ, **model_env(fake_model), "BATON_HOME": str(baton_home)}
    env.pop("BATON_DEBUG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", "count"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    first = process.stdout.read1(100)  # type: ignore[attr-defined]
    first_at = time.monotonic()
    rest = process.stdout.read()
    done_at = time.monotonic()
    assert process.wait(timeout=30) == 0
    assert first.startswith(b"one") and first + rest == b"one two three four five\n"
    assert done_at - first_at > 0.5  # the first words were shown before the answer ended


def make_repo(path: Path, remote: str | None) -> Path:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "f.txt").write_text(str(path))
    commit_all(path, "first")
    if remote:
        git(path, "remote", "add", "origin", remote)
    return path


def test_chat_continue_resumes_the_latest_session_of_this_repository(
    baton: Any, model_settings: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha = make_repo(tmp_path / "alpha", "git@example.com:team/alpha.git")
    beta = make_repo(tmp_path / "beta", "https://example.com/team/beta")
    model_settings.responder = lambda body: Step(text="echo: " + body["messages"][-1]["content"])
    monkeypatch.chdir(alpha)
    first = baton("chat", stdin="alpha question\n")
    assert first.code == 0, first.err
    assert "echo: alpha question" in first.out
    monkeypatch.chdir(beta)
    assert baton("chat", stdin="beta question\n").code == 0
    (alpha / "sub").mkdir()
    monkeypatch.chdir(alpha / "sub")
    again = baton("chat", "-c", stdin="alpha again\n")
    assert again.code == 0, again.err
    assert "› alpha question" in again.out and "echo: alpha question" in again.out
    assert "beta" not in again.out
    sent = [m["content"] for m in model_settings.requests[-1]["messages"][1:]]
    assert sent == ["alpha question", "echo: alpha question", "alpha again"]
    listed = baton("sessions", "list", "--json").json()
    assert [s["repo"] for s in listed] == ["example.com/team/alpha", "example.com/team/beta"]
    assert [s["message_count"] for s in listed] == [4, 2]
    # -s resumes a given session wherever you are
    monkeypatch.chdir(tmp_path)
    beta_id = listed[1]["id"]
    given = baton("chat", "-s", beta_id, stdin="beta again\n")
    assert "› beta question" in given.out
    assert baton("sessions", "show", beta_id, "--json").json()["message_count"] == 4
    # outside any repository with no session of this folder, -c says so in one line
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    none = baton("chat", "-c")
    assert none.code == 1
    assert (
        none.err
        == f"error: no session of this folder {empty} to continue; start one with `baton chat`\n"
    )


def test_session_resume_in_the_chat_snapshots_a_tree_that_changed(
    baton: Any, model_settings: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "app", None)
    monkeypatch.chdir(repo)
    model_settings.reply("Hello.")
    assert baton("chat", stdin="hi\n").code == 0
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    before = baton("sessions", "show", sid, "--json").json()["git"]
    assert before["dirty"] is False
    (repo / "f.txt").write_text("changed since\n")
    resumed = baton("chat", stdin=f"/session resume {sid}\n")
    assert resumed.code == 0, resumed.err
    assert f"resumed {sid}: " in resumed.out
    after = baton("sessions", "show", sid, "--json").json()["git"]
    assert after["dirty"] is True and after["state"] != before["state"]
    assert after["head"] == before["head"]  # the same commit, with changes
    # unchanged since: resuming again stores nothing new
    assert baton("chat", stdin=f"/session resume {sid}\n").code == 0
    assert baton("sessions", "show", sid, "--json").json()["git"] == after


def test_chat_line_mode_with_slash_commands(
    baton: Any, model_settings: FakeModel, tmp_path: Path
) -> None:
    model_settings.reply("**Hello** there.")
    script = "\n".join(
        [
            "/session share",  # nothing to share yet
            "hi",
            "/session rename Greeting test",
            "/session share --expires 7d",
            "/cost",
            "/model",
            "/session list",
            "/session fork",
            "/session bogus",
            "/help",
            "/exit",
            "never sent",
        ]
    )
    result = baton("chat", stdin=script + "\n")
    assert result.code == 0, result.err
    out = result.out
    assert "error: no session yet: send a prompt first (or /session resume ID)" in out
    assert "Hello there." in out  # Markdown rendered, not raw asterisks
    assert "renamed ses_" in out and ": Greeting test" in out
    share = re.search(r"http://127\.0\.0\.1:8765/share/(\S+)", out)
    assert share and f"fork it with: baton --fork {share.group(0)}" in out
    assert "expires 20" in out
    assert re.search(r"ses_\w+: 100 input \+ 0 cached input, 20 output tokens, \$0\.0001", out)
    assert f"model: {MODEL}" in out
    assert "Greeting test" in out.split(f"baton --fork {share.group(0)}")[1]  # the list table
    fork = re.search(
        r"forked (ses_\w+) into (ses_\w+) \(2 messages\); you are now in the fork", out
    )
    assert fork
    assert "error: unknown /session command 'bogus'" in out
    assert "/session share [--expires 7d]" in out
    assert len(model_settings.requests) == 1  # "never sent" was after /exit
    shares = baton("shares", "--json").json()
    assert [s["id"] for s in shares] == [share.group(1)]
    forked = baton("sessions", "show", fork.group(2), "--json").json()
    assert forked["forked_from"] == {"session": fork.group(1), "message": forked["head"]}


def test_session_slash_commands_share_fork_resume_unshare_delete_export(
    memory_service: Service, me: str, tmp_path: Path
) -> None:
    sid = memory_service.create(me, title="Original").id
    memory_service.append(me, sid, [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}])
    buffer = io.StringIO()
    answers = [False, True]
    state = ChatState(
        memory_service,
        me,
        Console(file=buffer, width=200, highlight=False),
        session_id=sid,
        model=MODEL,
        ask=lambda question: answers.pop(0),
    )

    def say(line: str) -> str:
        buffer.seek(0)
        buffer.truncate()
        assert handle(line, state) is True
        return buffer.getvalue()

    shared = say("/session share")
    share_id = re.search(r"/share/(\S+)", shared)
    assert share_id
    assert "  published: 1 message, no code\n" in shared
    forked = say(f"/session fork {share_id.group(1)}")
    assert state.session_id != sid
    assert forked.startswith(f"forked {share_id.group(1)} into {state.session_id} (1 messages)")
    assert "› hi" in forked
    fork_id = state.session_id
    assert memory_service.get(me, fork_id).forked_from == {
        "share": share_id.group(1),
        "message": memory_service.get(me, sid).head,
    }
    assert "* " + fork_id in say("/session list")
    assert say(f"/session resume {sid}").startswith(f"resumed {sid}: Original")
    assert state.session_id == sid
    assert say(f"/session unshare {share_id.group(1)}") == f"revoked {share_id.group(1)}\n"
    assert "was revoked" in say(f"/session fork {share_id.group(1)}")
    assert say("/session export notes.md") == "wrote notes.md\n"
    assert "hi" in Path("notes.md").read_text()
    assert say("/session export notes.json") == "wrote notes.json\n"
    assert json.loads(Path("notes.json").read_text())["session"]["id"] == sid
    assert say("/session delete") == "not deleted\n"
    assert say("/session delete").startswith(f"deleted {sid}; the next prompt starts")
    assert state.session_id is None
    assert say("/session show").startswith("error: no session yet")
    assert say("/session resume ses_00000000000000000000000000").startswith("error: no session")
    assert handle("/exit", state) is False and handle("/quit", state) is False


def test_fork_flag_without_a_terminal_forks_and_says_how_to_continue(
    baton: Any, model_settings: FakeModel
) -> None:
    sid = baton("sessions", "new", "--title", "To fork").out.strip()
    baton("sessions", "append", sid, "--role", "user", "--text", "hello")
    share = baton("share", sid, "--json").json()["id"]
    result = baton("--fork", share)
    assert result.code == 0
    fork = result.out.strip()
    assert re.fullmatch(r"ses_\w+", fork) and fork != sid
    assert result.err == f"continue it with: baton chat -s {fork}\n"
    # chat --fork forks and continues in the fork
    model_settings.reply("Continuing the fork.")
    chat = baton("chat", "--fork", share, stdin="go on\n")
    assert chat.code == 0, chat.err
    assert "› hello" in chat.out and "Continuing the fork." in chat.out
    new = re.search(r"forked into (ses_\w+)", chat.err)
    assert new
    shown = baton("sessions", "show", new.group(1), "--json").json()
    assert [m["role"] for m in shown["messages"]] == ["user", "user", "assistant"]
    assert shown["forked_from"]["share"] == share


def test_chat_json_reads_prompts_and_prints_one_json_line_per_turn(
    baton: Any, model_settings: FakeModel
) -> None:
    model_settings.reply("", call("c1", "write_file", path="x.txt", content="x"))
    model_settings.reply("Could not write.", usage=(10, 5, 0))
    model_settings.reply("Second.", usage=(10, 5, 0))
    result = baton("chat", "--json", stdin="write x.txt\n/session rename JSON lines\nagain\n")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [(x["answer"], x["turns"], x["error"], x["files_written"]) for x in lines] == [
        ("Could not write.", 2, None, []),
        ("Second.", 1, None, []),
    ]
    assert lines[0]["session_id"] == lines[1]["session_id"]
    assert lines[1]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }
    assert "refused write x.txt (1 bytes) (no terminal to ask" in result.err  # never asked
    assert f"renamed {lines[0]['session_id']}: JSON lines" in result.err
    assert not Path("x.txt").exists()


def test_kill_9_mid_stream_keeps_the_text_shown_and_resume_snapshots_the_tree(
    baton: Any, model_settings: FakeModel, baton_home: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    fake_model = model_settings
    repo = make_repo(tmp_path / "repo", None)
    monkeypatch.chdir(repo)
    words = " ".join(f"word{i}" for i in range(200))
    fake_model.reply("", call("c1", "write_file", path="notes.txt", content="kept\n"))
    fake_model.reply(words, chunk=6, delay=0.1)  # 20 seconds of streaming
    env = {**os.environ, **model_env(fake_model), "BATON_HOME": str(baton_home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", "write and talk", "--yes"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        stored = ""
        deadline = time.monotonic() + 120
        while not stored and time.monotonic() < deadline and process.poll() is None:
            listed = baton("sessions", "list", "--json").json()
            if listed:
                shown = baton("sessions", "show", listed[0]["id"], "--json").json()
                stored = "".join(
                    p["text"] for m in shown["messages"] for p in m["parts"] if p.get("partial")
                )
            if not stored:
                time.sleep(0.2)
        assert stored, "no partial text was appended"
    finally:
        process.kill()  # kill -9
        process.wait(timeout=30)
    assert process.stdout is not None
    printed = process.stdout.read().decode()
    sid = listed[0]["id"]
    shown = baton("sessions", "show", sid, "--json").json()
    first = stored
    chunks = [p for m in shown["messages"] for p in m["parts"] if p.get("partial")]
    stored = "".join(p["text"] for p in chunks)
    assert stored.startswith(first) and words.startswith(stored)
    assert printed.startswith(stored)  # the text shown is kept (up to its last second)
    results = [p for m in shown["messages"] for p in m["parts"] if p["type"] == "tool_result"]
    assert [r["metadata"]["files_written"] for r in results] == [["notes.txt"]]
    assert "files_written" not in (shown["metadata"] or {})  # the turn never finished
    before = shown["git"]
    assert before["dirty"] is False
    text = baton("sessions", "show", sid)
    assert f"#4 assistant · {MODEL}" in text.out and first.strip() in text.out
    check = baton("sessions", "verify", sid)
    assert check.code == 0, check.out + check.err
    # resume: a new snapshot (the killed turn wrote notes.txt), its files listed, the kept
    # text sent to the model as one answer
    fake_model.reply("Resumed.")
    again = baton("run", "-s", sid, "go on")
    assert again.code == 0, again.err
    after = baton("sessions", "show", sid, "--json").json()
    assert after["git"]["dirty"] is True and after["git"]["state"] != before["state"]
    assert after["metadata"]["files_written"] == ["notes.txt"]
    sent = fake_model.requests[-1]["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": stored},
        {"role": "user", "content": "go on"},
    ]
