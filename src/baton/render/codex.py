"""A baton session as a Codex rollout, for `baton handoff ID --to codex`: the JSON lines
Codex keeps in `~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl`, which
`codex resume UUID` (and `codex exec resume UUID "…"`) continues.

Lines are `{timestamp, type, payload}`. A `session_meta` line names the session; the
conversation is `response_item` lines in the Responses API's own shape (`message` with
`input_text` / `output_text`, `function_call` with its arguments as a JSON string, or
`custom_tool_call` when the input was text, as Codex's `apply_patch` is, and their
`…_output`), which Codex sends back as they are. `event_msg` lines show the conversation in
Codex's terminal view (`user_message`, `agent_message`) and carry each reply's usage
(`token_count`); a `turn_context` line names the model of the replies after it. The
conversation first goes through `baton.render.resume.turns`. docs/handoff.md has the whole
mapping.
"""

from __future__ import annotations

import hashlib
import json
import uuid

from baton.core.models import JSON, Message, Session, parse_time
from baton.render.resume import Turn, describe, text_of, turns

ORIGINATOR = "baton"


def session_uuid(session: Session) -> str:
    """The Codex session id of a baton session at its current head: a version-7 UUID (as
    Codex makes them) whose time is the session's last change, the rest from a hash."""
    ms = int(parse_time(session.updated_at).timestamp() * 1000)
    seed = f"baton-handoff:codex:{session.id}:{session.head}".encode()
    rest = bytearray(hashlib.blake2b(seed, digest_size=10).digest())
    raw = bytearray(ms.to_bytes(6, "big")) + rest
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def _line(when: str, kind: str, payload: JSON) -> JSON:
    return {"timestamp": when, "type": kind, "payload": payload}


def _input(part: JSON) -> JSON:
    mime, data = part.get("mime"), part.get("data")
    if part.get("type") == "file" and isinstance(mime, str) and mime.startswith("image/"):
        if isinstance(data, str) and part.get("encoding") == "base64":
            return {"type": "input_image", "image_url": f"data:{mime};base64,{data}"}
    if part.get("type") == "text":
        return {"type": "input_text", "text": str(part.get("text", ""))}
    text = describe(part)
    if part.get("type") == "file" and isinstance(data, str) and part.get("encoding") != "base64":
        text += "\n" + data
    return {"type": "input_text", "text": text}


def export_codex(
    session: Session,
    messages: list[Message],
    *,
    cwd: str,
    sid: str | None = None,
    version: str = "",
) -> list[JSON]:
    """The session (hydrated messages) as the lines of a Codex rollout resumed in `cwd`,
    under the session id `sid` (default: `session_uuid(session)`). `version` is written as
    the version of what wrote it."""
    sid = sid or session_uuid(session)
    meta: JSON = {
        "id": sid,
        "timestamp": session.created_at,
        "cwd": cwd,
        "originator": ORIGINATOR,
        "cli_version": version,
        "source": "cli",
    }
    git = session.git or {}
    found = {
        "commit_hash": git.get("head"),
        "branch": git.get("branch"),
        "repository_url": git.get("remote"),
    }
    if any(isinstance(v, str) and v for v in found.values()):
        meta["git"] = {k: v for k, v in found.items() if isinstance(v, str) and v}
    lines = [_line(session.created_at, "session_meta", meta)]
    custom: set[str] = set()  # calls whose input was text: custom_tool_call
    model: str | None = None
    total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0}
    for turn in turns(messages):
        when = turn.created_at
        if turn.role == "user":
            content = [_input(p) for p in turn.parts]
            lines.append(_line(when, "response_item", _message("user", content)))
            texts = [c["text"] for c in content if c["type"] == "input_text"]
            images = [c["image_url"] for c in content if c["type"] == "input_image"]
            event: JSON = {"type": "user_message", "message": "\n".join(texts), "images": images}
            lines.append(_line(when, "event_msg", event))
        elif turn.role == "tool":
            for part in turn.parts:
                call = str(part.get("tool_call_id"))
                kind = "custom_tool_call_output" if call in custom else "function_call_output"
                output = text_of(part.get("output"))
                item: JSON = {"type": kind, "call_id": call, "output": output}
                lines.append(_line(when, "response_item", item))
        else:
            if turn.model and turn.model != model:
                model = turn.model
                context = {
                    "cwd": cwd,
                    "approval_policy": "on-request",
                    "sandbox_policy": {"type": "read-only"},
                    "model": model,
                    "summary": "auto",
                }
                lines.append(_line(when, "turn_context", context))
            lines.extend(_reply(turn, custom))
            lines.append(_line(when, "event_msg", _token_count(turn, total)))
    return lines


def _message(role: str, content: list[JSON]) -> JSON:
    return {"type": "message", "role": role, "content": content}


def _reply(turn: Turn, custom: set[str]) -> list[JSON]:
    out: list[JSON] = []
    when = turn.created_at
    for part in turn.parts:
        if part.get("type") == "tool_call":
            call, name, given = (
                str(part["id"]),
                str(part.get("name") or "unknown"),
                part.get("input"),
            )
            item: JSON
            if isinstance(given, str):
                custom.add(call)
                item = {"type": "custom_tool_call", "call_id": call, "name": name, "input": given}
            else:
                arguments = json.dumps({} if given is None else given, ensure_ascii=False)
                item = {
                    "type": "function_call",
                    "name": name,
                    "arguments": arguments,
                    "call_id": call,
                }
            out.append(_line(when, "response_item", item))
        else:
            text = str(part.get("text", ""))
            block = {"type": "output_text", "text": text, "annotations": []}
            out.append(_line(when, "response_item", _message("assistant", [block])))
            out.append(_line(when, "event_msg", {"type": "agent_message", "message": text}))
    return out


def _token_count(turn: Turn, total: dict[str, int]) -> JSON:
    """The reply's usage as Codex counts it (cached tokens inside input_tokens); without
    usage, a count with no info, which still ends the reply."""
    usage = turn.usage or {}
    if not any(k in usage for k in ("input_tokens", "output_tokens", "cache_read_tokens")):
        return {"type": "token_count", "info": None, "rate_limits": None}
    cached = int(usage.get("cache_read_tokens", 0))
    last = {"input_tokens": int(usage.get("input_tokens", 0)) + cached}
    if "cache_read_tokens" in usage:
        last["cached_input_tokens"] = cached
    last["output_tokens"] = int(usage.get("output_tokens", 0))
    if "cache_write_tokens" in usage:
        last["cache_write_input_tokens"] = int(usage["cache_write_tokens"])
    last["total_tokens"] = last["input_tokens"] + last["output_tokens"]
    for key in total:
        total[key] += last.get(key, 0)
    info = {
        "total_token_usage": {
            **total,
            "total_tokens": total["input_tokens"] + total["output_tokens"],
        },
        "last_token_usage": last,
        "model_context_window": None,
    }
    return {"type": "token_count", "info": info, "rate_limits": None}
