"""The pages as a reader finds them, in Chromium: the checklist a person would go through.

- no page scrolls sideways at 320, 390, 768 or 1280 px (measured `scrollWidth`); code scrolls
  inside its block;
- the system's dark scheme applies, and the toggle's choice is remembered across pages;
- a long session opens at its latest turn, loads earlier messages as the reader scrolls up, and
  a permalink opens (and scrolls to) its message wherever it is;
- a share page holds the whole conversation in one scroll, loaded in the background;
- tool cards show the tool and its command, an edit as a coloured diff, the exit status;
- Recent Sessions lists a fork under its origin with where it diverged, and a search's snippet;
- revoking a link asks first;
- axe-core finds no serious or critical violation, in either theme.
Screenshots at 1280x800 and 390x844, light and dark, go to BATON_ARTIFACTS (default:
<repo>/test-artifacts/screenshots) for a person to look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fixtures.browser import artifacts, chromium
from tests.fixtures.servers import Live, Person

pytestmark = pytest.mark.slow

WAIT_MS = 10_000
ROOT = Path(__file__).resolve().parents[2]
TITLE = "Fix Safari login (ITP cookies)"
TURNS = 60  # five messages each: 300 messages, three pages
WIDTHS = (320, 390, 768, 1280)
DARK_BACKGROUND = "rgb(13, 17, 23)"
LIGHT_BACKGROUND = "rgb(255, 255, 255)"
OUTPUT = "\n".join(f"tests/test_login.py::test_case_{i:02} PASSED" for i in range(40))


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def turn(i: int) -> list[dict[str, Any]]:
    """A turn as an agent writes it: a prompt, an edit, a command and its output, an answer."""
    return [
        {
            "role": "user",
            "parts": [{"type": "text", "text": f"Step {i}: make the login test pass"}],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": f"e{i}",
                    "name": "edit_file",
                    "input": {
                        "path": "src/auth/cookies.py",
                        "old_text": "SameSite=None\nSecure=False",
                        "new_text": f"SameSite=Lax\nSecure=True  # step {i}",
                    },
                },
                {
                    "type": "tool_call",
                    "id": f"b{i}",
                    "name": "run_command",
                    "input": {"command": "pytest -q tests/test_login.py"},
                },
            ],
            "usage": {"input_tokens": 1200, "output_tokens": 80, "cost_usd": 0.0042},
            "model": "qwen-coder",
        },
        {
            "role": "tool",
            "parts": [
                {"type": "tool_result", "tool_call_id": f"e{i}", "output": "edited (1)"},
                {
                    "type": "tool_result",
                    "tool_call_id": f"b{i}",
                    "output": f"{OUTPUT}\n[exit code 1]",
                    "is_error": True,
                },
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "text",
                    "text": f"Turn {i}: the cookie is `Lax` now.\n\n```python\n"
                    f"response.set_cookie('session', token, samesite='Lax', secure=True, "
                    f"httponly=True, max_age=60 * 60 * 24 * 30)  # turn {i}\n```",
                }
            ],
            "usage": {"input_tokens": 1500, "output_tokens": 120, "cost_usd": 0.0051},
            "model": "qwen-coder",
        },
        {"role": "user", "parts": [{"type": "text", "text": f"Thanks ({i})."}]},
    ]


class World:
    """Alice's sessions: a 300-message one, a fork of it at #40 with 12 messages more, and a
    public link to it; the pages a reader visits."""

    def __init__(self, live: Live) -> None:
        service, owner = live.service, live.alice.id
        self.live = live
        session = service.create(owner, title=TITLE)
        messages = [m for i in range(TURNS) for m in turn(i + 1)]
        for start in range(0, len(messages), 100):
            service.append(owner, session.id, messages[start : start + 100])
        self.session = session.id
        self.stored = service.messages(owner, session.id)
        fork = service.fork(owner, session.id, at=self.stored[39].id, platform="web")
        service.append(owner, fork.id, [m for i in range(3) for m in turn(100 + i)][:12])
        self.fork = fork.id
        self.share = service.share(owner, session.id, mode="allow").id
        url = live.url
        self.pages = {
            "index": f"{url}/",
            "search": f"{url}/?q=cookie",
            "session": f"{url}/sessions/{self.session}",
            "permalink": f"{url}/sessions/{self.session}?at={self.stored[39].id}",
            "fork": f"{url}/sessions/{self.fork}",
            "share": f"{url}/share/{self.share}",
            "shares": f"{url}/shares",
            "tokens": f"{url}/tokens",
            "repos": f"{url}/repos",
            "environments": f"{url}/environments",
            "share-form": f"{url}/sessions/{self.session}/share",
            "delete": f"{url}/sessions/{self.session}/delete",
        }


def context(browser: Browser, width: int, height: int = 844, **options: Any) -> BrowserContext:
    made = browser.new_context(viewport={"width": width, "height": height}, **options)
    made.set_default_timeout(WAIT_MS)
    return made


def log_in(page: Page, live: Live, who: Person) -> None:
    page.goto(f"{live.url}/login")
    page.fill("input[name=token]", who.token)
    with page.expect_navigation():
        page.click("#login")


def signed_in(browser: Browser, live: Live, width: int, height: int = 844, **options: Any) -> Page:
    page = context(browser, width, height, **options).new_page()
    log_in(page, live, live.alice)
    return page


def overflow(page: Page) -> int:
    """How far the page scrolls sideways (0: not at all)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def in_view(page: Page, selector: str) -> bool:
    return bool(
        page.locator(selector).evaluate(
            "e => { const r = e.getBoundingClientRect();"
            " return r.bottom > 0 && r.top < window.innerHeight; }"
        )
    )


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=False)


