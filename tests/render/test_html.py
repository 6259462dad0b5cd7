"""The HTML export: one self-contained file that renders the whole conversation, reaches
nothing on the network and turns hostile content into text. Checked on the string, then in
headless Chromium with every request other than the file itself aborted. Screenshots go to
BATON_ARTIFACTS (default: <repo>/test-artifacts/screenshots) for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Request, Route, expect

from baton.core.errors import InvalidInput
from baton.core.models import Message, Session
from baton.render import export
from baton.render.html import (
    COLLAPSE_CHARS,
    COLLAPSE_LINES,
    PREVIEW_LINES,
    ToolCall,
    export_html,
    markdown_html,
    part_html,
    sanitise,
)
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore
from tests.fixtures.browser import artifacts, chromium

NOW = "2026-11-25T09:30:00.000000Z"
TITLE = "Fix the flaky upload test"
HOSTILE_TITLE = "</title><script>alert('title')</script>"
LONG_OUTPUT = "\n".join(f"tests/test_{i:03}.py::test_upload PASSED" for i in range(80))
# Over 64 KiB: stored as a blob, hydrated for the export, and never cut there.
HUGE_OUTPUT = "".join(f"row {i:05} {'x' * 60}\n" for i in range(1200))
HOSTILE = (
    "Try these: <script>alert('boom')</script> <img src=x onerror=alert(1)> "
    '[click me](javascript:alert(2)) <a href="javascript:alert(3)">raw link</a> '
    "[the docs](https://example.com/docs) ![tracker](https://tracker.example/pixel.png)"
)


def conversation(title: str = TITLE) -> tuple[Session, list[Message]]:
    """A session as the service stores it: Markdown with code, reasoning, two tool calls
    (one long output, one error), an output big enough to be a blob, hostile HTML."""
    service = Service(MemoryStore(), MemoryBlobStore())
    owner = service.account("alice").id
    session = service.create(
        owner,
        title=title,
        task="Make tests/test_upload.py pass on CI",
        metadata={"model": "openrouter/qwen-coder"},
        git={
            "remote": "github.com/acme/widgets",
            "branch": "fix/upload",
            "head": "4f2a9c1e0b7d4f2a9c1e0b7d4f2a9c1e0b7d4f2a",
            "dirty": True,
        },
    )
    service.append(
        owner,
        session.id,
        [
            {
                "role": "user",
                "created_at": "2026-11-24T10:00:00.000000Z",
                "parts": [{"type": "text", "text": "Why does **test_upload** fail?\n\n" + HOSTILE}],
            },
            {
                "role": "assistant",
                "model": "openrouter/qwen-coder",
                "created_at": "2026-11-24T10:00:05.000000Z",
                "usage": {"input_tokens": 1200, "output_tokens": 80, "cost_usd": 0.0042},
                "parts": [
                    {"type": "reasoning", "text": "The test *probably* races. <iframe src=x>"},
                    {"type": "text", "text": "Let me run the tests and read the fixture."},
                    {
                        "type": "tool_call",
                        "id": "call_1",
                        "name": "bash",
                        "input": {"command": "pytest -q tests/", "description": "Run tests"},
                    },
                    {
                        "type": "tool_call",
                        "id": "call_2",
                        "name": "read",
                        "input": {"filePath": "tests/conftest.py</code><script>x()</script>"},
                    },
                    {
                        "type": "tool_call",
                        "id": "call_3",
                        "name": "bash",
                        "input": {"command": "cat build.log"},
                    },
                ],
            },
            {
                "role": "tool",
                "created_at": "2026-11-24T10:00:09.000000Z",
                "parts": [
                    {"type": "tool_result", "tool_call_id": "call_1", "output": LONG_OUTPUT},
                    {
                        "type": "tool_result",
                        "tool_call_id": "call_2",
                        "output": "ENOENT: no such file <b>tests/conftest.py</b>",
                        "is_error": True,
                    },
                    {"type": "tool_result", "tool_call_id": "call_3", "output": HUGE_OUTPUT},
                ],
            },
            {
                "role": "assistant",
                "model": "openrouter/qwen-coder",
                "created_at": "2026-11-24T10:00:12.000000Z",
                "usage": {"input_tokens": 2600, "output_tokens": 150, "cost_usd": 0.0081},
                "parts": [
                    {
                        "type": "text",
                        "text": "The fixture is missing. Add it:\n\n"
                        "```python\n@pytest.fixture\ndef bucket(tmp_path):\n"
                        "    return tmp_path / 'bucket'\n```\n\n"
                        "| file | status |\n|---|---|\n| conftest.py | missing |",
                    }
                ],
            },
        ],
    )
    found = service.get(owner, session.id)
    return found, service.messages(owner, session.id, hydrate=True)


@pytest.fixture(scope="module")
def exported() -> tuple[Session, list[Message], str]:
    session, messages = conversation()
    return session, messages, export_html(session, messages, exported_at=NOW)


# --- the file as text -------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every element of a page with its attributes, and the text of its <style>."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def test_it_is_one_file_that_loads_nothing(exported: tuple[Session, list[Message], str]) -> None:
    _, messages, page = exported
    assert page.startswith("<!doctype html>\n")
    parsed = Elements(page)
    tags = {tag for tag, _ in parsed.elements}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    assert not tags & {"video", "audio", "source", "picture", "svg", "button", "select", "textarea"}
    # its one control: the theme switch, a checkbox that CSS alone acts on (no form, no name)
    assert [e for e in parsed.elements if e[0] == "input"] == [
        ("input", {"type": "checkbox", "id": "theme-toggle", "role": "switch"})
    ]
    assert [e for e in parsed.elements if e[0] == "label"] == [("label", {"class": "theme-switch"})]
    assert [tag for tag, _ in parsed.elements].count("style") == 1
    attributes = {name for _, attrs in parsed.elements for name in attrs}
    assert not {a for a in attributes if a.startswith("on") or a in ("src", "srcset", "style")}
    assert "url(" not in parsed.style and "@import" not in parsed.style
    assert "@font-face" not in parsed.style
    # every href is an anchor in the page, or a link the user wrote, made safe
    links = [attrs for tag, attrs in parsed.elements if tag == "a"]
    assert [a["href"] for a in links if a["href"] and a["href"].startswith("#")] == [
        f"#{m.id}" for m in messages
    ]
    assert [a for a in links if not (a["href"] or "").startswith("#")] == [
        {"href": "https://example.com/docs", "rel": "nofollow noopener noreferrer"},
        {"href": "https://tracker.example/pixel.png", "rel": "nofollow noopener noreferrer"},
    ]
    assert sorted(re.findall(r"https?://[^\"'<>\s)]+", page)) == [
        "https://example.com/docs",
        "https://tracker.example/pixel.png",
    ]
    # a Content-Security-Policy forbids loading anything, should a browser find a reason to
    assert (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">"
    ) in page


def test_head_names_the_generator_and_the_session(
    exported: tuple[Session, list[Message], str],
) -> None:
    session, _, page = exported
    assert '<meta charset="utf-8">' in page
    assert '<meta name="generator" content="baton">' in page
    assert f'<meta name="baton-session" content="{session.id}">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert f"<title>{TITLE} · baton</title>" in page


def test_summary_holds_status_model_tokens_cost_times_and_git(
    exported: tuple[Session, list[Message], str],
) -> None:
    session, _, page = exported
    meta = re.search(r'<dl class="meta">(.*?)</dl>', page, re.S)
    assert meta is not None
    rows = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", meta.group(1)))
    assert rows == {
        "Status": '<span class="status status-active">active</span>',
        "Model": "openrouter/qwen-coder",
        "Messages": "4",
        "Tokens": "3,800 in · 230 out",
        "Cost": "$0.0123",
        "Created": f'<time datetime="{session.created_at}">{session.created_at[:10]} '
        f"{session.created_at[11:19]} UTC</time>",
        "Updated": f'<time datetime="{session.updated_at}">{session.updated_at[:10]} '
        f"{session.updated_at[11:19]} UTC</time>",
        "Repository": "<code>github.com/acme/widgets</code>",
        "Branch": "<code>fix/upload</code>",
        "Commit": "<code>4f2a9c1e0b7d</code>",
        "Working tree": "uncommitted changes",
        "Session": f"<code>{session.id}</code>",
        "Exported": f'<time datetime="{NOW}">2026-11-25 09:30:00 UTC</time>',
    }
    assert '<div class="task">Make tests/test_upload.py pass on CI</div>' in page


def test_each_message_has_its_role_time_model_and_usage(
    exported: tuple[Session, list[Message], str],
) -> None:
    _, messages, page = exported
    heads = re.findall(
        r'<li class="message role-(\w+)" id="(m_[0-9a-f]+)"><div class="head">(.*?)</div>', page
    )
    assert [(role, mid) for role, mid, _ in heads] == [(m.role, m.id) for m in messages]
    assert heads[1][2] == (
        '<span class="role">Assistant</span> <span class="model">openrouter/qwen-coder</span> '
        '<span class="when"><time datetime="2026-11-24T10:00:05.000000Z">'
        "2026-11-24 10:00:05 UTC</time></span> "
        '<span class="usage">1,200 in · 80 out · $0.0042</span> '
        f'<a class="anchor" href="#{messages[1].id}" title="Link to this message">#2</a>'
    )


def test_markdown_is_rendered_and_code_highlighted(
    exported: tuple[Session, list[Message], str],
) -> None:
    _, _, page = exported
    assert "<p>Why does <strong>test_upload</strong> fail?</p>" in page
    assert '<pre><code class="language-python"><span class="nd">@pytest</span>' in page
    assert "<th>file</th>" in page and "<td>conftest.py</td>" in page
    assert ".body .nd { color:" in page  # Pygments' colours are inline


def test_tool_calls_and_results(exported: tuple[Session, list[Message], str]) -> None:
    """Cards as the agents show them: a command ready to copy (what it is for in the head), a
    call whose only argument is its path as one line, and each result headed by its tool and
    command, its line count and how long the call took."""
    _, _, page = exported
    assert (
        '<div class="tool-call tool-shell"><div class="tool-head"><span class="tool-name">bash'
        '</span><code class="hint">Run tests</code></div><pre class="code command"><code>'
        "pytest -q tests/</code></pre></div>"
    ) in page
    assert (
        '<div class="tool-call tool-other"><div class="tool-head"><span class="tool-name">read'
        '</span><code class="hint">tests/conftest.py&lt;/code&gt;&lt;script&gt;x()&lt;/script&gt;'
        "</code></div></div>"
    ) in page
    # the 80-line output shows its first lines, and all of them behind "Show all"
    preview = "\n".join(LONG_OUTPUT.splitlines()[:PREVIEW_LINES])
    assert (
        '<div class="tool-result"><div class="tool-head"><span class="tool-name">bash</span>'
        '<code class="hint">pytest -q tests/</code><span class="facts">80 lines · 4.0 s</span>'
        f'</div><div class="preview"><pre class="code"><code>{preview}</code></pre></div>'
        '<details class="more"><summary>Show all 80 lines</summary><pre class="code"><code>'
        f"{LONG_OUTPUT}</code></pre></details></div>"
    ) in page
    assert (
        '<div class="tool-result error"><div class="tool-head"><span class="tool-name">read'
        '</span><code class="hint">tests/conftest.py&lt;/code&gt;&lt;script&gt;x()&lt;/script&gt;'
        '</code><span class="facts">error · 1 line · 4.0 s</span></div><pre class="code"><code>'
        "ENOENT: no such file &lt;b&gt;tests/conftest.py&lt;/b&gt;</code></pre></div>"
    ) in page
    # the reasoning is folded
    assert '<details class="reasoning"><summary>Reasoning</summary>' in page


def test_edits_writes_and_patches_read_as_diffs_and_code() -> None:
    edit = {
        "type": "tool_call",
        "id": "e",
        "name": "edit_file",
        "input": {"path": "app.py", "old_text": "a = 1\nb = 2", "new_text": "a = 1\nb = 3"},
    }
    assert part_html(edit) == (
        '<div class="tool-call tool-edit"><div class="tool-head"><span class="tool-name">'
        'edit_file</span><code class="hint">app.py</code></div><pre class="code diff"><code>'
        '<span class="d-meta">--- a/app.py</span><span class="d-meta">+++ b/app.py</span>'
        '<span class="d-hunk">@@ -1,2 +1,2 @@</span><span class="d-ctx"> a = 1</span>'
        '<span class="d-del">-b = 2</span><span class="d-add">+b = 3</span></code></pre></div>'
    )
    write = {
        "type": "tool_call",
        "id": "w",
        "name": "write_file",
        "input": {"path": "src/hello.py", "content": "print('hi')\n"},
    }
    assert part_html(write) == (
        '<div class="tool-call tool-write"><div class="tool-head"><span class="tool-name">'
        'write_file</span><code class="hint">src/hello.py</code></div><pre class="code"><code>'
        '<span class="nb">print</span><span class="p">(</span><span class="s1">'
        "'hi'</span><span class=\"p\">)</span>\n</code></pre></div>"
    )
    patch = "*** Begin Patch\n*** Update File: a.txt\n@@\n-old\n+new\n*** End Patch"
    call = {"type": "tool_call", "id": "p", "name": "apply_patch", "input": {"input": patch}}
    assert part_html(call).endswith(
        '<pre class="code diff"><code><span class="d-meta">*** Begin Patch</span>'
        '<span class="d-meta">*** Update File: a.txt</span><span class="d-hunk">@@</span>'
        '<span class="d-del">-old</span><span class="d-add">+new</span>'
        '<span class="d-meta">*** End Patch</span></code></pre></div>'
    )
    assert part_html(call).startswith(
        '<div class="tool-call tool-patch"><div class="tool-head"><span class="tool-name">'
        'apply_patch</span><code class="hint">a.txt</code></div>'
    )
    # Codex's shell takes an argv: the script is the command
    argv = {"command": ["bash", "-lc", "pytest -q"], "workdir": "/repo"}
    shell = {"type": "tool_call", "id": "s", "name": "shell", "input": argv}
    assert '<pre class="code command"><code>pytest -q</code></pre>' in part_html(shell)
    # Claude Code's MultiEdit: one diff per edit
    edits = [{"old_string": "a", "new_string": "b"}, {"old_string": "c", "new_string": "d"}]
    multi = {
        "type": "tool_call",
        "id": "m",
        "name": "MultiEdit",
        "input": {"file_path": "x.py", "edits": edits},
    }
    assert part_html(multi).count('<span class="d-hunk">@@ -1 +1 @@</span>') == 2
    # a command's exit status, read from the output the sandbox wrote
    calls = {"r": ToolCall("run_command", "make test", "2026-11-24T10:00:00.000000Z")}
    result = {"type": "tool_result", "tool_call_id": "r", "output": "boom\n[exit code 2]"}
    assert part_html(result, calls, when="2026-11-24T10:01:30.000000Z").startswith(
        '<div class="tool-result"><div class="tool-head"><span class="tool-name">run_command'
        '</span><code class="hint">make test</code><span class="facts">2 lines · exit 2 · '
        "1 min 30 s</span></div>"
    )


def test_nothing_is_cut(exported: tuple[Session, list[Message], str]) -> None:
    """The 85 KB output was a blob in the store; the export holds all of it."""
    _, messages, page = exported
    assert len(HUGE_OUTPUT) > 64 * 1024
    assert messages[2].parts[2] == {
        "type": "tool_result",
        "tool_call_id": "call_3",
        "output": HUGE_OUTPUT,
    }
    assert (
        '<details class="more"><summary>Show all 1,200 lines</summary>'
        f'<pre class="code"><code>{HUGE_OUTPUT}</code></pre></details>'
    ) in page


def test_hostile_content_is_text(exported: tuple[Session, list[Message], str]) -> None:
    _, _, page = exported
    assert "&lt;script&gt;alert('boom')&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "[click me](javascript:alert(2))" in page  # not a link: markdown-it refuses it
    assert '&lt;a href="javascript:alert(3)"&gt;raw link&lt;/a&gt;' in page
    assert "&lt;iframe src=x&gt;" in page
    assert "tests/conftest.py&lt;/code&gt;&lt;script&gt;x()&lt;/script&gt;" in page
    assert "javascript:" not in re.sub(
        r"&lt;.*?&gt;|\[click me\]\(javascript:alert\(2\)\)", "", page
    )
    assert "onerror=" not in page.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    assert (
        '<a href="https://tracker.example/pixel.png" rel="nofollow noopener noreferrer">Image: tracker</a>'
        in page
    )


def test_hostile_session_fields_are_escaped() -> None:
    session, messages = conversation(title=HOSTILE_TITLE)
    session.status = 'active"><script>s()</script>'
    session.metadata = {"model": "<script>m()</script>", "mode": "<b>plan</b>"}
    page = export_html(session, messages, exported_at=NOW)
    assert "<script" not in page.lower()
    assert (
        "<title>&lt;/title&gt;&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt; · baton</title>"
        in page
    )
    assert '<span class="status status-active&quot;&gt;&lt;script&gt;s()&lt;/script&gt;">' in page
    assert "<dt>Mode</dt><dd>&lt;b&gt;plan&lt;/b&gt;</dd>" in page


def test_links_keep_only_web_and_mail_addresses() -> None:
    links = "[a](data:image/png;base64,AA) [b](file:///etc/passwd) [c](JaVaScRiPt:x()) [d](mailto:x@y.z)"
    assert markdown_html(links) == (
        '<p><a rel="nofollow noopener noreferrer">a</a> [b](file:///etc/passwd) '
        '[c](JaVaScRiPt:x()) <a href="mailto:x@y.z" rel="nofollow noopener noreferrer">d</a></p>\n'
    )


def test_the_sanitiser_drops_script_urls_and_active_tags() -> None:
    dirty = (
        '<a href="javascript:alert(1)" onclick="x()">a</a><script>y()</script><p style="x">p</p>'
    )
    assert sanitise(dirty) == '<a rel="nofollow noopener noreferrer">a</a><p>p</p>'


def test_parts_of_every_kind() -> None:
    assert part_html({"type": "file", "path": "notes/<x>.md", "mime": "text/markdown"}) == (
        '<p class="file">File <code>notes/&lt;x&gt;.md</code> <span class="muted">text/markdown'
        "</span></p>"
    )
    assert part_html({"type": "tool_result", "tool_call_id": "c", "output": {"ok": True}}) == (
        '<div class="tool-result"><div class="tool-head"><span class="tool-name">tool</span>'
        '<span class="facts">3 lines</span></div>'
        '<pre class="code"><code><span class="p">{</span>\n<span class="w">  </span>'
        '<span class="nt">"ok"</span><span class="p">:</span><span class="w"> </span>'
        '<span class="kc">true</span>\n<span class="p">}</span>\n</code></pre></div>'
    )
    ending = {"type": "tool_result", "tool_call_id": "c", "output": "a\n" * COLLAPSE_LINES}
    assert "Show all" not in part_html(ending)
    assert "Show all 13 lines" in part_html({**ending, "output": "a\n" * 13})
    exit_code = {"type": "tool_result", "tool_call_id": "c", "output": "x", "is_error": True}
    assert '<span class="facts">1 line · exit 2</span>' in part_html({**exit_code, "exit_code": 2})
    short = {"type": "tool_call", "id": "c", "name": "write", "input": {"content": "a"}}
    assert part_html(short).startswith('<div class="tool-call tool-write">')
    # other tools' arguments as JSON: twelve lines are shown, thirteen folded
    other = {"type": "tool_call", "id": "c", "name": "todo", "input": {"content": "a"}}
    shown = {**other, "input": {f"k{i}": i for i in range(COLLAPSE_LINES - 2)}}
    assert part_html(shown).startswith('<details class="tool-call" open><summary>')
    many = {**other, "input": {f"k{i}": i for i in range(COLLAPSE_LINES - 1)}}
    assert part_html(many).startswith('<details class="tool-call"><summary>')
    big = {**other, "input": {"content": "a" * COLLAPSE_CHARS}}
    assert part_html(big).startswith('<details class="tool-call"><summary>')
    blob = {"type": "blob_ref", "sha256": "ab" * 32, "size": 70000, "preview": "head"}
    assert part_html(blob).startswith(
        '<details class="blob"><summary>Stored blob <code>abababababab</code> (70,000 bytes)'
    )


def test_a_table_keeps_its_alignment_as_an_attribute() -> None:
    """markdown-it writes style="text-align:…", which nh3 drops and a page's CSP refuses."""
    assert markdown_html("| a | b | c |\n|:-|:-:|--:|\n| 1 | 2 | 3 |") == (
        '<table>\n<thead>\n<tr>\n<th align="left">a</th>\n<th align="center">b</th>\n'
        '<th align="right">c</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td align="left">1</td>\n'
        '<td align="center">2</td>\n<td align="right">3</td>\n</tr>\n</tbody>\n</table>\n'
    )


