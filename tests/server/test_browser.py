"""End to end in a real browser (Chromium driven by Playwright): log in, find a session, read
it, share it (refused while it holds a secret, then redacted), read the link logged out, fork
it into another account, revoke it. Full-page screenshots of each page go to BATON_ARTIFACTS
(default: <repo>/test-artifacts/screenshots) for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fixtures.browser import artifacts, chromium
from tests.fixtures.servers import Live, Person

KEY = "sk-proj-" + "Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5xY7w"
MASKED = "sk-p…7w (48 chars)"
TITLE = "Flamingo deploy script review"
OTHER_TITLE = "Unrelated chores"
LISTING = "\n".join(f"file_{i:02}.txt" for i in range(60))
WAIT_MS = 10_000

pytestmark = pytest.mark.slow


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)


@pytest.fixture
def live(live_server: Live) -> Live:
    """A browser needs the app on a socket."""
    return live_server


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_context(browser: Browser, **options: object) -> BrowserContext:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    return context


def seed(live: Live) -> str:
    """Alice's session: a prompt holding a planted key, a reply with code, a tool call with
    60 lines of output, and a closing reply. Plus a second session the search must leave out."""
    service = live.service
    other = service.create(live.alice.id, title=OTHER_TITLE)
    service.append(
        live.alice.id, other.id, [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]
    )
    session = service.create(live.alice.id, title=TITLE)
    service.append(
        live.alice.id,
        session.id,
        [
            {
                "role": "user",
                "parts": [{"type": "text", "text": f"List the files. My key is {KEY} for later."}],
            },
            {
                "role": "assistant",
                "parts": [{"type": "text", "text": "Here is code:\n```python\nprint('hi')\n```"}],
            },
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "text": "Listing them now."},
                    {"type": "tool_call", "id": "c1", "name": "bash", "input": {"cmd": "ls"}},
                ],
            },
            {
                "role": "tool",
                "parts": [{"type": "tool_result", "tool_call_id": "c1", "output": LISTING}],
            },
            {"role": "assistant", "parts": [{"type": "text", "text": "There are 60 files."}]},
        ],
    )
    return session.id


def log_in(page: Page, who: Person) -> None:
    """On the login page: log in with an API token."""
    expect(page.locator("h1")).to_have_text("Log in")
    page.fill("input[name=token]", who.token)
    with page.expect_navigation():
        page.click("#login")


def check_conversation(page: Page) -> None:
    """The five messages of the seeded session, as a reader sees them."""
    messages = page.locator("ol.conversation > li.message")
    expect(messages).to_have_count(5)
    roles = page.locator("ol.conversation > li.message .head .role")
    expect(roles).to_have_text(["User", "Assistant", "Assistant", "Tool", "Assistant"])
    # the Markdown code block is highlighted by Pygments: spans inside a <pre>
    code = messages.nth(1).locator(".body pre code")
    expect(code).to_have_count(1)
    expect(code).to_have_class(re.compile(r"\blanguage-python\b"))
    assert code.locator("span").count() >= 3
    expect(code.locator("span.nb")).to_have_text("print")
    expect(code).to_have_text("print('hi')")
    # only the code block is shaded, not the whole message (Pygments' style has a background)
    background = "el => getComputedStyle(el).backgroundColor"
    assert messages.nth(1).locator(".body").evaluate(background) == "rgba(0, 0, 0, 0)"
    assert code.locator("xpath=..").evaluate(background) == "rgb(246, 248, 250)"
    # the tool call shows its command; the 60-line output its first lines, the rest folded
    call = messages.nth(2).locator(".tool-call")
    expect(call.locator(".tool-head .tool-name")).to_have_text("bash")
    expect(call.locator("pre.command")).to_have_text("ls")
    output = messages.nth(3).locator(".tool-result")
    expect(output).to_have_count(1)
    expect(output.locator(".tool-head")).to_have_text(
        re.compile(r"^bashls60 lines · \d+ ms(Copy)?$")
    )
    expect(output.locator(".preview pre")).to_have_text("\n".join(LISTING.splitlines()[:8]))
    expect(output.locator("details.more > summary")).to_have_text("Show all 60 lines")
    assert output.locator("details.more").evaluate("d => d.open") is False
    expect(output.locator("details.more pre")).to_be_hidden()
    expect(messages.nth(4).locator(".body")).to_have_text("There are 60 files.")


def test_log_in_share_redacted_fork_and_revoke(live: Live, browser: Browser) -> None:
    session_id = seed(live)
    alice = new_context(browser, viewport={"width": 1280, "height": 900})
    page = alice.new_page()

    # 1. log in as alice: the recent sessions, then a search that finds only the one
    page.goto(live.url + "/")
    assert page.url == live.url + "/login?next=/"
    log_in(page, live.alice)
    assert page.url == live.url + "/"
    expect(page.locator("h1")).to_have_text("Recent sessions")
    expect(page.locator(".top .who")).to_have_text("Alice Example")
    expect(page.locator("ul.sessions a.title")).to_have_text([TITLE, OTHER_TITLE])
    page.fill("input[name=q]", "flamingo")
    with page.expect_navigation():
        page.click("form.filters button")
    assert page.url == live.url + "/?q=flamingo&status=&repo="
    expect(page.locator("input[name=q]")).to_have_value("flamingo")
    expect(page.locator("ul.sessions a.title")).to_have_text([TITLE])
    expect(page.locator("ul.sessions .meta")).to_contain_text("5 messages")
    shot(page, "01-index")

    # 2. the session page
    with page.expect_navigation():
        page.click(f"ul.sessions a.title >> text={TITLE}")
    assert page.url == f"{live.url}/sessions/{session_id}"
    expect(page.locator("#session-title")).to_have_text(TITLE)
    check_conversation(page)
    expect(page.locator("ol.conversation > li.message").first).to_contain_text(KEY)
    shot(page, "02-session")
    # a click on "Show all" shows all 60 lines of the tool output
    output = page.locator("ol.conversation > li.message").nth(3).locator("details.more")
    output.locator("summary").click()
    assert output.evaluate("d => d.open") is True
    expect(output.locator("pre")).to_be_visible()
    expect(output.locator("pre")).to_have_text(LISTING)
    shot(page, "02b-session-tool-output")

    # 3. share: the findings show the key masked, never whole
    with page.expect_navigation():
        page.click("#share")
    assert page.url == f"{live.url}/sessions/{session_id}/share"
    expect(page.locator("h1")).to_have_text(f"Share “{TITLE}”")
    findings = page.locator("#findings")
    expect(findings.locator("h2")).to_have_text("1 secret found")
    expect(findings.locator("tbody tr")).to_have_count(1)
    expect(findings.locator("tbody tr td")).to_have_text(["message 1", "OpenAI Token", MASKED])
    assert KEY not in page.content()
    expect(page.locator("input[name=mode][value=block]")).to_be_checked()
    shot(page, "03-share-form")

    # the default, block, shares nothing
    with page.expect_navigation() as refused:
        page.click("#confirm-share")
    response = refused.value
    assert response is not None and response.status == 422
    expect(page.locator(".flash.error")).to_have_text(
        "1 secret(s) found, so nothing was shared. "
        "Remove them, or choose below to share with them redacted."
    )
    expect(page.locator("#findings tbody tr")).to_have_count(1)
    assert KEY not in page.content()
    assert live.service.shares(live.alice.id, session_id) == []

    # redact shares, and the session page shows the new link
    page.check("#mode-redact")
    with page.expect_navigation():
        page.click("#confirm-share")
    (share,) = live.service.shares(live.alice.id, session_id)
    share_url = f"{live.url}/share/{share.id}"
    assert page.url == f"{live.url}/sessions/{session_id}?shared={share.id}"
    expect(page.locator(".flash.ok")).to_contain_text("Shared. Anyone with this link can read it")
    expect(page.locator("#new-share-url")).to_have_value(share_url)
    expect(page.locator("ul.links code")).to_have_text([share.id])
    shot(page, "04-session-shared")

    # 4. the link, logged out
    visitor = new_context(browser, viewport={"width": 1280, "height": 900})
    other = visitor.new_page()
    response = other.goto(share_url)
    assert response is not None and response.status == 200
    headers = response.headers
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert "default-src 'none'" in headers["content-security-policy"]
    expect(other.locator(".top nav")).to_have_text("Log in")
    expect(other.locator("#shared-by")).to_have_text("Alice Example")
    expect(other.locator("#share-title")).to_have_text(TITLE)
    expect(other.locator("article.shared > p.muted")).to_have_text("5 messages · 1 secret redacted")
    check_conversation(other)
    expect(other.locator("ol.conversation > li.message").first.locator(".body")).to_have_text(
        "List the files. My key is [REDACTED:OpenAI Token] for later."
    )
    assert KEY not in other.content()
    expect(other.locator("#fork-command")).to_have_value(f"baton --fork {share_url}")
    expect(other.locator("#open-in-editor")).to_have_attribute(
        "href", "vscode://baton.baton/fork?url=" + quote(share_url, safe="")
    )
    shot(other, "05-share-public")

    phone = new_context(
        browser,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    small = phone.new_page()
    small.goto(share_url)
    expect(small.locator("#share-title")).to_have_text(TITLE)
    # nothing wider than the phone: no sideways scrolling of the page
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    shot(small, "06-share-phone")
    phone.close()

    # 5. fork it: logged out, the button asks to log in first, then bob confirms
    with other.expect_navigation():
        other.click("#fork")
    assert other.url == f"{live.url}/login?next=/share/{share.id}/fork"
    log_in(other, live.bob)
    assert other.url == f"{live.url}/share/{share.id}/fork"
    expect(other.locator("h1")).to_have_text(f"Fork “{TITLE}”")
    expect(other.locator("main p").first).to_have_text(
        "A new session in your account starts from this conversation (5 messages), "
        "shared by Alice Example."
    )
    with other.expect_navigation():
        other.click("#fork")
    (forked,) = live.service.list(live.bob.id).sessions
    assert forked.forked_from is not None and forked.forked_from["share"] == share.id
    assert forked.title == TITLE and forked.message_count == 5
    assert other.url == f"{live.url}/sessions/{forked.id}"
    expect(other.locator(".top .who")).to_have_text("Bob Other")
    expect(other.locator("#session-title")).to_have_text(TITLE)
    check_conversation(other)
    meta = other.locator("dl.meta-list")
    expect(meta.locator("dt")).to_contain_text(["Forked from"])
    forked_from = meta.locator("dt:has-text('Forked from') + dd")
    expect(forked_from).to_have_text(f"share {share.id} forked at #5, +0 messages")
    expect(forked_from.locator("a").first).to_have_attribute("href", f"/share/{share.id}")
    at = live.service.messages(live.bob.id, forked.id)[-1].id
    expect(forked_from.locator("#fork-point a")).to_have_attribute(
        "href", f"/share/{share.id}?at={at}#{at}"
    )
    assert KEY not in other.content()
    shot(other, "07-forked")

    # 6. alice revokes the link on her "Shared links" page
    page.goto(live.url + "/shares")
    row = page.locator("table.shares tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(2)).to_have_text("live")
    row.locator("summary", has_text="Revoke…").click()  # it asks first
    with page.expect_navigation():
        row.locator("button", has_text="Revoke the link").click()
    assert page.url == live.url + "/shares"
    expect(row.locator("td").nth(2)).to_have_text("revoked")
    expect(row.locator("button")).to_have_count(0)

    # bob's fork is his: it outlives the link
    response = other.reload()
    assert response is not None and response.status == 200
    expect(other.locator("ol.conversation > li.message")).to_have_count(5)

    # logged out again, the link is gone
    visitor.clear_cookies()
    response = other.goto(share_url)
    assert response is not None and response.status == 410
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in response.headers["x-robots-tag"]
    expect(other.locator("h1")).to_have_text("This link is no longer shared")
    expect(other.locator(".error-status")).to_have_text("410")
    expect(other.locator("main")).not_to_contain_text(TITLE)
    expect(other.locator(".top nav")).to_have_text("Log in")
    shot(other, "08-share-revoked")

    visitor.close()
    alice.close()
