"""The executor of server runs, end to end over the real pieces: the service and SQLite store
`baton serve` builds, a bare repository, the sandbox, the fake model."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from baton import sandbox
from baton.config import Settings
from baton.core import ids
from baton.core.runs import DONE, FAILED, RUNNING, STOPPED
from baton.runs.execute import execute
from baton.runs.masking import Mask
from baton.service import Service
from tests.agent.test_sandbox import running
from tests.fixtures.git import commit_all, git
from tests.fixtures.model import FakeModel, Step, call
from tests.fixtures.services import unavailable
from tests.runs.conftest import Recorded, texts

SECRET = "s3cr3t-Ab9-value-42"


def wait_for(condition: Any, timeout: float = 60.0, why: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"not in time: {why}"
        time.sleep(0.05)


def test_a_run_works_in_its_workspace_and_records_a_snapshot(
    service: Service,
    settings: Settings,
    owner: str,
    repo: Any,
    fake_model: FakeModel,
    git_repo: Path,
    events: Recorded,
) -> None:
    fake_model.reply("", call("c1", "write_file", path="notes/hello.txt", content="hi there\n"))
    fake_model.reply("", call("c2", "run_command", command="cat notes/hello.txt && echo ran"))
    fake_model.reply("Wrote notes/hello.txt and ran it.")
    run, session = service.start_run(owner, "Add a hello file", repo=repo.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None
    assert (ended.state, ended.error) == (DONE, None)
    assert list(ended.times) == ["queued", "preparing", "running", "done"]
    assert ended.worker == "test-worker"
    assert texts(service, owner, session.id) == [
        ("user", "Add a hello file"),
        ("tool", "created notes/hello.txt (9 bytes)"),
        ("tool", "hi there\nran\n\n[exit code 0]"),
        ("assistant", "Wrote notes/hello.txt and ran it."),
    ]
    stored = service.get(owner, session.id)
    snapshot = stored.git
    assert snapshot is not None
    assert snapshot["branch"] == f"baton/{session.id}"
    assert snapshot["head"] == git(git_repo, "rev-parse", "HEAD")
    assert snapshot["remote_url"] == repo.url
    patch = service.blob(owner, snapshot["patch"]["sha256"], session_id=session.id)
    assert b"+++ b/notes/hello.txt" in patch and b"+hi there" in patch
    # the run's states were published to the session's watchers, in order
    states = [e["run"]["state"] for e in events.of("run")]
    assert states == ["queued", "preparing", "running", "done"]
    assert "".join(e["text"] for e in events.of("delta")) == "Wrote notes/hello.txt and ran it."


def test_a_failing_setup_command_fails_the_run_and_keeps_its_output(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    env = service.add_environment(
        owner,
        "broken",
        setup=["echo first ok", {"command": "echo installing; echo no such package >&2; exit 3"}],
    )
    run, session = service.start_run(owner, "Fix it", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == FAILED
    problem = (
        "setup command `echo installing; echo no such package >&2; exit 3` failed with exit code 3"
    )
    assert ended.error == problem
    assert texts(service, owner, session.id) == [
        ("system", "first ok\n"),
        ("system", "installing\nno such package\n"),
        ("system", f"run failed: {problem}"),
    ]
    setup = [
        p["setup"]
        for m in service.messages(owner, session.id)
        for p in m.parts
        if isinstance(p.get("setup"), dict)
    ]
    assert [(s["command"], s["exit_code"], s["source"]) for s in setup] == [
        ("echo first ok", 0, "environment"),
        ("echo installing; echo no such package >&2; exit 3", 3, "environment"),
    ]
    assert fake_model.requests == []  # the agent never started


def test_a_secret_is_never_stored(
    service: Service,
    settings: Settings,
    owner: str,
    repo: Any,
    fake_model: FakeModel,
    events: Recorded,
    baton_home: Path,
) -> None:
    env = service.add_environment(
        owner,
        "with-secret",
        variables={"GREETING": "hello"},
        secrets={"API_TOKEN": SECRET},
        setup=['echo "$GREETING, token=$API_TOKEN"'],
    )
    fake_model.reply("", call("c1", "run_command", command='echo "agent sees $API_TOKEN"'))
    # a big output goes to a blob; it is masked before that
    fake_model.reply("", call("c2", "run_command", command='yes "$API_TOKEN" | head -c 100000'))
    # the model repeats it, streamed slowly so that partial chunks are stored mid-answer
    answer = f"The token is {SECRET}, and again {SECRET}. Done."
    fake_model.add(Step(text=answer, chunk=3, delay=0.06))
    run, session = service.start_run(owner, "Show the token", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    found = texts(service, owner, session.id)
    assert found[0] == ("system", "hello, token=[SECRET:API_TOKEN]\n")
    assert ("tool", "agent sees [SECRET:API_TOKEN]\n\n[exit code 0]") in found
    big = next(t for r, t in found if t.startswith("[SECRET:API_TOKEN]\n[SECRET"))
    assert len(big) > 64 * 1024
    said = "".join(t for r, t in found if r == "assistant")
    assert said == answer.replace(SECRET, "[SECRET:API_TOKEN]")
    partials = [
        p
        for m in service.messages(owner, session.id)
        for p in m.parts
        if p.get("type") == "text" and p.get("partial")
    ]
    assert partials, "the answer was meant to be stored in partial chunks"
    # nowhere: not in a message, a blob, the model's requests, an event, the store's files
    everything = orjson.dumps(
        [m.to_dict() for m in service.messages(owner, session.id, hydrate=True)]
    )
    assert SECRET.encode() not in everything
    for path in baton_home.rglob("*"):
        if path.is_file() and "runs" not in path.relative_to(baton_home).parts:
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in orjson.dumps(fake_model.requests[1:]).decode()
    assert SECRET not in orjson.dumps(events.events).decode()


def test_a_stop_kills_the_running_command_within_seconds(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    tag = f"baton-run-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    fake_model.reply("never asked")
    run, session = service.start_run(owner, "Wait a long time", repo=repo.id)
    ended: list[Any] = []
    worker = threading.Thread(
        target=lambda: ended.append(execute(service, settings, run.id, "test-worker"))
    )
    worker.start()
    wait_for(lambda: running(tag), why="the command started")
    assert service.run(owner, run.id).state == RUNNING
    asked = time.monotonic()
    service.cancel_run(owner, run.id)
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert time.monotonic() - asked < 10
    assert ended[0].state == STOPPED and ended[0].error is None
    assert running(tag) == []
    found = texts(service, owner, session.id)
    assert found[-1] == ("system", "stopped by the user")
    assert ("tool", "interrupted by the user before this tool call finished") in found
    assert len(fake_model.requests) == 1
    assert service.verify(owner, session.id).ok


def test_a_cli_session_continues_on_the_server_and_comes_back(
    service: Service,
    settings: Settings,
    owner: str,
    fake_model: FakeModel,
    dirty_repo: Path,
    origin: Path,
    tmp_path: Path,
) -> None:
    """A session started in the terminal, with unpushed commits and uncommitted changes,
    continued on the server (cold: its snapshot restored into a new workspace), then brought
    home again with a restore of the snapshot the run recorded."""
    from baton import gitstate

    def put(data: bytes) -> str:
        sha = ids.sha256_hex(data)
        service.put_blob(sha, data, owner)
        return sha

    captured = gitstate.capture(dirty_repo, put)
    assert captured is not None and captured["ahead"] == 2
    cli_session = service.create(owner, task="feature work", git=captured)
    service.add_repo(owner, str(origin), name="project")
    look = "git log --format=%s -3 && cat src/feature.py notes.txt && git status --short"
    fake_model.reply("", call("c1", "run_command", command=look))
    fake_model.reply("", call("c2", "write_file", path="server.txt", content="from the server\n"))
    fake_model.reply("Continued.")
    run, session = service.start_run(owner, "Continue the feature", session_id=cli_session.id)
    assert session.id == cli_session.id
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    seen = texts(service, owner, session.id)[1][1]
    assert seen.startswith("local two\nlocal one\nfirst\nFEATURE = 2\nuntracked notes\n")
    assert "M  README.md" in seen and "A  notes.txt" in seen
    back = service.get(owner, session.id).git
    assert back is not None and back["ahead"] == 2 and back["head"] == captured["head"]
    home = tmp_path / "home-again"

    def blob(sha: str) -> bytes:
        return service.blob(owner, sha, session_id=session.id)

    gitstate.restore(back, blob, home, session_id=session.id, source=str(origin))
    assert (home / "server.txt").read_text() == "from the server\n"
    assert (home / "src" / "feature.py").read_text() == "FEATURE = 2\n"
    assert (home / "notes.txt").read_text() == "untracked notes\n"


def test_a_run_past_its_wall_time_fails(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    fake_model.reply("", call("c1", "run_command", command="sleep 600", timeout=900))
    run, session = service.start_run(owner, "Take forever", repo=repo.id)
    quick = dataclasses.replace(settings, run_timeout=3.0)
    started = time.monotonic()
    ended = execute(service, quick, run.id, "test-worker", heartbeat=0.5)
    assert time.monotonic() - started < 15
    assert ended is not None and ended.state == FAILED
    assert ended.error == "the run took longer than 3s"
    assert texts(service, owner, session.id)[-1] == (
        "system",
        "run failed: the run took longer than 3s",
    )


def test_an_environment_that_pushes_commits_the_work_and_pushes_the_branch(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel, origin: Path
) -> None:
    env = service.add_environment(owner, "pushing", push=True)
    fake_model.reply("", call("c1", "write_file", path="pushed.txt", content="pushed\n"))
    fake_model.reply("Done.")
    run, session = service.start_run(
        owner, "Add pushed.txt\nwith details", repo=repo.id, environment=env.id
    )
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    branch = f"baton/{session.id}"
    assert git(origin, "show", f"{branch}:pushed.txt") == "pushed"
    assert git(origin, "log", "-1", "--format=%B", branch) == (
        f"Add pushed.txt\n\nbaton session {session.id}, run {run.id}"
    )
    snapshot = service.get(owner, session.id).git
    assert snapshot is not None
    assert snapshot["head"] == git(origin, "rev-parse", branch)
    assert (snapshot["ahead"], snapshot["patch"], snapshot["bundle"]) == (0, None, None)


def sandboxed_python() -> str:
    """A Python with pip that the sandbox shows (not one under a home folder it hides)."""
    import shutil
    import subprocess

    for found in (shutil.which("python3"), "/usr/bin/python3", sys.executable):
        if not found or not Path(found).exists():
            continue
        real = Path(found).resolve()
        if any(real.is_relative_to(hidden) for hidden in ("/root", "/home", "/tmp")):
            continue
        check = subprocess.run([str(real), "-m", "pip", "--version"], capture_output=True)
        if check.returncode == 0:
            return str(real)
    unavailable("no Python with pip outside the home folders, for the sandbox to run")


def wheel(folder: Path) -> Path:
    """A pure-Python wheel of the package `tinypkg`, made by hand (no build, no index)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "tinypkg/__init__.py": b'VALUE = "from the wheel"\n',
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    files["tinypkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tinypkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_setup_installs_from_a_wheel_folder_for_the_agent(
    service: Service,
    settings: Settings,
    owner: str,
    fake_model: FakeModel,
    git_repo: Path,
    origin: Path,
) -> None:
    """The environment's setup commands run first, then the repository's own
    (.baton/setup.toml): here one installs a package from the repository's wheel folder, and
    the agent's command uses it."""
    python = sandboxed_python()
    wheel(git_repo / "wheels")
    install = f"{python} -m pip install -q --no-index --find-links wheels --target .deps tinypkg"
    (git_repo / ".baton").mkdir()
    (git_repo / ".baton" / "setup.toml").write_text(f"commands = [{install!r}]\n".replace("'", '"'))
    (git_repo / ".gitignore").write_text("*.log\nbuild/\n.deps/\n")
    commit_all(git_repo, "wheels and setup")
    git(git_repo, "push", "-q", "origin", "main")
    repo = service.add_repo(owner, str(origin))
    env = service.add_environment(
        owner, "py", variables={"MARK": "env"}, setup=['echo "$MARK first"']
    )
    use = f"PYTHONPATH=.deps {python} -c 'import tinypkg; print(tinypkg.VALUE)'"
    fake_model.reply("", call("c1", "run_command", command=use))
    fake_model.reply("It imports.")
    run, session = service.start_run(owner, "Use tinypkg", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    setup = [
        (p["setup"]["source"], p["setup"]["exit_code"])
        for m in service.messages(owner, session.id)
        for p in m.parts
        if isinstance(p.get("setup"), dict)
    ]
    assert setup == [("environment", 0), (".baton/setup.toml", 0)]
    assert ("tool", "from the wheel\n\n[exit code 0]") in texts(service, owner, session.id)


def test_a_new_workspace_gives_the_first_request_its_instructions_and_the_tools_its_files(
    service: Service,
    settings: Settings,
    owner: str,
    fake_model: FakeModel,
    git_repo: Path,
    origin: Path,
) -> None:
    """A new workspace's files are checked out beside the first model request: the
    request has the repository's AGENTS.md (read from the start commit), and the first
    tool call sees the whole tree."""
    (git_repo / "AGENTS.md").write_text("Always answer in haiku.\n")
    for i in range(300):
        (git_repo / "many" / f"f{i}.txt").parent.mkdir(exist_ok=True)
        (git_repo / "many" / f"f{i}.txt").write_text(f"{i}\n")
    commit_all(git_repo, "instructions and files")
    git(git_repo, "push", "-q", "origin", "main")
    repo = service.add_repo(owner, str(origin))
    fake_model.reply("", call("c1", "run_command", command="ls many | wc -l; cat many/f299.txt"))
    fake_model.reply("Counted.")
    run, session = service.start_run(owner, "Count the files", repo=repo.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    system = fake_model.requests[0]["messages"][0]
    assert system["role"] == "system"
    assert (
        '<instructions file="AGENTS.md">\nAlways answer in haiku.\n</instructions>'
        in (system["content"])
    )
    assert ("tool", "300\n299\n\n[exit code 0]") in texts(service, owner, session.id)
    assert service.get(owner, session.id).git["patch"] is None  # type: ignore[index]


def test_the_servers_data_and_settings_are_out_of_the_sandboxs_sight(
    service: Service,
    settings: Settings,
    owner: str,
    repo: Any,
    fake_model: FakeModel,
    baton_home: Path,
    monkeypatch: Any,
) -> None:
    """A run's commands see their workspace, not the server's store, blobs, mirrors, other
    sessions' workspaces or secret file, nor its BATON_* and AWS_* settings."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("BATON_DATABASE_URL_NOTE", "postgresql://baton:pw@db/baton")
    env = service.add_environment(owner, "sealed", secrets={"API_TOKEN": SECRET})
    assert (baton_home / "server-secret").is_file() and (baton_home / "baton.db").is_file()
    (baton_home / "runs" / "workspaces" / "ses_someone_else").mkdir(parents=True)
    look = (
        f"ls -A {baton_home} {baton_home}/runs {baton_home}/runs/workspaces; "
        f"cat {baton_home}/server-secret; env | grep -c -E '^(BATON_|AWS_)'; echo end"
    )
    fake_model.reply("", call("c1", "run_command", command=look))
    fake_model.reply("Looked.")
    run, session = service.start_run(owner, "Look around", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    seen = texts(service, owner, session.id)[1][1]
    # the workspace is shown at /home/user/project: BATON_HOME is an empty folder (and
    # its path is [BATON_HOME] in what the run records)
    missing = "ls: cannot access '[BATON_HOME]/runs{}': No such file or directory\n"
    assert seen == (
        missing.format("")
        + missing.format("/workspaces")
        + "[BATON_HOME]:\n"
        + "cat: [BATON_HOME]/server-secret: No such file or directory\n0\nend\n\n[exit code 0]"
    )


def test_the_commands_see_the_workspace_at_a_neutral_path(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    """Setup and the agent's commands see the workspace at /home/user/<repo name> (HOME
    /home/user), as the agent's prompt and the snapshot say: a virtualenv the setup made
    works in the agent's commands, and no record holds the server's folders."""
    python = sandboxed_python()
    env = service.add_environment(
        owner, "venv", setup=[f"{python} -m venv --without-pip .venv && pwd"]
    )
    look = "pwd; echo $HOME; . .venv/bin/activate && python -c 'import sys; print(sys.prefix)'"
    fake_model.reply("", call("c1", "run_command", command=look))
    fake_model.reply("Looked.")
    run, session = service.start_run(owner, "Where am I?", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    shown = sandbox.shown_path("project")
    assert str(shown) == "/home/user/project" or not Path("/home").is_dir()
    assert texts(service, owner, session.id) == [
        ("system", f"{shown}\n"),
        ("user", "Where am I?"),
        ("tool", f"{shown}\n{shown.parent}\n{shown}/.venv\n\n[exit code 0]"),
        ("assistant", "Looked."),
    ]
    system = fake_model.requests[0]["messages"][0]["content"]
    assert f"working in the repository at {shown} (" in system
    assert str(settings.home) not in system
    stored = service.get(owner, session.id)
    assert stored.git is not None and stored.git["root"] == str(shown)
    exported = orjson.dumps(service.export(owner, session.id, "json")).decode()
    assert str(settings.home) not in exported and str(shown) in exported


def test_what_the_worker_words_shows_the_folders_as_the_commands_see_them() -> None:
    """The worker's own messages (an error, a file tool's) name the workspace as the
    commands see it and the rest of BATON_HOME as [BATON_HOME]; secrets are masked too."""
    workspace = "/srv/baton/runs/workspaces/ses_X"
    mask = Mask(
        {"API_TOKEN": "tok-123456"},
        {workspace: "/home/user/project", "/srv/baton": "[BATON_HOME]"},
    )
    said = f"in {workspace}/src: tok-123456; /srv/baton/runs/mirrors/ab: locked"
    assert mask.text(said) == (
        "in /home/user/project/src: [SECRET:API_TOKEN]; [BATON_HOME]/runs/mirrors/ab: locked"
    )
    assert mask.value({"root": workspace, "parts": [workspace]}) == {
        "root": "/home/user/project",
        "parts": ["/home/user/project"],
    }


def test_a_warm_workspace_runs_setup_again_only_when_it_changed_or_failed(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    env = service.add_environment(owner, "steps", setup=["echo setup one"])

    def go(prompt: str, session_id: str | None = None) -> tuple[str, list[str]]:
        fake_model.reply("ok")
        if session_id is None:
            run, session = service.start_run(owner, prompt, repo=repo.id, environment=env.id)
        else:
            run, session = service.start_run(owner, prompt, session_id=session_id)
        ended = execute(service, settings, run.id, "test-worker")
        assert ended is not None
        setup = [
            str(p["text"])
            for m in service.messages(owner, session.id)
            for p in m.parts
            if isinstance(p.get("setup"), dict)
        ]
        return ended.state, setup

    state, setup = go("first")
    assert (state, setup) == (DONE, ["setup one\n"])
    session_id = service.runs(owner)[0].session_id
    marker = settings.home / "runs" / "workspaces" / session_id / ".git" / "warm-marker"
    marker.write_text("the same clone")
    assert go("second", session_id) == (DONE, ["setup one\n"])  # warm: not again
    service.change_environment(owner, env.id, {"setup": ["echo setup two; exit 5"]})
    assert go("third", session_id) == (FAILED, ["setup one\n", "setup two\n"])
    service.change_environment(owner, env.id, {"setup": ["echo setup three"]})
    assert go("fourth", session_id) == (DONE, ["setup one\n", "setup two\n", "setup three\n"])
    assert go("fifth", session_id) == (DONE, ["setup one\n", "setup two\n", "setup three\n"])
    assert marker.exists()  # warm all along


def test_a_worker_whose_run_was_reaped_meanwhile_stops_working_on_it(
    service: Service, settings: Settings, owner: str, repo: Any, fake_model: FakeModel
) -> None:
    """A worker cut off for a while (its run failed by another's reaper) stops at its next
    heartbeat: it kills its command and leaves the run as the reaper ended it."""
    tag = f"baton-run-test-{uuid.uuid4().hex[:10]}"
    fake_model.reply("", call("c1", "run_command", command=f"exec -a {tag} sleep 600", timeout=900))
    run, _ = service.start_run(owner, "Wait a long time", repo=repo.id)
    ended: list[Any] = []
    worker = threading.Thread(
        target=lambda: ended.append(execute(service, settings, run.id, "test-worker"))
    )
    worker.start()
    wait_for(lambda: running(tag), why="the command started")
    [reaped] = service.reap_runs(0)
    assert reaped.id == run.id
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert running(tag) == []
    assert (ended[0].state, ended[0].error) == (FAILED, "the worker stopped answering")
    assert service.run(owner, run.id).times == ended[0].times