def test_a_stored_tool_output_names_its_tool() -> None:
    """A page reads messages as stored: an output over 64 KiB is a blob_ref with a preview."""
    blob = {
        "type": "blob_ref",
        "of": "tool_result",
        "tool_call_id": "c1",
        "sha256": "cd" * 32,
        "size": 90_000,
        "preview": "row 1",
    }
    assert part_html(blob, {"c1": ToolCall("bash")}) == (
        '<details class="blob"><summary>Output of <code class="tool-name">bash</code>, stored as '
        'blob <code>cdcdcdcdcdcd</code> (90,000 bytes)</summary><pre class="code"><code>row 1'
        "</code></pre></details>"
    )


def test_an_empty_session() -> None:
    session, _ = conversation()
    page = export_html(session, [], exported_at=NOW)
    assert '<p class="muted">No messages.</p>' in page
    assert "<dt>Messages</dt><dd>0</dd>" in page


def test_export_dispatches_by_format() -> None:
    session, messages = conversation()
    assert export(session, messages, "html", NOW) == export_html(session, messages, exported_at=NOW)
    document = export(session, messages, "json", NOW)
    assert isinstance(document, dict) and document["format"] == "baton-session"
    markdown = export(session, messages, "md", NOW)
    assert isinstance(markdown, str) and markdown.startswith(f"# {TITLE}\n")
    with pytest.raises(InvalidInput) as caught:
        export(session, messages, "pdf", NOW)
    assert caught.value.message == (
        "unknown export format 'pdf': use json, markdown, html, opencode"
    )


