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
inline, there is no script, no font and no remote image (its one control, the theme switch, is
a checkbox styled by CSS), and a Content-Security-Policy meta tag
forbids loading anything should a browser ever find a reason to.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

from baton.core.models import JSON, Message, Session, kept_before, parse_time
from baton.core.partials import join_runs

COLLAPSE_LINES = 12  # tool output (or arguments) longer than this is folded
COLLAPSE_CHARS = 1500
PAGE_PART_CHARS = 20_000  # a page shows this much of a part; the export shows all of it
HIGHLIGHT_LIMIT = 100_000  # code longer than this is shown plain: Pygments is slow on it
PREVIEW_LINES = 8  # a long output shows this many lines before "Show all"
SUMMARY_CHARS = 80  # the hint after a tool's name ("bash: python3 greet.py")

# The export's one control: a switch that flips the system's theme with CSS alone (`:has()`),
# named by the theme it turns on (the label follows the system's scheme).
THEME_SWITCH = (
    '<label class="theme-switch"><input type="checkbox" id="theme-toggle" role="switch">'
    '<span class="to-dark">Dark theme</span><span class="to-light">Light theme</span></label>'
)
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


_PATCHED = re.compile(r"^(?:\*\*\* (?:Add|Update|Delete) File: |\+\+\+ b/)(.+)$", re.MULTILINE)


def _call_hint(name: str, arguments: Any) -> str:
    """A call's key argument; for a patch, the files it touches."""
    hint = _hint(arguments)
    if hint or _kind_of(name) != "patch":
        return hint
    text = arguments if isinstance(arguments, str) else None
    if isinstance(arguments, dict):
        text = _first_str(arguments, "patch", "input", "diff")
    files = list(dict.fromkeys(_PATCHED.findall(text or "")))
    line = ", ".join(f.strip() for f in files)
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


def _hint(arguments: Any) -> str:
    """What a tool call was about, in one short line: its command, path or pattern."""
    if not isinstance(arguments, dict):
        return ""
    for key in _HINT_KEYS:
        value = arguments.get(key)
        if key == "command" and isinstance(value, list):
            value = _argv(value)
        if isinstance(value, str) and value.strip():
            line = value.strip().splitlines()[0]
            return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return ""


# --- parts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a tool result's card says of the call it answers: the tool, its key argument and
    when it was called (for the duration)."""

    name: str
    hint: str = ""
    at: str | None = None


Calls = dict[str, ToolCall]


def part_html(
    part: JSON, tools: Calls | None = None, cut: int | None = None, when: str | None = None
) -> str:
    """One part of a message as safe HTML. `tools` maps tool call ids to the calls, so a
    result can say which tool and command it came from; `cut` shortens long parts (on a page);
    `when` is the message's time (a result's duration is measured from its call's)."""
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
        return _tool_result(part, tools or {}, cut, when)
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
    """A tool call as the agents show it: its name and key argument on the card, a command
    ready to copy, an edit as a diff, a written file as highlighted code, a patch as a diff;
    other arguments as JSON."""
    name = str(part.get("name", "tool"))
    arguments = part.get("input")
    hint = _call_hint(name, arguments)
    body = _tool_body(name, arguments, cut)
    if body is not None and _kind_of(name) == "shell":  # the command is the body: say what for
        described = arguments.get("description") if isinstance(arguments, dict) else None
        hint = described.strip() if isinstance(described, str) else ""
    head = _tool_head(name, hint)
    if body is None and isinstance(arguments, dict) and len(arguments) == 1 and hint:
        body = ""  # the key argument was all there was: the head says it
    if body is None:
        text = _json_text(arguments if arguments is not None else {})
        body = code_html(text, "json", cut)
        return _details(head, body, open_=not _is_long(text), kind="tool-call")
    return f'<div class="tool-call tool-{_kind_of(name)}"><div class="tool-head">{head}</div>{body}</div>'


def _tool_head(name: str, hint: str, extra: str = "") -> str:
    out = f'<span class="tool-name">{html.escape(name)}</span>'
    if hint:
        out += f'<code class="hint">{html.escape(hint)}</code>'
    return out + extra


