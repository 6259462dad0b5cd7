"""The session page, live, in Chromium: a message appended through the API appears without a
reload, streamed text shows in #streaming until the answer lands, and a page opened again
shows the same cards (live.js appends what the page itself renders)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fixtures.browser import artifacts, chromium
from tests.fixtures.servers import Live
from tests.helpers import text_message

pytestmark = pytest.mark.slow
WAIT_MS = 10_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def cards(page: Page) -> list[str]:
    return [
        text.strip()
        for text in page.locator("ol.conversation > li.message .body").all_inner_texts()
    ]


def test_new_messages_and_streamed_text_appear_without_a_reload(
    live_server: Live, browser: Browser
) -> None:
    live = live_server
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="Watch me")
    svc.append(me, session.id, [text_message("user", "Fix the flaky test")])
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Security Policy" in m.text else None)
    page.goto(f"{live.url}/login?next=/sessions/{session.id}")
    page.fill("input[name=token]", live.alice.token)
    with page.expect_navigation():
        page.click("#login")
    expect(page.locator("ol.conversation > li.message")).to_have_count(1)
    page.evaluate("window.notReloaded = true")

    with live.client(live.alice) as http:
        http.post(
            f"/api/sessions/{session.id}/messages",
            json={"messages": [text_message("assistant", "Looking at **test_sync.py** now.")]},
        ).raise_for_status()
    messages = page.locator("ol.conversation > li.message")
    expect(messages).to_have_count(2)
    expect(messages.nth(1).locator(".head .role")).to_have_text("Assistant")
    expect(messages.nth(1).locator(".body strong")).to_have_text("test_sync.py")
    expect(messages.nth(1).locator(".head .anchor")).to_have_text("#2")

    svc.events.publish(session.id, {"kind": "delta", "text": "The race is in "})
    svc.events.publish(session.id, {"kind": "delta", "text": "the fixture."})
    streaming = page.locator("#streaming")
    expect(streaming).to_have_text("The race is in the fixture.")
    expect(streaming).to_be_visible()
    page.screenshot(path=str(artifacts() / "live-streaming.png"), full_page=True)
    svc.append(me, session.id, [text_message("assistant", "The race is in the fixture.")])
    expect(messages).to_have_count(3)
    expect(streaming).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(artifacts() / "live-appended.png"), full_page=True)
    live_cards = cards(page)

    page.reload()
    expect(messages).to_have_count(3)
    assert (
        cards(page)
        == live_cards
        == [
            "Fix the flaky test",
            "Looking at test_sync.py now.",
            "The race is in the fixture.",
        ]
    )
    assert errors == []  # no CSP refusal, no script error
    context.close()


def test_the_run_panel_follows_the_runs_states(live_server: Live, browser: Browser) -> None:
    """The session page's run panel (server/templates/_run_panel.html), kept current by
    live.js as the worker moves the run."""
    live = live_server
    svc, me = live.service, live.alice.id
    repo = svc.add_repo(me, "/srv/git/widgets")
    run, session = svc.start_run(me, "Add a README", repo=repo.id)
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{live.url}/login?next=/sessions/{session.id}")
    page.fill("input[name=token]", live.alice.token)
    with page.expect_navigation():
        page.click("#login")
    state = page.locator("#run-state")
    claimed = svc.claim_run("worker-1")
    assert claimed is not None
    expect(state).to_have_text("Preparing the workspace")
    expect(page.locator("#run-time-preparing")).to_have_text(
        claimed.times["preparing"][:19].replace("T", " ")
    )
    svc.move_run(run.id, "running")
    expect(state).to_have_text("Running")
    expect(state).to_have_class("status run-state run-running")
    svc.cancel_run(me, run.id)
    expect(page.locator("#run-stopping")).to_be_visible()
    svc.move_run(run.id, "stopped", error="stopped by the user")
    expect(state).to_have_text("Stopped")
    expect(page.locator("#run-stop")).to_be_hidden()
    expect(page.locator("#run-stopping")).to_be_hidden()
    expect(page.locator("#run-error")).to_have_text("stopped by the user")
    assert page.locator("#run-times dt").all_inner_texts() == [
        "Queued",
        "Preparing",
        "Running",
        "Stopped",
    ]
    page.screenshot(path=str(artifacts() / "live-run-panel.png"), full_page=True)
    context.close()
