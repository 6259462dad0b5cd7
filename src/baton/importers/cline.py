"""Cline, Roo Code and Kilo Code (VS Code extension) task folders.

Each task is a folder named by its id (the epoch milliseconds it started) in the extension's
global storage, `…/globalStorage/<extension>/tasks/<id>/`, holding:

- `api_conversation_history.json`: the conversation as sent to the model, Anthropic style:
  `[{role, content: str | [text, image, document, tool_use, tool_result, thinking, …]}]`
  (Roo Code and Kilo Code add `ts`, epoch milliseconds, to each message);
- `ui_messages.json` (formerly `claude_messages.json`): what the chat view showed,
  `[{ts, type: "say" | "ask", say | ask, text, …}]`; each model request is a
  `say: "api_req_started"` entry whose text is JSON with tokensIn, tokensOut, cacheWrites,
  cacheReads and cost;
- `task_metadata.json`: `{files_in_context: [{path, …}], model_usage: [{ts, model_id, …}]}`.

Older versions call tools with XML in the assistant's text (`<read_file><path>a.py</path>
</read_file>`) and answer with user text blocks that start with `[read_file for 'a.py']
Result:`; newer ones use tool_use / tool_result blocks. Both become baton tool_call parts and
`tool` messages. docs/importers/cline.md lists the mapping and what was assumed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.core.errors import InvalidInput
from baton.core.models import JSON
from baton.core.validation import derive_title
from baton.importers.base import (
    ImportedSession,
    Parsed,
    as_text,
    bounded_usage,
    epoch_ms,
    finite,
    first_prompt,
    load_json,
    ms_time,
    refuse,
)

HISTORY = "api_conversation_history.json"
UI_MESSAGES = ("ui_messages.json", "claude_messages.json")  # the second: before Cline 2.x
TASK_METADATA = "task_metadata.json"

_HISTORY_START = re.compile(rb'^\[\s*(\]|\{\s*"(role|content|ts)"\s*:)')

# Tools Cline and Roo Code call with XML in the assistant's text (only these are recognised;
# anything else that looks like a tag stays text).
XML_TOOLS = frozenset(
    {
        "execute_command",
        "read_file",
        "write_to_file",
        "replace_in_file",
        "search_files",
        "list_files",
        "list_code_definition_names",
        "browser_action",
        "use_mcp_tool",
        "access_mcp_resource",
        "ask_followup_question",
        "plan_mode_respond",
        "act_mode_respond",
        "load_mcp_documentation",
        "attempt_completion",
        "new_task",
        "condense",
        "summarize_task",
        "report_bug",
        "new_rule",
        "web_fetch",
        "web_search",
        # Roo Code and Kilo Code
        "apply_diff",
        "insert_content",
        "search_and_replace",
        "codebase_search",
        "switch_mode",
        "fetch_instructions",
        "update_todo_list",
        "run_slash_command",
        "generate_image",
    }
)
_XML_CALL = re.compile(r"<(" + "|".join(sorted(XML_TOOLS)) + r")>")
_PARAM = re.compile(r"<([a-z_]+)>")
_RAW_PARAMS = frozenset({"content", "diff"})  # may themselves hold tags: close at the last one
_THINKING = re.compile(r"<thinking>\s*(.*?)\s*</thinking>", re.DOTALL)
_RESULT_HEADER = re.compile(r"^\[([a-z_]+)(?: for '.*?')?\] Result:(.*)\Z", re.DOTALL)
_NOT_RUN = re.compile(
    r"^(?:Skipping tool \[([a-z_]+)(?: for '.*?')?\]|Tool \[([a-z_]+)\] was not executed)"
)
_WRAPPED = re.compile(r"^\s*<(task|feedback|answer|user_message)>\n?(.*?)\n?</\1>\s*\Z", re.DOTALL)
_USER_MESSAGE = re.compile(r"<user_message>\n?(.*?)\n?</user_message>", re.DOTALL)
_CWD = re.compile(r"# Current Working Directory \((.+?)\) Files")
# Text the extension adds to a user turn by itself: context, resumption notes, nudges.
_SYNTHETIC = (
    "<environment_details>",
    "[TASK RESUMPTION]",
    "[ERROR] You did not use a tool",
    "<explicit_instructions",
)
# How Cline words a tool result that failed.
_ERRORS = (
    "The tool execution failed",
    "The user denied this operation",
    "Missing value for required parameter",
    "Error executing",
    "<error>",
)
# Chat-view entries that are bookkeeping around a request, not part of the reply.
_REQUEST_KINDS = frozenset(
    {
        "api_req_started",
        "api_req_finished",
        "api_req_retried",
        "api_req_failed",
        "deleted_api_reqs",
        "checkpoint_created",
        "error_retry",
    }
)
_PATH_LABELS = (
    ("roo-cline", "roo-code"),
    ("roo-code", "roo-code"),
    ("kilo-code", "kilo-code"),
    ("kilocode", "kilo-code"),
    ("claude-dev", "cline"),
)


class ClineImporter:
    name = "cline"

    def detect(self, path: Path, head: bytes) -> bool:
        if path.is_dir():
            if _is_task(path):
                return True
            return any(_is_task(child) for child in _children(path)[:20])
        return _looks_like_history(head) and (
            b"<task>" in head
            or b"<environment_details>" in head
            or any((path.parent / name).is_file() for name in UI_MESSAGES)
        )

    def read(self, path: Path, *, stream: bool = False) -> Parsed:
        if not path.exists():
            raise refuse(path, "does not exist")
        if path.is_file():
            return _parsed([_read_task(path.parent, path)])
        if (path / HISTORY).is_file():
            return _parsed([_read_task(path, path / HISTORY)])
        tasks = [child for child in _children(path) if (child / HISTORY).is_file()]
        if not tasks:
            raise refuse(path, f"is not a Cline task folder (no {HISTORY}) nor a folder of them")
        read: list[tuple[ImportedSession, list[str]]] = []
        damaged: list[str] = []
        for task in tasks:
            try:
                read.append(_read_task(task, task / HISTORY))
            except InvalidInput as exc:  # one damaged task does not hold back the others
                damaged.append(f"skipped task {exc.message}")
        if not read:
            raise refuse(path, f"none of its {len(tasks)} task(s) could be read: {damaged[0]}")
        parsed = _parsed(read)
        parsed.warnings[:0] = damaged
        return parsed


IMPORTER = ClineImporter()


def _parsed(read: list[tuple[ImportedSession, list[str]]]) -> Parsed:
    labels = {session.tool for session, _ in read}
    tool = labels.pop() if len(labels) == 1 else "cline"
    warnings = [line for _, lines in read for line in lines]
    return Parsed(tool, None, [session for session, _ in read], warnings)


# --- files -----------------------------------------------------------------------------------


def _children(path: Path) -> list[Path]:
    """Sub-folders, oldest task first (task ids are epoch milliseconds)."""
    try:
        found = [child for child in path.iterdir() if child.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (not p.name.isdigit(), len(p.name), p.name))


def _is_task(path: Path) -> bool:
    history = path / HISTORY
    try:
        with history.open("rb") as handle:
            return _looks_like_history(handle.read(4096))
    except OSError:
        return False


def _looks_like_history(head: bytes) -> bool:
    return _HISTORY_START.match(head.lstrip(b"\xef\xbb\xbf \t\r\n")) is not None


def _read_task(folder: Path, history_path: Path) -> tuple[ImportedSession, list[str]]:
    where = folder
    history = load_json(history_path, where, fast=False)
    if not isinstance(history, list):
        raise refuse(where, f"{history_path.name} must be a list of messages, got {_kind(history)}")
    for i, message in enumerate(history):
        _check_message(message, i, where, history_path.name)
    ui: list[JSON] = []
    for name in UI_MESSAGES:
        if (folder / name).is_file():
            raw = load_json(folder / name, where, fast=False)
            if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
                raise refuse(where, f"{name} must be a list of objects, got {_kind(raw)}")
            ui = raw
            break
    warnings: list[str] = []
    metadata_file: JSON = {}
    if (folder / TASK_METADATA).is_file():
        try:
            raw_meta = load_json(folder / TASK_METADATA, where, fast=False)
        except InvalidInput as exc:
            warnings.append(f"task {exc.message}; ignored it")
            raw_meta = {}
        metadata_file = raw_meta if isinstance(raw_meta, dict) else {}
    task_ms = int(folder.name) if folder.name.isdigit() and len(folder.name) <= 15 else None
    task = _Task(folder.name, task_ms, history, ui, metadata_file, warnings)
    return task.convert(_label(folder, history), history_path), warnings


def _check_message(message: Any, i: int, where: Path, name: str) -> None:
    at = f"{name}: message {i + 1}"
    if not isinstance(message, dict):
        raise refuse(where, f"{at} must be an object, got {_kind(message)}")
    if message.get("role") not in ("user", "assistant"):
        raise refuse(where, f"{at} has role {message.get('role')!r}; expected user or assistant")
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise refuse(where, f"{at}: content must be a string or a list, got {_kind(content)}")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise refuse(where, f"{at}, block {j + 1} must be an object with a type")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


def _label(folder: Path, history: list[JSON]) -> str:
    """Which extension wrote the task: its storage folder says so; Roo Code and Kilo Code also
    stamp each API message with `ts`, which Cline does not."""
    resolved = folder.resolve()
    extension = resolved.parent.parent.name.lower() if resolved.parent.name == "tasks" else ""
    for needle, label in _PATH_LABELS:
        if needle in extension:
            return label
    if any("ts" in message for message in history):
        return "roo-code"
    return "cline"


# --- conversion ------------------------------------------------------------------------------


@dataclass
class _Task:
    task_id: str
    task_ms: int | None
    history: list[JSON]
    ui: list[JSON]
    metadata_file: JSON
    warnings: list[str]
    skipped: Counter[str] = field(default_factory=Counter)
    pending: list[tuple[str, str]] = field(default_factory=list)  # XML calls awaiting a result
    last_ms: int | None = None

    def warn(self, text: str) -> None:
        self.warnings.append(f"task {self.task_id}: {text}")

    def convert(self, tool: str, history_path: Path) -> ImportedSession:
        times, usages, models = self._pair()
        messages: list[JSON] = []
        for i, raw in enumerate(self.history):
            when = self._when(i, times.get(i))
            created = ms_time(when)
            if raw["role"] == "assistant":
                model = models.get(i) or self._model_at(when)
                messages.extend(self._assistant(raw, i, created, usages.get(i), model))
            else:
                messages.extend(self._user(raw, created))
        for kind, count in sorted(self.skipped.items()):
            self.warn(f"skipped {count} block(s) of type {kind!r}")
        prompt = first_prompt(messages)
        metadata: JSON = {
            "source": {"tool": tool, "version": None, "session_id": self.task_id},
            "imported_from": str(history_path.parent.resolve()),
        }
        cwd = self._cwd()
        if cwd:
            metadata["cwd"] = cwd
        files = self._files()
        if files:
            metadata["files_in_context"] = files
        used = self._models_used()
        if used:
            metadata["models"] = used
        if self.task_ms is not None:
            started: str | None = ms_time(self.task_ms)
        else:
            started = messages[0]["created_at"] if messages else None
        return ImportedSession(
            tool=tool,
            source_id=self.task_id,
            messages=messages,
            title=derive_title(prompt),
            task=prompt,
            created_at=started,
            metadata=metadata,
        )

    # timestamps, usage and models from the chat view ----------------------------------------

    def _pair(self) -> tuple[dict[int, int], dict[int, JSON], dict[int, str]]:
        """For each API message index: the time it was made, and for assistant replies the
        usage of the request that produced them and the model that answered."""
        times: dict[int, int] = {}
        usages: dict[int, JSON] = {}
        models: dict[int, str] = {}
        for i, message in enumerate(self.history):
            ts = epoch_ms(message.get("ts"))
            if ts is not None:
                times[i] = ts
            model = _model_of(message.get("modelInfo"))
            if model:
                models[i] = model
        requests = [
            (pos, entry)
            for pos, entry in enumerate(self.ui)
            if entry.get("say") == "api_req_started"
        ]
        users = [i for i, m in enumerate(self.history) if m["role"] == "user"]
        # Newer Cline numbers each request by the API message before it; a retried request
        # repeats the number: the first one was sent with the prompt, the last one answered.
        indexed = all(isinstance(e.get("conversationHistoryIndex"), int) for _, e in requests)
        first: dict[int, tuple[int, JSON]] = {}
        last: dict[int, tuple[int, JSON]] = {}
        for pos, entry in requests if indexed else []:
            first.setdefault(entry["conversationHistoryIndex"], (pos, entry))
            last[entry["conversationHistoryIndex"]] = (pos, entry)
        for k, i in enumerate(users):
            if indexed and i - 1 in first:
                sent, (pos, request) = first[i - 1][1], last[i - 1]
            elif not indexed and k < len(requests):
                pos, request = requests[k]
                sent = request
            else:
                continue
            ts = epoch_ms(sent.get("ts"))
            if ts is not None and i not in times:
                times[i] = self._typed_at(ts) if k == 0 else ts
            reply = i + 1
            if reply < len(self.history) and self.history[reply]["role"] == "assistant":
                answered = self._answered_at(pos)
                if answered is not None and reply not in times:
                    times[reply] = answered
                usage = _usage(request.get("text"))
                if usage is not None:
                    usages[reply] = usage
                model = _model_of(request.get("modelInfo"))
                if model and reply not in models:
                    models[reply] = model
        return times, usages, models

    def _typed_at(self, request_ts: int) -> int:
        """The first prompt: when the task was typed (the `task` entry), not when it was sent."""
        for entry in self.ui:
            if entry.get("say") == "task":
                ts = epoch_ms(entry.get("ts"))
                if ts is not None and ts <= request_ts:
                    return ts
                break
        return request_ts

    def _answered_at(self, request_pos: int) -> int | None:
        """The reply's time: the first thing the chat view showed after the request."""
        start = epoch_ms(self.ui[request_pos].get("ts"))
        for entry in self.ui[request_pos + 1 :]:
            kind = as_text(entry.get("say")) or as_text(entry.get("ask"))
            if kind == "api_req_started":
                break
            if kind in _REQUEST_KINDS:
                continue
            ts = epoch_ms(entry.get("ts"))
            if ts is not None and (start is None or ts >= start):
                return ts
        return start + 1 if start is not None else None

    def _when(self, i: int, ts: int | None) -> int:
        """A message's time; without one, the task id (its start, in ms) plus the index, kept
        after the message before. Either way the same files give the same times."""
        if ts is None:
            base = self.task_ms + i if self.task_ms is not None else 0
            ts = max(base, self.last_ms + 1) if self.last_ms is not None else base
            if self.task_ms is None and self.last_ms is None:
                self.warn("no timestamps and no task id; times start at 1970-01-01")
        self.last_ms = ts
        return ts

    def _model_at(self, ms: int) -> str | None:
        usage = self.metadata_file.get("model_usage")
        best: str | None = None
        for entry in usage if isinstance(usage, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("model_id"), str):
                continue
            ts = epoch_ms(entry.get("ts"))
            if ts is None or ts <= ms:
                best = entry["model_id"]
        return best

    def _models_used(self) -> list[str]:
        usage = self.metadata_file.get("model_usage")
        found: list[str] = []
        for entry in usage if isinstance(usage, list) else []:
            model = entry.get("model_id") if isinstance(entry, dict) else None
            if isinstance(model, str) and model not in found:
                found.append(model)
        return found

    def _files(self) -> list[str]:
        entries = self.metadata_file.get("files_in_context")
        found: list[str] = []
        for entry in entries if isinstance(entries, list) else []:
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str) and path not in found:
                found.append(path)
        return found

    def _cwd(self) -> str | None:
        for message in self.history:
            for block in _blocks(message):
                text = block.get("text")
                if isinstance(text, str) and "<environment_details>" in text:
                    match = _CWD.search(text)
                    if match:
                        return match.group(1)
        return None

    # messages -----------------------------------------------------------------------------

    def _assistant(
        self, raw: JSON, i: int, created: str, usage: JSON | None, model: str | None
    ) -> list[JSON]:
        parts: list[JSON] = []
        results: list[JSON] = []
        self.pending = []
        for block in _blocks(raw):
            kind = block["type"]
            if kind == "text":
                parts.extend(self._assistant_text(as_text(block.get("text")), i))
            elif kind == "thinking":
                thought = as_text(block.get("thinking"))
                if thought.strip():
                    parts.append({"type": "reasoning", "text": thought})
            elif kind == "reasoning":
                thought = as_text(block.get("text"))
                if thought.strip():
                    parts.append({"type": "reasoning", "text": thought})
            elif kind == "tool_use":
                parts.append(_tool_use(block, f"{i}_{len(parts)}"))
            elif kind in ("image", "document"):
                parts.append(_file(block, len(parts) + 1))
            elif kind == "tool_result":
                results.append(_tool_result_message(block, created))
            else:
                self.skipped[kind] += 1
        out: list[JSON] = []
        if parts:
            message: JSON = {"role": "assistant", "parts": parts, "created_at": created}
            if model:
                message["model"] = model
            if usage is not None:
                message["usage"] = usage
            out.append(message)
        return out + results

    def _assistant_text(self, text: str, i: int) -> list[JSON]:
        """Text, with `<thinking>` blocks as reasoning and XML tool calls as tool_call parts."""
        parts: list[JSON] = []
        rest = text
        while rest:
            match = _XML_CALL.search(rest)
            close = rest.find(f"</{match.group(1)}>", match.end()) if match else -1
            if match is None or close < 0:
                parts.extend(_prose(rest))
                break
            parts.extend(_prose(rest[: match.start()]))
            name = match.group(1)
            call_id = f"cline_{i}_{len(self.pending)}"
            arguments = _params(rest[match.end() : close])
            parts.append({"type": "tool_call", "id": call_id, "name": name, "input": arguments})
            self.pending.append((name, call_id))
            rest = rest[close + len(name) + 3 :]
        return parts

    def _user(self, raw: JSON, created: str) -> list[JSON]:
        tools: list[JSON] = []
        own: list[JSON] = []  # what the user typed or attached
        added: list[JSON] = []  # what the extension added by itself
        current: JSON | None = None  # the tool message an XML result header opened
        for block in _blocks(raw):
            kind = block["type"]
            if kind == "text":
                text = as_text(block.get("text"))
                header = _RESULT_HEADER.match(text)
                call_id = self._claim(header.group(1)) if header else None
                skipped = _NOT_RUN.match(text)
                not_run = self._claim(skipped.group(1) or skipped.group(2)) if skipped else None
                if header and call_id:
                    current = _tool_message(call_id, created)
                    tools.append(current)
                    first = header.group(2).lstrip("\n")
                    if first.strip():
                        _append_output(current, first)
                elif not_run:  # a second call in one reply, which Cline refuses to run
                    current = None
                    tools.append(_tool_message(not_run, created))
                    _append_output(tools[-1], text)
                    tools[-1]["parts"][0]["is_error"] = True
                elif text.lstrip().startswith(_SYNTHETIC):
                    current = None
                    note, typed = _split_resumption(text)
                    added.append({"type": "text", "text": note, "synthetic": True})
                    own.extend({"type": "text", "text": t} for t in typed)
                elif current is not None:
                    _append_output(current, text)
                elif text.strip():
                    own.append({"type": "text", "text": _unwrap(text)})
            elif kind in ("image", "document"):
                target = current["parts"] if current is not None else own
                target.append(_file(block, len(target) + 1))
            elif kind == "tool_result":
                current = None
                tools.append(_tool_result_message(block, created))
            else:
                self.skipped[kind] += 1
        for message in tools:
            result = message["parts"][0]
            if isinstance(result["output"], str):
                result["is_error"] = result.get("is_error") or result["output"].startswith(_ERRORS)
        out = list(tools)
        if own:
            out.append({"role": "user", "parts": own + added, "created_at": created})
        elif added and tools:  # context sent along with the results: keep it with them
            tools[-1]["parts"].extend(added)
        elif added:
            out.append({"role": "user", "parts": added, "created_at": created})
        return out

    def _claim(self, name: str) -> str | None:
        """The id of the first call to `name` still waiting for its result."""
        for k, (pending, call_id) in enumerate(self.pending):
            if pending == name:
                del self.pending[k]
                return call_id
        return None


