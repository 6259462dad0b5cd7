"""Codex CLI rollouts (`~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`) -> baton sessions.

One `{timestamp, ordinal?, type, payload}` object a line. The conversation is in the
`response_item` lines (messages, reasoning, tool calls and their outputs); `event_msg`
token_count lines give each model reply's usage; the rest is bookkeeping. The items of one model
reply (reasoning, text, tool calls) become one assistant message. A fork does not copy its
parent: its `session_meta` names the parent (`forked_from_id`) and where it branched
(`history_base`), which becomes `ImportedSession.parent`. See docs/importers/codex.md.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from baton.core.errors import InvalidInput
from baton.core.models import JSON
from baton.importers.base import ImportedSession, Parsed, bounded_usage, refuse, to_time
from baton.importers.jsonl import head_records, no_constant, read_jsonl

TOOL = "codex"
KIND = "a Codex rollout (JSON lines)"

_CONVERSATION_TYPES = frozenset({"session_meta", "response_item", "event_msg", "turn_context"})
# Response items with nothing readable to keep (Codex's own git snapshots, encrypted
# compaction state).
_SILENT_ITEMS = frozenset({"ghost_snapshot", "compaction", "compaction_summary"})
# Text Codex sends as a user message that the person did not type.
_INJECTED = (
    "<environment_context>",
    "<user_instructions>",
    "<INSTRUCTIONS>",
    "# AGENTS.md instructions for",
    "<skills_instructions>",
    "<permissions instructions>",
    "<user_shell_command>",
    "<turn_aborted>",
    "<subagent_notification>",
)


class _Builder:
    """Feeds rollout lines in order and collects baton messages."""

    def __init__(self, path: Path, usage_from_records: bool) -> None:
        self.path = path
        self.messages: list[JSON] = []
        self.reply: JSON | None = None  # the assistant message still taking items
        self.model: str | None = None
        self.last_total: Any = None
        self.usage_from_records = usage_from_records
        self.lost: Counter[str] = Counter()
        # Calls Codex reported failed (`item_completed`, status "failed" or a non-zero
        # exit code) -> the exit code, and the results already made, by call id.
        self.failed: dict[str, int | None] = {}
        self.results: dict[str, JSON] = {}

    def feed(self, n: int, record: JSON) -> None:
        kind = record["type"]
        payload = record["payload"]
        if kind == "turn_context":
            model = payload.get("model")
            if isinstance(model, str) and model:
                self.model = model
            self.reply = None
        elif kind == "response_item":
            self._item(n, record, payload)
        elif kind == "event_msg":
            if payload.get("type") == "token_count":
                info = payload.get("info")
                if isinstance(info, dict) and isinstance(info.get("last_token_usage"), dict):
                    total = info.get("total_token_usage")
                    if total is None or total != self.last_total:  # Codex repeats some events
                        self.last_total = total
                        self._usage(info["last_token_usage"])
                self.reply = None
            elif payload.get("type") in ("task_started", "turn_started", "task_complete"):
                self.reply = None
            elif payload.get("type") == "item_completed":
                self._completed(payload.get("item"))
        elif kind == "token_usage_record":
            if self.usage_from_records and isinstance(payload.get("usage"), dict):
                self._usage(payload["usage"])
            self.reply = None
        elif kind == "compacted":
            self.reply = None
            summary = payload.get("message")
            if isinstance(summary, str) and summary.strip():
                self._add("system", [{"type": "text", "text": summary}], n, record)

    def _item(self, n: int, record: JSON, item: JSON) -> None:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            if role == "user":
                self.reply = None
                parts = self._prompt_parts(item)
                if parts:
                    self._add("user", parts, n, record)
            elif role == "assistant":
                for block in _blocks(item):
                    field = {"output_text": "text", "input_text": "text", "refusal": "refusal"}
                    text = block.get(field.get(str(block.get("type")), ""))
                    if not isinstance(text, str):
                        self.lost[f"assistant {block.get('type')}"] += 1
                    elif text:
                        self._reply_part({"type": "text", "text": text}, n, record)
            # developer and system messages are instructions, not conversation
        elif kind == "reasoning":
            for text in _reasoning(item):
                self._reply_part({"type": "reasoning", "text": text}, n, record)
        elif kind == "function_call" and _named(item):
            part = {"type": "tool_call", "id": item["call_id"], "name": item["name"]}
            part["input"] = _arguments(item.get("arguments"))
            self._reply_part(part, n, record)
        elif kind == "custom_tool_call" and _named(item):
            part = {"type": "tool_call", "id": item["call_id"], "name": item["name"]}
            part["input"] = item.get("input", "")
            self._reply_part(part, n, record)
        elif kind in ("local_shell_call", "web_search_call"):
            call_id = item.get("call_id") or item.get("id") or f"{kind}-{n}"
            name = "local_shell" if kind == "local_shell_call" else "web_search"
            part = {"type": "tool_call", "id": str(call_id), "name": name}
            part["input"] = item.get("action", {})
            self._reply_part(part, n, record)
        elif kind in ("function_call_output", "custom_tool_call_output") and isinstance(
            item.get("call_id"), str
        ):
            self.reply = None
            result = _result(item)
            self.results[item["call_id"]] = result
            if item["call_id"] in self.failed:
                _fail(result, self.failed[item["call_id"]])
            self._add("tool", [result], n, record)
        elif kind not in _SILENT_ITEMS:
            self.lost[str(kind)] += 1

    def _completed(self, item: Any) -> None:
        """A finished item: a command or tool call that failed marks its result an error,
        whether the result came before this line or comes after it."""
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return
        code = item.get("exit_code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        if item.get("status") != "failed" and not code:
            return
        self.failed[item["id"]] = code
        if item["id"] in self.results:
            _fail(self.results[item["id"]], code)

    def _prompt_parts(self, item: JSON) -> list[JSON]:
        """What the person typed: blocks Codex marks as the user's (its provenance metadata),
        or, in rollouts without it, blocks not wrapped in Codex's context tags."""
        blocks = _blocks(item)
        passthrough = item.get("internal_chat_message_metadata_passthrough")
        kinds = passthrough.get("content_item_metadata") if isinstance(passthrough, dict) else None
        if not isinstance(kinds, list) or len(kinds) != len(blocks):
            kinds = [None] * len(blocks)
        parts: list[JSON] = []
        for block, meta in zip(blocks, kinds, strict=True):
            provenance = _provenance(meta)
            if provenance is not None and provenance != "user":
                continue
            kind = block.get("type")
            text = block.get("text")
            if kind == "input_text" and isinstance(text, str):
                injected = provenance is None and text.lstrip().startswith(_INJECTED)
                if text.strip() and not injected:
                    parts.append({"type": "text", "text": text})
            elif kind == "input_image" and isinstance(block.get("image_url"), str):
                parts.append(_image(block["image_url"], len(parts) + 1))
            else:
                self.lost[f"user {kind}"] += 1
        return parts

    def _time(self, n: int, record: JSON) -> str:
        when = to_time(record.get("timestamp"))
        if when is None:
            raise refuse(self.path, f"line {n}: a conversation line without a valid timestamp")
        return when

    def _add(self, role: str, parts: list[JSON], n: int, record: JSON) -> JSON:
        message: JSON = {"role": role, "parts": parts, "created_at": self._time(n, record)}
        self.messages.append(message)
        return message

    def _reply_part(self, part: JSON, n: int, record: JSON) -> None:
        if self.reply is None:
            self.reply = self._add("assistant", [], n, record)
            if self.model is not None:
                self.reply["model"] = self.model
        self.reply["parts"].append(part)

    def _usage(self, raw: JSON) -> None:
        """Usage of the reply before it: Codex counts cached tokens inside input_tokens;
        baton's input_tokens are the uncached ones, as Codex shows them."""
        usage = _usage(raw)
        target = next((m for m in reversed(self.messages) if m["role"] == "assistant"), None)
        if usage is None or target is None:
            return
        if "usage" in target:  # a second reply that wrote nothing visible: keep the totals
            usage = {
                k: target["usage"].get(k, 0) + usage.get(k, 0) for k in {*target["usage"], *usage}
            }
        target["usage"] = usage