# --- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    ("name", "viewport", "scheme"),
    [
        ("export-html", {"width": 1280, "height": 900}, "light"),
        ("export-html-phone", {"width": 390, "height": 844}, "light"),
        ("export-html-dark", {"width": 1280, "height": 900}, "dark"),
    ],
)
def test_it_renders_offline_in_a_browser(
    exported: tuple[Session, list[Message], str],
    browser: Browser,
    tmp_path: Path,
    name: str,
    viewport: dict[str, int],
    scheme: str,
) -> None:
    _, messages, text = exported
    path = tmp_path / "session.html"
    path.write_text(text, "utf-8")
    url = path.as_uri()
    context = browser.new_context(viewport=viewport, color_scheme=scheme)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = context.new_page()
    requested: list[str] = []
    aborted: list[str] = []
    problems: list[str] = []

    def route(r: Route) -> None:
        if r.request.url == url:
            r.continue_()
        else:
            aborted.append(r.request.url)
            r.abort()

    def on_request(request: Request) -> None:
        requested.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.route("**/*", route)
    page.on("request", on_request)
    page.on("console", on_console)
    page.goto(url)

    expect(page.locator("h1#title")).to_have_text(TITLE)
    expect(page.locator("h1#title")).to_be_visible()
    expect(page.locator("ol.conversation > li.message")).to_have_count(len(messages))
    expect(page.locator("ol.conversation > li.message .head .role")).to_have_text(
        ["User", "Assistant", "Tool", "Assistant"]
    )
    assert page.locator("script").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    expect(page.locator("a", has_text="the docs")).to_have_attribute(
        "rel", "nofollow noopener noreferrer"
    )
    # the long output shows its first lines, the rest folded; the error is shown and marked
    results = page.locator("li.role-tool .tool-result")
    expect(results).to_have_count(3)
    expect(results.nth(0).locator(".tool-head")).to_have_text(
        "bashpytest -q tests/80 lines · 4.0 s"
    )
    expect(results.nth(0).locator(".preview pre")).to_be_visible()
    expect(results.nth(0).locator("details.more pre")).to_be_hidden()
    results.nth(0).locator("details.more summary").click()
    expect(results.nth(0).locator("details.more pre")).to_be_visible()
    expect(results.nth(0).locator(".preview pre")).to_be_hidden()
    expect(results.nth(1).locator("pre")).to_be_visible()
    expect(results.nth(1).locator(".tool-head")).to_have_text(
        "readtests/conftest.py</code><script>x()</script>error · 1 line · 4.0 s"
    )
    # Pygments' inline colours apply to the highlighted Markdown code
    keyword = page.locator("li.message").nth(3).locator("pre code span.k").first
    expect(keyword).to_have_text("def")
    assert keyword.evaluate("e => getComputedStyle(e).color") != page.locator("li.message").nth(
        3
    ).locator("pre code").evaluate("e => getComputedStyle(e).color")
    # nothing is wider than the screen (a phone scrolls code blocks, not the page)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    page.screenshot(path=str(artifacts() / f"{name}.png"), full_page=True)
    context.close()

    assert requested == [url]
    assert aborted == []
    assert problems == []


