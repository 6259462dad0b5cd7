"""Server runs as the service's users see them (issue 15), against every store: repositories
and environments per account, secrets sealed and never shown, starting, continuing, listing
and stopping runs, and what a worker asks (claim, move, heartbeat, reap, run_context)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton.config import Settings, build_service
from baton.core.errors import Conflict, InvalidInput, NotFound, RateLimited
from baton.core.models import JSON
from baton.core.runs import Run
from baton.scanning import SecretScanner
from baton.sealing import SECRET_FILE, Sealer, Unsealable
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.sqlite import SQLiteStore
from tests.test_service import Clock

SECRET = "hunter2-very-secret-value"
TOKEN = "ghp_tokenvalue0123456789"


class Recorder:
    """Events and a queue that keep what they were given (the service's two ports)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, JSON]] = []
        self.submitted: list[str] = []

    def publish(self, session_id: str, event: JSON) -> None:
        self.events.append((session_id, event))

    def submit(self, run: Run) -> None:
        self.submitted.append(run.id)

    def states(self) -> list[tuple[str, str]]:
        return [(e["run"]["id"], e["run"]["state"]) for _, e in self.events if e["kind"] == "run"]


@pytest.fixture
def recorder(service: Service) -> Recorder:
    recorder = Recorder()
    service.events = recorder
    service.queue = recorder
    return recorder


@pytest.fixture
def clock(service: Service) -> Clock:
    clock = Clock()
    service.now = clock
    return clock


def repo_of(service: Service, owner: str, name: str = "widgets") -> str:
    return service.add_repo(owner, f"https://git.example.com/team/{name}.git").id


# repositories


def test_a_repo_takes_its_name_from_the_url_and_keeps_credentials_apart(
    service: Service, owner: str
) -> None:
    repo = service.add_repo(owner, f"https://alice:{TOKEN}@git.example.com/team/widgets.git")
    assert repo.to_dict() == {
        "id": repo.id,
        "name": "widgets",
        "url": "https://git.example.com/team/widgets.git",
        "default_branch": None,
        "has_credentials": True,
        "created_at": repo.created_at,
    }
    assert TOKEN not in repr(repo) and repo.credentials is not None
    assert TOKEN.encode() not in repo.credentials
    assert service.repos(owner) == [repo]
    # a token given as the user of the URL is a credential too
    token_only = service.add_repo(owner, f"https://{TOKEN}@git.example.com/team/x.git")
    assert (token_only.url, token_only.name) == ("https://git.example.com/team/x.git", "x")


@pytest.mark.parametrize(
    ("url", "name", "stored"),
    [
        ("git@github.com:team/gadgets.git", "gadgets", "git@github.com:team/gadgets.git"),
        ("ssh://git@host:2222/srv/tools", "tools", "ssh://git@host:2222/srv/tools"),
        ("git://127.0.0.1:9418/lib.git/", "lib", "git://127.0.0.1:9418/lib.git/"),
        ("file:///srv/git/app.git", "app", "file:///srv/git/app.git"),
        ("/srv/git/server-side", "server-side", "/srv/git/server-side"),
    ],
)
def test_clone_urls_of_every_kind_the_server_can_reach(
    service: Service, owner: str, url: str, name: str, stored: str
) -> None:
    repo = service.add_repo(owner, url)
    assert (repo.name, repo.url, repo.credentials) == (name, stored, None)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "'ftp://host/x' is not a clone URL: use https://, ssh://, git://"),
        ("relative/path", "'relative/path' is not a clone URL: use https://"),
        ("https://host/x\n.git", "the repository URL holds control characters"),
        ("file://elsewhere/x", "'file://elsewhere/x' names a host: use file:///ABSOLUTE/PATH"),
        ("--upload-pack=touch /tmp/x", "is not a clone URL"),
        ("", "a repository needs a clone URL"),
    ],
)
def test_what_is_not_a_clone_url_is_refused(
    service: Service, owner: str, url: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("+", r"\+")):
        service.add_repo(owner, url)
    assert service.repos(owner) == []


