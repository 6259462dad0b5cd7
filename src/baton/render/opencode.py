"""A baton session as an opencode export file, for `opencode import FILE` (and `kilo import`,
Kilo CLI being built on opencode).

The shape is what `opencode export` writes: `{info, messages: [{info, parts}]}`. One baton
user message is one opencode user message; one baton assistant message is one opencode
assistant message (one model step), and its tool calls become `tool` parts whose state holds
the result found in the `tool` messages that follow, so those are folded in rather than
exported as messages. docs/exporters.md has the whole mapping.

Ids look like opencode's own (`ses_`/`msg_`/`prt_`, twelve hex digits of time and a counter,
fourteen base-62 characters) and are derived, never random: the time part from the message's
time, the rest from a hash of the baton ids. Exporting a session twice gives the same file,
and importing it twice leaves one session in opencode. Message ids include the opencode
session id, so a fork exported after its parent does not collide with the parent's messages
(opencode keeps the first owner of a message id).

opencode lists a session's messages by `time.created`, then id, and a message's parts by id;
times are therefore made non-decreasing and ids strictly increasing in conversation order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import mimetypes
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from baton import __version__
from baton.core.models import JSON, Message, Session, kept_before, parse_time
from baton.core.partials import join_partials

DEFAULT_AGENT = "build"  # opencode's default agent; a session's metadata may name another
VERSION = f"baton {__version__}"  # free text to opencode: what wrote the session
NO_RESULT = "No result was recorded for this tool call."

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MASK = (1 << 48) - 1  # opencode keeps the low 48 bits of (ms * 0x1000 + counter)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_HINT_KEYS = ("command", "cmd", "filePath", "file_path", "path", "pattern", "url", "description")


def _suffix(seed: str) -> str:
    """Fourteen base-62 characters from a hash of `seed` (opencode's are random)."""
    number = int.from_bytes(hashlib.blake2b(seed.encode(), digest_size=16).digest(), "big")
    chars = []
    for _ in range(14):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def make_id(prefix: str, value: int, seed: str, *, descending: bool = False) -> str:
    """`prefix_` + 12 hex digits + 14 base-62 characters, as opencode's Identifier makes them
    (sessions count down so that the newest sorts first)."""
    value &= _MASK
    if descending:
        value = _MASK - value
    return f"{prefix}_{value:012x}{_suffix(seed)}"


def _ms(value: str | None, floor: int = 0) -> int:
    """Epoch milliseconds of a baton time, never before `floor`."""
    if not value:
        return floor
    try:
        delta = parse_time(value) - _EPOCH
    except ValueError:
        return floor
    ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return max(ms, floor)


def _split_model(model: str | None) -> tuple[str, str]:
    """("provider", "model") from baton's "provider/model" (or a bare "model")."""
    if not model:
        return "", ""
    provider, slash, model_id = model.partition("/")
    return (provider, model_id) if slash and provider and model_id else ("", model)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(int(value), 0)


def _tokens(usage: JSON | None) -> tuple[JSON, float]:
    """opencode's token counts and the cost of a baton `usage`. baton's output tokens
    include reasoning tokens (when counted apart, as `reasoning_tokens`); opencode's don't."""
    usage = usage or {}
    reasoning = _count(usage.get("reasoning_tokens"))
    output = max(_count(usage.get("output_tokens")) - reasoning, 0)
    tokens: JSON = {
        "input": _count(usage.get("input_tokens")),
        "output": output,
        "reasoning": reasoning,
        "cache": {
            "read": _count(usage.get("cache_read_tokens")),
            "write": _count(usage.get("cache_write_tokens")),
        },
    }
    tokens["total"] = (
        tokens["input"] + output + reasoning + tokens["cache"]["read"] + tokens["cache"]["write"]
    )
    cost = usage.get("cost_usd")
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
        return tokens, 0.0
    return tokens, float(cost)


def _sum_tokens(counts: list[JSON]) -> JSON:
    """A session's tokens: its messages' added up (opencode keeps no total there)."""
    return {
        "input": sum(c["input"] for c in counts),
        "output": sum(c["output"] for c in counts),
        "reasoning": sum(c["reasoning"] for c in counts),
        "cache": {
            "read": sum(c["cache"]["read"] for c in counts),
            "write": sum(c["cache"]["write"] for c in counts),
        },
    }


def _title(name: str, arguments: JSON) -> str:
    """What opencode shows beside a tool's name: its command, path or pattern."""
    for key in _HINT_KEYS:
        value = arguments.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().splitlines()[0][:200]
    return name


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


@dataclass
class _Turn:
    """An opencode message being built."""

    info: JSON
    parts: list[JSON]
    ms: int


@dataclass
class _Writer:
    session_id: str
    agent: str
    cwd: str
    root: str
    fallback_model: tuple[str, str]
    turns: list[_Turn] = field(default_factory=list)
    # call id -> the tool part awaiting its output, and the message that holds it
    calls: dict[str, tuple[JSON, _Turn]] = field(default_factory=dict)
    last_ms: int = 0
    last_message: int = 0  # the value in the last message id, so ids strictly increase
    last_part: int = 0
    last_user: str | None = None
    model: tuple[str, str] = ("", "")

    # --- ids and times ----------------------------------------------------------------------

    def _message_id(self, ms: int, seed: str) -> str:
        self.last_message = max(ms * 0x1000 + 1, self.last_message + 1)
        return make_id("msg", self.last_message, f"{self.session_id}/{seed}")

    def _part(self, message: _Turn, body: JSON) -> JSON:
        self.last_part = max(message.ms * 0x1000 + 1, self.last_part + 1)
        seed = f"{message.info['id']}/{len(message.parts)}"
        part: JSON = {
            "id": make_id("prt", self.last_part, seed),
            "sessionID": self.session_id,
            "messageID": message.info["id"],
            **body,
        }
        message.parts.append(part)
        return part

    def _clock(self, created_at: str | None) -> int:
        self.last_ms = _ms(created_at, self.last_ms)
        return self.last_ms

    # --- messages ---------------------------------------------------------------------------

    def user(self, message: Message, *, synthetic: bool) -> None:
        ms = self._clock(message.created_at)
        provider, model_id = self.model if self.model != ("", "") else self.fallback_model
        turn = _Turn(
            {
                "id": self._message_id(ms, message.id),
                "sessionID": self.session_id,
                "role": "user",
                "time": {"created": ms},
                "agent": self.agent,
                "model": {"providerID": provider, "modelID": model_id},
            },
            [],
            ms,
        )
        self.turns.append(turn)
        self.last_user = turn.info["id"]
        _restore_info(turn.info, message.parts)
        for part in message.parts:
            kind = part.get("type")
            self._kept(turn, part, "before")
            if kind == "file":
                self._part(turn, _file(part))
            elif kind in ("text", "reasoning"):
                body: JSON = {"type": "text", "text": str(part.get("text", ""))}
                if synthetic or part.get("synthetic") is True:
                    body["synthetic"] = True
                self._part(turn, _timed(body, part))
            else:
                self._part(turn, {"type": "text", "text": _describe(part), "synthetic": True})
            self._kept(turn, part, "after")

    def _kept(self, turn: _Turn, part: JSON, where: str) -> None:
        """The parts opencode wrote around this one (steps, patches), kept at import."""
        extra = part.get("opencode")
        found = extra.get(where) if isinstance(extra, dict) else None
        for kept in found if isinstance(found, list) else []:
            if isinstance(kept, dict) and isinstance(kept.get("type"), str):
                self._part(turn, dict(kept))

    def assistant(self, message: Message) -> None:
        ms = self._clock(message.created_at)
        if message.model:
            self.model = _split_model(message.model)
        # an opencode message imported whole brings its own steps (with their snapshots)
        kept = any(isinstance(p.get("opencode"), dict) for p in message.parts)
        turn = self._assistant_turn(ms, message.id, message.model, message.usage, steps=not kept)
        _restore_info(turn.info, message.parts)
        for part in message.parts:
            kind = part.get("type")
            self._kept(turn, part, "before")
            if kind == "text":
                self._part(turn, _timed({"type": "text", "text": str(part.get("text", ""))}, part))
            elif kind == "reasoning":
                text = str(part.get("text", ""))
                body = {"type": "reasoning", "text": text, "time": {"start": ms, "end": ms}}
                self._part(turn, _timed(body, part))
            elif kind == "tool_call":
                self._tool_call(turn, part)
            elif kind == "tool_result":
                if not self._fold(part, ms):
                    self._part(turn, {"type": "text", "text": _describe(part)})
            elif kind == "file":
                self._part(turn, _file(part))
            else:
                self._part(turn, {"type": "text", "text": _describe(part)})
            self._kept(turn, part, "after")
        self._finish(turn, steps=not kept)

    def tool(self, message: Message) -> None:
        """Results go into the tool parts they answer; anything else (a result whose call
        is unknown, other parts) becomes an assistant message of its own."""
        ms = self._clock(message.created_at)
        leftovers = [p for p in message.parts if kept_before(p) is None and not self._fold(p, ms)]
        if not leftovers:
            return
        turn = self._assistant_turn(ms, f"{message.id}/rest", None, None)
        for part in leftovers:
            if part.get("type") == "tool_result":
                call = {"type": "tool_call", "id": part.get("tool_call_id"), "name": "unknown"}
                self._tool_call(turn, call)
                self._fold(part, ms)
            elif part.get("type") == "file":
                self._part(turn, _file(part))
            else:
                self._part(turn, {"type": "text", "text": _describe(part)})
        self._finish(turn)

    def _assistant_turn(
        self, ms: int, seed: str, model: str | None, usage: JSON | None, *, steps: bool = True
    ) -> _Turn:
        provider, model_id = _split_model(model) if model else self.model
        if (provider, model_id) == ("", ""):
            provider, model_id = self.fallback_model
        tokens, cost = _tokens(usage)
        message_id = self._message_id(ms, seed)
        info: JSON = {
            "id": message_id,
            "sessionID": self.session_id,
            "role": "assistant",
            "time": {"created": ms, "completed": ms},
            # opencode hangs a reply under the prompt it answers; before any prompt, itself
            "parentID": self.last_user or message_id,
            "modelID": model_id,
            "providerID": provider,
            "mode": self.agent,
            "agent": self.agent,
            "path": {"cwd": self.cwd, "root": self.root},
            "cost": cost,
            "tokens": tokens,
        }
        turn = _Turn(info, [], ms)
        self.turns.append(turn)
        if steps:
            self._part(turn, {"type": "step-start"})
        return turn

    def _finish(self, turn: _Turn, *, steps: bool = True) -> None:
        tools = any(p["type"] == "tool" for p in turn.parts)
        reason = "tool-calls" if tools else "stop"
        turn.info.setdefault("finish", reason)
        info = turn.info
        if not steps:
            return
        self._part(
            turn,
            {
                "type": "step-finish",
                "reason": reason,
                "cost": info["cost"],
                "tokens": info["tokens"],
            },
        )

    def _tool_call(self, turn: _Turn, part: JSON) -> None:
        name = str(part.get("name") or "unknown")
        arguments = part.get("input")
        if not isinstance(arguments, dict):
            arguments = {} if arguments is None else {"input": arguments}
        call_id = str(part.get("id") or "")
        tool = self._part(
            turn,
            {
                "type": "tool",
                "callID": call_id,
                "tool": name,
                "state": {
                    "status": "error",
                    "input": arguments,
                    "error": NO_RESULT,
                    "time": {"start": turn.ms, "end": turn.ms},
                },
            },
        )
        self.calls[call_id] = (tool, turn)

    def _fold(self, part: JSON, ms: int) -> bool:
        """Put a tool result into the part of its call. False when it is not a result or
        its call is unknown (or already answered)."""
        if part.get("type") != "tool_result":
            return False
        call_id = str(part.get("tool_call_id") or "")
        found = self.calls.pop(call_id, None)
        if found is None:
            return False
        tool, owner = found
        state = tool["state"]
        output = _text(part.get("output"))
        times = {"start": state["time"]["start"], "end": max(ms, state["time"]["start"])}
        exit_code = part.get("exit_code")
        has_exit = isinstance(exit_code, int) and not isinstance(exit_code, bool)
        found = part.get("opencode")
        extra: JSON = found if isinstance(found, dict) else {}
        if isinstance(extra.get("time"), dict):
            times = extra["time"]  # when the tool ran, as opencode recorded it
        if part.get("is_error") and not has_exit:
            tool["state"] = {
                "status": "error",
                "input": state["input"],
                "error": output,
                "time": times,
            }
            if isinstance(extra.get("metadata"), dict):
                tool["state"]["metadata"] = extra["metadata"]
        else:
            # A command that ran and failed is `completed` with its exit status, as opencode
            # records its own shell commands.
            metadata: JSON = {"exit": exit_code} if has_exit else {}
            if isinstance(extra.get("metadata"), dict):
                metadata = {**extra["metadata"], **metadata}
            title = extra.get("title")
            if not isinstance(title, str):
                title = _title(str(tool["tool"]), state["input"])
            tool["state"] = {
                "status": "completed",
                "input": state["input"],
                "output": output,
                "title": title,
                "metadata": metadata,
                "time": times,
            }
        end = times.get("end") if isinstance(times.get("end"), int) else times.get("start", 0)
        owner.info["time"]["completed"] = max(owner.info["time"]["completed"], end)
        return True


def _file(part: JSON) -> JSON:
    """A baton file part as opencode's: the bytes in a data: URL when baton holds them."""
    path = str(part.get("path") or part.get("name") or "file")
    mime = part.get("mime")
    if not isinstance(mime, str) or not mime:
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    data, encoding, url = part.get("data"), part.get("encoding"), part.get("url")
    if isinstance(data, str) and encoding == "base64":
        url = f"data:{mime};base64,{data}"
    elif isinstance(data, str) and encoding == "url":
        url = f"data:{mime},{data}"
    elif isinstance(data, str):
        url = f"data:{mime};base64,{base64.b64encode(data.encode()).decode()}"
    elif not isinstance(url, str) or not url:
        url = f"file://{path}" if path.startswith("/") else path
    return {
        "type": "file",
        "mime": mime,
        "filename": posixpath.basename(path) or path,
        "url": url,
        "source": {"type": "file", "path": path, "text": {"value": "", "start": 0, "end": 0}},
    }


def _timed(body: JSON, part: JSON) -> JSON:
    """A text or reasoning part with the times opencode recorded for it, when kept."""
    extra = part.get("opencode")
    if isinstance(extra, dict) and isinstance(extra.get("time"), dict):
        body["time"] = extra["time"]
    return body


def _restore_info(info: JSON, parts: list[JSON]) -> None:
    """An opencode message's own fields kept at import (on its first part): `summary`
    (with its diffs), `finish`, `error`, `time.completed`, the model's `variant`."""
    extra = parts[0].get("opencode") if parts else None
    kept = extra.get("message") if isinstance(extra, dict) else None
    if not isinstance(kept, dict):
        return
    for key in ("summary", "finish", "error"):
        if key in kept:
            info[key] = kept[key]
    time = kept.get("time")
    if isinstance(time, dict) and isinstance(time.get("completed"), int):
        info["time"]["completed"] = max(time["completed"], info["time"]["created"])
    model = kept.get("model")
    if isinstance(model, dict) and "variant" in model and isinstance(info.get("model"), dict):
        info["model"]["variant"] = model["variant"]


def _describe(part: JSON) -> str:
    """A part opencode has no place for, as text that says what it was."""
    kind = part.get("type")
    if kind == "blob_ref":
        return f"[stored blob {part.get('sha256')} ({part.get('size')} bytes)]"
    if kind == "tool_call":
        return f"[tool call {part.get('name')}] {_text(part.get('input'))}"
    if kind == "tool_result":
        return f"[tool result {part.get('tool_call_id')}] {_text(part.get('output'))}"
    return str(part.get("text") or f"[{kind} part]")


def _agent(metadata: JSON) -> str:
    for key in ("agent", "mode"):
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return DEFAULT_AGENT


def session_id(session: Session) -> str:
    """The opencode id of a baton session: the same on every export."""
    created = _ms(session.created_at)
    return make_id("ses", created * 0x1000 + 1, f"baton:{session.id}", descending=True)


def export_opencode(session: Session, messages: list[Message]) -> JSON:
    """The session (hydrated messages) as an opencode export document."""
    metadata = session.metadata if isinstance(session.metadata, dict) else {}
    git = session.git or {}
    cwd = metadata.get("cwd") if isinstance(metadata.get("cwd"), str) else None
    cwd = cwd or (git.get("root") if isinstance(git.get("root"), str) else None) or ""
    model = metadata.get("model") if isinstance(metadata.get("model"), str) else None
    if not model:
        model = next((m.model for m in reversed(messages) if m.model), None)
    fallback = _split_model(model)
    sid = session_id(session)
    writer = _Writer(sid, _agent(metadata), cwd, cwd, fallback)
    # A streamed answer stored in chunks is one opencode message, as opencode resumes it.
    for message in join_partials(messages):
        if message.role == "assistant":
            writer.assistant(message)
        elif message.role == "tool":
            writer.tool(message)
        else:
            writer.user(message, synthetic=message.role == "system")

    replies = [t.info for t in writer.turns if t.info["role"] == "assistant"]
    info: JSON = {
        "id": sid,
        "slug": "baton-" + session.id.removeprefix("ses_").lower()[-10:],
        "projectID": str(git.get("root_commit") or "global"),
        "directory": cwd,
        "path": "",
        "title": session.title or "Untitled session",
        "version": VERSION,
        "agent": writer.agent,
        "cost": round(sum(r["cost"] for r in replies), 9),
        "tokens": _sum_tokens([r["tokens"] for r in replies]),
        "metadata": {"baton": {"session": session.id, "head": session.head}},
        "time": {
            "created": _ms(session.created_at),
            "updated": _ms(session.updated_at, writer.last_ms),
        },
    }
    if fallback != ("", ""):
        info["model"] = {"id": fallback[1], "providerID": fallback[0]}
    given = metadata.get("opencode")
    kept: JSON = given if isinstance(given, dict) else {}
    if "model_variant" in kept and "model" in info:
        info["model"]["variant"] = kept["model_variant"]
    for key in ("summary", "slug", "permission"):
        if key in kept:
            info[key] = kept[key]
    if isinstance(metadata.get("project_id"), str) and kept:
        info["projectID"] = metadata["project_id"]
    if isinstance(metadata.get("parent_session"), str) and kept:
        info["parentID"] = metadata["parent_session"]  # a sub-agent's, as opencode named it
    return {
        "info": info,
        "messages": [{"info": t.info, "parts": t.parts} for t in writer.turns],
    }