def _blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _prose(text: str) -> list[JSON]:
    """Assistant text outside tool calls: `<thinking>` blocks become reasoning parts."""
    parts: list[JSON] = []
    at = 0
    for match in _THINKING.finditer(text):
        before = text[at : match.start()].strip()
        if before:
            parts.append({"type": "text", "text": before})
        if match.group(1).strip():
            parts.append({"type": "reasoning", "text": match.group(1)})
        at = match.end()
    tail = text[at:].strip()
    if tail:
        parts.append({"type": "text", "text": tail})
    return parts


def _params(body: str) -> JSON:
    """`<path>a.py</path><content>…</content>` as {"path": "a.py", "content": "…"}, the way
    Cline reads them: values trimmed, and a content or diff closed at its last closing tag."""
    params: JSON = {}
    at = 0
    while True:
        match = _PARAM.search(body, at)
        if match is None:
            break
        name = match.group(1)
        closing = f"</{name}>"
        end = body.rfind(closing) if name in _RAW_PARAMS else body.find(closing, match.end())
        if end < match.end():
            break
        value = body[match.end() : end]
        if name in _RAW_PARAMS:
            value = value.removeprefix("\n").removesuffix("\n")
        else:
            value = value.strip()
        params[name] = value
        at = end + len(closing)
    return params


