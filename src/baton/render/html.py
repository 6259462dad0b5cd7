"""Messages as HTML, the one renderer of every page baton writes: the server's session and
share pages and the self-contained HTML export show a message as the same fragment, styled by
the same stylesheet (style.css beside this module: the server serves it, the export inlines it).

Markdown is rendered by markdown-it with raw HTML off, code is coloured by Pygments (classes,
no inline style), and the result is cleaned by nh3 with one allowlist, so `<script>` in a
message is text and a `javascript:` link loses its href. Links the user wrote stay, with
`rel="nofollow noopener noreferrer"`. A Markdown image never loads: it becomes a link to its
address, so neither a public share page nor an exported file tells a tracker it was read.
Tool output (or arguments) longer than COLLAPSE_LINES lines or COLLAPSE_CHARS characters is
folded in a <details> element.

The export holds every part in full. A page may pass `cut=PAGE_PART_CHARS`: a part longer than
that shows its beginning and says how much more the export has. Nothing else differs.

The export file reaches nothing on the network: the CSS (Pygments' colours included) is
inline, there is no script, no font and no remote image, and a Content-Security-Policy meta tag
forbids loading anything should a browser ever find a reason to.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from baton.core.models import JSON, Message, Session, kept_before, parse_time
from baton.core.partials import join_runs

COLLAPSE_LINES = 12  # tool output (or arguments) longer than this is folded
COLLAPSE_CHARS = 1500
PAGE_PART_CHARS = 20_000  # a page shows this much of a part; the export shows all of it
HIGHLIGHT_LIMIT = 100_000  # code longer than this is shown plain: Pygments is slow on it
SUMMARY_CHARS = 80  # the hint after a tool's name ("bash: python3 greet.py")

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
LINK_REL = "nofollow noopener noreferrer"
ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}

# What sanitised Markdown may hold: the same allowlist as the web pages.
_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th",
    "thead", "tr", "ul", "details", "summary", "div",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "div": {"class"},
    "td": {"align"},
    "th": {"align"},
}
_ALIGNS = {"left", "center", "right"}
_HINT_KEYS = ("command", "cmd", "description", "filePath", "file_path", "path", "pattern", "url")
_FORMATTER = HtmlFormatter(nowrap=True)
STYLESHEET = Path(__file__).with_name("style.css")


# --- Markdown and code ------------------------------------------------------------------------


def sanitise(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel=LINK_REL,
    )


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, _attrs: Any = None) -> str:
    """Highlighted code (Pygments escapes it), or the code escaped when the language is
    unknown or the code too long to colour quickly."""
    lexer = _lexer(lang.strip().lower()[:40]) if lang else None
    if lexer is None or len(code) > HIGHLIGHT_LIMIT:
        return html.escape(code)
    return str(highlight(code, lexer, _FORMATTER))


def _image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """An image is a link to it: the file never loads anything by itself."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    return f'<a href="{html.escape(src)}">Image: {html.escape(alt or src)}</a>'


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable("table")
    md.enable("strikethrough")
    md.add_render_rule("image", _image)
    md.core.ruler.push("align", _align)
    return md