@pytest.fixture
def world(live_server: Live) -> World:
    return World(live_server)


def test_no_page_scrolls_sideways_from_320_to_1280_px(world: World, browser: Browser) -> None:
    wide: list[tuple[str, int, int]] = []
    for width in WIDTHS:
        page = signed_in(browser, world.live, width)
        for name, url in world.pages.items():
            page.goto(url)
            if overflow(page) > 0:
                wide.append((name, width, overflow(page)))
        page.context.clear_cookies()
        page.goto(world.pages["share"])
        page.goto(f"{world.live.url}/login")
        if overflow(page) > 0:
            wide.append(("login", width, overflow(page)))
        page.context.close()
    assert wide == []


def test_dark_mode_follows_the_system_and_the_toggle_is_remembered(
    world: World, browser: Browser
) -> None:
    background = "getComputedStyle(document.body).backgroundColor"
    page = signed_in(browser, world.live, 1280, 800, color_scheme="dark")
    page.goto(world.pages["session"])
    assert page.evaluate(background) == DARK_BACKGROUND
    code = page.locator(".message .body pre code").first
    assert code.evaluate("e => getComputedStyle(e.parentNode).backgroundColor") == "rgb(22, 27, 34)"
    toggle = page.locator("#theme-toggle")
    expect(toggle).to_have_text("Light theme")
    toggle.click()
    assert page.evaluate(background) == LIGHT_BACKGROUND
    expect(toggle).to_have_text("Dark theme")
    page.goto(world.pages["index"])  # remembered on the next page
    assert page.evaluate(background) == LIGHT_BACKGROUND
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.context.close()

    light = signed_in(browser, world.live, 1280, 800, color_scheme="light")
    light.goto(world.pages["share"])
    assert light.evaluate(background) == LIGHT_BACKGROUND
    light.locator("#theme-toggle").click()
    assert light.evaluate(background) == DARK_BACKGROUND
    light.reload()
    assert light.evaluate(background) == DARK_BACKGROUND
    light.context.close()


def test_a_long_session_opens_at_its_latest_turn_and_loads_earlier_ones(
    world: World, browser: Browser
) -> None:
    page = signed_in(browser, world.live, 1280, 800)
    page.goto(world.pages["session"])
    messages = page.locator("#conversation > li.message")
    expect(messages).to_have_count(100)
    last = world.stored[-1].id
    expect(page.locator(f"[id='{last}'] .anchor")).to_have_text("#300")
    page.wait_for_function(
        f"() => document.getElementById('{last}').getBoundingClientRect().top < innerHeight"
    )
    assert in_view(page, f"[id='{last}']")
    assert page.evaluate("window.scrollY") > 0
    # without JavaScript the same link loads them
    expect(page.locator("#load-earlier")).to_have_attribute("href", "?start=100")
    expect(page.locator("#load-earlier")).to_have_text("← 200 earlier messages")
    # scrolling up loads the page before, and the message read stays where it was
    first = f"[id='{world.stored[200].id}']"
    page.evaluate("window.scrollTo(0, 0)")
    top = page.locator(first).evaluate("e => e.getBoundingClientRect().top")
    expect(messages).to_have_count(200)
    expect(page.locator("#load-earlier")).to_have_text("← 100 earlier messages")
    expect(page.locator("#load-earlier")).to_have_attribute("href", "?start=0")
    after = page.locator(first).evaluate("e => e.getBoundingClientRect().top")
    assert abs(after - top) < 80, (top, after)
    page.context.close()