def _tool_use(block: JSON, fallback: str) -> JSON:
    call_id = block.get("id")
    arguments = block.get("input")
    return {
        "type": "tool_call",
        "id": call_id if isinstance(call_id, str) and call_id else f"call_{fallback}",
        "name": as_text(block.get("name")) or "tool",
        "input": arguments if arguments is not None else {},
    }


def _tool_message(call_id: str, created: str) -> JSON:
    result: JSON = {"type": "tool_result", "tool_call_id": call_id, "output": ""}
    return {"role": "tool", "parts": [result], "created_at": created}


def _append_output(message: JSON, text: str) -> None:
    result = message["parts"][0]
    result["output"] = f"{result['output']}\n{text}" if result["output"] else text


def _tool_result_message(block: JSON, created: str) -> JSON:
    """A native tool_result block: its text as the output, its images as file parts."""
    message = _tool_message(as_text(block.get("tool_use_id")) or "unknown", created)
    content = block.get("content")
    if isinstance(content, str):
        message["parts"][0]["output"] = content
    elif isinstance(content, list):
        for item in content:
            if not isinstance(item, dict):
                continue
            if item.get("type") == "text":
                _append_output(message, as_text(item.get("text")))
            elif item.get("type") in ("image", "document"):
                message["parts"].append(_file(item, len(message["parts"])))
    if block.get("is_error") is True:
        message["parts"][0]["is_error"] = True
    return message