def _align(state: StateCore) -> None:
    """A table column's alignment as an `align` attribute: markdown-it writes a style
    attribute, which the sanitiser drops and the pages' CSP would refuse."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", ""))
            side = style.removeprefix("text-align:")
            if side in _ALIGNS:
                token.attrs["align"] = side


def _cut(text: str, cut: int | None) -> str:
    """`text`, or its first `cut` characters and a note of how many more there are."""
    if cut is None or len(text) <= cut:
        return text
    return text[:cut] + f"\n\n… ({len(text) - cut:,} more characters in the export)"


def markdown_html(text: str, cut: int | None = None) -> str:
    """Markdown as safe HTML (in full unless `cut`)."""
    return sanitise(_markdown().render(_cut(text, cut)))


def code_html(text: str, lang: str = "", cut: int | None = None) -> str:
    text = _cut(text, cut)
    body = _highlight(text, lang) if lang else html.escape(text)
    return f'<pre class="code"><code>{body}</code></pre>'


def _line_count(text: str) -> int:
    """How many lines `text` has (a final newline ends the last line, it starts none)."""
    return text.count("\n") + (0 if text.endswith("\n") else 1) if text else 0


def _is_long(text: str) -> bool:
    return _line_count(text) > COLLAPSE_LINES or len(text) > COLLAPSE_CHARS


def _details(summary: str, inner: str, *, open_: bool, kind: str) -> str:
    return (
        f'<details class="{kind}"{" open" if open_ else ""}>'
        f"<summary>{summary}</summary>{inner}</details>"
    )


def _lines(text: str) -> str:
    count = _line_count(text)
    return f"{count:,} line{'' if count == 1 else 's'}"


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _hint(arguments: Any) -> str:
    """What a tool call was about, in one short line: its command, path or pattern."""
    if not isinstance(arguments, dict):
        return ""
    for key in _HINT_KEYS:
        value = arguments.get(key)
        if isinstance(value, str) and value.strip():
            line = value.strip().splitlines()[0]
            return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return ""


# --- parts ------------------------------------------------------------------------------------


def part_html(part: JSON, tools: dict[str, str] | None = None, cut: int | None = None) -> str:
    """One part of a message as safe HTML. `tools` maps tool call ids to tool names, so a
    result can say which tool it came from; `cut` shortens long parts (on a page)."""
    kind = part.get("type")
    if kind == "text":
        return f'<div class="text">{markdown_html(str(part.get("text", "")), cut)}</div>'
    if kind == "reasoning":
        inner = markdown_html(str(part.get("text", "")), cut)
        return _details(
            "Reasoning", f'<div class="text">{inner}</div>', open_=False, kind="reasoning"
        )
    if kind == "tool_call":
        return _tool_call(part, cut)
    if kind == "tool_result":
        return _tool_result(part, tools or {}, cut)
    kept = kept_before(part)
    if kept is not None:  # a file's content before a turn, for /undo: said, not shown
        path = html.escape(str(part.get("path", "")))
        return f'<p class="file muted"><code>{path}</code> {html.escape(kept)}</p>'
    if kind == "file":
        return _file(part, cut)
    if kind == "blob_ref":
        return _blob(part, tools or {})
    return f'<p class="muted">({html.escape(str(kind))} part)</p>'


def _tool_call(part: JSON, cut: int | None) -> str:
    name = html.escape(str(part.get("name", "tool")))
    arguments = part.get("input")
    hint = _hint(arguments)
    summary = f'Tool call <code class="tool-name">{name}</code>'
    if hint:
        summary += f' <span class="hint">{html.escape(hint)}</span>'
    text = _json_text(arguments if arguments is not None else {})
    body = code_html(text, "json", cut)
    return _details(summary, body, open_=not _is_long(text), kind="tool-call")


def _tool_result(part: JSON, tools: dict[str, str], cut: int | None) -> str:
    output = part.get("output")
    if isinstance(output, str):
        body = code_html(output, cut=cut)
        text = output
    else:
        text = _json_text(output)
        body = code_html(text, "json", cut)
    error = bool(part.get("is_error"))
    name = tools.get(str(part.get("tool_call_id")))
    summary = "Error from" if error else "Output of"
    summary += f' <code class="tool-name">{html.escape(name)}</code>' if name else " tool"
    summary += f" ({_lines(text)}"
    exit_code = part.get("exit_code")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        summary += f", exit {exit_code}"
    summary += ")"
    kind = "tool-result error" if error else "tool-result"
    return _details(summary, body, open_=not _is_long(text), kind=kind)


def _file(part: JSON, cut: int | None) -> str:
    name = str(part.get("path") or part.get("name") or part.get("url") or "file")
    label = f"File <code>{html.escape(name)}</code>"
    mime = part.get("mime")
    if isinstance(mime, str) and mime:
        label += f' <span class="muted">{html.escape(mime)}</span>'
    withheld = part.get("withheld")  # a share's copy of a file that held secrets
    if isinstance(withheld, str):
        label += f' <span class="muted">({html.escape(withheld)})</span>'
    data = part.get("data")
    if isinstance(data, str) and data and part.get("encoding") in (None, "utf-8", "text"):
        return _details(label, code_html(data, cut=cut), open_=not _is_long(data), kind="file")
    return f'<p class="file">{label}</p>'


def _blob(part: JSON, tools: dict[str, str]) -> str:
    """A payload too big to keep inline (a page reads messages as stored; the export has
    them hydrated): its size, and the preview stored with it, folded."""
    size = part.get("size")
    sha = str(part.get("sha256", ""))
    label = f"blob <code>{html.escape(sha[:12])}</code>"
    if isinstance(size, int):
        label += f" ({size:,} bytes)"
    if part.get("of") == "tool_result":
        name = tools.get(str(part.get("tool_call_id")))
        origin = f'<code class="tool-name">{html.escape(name)}</code>' if name else "tool"
        label = f"Output of {origin}, stored as {label}"
    else:
        label = f"Stored {label}"
    preview = part.get("preview")
    if isinstance(preview, str) and preview:
        return _details(label, code_html(preview), open_=False, kind="blob")
    return f'<p class="blob">{label}</p>'


# --- the page ---------------------------------------------------------------------------------


def _when(value: str | None) -> str:
    if not value:
        return ""
    try:
        shown = parse_time(value).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        shown = value
    return f'<time datetime="{html.escape(value)}">{html.escape(shown)}</time>'


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(usage: JSON | None) -> str:
    if not usage:
        return ""
    bits = [
        f"{_count(usage.get('input_tokens')):,} in",
        f"{_count(usage.get('output_tokens')):,} out",
    ]
    cache = _count(usage.get("cache_read_tokens"))
    if cache:
        bits.append(f"{cache:,} cached")
    cost = usage.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost:
        bits.append(_money(float(cost)))
    return " · ".join(bits)


def _row(label: str, value_html: str) -> str:
    return f"<dt>{html.escape(label)}</dt><dd>{value_html}</dd>" if value_html else ""


def _code(value: Any) -> str:
    return f"<code>{html.escape(str(value))}</code>" if value not in (None, "") else ""


def _summary(session: Session, messages: list[Message], exported_at: str) -> str:
    t = session.own  # what the session's own messages spent; a fork's inheritance apart
    tokens = f"{t.input_tokens:,} in · {t.output_tokens:,} out"
    if t.cache_read_tokens or t.cache_write_tokens:
        tokens += f" · cache {t.cache_read_tokens:,} read, {t.cache_write_tokens:,} written"
    i = session.inherited
    inherited = f"{i.input_tokens:,} in · {i.output_tokens:,} out · {_money(i.cost_usd)}"
    meta = session.metadata if isinstance(session.metadata, dict) else {}
    models = [m.model for m in messages if m.model]
    model = meta.get("model") if isinstance(meta.get("model"), str) else None
    model = model or (models[-1] if models else None)
    status = html.escape(session.status)
    rows = [
        _row("Status", f'<span class="status status-{status}">{status}</span>'),
        _row("Model", html.escape(model) if model else ""),
        _row("Mode", html.escape(str(meta["mode"])) if meta.get("mode") else ""),
        _row("Messages", f"{len(messages):,}"),
        _row("Tokens", tokens),
        _row("Cost", _money(t.cost_usd)),
        _row("Inherited", inherited if session.forked_from else ""),
        _row("Created", _when(session.created_at)),
        _row("Updated", _when(session.updated_at)),
    ]
    source = meta.get("source")
    if isinstance(source, dict) and source.get("tool"):
        version = f" {source['version']}" if source.get("version") else ""
        rows.append(_row("Imported from", html.escape(f"{source['tool']}{version}")))
    if session.forked_from:
        fork = session.forked_from
        origin = fork.get("session") or fork.get("share") or ""
        rows.append(_row("Forked from", _code(origin) or html.escape(json.dumps(fork))))
    git = session.git or {}
    rows += [
        _row("Repository", _code(git.get("remote") or git.get("remote_url") or session.repo)),
        _row("Branch", _code(git.get("branch"))),
        _row("Commit", _code(str(git.get("head") or git.get("commit") or "")[:12])),
    ]
    if "dirty" in git:
        rows.append(_row("Working tree", "uncommitted changes" if git["dirty"] else "clean"))
    rows += [_row("Session", _code(session.id)), _row("Exported", _when(exported_at))]
    return '<dl class="meta">' + "".join(rows) + "</dl>"


def tool_names(messages: Iterable[Message], into: dict[str, str] | None = None) -> dict[str, str]:
    """The name of each tool call in `messages`, by call id (added to `into` if given)."""
    names = {} if into is None else into
    for message in messages:
        for part in message.parts:
            if part.get("type") == "tool_call":
                names[str(part.get("id"))] = str(part.get("name", "tool"))
    return names


def message_html(
    message: Message,
    position: int,
    tools: dict[str, str],
    cut: int | None = None,
    *,
    first: int | None = None,
    note: str = "",
) -> str:
    """One message as the `<li>` of a conversation: its head (role, model, time, usage, a link
    to itself) and its parts. `position` counts from 1; `tools` names the calls it answers.
    A streamed answer joined from stored chunks (baton.core.partials) keeps the id of its last
    message and shows the range of positions it stands for, "#first–#position"; `note` is a
    short remark in its head (e.g. that the answer continues on the next page)."""
    used = tuple(
        tools.get(str(p.get("tool_call_id")), "")
        for p in message.parts
        if p.get("type") in ("tool_result", "blob_ref")
    )
    key = (message.id, position, used, cut, first, note)
    found = _rendered.get(key)
    if found is None:
        found = _message(message, position, tools, cut, first, note)
        if len(_rendered) >= 4096:
            _rendered.clear()
        _rendered[key] = found
    return found


# Messages are immutable and named by their content: a page renders each one once per process.
_rendered: dict[tuple[str, int, tuple[str, ...], int | None, int | None, str], str] = {}


def _message(
    message: Message,
    position: int,
    tools: dict[str, str],
    cut: int | None,
    first: int | None,
    note: str,
) -> str:
    role = message.role if message.role in ROLE_LABELS else "other"
    label = ROLE_LABELS.get(message.role, message.role.capitalize())
    head = [f'<span class="role">{html.escape(label)}</span>']
    if message.model:
        head.append(f'<span class="model">{html.escape(message.model)}</span>')
    head.append(f'<span class="when">{_when(message.created_at)}</span>')
    usage = _usage(message.usage)
    if usage:
        head.append(f'<span class="usage">{usage}</span>')
    if note:
        head.append(f'<span class="note">{html.escape(note)}</span>')
    number = f"#{first}–#{position}" if first is not None and first < position else f"#{position}"
    head.append(f'<a class="anchor" href="#{html.escape(message.id)}">{number}</a>')
    body = "".join(part_html(p, tools, cut) for p in message.parts)
    return (
        f'<li class="message role-{role}" id="{html.escape(message.id)}">'
        f'<div class="head">{" ".join(head)}</div><div class="body">{body}</div></li>'
    )


def export_html(session: Session, messages: list[Message], *, exported_at: str) -> str:
    """The whole session (hydrated messages) as one HTML document."""
    title = session.title or "Untitled session"
    tools = tool_names(messages)
    items = []
    position = 0
    for message, count in join_runs(messages):
        position += count
        items.append(message_html(message, position, tools, first=position - count + 1))
    task = f'<div class="task">{html.escape(session.task)}</div>' if session.task else ""
    conversation = (
        f'<ol class="conversation">{"".join(items)}</ol>'
        if items
        else '<p class="muted">No messages.</p>'
    )
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="baton">\n'
        f'<meta name="baton-session" content="{html.escape(session.id)}">\n'
        f"<title>{html.escape(title)} · baton</title>\n"
        f'<style>\n{stylesheet()}</style>\n</head>\n<body>\n<main class="export">\n'
        f'<header><p class="brand">baton session</p><h1 id="title">{html.escape(title)}</h1>'
        f"{task}{_summary(session, messages, exported_at)}</header>\n"
        f"{conversation}\n"
        f"<footer>Exported by baton {_when(exported_at)} · session <code>"
        f"{html.escape(session.id)}</code></footer>\n"
        "</main>\n</body>\n</html>\n"
    )


# --- style ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The one stylesheet of the pages and the export: style.css and Pygments' colours for
    light and dark schemes (scoped to a message's body)."""
    light = HtmlFormatter(style="default", nobackground=True).get_style_defs(".body")  # type: ignore[no-untyped-call]
    dark = HtmlFormatter(style="github-dark", nobackground=True).get_style_defs(".body")  # type: ignore[no-untyped-call]
    css = STYLESHEET.read_text("utf-8")
    return f"{css}{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