def test_repo_names_are_unique_per_owner_and_removal_is_owner_only(
    service: Service, owner: str, other: str
) -> None:
    mine = service.add_repo(owner, "https://git.example.com/a/widgets.git")
    with pytest.raises(Conflict, match="a repository named 'widgets' exists already"):
        service.add_repo(owner, "https://git.example.com/b/widgets.git")
    renamed = service.add_repo(owner, "https://git.example.com/b/widgets.git", name="widgets-b")
    theirs = service.add_repo(other, "https://git.example.com/a/widgets.git")
    with pytest.raises(InvalidInput, match="repository name 'a b' is not a name"):
        service.add_repo(owner, "https://git.example.com/c/x.git", name="a b")
    with pytest.raises(InvalidInput, match="branch '-x' is not a branch name"):
        service.add_repo(owner, "https://git.example.com/c/x.git", default_branch="-x")
    for key in (theirs.id, "nothing"):
        with pytest.raises(NotFound, match=f"no repository {key}"):
            service.remove_repo(owner, key)
    service.remove_repo(owner, "widgets")  # by name
    assert service.repos(owner) == [renamed]
    service.remove_repo(owner, renamed.id)
    assert service.repos(owner) == [] and [r.id for r in service.repos(other)] == [theirs.id]
    assert mine.id not in [r.id for r in service.repos(other)]


# environments


