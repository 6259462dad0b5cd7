"""A baton conversation as another agent resumes it (`baton handoff`): the shared first step
of the Claude Code and Codex writers.

What the next model is sent must be a conversation its provider accepts, so:
- a streamed answer stored in chunks is one reply (`join_partials`);
- reasoning stays in baton: the providers refuse reasoning they did not sign themselves;
- files kept for /undo (`kept_before`) are not conversation;
- a system note becomes a user message (neither tool lets a session carry system text);
- every tool result follows the reply that made its call: a call that never got a result
  is answered with NO_RESULT before the conversation goes on, and a result whose call is
  unknown (or answered already) becomes text that says what it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from baton.core.models import JSON, Message, kept_before
from baton.core.partials import join_partials

NO_RESULT = "No result was recorded for this tool call."


@dataclass
class Turn:
    """One message of the resumed conversation: `role` is user, assistant or tool (results,
    each answering a call of the assistant turn before)."""

    role: str
    parts: list[JSON]
    created_at: str
    model: str | None = None
    usage: JSON | None = None
    synthetic: bool = False  # results baton made up for calls that never got one
    calls: list[str] = field(default_factory=list)  # tool_call ids (assistant)


def text_of(value: Any) -> str:
    """A tool's output or a part as text the next model reads."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def describe(part: JSON) -> str:
    kind = part.get("type")
    if kind == "tool_result":
        return f"[tool result {part.get('tool_call_id')}] {text_of(part.get('output'))}"
    if kind == "tool_call":
        return f"[tool call {part.get('name')}] {text_of(part.get('input'))}"
    if kind == "blob_ref":
        return f"[stored blob {part.get('sha256')} ({part.get('size')} bytes)]"
    if kind == "file":
        return f"[file {part.get('path') or part.get('name') or ''}]"
    return str(part.get("text") or f"[{kind} part]")


def turns(messages: list[Message]) -> list[Turn]:
    """The hydrated messages of a session as the turns another agent resumes (see above)."""
    out: list[Turn] = []
    pending: dict[str, Turn] = {}  # call id -> the assistant turn that made it
    answered: set[str] = set()

    def settle() -> None:
        """Answer the calls still waiting, right after (and at the time of) the turn that
        made them."""
        if not pending:
            return
        at = list(pending.values())[-1].created_at
        results = [
            {"type": "tool_result", "tool_call_id": call, "output": NO_RESULT, "is_error": True}
            for call in pending
        ]
        answered.update(pending)
        pending.clear()
        out.append(Turn("tool", results, at, synthetic=True))

    for message in join_partials(messages):
        parts = [p for p in message.parts if kept_before(p) is None]
        if message.role == "tool":
            results: list[JSON] = []
            loose: list[JSON] = []
            for part in parts:
                call = part.get("tool_call_id")
                if part.get("type") == "tool_result" and call in pending:
                    pending.pop(str(call))
                    answered.add(str(call))
                    results.append(part)
                else:
                    loose.append({"type": "text", "text": describe(part)})
            if results:
                out.append(Turn("tool", results, message.created_at))
            if loose:
                settle()
                out.append(Turn("user", loose, message.created_at))
            continue
        settle()
        if message.role == "assistant":
            kept: list[JSON] = []
            calls: list[str] = []
            after: list[JSON] = []  # results stored inside the reply, answered after it
            for part in parts:
                kind = part.get("type")
                if kind == "reasoning":
                    continue
                if kind == "tool_call":
                    call = str(part.get("id") or f"call_{len(out)}_{len(calls)}")
                    if call in answered or call in calls:
                        kept.append({"type": "text", "text": describe(part)})
                        continue
                    calls.append(call)
                    kept.append({**part, "id": call})
                elif kind == "tool_result":
                    after.append(part)
                elif kind == "text":
                    kept.append(part)
                else:
                    kept.append({"type": "text", "text": describe(part)})
            if not kept:
                continue
            turn = Turn(
                "assistant", kept, message.created_at, message.model, message.usage, calls=calls
            )
            out.append(turn)
            pending.update(dict.fromkeys(calls, turn))
            mine = [p for p in after if p.get("tool_call_id") in pending]
            for part in mine:
                pending.pop(str(part["tool_call_id"]))
                answered.add(str(part["tool_call_id"]))
            if mine:
                out.append(Turn("tool", mine, message.created_at))
            rest = [p for p in after if p not in mine]
            if rest:
                settle()
                out.append(
                    Turn(
                        "user",
                        [{"type": "text", "text": describe(p)} for p in rest],
                        message.created_at,
                    )
                )
            continue
        # user and system: what was typed (or noted), files as they are
        kept = []
        for part in parts:
            kind = part.get("type")
            if kind == "text" or kind == "reasoning":
                if str(part.get("text", "")).strip():
                    kept.append({"type": "text", "text": str(part.get("text", ""))})
            elif kind == "file":
                kept.append(part)
            else:
                kept.append({"type": "text", "text": describe(part)})
        if kept:
            out.append(Turn("user", kept, message.created_at))
    if pending and out:
        settle()
    return out
