"""`baton cloud …` as a user drives it: repositories, environments (secrets never printed),
starting, listing, reading, following and stopping runs; in local mode (the store `baton serve`
executes from) and against a server after `baton login`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.cli import cloud
from baton.cli.main import main
from baton.config import Settings, build_service
from tests.fixtures.cli import Result
from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json, text_message

SECRET = "s3cr3t-never-printed"


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


def test_repositories(baton: Any) -> None:
    added = baton("cloud", "repos", "add", "/srv/git/widgets.git", "--branch", "main", "--json")
    assert added.code == 0, added.err
    repo = added.json()
    assert repo == {
        "id": repo["id"],
        "name": "widgets",
        "url": "/srv/git/widgets.git",
        "default_branch": "main",
        "has_credentials": False,
        "created_at": repo["created_at"],
    }
    text = baton("cloud", "repos", "add", f"https://bot:{SECRET}@git.example.com/t/tools")
    assert text.code == 0 and text.out.endswith(" tools https://git.example.com/t/tools\n")
    listed = baton("cloud", "repos", "list")
    assert "widgets" in listed.out and "tools" in listed.out and SECRET not in listed.out
    assert [r["name"] for r in baton("cloud", "repos", "list", "--json").json()] == [
        "tools",
        "widgets",
    ]
    dup = baton("cloud", "repos", "add", "/elsewhere/widgets")
    assert (dup.code, dup.err) == (
        1,
        "error: a repository named 'widgets' exists already: choose another name\n",
    )
    bad = baton("cloud", "repos", "add", "ftp://x/y")
    assert bad.code == 2 and bad.err.startswith("error: 'ftp://x/y' is not a clone URL")
    assert baton("cloud", "repos", "remove", "widgets").out == "removed widgets\n"
    gone = baton("cloud", "repos", "remove", "widgets")
    assert (gone.code, gone.err) == (1, "error: no repository widgets\n")
    assert baton("cloud", "repos", "remove", "tools", "--json").json() == {"deleted": "tools"}
    assert baton("cloud", "repos", "list").out == "no repositories\n"


def test_environments_never_print_their_secrets(
    baton: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPM_TOKEN", SECRET)
    made = baton(
        "cloud", "envs", "add", "ci", "--var", "NODE_ENV=test", "--secret", "NPM_TOKEN",
        "--secret", f"OTHER={SECRET}", "--setup", "npm ci", "--setup", "npm test", "--network",
        "--json",
    )  # fmt: skip
    assert made.code == 0, made.err
    env = made.json()
    assert {k: v for k, v in env.items() if k not in ("id", "created_at", "updated_at")} == {
        "name": "ci",
        "variables": {"NODE_ENV": "test"},
        "secrets": ["NPM_TOKEN", "OTHER"],
        "setup": [
            {"command": "npm ci", "timeout": 600.0},
            {"command": "npm test", "timeout": 600.0},
        ],
        "network": True,
        "model": None,
        "push": False,
    }
    table = baton("cloud", "envs", "list")
    assert "NPM_TOKEN, OTHER" in table.out and "npm ci; npm test" in table.out
    changed = baton(
        "cloud", "envs", "set", "ci", "--unset", "NODE_ENV", "--var", "MODE=x",
        "--unset-secret", "OTHER", "--no-setup", "--push", "--json",
    )  # fmt: skip
    assert changed.code == 0, changed.err
    assert {k: changed.json()[k] for k in ("variables", "secrets", "setup", "push", "network")} == {
        "variables": {"MODE": "x"},
        "secrets": ["NPM_TOKEN"],
        "setup": [],
        "push": True,
        "network": True,
    }
    for result in (made, table, changed, baton("cloud", "envs", "list", "--json")):
        assert SECRET not in result.out + result.err
    bad = baton("cloud", "envs", "add", "x", "--var", "NOEQUALS")
    assert bad.code == 2 and "'NOEQUALS' is not NAME=VALUE" in bad.err
    unset = baton("cloud", "envs", "add", "x", "--secret", "NOT_IN_THIS_SHELL")
    assert unset.code == 2 and "NOT_IN_THIS_SHELL is not set in this shell" in unset.err
    many = baton("cloud", "envs", "add", "x", *[a for i in range(21) for a in ("--setup", "true")])
    assert (many.code, many.err) == (2, "error: setup: at most 20 commands, not 21\n")
    assert baton("cloud", "envs", "remove", "ci").out == "removed ci\n"
    assert baton("cloud", "envs", "list").out == "no environments\n"


def test_start_list_logs_and_stop(baton: Any) -> None:
    baton("cloud", "repos", "add", "/srv/git/widgets")
    started = baton("cloud", "start", "--repo", "widgets", "Fix the flaky test", "--json")
    assert started.code == 0, started.err
    run, session = started.json()["run"], started.json()["session"]
    assert (run["state"], run["prompt"], session["title"], session["platform"]) == (
        "queued",
        "Fix the flaky test",
        "Fix the flaky test",
        "web",
    )
    assert baton("cloud", "list", "--json").json() == [run]
    assert baton("cloud", "list", "--session", session["id"], "--json").json() == [run]
    table = baton("cloud", "list").out
    assert run["id"] in table and "queued" in table and "Fix the flaky test" in table
    logs = baton("cloud", "logs", session["id"], "--json").json()
    assert logs == {"run": run, "messages": []}
    assert baton("cloud", "logs", run["id"]).out == f"-- {run['id']} queued\n"
    busy = baton("cloud", "start", "-s", session["id"], "more")
    assert (busy.code, busy.err) == (
        1,
        f"error: session {session['id']} has a run in progress ({run['id']}): wait for it or "
        "stop it\n",
    )
    assert baton("cloud", "stop", session["id"]).out == f"stopped {run['id']}\n"
    again = baton("cloud", "stop", run["id"])
    assert (again.code, again.err) == (
        1,
        f"error: run {run['id']} has ended (stopped): there is nothing to stop\n",
    )
    text = baton("cloud", "start", "-s", session["id"], "go on")
    assert text.code == 0 and text.out.startswith("run_") and session["id"] in text.out
    assert f"baton cloud logs {text.out.split()[0]} --follow" in text.err
    assert [r["prompt"] for r in baton("cloud", "list", "--json").json()] == [
        "go on",
        "Fix the flaky test",
    ]


def test_what_cloud_commands_refuse_in_one_line(baton: Any) -> None:
    nothing = baton("cloud", "start", "--repo", "nope", "task")
    assert (nothing.code, nothing.err) == (1, "error: no repository nope\n")
    baton("cloud", "repos", "add", "/srv/git/widgets")
    empty = baton("cloud", "start", "--repo", "widgets", "  ")
    assert (empty.code, empty.err) == (2, "error: a run needs a task: the prompt is empty\n")
    for i in range(2):
        assert baton("cloud", "start", "--repo", "widgets", f"task {i}").code == 0
    limited = baton("cloud", "start", "--repo", "widgets", "a third")
    assert limited.code == 1 and limited.err == (
        "error: 2 runs of this account are queued or running; the limit is 2 "
        "(BATON_MAX_RUNS): wait for one to end or stop one\n"
    )
    odd = baton("cloud", "logs", "something")
    assert (odd.code, odd.err) == (
        2,
        "error: 'something' is neither a run id (run_…) nor a session id (ses_…)\n",
    )
    session = baton("sessions", "new", "--title", "no runs", "--no-git", "--json").json()
    none = baton("cloud", "logs", session["id"])
    assert (none.code, none.err) == (1, f"error: session {session['id']} has no server runs\n")


def worker(home: Path, done: threading.Event, errors: list[BaseException]) -> None:
    """What `baton serve`'s runner would do with the queued run, through another service over
    the same store: claim it, record messages, end it."""
    try:
        service = build_service(Settings.load(env={"BATON_HOME": str(home)}))
        claimed = None
        while claimed is None:
            claimed = service.claim_run("test-worker")
            time.sleep(0.02)
        owner = claimed.owner
        service.append(owner, claimed.session_id, [text_message("system", "$ make setup\nok")])
        service.move_run(claimed.id, "running")
        time.sleep(0.1)
        service.append(owner, claimed.session_id, [text_message("user", claimed.prompt)])
        service.append(owner, claimed.session_id, [text_message("assistant", "Fixed it.")])
        service.move_run(claimed.id, "done")
        service.close()
    except BaseException as exc:  # reported by the test
        errors.append(exc)
    finally:
        done.set()


@pytest.fixture
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cloud, "POLL_SECONDS", 0.05)


def test_start_follow_prints_the_run_until_it_ends(
    baton: Any, baton_home: Path, fast_poll: None
) -> None:
    baton("cloud", "repos", "add", "/srv/git/widgets")
    done, errors = threading.Event(), []  # type: ignore[var-annotated]
    thread = threading.Thread(target=worker, args=(baton_home, done, errors))
    thread.start()
    followed = baton("cloud", "start", "--repo", "widgets", "Fix it", "--follow")
    thread.join()
    assert errors == []
    assert followed.code == 0, followed.err
    run_id = followed.out.split()[0]
    lines = [line for line in followed.out.splitlines() if line.strip()]
    assert lines[0].startswith(f"{run_id} queued on session ses_")
    assert [line for line in lines if line.startswith("-- ")][-1] == f"-- {run_id} done"
    texts = [line for line in lines if not line.startswith(("#", "-- ", run_id))]
    assert texts == ["$ make setup", "ok", "Fix it", "Fixed it."]
    assert [line.split(" ")[0:2] for line in lines if line.startswith("#")] == [
        ["#1", "system"],
        ["#2", "user"],
        ["#3", "assistant"],
    ]


def test_logs_follow_json_lines(baton: Any, baton_home: Path, fast_poll: None) -> None:
    baton("cloud", "repos", "add", "/srv/git/widgets")
    run = baton("cloud", "start", "--repo", "widgets", "Fix it", "--json").json()["run"]
    done, errors = threading.Event(), []  # type: ignore[var-annotated]
    thread = threading.Thread(target=worker, args=(baton_home, done, errors))
    thread.start()
    followed = baton("cloud", "logs", run["id"], "--follow", "--json")
    thread.join()
    assert errors == [] and followed.code == 0, followed.err
    events = [orjson.loads(line) for line in followed.out.splitlines()]
    positions = [e["position"] for e in events if "position" in e]
    assert positions == [1, 2, 3]
    assert [e["message"]["role"] for e in events if "message" in e] == [
        "system",
        "user",
        "assistant",
    ]
    assert events[-1]["run"]["state"] == "done"
    states = [e["run"]["state"] for e in events if "run" in e]
    assert states[-1] == "done" and states == sorted(set(states), key=states.index)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)


def test_cloud_commands_against_a_server(served: Served, tmp_path: Path) -> None:
    home = tmp_path / "client-home"
    assert run_baton("login", served.url, "--token", served.token, home=home).returncode == 0
    repo = run_json("cloud", "repos", "add", "/srv/git/widgets", home=home)
    assert (repo["name"], repo["url"]) == ("widgets", "/srv/git/widgets")
    env = run_json("cloud", "envs", "add", "ci", "--secret", f"API_KEY={SECRET}", home=home)
    assert env["secrets"] == ["API_KEY"]
    started = run_json("cloud", "start", "--repo", "widgets", "--env", "ci", "Fix it", home=home)
    run, session = started["run"], started["session"]
    assert (run["repo_id"], run["environment_id"], session["platform"]) == (
        repo["id"],
        env["id"],
        "web",
    )
    assert [r["id"] for r in run_json("cloud", "list", home=home)] == [run["id"]]
    listed = run_baton("cloud", "envs", "list", home=home)
    assert "API_KEY" in listed.stdout and SECRET not in listed.stdout
    # it lives on the server, not in the client's home
    assert not (home / "baton.db").exists()
    on_server = run_json("cloud", "repos", "list", home=served.home, env={"BATON_USER": "owner"})
    assert [r["id"] for r in on_server] == [repo["id"]]
    nothing = run_baton("cloud", "stop", "run_01AAAAAAAAAAAAAAAAAAAAAAAA", home=home)
    assert (nothing.returncode, nothing.stderr) == (
        1,
        "error: no run run_01AAAAAAAAAAAAAAAAAAAAAAAA\n",
    )