@pytest.mark.parametrize(
    ("scheme", "before", "after", "label"),
    [
        ("light", "rgb(255, 255, 255)", "rgb(13, 17, 23)", "Dark theme"),
        ("dark", "rgb(13, 17, 23)", "rgb(255, 255, 255)", "Light theme"),
    ],
)
def test_the_theme_switch_flips_the_system_theme_without_a_script(
    exported: tuple[Session, list[Message], str],
    browser: Browser,
    tmp_path: Path,
    scheme: str,
    before: str,
    after: str,
    label: str,
) -> None:
    path = tmp_path / "session.html"
    path.write_text(exported[2], "utf-8")
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        color_scheme=scheme,  # type: ignore[arg-type]
        java_script_enabled=False,  # the switch needs none
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(path.as_uri())
    background = "() => getComputedStyle(document.body).backgroundColor"
    code = "() => getComputedStyle(document.querySelector('.body pre')).backgroundColor"
    keyword = "() => getComputedStyle(document.querySelector('.body pre span.k')).color"
    switch = page.get_by_role("switch", name=label)
    expect(switch).to_be_visible()
    expect(switch).not_to_be_checked()
    assert page.locator("label.theme-switch").inner_text() == label  # what is shown
    assert page.evaluate(background) == before
    colours = (page.evaluate(code), page.evaluate(keyword))
    # from the keyboard: the switch is the page's first stop, and Space turns it
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "theme-toggle"
    page.keyboard.press("Space")
    expect(switch).to_be_checked()
    assert page.evaluate(background) == after
    assert (page.evaluate(code), page.evaluate(keyword)) != colours  # the code's colours too
    page.screenshot(path=str(artifacts() / f"export-html-switched-from-{scheme}.png"))
    # a click on its label turns it back
    page.locator("label.theme-switch").click()
    expect(switch).not_to_be_checked()
    assert page.evaluate(background) == before
    assert (page.evaluate(code), page.evaluate(keyword)) == colours
    context.close()
