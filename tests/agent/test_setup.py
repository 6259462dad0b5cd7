"""Setup commands (a new session, restore, `baton setup`) and project instructions (AGENTS.md,
CLAUDE.md) through the real entry point, in real git repositories, with the fake model and
the real sandbox."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.agent.setup import SETUP_EXIT
from tests.fixtures.git import commit_all, git
from tests.fixtures.model import FakeModel


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "f.txt").write_text("f\n")
    commit_all(path, "first")
    monkeypatch.chdir(path)
    return path


def setups(baton: Any, sid: str) -> list[dict[str, Any]]:
    """The setup messages of a session: (its setup object, its output)."""
    shown = baton("sessions", "show", sid, "--json").json()
    found = []
    for message in shown["messages"]:
        for part in message["parts"]:
            if "setup" in part:
                assert message["role"] == "system"
                found.append({**part["setup"], "output": part.get("text", part.get("preview"))})
    return found


def declare(repo: Path, text: str) -> None:
    (repo / ".baton").mkdir(exist_ok=True)
    (repo / ".baton" / "setup.toml").write_text(text)


def test_setup_from_the_repository_runs_in_order_before_the_first_turn(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    declare(
        repo,
        'env = {GREETING = "hello"}\n'
        'commands = ["echo one > order.txt", '
        '{command = "echo $GREETING $EXTRA >> order.txt; cat order.txt", timeout = 30, '
        'env = {EXTRA = "two"}}]\n',
    )
    model_settings.responder = lambda body: _answer(body, repo)
    result = baton("run", "what is in order.txt?", "--json")
    assert result.code == 0, result.err
    sid = result.json()["session_id"]
    assert (repo / "order.txt").read_text() == "one\nhello two\n"
    found = setups(baton, sid)
    assert [(s["command"], s["exit_code"], s["timed_out"], s["source"]) for s in found] == [
        ("echo one > order.txt", 0, False, ".baton/setup.toml"),
        (
            "echo $GREETING $EXTRA >> order.txt; cat order.txt",
            0,
            False,
            ".baton/setup.toml",
        ),
    ]
    assert found[1]["output"] == "one\nhello two\n"
    assert found[1]["timeout"] == 30.0 and found[0]["timeout"] == 600.0
    assert found[1]["env"] == ["EXTRA", "GREETING"]  # the names, not the values
    assert all(isinstance(s["duration"], float) and s["duration"] >= 0 for s in found)
    assert found[0]["policy"]["network"] is True  # setup installs dependencies
    assert found[0]["policy"]["sandbox"] == "bwrap"
    # recorded before the prompt
    roles = [m["role"] for m in baton("sessions", "show", sid, "--json").json()["messages"]]
    assert roles == ["system", "system", "user", "assistant"]
    assert "setup: echo one > order.txt\nsetup: exit 0" in result.err
    # the model is told what ran, in a line, not the whole log
    assert [m["content"] for m in model_settings.requests[0]["messages"][1:]] == [
        "[system note] setup command `echo one > order.txt` exited with code 0",
        "[system note] setup command `echo $GREETING $EXTRA >> order.txt; cat order.txt` "
        "exited with code 0",
        "what is in order.txt?",
    ]


def _answer(body: dict[str, Any], repo: Path) -> Any:
    from tests.fixtures.model import Step

    return Step(text="ok")


def test_a_failing_setup_command_refuses_the_start_and_keeps_its_output(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    declare(repo, 'commands = ["echo installing; echo broken >&2; exit 7", "touch never"]\n')
    result = baton("run", "anything", "--json")
    assert result.code == SETUP_EXIT == 4
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    # with --json the error is one JSON object on stdout
    assert json.loads(result.out)["error"]["message"] == (
        "setup command `echo installing; echo broken >&2; exit 7` failed with exit "
        f"code 7; its output is kept in session {sid}"
    )
    assert model_settings.requests == []  # no turn
    assert not (repo / "never").exists()  # the rest did not run
    found = setups(baton, sid)
    assert [(s["exit_code"], s["output"]) for s in found] == [(7, "installing\nbroken\n")]
    # chat refuses the same way, before any prompt is read
    chat = baton("chat", stdin="hello\n")
    assert chat.code == 4 and chat.err.splitlines()[-1].startswith(
        "error: setup command `echo installing; echo broken >&2; exit 7` failed with exit code 7"
    )
    assert model_settings.requests == []


def test_a_setup_command_past_its_timeout_fails_cleanly(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    declare(repo, '[[commands]]\ncommand = "echo started; sleep 60"\ntimeout = 1\n')
    result = baton("run", "anything")
    assert result.code == 4
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    assert result.err.splitlines()[-1] == (
        f"error: setup command `echo started; sleep 60` timed out after 1s; its output is "
        f"kept in session {sid}"
    )
    [found] = setups(baton, sid)
    assert (found["exit_code"], found["timed_out"], found["output"]) == (None, True, "started\n")
    assert found["duration"] < 30


@pytest.mark.usefixtures("ctrl_c")
def test_ctrl_c_during_a_setup_command_is_recorded_with_its_output_and_exits_130(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    # the command itself sends this process the Ctrl-C, once it has written a line
    declare(
        repo, f'commands = ["echo started; kill -INT {os.getpid()}; sleep 30", "touch never"]\n'
    )
    result = baton("run", "anything", "--sandbox", "off")
    assert result.code == 130, result.err
    lines = result.err.splitlines()
    assert lines[-3:-2] == [f"setup: echo started; kill -INT {os.getpid()}; sleep 30"]
    assert lines[-2].startswith("setup: interrupted (") and lines[-1] == "interrupted"
    assert model_settings.requests == []  # no turn
    assert not (repo / "never").exists()  # the rest did not run
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    [found] = setups(baton, sid)
    assert (found["exit_code"], found["timed_out"], found["interrupted"], found["output"]) == (
        None,
        False,
        True,
        "started\n",
    )
    assert found["policy"]["sandbox"] == "off"


def test_setup_from_the_config_file_and_from_flags(
    baton: Any, model_settings: FakeModel, repo: Path, baton_home: Path
) -> None:
    baton_home.mkdir(parents=True, exist_ok=True)
    (baton_home / "config.toml").write_text('setup = ["echo from-config"]\n')
    model_settings.responder = lambda body: _answer(body, repo)
    first = baton("run", "hi", "--json")
    assert first.code == 0, first.err
    found = setups(baton, first.json()["session_id"])
    assert [(s["command"], s["source"], s["output"]) for s in found] == [
        ("echo from-config", "config.toml", "from-config\n")
    ]
    # --setup replaces them, in the order given
    second = baton("run", "hi", "--json", "--setup", "echo a", "--setup", "echo b")
    assert second.code == 0, second.err
    found = setups(baton, second.json()["session_id"])
    assert [(s["command"], s["source"]) for s in found] == [
        ("echo a", "--setup"),
        ("echo b", "--setup"),
    ]
    # a [setup] table in the repository's .baton/config.toml wins over the user's config
    (repo / ".baton").mkdir()
    (repo / ".baton" / "config.toml").write_text('[setup]\ncommands = ["echo from-repo"]\n')
    chat = baton("chat", "--json", stdin="hi\n")
    assert chat.code == 0, chat.err
    sid = orjson.loads(chat.out.splitlines()[0])["session_id"]
    found = setups(baton, sid)
    assert [(s["command"], s["source"]) for s in found] == [
        ("echo from-repo", ".baton/config.toml")
    ]
    # resuming is not a new workspace: nothing runs again; the history shows it in a line
    again = baton("chat", "-s", sid, stdin="more\n")
    assert again.code == 0, again.err
    assert "setup command `echo from-repo` exited with code 0\n› hi\n" in again.out
    assert len(setups(baton, sid)) == 1


def test_bad_setup_declarations_are_one_line_errors(
    baton: Any, model_settings: FakeModel, repo: Path, baton_home: Path
) -> None:
    baton_home.mkdir(parents=True, exist_ok=True)
    (baton_home / "config.toml").write_text("setup = 3\n")
    result = baton("sessions", "list")
    assert (result.code, result.err) == (
        2,
        'error: config.toml: setup must be a list of commands, like setup = ["pip install -e ."]\n',
    )
    (baton_home / "config.toml").write_text('setup = [{command = "x", timeout = -1}]\n')
    assert baton("sessions", "list").err == (
        "error: config.toml: setup command 1: timeout must be a number of seconds > 0, got -1\n"
    )
    (baton_home / "config.toml").unlink()
    declare(repo, 'commands = [{cmd = "x"}]\n')
    result = baton("run", "hi")
    assert (result.code, result.err) == (
        2,
        "error: .baton/setup.toml: setup command 1: unknown key(s) cmd\n",
    )
    assert baton("sessions", "list", "--json").json() == []  # nothing started


def test_baton_setup_reruns_them_in_the_latest_session(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    declare(repo, 'commands = ["echo run >> count.txt; wc -l < count.txt"]\n')
    model_settings.responder = lambda body: _answer(body, repo)
    sid = baton("run", "hi", "--json").json()["session_id"]
    again = baton("setup")
    assert again.code == 0, again.err
    assert again.out == f"setup done: 1 command(s) recorded in session {sid}\n"
    assert [s["output"].strip() for s in setups(baton, sid)] == ["1", "2"]
    by_id = baton("setup", sid, "--json", "--setup", "exit 4")
    assert by_id.code == 4
    assert by_id.err.splitlines()[-1] == (
        f"error: setup command `exit 4` failed with exit code 4; its output is kept in "
        f"session {sid}"
    )
    assert [s["exit_code"] for s in setups(baton, sid)] == [0, 0, 4]
    baton("setup", sid, "--setup", "echo why; exit 5")
    assert baton("run", "go on", "--session", sid).code == 0
    sent = [m["content"] for m in model_settings.requests[-1]["messages"]]
    assert sent[-4:] == [
        "[system note] setup command `echo run >> count.txt; wc -l < count.txt` exited with code 0",
        "[system note] setup command `exit 4` exited with code 4; the end of its output:\n",
        "[system note] setup command `echo why; exit 5` exited with code 5; the end of its "
        "output:\nwhy\n",
        "go on",
    ]
    (repo / ".baton" / "setup.toml").unlink()
    none = baton("setup", sid)
    assert (none.code, none.err) == (
        2,
        "error: no setup commands: declare them in .baton/setup.toml, the config file's "
        "`setup`, or give --setup CMD\n",
    )


def test_restore_and_fork_restore_run_the_setup_of_the_restored_workspace(
    baton: Any, repo: Path, tmp_path: Path
) -> None:
    declare(repo, 'commands = ["pwd > where.txt"]\n')
    commit_all(repo, "declare setup")
    sid = baton("sessions", "new", "--title", "s", "--json").json()["id"]
    target = tmp_path / "restored"
    result = baton("restore", sid, "--path", str(target), "--from", str(repo))
    assert result.code == 0, result.err
    assert (target / "where.txt").read_text() == f"{target}\n"
    assert [(s["command"], s["exit_code"]) for s in setups(baton, sid)] == [("pwd > where.txt", 0)]
    forked = baton("fork", sid, "--restore", str(tmp_path / "forked"), "--json")
    assert forked.code == 0, forked.err
    data = forked.json()
    assert [s["command"] for s in data["restore"]["setup"]] == ["pwd > where.txt"]
    assert (tmp_path / "forked" / "where.txt").read_text() == f"{tmp_path / 'forked'}\n"
    # the fork keeps the source's setup message and records its own after it
    assert [s["exit_code"] for s in setups(baton, data["id"])] == [0, 0]


def test_code_from_someone_elses_share_does_not_run_what_it_declares(
    baton: Any, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declare(repo, 'commands = ["touch ran.txt"]\n')
    commit_all(repo, "declare setup")
    monkeypatch.setenv("BATON_USER", "alice")
    sid = baton("sessions", "new", "--title", "s", "--json").json()["id"]
    share = baton("share", sid, "--json").json()["id"]
    said = (
        "setup: not run: this code comes from someone else's share, and its .baton/setup.toml "
        "declares 1 command(s): `touch ran.txt`. Read them, then run `baton setup` in "
    )
    monkeypatch.setenv("BATON_USER", "bob")
    restored = baton("restore", share, "--path", str(tmp_path / "r"), "--from", str(repo))
    assert restored.code == 0, restored.err
    assert f"{said}{tmp_path / 'r'}\n" in restored.err
    assert not (tmp_path / "r" / "ran.txt").exists()
    forked = baton("fork", share, "--restore", str(tmp_path / "f"), "--json")
    assert forked.code == 0, forked.err
    assert forked.json()["restore"]["setup"] == []
    assert not (tmp_path / "f" / "ran.txt").exists()
    # a fork of that fork is still someone else's code
    again = forked.json()["id"]
    twice = baton("fork", again, "--restore", str(tmp_path / "g"), "--json")
    assert twice.code == 0, twice.err
    assert not (tmp_path / "g" / "ran.txt").exists()
    # the one who shared it runs her own declarations
    monkeypatch.setenv("BATON_USER", "alice")
    mine = baton("restore", share, "--path", str(tmp_path / "m"), "--from", str(repo))
    assert mine.code == 0, mine.err
    assert (tmp_path / "m" / "ran.txt").exists()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_agents_md_goes_into_the_system_prompt_and_is_recorded(
    baton: Any, model_settings: FakeModel, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_settings.responder = lambda body: _answer(body, repo)
    (repo / "AGENTS.md").write_text("Always run `make test`.\n")
    (repo / "CLAUDE.md").write_text("Ignored: AGENTS.md is there.\n")
    sub = repo / "pkg" / "deep"
    sub.mkdir(parents=True)
    (repo / "pkg" / "CLAUDE.md").write_text("In pkg, use tabs.\n")
    monkeypatch.chdir(sub)
    result = baton("run", "hi", "--json")
    assert result.code == 0, result.err
    system = model_settings.requests[-1]["messages"][0]["content"]
    assert system.endswith(
        '<instructions file="AGENTS.md">\nAlways run `make test`.\n</instructions>\n\n'
        '<instructions file="pkg/CLAUDE.md">\nIn pkg, use tabs.\n</instructions>'
    )
    assert "Ignored" not in system
    meta = baton("sessions", "show", result.json()["session_id"], "--json").json()["metadata"]
    assert meta["instructions"] == [
        {"path": "AGENTS.md", "sha256": sha(repo / "AGENTS.md")},
        {"path": "pkg/CLAUDE.md", "sha256": sha(repo / "pkg" / "CLAUDE.md")},
    ]


def test_claude_md_is_the_fallback_and_a_change_is_recorded_on_resume(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    model_settings.responder = lambda body: _answer(body, repo)
    no_file = baton("run", "hi", "--json")
    sid = no_file.json()["session_id"]
    assert "<instructions" not in model_settings.requests[-1]["messages"][0]["content"]
    assert "instructions" not in baton("sessions", "show", sid, "--json").json()["metadata"]
    (repo / "CLAUDE.md").write_text("Be brief.\n")
    again = baton("run", "more", "--session", sid, "--json")
    assert again.code == 0, again.err
    assert model_settings.requests[-1]["messages"][0]["content"].endswith(
        '<instructions file="CLAUDE.md">\nBe brief.\n</instructions>'
    )
    meta = baton("sessions", "show", sid, "--json").json()["metadata"]
    assert meta["instructions"] == [{"path": "CLAUDE.md", "sha256": sha(repo / "CLAUDE.md")}]


def test_a_large_setup_output_is_kept_whole_in_a_blob(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    model_settings.responder = lambda body: _answer(body, repo)
    result = baton("run", "hi", "--json", "--setup", "seq 1 30000")
    assert result.code == 0, result.err
    sid = result.json()["session_id"]
    shown = baton("sessions", "show", sid, "--json").json()
    [part] = shown["messages"][0]["parts"]
    assert part["type"] == "blob_ref" and part["of"] == "text"
    assert part["setup"]["command"] == "seq 1 30000" and part["setup"]["exit_code"] == 0
    expected = "".join(f"{i}\n" for i in range(1, 30001)).encode()
    assert part["size"] == len(expected) and part["sha256"] == hashlib.sha256(expected).hexdigest()
    assert model_settings.requests[0]["messages"][1]["content"] == (
        "[system note] setup command `seq 1 30000` exited with code 0"
    )


def test_setup_settings_from_the_environment_survive_a_worker_round_trip() -> None:
    from baton.agent.setup import SetupCommand
    from baton.config import Settings

    settings = Settings.load({"BATON_SETUP": '["npm ci", {"command": "make", "timeout": 5}]'})
    assert settings.setup == (SetupCommand("npm ci"), SetupCommand("make", 5.0))
    assert Settings.from_json(settings.to_json()) == settings
    assert Settings.load({"BATON_SETUP": "make deps"}).setup == (SetupCommand("make deps"),)
    from baton.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as bad:
        Settings.load({"BATON_SETUP": "[oops"})
    assert bad.value.message == (
        'BATON_SETUP must be a command or a JSON list like ["pip install -e ."]'
    )


def test_without_bubblewrap_setup_is_refused_in_one_line(
    baton: Any, model_settings: FakeModel, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton import sandbox

    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-not-installed")
    result = baton("run", "hi", "--setup", "touch made")
    assert result.code == 4
    assert result.err.splitlines()[-1] == (
        "error: setup commands cannot run: commands run in a sandbox, and bubblewrap is "
        f"missing: {sandbox.INSTALL_HINT}"
    )
    assert not (repo / "made").exists() and model_settings.requests == []
    # --sandbox off runs them unconfined (after the usual warning)
    model_settings.responder = lambda body: _answer(body, repo)
    off = baton("run", "hi", "--setup", "touch made", "--sandbox", "off")
    assert off.code == 0, off.err
    assert (repo / "made").exists()
    assert "--sandbox off" in off.err


def test_instructions_linked_out_of_the_repository_are_not_read(tmp_path: Path) -> None:
    """A repository's AGENTS.md that is a symbolic link out of it (to a server's secret, on
    a server run) is not read; CLAUDE.md inside the repository is taken instead."""
    from baton.agent.instructions import find

    outside = tmp_path / "server-secret"
    outside.write_text("the server's secret\n")
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "AGENTS.md").symlink_to(outside)
    (repo / "CLAUDE.md").write_text("Use make.\n")
    (repo / "sub" / "AGENTS.md").symlink_to(repo / "CLAUDE.md")  # inside: read
    found = find(repo, repo / "sub")
    assert [(i.path, i.text) for i in found] == [
        ("CLAUDE.md", "Use make.\n"),
        ("sub/AGENTS.md", "Use make.\n"),
    ]