def _file(block: JSON, n: int) -> JSON:
    """An image or document block: inline base64 data, or the URL it points at."""
    raw = block.get("source")
    source: JSON = raw if isinstance(raw, dict) else {}
    mime = as_text(source.get("media_type"))
    extension = mime.rsplit("/", 1)[-1] if "/" in mime else "bin"
    out: JSON = {"type": "file", "name": f"{block['type']}-{n}.{extension}"}
    if mime:
        out["mime"] = mime
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        out["data"] = source["data"]
        out["encoding"] = "base64"
    elif isinstance(source.get("url"), str):
        out["url"] = source["url"]
    elif source.get("type") == "text" and isinstance(source.get("data"), str):
        out["data"] = source["data"]
        out["encoding"] = "utf-8"
    return out


def _split_resumption(text: str) -> tuple[str, list[str]]:
    """A resumption note holds what the user typed when resuming, in `<user_message>` tags:
    the note without it, and the typed text."""
    typed = [m.group(1) for m in _USER_MESSAGE.finditer(text) if m.group(1).strip()]
    if not typed:
        return text, []
    note = _USER_MESSAGE.sub("", text).replace("New instructions for task continuation:", "")
    return note.rstrip(), typed


def _unwrap(text: str) -> str:
    """`<task>\\n…\\n</task>` (and feedback, answer, user_message) as what the user typed."""
    match = _WRAPPED.match(text)
    return match.group(2) if match and match.group(2).strip() else text


def _usage(text: Any) -> JSON | None:
    """tokensIn, tokensOut, cacheReads, cacheWrites and cost of an api_req_started entry."""
    if not isinstance(text, str):
        return None
    try:
        info = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(info, dict):
        return None
    usage: JSON = {}
    for source, target in (
        ("tokensIn", "input_tokens"),
        ("tokensOut", "output_tokens"),
        ("cacheReads", "cache_read_tokens"),
        ("cacheWrites", "cache_write_tokens"),
    ):
        value = info.get(source)
        if isinstance(value, int | float) and finite(value):
            usage[target] = int(value)
    cost = info.get("cost")
    if isinstance(cost, int | float) and finite(cost):
        usage["cost_usd"] = float(cost)
    return bounded_usage(usage) if usage else None


def _model_of(info: Any) -> str | None:
    if isinstance(info, dict) and isinstance(info.get("modelId"), str) and info["modelId"]:
        return str(info["modelId"])
    return None
