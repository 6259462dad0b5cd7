"""One renderer, one look: a session page, a share page and the HTML export show a message as
the same HTML fragment (baton.render.html), styled by the same stylesheet — the pages link it
under their CSP, the export inlines it. Over every backend, in process (httpx ASGITransport)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from baton.render.html import PAGE_PART_CHARS, stylesheet
from baton.server import create_app, pages
from baton.service import Service
from tests.helpers import streamed_turns, text_message, tool_turn

SECRET = "test-secret-" + "x" * 40
OUTPUT = "\n".join(f"src/module_{i:02}.py: ok" for i in range(30))  # over COLLAPSE_LINES
TEXT = (
    "Here is the fix:\n\n"
    "```python\ndef area(r):\n    return 3.14 * r * r\n```\n\n"
    "| file | lines |\n|---|---:|\n| area.py | 2 |\n\n"
    "![the chart](https://tracker.example/chart.png) <script>alert('x')</script>"
)


def get(
    service: Service, token: str | None, *paths: str, etag: str | None = None
) -> list[httpx.Response]:
    """GET each path from the app, in process, with `token` as the bearer (or none)."""
    app = create_app(service, secret=SECRET)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if etag:
        headers["If-None-Match"] = etag

    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://baton.test", headers=headers
        ) as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(fetch())


def conversation(page: str) -> str:
    """The messages of a page or an export, but for their permalinks: a page's name the
    message for the server too (?at=ID#ID), which opens the page it is on."""
    found = re.search(r'<ol class="conversation"[^>]*>\s*(.*?)\s*</ol>', page, re.S)
    assert found is not None, page
    return re.sub(r'href="\?at=\w+#', 'href="#', re.sub(r">\s+<li ", "><li ", found.group(1)))


def test_pages_and_the_export_render_a_message_alike(service: Service, owner: str) -> None:
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Areas")
    service.append(
        owner,
        session.id,
        [
            text_message("user", "Fix area()"),
            *tool_turn("c1", "bash", {"command": "pytest -q"}, OUTPUT),
            text_message("assistant", TEXT, model="qwen-coder"),
        ],
    )
    share = service.share(owner, session.id)
    exported = service.export(owner, session.id, "html")
    assert isinstance(exported, str)
    session_page, share_page, style = get(
        service, token, f"/sessions/{session.id}", f"/share/{share.id}", "/static/style.css"
    )
    assert session_page.status_code == share_page.status_code == style.status_code == 200

    items = conversation(exported)
    assert conversation(session_page.text) == items
    assert conversation(share_page.text) == items
    # what that one fragment holds: highlighted code, a table, the image as a link that loads
    # nothing, the script as text, the 30-line output folded under its tool and command
    assert '<pre><code class="language-python"><span class="k">def</span>' in items
    assert '<th>file</th>\n<th align="right">lines</th>' in items
    assert (
        '<a href="https://tracker.example/chart.png" rel="nofollow noopener noreferrer">'
        "Image: the chart</a> &lt;script&gt;alert('x')&lt;/script&gt;</p>"
    ) in items
    assert "<script" not in items and "<img" not in items
    assert (
        '<div class="tool-head"><span class="tool-name">bash</span><code class="hint">pytest -q'
        '</code><span class="facts">30 lines · 0 ms</span></div>'
    ) in items
    assert (
        '<details class="more"><summary>Show all 30 lines</summary><pre class="code"><code>'
        f"{OUTPUT}</code></pre></details>"
    ) in items
    assert items.count('<li class="message role-') == 4

    # one stylesheet: the pages link it (their CSP allows no inline style), the export inlines it
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert style.text == stylesheet()
    assert f"<style>\n{stylesheet()}</style>" in exported
    for page in (session_page, share_page):
        assert "style-src 'self'" in page.headers["content-security-policy"]
        assert re.findall(r"<link [^>]*>", page.text) == [
            '<link rel="stylesheet" href="/static/style.css">'
        ]
        assert "<style" not in page.text and " style=" not in page.text
    assert "@media (prefers-color-scheme: dark)" in style.text
    assert style.headers["cache-control"] == "no-cache"
    (again,) = get(service, None, "/static/style.css", etag=style.headers["etag"])
    assert (again.status_code, again.content) == (304, b"")


def test_a_page_cuts_a_long_part_and_the_export_keeps_it(service: Service, owner: str) -> None:
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Long")
    text = "word " * 6000  # 30,000 characters
    service.append(owner, session.id, [text_message("user", text)])
    (page,) = get(service, token, f"/sessions/{session.id}")
    exported = service.export(owner, session.id, "html")
    assert isinstance(exported, str)
    shown = text[:PAGE_PART_CHARS].strip()
    assert f"<p>{shown}</p>\n<p>… (10,000 more characters in the export)</p>" in page.text
    assert f"<p>{text.strip()}</p>" in exported


def cards(page: str) -> list[tuple[str, str, str]]:
    """Each message card of a page: its role, the note and number in its head, its text."""
    found = re.findall(
        r'<li class="message role-(\w+)" id="\w+"><div class="head">.*?'
        r'(?:<span class="note">([^<]*)</span> )?<a class="anchor" href="(?:\?at=\w+)?#\w+" title="Link to this message">([^<]+)</a></div>'
        r'<div class="body"><div class="text"><p>([^<]*)</p>',
        page,
    )
    return [(role, note, f"{number} {text}") for role, note, number, text in found]


def test_a_streamed_answer_is_one_card(service: Service, owner: str) -> None:
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Counting")
    service.append(owner, session.id, streamed_turns())
    share = service.share(owner, session.id)
    exported = service.export(owner, session.id, "html")
    assert isinstance(exported, str)
    session_page, share_page, share_all = get(
        service, token, f"/sessions/{session.id}", f"/share/{share.id}", f"/share/{share.id}?all=1"
    )
    expected = [
        ("user", "", "#1 Count to four"),
        ("assistant", "", "#2–#5 one two three four"),
        ("user", "", "#6 And on?"),
        ("assistant", "", "#7–#8 five six"),
        ("user", "", "#9 Stop"),
    ]
    for page in (session_page, share_page, share_all):
        assert page.status_code == 200
        assert cards(page.text) == expected
        assert conversation(page.text) == conversation(exported)
        assert "9 messages" in page.text  # the stored count
    # the preview holds every message: no "show all" though there are fewer cards than messages
    assert 'id="show-all"' not in share_page.text
    # the card links to (and is named by) the answer's last stored message
    stored = service.messages(owner, session.id)
    assert f'<li class="message role-assistant" id="{stored[4].id}">' in session_page.text


def test_a_run_cut_by_the_page_boundary_says_so(
    service: Service, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE", 3)
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Counting")
    service.append(owner, session.id, streamed_turns())
    share = service.share(owner, session.id)
    first, second, third, preview, shared = get(
        service,
        token,
        f"/sessions/{session.id}?start=0",
        f"/sessions/{session.id}?start=3",
        f"/sessions/{session.id}",  # opens at the latest turn
        f"/share/{share.id}",  # from the start
        f"/share/{share.id}?start=3",
    )
    assert cards(first.text) == [
        ("user", "", "#1 Count to four"),
        ("assistant", "continues on the next page", "#2–#3 one two thr"),
    ]
    assert cards(second.text) == [
        ("assistant", "continued from the previous page", "#4–#5 ee four"),
        ("user", "", "#6 And on?"),
    ]
    # a run cut short by the user's next message continues on no page
    assert cards(third.text) == [
        ("assistant", "", "#7–#8 five six"),
        ("user", "", "#9 Stop"),
    ]
    assert cards(preview.text) == cards(first.text)
    # the next page's link, which the page's script follows in the background
    assert '<a id="load-later" href="?start=3">6 later messages →</a>' in preview.text
    assert '<a id="load-earlier" href="?start=0">← 3 earlier messages</a>' in shared.text
    assert cards(shared.text) == cards(second.text)


def test_pages_show_a_forks_own_and_inherited_costs_apart(service: Service, owner: str) -> None:
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Costly")
    reply = {"input_tokens": 900, "output_tokens": 12, "cost_usd": 0.00096}
    service.append(
        owner,
        session.id,
        [text_message("user", "q"), text_message("assistant", "a", usage=reply)],
    )
    fork = service.fork(owner, session.id)
    original_page, fork_page, index = get(
        service, token, f"/sessions/{session.id}", f"/sessions/{fork.id}", "/"
    )
    assert "<dt>Cost</dt><dd>$0.0010</dd>" in original_page.text
    assert "<dt>Inherited</dt>" not in original_page.text
    assert "<dt>Tokens</dt><dd>0 in · 0 out</dd>" in fork_page.text
    assert "<dt>Cost</dt><dd>$0 own</dd>" in fork_page.text
    assert "<dt>Inherited</dt><dd>900 in · 12 out · $0.0010</dd>" in fork_page.text
    # the fork is listed under its origin, saying where it left it
    items = re.findall(r'<li id="row-(\w+)">', index.text)
    assert items == [session.id, fork.id]
    assert (
        f'<ul class="forks" aria-label="Forks of Costly">\n  <li id="row-{fork.id}">' in index.text
    )
    assert "forked at #2</a>, +0 messages</span>" in index.text
    costs = re.findall(r"· (\$[^<]*?)\s*(?:·|</span>)", index.text)
    assert costs == ["$0.0010", "$0 own, $0.0010 inherited"]
    more = {"input_tokens": 30, "output_tokens": 3, "cost_usd": 0.002}
    service.append(owner, fork.id, [text_message("assistant", "b", usage=more)])
    share_page, original_share_page = get(
        service,
        None,
        f"/share/{service.share(owner, fork.id).id}",
        f"/share/{service.share(owner, session.id).id}",
    )
    assert "3 messages · 33 tokens of its own, 912 inherited</p>" in share_page.text
    assert "2 messages · 912 tokens</p>" in original_share_page.text
    exported = service.export(owner, fork.id, "html")
    assert isinstance(exported, str)
    assert "<dt>Cost</dt><dd>$0.0020</dd>" in exported
    assert "<dt>Inherited</dt><dd>900 in · 12 out · $0.0010</dd>" in exported


def test_a_session_opens_at_its_latest_page_and_a_permalink_at_its_message(
    service: Service, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "PAGE", 4)
    _, token = service.accounts.create_token(owner, "pages")
    session = service.create(owner, title="Ten")
    service.append(owner, session.id, [text_message("user", f"m{i}") for i in range(1, 11)])
    stored = service.messages(owner, session.id)
    latest, linked, unknown, shared = get(
        service,
        token,
        f"/sessions/{session.id}",
        f"/sessions/{session.id}?at={stored[4].id}",
        f"/sessions/{session.id}?at=m_{'0' * 64}",
        f"/share/{service.share(owner, session.id).id}?at={stored[8].id}",
    )
    # the last four messages, the reader's script told to open at the latest turn
    assert [c[2] for c in cards(latest.text)] == ["#7 m7", "#8 m8", "#9 m9", "#10 m10"]
    assert 'data-open="latest"' in latest.text
    assert '<a id="load-earlier" href="?start=2">← 6 earlier messages</a>' in latest.text
    assert 'id="load-later"' not in latest.text
    # message #5 with the page around it (two before it)
    assert [c[2] for c in cards(linked.text)] == ["#3 m3", "#4 m4", "#5 m5", "#6 m6"]
    assert 'data-open="latest"' not in linked.text
    assert '<a id="load-later" href="?start=6">4 later messages →</a>' in linked.text
    assert f'href="?at={stored[4].id}#{stored[4].id}"' in linked.text
    assert unknown.status_code == 404
    assert [c[2] for c in cards(shared.text)] == ["#7 m7", "#8 m8", "#9 m9", "#10 m10"]
