"""A session as one Markdown document, for reading and pasting."""

from __future__ import annotations

import json
from typing import Any

from baton.core.models import JSON, Message, Session, kept_before
from baton.core.partials import join_partials


def _fence(text: str, lang: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{lang}\n{text}\n{fence}"


def _part_markdown(part: JSON) -> str:
    kept = kept_before(part)
    if kept is not None:  # a file's content before a turn, for /undo: said, not shown
        return f"*`{part.get('path')}` {kept}*"
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "reasoning":
        return "> *Reasoning:* " + str(part.get("text", "")).replace("\n", "\n> ")
    if kind == "tool_call":
        args = json.dumps(part.get("input", {}), indent=2, ensure_ascii=False)
        return f"**Tool call** `{part.get('name')}` (`{part.get('id')}`)\n\n{_fence(args, 'json')}"
    if kind == "tool_result":
        output: Any = part.get("output", "")
        if not isinstance(output, str):
            output = json.dumps(output, indent=2, ensure_ascii=False)
        label = "Tool error" if part.get("is_error") else "Tool result"
        code = part.get("exit_code")
        exit_note = f", exit {code}" if isinstance(code, int) and not isinstance(code, bool) else ""
        return f"**{label}** (`{part.get('tool_call_id')}`{exit_note})\n\n{_fence(output)}"
    if kind == "file":
        withheld = part.get("withheld")
        note = f" ({withheld})" if isinstance(withheld, str) else ""
        return f"**File** `{part.get('path', part.get('name'))}`{note}"
    if kind == "blob_ref":
        return (
            f"**{part.get('of', 'blob')}** stored as blob `{part.get('sha256')}` "
            f"({part.get('size')} bytes)\n\n{_fence(str(part.get('preview', '')))}"
        )
    return ""


def export_markdown(session: Session, messages: list[Message]) -> str:
    t = session.own
    lines = [
        f"# {session.title or 'Untitled session'}",
        "",
        f"- Session: `{session.id}`",
        f"- Status: {session.status}",
        f"- Created: {session.created_at}",
        f"- Messages: {session.message_count}",
        f"- Tokens: {t.input_tokens} in, {t.output_tokens} out; cost ${t.cost_usd:.4f}",
    ]
    if session.task:
        lines.append(f"- Task: {session.task}")
    if session.forked_from:
        lines.append(f"- Forked from: {json.dumps(session.forked_from)}")
        i = session.inherited
        lines.append(
            f"- Inherited: {i.input_tokens} in, {i.output_tokens} out; cost ${i.cost_usd:.4f}"
        )
    for message in join_partials(messages):  # a streamed answer reads as one message
        heading = message.role.capitalize()
        if message.model:
            heading += f" ({message.model})"
        lines += ["", f"## {heading}", "", f"*{message.created_at}*", ""]
        lines.append("\n\n".join(s for s in (_part_markdown(p) for p in message.parts) if s))
    return "\n".join(lines) + "\n"