def test_a_permalink_opens_its_message_on_its_page(world: World, browser: Browser) -> None:
    page = signed_in(browser, world.live, 390, 844, is_mobile=True, has_touch=True)
    target = world.stored[39].id
    page.goto(f"{world.pages['permalink']}#{target}")
    expect(page.locator(f"[id='{target}'] .anchor")).to_have_text("#40")
    page.wait_for_function(
        f"() => Math.abs(document.getElementById('{target}').getBoundingClientRect().top) < 40"
    )
    assert in_view(page, f"[id='{target}']")
    assert page.evaluate("location.hash") == f"#{target}"
    assert page.locator(f"[id='{target}']").evaluate("e => e.matches(':target')")
    # a message's number is its permalink
    href = page.locator(f"[id='{target}'] .anchor").get_attribute("href")
    assert href == f"?at={target}#{target}"
    page.context.close()


def test_tool_cards_show_the_command_the_diff_and_the_exit_status(
    world: World, browser: Browser
) -> None:
    page = signed_in(browser, world.live, 1280, 800)
    page.goto(world.pages["session"])
    call = page.locator("#conversation .tool-call.tool-shell").last
    expect(call.locator(".tool-name")).to_have_text("run_command")
    expect(call.locator("pre.command")).to_have_text("pytest -q tests/test_login.py")
    expect(call.locator(".copy-code")).to_have_attribute("aria-label", "Copy the command")
    edit = page.locator("#conversation .tool-call.tool-edit").last
    expect(edit.locator(".tool-head")).to_have_text("edit_filesrc/auth/cookies.pyCopy")
    expect(edit.locator(".d-del")).to_have_text(["-SameSite=None", "-Secure=False"])
    expect(edit.locator(".d-add")).to_have_text(["+SameSite=Lax", "+Secure=True  # step 60"])
    assert (
        edit.locator(".d-add").first.evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(230, 255, 236)"
    )
    result = page.locator("#conversation .tool-result.error").last
    expect(result.locator(".tool-head")).to_have_text(
        "run_commandpytest -q tests/test_login.py41 lines · exit 1 · 0 msCopy"
    )
    expect(result.locator(".preview pre")).to_be_visible()
    expect(result.locator("details.more > summary")).to_have_text("Show all 41 lines")
    result.locator("details.more > summary").click()
    expect(result.locator("details.more pre")).to_contain_text("test_case_39 PASSED")
    # per-message tokens and cost, the time relative with the exact one on hover
    answer = page.locator("#conversation > li.role-assistant").last
    expect(answer.locator(".usage")).to_have_text("1,500 in · 120 out · $0.0051")
    when = answer.locator(".when time")
    expect(when).to_have_text("just now")
    assert (when.get_attribute("title") or "").endswith(" UTC")
    shot(page, "reading-tool-cards")
    page.context.close()


FIRST_LINE = """(holder) => {
  // the first line of a code block (a Range over its text up to the first newline), scrolled
  // to its end too, against the block's copy button: where they meet, if anywhere
  const pre = holder.querySelector("pre"), button = holder.querySelector(".copy-code");
  const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let node, started = false;
  while ((node = walker.nextNode())) {
    if (!started) { range.setStart(node, 0); started = true; }
    const end = node.data.indexOf("\\n");
    if (end >= 0) { range.setEnd(node, end); break; }
    range.setEnd(node, node.data.length);
  }
  const meets = () => {
    const b = button.getBoundingClientRect();
    return [...range.getClientRects()].filter(r => r.width > 0 && r.left < b.right
      && r.right > b.left && r.top < b.bottom && r.bottom > b.top).length;
  };
  const before = meets();
  const long = range.getBoundingClientRect().width > pre.clientWidth;
  pre.scrollLeft = pre.scrollWidth;
  const after = meets();
  pre.scrollLeft = 0;
  return {long: long, meets: before + after};
}"""


@pytest.mark.parametrize("width", [390, 1280])
def test_no_code_is_under_its_copy_button(world: World, browser: Browser, width: int) -> None:
    page = signed_in(browser, world.live, width, 844)
    page.goto(world.pages["session"])
    # a tool card's button is in its head; any other block's in a bar above its code
    blocks = page.locator("#conversation :is(.copyable, .tool-call, .tool-result):has(.copy-code)")
    expect(blocks.first.locator(".copy-code")).to_have_text("Copy")
    found = [blocks.nth(i).evaluate(FIRST_LINE) for i in range(min(blocks.count(), 60))]
    assert [f for f in found if f["meets"]] == []
    card = page.locator("#conversation .tool-result.error").last
    expect(card.locator(".tool-head .copy-code")).to_have_count(1)  # one for the card
    expect(card.locator(".copyable")).to_have_count(0)
    # the blocks checked include ones whose first line is wider than the block (it scrolls)
    assert any(f["long"] for f in found)
    # the Python answer's one long line: its block scrolls, and copies the code alone
    answer = page.locator("#conversation > li.role-assistant .text .copyable").last
    assert answer.evaluate(FIRST_LINE) == {"long": True, "meets": 0}
    turn = page.locator("#conversation > li.message").nth(-4)
    turn.scroll_into_view_if_needed()
    turn.screenshot(path=str(artifacts() / f"reading-copy-buttons-{width}.png"))
    page.context.close()


