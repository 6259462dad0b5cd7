"""/api/repos, /api/environments and /api/runs over HTTP (the app in-process): what each
answers, with exact bodies and statuses; secrets go in and never come out."""

from __future__ import annotations

import pytest

from tests.fixtures.servers import Live

SECRET = "s3cr3t-value-never-shown"


def test_repositories_over_the_api(live: Live) -> None:
    with live.client(live.alice) as http:
        made = http.post(
            "/api/repos",
            json={"url": f"https://bot:{SECRET}@git.example.com/team/widgets.git"},
        )
        assert made.status_code == 201
        repo = made.json()
        assert repo == {
            "id": repo["id"],
            "name": "widgets",
            "url": "https://git.example.com/team/widgets.git",
            "default_branch": None,
            "has_credentials": True,
            "created_at": repo["created_at"],
        }
        assert http.get("/api/repos").json() == [repo]
        again = http.post("/api/repos", json={"url": "/srv/git/widgets"})
        assert again.status_code == 409
        assert again.json()["error"]["message"] == (
            "a repository named 'widgets' exists already: choose another name"
        )
        bad = http.post("/api/repos", json={"url": "ftp://x/y"})
        assert bad.status_code == 422 and "is not a clone URL" in bad.json()["error"]["message"]
        gone = http.delete(f"/api/repos/{repo['id']}")
        assert (gone.status_code, gone.json()) == (200, {"deleted": repo["id"]})
        assert http.get("/api/repos").json() == []
        assert http.delete(f"/api/repos/{repo['id']}").status_code == 404
    assert SECRET not in made.text


def test_environments_over_the_api(live: Live) -> None:
    with live.client(live.alice) as http:
        made = http.post(
            "/api/environments",
            json={
                "name": "ci",
                "variables": {"MODE": "test"},
                "secrets": {"API_KEY": SECRET},
                "setup": ["pip install -e .", {"command": "make", "timeout": 30}],
            },
        )
        assert made.status_code == 201, made.text
        env = made.json()
        assert env == {
            "id": env["id"],
            "name": "ci",
            "variables": {"MODE": "test"},
            "secrets": ["API_KEY"],
            "setup": [
                {"command": "pip install -e .", "timeout": 600.0},
                {"command": "make", "timeout": 30.0},
            ],
            "network": False,
            "model": None,
            "push": False,
            "created_at": env["created_at"],
            "updated_at": env["updated_at"],
        }
        changed = http.patch(
            f"/api/environments/{env['id']}",
            json={"secrets": {"API_KEY": None, "OTHER": SECRET}, "network": True, "model": "m"},
        )
        assert changed.status_code == 200
        assert {k: changed.json()[k] for k in ("secrets", "network", "model", "variables")} == {
            "secrets": ["OTHER"],
            "network": True,
            "model": "m",
            "variables": {"MODE": "test"},
        }
        many = http.post("/api/environments", json={"name": "big", "setup": ["true"] * 21})
        assert many.status_code == 422
        listed = http.get("/api/environments")
        assert [e["name"] for e in listed.json()] == ["ci"]
        for response in (made, changed, listed):
            assert SECRET not in response.text
        with live.client(live.bob) as other:
            assert other.patch(f"/api/environments/{env['id']}", json={}).status_code == 404
            assert other.get("/api/environments").json() == []
        assert http.delete(f"/api/environments/{env['id']}").json() == {"deleted": env["id"]}


def test_runs_over_the_api(live: Live) -> None:
    live.service.max_runs = 2
    with live.client(live.alice) as http:
        repo = http.post("/api/repos", json={"url": "/srv/git/widgets"}).json()
        started = http.post(
            "/api/runs", json={"repo": "widgets", "prompt": "Fix the flaky test", "branch": "main"}
        )
        assert started.status_code == 201, started.text
        run, session = started.json()["run"], started.json()["session"]
        assert (run["state"], run["repo_id"], run["branch"], run["session_id"]) == (
            "queued",
            repo["id"],
            "main",
            session["id"],
        )
        assert (session["title"], session["platform"], session["repo"]) == (
            "Fix the flaky test",
            "web",
            "/srv/git/widgets",
        )
        assert http.get(f"/api/runs/{run['id']}").json() == run
        assert http.get("/api/runs", params={"session": session["id"]}).json() == [run]
        busy = http.post("/api/runs", json={"prompt": "more", "session_id": session["id"]})
        assert busy.status_code == 409
        assert busy.json()["error"]["message"] == (
            f"session {session['id']} has a run in progress ({run['id']}): wait for it or stop it"
        )
        http.post("/api/runs", json={"repo": "widgets", "prompt": "second"})
        limited = http.post("/api/runs", json={"repo": "widgets", "prompt": "third"})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "30"
        empty = http.post("/api/runs", json={"repo": "widgets", "prompt": " "})
        assert empty.status_code == 422
        assert empty.json()["error"]["message"] == "a run needs a task: the prompt is empty"
        stopped = http.post(f"/api/runs/{run['id']}/cancel")
        assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
        ended = http.post(f"/api/runs/{run['id']}/cancel")
        assert ended.status_code == 409
        assert ended.json()["error"]["message"] == (
            f"run {run['id']} has ended (stopped): there is nothing to stop"
        )
        go_on = http.post("/api/runs", json={"prompt": "go on", "session_id": session["id"]})
        assert go_on.status_code == 201 and go_on.json()["session"]["id"] == session["id"]
        assert [r["prompt"] for r in http.get("/api/runs").json()] == [
            "go on",
            "second",
            "Fix the flaky test",
        ]


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "repo": "widgets", "extra": 1},
        {"repo": "widgets"},
        {"prompt": "x", "repo": "widgets", "branch": "a" * 201},
    ],
)
def test_bad_run_requests_are_422(live: Live, body: dict[str, object]) -> None:
    live.service.add_repo(live.alice.id, "/srv/git/widgets")
    with live.client(live.alice) as http:
        assert http.post("/api/runs", json=body).status_code == 422
        assert http.get("/api/runs").json() == []


def test_patch_null_leaves_a_field_but_the_model(live: Live) -> None:
    env = live.service.add_environment(
        live.alice.id, "ci", variables={"A": "1"}, setup=["make"], network=True, model="m"
    )
    with live.client(live.alice) as http:
        patched = http.patch(
            f"/api/environments/{env.id}",
            json={"name": None, "variables": None, "setup": None, "network": None, "model": None},
        )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["variables"], body["network"], body["model"]) == (
        "ci",
        {"A": "1"},
        True,
        None,
    )
    assert body["setup"] == [{"command": "make", "timeout": 600.0}]