def test_an_environment_shows_the_names_of_its_secrets_only(service: Service, owner: str) -> None:
    env = service.add_environment(
        owner,
        "ci",
        variables={"NODE_ENV": "test"},
        secrets={"API_KEY": SECRET},
        setup=["pip install -e .", {"command": "make", "timeout": 60}],
        network=True,
        model="gpt-x",
        push=True,
    )
    assert env.to_dict() == {
        "id": env.id,
        "name": "ci",
        "variables": {"NODE_ENV": "test"},
        "secrets": ["API_KEY"],
        "setup": [
            {"command": "pip install -e .", "timeout": 600.0},
            {"command": "make", "timeout": 60.0},
        ],
        "network": True,
        "model": "gpt-x",
        "push": True,
        "created_at": env.created_at,
        "updated_at": env.updated_at,
    }
    listed = service.environments(owner)
    assert [e.to_dict() for e in listed] == [env.to_dict()]
    for shown in (repr(env), repr(listed), orjson.dumps(env.to_dict()).decode()):
        assert SECRET not in shown
    assert env.secrets is not None and SECRET.encode() not in env.secrets


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"variables": {"1BAD": "x"}}, "variables: '1BAD' is not a name like API_KEY"),
        ({"secrets": {"A-B": "x"}}, "secrets: 'A-B' is not a name like API_KEY"),
        ({"secrets": {"EMPTY": ""}}, "secrets: the value of EMPTY is empty"),
        ({"variables": {"X": 1}}, "variables: the value of X must be a string"),
        ({"variables": {"K": "1"}, "secrets": {"K": "2"}}, "K: a name is a variable or a secret"),
        ({"setup": ["true"] * 21}, "setup: at most 20 commands, not 21"),
        ({"setup": [""]}, "setup command 1 needs a command"),
        ({"setup": [{"command": "x", "timeout": 0}]}, "setup command 1: timeout must be"),
        ({"setup": [{"command": "x", "shell": "zsh"}]}, "setup command 1: unknown key"),
        ({"network": "yes"}, "network must be true or false"),
    ],
)
def test_what_an_environment_refuses(
    service: Service, owner: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        service.add_environment(owner, "ci", **fields)
    assert service.environments(owner) == []


def test_changing_an_environment_merges_variables_and_secrets(
    service: Service, owner: str, other: str, clock: Clock
) -> None:
    env = service.add_environment(
        owner, "ci", variables={"A": "1", "B": "2"}, secrets={"S1": SECRET, "S2": "second-one"}
    )
    service.add_environment(owner, "dev")
    changed = service.change_environment(
        owner,
        "ci",
        {
            "variables": {"A": None, "C": "3"},
            "secrets": {"S1": None, "S3": "third-one"},
            "setup": ["make"],
            "model": None,
            "network": True,
        },
    )
    assert (changed.variables, changed.secret_names) == ({"B": "2", "C": "3"}, ("S2", "S3"))
    assert (changed.setup, changed.network) == (({"command": "make", "timeout": 600.0},), True)
    assert changed.updated_at > env.updated_at and changed.created_at == env.created_at
    assert service.environments(owner)[0] == changed
    with pytest.raises(Conflict, match="an environment named 'dev' exists already"):
        service.change_environment(owner, env.id, {"name": "dev"})
    with pytest.raises(InvalidInput, match="unknown field"):
        service.change_environment(owner, env.id, {"colour": "red"})
    with pytest.raises(NotFound, match=f"no environment {env.id}"):
        service.change_environment(other, env.id, {"name": "mine"})
    with pytest.raises(NotFound, match=f"no environment {env.id}"):
        service.remove_environment(other, env.id)
    service.remove_environment(owner, "ci")
    assert [e.name for e in service.environments(owner)] == ["dev"]


# runs


def test_a_run_on_a_new_session(
    service: Service, owner: str, recorder: Recorder, clock: Clock
) -> None:
    repo = service.add_repo(owner, "https://git.example.com/team/widgets.git", default_branch="dev")
    env = service.add_environment(owner, "ci", secrets={"API_KEY": SECRET})
    prompt = "Fix the flaky test in test_api.py\nIt fails one run in ten."
    run, session = service.start_run(owner, prompt, repo="widgets", environment="ci")
    assert (session.platform, session.title, session.task, session.repo) == (
        "web",
        "Fix the flaky test in test_api.py",
        prompt,
        "https://git.example.com/team/widgets.git",
    )
    assert session.metadata == {"run": {"repo": repo.id, "environment": env.id, "branch": "dev"}}
    assert run.to_dict() == {
        "id": run.id,
        "session_id": session.id,
        "repo_id": repo.id,
        "environment_id": env.id,
        "branch": "dev",
        "prompt": prompt,
        "model": None,
        "state": "queued",
        "active": True,
        "times": {"queued": run.created_at},
        "error": None,
        "cancel_requested": False,
        "created_at": run.created_at,
        "updated_at": run.created_at,
    }
    assert service.run(owner, run.id) == run
    assert service.runs(owner) == [run] and service.runs(owner, session_id=session.id) == [run]
    assert recorder.states() == [(run.id, "queued")] and recorder.submitted == [run.id]
    assert recorder.events[0][0] == session.id
    long = service.start_run(owner, "x" * 200, repo=repo.id)[1]
    assert long.title == "x" * 79 + "…"


def test_what_a_start_refuses(service: Service, owner: str, other: str) -> None:
    theirs = service.add_repo(other, "https://git.example.com/team/theirs.git")
    their_env = service.add_environment(other, "ci")
    repo_of(service, owner)
    with pytest.raises(InvalidInput, match="a run needs a task: the prompt is empty"):
        service.start_run(owner, "  \n", repo="widgets")
    with pytest.raises(NotFound, match=f"no repository {theirs.id}"):
        service.start_run(owner, "go", repo=theirs.id)
    with pytest.raises(NotFound, match=f"no environment {their_env.id}"):
        service.start_run(owner, "go", repo="widgets", environment=their_env.id)
    with pytest.raises(InvalidInput, match="a run needs a repository"):
        service.start_run(owner, "go")
    with pytest.raises(InvalidInput, match="branch '--force' is not a branch name"):
        service.start_run(owner, "go", repo="widgets", branch="--force")
    their_session = service.create(other, title="theirs")
    with pytest.raises(NotFound, match=f"no session {their_session.id}"):
        service.start_run(owner, "go", repo="widgets", session_id=their_session.id)
    assert service.runs(owner) == [] and [s.id for s in service.list(owner).sessions] == []


def test_one_run_per_session_at_a_time(service: Service, owner: str, recorder: Recorder) -> None:
    repo_of(service, owner)
    first, session = service.start_run(owner, "first", repo="widgets")
    with pytest.raises(Conflict) as raised:
        service.start_run(owner, "second", session_id=session.id)
    assert str(raised.value) == (
        f"session {session.id} has a run in progress ({first.id}): wait for it or stop it"
    )
    assert raised.value.status == 409
    service.cancel_run(owner, first.id)
    again, same = service.start_run(owner, "second", session_id=session.id)
    assert same.id == session.id and again.branch is None and again.repo_id == first.repo_id
    assert [r.id for r in service.runs(owner, session_id=session.id)] == [again.id, first.id]


def test_an_account_has_at_most_max_runs_active(service: Service, owner: str, other: str) -> None:
    service.max_runs = 2
    repo_of(service, owner)
    repo_of(service, other)
    runs = [service.start_run(owner, f"task {i}", repo="widgets")[0] for i in range(2)]
    with pytest.raises(RateLimited) as raised:
        service.start_run(owner, "one too many", repo="widgets")
    assert str(raised.value) == (
        "2 runs of this account are queued or running; the limit is 2 (BATON_MAX_RUNS): "
        "wait for one to end or stop one"
    )
    assert raised.value.status == 429
    assert len(service.list(owner).sessions) == 2  # no session was made for it
    service.start_run(other, "another account's", repo="widgets")
    service.cancel_run(owner, runs[0].id)
    service.start_run(owner, "now there is room", repo="widgets")


def test_continuing_uses_the_sessions_repo_branch_and_environment(
    service: Service, owner: str, recorder: Recorder
) -> None:
    repo = service.add_repo(owner, "https://git.example.com/team/widgets.git")
    env = service.add_environment(owner, "ci")
    first, session = service.start_run(
        owner, "start", repo="widgets", branch="feature/x", environment="ci", model="gpt-x"
    )
    service.cancel_run(owner, first.id)
    second, _ = service.start_run(owner, "go on", session_id=session.id)
    assert (second.repo_id, second.environment_id, second.branch, second.model) == (
        repo.id,
        env.id,
        "feature/x",
        None,
    )
    assert recorder.submitted == [first.id, second.id]


def test_a_cli_session_continues_on_the_server_when_its_remote_is_a_repo(
    service: Service, owner: str
) -> None:
    git = {"remote": "git@git.example.com:team/widgets.git", "branch": "main", "head": "a" * 40}
    cli = service.create(owner, title="from the terminal", git=git)
    with pytest.raises(InvalidInput, match=f"session {cli.id} has no repository this server"):
        service.start_run(owner, "go on", session_id=cli.id)
    repo = service.add_repo(owner, "https://git.example.com/team/widgets")
    run, session = service.start_run(owner, "go on", session_id=cli.id)
    assert (run.repo_id, run.branch, session.platform) == (repo.id, "main", "cli")
    assert session.metadata["run"] == {"repo": repo.id, "environment": None, "branch": "main"}


def test_stopping_a_run(service: Service, owner: str, other: str, recorder: Recorder) -> None:
    repo_of(service, owner)
    queued, _ = service.start_run(owner, "a", repo="widgets")
    with pytest.raises(NotFound, match=f"no run {queued.id}"):
        service.cancel_run(other, queued.id)
    stopped = service.cancel_run(owner, queued.id)
    assert (stopped.state, stopped.active, sorted(stopped.times)) == (
        "stopped",
        False,
        ["queued", "stopped"],
    )
    with pytest.raises(Conflict, match=f"run {queued.id} has ended \\(stopped\\)"):
        service.cancel_run(owner, queued.id)
    working, _ = service.start_run(owner, "b", repo="widgets")
    claimed = service.claim_run("worker-1")
    assert claimed is not None and claimed.id == working.id
    asked = service.cancel_run(owner, working.id)
    assert (asked.state, asked.cancel_requested) == ("preparing", True)
    assert service.heartbeat(working.id).cancel_requested is True  # what the worker sees
    ended = service.move_run(working.id, "stopped")
    assert (ended.state, ended.cancel_requested) == ("stopped", True)
    assert recorder.states() == [
        (queued.id, "queued"),
        (queued.id, "stopped"),
        (working.id, "queued"),
        (working.id, "preparing"),
        (working.id, "preparing"),
        (working.id, "stopped"),
    ]


def test_a_worker_moves_a_run_through_its_states(
    service: Service, owner: str, recorder: Recorder, clock: Clock
) -> None:
    repo_of(service, owner)
    run, _ = service.start_run(owner, "a", repo="widgets")
    assert service.claim_run("w1") is not None
    assert service.claim_run("w2") is None
    running = service.move_run(run.id, "running", workspace="/srv/ws/x")
    done = service.move_run(run.id, "done")
    assert (done.state, done.worker, done.workspace) == ("done", "w1", "/srv/ws/x")
    assert list(done.times) == ["queued", "preparing", "running", "done"]
    assert "workspace" not in done.to_dict() and "worker" not in done.to_dict()
    with pytest.raises(Conflict, match=f"run {run.id}: a done run cannot become running"):
        service.move_run(run.id, "running")
    with pytest.raises(NotFound, match="no run run_nothing"):
        service.move_run("run_nothing", "running")
    assert running.state == "running"
    assert recorder.states()[-2:] == [(run.id, "running"), (run.id, "done")]


def test_runs_whose_worker_went_quiet_are_failed(
    service: Service, owner: str, recorder: Recorder, clock: Clock
) -> None:
    repo_of(service, owner)
    quiet, _ = service.start_run(owner, "a", repo="widgets")
    alive, _ = service.start_run(owner, "b", repo="widgets")
    service.claim_run("w1")
    service.claim_run("w2")
    service.move_run(quiet.id, "running")
    clock.advance(seconds=20)
    service.heartbeat(alive.id)
    clock.advance(seconds=15)
    failed = service.reap_runs(older_than=30)
    assert [(r.id, r.state, r.error) for r in failed] == [
        (quiet.id, "failed", "the worker stopped answering")
    ]
    assert service.run(owner, alive.id).state == "preparing"
    assert service.reap_runs(older_than=30) == []
    # the session is free again
    service.start_run(owner, "again", session_id=quiet.session_id)


def test_runs_listing_and_reading_are_owner_only(service: Service, owner: str, other: str) -> None:
    repo_of(service, owner)
    run, session = service.start_run(owner, "a", repo="widgets")
    with pytest.raises(NotFound, match=f"no run {run.id}"):
        service.run(other, run.id)
    with pytest.raises(NotFound, match=f"no session {session.id}"):
        service.runs(other, session_id=session.id)
    assert service.runs(other) == []
    with pytest.raises(InvalidInput, match="limit must be between 1 and 500"):
        service.runs(owner, limit=0)


def test_run_context_opens_the_secrets_for_the_executor_only(service: Service, owner: str) -> None:
    service.add_repo(owner, f"https://bot:{TOKEN}@git.example.com/team/widgets.git")
    service.add_environment(owner, "ci", variables={"MODE": "test"}, secrets={"API_KEY": SECRET})
    run, session = service.start_run(owner, "a", repo="widgets", environment="ci")
    context = service.run_context(run.id)
    assert (context.run, context.session.id) == (run, session.id)
    assert context.secrets == {"API_KEY": SECRET}
    assert context.credentials == f"bot:{TOKEN}"
    assert context.environment is not None and context.environment.variables == {"MODE": "test"}
    assert SECRET not in repr(context) and TOKEN not in repr(context)
    # nothing a user can read holds them
    seen = orjson.dumps(
        [
            [r.to_dict() for r in service.repos(owner)],
            [e.to_dict() for e in service.environments(owner)],
            [r.to_dict() for r in service.runs(owner)],
            service.get(owner, session.id).to_dict(),
        ]
    ).decode()
    assert SECRET not in seen and TOKEN not in seen


# secrets at rest


def test_secrets_are_ciphertext_at_rest_bound_to_their_row(tmp_path: Path) -> None:
    db = tmp_path / "baton.db"
    service = Service(
        SQLiteStore(db), MemoryBlobStore(), scanner=SecretScanner({}), secret="k" * 40
    )
    owner = service.account("alice").id
    env = service.add_environment(owner, "ci", secrets={"API_KEY": SECRET})
    service.add_repo(owner, f"https://bot:{TOKEN}@git.example.com/team/widgets.git")
    raw = sqlite3.connect(db)
    (sealed,) = raw.execute("SELECT secrets FROM environments").fetchone()
    (credentials, url) = raw.execute("SELECT credentials, url FROM repos").fetchone()
    rows = repr([raw.execute(f"SELECT * FROM {t}").fetchall() for t in ("environments", "repos")])
    assert SECRET.encode() not in sealed and b"API_KEY" not in sealed
    assert TOKEN.encode() not in credentials and TOKEN not in url
    assert SECRET not in rows and TOKEN not in rows and "API_KEY" in rows  # the name is shown
    # another server secret does not open them; another row's id does not either
    with pytest.raises(Unsealable, match="do not open with this server's secret"):
        Sealer("x" * 40).open(bytes(sealed), env.id)
    with pytest.raises(Unsealable):
        Sealer("k" * 40).open(bytes(sealed), "env_other")
    assert orjson.loads(Sealer("k" * 40).open(bytes(sealed), env.id)) == {"API_KEY": SECRET}
    raw.close()
    service.close()


def test_the_cli_and_baton_serve_seal_with_one_server_secret(baton_home: Path) -> None:
    settings = Settings.load()
    cli = build_service(settings)
    owner = cli.account("alice").id
    assert not (baton_home / SECRET_FILE).exists()  # made only when something is sealed
    cli.add_environment(owner, "ci", secrets={"API_KEY": SECRET})
    cli.add_repo(owner, "/srv/git/widgets")
    run, _ = cli.start_run(owner, "a", repo="widgets", environment="ci")
    assert os.stat(baton_home / SECRET_FILE).st_mode & 0o777 == 0o600
    cli.close()
    server = build_service(Settings.load())  # another process, the same BATON_HOME
    assert server.run_context(run.id).secrets == {"API_KEY": SECRET}
    server.close()
    other = build_service(
        Settings.load(env={"BATON_SECRET": "z" * 40, "BATON_HOME": str(baton_home)})
    )
    with pytest.raises(Unsealable, match="was BATON_SECRET changed"):
        other.run_context(run.id)
    other.close()


def test_a_repository_cannot_be_inside_batons_data(
    service: Service, owner: str, tmp_path: Path
) -> None:
    home = tmp_path / "baton-data"
    workspace = home / "runs" / "workspaces" / "ses_someone_elses"
    workspace.mkdir(parents=True)
    (tmp_path / "innocent").symlink_to(workspace)
    service.private_roots = (home,)
    for url in (str(workspace), f"file://{workspace}", str(tmp_path / "innocent")):
        with pytest.raises(InvalidInput, match="is inside baton's data folder"):
            service.add_repo(owner, url, name="x")
    assert service.repos(owner) == []
    assert service.add_repo(owner, str(tmp_path / "elsewhere")).name == "elsewhere"


def test_secrets_that_no_longer_open_can_be_set_again(service: Service, owner: str) -> None:
    from baton.sealing import Sealer

    env = service.add_environment(owner, "ci", secrets={"A": "first", "B": "second"})
    service._sealer = Sealer("another server secret " * 2)  # BATON_SECRET was changed
    with pytest.raises(Unsealable):
        service.change_environment(owner, env.id, {"secrets": {"A": "new"}})
    changed = service.change_environment(owner, env.id, {"secrets": {"A": "new", "B": None}})
    assert changed.secret_names == ("A",)
    run, _ = service.start_run(owner, "x", repo=repo_of(service, owner), environment="ci")
    assert service.run_context(run.id).secrets == {"A": "new"}


def test_a_session_with_a_run_in_progress_is_not_deleted(service: Service, owner: str) -> None:
    repo_of(service, owner)
    run, session = service.start_run(owner, "a", repo="widgets")
    with pytest.raises(Conflict) as raised:
        service.delete(owner, session.id)
    assert str(raised.value) == (
        f"session {session.id} has a run in progress ({run.id}): stop it first"
    )
    service.cancel_run(owner, run.id)
    service.delete(owner, session.id)
    assert service.runs(owner) == []
