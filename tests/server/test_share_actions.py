"""The share page's actions as a visitor uses them, in a real browser: the command copied from
the page forks the share on a machine that has never seen this server, and "Open in editor"
offers each editor's link and remembers the one picked."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from playwright.sync_api import Browser, expect

from tests.fixtures.browser import artifacts, chromium
from tests.fixtures.servers import Live

pytestmark = pytest.mark.slow
EDITORS = ["VS Code", "VS Code Insiders", "Cursor", "Windsurf", "VSCodium"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def shared(live: Live) -> tuple[str, str]:
    service = live.service
    session = service.create(live.alice.id, title="Fix the login bug")
    service.append(
        live.alice.id,
        session.id,
        [
            {"role": "user", "parts": [{"type": "text", "text": "Why does login fail?"}]},
            {"role": "assistant", "parts": [{"type": "text", "text": "The cookie is Lax."}]},
        ],
    )
    share = service.share(live.alice.id, session.id)
    return share.id, service.share_url(share.id)


def test_the_copied_command_forks_the_share_on_a_fresh_machine(
    live_server: Live, browser: Browser, tmp_path: Path
) -> None:
    share_id, url = shared(live_server)
    assert url == f"{live_server.url}/share/{share_id}"
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(url)
    expect(page.locator("#install-hint")).to_have_text(
        "No baton yet? This line installs it from this server; then run the command above."
    )
    wheel = f"baton-{version('baton')}-py3-none-any.whl"  # PyPI's `baton` is another project
    install = f"pipx install {live_server.url}/install/{wheel}"
    expect(page.locator("#install-command")).to_have_value(install)
    page.click("button[data-copy=install-command]")
    expect(page.locator("button[data-copy=install-command]")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == install
    page.click("button[data-copy=fork-command]")
    expect(page.locator("button[data-copy=fork-command]")).to_have_text("Copied")
    command = page.evaluate("navigator.clipboard.readText()")
    assert command == f"baton --fork {url}"
    argv = shlex.split(command)
    assert argv[0] == "baton"
    home = tmp_path / "visitor-home"  # never logged in, never saw this server
    done = subprocess.run(
        [sys.executable, "-m", "baton", *argv[1:]],
        env={**_env(), "BATON_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.strip()
    assert done.stderr == f"continue it with: baton chat -s {new_id}\n"
    shown = subprocess.run(
        [sys.executable, "-m", "baton", "sessions", "show", new_id, "--json"],
        env={**_env(), "BATON_HOME": str(home)},
        capture_output=True,
        check=True,
    )
    session = orjson.loads(shown.stdout)
    assert session["title"] == "Fix the login bug"
    assert session["forked_from"]["share"] == share_id
    texts = [m["parts"][0]["text"] for m in session["messages"]]
    assert texts == ["Why does login fail?", "The cookie is Lax."]
    assert refused == []
    context.close()


def test_open_in_editor_offers_each_editor_and_remembers_the_choice(
    live_server: Live, browser: Browser
) -> None:
    share_id, url = shared(live_server)
    link = "://baton.baton/fork?url=" + quote(url, safe="")
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    main = page.locator("#open-in-editor")
    expect(main).to_have_text("Open in VS Code")
    expect(main).to_have_attribute("href", f"vscode{link}")
    page.click(".editors summary")
    editors = page.locator("a.editor-link")
    expect(editors).to_have_text(EDITORS)
    schemes = [editors.nth(i).get_attribute("href") for i in range(5)]
    assert schemes == [
        f"{s}{link}" for s in ("vscode", "vscode-insiders", "cursor", "windsurf", "vscodium")
    ]
    # the click would leave for the editor; keep the page here to look at it
    page.evaluate("window.addEventListener('click', e => e.preventDefault())")
    page.screenshot(path=str(artifacts() / "05b-share-open-in-editor.png"), full_page=True)
    page.click("a.editor-link[data-editor=cursor]")
    expect(main).to_have_text("Open in Cursor")
    expect(main).to_have_attribute("href", f"cursor{link}")
    page.reload()  # remembered
    expect(page.locator("#open-in-editor")).to_have_text("Open in Cursor")
    expect(page.locator("#open-in-editor")).to_have_attribute("href", f"cursor{link}")
    other_id, other_url = shared(live_server)  # and on every share page of the server
    page.goto(other_url)
    expect(page.locator("#open-in-editor")).to_have_attribute(
        "href", "cursor://baton.baton/fork?url=" + quote(other_url, safe="")
    )
    assert other_id != share_id
    # without JavaScript, every editor is still one link away
    plain = browser.new_context(java_script_enabled=False).new_page()
    plain.goto(url)
    expect(plain.locator("#open-in-editor")).to_have_attribute("href", f"vscode{link}")
    expect(plain.locator("a.editor-link")).to_have_count(5)
    context.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("BATON_URL", "BATON_USER", "BATON_DEBUG", "BATON_DATABASE_URL", "BATON_BLOB_URL"):
        env.pop(name, None)
    return env