_SHELL = {"bash", "shell", "run_command", "exec_command", "local_shell", "execute_command", "run"}
_EDIT = {"edit", "edit_file", "str_replace", "str_replace_editor", "replace", "multiedit"}
_WRITE = {"write", "write_file", "create_file", "write_to_file", "create"}
_PATCH = {"apply_patch", "patch", "apply_diff"}


def _kind_of(name: str) -> str:
    key = name.lower()
    if key in _SHELL:
        return "shell"
    if key in _EDIT:
        return "edit"
    if key in _WRITE:
        return "write"
    if key in _PATCH:
        return "patch"
    return "other"


def _first_str(arguments: JSON, *keys: str) -> str | None:
    for key in keys:
        value = arguments.get(key)
        if isinstance(value, str):
            return value
    return None


def _tool_body(name: str, arguments: Any, cut: int | None) -> str | None:
    """The body of a tool call the agents' UIs show specially, or None (shown as JSON)."""
    kind = _kind_of(name)
    if kind == "patch" and isinstance(arguments, str):
        return diff_html(arguments, cut)
    if not isinstance(arguments, dict):
        return None
    path = _first_str(arguments, "path", "file_path", "filePath", "file") or ""
    if kind == "shell":
        command = _first_str(arguments, "command", "cmd") or _argv(arguments.get("command"))
        if command is None:
            return None
        return f'<pre class="code command"><code>{html.escape(_cut(command, cut))}</code></pre>'
    if kind == "edit":
        edits = arguments.get("edits")  # several at once (Claude Code's MultiEdit)
        pairs = (
            [e for e in edits if isinstance(e, dict)] if isinstance(edits, list) else [arguments]
        )
        diffs = []
        for edit in pairs:
            old = _first_str(edit, "old_text", "old_string", "oldString", "old_str")
            new = _first_str(edit, "new_text", "new_string", "newString", "new_str")
            if old is None or new is None:
                return None
            diffs.append(_unified(path, old, new))
        return diff_html("\n".join(diffs), cut) if diffs else None
    if kind == "write":
        content = _first_str(arguments, "content", "file_text", "text", "contents")
        if content is None:
            return None
        return code_html(content, _language(path), cut)
    if kind == "patch":
        patch = _first_str(arguments, "patch", "input", "diff")
        return diff_html(patch, cut) if patch is not None else None
    return None


def _argv(value: Any) -> str | None:
    """A command given as a list ("bash", "-lc", "pytest -q"): the script, or the words."""
    if not isinstance(value, list) or not value:
        return None
    words = [str(v) for v in value]
    if len(words) == 3 and words[1] in ("-c", "-lc") and words[0].endswith(("sh", "bash", "zsh")):
        return words[2]
    return " ".join(words)


def _unified(path: str, old: str, new: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"a/{path}", f"b/{path}", lineterm="", n=3
    )
    return "\n".join(lines)


def _language(path: str) -> str:
    """A Pygments lexer name for a file's name ("" when none fits)."""
    if not path:
        return ""
    try:
        return str(get_lexer_for_filename(path.rsplit("/", 1)[-1]).aliases[0])
    except (ClassNotFound, IndexError):
        return ""


def diff_html(text: str, cut: int | None = None) -> str:
    """A unified diff (or an apply_patch envelope) with each line coloured by its kind."""
    text = _cut(text, cut)
    rows = []
    for line in text.splitlines():
        if line.startswith(("+++", "---", "*** ")):
            kind = "meta"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        rows.append(f'<span class="d-{kind}">{html.escape(line) or " "}</span>')
    return f'<pre class="code diff"><code>{"".join(rows)}</code></pre>'


def _looks_like_diff(text: str) -> bool:
    head = text.lstrip()[:400]
    return head.startswith(("diff --git", "--- ", "*** Begin Patch")) or (
        "\n@@ " in head and "\n+++ " in head
    )


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


_EXIT = re.compile(r"\[exit code (-?\d+)[\]:]")