def _blocks(item: JSON) -> list[JSON]:
    content = item.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _provenance(meta: Any) -> str | None:
    if not isinstance(meta, dict) or not isinstance(meta.get("provenance"), dict):
        return None
    kind = meta["provenance"].get("type")
    return kind if isinstance(kind, str) else None


def _named(item: JSON) -> bool:
    return isinstance(item.get("call_id"), str) and isinstance(item.get("name"), str)


def _arguments(raw: Any) -> Any:
    """function_call arguments are a JSON string: the parsed value, or the text if it is not."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    try:
        return json.loads(raw, parse_constant=no_constant)
    except (ValueError, RecursionError):
        return raw


def _reasoning(item: JSON) -> list[str]:
    """The readable reasoning: the summary, or the raw text where a model gives it."""
    for key in ("summary", "content"):
        texts = [b.get("text") for b in _blocks({"content": item.get(key)})]
        found = [t for t in texts if isinstance(t, str) and t.strip()]
        if found:
            return found
    return []


def _result(item: JSON) -> JSON:
    output = item.get("output")
    part: JSON = {"type": "tool_result", "tool_call_id": item["call_id"]}
    if isinstance(output, dict) and "content" in output:  # {content, success}
        part["output"] = output["content"] if output["content"] is not None else ""
        if output.get("success") is False:
            part["is_error"] = True
    else:
        part["output"] = output if output is not None else ""
    return part


def _fail(result: JSON, code: int | None) -> None:
    result["is_error"] = True
    if code is not None:
        result["exit_code"] = code


def _image(url: str, number: int) -> JSON:
    if not url.startswith("data:"):
        return {"type": "file", "path": url}
    header, _, data = url.partition(",")
    mime = header[len("data:") :].split(";")[0] or "application/octet-stream"
    part: JSON = {"type": "file", "path": f"image-{number}.{mime.split('/')[-1]}", "mime": mime}
    if ";base64" in header:
        part["encoding"] = "base64"
    part["data"] = data
    return part


def _usage(raw: JSON) -> JSON | None:
    def count(key: str) -> int | None:
        value = raw.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return value if ok else None

    total_in, cached, out = (
        count("input_tokens"),
        count("cached_input_tokens"),
        count("output_tokens"),
    )
    usage: JSON = {}
    if total_in is not None:
        usage["input_tokens"] = max(total_in - (cached or 0), 0)
    if out is not None:
        usage["output_tokens"] = out
    if cached is not None:
        usage["cache_read_tokens"] = cached
    written = count("cache_write_input_tokens")
    if written is not None:
        usage["cache_write_tokens"] = written
    return bounded_usage(usage) if usage else None


def _convert(path: Path, records: list[tuple[int, JSON]]) -> _Builder:
    counted = any(
        r["type"] == "event_msg"
        and r["payload"].get("type") == "token_count"
        and isinstance(r["payload"].get("info"), dict)
        for _, r in records
    )
    builder = _Builder(path, usage_from_records=not counted)
    for n, record in records:
        builder.feed(n, record)
    builder.messages = [m for m in builder.messages if m["parts"]]
    return builder


def _checked(path: Path, records: list[tuple[int, JSON]]) -> JSON:
    """Refuse lines that are not `{timestamp, type, payload}`; return the session_meta."""
    meta: JSON | None = None
    for n, record in records:
        if not isinstance(record.get("type"), str) or not isinstance(record.get("payload"), dict):
            raise refuse(
                path, f"line {n} is not a {{timestamp, type, payload}} line; expected {KIND}"
            )
        if record["type"] == "session_meta" and meta is None:
            meta = record
    if meta is None or not isinstance(meta["payload"].get("id"), str):
        raise refuse(path, f"no session_meta line with an id; expected {KIND}")
    return meta


def _find_rollout(path: Path, session_id: str) -> Path | None:
    """The rollout of `session_id`: beside `path`, else anywhere under the sessions folder
    (`sessions/YYYY/MM/DD/`) that holds it. Codex names each file after its session."""
    pattern = f"rollout-*{session_id}.jsonl"
    found = sorted(path.parent.glob(pattern))
    days = path.parents[:3] if len(path.parents) > 3 else ()
    if not found and len(days) == 3 and all(p.name.isdigit() for p in days):
        found = sorted(path.parents[3].rglob(pattern))
    return found[0] if found else None


def _parent(
    path: Path, meta: JSON, warnings: list[str]
) -> tuple[tuple[str, int], list[JSON]] | None:
    """(parent id, number of the parent's messages before the fork's own), and those
    messages as the parent's rollout holds them. `history_base` says the fork continues the
    parent's lines with ordinal below `end_ordinal_exclusive`."""
    parent_id = meta.get("forked_from_id")
    base = meta.get("history_base")
    end = base.get("end_ordinal_exclusive") if isinstance(base, dict) else None
    if end is None:
        end = meta.get("forked_from_ordinal_exclusive")
    if not isinstance(parent_id, str) or not isinstance(end, int) or isinstance(end, bool):
        return None
    missing = f"{path.name}: forked from Codex session {parent_id}"
    found = _find_rollout(path, parent_id)
    if found is None:
        warnings.append(f"{missing}, whose rollout was not found; imported without its history")
        return None
    try:
        records = read_jsonl(found, KIND).lines
        parent_meta = _checked(found, records)["payload"]
        if parent_meta.get("id") != parent_id:
            raise refuse(found, f"its session_meta names {parent_meta.get('id')}")
        if all(isinstance(r.get("ordinal"), int) for _, r in records):
            before = [(n, r) for n, r in records if r["ordinal"] < end]
        else:  # no ordinals: count lines
            before = records[:end]
        inherited = _convert(found, before).messages
    except InvalidInput as error:
        warnings.append(f"{missing}; its rollout could not be read ({error.message})")
        return None
    return ((parent_id, len(inherited)), inherited) if inherited else None


