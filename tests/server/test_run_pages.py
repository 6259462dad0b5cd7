"""The pages of server runs, in process: repositories and environments (add, list, edit,
delete; secrets go in and never come back out), "New session" on Recent Sessions, the run
panel of a session page with Stop, the prompt box (busy while a run is active), "Continue
in the terminal" and "Continue on the server". Every form wants its CSRF token; another
account's ids are 404. No worker runs here: runs stay queued until stopped."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from baton.core.errors import NotFound
from tests.fixtures.servers import IN_PROCESS, Live, Person

SECRET_VALUE = "s3cr3t-value-9f8e7d6c5b4a"
OTHER_SECRET = "another-secret-1a2b3c4d5e"


def csrf_of(http: httpx.Client, path: str = "/") -> str:
    """The CSRF token of the forms on `path` (its cookie is kept by the client)."""
    page = http.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


class _Text(HTMLParser):
    """The text inside the element with one id."""

    VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr"})

    def __init__(self, element_id: str) -> None:
        super().__init__()
        self.element_id = element_id
        self.depth = 0  # open elements inside the wanted one, itself included
        self.found = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.parts.append(" ")
            self.depth += tag not in self.VOID
        elif ("id", self.element_id) in attrs and not self.found:
            self.found = True
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def text_of(page: httpx.Response, element_id: str) -> str:
    """The text of the element with this id, as a reader sees it (tags dropped, spaces
    squeezed)."""
    parser = _Text(element_id)
    parser.feed(page.text)
    assert parser.found, f"no #{element_id}"
    text = " ".join("".join(parser.parts).split())
    return text.replace("( ", "(").replace(" )", ")")


def flash(page: httpx.Response) -> str:
    return text_of(page, "form-error")


def client(live: Live, who: Person) -> httpx.Client:
    return live.client(who, follow_redirects=False)


@pytest.fixture
def bare(origin: Path, git_repo: Path) -> Path:
    """A bare repository on this machine (the server may clone a path)."""
    return origin


def add_repo(http: httpx.Client, url: str, **fields: str) -> httpx.Response:
    token = csrf_of(http, "/repos")
    return http.post("/repos", data={"csrf": token, "url": url, **fields})


def test_repositories_are_added_listed_and_deleted(live: Live, bare: Path) -> None:
    with client(live, live.alice) as http:
        empty = http.get("/repos")
        assert text_of(empty, "no-repos") == (
            "No repository yet. Add one to start sessions on the server."
        )
        added = add_repo(http, str(bare), name="widgets", default_branch="main")
        assert (added.status_code, added.headers["location"]) == (303, "/repos")
        with_token = add_repo(
            http, "https://git.example.com/team/api.git", credentials="bot:" + SECRET_VALUE
        )
        assert with_token.status_code == 303
        (api, widgets) = sorted(live.service.repos(live.alice.id), key=lambda r: r.name)
        assert (api.name, widgets.name) == ("api", "widgets")

        page = http.get("/repos")
        assert text_of(page, widgets.id) == f"widgets {bare} main none Delete…"
        assert text_of(page, api.id) == (
            "api https://git.example.com/team/api.git the remote's set Delete…"
        )
        assert SECRET_VALUE not in page.text

        # a refused one: the reason, the page again, what was typed kept
        refused = add_repo(http, "ftp://example.com/x.git", name="x")
        assert refused.status_code == 422
        assert flash(refused) == (
            "'ftp://example.com/x.git' is not a clone URL: use https://, ssh://, git://, "
            "file:// or an absolute path on the server"
        )
        assert 'value="ftp://example.com/x.git"' in refused.text
        assert len(live.service.repos(live.alice.id)) == 2

        confirm = http.get(f"/repos/{api.id}/delete")
        assert confirm.status_code == 200
        assert "Delete the repository “api”?" in confirm.text
        token = csrf_of(http, "/repos")
        gone = http.post(f"/repos/{api.id}/delete", data={"csrf": token})
        assert (gone.status_code, gone.headers["location"]) == (303, "/repos")
        assert [r.name for r in live.service.repos(live.alice.id)] == ["widgets"]


def environment_form(token: str, **fields: str | list[str]) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {
        "csrf": token,
        "name": "python",
        "variables": "APP_ENV=test\nDEBUG=1\n",
        "secrets": f"PYPI_TOKEN={SECRET_VALUE}\nDB_PASSWORD={OTHER_SECRET}",
        "setup_command": ["pip install -e .", "pytest -q --co", ""],
        "setup_timeout": ["300", "", ""],
        "model": "qwen-coder",
        "network": "1",
    }
    form.update(fields)
    return form


def test_environments_keep_secrets_write_only(live: Live) -> None:
    with client(live, live.alice) as http:
        token = csrf_of(http, "/environments")
        added = http.post("/environments", data=environment_form(token))
        assert (added.status_code, added.headers["location"]) == (303, "/environments")
        (env,) = live.service.environments(live.alice.id)
        assert env.to_dict() | {"id": "", "created_at": "", "updated_at": ""} == {
            "id": "",
            "name": "python",
            "variables": {"APP_ENV": "test", "DEBUG": "1"},
            "secrets": ["DB_PASSWORD", "PYPI_TOKEN"],
            "setup": [
                {"command": "pip install -e .", "timeout": 300.0},
                {"command": "pytest -q --co", "timeout": 600.0},
            ],
            "network": True,
            "model": "qwen-coder",
            "push": False,
            "created_at": "",
            "updated_at": "",
        }

        listing = http.get("/environments")
        assert text_of(listing, env.id) == (
            "python Variables APP_ENV=test DEBUG=1 Secrets DB_PASSWORD set PYPI_TOKEN set "
            "Setup pip install -e . (300 s) pytest -q --co (600 s) Network on for the agent "
            "Model qwen-coder Push no Edit Delete…"
        )
        edit = http.get(f"/environments/{env.id}")
        for page in (listing, edit):
            assert SECRET_VALUE not in page.text and OTHER_SECRET not in page.text
        assert text_of(edit, "secret-PYPI_TOKEN") == "PYPI_TOKEN set remove"
        assert 'name="secret_value" type="password"' in edit.text

        # change: a new value for one secret, remove the other, add one, drop the network
        token = csrf_of(http, f"/environments/{env.id}")
        changed = http.post(
            f"/environments/{env.id}",
            data={
                "csrf": token,
                "name": "python-3.12",
                "variables": "APP_ENV=ci",
                "secret_name": ["DB_PASSWORD", "PYPI_TOKEN"],
                "secret_value": ["", "rotated-" + SECRET_VALUE],
                "secret_remove": ["DB_PASSWORD"],
                "new_secrets": "NPM_TOKEN=npm-123456",
                "setup_command": ["make deps", ""],
                "setup_timeout": ["", ""],
                "model": "",
            },
        )
        assert (changed.status_code, changed.headers["location"]) == (303, "/environments")
        (env,) = live.service.environments(live.alice.id)
        assert (env.name, env.variables, env.secret_names, env.network, env.model) == (
            "python-3.12",
            {"APP_ENV": "ci"},
            ("NPM_TOKEN", "PYPI_TOKEN"),
            False,
            None,
        )
        assert [s["command"] for s in env.setup] == ["make deps"]

        # refused input: the one-line reason, the form again with what was typed
        token = csrf_of(http, "/environments")
        bad_line = http.post(
            "/environments", data=environment_form(token, name="other", variables="A=1\nB")
        )
        assert bad_line.status_code == 422
        assert flash(bad_line) == "variable line 2: write it as NAME=value"
        assert 'value="other"' in bad_line.text and SECRET_VALUE not in bad_line.text
        bad_timeout = http.post(
            "/environments",
            data=environment_form(token, name="other", setup_timeout=["soon", "", ""]),
        )
        assert bad_timeout.status_code == 422
        assert flash(bad_timeout) == (
            "setup command 1: the timeout is a number of seconds (1 to 86400)"
        )
        assert len(live.service.environments(live.alice.id)) == 1

        confirm = http.get(f"/environments/{env.id}/delete")
        assert "Delete the environment “python-3.12”?" in confirm.text
        gone = http.post(f"/environments/{env.id}/delete", data={"csrf": token})
        assert gone.status_code == 303
        assert live.service.environments(live.alice.id) == []


def test_new_session_runs_on_the_server_and_stops(live: Live, bare: Path) -> None:
    with client(live, live.alice) as http:
        first = http.get("/")
        assert text_of(first, "no-repos") == (
            "To have the agent work on the server, add a repository first."
        )
        assert '<a href="/repos">add a repository</a>' in first.text
        add_repo(http, str(bare), name="widgets")
        (repo,) = live.service.repos(live.alice.id)
        token = csrf_of(http, "/environments")
        http.post("/environments", data=environment_form(token))
        (env,) = live.service.environments(live.alice.id)

        index = http.get("/")
        assert f'<option value="{repo.id}">widgets</option>' in index.text
        assert f'<option value="{env.id}">python</option>' in index.text
        token = csrf_of(http)
        empty = http.post(
            "/runs", data={"csrf": token, "repo": repo.id, "branch": "main", "prompt": " "}
        )
        assert empty.status_code == 422
        assert flash(empty) == "a run needs a task: the prompt is empty"
        assert 'name="branch" value="main"' in empty.text

        started = http.post(
            "/runs",
            data={"csrf": token, "repo": repo.id, "branch": "main", "environment": env.id,
                  "model": "", "prompt": "Add a --verbose flag"},
        )  # fmt: skip
        assert started.status_code == 303
        session_id = started.headers["location"].removeprefix("/sessions/")
        (run,) = live.service.runs(live.alice.id, session_id=session_id)
        assert (run.state, run.repo_id, run.environment_id, run.branch, run.prompt) == (
            "queued",
            repo.id,
            env.id,
            "main",
            "Add a --verbose flag",
        )
        session = live.service.get(live.alice.id, session_id)
        assert (session.title, session.platform) == ("Add a --verbose flag", "web")

        # the list shows the run's state; the page its panel, Stop, and a busy prompt box
        listing = http.get("/")
        assert re.search(
            rf'href="/sessions/{session_id}">Add a --verbose flag</a>.*?'
            r'<span class="status run-state run-queued"[^>]*>queued</span>',
            listing.text,
            re.S,
        )
        page = http.get(f"/sessions/{session_id}")
        assert text_of(page, "run-state") == "Queued"
        assert text_of(page, "run-times").startswith("Queued 20")
        assert f'action="/runs/{run.id}/cancel" id="run-stop">' in page.text
        assert 'id="send" disabled' in page.text
        assert 'id="prompt-busy">' in page.text
        assert '<ol class="conversation" id="conversation"' in page.text
        assert '<div id="streaming" aria-live="polite"></div>' in page.text
        assert (
            f'<script src="/static/live.js" data-events="/api/sessions/{session_id}/events'
            f'?after=0" defer></script>'
        ) in page.text
        assert '<script src="/static/session.js" defer></script>' in page.text

        # a prompt while the run is active: 409, said on the page, the text kept
        token = csrf_of(http, f"/sessions/{session_id}")
        busy = http.post(
            f"/sessions/{session_id}/runs", data={"csrf": token, "prompt": "And a -q flag"}
        )
        assert busy.status_code == 409
        assert flash(busy) == (
            f"session {session_id} has a run in progress ({run.id}): wait for it or stop it"
        )
        assert ">And a -q flag</textarea>" in busy.text

        # Stop: a queued run is stopped at once; then the prompt starts the next run
        stopped = http.post(f"/runs/{run.id}/cancel", data={"csrf": token})
        assert (stopped.status_code, stopped.headers["location"]) == (
            303,
            f"/sessions/{session_id}#run-panel",
        )
        page = http.get(f"/sessions/{session_id}")
        assert text_of(page, "run-state") == "Stopped"
        assert f'action="/runs/{run.id}/cancel" id="run-stop" hidden>' in page.text
        assert 'id="send">' in page.text
        again = http.post(f"/runs/{run.id}/cancel", data={"csrf": token})
        assert again.status_code == 409
        next_run = http.post(
            f"/sessions/{session_id}/runs", data={"csrf": token, "prompt": "And a -q flag"}
        )
        assert next_run.status_code == 303
        runs = live.service.runs(live.alice.id, session_id=session_id)
        assert sorted(r.state for r in runs) == ["queued", "stopped"]
        assert text_of(http.get(f"/sessions/{session_id}"), "run-panel").startswith(
            "Server run 2 of 2 Queued"
        )


def test_every_session_page_says_how_to_continue_in_the_terminal(live: Live) -> None:
    session = live.service.create(live.alice.id, title="Terminal work")
    with client(live, live.alice) as http:
        page = http.get(f"/sessions/{session.id}")
    commands = re.findall(r'<input class="copy" id="cmd-(\w+)" readonly value="([^"]+)"', page.text)
    assert commands == [
        ("login", f"baton login {IN_PROCESS}"),
        ("chat", f"baton chat -s {session.id}"),
        ("restore", f"baton restore {session.id}"),
    ]
    # no git context, no run: nothing to continue on the server, no prompt box
    assert 'id="continue-server"' not in page.text and 'id="prompt-form"' not in page.text


def test_a_terminal_session_with_git_context_continues_on_the_server(
    live: Live, bare: Path
) -> None:
    git = {"remote": str(bare), "branch": "main", "head": "0" * 40}
    session = live.service.create(live.alice.id, title="From the CLI", git=git)
    with client(live, live.alice) as http:
        before = http.get(f"/sessions/{session.id}")
        assert text_of(before, "no-repos") == f"Add the repository ({bare}) first."
        add_repo(http, "https://git.example.com/other.git")
        add_repo(http, str(bare), name="widgets")
        repo = next(r for r in live.service.repos(live.alice.id) if r.name == "widgets")
        page = http.get(f"/sessions/{session.id}")
        assert f'<option value="{repo.id}" selected>widgets</option>' in page.text
        token = csrf_of(http, f"/sessions/{session.id}")
        moved = http.post(
            f"/sessions/{session.id}/runs",
            data={"csrf": token, "repo": repo.id, "environment": "", "prompt": "Go on"},
        )
        assert moved.status_code == 303, moved.text
        (run,) = live.service.runs(live.alice.id, session_id=session.id)
        assert (run.state, run.repo_id, run.prompt) == ("queued", repo.id, "Go on")
        after = http.get(f"/sessions/{session.id}")
        assert 'id="continue-server"' not in after.text
        assert 'id="prompt-form"' in after.text


def test_another_accounts_runs_repositories_and_environments_are_404(
    live: Live, bare: Path
) -> None:
    with client(live, live.alice) as http:
        add_repo(http, str(bare), name="widgets")
        token = csrf_of(http, "/environments")
        http.post("/environments", data=environment_form(token))
    (repo,) = live.service.repos(live.alice.id)
    (env,) = live.service.environments(live.alice.id)
    run, session = live.service.start_run(live.alice.id, "Secret plans", repo=repo.id)

    with client(live, live.bob) as http:
        token = csrf_of(http)
        for path in (
            f"/environments/{env.id}",
            f"/environments/{env.id}/delete",
            f"/repos/{repo.id}/delete",
            f"/sessions/{session.id}",
        ):
            assert http.get(path).status_code == 404, path
        for path, data in (
            (f"/runs/{run.id}/cancel", {}),
            (f"/sessions/{session.id}/runs", {"prompt": "mine now"}),
            (f"/repos/{repo.id}/delete", {}),
            (f"/environments/{env.id}/delete", {}),
            (f"/environments/{env.id}", {"name": "stolen"}),
        ):
            answer = http.post(path, data={"csrf": token, **data})
            assert answer.status_code == 404, path
            assert "Secret plans" not in answer.text
        # alice's repository is no choice of bob's
        started = http.post("/runs", data={"csrf": token, "repo": repo.id, "prompt": "x"})
        assert started.status_code == 404
        assert live.service.runs(live.bob.id) == []
        assert "widgets" not in http.get("/repos").text
        assert "python" not in http.get("/environments").text
    assert live.service.run(live.alice.id, run.id).state == "queued"
    assert [e.name for e in live.service.environments(live.alice.id)] == ["python"]


def test_every_form_wants_its_csrf_token(live: Live, bare: Path) -> None:
    with client(live, live.alice) as http:
        add_repo(http, str(bare), name="widgets")
        token = csrf_of(http, "/environments")
        http.post("/environments", data=environment_form(token))
        (repo,) = live.service.repos(live.alice.id)
        (env,) = live.service.environments(live.alice.id)
        run, session = live.service.start_run(live.alice.id, "Task", repo=repo.id)
        for path, data in (
            ("/runs", {"repo": repo.id, "prompt": "x"}),
            (f"/sessions/{session.id}/runs", {"prompt": "x"}),
            (f"/runs/{run.id}/cancel", {}),
            ("/repos", {"url": str(bare)}),
            (f"/repos/{repo.id}/delete", {}),
            ("/environments", {"name": "other"}),
            (f"/environments/{env.id}", {"name": "renamed"}),
            (f"/environments/{env.id}/delete", {}),
        ):
            for sent in ({}, {"csrf": "not-the-token-" + "x" * 20}):
                refused = http.post(path, data={**data, **sent})
                assert refused.status_code == 422, path
                assert "the form expired or came from another site" in refused.text
    assert [r.id for r in live.service.repos(live.alice.id)] == [repo.id]
    assert [e.name for e in live.service.environments(live.alice.id)] == ["python"]
    assert [r.state for r in live.service.runs(live.alice.id)] == ["queued"]


def test_anonymous_visitors_are_sent_to_log_in(live: Live) -> None:
    with live.client(follow_redirects=False) as http:
        for path in ("/repos", "/environments", "/environments/env_x"):
            answer = http.get(path)
            assert (answer.status_code, answer.headers["location"]) == (
                303,
                f"/login?next={path}",
            )


def test_an_unknown_run_is_404(live: Live) -> None:
    with client(live, live.alice) as http:
        token = csrf_of(http)
        assert http.post("/runs/run_nope/cancel", data={"csrf": token}).status_code == 404
    with pytest.raises(NotFound):
        live.service.run(live.alice.id, "run_nope")


def test_more_runs_than_the_account_may_have_is_said_on_the_page(live: Live, bare: Path) -> None:
    with client(live, live.alice) as http:
        add_repo(http, str(bare), name="widgets")
        (repo,) = live.service.repos(live.alice.id)
        for task in ("one", "two"):  # BATON_MAX_RUNS is 2
            live.service.start_run(live.alice.id, task, repo=repo.id)
        token = csrf_of(http)
        refused = http.post("/runs", data={"csrf": token, "repo": repo.id, "prompt": "three"})
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "30")
    assert flash(refused) == (
        "2 runs of this account are queued or running; the limit is 2 (BATON_MAX_RUNS): "
        "wait for one to end or stop one"
    )
    assert ">three</textarea>" in refused.text
    assert len(live.service.runs(live.alice.id)) == 2
