"""A session on the server, end to end in a real browser (Chromium driven by Playwright), as
`baton serve` runs it: the app on a socket, Runner threads executing runs in the sandbox
against the fake model, live events. Log in, add a repository (a bare repository on this
machine) and an environment, start a New session, watch the setup output and the streamed
answer appear without a reload, answer a follow-up, reload in the middle of a run, Stop it.
Screenshots of each page at 1280x800 and 390x844 go to BATON_ARTIFACTS (default:
<repo>/test-artifacts/screenshots) for a person to look at."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from baton import sandbox
from baton.config import Settings, build_service
from baton.runs.queue import Runners
from baton.server import create_app
from tests.fixtures.browser import artifacts, chromium
from tests.fixtures.model import FakeModel, Step, model_env
from tests.fixtures.servers import SECRET, Live, ThreadServer, person

pytestmark = pytest.mark.slow

WAIT_MS = 30_000
SETUP_SAYS = "setup-says-the-workspace-is-ready"
HELLO = "Hello! I read the task and the repository is in place. " * 3
GOODBYE = "Goodbye from the agent."
COUNTING = "counting " * 400  # streamed slowly: a run long enough to reload and stop
TOKEN_VALUE = "tok-" + "9f8e7d6c5b4a" * 2


@pytest.fixture
def cloud(tmp_path: Path, fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch) -> Iterator[Live]:
    """The app on a socket with one Runner thread, as `baton serve --runners 1` runs it."""
    for name in ("BATON_SANDBOX", "BATON_NETWORK", "BATON_SANDBOX_LIMITS", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable:
        if os.environ.get("CI"):
            raise
        monkeypatch.setenv("BATON_SANDBOX", "off")
    home = tmp_path / "server-home"
    settings = Settings.load({**os.environ, **model_env(fake_model), "BATON_HOME": str(home)})
    service = build_service(settings, env={})
    alice = person(service, "alice", "Alice Example")
    bob = person(service, "bob", "Bob Other")
    app = create_app(service, secret=SECRET, login_rate=1000)
    runners = Runners(service, settings, 1).start()
    try:
        with ThreadServer(app) as url:
            service.base_url = url
            yield Live(url, service, alice, bob, app=app)
    finally:
        runners.stop(timeout=10)
        service.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_context(browser: Browser, width: int, height: int) -> BrowserContext:
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    return context


def shot(page: Page, name: str) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(artifacts() / f"runs-{name}-{width}.png"), full_page=True)


def log_in(page: Page, live: Live, next_path: str = "/") -> None:
    page.goto(live.url + next_path)
    page.fill("input[name=token]", live.alice.token)
    with page.expect_navigation():
        page.click("#login")


def mark(page: Page) -> None:
    """A flag on the window: a reload would lose it."""
    page.evaluate("window.batonTestMark = 'not reloaded'")


def not_reloaded(page: Page) -> bool:
    return page.evaluate("window.batonTestMark") == "not reloaded"


def test_start_watch_answer_reload_and_stop_a_session_on_the_server(
    cloud: Live, browser: Browser, fake_model: FakeModel, origin: Path, git_repo: Path
) -> None:
    live = cloud
    expect.set_options(timeout=WAIT_MS)
    fake_model.add(Step(text=HELLO, delay=0.04, chunk=3))
    context = new_context(browser, 1280, 800)
    page = context.new_page()
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))

    # 1. log in: no repository yet, so Recent Sessions says where to add one
    log_in(page, live)
    expect(page.locator("#new-session #no-repos")).to_have_text(
        "To have the agent work on the server, add a repository first."
    )
    shot(page, "index-empty")

    # 2. a repository: a bare repository on this machine
    with page.expect_navigation():
        page.click("#no-repos a")
    page.fill("input[name=url]", str(origin))
    page.fill("input[name=name]", "project")
    with page.expect_navigation():
        page.click("#add-repo-button")
    expect(page.locator("#repos tbody tr")).to_have_count(1)
    expect(page.locator("#repos tbody tr td").first).to_have_text("project")
    shot(page, "repos")

    # 3. an environment: a setup command the page will show, a secret it never shows
    page.goto(live.url + "/environments")
    page.fill("#add-environment input[name=name]", "dev")
    page.fill("#add-environment textarea[name=secrets]", f"DEPLOY_TOKEN={TOKEN_VALUE}")
    page.locator("input[name=setup_command]").first.fill(f"sleep 1 && echo {SETUP_SAYS}")
    page.locator("input[name=setup_timeout]").first.fill("60")
    with page.expect_navigation():
        page.click("#add-environment-button")
    card = page.locator("#environments > li")
    expect(card).to_have_count(1)
    expect(card.locator(".badge.set")).to_have_text(["set"])
    assert TOKEN_VALUE not in page.content()
    shot(page, "environments")

    # 4. New session on Recent Sessions
    page.goto(live.url + "/")
    expect(page.locator("#start-form select[name=repo] option")).to_have_text(["project"])
    page.select_option("#start-form select[name=environment]", label="dev")
    page.fill("#start-form textarea[name=prompt]", "Say hello")
    shot(page, "index-new-session")
    with page.expect_navigation():
        page.click("#start")
    assert re.fullmatch(rf"{re.escape(live.url)}/sessions/ses_\w+", page.url), page.url
    session_id = page.url.rsplit("/", 1)[1]
    mark(page)

    # 5. without a reload: the setup output, the answer while it streams, then the message
    conversation = page.locator("#conversation")
    expect(conversation).to_contain_text(SETUP_SAYS)
    expect(page.locator("#streaming")).to_contain_text("Hello!")
    expect(conversation.locator("li.role-assistant")).to_have_count(1)
    expect(conversation.locator("li.role-assistant .body")).to_have_text(HELLO.strip())
    expect(page.locator("#run-state")).to_have_text("Done")
    expect(page.locator("#streaming")).to_be_empty()
    expect(page.locator("#run-stop")).to_be_hidden()
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#run-times dt")).to_have_text(["Queued", "Preparing", "Running", "Done"])
    count = live.service.get(live.alice.id, session_id).message_count
    expect(page.locator("#message-count")).to_have_text(f"{count} messages")
    expect(page.locator("#side-message-count")).to_have_text(str(count))
    assert not_reloaded(page)
    shot(page, "session-done")

    # 6. a follow-up: the next run of the same session
    fake_model.add(Step(text=GOODBYE, delay=0.02, chunk=3))
    page.fill("#prompt", "Now say goodbye")
    with page.expect_navigation():
        page.click("#send")
    assert page.url == f"{live.url}/sessions/{session_id}#run-panel"
    mark(page)
    expect(conversation.locator("li.role-assistant .body").last).to_have_text(GOODBYE)
    expect(page.locator("#run-state")).to_have_text("Done")
    expect(page.locator("#run-panel h2")).to_have_text("Server run 2 of 2")
    assert not_reloaded(page)

    # 7. a long run: reload in the middle of it, the page picks it up; then Stop
    fake_model.add(Step(text=COUNTING, delay=0.1, chunk=4))
    page.fill("#prompt", "Count slowly")
    with page.expect_navigation():
        page.click("#send")
    expect(page.locator("#streaming")).to_contain_text("counting")
    expect(page.locator("#run-state")).to_have_text("Running")
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#prompt-busy")).to_be_visible()
    page.reload()
    expect(page.locator("#run-state")).to_have_text("Running")
    expect(page.locator("#run-stop")).to_be_visible()
    expect(conversation).to_contain_text("Count slowly")
    expect(page.locator("#streaming")).to_contain_text("counting")
    shot(page, "session-running")
    with page.expect_navigation():
        page.click("#stop")
    expect(page.locator("#run-state")).to_have_text("Stopped", timeout=15_000)
    expect(conversation.locator("li.role-system").last).to_contain_text("stopped by the user")
    expect(page.locator("#run-stop")).to_be_hidden()
    expect(page.locator("#send")).to_be_enabled()
    runs = live.service.runs(live.alice.id, session_id=session_id)
    assert [r.state for r in sorted(runs, key=lambda r: r.created_at)] == [
        "done",
        "done",
        "stopped",
    ]
    page.reload()
    expect(page.locator("#run-state")).to_have_text("Stopped")
    commands = page.locator("#continue-terminal .copy").evaluate_all("all => all.map(e => e.value)")
    assert commands == [
        f"baton login {live.url}",
        f"baton chat -s {session_id}",
        f"baton restore {session_id}",
    ]
    page.click("[data-copy=cmd-chat]")
    expect(page.locator("[data-copy=cmd-chat]")).to_have_text("Copied")
    shot(page, "session-stopped")
    assert TOKEN_VALUE not in page.content()
    assert failures == []

    # 8. the same pages on a phone-sized screen
    phone = new_context(browser, 390, 844).new_page()
    log_in(phone, live)
    shot(phone, "index")
    for name, path in (
        ("repos", "/repos"),
        ("environments", "/environments"),
        ("session-stopped", f"/sessions/{session_id}"),
    ):
        phone.goto(live.url + path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, name
        shot(phone, name)
    context.close()


def test_a_terminal_session_continues_on_the_server_from_its_page(
    cloud: Live, browser: Browser, fake_model: FakeModel, dirty_repo: Path, origin: Path
) -> None:
    """A session started in the terminal (two unpushed commits, uncommitted changes, synced to
    the server) offers "Continue on the server": the repository it names is chosen, the run
    restores its code and the agent answers on the same page."""
    from baton import gitstate
    from baton.core import ids

    live = cloud
    expect.set_options(timeout=WAIT_MS)

    def put(data: bytes) -> str:
        sha = ids.sha256_hex(data)
        live.service.put_blob(sha, data, live.alice.id)
        return sha

    captured = gitstate.capture(dirty_repo, put)
    assert captured is not None and captured["ahead"] == 2
    session = live.service.create(live.alice.id, title="Feature from the terminal", git=captured)
    live.service.add_repo(live.alice.id, "https://git.example.com/unrelated.git")
    live.service.add_repo(live.alice.id, captured["remote"], name="project")
    fake_model.add(Step(text="Continued on the server.", delay=0.02, chunk=4))

    for width, height in ((1280, 800), (390, 844)):
        page = new_context(browser, width, height).new_page()
        log_in(page, live, f"/sessions/{session.id}")
        expect(page.locator("#continue-server-what")).to_have_text(
            "The agent picks up this session on the server, from its recorded code "
            "(branch main, 2 unpushed commits, uncommitted changes)."
        )
        expect(page.locator("#continue-server-form select[name=repo] option:checked")).to_have_text(
            "project"
        )
        expect(page.locator("#prompt-form")).to_have_count(0)
        shot(page, "session-cli")
    page.fill("#continue-server-form textarea[name=prompt]", "Go on with the feature")
    with page.expect_navigation():
        page.click("#continue-on-server")
    mark(page)
    expect(page.locator("#conversation li.role-assistant .body").last).to_have_text(
        "Continued on the server."
    )
    expect(page.locator("#run-state")).to_have_text("Done")
    expect(page.locator("#continue-server")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()
    assert not_reloaded(page)
    (run,) = live.service.runs(live.alice.id, session_id=session.id)
    assert run.state == "done"