class CodexImporter:
    name = TOOL

    def detect(self, path: Path, head: bytes) -> bool:
        records = head_records(head)
        if records is not None:
            return all(
                isinstance(r.get("type"), str) and isinstance(r.get("payload"), dict)
                for r in records
            ) and any(r["type"] in _CONVERSATION_TYPES for r in records)
        # One line longer than the head (a long session_meta): judge its opening.
        start = head.lstrip()
        return (
            b"\n" not in head.strip()
            and start.startswith(b"{")
            and b'"type":"session_meta"' in head
            and b'"payload":{' in head
        )

    def read(self, path: Path, *, stream: bool = False) -> Parsed:
        records = read_jsonl(path, KIND)
        meta_record = _checked(path, records.lines)
        meta = meta_record["payload"]
        builder = _convert(path, records.lines)
        warnings = list(records.warnings)
        version = meta.get("cli_version") if isinstance(meta.get("cli_version"), str) else None
        source: JSON = {"tool": TOOL}
        if version:
            source["version"] = version
        source["session_id"] = meta["id"]
        if isinstance(meta.get("forked_from_id"), str):
            source["forked_from"] = meta["forked_from_id"]
        metadata: JSON = {"source": source}
        cwd = meta.get("cwd")
        if isinstance(cwd, str) and cwd:
            metadata["cwd"] = cwd
        metadata["imported_from"] = str(path)
        if builder.model:
            metadata["model"] = builder.model
        session = ImportedSession(
            tool=TOOL,
            source_id=meta["id"],
            messages=builder.messages,
            created_at=to_time(meta.get("timestamp")) or to_time(meta_record.get("timestamp")),
            metadata=metadata,
            git=_git(meta, cwd),
        )
        found = _parent(path, meta, warnings)
        if found is not None:
            session.parent, session.inherited = found
        if builder.lost:
            listed = ", ".join(f"{k} x{n}" for k, n in sorted(builder.lost.items()))
            warnings.append(f"{path.name}: skipped items baton does not map ({listed})")
        sessions = [session]
        if not session.messages:
            warnings.append(f"{path.name}: no messages to import")
            sessions = []
        return Parsed(TOOL, version, sessions, warnings, records.skipped)


def _git(meta: JSON, cwd: Any) -> JSON | None:
    raw = meta.get("git")
    git: JSON = {}
    if isinstance(raw, dict):
        for source, target in (("branch", "branch"), ("repository_url", "remote")):
            if isinstance(raw.get(source), str) and raw[source]:
                git[target] = raw[source]
        if isinstance(raw.get("commit_hash"), str) and raw["commit_hash"]:
            git["head"] = raw["commit_hash"]
    if git and isinstance(cwd, str) and cwd:
        git["cwd"] = cwd
    return git or None


IMPORTER = CodexImporter()