def test_the_share_page_is_one_scroll_of_the_whole_conversation(
    world: World, browser: Browser
) -> None:
    page = context(browser, 1280, 800).new_page()
    page.goto(world.pages["share"])
    expect(page.locator("#conversation > li.message")).to_have_count(300)
    expect(page.locator("#load-later")).to_have_count(0)
    expect(page.locator("#conversation > li.message .anchor").last).to_have_text("#300")
    page.context.close()


def test_recent_sessions_show_lineage_snippets_and_plurals(world: World, browser: Browser) -> None:
    page = signed_in(browser, world.live, 1280, 800)
    page.goto(world.pages["index"])
    origin = page.locator(f"#row-{world.session}")
    fork = origin.locator(f"ul.forks > #row-{world.fork}")
    expect(fork.locator(".lineage")).to_have_text("↳ forked at #40, +12 messages")
    expect(fork.locator(".lineage a")).to_have_attribute(
        "href", f"/sessions/{world.session}?at={world.stored[39].id}#{world.stored[39].id}"
    )
    expect(origin.locator("> .meta")).to_contain_text("300 messages")
    page.goto(world.pages["search"])
    # the words found, highlighted in the title and in a snippet of the message that holds them
    row = page.locator(f"#row-{world.session}")
    expect(row.locator("> a.title mark")).to_have_text("cookie")
    expect(row.locator("> .snippet")).to_have_text(
        "Turn 60: the cookie is `Lax` now. ```python response.set_cookie('session', token, "
        "samesite='Lax', secure=True, httponly=True, max_age=60 * 60 * 24 * 30) # turn …"
    )
    expect(row.locator("> .snippet mark")).to_have_text(["cookie", "cookie"])
    assert "/?q=cookie" in page.url
    page.context.close()


def test_revoking_a_link_asks_first(world: World, browser: Browser) -> None:
    page = signed_in(browser, world.live, 390, 844)
    page.goto(world.pages["shares"])
    row = page.locator("table.shares tbody tr")
    button = row.locator("button", has_text="Revoke the link")
    expect(button).to_be_hidden()
    row.locator("summary", has_text="Revoke…").click()
    expect(button).to_be_visible()
    with page.expect_navigation():
        button.click()
    expect(row.locator("td").nth(2)).to_have_text("revoked")
    page.context.close()


def axe_script() -> Path | None:
    for prefix in (os.environ.get("BATON_NPM_PREFIX"), str(ROOT / ".ci" / "node")):
        if prefix:
            path = Path(prefix) / "node_modules" / "axe-core" / "axe.min.js"
            if path.exists():
                return path
    return None


def serious(page: Page) -> list[str]:
    """The serious and critical violations axe-core finds in the page."""
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))"
    )
    return [str(v) for v in found]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_no_serious_violation(world: World, browser: Browser, scheme: str) -> None:
    script = axe_script()
    if script is None:
        message = "no axe-core: `npm install --prefix .ci/node axe-core` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    found: dict[str, list[str]] = {}
    for width, height in ((1280, 800), (390, 844)):
        page = signed_in(
            browser, world.live, width, height, color_scheme=scheme, bypass_csp=True
        )  # the CSP allows no script but the pages' own: axe is one more
        for name in ("index", "search", "session", "fork", "share", "shares", "tokens"):
            page.goto(world.pages[name])
            page.add_script_tag(path=str(script))
            problems = serious(page)
            if problems:
                found[f"{name}@{width}"] = problems
        page.context.close()
    assert found == {}


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(world: World, browser: Browser, scheme: str) -> None:
    """For a person to look at: the main pages on a laptop and a phone, in both themes."""
    for width, height, device in ((1280, 800, "laptop"), (390, 844, "phone")):
        mobile = {"is_mobile": True, "has_touch": True} if device == "phone" else {}
        page = signed_in(browser, world.live, width, height, color_scheme=scheme, **mobile)
        for name in ("index", "search", "session", "permalink", "fork", "share", "shares"):
            page.goto(world.pages[name])
            page.wait_for_timeout(300)
            assert overflow(page) == 0, name
            shot(page, f"reading-{name}-{device}-{scheme}")
        page.context.close()
