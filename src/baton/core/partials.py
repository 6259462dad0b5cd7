"""Streamed answers stored in pieces: the agent appends the text shown so far as assistant
messages whose text part is marked `"partial": true` (the answer continues in the next
message), and the answer's last message holds the rest of the text, the reasoning, the tool
calls and the usage. Stored messages never change, so readers join each run here: the model's
context, the chat's resume view and every human view (CLI, web pages, HTML and Markdown
exports, the opencode export). The JSON export, the API and `--json` keep the stored chunks."""

from __future__ import annotations

from dataclasses import replace

from baton.core.models import JSON, Message


def is_partial(message: Message) -> bool:
    """Whether `message` is a stored chunk of an answer that continues in the next message."""
    return message.role == "assistant" and any(p.get("partial") for p in message.parts)


def _text(text: str) -> JSON:
    return {"type": "text", "text": text}


def _carried(messages: list[Message]) -> str:
    return "".join(str(p.get("text", "")) for m in messages for p in m.parts if p.get("partial"))


def join_runs(chain: list[Message]) -> list[tuple[Message, int]]:
    """`chain` with each run of partial chunks joined into the message that follows it (when
    that is the answer's assistant message) or into one assistant message of its own (when
    the answer was cut short), each with how many stored messages it stands for. The joined
    message keeps the id (and so the link and position) of its last stored message."""
    out: list[tuple[Message, int]] = []
    carry: list[Message] = []
    for message in chain:
        if is_partial(message):
            carry.append(message)
            continue
        if carry and message.role == "assistant":
            parts = [dict(p) for p in message.parts]
            first = next((p for p in parts if p.get("type") == "text"), None)
            if first is None:
                before = [i for i, p in enumerate(parts) if p.get("type") == "reasoning"]
                parts.insert(before[-1] + 1 if before else 0, _text(_carried(carry)))
            else:
                first["text"] = _carried(carry) + str(first.get("text", ""))
            out.append((replace(message, parts=parts), len(carry) + 1))
            carry = []
            continue
        if carry:
            out.append((replace(carry[-1], parts=[_text(_carried(carry))]), len(carry)))
            carry = []
        out.append((message, 1))
    if carry:
        out.append((replace(carry[-1], parts=[_text(_carried(carry))]), len(carry)))
    return out


def join_partials(chain: list[Message]) -> list[Message]:
    """`chain` with each run of partial chunks joined (see `join_runs`)."""
    return [message for message, _ in join_runs(chain)]
