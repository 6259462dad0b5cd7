"""Slash commands of the chat: `/session list|show|resume|share|unshare|fork|rename|delete|
export`, `/new`, `/model`, `/cost`, `/compact`, `/undo`, `/help`, `/exit`. They go through the service interface, so
they work the same on the local store and, after `baton login`, on a server."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton.agent.loop import INTERRUPTED_TURN
from baton.core.errors import BatonError, InvalidInput, SecretsFound
from baton.core.models import Message, kept_before
from baton.core.partials import join_partials

if TYPE_CHECKING:
    from baton.contract import Baton

SESSION_COMMANDS = {
    "list": "[-q TEXT]  recent sessions",
    "show": "[ID]  the session's header and conversation",
    "resume": "ID  continue another session",
    "share": "[--expires 7d] [--redact|--allow-secrets]  publish a read-only link",
    "unshare": "SHARE_ID  revoke a link",
    "fork": "[SHARE_ID|SESSION_ID]  fork (default: this session) and continue in the fork",
    "rename": "TITLE  rename this session",
    "delete": "[--revoke-shares]  delete this session",
    "export": "[FILE]  write this session as Markdown (or JSON for a .json FILE)",
}
COMMANDS = {
    "/session": "list|show|resume|share|unshare|fork|rename|delete|export …",
    "/new": "start a new session",
    "/model": "[NAME]  show or change the model",
    "/mode": "[ask|auto-edit|plan|yolo]  show or change what is asked before acting",
    "/cost": "tokens and cost of this session",
    "/compact": "summarise the conversation so far now (the history stays in the session)",
    "/undo": "restore the files the last turn wrote, as they were before it",
    "/help": "this list",
    "/exit": "leave (also Ctrl-D)",
}
SHOWN_TURNS = 3  # user turns shown on resume


@dataclass
class ChatState:
    """What the chat and its slash commands share."""

    service: Baton
    owner: str
    console: Any  # rich Console
    session_id: str | None = None
    model: str | None = None
    ask: Callable[[str], bool] = field(default=lambda question: False)
    mode: str = "ask"  # approvals: ask, auto-edit, plan, yolo
    notes: list[str] = field(default_factory=list)
    compact: Callable[[], None] | None = None  # the chat's /compact and /undo
    undo: Callable[[], None] | None = None
    resumed: Callable[[str], None] | None = None  # on /session resume: a new git snapshot

    def need_session(self) -> str:
        if self.session_id is None:
            raise InvalidInput("no session yet: send a prompt first (or /session resume ID)")
        return self.session_id


def completions(text: str) -> list[str]:
    """What the typed line can become: command names after `/`, then `/session` verbs."""
    if not text.startswith("/"):
        return []
    if " " not in text:
        names = [*COMMANDS, "/quit"]
        return [name for name in names if name.startswith(text.lower())]
    head, _, rest = text.partition(" ")
    if head.lower() == "/mode" and " " not in rest:
        from baton.agent.approvals import MODES

        return [f"/mode {mode}" for mode in MODES if mode.startswith(rest.lower())]
    if head.lower() != "/session" or " " in rest:
        return []
    return [f"/session {verb}" for verb in SESSION_COMMANDS if verb.startswith(rest.lower())]


def handle(line: str, state: ChatState) -> bool:
    """Run one slash command; False means leave the chat. Errors are one line."""
    try:
        words = shlex.split(line.strip())
    except ValueError as exc:
        state.console.print(f"[red]error:[/red] {exc}", highlight=False)
        return True
    if not words:
        return True
    name, args = words[0].lower(), words[1:]
    try:
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            _help(state)
        elif name == "/session":
            _session(state, args)
        elif name == "/new":
            state.session_id = None
            state.console.print("the next prompt starts a new session")
        elif name == "/model":
            if args:
                state.model = args[0]
                state.console.print(f"model: {state.model}", highlight=False)
            else:
                state.console.print(f"model: {state.model or '(none configured)'}", highlight=False)
        elif name == "/mode":
            _mode(state, args)
        elif name == "/cost":
            _cost(state)
        elif name in ("/compact", "/undo"):
            action = state.compact if name == "/compact" else state.undo
            if action is None:
                raise InvalidInput(f"{name} is not available here")
            state.need_session()
            action()
        else:
            raise InvalidInput(f"unknown command {name}; /help lists them")
    except BatonError as exc:
        if isinstance(exc, SecretsFound):
            for f in exc.findings:
                state.console.print(
                    f"  {f.get('where')}: {f.get('kind')} {f.get('excerpt')}",
                    markup=False,
                    highlight=False,
                )
        state.console.print(f"[red]error:[/red] {_escape(exc.message)}", highlight=False)
    return True


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


MODE_HELP = {
    "ask": "writes and commands are asked",
    "auto-edit": "edits without asking, commands are asked",
    "plan": "read-only tools only",
    "yolo": "everything without asking, confined by the sandbox",
}


def _mode(state: ChatState, args: list[str]) -> None:
    from baton.agent.approvals import MODES

    if len(args) > 1 or (args and args[0].lower() not in MODES):
        raise InvalidInput(f"unknown mode {' '.join(args)!r}; use one of {', '.join(MODES)}")
    if args:
        state.mode = args[0].lower()
    state.console.print(f"mode: {state.mode} ({MODE_HELP[state.mode]})", highlight=False)


def _help(state: ChatState) -> None:
    out = state.console
    for name, text in COMMANDS.items():
        out.print(f"  [bold]{name}[/bold] {_escape(text)}", highlight=False)
    for name, text in SESSION_COMMANDS.items():
        out.print(f"    /session [bold]{name}[/bold] {_escape(text)}", highlight=False)
    out.print("  @path attaches a file of the repository to the prompt (Tab completes it).")
    out.print("  Alt-Enter (or Esc, Enter) starts a new line; Enter sends.", highlight=False)
    out.print("  Ctrl-C stops the current turn; Ctrl-D leaves.", highlight=False)


def _cost(state: ChatState) -> None:
    session = state.service.get(state.owner, state.need_session())
    t = session.own  # what this session spent; what a fork inherited is shown apart
    i = session.inherited
    inherited = (
        f" (inherited: {i.input_tokens + i.cache_read_tokens:,} in / {i.output_tokens:,} out, "
        f"${i.cost_usd:.4f})"
        if session.forked_from
        else ""
    )
    state.console.print(
        f"{session.id}: {t.input_tokens:,} input + {t.cache_read_tokens:,} cached input, "
        f"{t.output_tokens:,} output tokens, ${t.cost_usd:.4f}{inherited}",
        highlight=False,
    )


def _session(state: ChatState, args: list[str]) -> None:
    out, service, owner = state.console, state.service, state.owner
    sub = args[0].lower() if args else "show"
    rest = args[1:]
    if sub == "list":
        query = None
        if rest[:1] in (["-q"], ["--query"]):
            query = " ".join(rest[1:]) or None
        elif rest:
            query = " ".join(rest)
        page = service.list(owner, limit=20, query=query)
        if not page.sessions:
            out.print("no sessions", highlight=False)
            return
        out.print(sessions_table(page.sessions, state.session_id))
    elif sub == "show":
        sid = rest[0] if rest else state.need_session()
        show_session(out, service, owner, sid, last=None)
    elif sub == "resume":
        if not rest:
            raise InvalidInput("give the session to resume: /session resume ID")
        session = service.get(owner, rest[0])
        if state.resumed is not None:
            state.resumed(session.id)  # the tree may differ from its last snapshot
        state.session_id = session.id
        title = _escape(session.title or "(untitled)")
        out.print(f"resumed {session.id}: {title}", highlight=False)
        show_history(out, service.messages(owner, session.id), SHOWN_TURNS)
    elif sub == "share":
        sid = state.need_session()
        expires, mode = _share_options(rest)
        share = service.share(owner, sid, expires=expires, mode=mode)
        url = service.share_url(share.id)
        out.print(url, highlight=False, soft_wrap=True)
        out.print(f"  share id {share.id}; fork it with: baton --fork {url}", highlight=False)
        out.print(f"  no baton there? pipx install {service.install_url()}", highlight=False)
        out.print(f"  published: {share.published}", highlight=False, markup=False)
        for note in share.withheld:
            out.print(f"  not published: {note}", highlight=False, markup=False)
        if share.expires_at:
            out.print(f"  expires {share.expires_at}", highlight=False)
        for f in share.redacted:
            out.print(f"  redacted {f['where']}: {f['kind']} {f['excerpt']}", markup=False)
    elif sub == "unshare":
        if not rest:
            raise InvalidInput("give the share to revoke: /session unshare SHARE_ID")
        from baton.core.shares import share_id_from

        revoked = service.revoke(owner, share_id_from(rest[0]))
        out.print(f"revoked {revoked.id}", highlight=False)
    elif sub == "fork":
        source = rest[0] if rest else state.need_session()
        forked = service.fork(owner, source)
        state.session_id = forked.id
        origin = forked.forked_from or {}
        out.print(
            f"forked {origin.get('share') or origin.get('session') or source} into {forked.id} "
            f"({forked.message_count} messages); you are now in the fork",
            highlight=False,
        )
        show_history(out, service.messages(owner, forked.id), SHOWN_TURNS)
    elif sub == "rename":
        if not rest:
            raise InvalidInput("give the new title: /session rename TITLE")
        session = service.rename(owner, state.need_session(), " ".join(rest))
        out.print(f"renamed {session.id}: {_escape(session.title)}", highlight=False)
    elif sub == "delete":
        sid = state.need_session()
        revoke = "--revoke-shares" in rest
        session = service.get(owner, sid)
        if not state.ask(f"Delete {sid} ({session.title or 'untitled'})?"):
            out.print("not deleted", highlight=False)
            return
        gone = service.delete(owner, sid, revoke_shares=revoke)
        state.session_id = None
        suffix = f" and revoked {len(gone)} share(s)" if gone else ""
        out.print(f"deleted {sid}{suffix}; the next prompt starts a new session", highlight=False)
    elif sub == "export":
        sid = state.need_session()
        target = Path(rest[0]) if rest else Path(f"{sid}.md")
        fmt = "json" if target.suffix.lower() == ".json" else "markdown"
        doc = service.export(owner, sid, fmt)
        if fmt == "json":
            import orjson

            target.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            target.write_text(str(doc), "utf-8")
        out.print(f"wrote {target}", highlight=False)
    else:
        raise InvalidInput(
            f"unknown /session command {sub!r}; use one of {', '.join(SESSION_COMMANDS)}"
        )


def _share_options(args: list[str]) -> tuple[str | None, str]:
    expires, mode = None, "block"
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--expires" and i + 1 < len(args):
            expires = args[i + 1]
            i += 1
        elif arg.startswith("--expires="):
            expires = arg.split("=", 1)[1]
        elif arg == "--redact":
            mode = "redact"
        elif arg == "--allow-secrets":
            mode = "allow"
        else:
            raise InvalidInput(f"unknown share option {arg!r}: use --expires 7d, --redact")
        i += 1
    return expires, mode


# ---------------------------------------------------------------------------------------------
# Showing sessions and conversations


def sessions_table(sessions: list[Any], current: str | None) -> Any:
    from rich.table import Table

    table = Table(pad_edge=False)
    table.add_column("ID", no_wrap=True, style="cyan")
    table.add_column("Title")
    table.add_column("Msgs", justify="right")
    table.add_column("Updated", no_wrap=True)
    for s in sessions:
        mark = "* " if s.id == current else ""
        title = " ".join((s.title or "(untitled)").split())
        table.add_row(
            mark + s.id, title[:60], str(s.message_count), s.updated_at[:16].replace("T", " ")
        )
    return table


def show_session(out: Any, service: Baton, owner: str, sid: str, last: int | None) -> None:
    session = service.get(owner, sid)
    t = session.own
    inherited = f" (+${session.inherited.cost_usd:.4f} inherited)" if session.forked_from else ""
    out.print(f"[bold]{_escape(session.title or '(untitled)')}[/bold]  [dim]{session.id}[/dim]")
    out.print(
        f"[dim]{session.message_count} messages · {t.input_tokens + t.cache_read_tokens:,} in / "
        f"{t.output_tokens:,} out tokens · ${t.cost_usd:.4f}{inherited}[/dim]",
        highlight=False,
    )
    show_history(out, service.messages(owner, sid), last)


def show_history(out: Any, messages: list[Message], turns: int | None) -> None:
    """The conversation, or its last `turns` user turns, as the chat shows it (a reply stored
    in partial chunks shown as one)."""
    messages = join_partials(messages)
    start = 0
    if turns is not None:
        users = [
            i
            for i, m in enumerate(messages)
            if m.role == "user" and _plain(m) and _plain(m) != INTERRUPTED_TURN
        ]
        if len(users) > turns:
            start = users[-turns]
    if start:
        out.print(f"[dim]… {start} earlier message(s); /session show for all[/dim]")
    for message in messages[start:]:
        show_message(out, message)


def _plain(message: Message) -> str:
    return "\n".join(str(p.get("text", "")) for p in message.parts if p.get("type") == "text")


def show_message(out: Any, message: Message) -> None:
    from rich.markdown import Markdown

    for part in message.parts:
        kind = part.get("type")
        if isinstance(part.get("setup"), dict):
            from baton.agent.setup import note

            out.print(f"[dim]{_escape(note(part))}[/dim]")
        elif kind == "text" and part.get("compaction"):
            out.print("[dim]… earlier messages compacted into a summary[/dim]")
        elif kind == "text" and message.role == "user":
            out.print(f"[bold cyan]›[/bold cyan] {_escape(str(part.get('text', '')))}")
        elif kind == "text" and message.role == "assistant":
            text = str(part.get("text", ""))
            if text.strip():
                out.print(Markdown(text))
        elif kind == "text":
            out.print(f"[dim]{_escape(str(part.get('text', '')))}[/dim]")
        elif kept_before(part) is not None:  # a file's content before a turn, for /undo
            continue
        elif kind == "file" or (kind == "blob_ref" and part.get("of") == "file"):
            out.print(f"[dim]  @{_escape(str(part.get('path', part.get('name', ''))))}[/dim]")
        elif kind == "tool_call":
            out.print(f"[dim]→ {_escape(call_line(part.get('name'), part.get('input')))}[/dim]")
        elif kind == "tool_result" or (kind == "blob_ref" and part.get("of") == "tool_result"):
            out.print(f"[dim]{_escape(result_line(part))}[/dim]")
            diff = (part.get("metadata") or {}).get("diff")
            if isinstance(diff, str):
                show_diff(out, diff)


DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("+", "green"), ("-", "red"), ("@@", "cyan"))


def show_diff(out: Any, diff: str) -> None:
    """A unified diff an edit made, coloured as `git diff` colours it."""
    from rich.text import Text

    from baton.agent.approvals import DIFF_LINES

    lines = diff.splitlines()
    for line in lines[:DIFF_LINES]:
        style = next((s for prefix, s in DIFF_STYLES if line.startswith(prefix)), "")
        out.print(Text(line, style=style), highlight=False)
    if len(lines) > DIFF_LINES:
        out.print(f"[dim][… {len(lines) - DIFF_LINES} more lines][/dim]")


def call_line(name: Any, args: Any) -> str:
    import json

    shown = json.dumps(args, ensure_ascii=False) if args else ""
    if isinstance(args, dict):
        key = next((k for k in ("command", "path", "pattern") if k in args), None)
        if key is not None:
            shown = str(args[key])
    shown = " ".join(shown.split())
    return f"{name}({shown[:120] + '…' if len(shown) > 120 else shown})"


def result_line(part: dict[str, Any]) -> str:
    output = part.get("output", part.get("preview", ""))
    text = output if isinstance(output, str) else str(output)
    lines = text.strip().splitlines()
    first = lines[0][:120] if lines else ""
    more = f" (+{len(lines) - 1} lines)" if len(lines) > 1 else ""
    mark = "✗" if part.get("is_error") else "←"
    return f"  {mark} {first}{more}"
