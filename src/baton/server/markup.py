"""Messages as HTML: Markdown rendered by markdown-it, code highlighted by Pygments, and
everything sanitised by nh3 (a message is untrusted input, on a public page at that)."""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

import orjson
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

from baton.core.models import Message
from baton.exporters.html import sanitise  # one allowlist for the pages and the export

COLLAPSE_LINES = 12  # tool output longer than this is collapsed
COLLAPSE_CHARS = 1500
PREVIEW_CHARS = 20_000  # a part is cut here on a page; the full text is in the export

_FORMATTER = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Any:
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    lexer = _lexer(lang.strip().lower()[:40]) if lang else None
    if lexer is None:
        return html.escape(code)
    return str(highlight(code, lexer, _FORMATTER))


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable("table")
    md.enable("strikethrough")
    return md


def markdown(text: str) -> str:
    """Markdown as safe HTML."""
    return sanitise(_markdown().render(_cut(text)))


def code_block(text: str, lang: str = "") -> str:
    text = _cut(text)
    if lang:
        body = _highlight(text, lang, None)
    else:
        try:
            lexer = guess_lexer(text[:2000]) if text.lstrip().startswith(("{", "[")) else None
        except ClassNotFound:
            lexer = None
        body = str(highlight(text, lexer, _FORMATTER)) if lexer else html.escape(text)
    return sanitise(f'<pre class="code"><code>{body}</code></pre>')


def _cut(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    return text[:PREVIEW_CHARS] + f"\n\n… ({len(text) - PREVIEW_CHARS:,} more characters)"


def collapsed(summary: str, inner: str, open_: bool = False) -> str:
    return (
        f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>"
        f"{inner}</details>"
    )


def part_html(part: dict[str, Any]) -> str:
    """One part of a message as HTML (already sanitised)."""
    kind = part.get("type")
    if kind == "text":
        return markdown(str(part.get("text", "")))
    if kind == "reasoning":
        return collapsed("Reasoning", markdown(str(part.get("text", ""))))
    if kind == "tool_call":
        args = orjson.dumps(part.get("input"), option=orjson.OPT_INDENT_2).decode()
        return collapsed(f"Tool call: {part.get('name', '?')}", code_block(args, "json"))
    if kind == "tool_result":
        output = part.get("output")
        text = output if isinstance(output, str) else orjson.dumps(output).decode()
        lines = text.count("\n") + 1
        label = f"Tool output ({lines:,} line{'s' if lines != 1 else ''})"
        if part.get("is_error"):
            label += ", error"
        long = lines > COLLAPSE_LINES or len(text) > COLLAPSE_CHARS
        return collapsed(label, code_block(text), open_=not long)
    if kind == "blob_ref":
        size = part.get("size", 0)
        preview = str(part.get("preview", ""))
        label = f"Stored output ({size:,} bytes; preview)"
        return collapsed(label, code_block(preview))
    if kind == "file":
        name = str(part.get("path") or part.get("name") or "file")
        return f'<p class="file">File: <code>{html.escape(name)}</code></p>'
    return f"<p class='muted'>({html.escape(str(kind))} part)</p>"


def message_html(message: Message) -> str:
    """A message as HTML. Messages are immutable and named by their content, so the HTML of
    one is rendered once per process (kept by id)."""
    return _html_by_id(message.id, message)


_rendered: dict[str, str] = {}


def _html_by_id(message_id: str, message: Message) -> str:
    found = _rendered.get(message_id)
    if found is None:
        found = "".join(part_html(p) for p in message.parts)
        if len(_rendered) >= 4096:
            _rendered.clear()
        _rendered[message_id] = found
    return found


def pygments_css() -> str:
    return str(HtmlFormatter(nobackground=True).get_style_defs(".message-body"))  # type: ignore[no-untyped-call]
