"""A baton session as a Claude Code transcript, for `baton handoff ID --to claude`: the JSON
lines Claude Code keeps in `~/.claude/projects/<cwd slug>/<session uuid>.jsonl`, which
`claude --resume UUID` continues.

One line per message, chained by `uuid` / `parentUuid` as Claude Code chains them: a prompt
is a `user` line, a reply an `assistant` line (its text and `tool_use` blocks, the model and
usage), and the results of a reply's tool calls a `user` line of `tool_result` blocks. The
conversation first goes through `baton.render.resume.turns` (reasoning left out, every call
answered). A `custom-title` line carries the title, as `/rename` writes it. Ids are derived
from the baton session and its head, so handing off the same head twice writes the same
file. docs/handoff.md has the whole mapping.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from baton.core.models import JSON, Message, Session
from baton.render.resume import Turn, describe, text_of, turns

SLUG_MAX = 200  # Claude Code cuts a project folder's name here and adds a hash
_NOT_ID = re.compile(r"[^a-zA-Z0-9_-]")
_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_input_tokens",
    "cache_write_tokens": "cache_creation_input_tokens",
}


def _uuid(seed: str) -> str:
    """A version-4-shaped UUID from a hash of `seed`."""
    digest = bytearray(hashlib.blake2b(seed.encode(), digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def session_uuid(session: Session) -> str:
    """The Claude Code session id of a baton session at its current head."""
    return _uuid(f"baton-handoff:claude:{session.id}:{session.head}")


def _java_hash(text: str) -> int:
    """JavaScript's `(h << 5) - h + charCode | 0` over UTF-16 code units, as Claude Code
    hashes a long folder name."""
    h = 0
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = (h * 31 + int.from_bytes(data[i : i + 2], "little")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def project_folder(cwd: str) -> str:
    """The folder name Claude Code keeps a directory's sessions under: every character but
    ASCII letters and digits becomes `-` (two for a character beyond 16 bits, as JavaScript
    counts); a name over 200 characters is cut there and gets
    `-` and a hash of the directory."""
    slug = "".join(
        c if c.isascii() and c.isalnum() else "-" * (2 if ord(c) > 0xFFFF else 1) for c in cwd
    )
    if len(slug) <= SLUG_MAX:
        return slug
    return f"{slug[:SLUG_MAX]}-{_base36(abs(_java_hash(cwd)))}"


def _id(value: str) -> str:
    """Claude's tool ids and names allow letters, digits, `_` and `-`."""
    return _NOT_ID.sub("_", value) or "_"


def _usage(usage: JSON | None) -> JSON | None:
    if not usage:
        return None
    out = {target: usage[source] for source, target in _USAGE.items() if source in usage}
    return out or None


def _user_block(part: JSON) -> JSON:
    if part.get("type") == "text":
        return {"type": "text", "text": str(part.get("text", ""))}
    mime = part.get("mime")
    data = part.get("data")
    if (
        part.get("type") == "file"
        and isinstance(mime, str)
        and mime.startswith("image/")
        and isinstance(data, str)
        and part.get("encoding") == "base64"
    ):
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    text = describe(part)
    if part.get("type") == "file" and isinstance(data, str) and part.get("encoding") != "base64":
        text += "\n" + data
    return {"type": "text", "text": text}


def _result_content(output: Any) -> Any:
    """What the model was shown: text, or Claude's own content blocks (images) as they are."""
    if (
        isinstance(output, list)
        and output
        and all(isinstance(b, dict) and b.get("type") in ("text", "image") for b in output)
    ):
        return output
    return text_of(output)


def export_claude_code(
    session: Session,
    messages: list[Message],
    *,
    cwd: str,
    sid: str | None = None,
    branch: str | None = None,
) -> list[JSON]:
    """The session (hydrated messages) as the lines of a Claude Code transcript resumed in
    `cwd`, under the session id `sid` (default: `session_uuid(session)`)."""
    sid = sid or session_uuid(session)
    lines: list[JSON] = []
    if session.title:
        lines.append({"type": "custom-title", "customTitle": session.title, "sessionId": sid})
    parent: str | None = None
    for n, turn in enumerate(turns(messages)):
        line_id = _uuid(f"{sid}/{n}")
        line: JSON = {
            "parentUuid": parent,
            "isSidechain": False,
            "type": "assistant" if turn.role == "assistant" else "user",
            "message": _message(turn, f"{sid}/{n}"),
            "uuid": line_id,
            "timestamp": turn.created_at,
            "userType": "external",
            "cwd": cwd,
            "sessionId": sid,
        }
        if branch:
            line["gitBranch"] = branch
        if turn.role == "assistant" and turn.usage and "cost_usd" in turn.usage:
            line["costUSD"] = turn.usage["cost_usd"]
        lines.append(line)
        parent = line_id
    return lines


def _message(turn: Turn, seed: str) -> JSON:
    if turn.role == "user":
        blocks = [_user_block(p) for p in turn.parts]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            return {"role": "user", "content": blocks[0]["text"]}
        return {"role": "user", "content": blocks}
    if turn.role == "tool":
        results: list[JSON] = []
        for part in turn.parts:
            block: JSON = {
                "type": "tool_result",
                "tool_use_id": _id(str(part.get("tool_call_id"))),
                "content": _result_content(part.get("output")),
            }
            if part.get("is_error") is True:
                block["is_error"] = True
            results.append(block)
        return {"role": "user", "content": results}
    content: list[JSON] = []
    for part in turn.parts:
        if part.get("type") == "tool_call":
            given = part.get("input")
            content.append(
                {
                    "type": "tool_use",
                    "id": _id(str(part["id"])),
                    "name": _id(str(part.get("name") or "unknown")),
                    "input": given if isinstance(given, dict) else {"input": given},
                }
            )
        else:
            content.append({"type": "text", "text": str(part.get("text", ""))})
    message: JSON = {
        "id": "msg_baton" + hashlib.blake2b(seed.encode(), digest_size=12).hexdigest(),
        "type": "message",
        "role": "assistant",
        "model": turn.model or "unknown",
        "content": content,
        "stop_reason": "tool_use" if turn.calls else "end_turn",
        "stop_sequence": None,
    }
    usage = _usage(turn.usage)
    if usage is not None:
        message["usage"] = usage
    return message