def _exit_code(part: JSON, output: str) -> int | None:
    code = part.get("exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    meta = part.get("metadata")
    if isinstance(meta, dict):
        code = meta.get("exit_code", meta.get("exit"))
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    found = _EXIT.findall(output[-300:])
    return int(found[-1]) if found else None


def _output_html(text: str, lang: str, cut: int | None) -> str:
    """A tool's output: in full when short; else its first PREVIEW_LINES lines, and the rest
    behind "Show all N lines"."""
    if not _is_long(text):
        return code_html(text, lang, cut)
    preview = "\n".join(text.splitlines()[:PREVIEW_LINES])
    return (
        f'<div class="preview">{code_html(preview, lang)}</div>'
        f'<details class="more"><summary>Show all {_lines(text)}</summary>'
        f"{code_html(text, lang, cut)}</details>"
    )


def _tool_result(part: JSON, tools: Calls, cut: int | None, when: str | None = None) -> str:
    output = part.get("output")
    lang = ""
    if isinstance(output, str):
        text = output
    else:
        text = _json_text(output)
        lang = "json"
    error = bool(part.get("is_error"))
    call = tools.get(str(part.get("tool_call_id")))
    name = call.name if call else str(part.get("name") or "tool")
    facts = [_lines(text)]
    exit_code = _exit_code(part, text)
    if exit_code is not None:
        facts.append(f"exit {exit_code}")
    if call is not None and call.at and when:
        try:
            seconds = (parse_time(when) - parse_time(call.at)).total_seconds()
        except ValueError:
            seconds = -1
        if seconds >= 0:
            facts.append(_duration(seconds))
    if error and exit_code is None:
        facts.insert(0, "error")
    extra = f'<span class="facts">{html.escape(" · ".join(facts))}</span>'
    head = _tool_head(name, call.hint if call else "", extra)
    meta = part.get("metadata")
    diff = meta.get("diff") if isinstance(meta, dict) else None
    if isinstance(diff, str) and diff.strip():
        body = diff_html(diff, cut) + _output_html(text, lang, cut)
    elif lang == "" and _looks_like_diff(text):
        body = diff_html(text, cut)
    else:
        body = _output_html(text, lang, cut)
    kind = "tool-result error" if error else "tool-result"
    return f'<div class="{kind}"><div class="tool-head">{head}</div>{body}</div>'


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


def _blob(part: JSON, tools: Calls) -> str:
    """A payload too big to keep inline (a page reads messages as stored; the export has
    them hydrated): its size, and the preview stored with it, folded."""
    size = part.get("size")
    sha = str(part.get("sha256", ""))
    label = f"blob <code>{html.escape(sha[:12])}</code>"
    if isinstance(size, int):
        label += f" ({size:,} bytes)"
    if part.get("of") == "tool_result":
        call = tools.get(str(part.get("tool_call_id")))
        origin = f'<code class="tool-name">{html.escape(call.name)}</code>' if call else "tool"
        label = f"Output of {origin}, stored as {label}"
    else:
        label = f"Stored {label}"
    preview = part.get("preview")
    if isinstance(preview, str) and preview:
        return _details(label, code_html(preview), open_=False, kind="blob")
    return f'<p class="blob">{label}</p>'


# --- the page ---------------------------------------------------------------------------------


def time_html(value: str | None) -> str:
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
        _row("Created", time_html(session.created_at)),
        _row("Updated", time_html(session.updated_at)),
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
    rows += [_row("Session", _code(session.id)), _row("Exported", time_html(exported_at))]
    return '<dl class="meta">' + "".join(rows) + "</dl>"


def tool_names(messages: Iterable[Message], into: Calls | None = None) -> Calls:
    """Each tool call in `messages` (its name, key argument and time), by call id (added to
    `into` if given)."""
    names = {} if into is None else into
    for message in messages:
        for part in message.parts:
            if part.get("type") == "tool_call":
                name = str(part.get("name", "tool"))
                names[str(part.get("id"))] = ToolCall(
                    name, _call_hint(name, part.get("input")), message.created_at
                )
    return names


def message_html(
    message: Message,
    position: int,
    tools: Calls,
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
        tools.get(str(p.get("tool_call_id"))) or ToolCall("")
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
_rendered: dict[tuple[str, int, tuple[ToolCall, ...], int | None, int | None, str], str] = {}


def _message(
    message: Message,
    position: int,
    tools: Calls,
    cut: int | None,
    first: int | None,
    note: str,
) -> str:
    role = message.role if message.role in ROLE_LABELS else "other"
    label = ROLE_LABELS.get(message.role, message.role.capitalize())
    head = [f'<span class="role">{html.escape(label)}</span>']
    if message.model:
        head.append(f'<span class="model">{html.escape(message.model)}</span>')
    head.append(f'<span class="when">{time_html(message.created_at)}</span>')
    usage = _usage(message.usage)
    if usage:
        head.append(f'<span class="usage">{usage}</span>')
    if note:
        head.append(f'<span class="note">{html.escape(note)}</span>')
    number = f"#{first}–#{position}" if first is not None and first < position else f"#{position}"
    mid = html.escape(message.id)
    # on a page (cut is set) a permalink names the message for the server too, which opens
    # the page it is on; in the export every message is in the file
    href = f"?at={mid}#{mid}" if cut is not None else f"#{mid}"
    head.append(f'<a class="anchor" href="{href}" title="Link to this message">{number}</a>')
    body = "".join(part_html(p, tools, cut, message.created_at) for p in message.parts)
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
        f'<header><div class="export-top"><p class="brand">baton session</p>{THEME_SWITCH}</div>'
        f'<h1 id="title">{html.escape(title)}</h1>'
        f"{task}{_summary(session, messages, exported_at)}</header>\n"
        f"{conversation}\n"
        f"<footer>Exported by baton {time_html(exported_at)} · session <code>"
        f"{html.escape(session.id)}</code></footer>\n"
        "</main>\n</body>\n</html>\n"
    )


# --- style ------------------------------------------------------------------------------------


_DARK = ":root[data-theme=dark]"
# The export's switch (a checkbox, no script) flips the system's theme while it is checked.
_FLIPPED = ":root:has(#theme-toggle:checked)"


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The one stylesheet of the pages and the export: style.css, its dark theme again for
    `prefers-color-scheme: dark` (unless a page's toggle chose light), the flip of the export's
    theme switch (dark on a light system, light on a dark one), and Pygments' colours for
    both themes (scoped to a message's body). The flip is rules of its own: a browser without
    `:has()` drops them and keeps the rest (and hides the switch)."""
    css = STYLESHEET.read_text("utf-8")
    light_block = _block(css, ":root")
    dark_block = _block(css, _DARK)
    system = ":root:not([data-theme=light])"
    light = _pygments("default", ".body")
    dark = _pygments("github-dark", f"{_DARK} .body")
    dark_system = _pygments("github-dark", f"{system} .body")
    dark_flipped = _pygments("github-dark", f"{_FLIPPED} .body")
    light_flipped = _pygments("default", f"{_FLIPPED} .body")
    return (
        f"{css}@media (prefers-color-scheme: dark) {{\n{system} {dark_block}\n"
        f"{_FLIPPED} {light_block}\n}}\n"
        f"@media (prefers-color-scheme: light) {{\n{_FLIPPED} {dark_block}\n}}\n"
        f"{light}\n{dark}\n@media (prefers-color-scheme: dark) {{\n{dark_system}\n"
        f"{light_flipped}\n}}\n@media (prefers-color-scheme: light) {{\n{dark_flipped}\n}}\n"
    )


def _block(css: str, selector: str) -> str:
    """The declarations `{...}` of the rule that starts with `selector {` in style.css."""
    begin = css.index(selector + " {")
    return css[begin + len(selector) + 1 : css.index("}", begin) + 1]


def _pygments(style: str, scope: str) -> str:
    formatter = HtmlFormatter(style=style, nobackground=True)
    return str(formatter.get_style_defs(scope))  # type: ignore[no-untyped-call]
