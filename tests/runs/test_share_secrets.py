"""An environment's secret that a run's agent wrote into a file is in the session's code (the
git patch, or the bundle once committed): a share never publishes it. The share scan looks
for the secret values of the environments the session's runs used (opened on the server,
never returned): a default share is refused with a finding that names the secret, --redact
and --allow-secrets leave the patch out; the owner's own export keeps it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.config import Settings
from baton.core.runs import DONE
from baton.runs.execute import execute
from baton.server import create_app
from baton.service import Service
from tests.fixtures.model import FakeModel, call
from tests.fixtures.servers import IN_PROCESS, SECRET, Live, in_process, person

TOKEN = "tok-Zq81-env-secret-value"  # no rule finds it: only the environment knows it


@pytest.fixture
def origin(git_repo: Path, tmp_path: Path) -> Path:
    """The bare repository the runs clone (made with `git_repo`)."""
    return tmp_path / "origin.git"


@pytest.fixture
def live(service: Service) -> Iterator[Live]:
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000, share_rate=100_000)
    with in_process(app) as transport:
        service.base_url = IN_PROCESS
        yield Live(IN_PROCESS, service, alice, bob, transport, app)


def run_writing_the_secret(
    live: Live, settings: Settings, origin: Path, fake_model: FakeModel, *, commit: bool = False
) -> str:
    """A run whose agent writes the environment's secret into a file (and commits it, with
    `commit`); the session's id."""
    service, owner = live.service, live.alice.id
    repo = service.add_repo(owner, f"file://{origin}", name="project")
    env = service.add_environment(owner, "deploy", secrets={"API_TOKEN": TOKEN})
    command = 'printf "token=%s\\n" "$API_TOKEN" > settings.env'
    if commit:
        command += " && git add settings.env && git commit -qm 'settings'"
    fake_model.reply("", call("c1", "run_command", command=command))
    fake_model.reply("Saved the settings.")
    run, session = service.start_run(owner, "Save the token", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    return session.id


def test_a_default_share_is_refused_naming_the_environment_secret(
    live: Live, settings: Settings, origin: Path, fake_model: FakeModel
) -> None:
    session_id = run_writing_the_secret(live, settings, origin, fake_model)
    finding = {"where": "git patch", "kind": "environment secret API_TOKEN"}
    finding["excerpt"] = "[SECRET:API_TOKEN]"
    with live.client(live.alice) as alice:
        refused = alice.post(f"/api/sessions/{session_id}/shares", json={})
        scan = alice.get(f"/api/sessions/{session_id}/scan").json()
        without_code = alice.get(f"/api/sessions/{session_id}/scan", params={"code": "false"})
        listed = alice.get("/api/shares").json()
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["message"] == (
        "this session holds 1 secret(s); nothing was shared. Remove them, or share with "
        "--redact (or --allow-secrets, or --no-code)"
    )
    assert error["findings"] == [finding] and scan["findings"] == [finding]
    assert without_code.json() == {"findings": []}
    assert listed == []
    assert TOKEN not in refused.text


@pytest.mark.parametrize("mode", ["redact", "allow"])
def test_no_surface_of_a_share_holds_the_environment_secret(
    mode: str, live: Live, settings: Settings, origin: Path, fake_model: FakeModel
) -> None:
    session_id = run_writing_the_secret(live, settings, origin, fake_model)
    service = live.service
    patch = service.get(live.alice.id, session_id).git["patch"]  # type: ignore[index]
    assert TOKEN.encode() in service.blob(live.alice.id, patch["sha256"], session_id=session_id)
    with live.client(live.alice) as alice:
        made = alice.post(f"/api/sessions/{session_id}/shares", json={"mode": mode})
        own = alice.get(f"/api/sessions/{session_id}/export", params={"format": "json"})
    assert made.status_code == 201, made.text
    share = made.json()
    assert share["git"]["patch"] is None
    assert share["git"]["patch_dropped"] == "the patch held 1 secret(s), so it is not shared"
    assert share["redacted"] == [
        {
            "where": "git patch",
            "kind": "environment secret API_TOKEN",
            "excerpt": "[SECRET:API_TOKEN]",
        }
    ]
    # the owner's export keeps the code
    assert own.json()["session"]["git"]["patch"]["sha256"] == patch["sha256"]
    surfaces: dict[str, Any] = {}
    with live.client() as anyone:
        surfaces["share"] = anyone.get(f"/api/shares/{share['id']}")
        surfaces["messages"] = anyone.get(
            f"/api/shares/{share['id']}/messages", params={"full": "true"}
        )
        surfaces["page"] = anyone.get(f"/share/{share['id']}")
        blob = anyone.get(f"/api/blobs/{patch['sha256']}", params={"share": share["id"]})
    assert blob.status_code == 404
    with live.client(live.bob) as bob:
        forked = bob.post(f"/api/shares/{share['id']}/fork", json={}).json()
        surfaces["fork"] = bob.get(f"/api/sessions/{forked['id']}/export")
        assert bob.get(f"/api/sessions/{forked['id']}").json()["git"]["patch"] is None
    for name, reply in surfaces.items():
        assert reply.status_code == 200, name
        assert TOKEN not in reply.text, name
    assert "Not published: the patch held 1 secret(s)" in surfaces["page"].text


def test_a_committed_environment_secret_withholds_the_bundle(
    live: Live, settings: Settings, origin: Path, fake_model: FakeModel
) -> None:
    session_id = run_writing_the_secret(live, settings, origin, fake_model, commit=True)
    with live.client(live.alice) as alice:
        refused = alice.post(f"/api/sessions/{session_id}/shares", json={})
        made = alice.post(f"/api/sessions/{session_id}/shares", json={"mode": "redact"})
    assert refused.status_code == 422
    (finding,) = refused.json()["error"]["findings"]
    assert finding["where"].startswith("git bundle: blob ")
    assert finding["where"].endswith(" (settings.env)")
    assert (finding["kind"], finding["excerpt"]) == (
        "environment secret API_TOKEN",
        "[SECRET:API_TOKEN]",
    )
    git = made.json()["git"]
    assert git["bundle"] is None
    assert (
        git["bundle_dropped"] == "the bundle of 1 commit(s) held 1 secret(s), so it is not shared"
    )
    assert TOKEN not in made.text


def test_a_fork_of_the_session_is_scanned_for_the_secret_too(
    live: Live, settings: Settings, origin: Path, fake_model: FakeModel
) -> None:
    """A fork keeps the git snapshot: the environments of the runs it was forked from count."""
    session_id = run_writing_the_secret(live, settings, origin, fake_model)
    fork = live.service.fork(live.alice.id, session_id)
    live.service.update(live.alice.id, fork.id, metadata={})  # what named the environment
    with live.client(live.alice) as alice:
        refused = alice.post(f"/api/sessions/{fork.id}/shares", json={})
        fork_of_fork = live.service.fork(live.alice.id, fork.id)
        again = alice.post(f"/api/sessions/{fork_of_fork.id}/shares", json={"mode": "allow"})
    assert refused.status_code == 422
    assert [f["kind"] for f in refused.json()["error"]["findings"]] == [
        "environment secret API_TOKEN"
    ]
    assert again.status_code == 201 and again.json()["git"]["patch"] is None
    assert TOKEN not in again.text


def test_a_share_of_a_server_session_carries_no_environment_or_workspace(
    live: Live, settings: Settings, origin: Path, fake_model: FakeModel
) -> None:
    """What a run leaves in its session (the environment it used, the worker's workspace
    folder, the repository's credentials) is the owner's: no surface of a share shows it."""
    service, owner = live.service, live.alice.id
    repo = service.add_repo(owner, f"file://{origin}", name="project")
    env = service.add_environment(owner, "deploy-env", variables={"STAGE": "blue-stage-7"})
    fake_model.reply("", call("c1", "run_command", command="pwd && echo $STAGE"))
    fake_model.reply("The folder and the stage are printed.")
    run, session = service.start_run(owner, "Where am I?", repo=repo.id, environment=env.id)
    ended = execute(service, settings, run.id, "test-worker")
    assert ended is not None and ended.state == DONE, ended
    workspace = str(settings.home / "runs" / "workspaces")
    own = service.export(owner, session.id, "json")
    assert env.id in str(own)  # the owner's session knows its environment
    with live.client(live.alice) as alice:
        made = alice.post(f"/api/sessions/{session.id}/shares", json={})
    assert made.status_code == 201, made.text
    share = made.json()
    surfaces: dict[str, Any] = {"made": made}
    with live.client() as anyone:
        surfaces["share"] = anyone.get(f"/api/shares/{share['id']}")
        surfaces["messages"] = anyone.get(
            f"/api/shares/{share['id']}/messages", params={"full": "true"}
        )
        surfaces["page"] = anyone.get(f"/share/{share['id']}")
    with live.client(live.bob) as bob:
        forked = bob.post(f"/api/shares/{share['id']}/fork", json={}).json()
        surfaces["fork"] = bob.get(f"/api/sessions/{forked['id']}/export")
        surfaces["fork-header"] = bob.get(f"/api/sessions/{forked['id']}")
    for name, reply in surfaces.items():
        assert reply.status_code in (200, 201), name
        for private in (env.id, "deploy-env", workspace, str(settings.home), repo.id):
            assert private not in reply.text, (name, private)
