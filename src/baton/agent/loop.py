"""The turn loop: the user's prompt, the model's replies and tool calls, each tool's result —
every message appended to the session as it happens, so a crash loses nothing already said.

The provider's messages are always rebuilt from the stored chain. The rebuild repairs what a
crash left (a tool call without a result gets an "interrupted" result) and starts from the
latest compaction summary, so a long session fits the model's context while its history stays
complete in the store.

A streamed answer is stored as it arrives, so what was shown survives even a kill -9 of the
agent: about every FLUSH_EVERY seconds the text not yet stored is appended as an assistant
message whose text part is marked `"partial": true` (the answer continues in the next
message). When the answer is complete, its last message holds the rest of the text, the
reasoning, the tool calls and the usage. Stored messages are never changed — the chain stays
immutable and verifiable — and readers join a run of partial messages with the message that
follows it (`join_partials`; `rebuild` does it for the model's context). An answer that was cut
short ends with its last partial chunk or, after Ctrl-C, with a message holding the rest and
the usage: the provider's, or an estimate marked `"estimated": true`."""

from __future__ import annotations

import json
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from baton.agent.approvals import preview
from baton.agent.provider import Cancel, Interrupted, ModelError, Provider, Reply, ToolCall
from baton.agent.setup import note as setup_note
from baton.agent.tools import CONFIRM, Outcome, Tools
from baton.core.errors import Conflict
from baton.core.models import JSON, Message, kept_before
from baton.core.partials import join_partials
from baton.sandbox import Stopped

if TYPE_CHECKING:
    from baton.contract import Baton

INTERRUPTED_TOOL = (
    "interrupted: this tool call did not finish (the session stopped before its result was "
    "recorded); check the state before trying again"
)
INTERRUPTED_BY_USER = "interrupted by the user before this tool call finished"
NOT_RUN = "not run: the user interrupted the turn"
INTERRUPTED_TURN = "[interrupted by the user]"
REFUSED = "the user refused this action; do not retry it unless they ask for it"
SUMMARY_PREFIX = "Summary of the conversation so far (earlier messages were compacted):\n\n"
COMPACT_REQUEST = (
    "The conversation is about to outgrow your context window. Write a summary that lets you "
    "continue the work without the earlier messages: the user's requests (quote the latest "
    "one exactly), what was decided and why, the files read and changed, commands run and "
    "their outcome, the current state, and the next steps. Answer with the summary only."
)
COMPACT_AT = 0.75  # share of the context window that triggers a compaction
FILES_KEPT = 500  # files_read / files_written entries kept in the metadata
FLUSH_EVERY = 1.0  # seconds between appends of a streamed answer's text


def system_prompt(root: Path) -> str:
    return (
        "You are baton, a coding agent working in the repository at "
        f"{root} ({platform.system()}). Every path you give a tool is relative to that root; "
        "paths outside it are refused. Look at the code (list_files, search_files, read_file) "
        "before changing it; prefer edit_file for small changes and write_file for new files; "
        "run the tests with run_command. The user may refuse a change or a command: respect "
        "it. Keep answers short and in Markdown. "
        f"Today is {date.today().isoformat()}."
    )


class Display(Protocol):
    """What the loop tells the person (or script) watching it."""

    def text(self, delta: str) -> None: ...
    def reasoning(self, delta: str) -> None: ...
    def end_text(self) -> None: ...
    def tool_call(self, name: str, args: JSON) -> None: ...
    def tool_result(self, name: str, outcome: Outcome) -> None: ...
    def notice(self, text: str) -> None: ...


class Quiet:
    """A Display that shows nothing."""

    def text(self, delta: str) -> None:
        pass

    def reasoning(self, delta: str) -> None:
        pass

    def end_text(self) -> None:
        pass

    def tool_call(self, name: str, args: JSON) -> None:
        pass

    def tool_result(self, name: str, outcome: Outcome) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


# (tool, arguments, one-line description) -> allow? (a string: refused, and what the model is told)
Confirm = Callable[[str, JSON, str], bool | str]


@dataclass
class TurnResult:
    answer: str = ""
    usage: JSON = field(
        default_factory=lambda: {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.0,
        }
    )
    steps: int = 0  # model calls
    interrupted: bool = False
    error: str | None = None
    read: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    compacted: int = 0
    commands: int = 0  # run_command calls that ran (they may have changed files)

    def add(self, usage: JSON | None) -> None:
        for key, value in (usage or {}).items():
            if key in self.usage and isinstance(value, int | float):
                self.usage[key] = round(self.usage[key] + value, 9)


# ---------------------------------------------------------------------------------------------
# From the stored chain to the provider's messages


def is_summary(message: Message) -> bool:
    return any(p.get("type") == "text" and p.get("compaction") for p in message.parts)


def _result_text(part: JSON) -> str:
    """What the model is shown of a tool result: the capped copy when there is one."""
    if isinstance(part.get("model_output"), str):
        return str(part["model_output"])
    output = part.get("output", part.get("preview", ""))
    if part.get("type") == "blob_ref":
        output = f"{part.get('preview', '')}\n[… {part.get('size')} bytes in all]"
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)


def _text_of(part: JSON) -> str | None:
    if kept_before(part) is not None:  # a file's content before a turn wrote it, for /undo
        return None
    if isinstance(part.get("setup"), dict):  # a setup command's record: a line, not its log
        return setup_note(part)
    kind = part.get("type")
    if kind == "text":
        return str(part.get("text", ""))
    if kind == "file":
        name = part.get("path", part.get("name", ""))
        if isinstance(part.get("data"), str):  # attached with @path: the model reads it
            return f'<file path="{name}">\n{part["data"]}\n</file>'
        return f"[file {name}]"
    if kind == "blob_ref" and part.get("of") == "text":
        return f"{part.get('preview', '')}\n[… {part.get('size')} bytes in all]"
    return None


def _is_result(part: JSON) -> bool:
    return part.get("type") == "tool_result" or (
        part.get("type") == "blob_ref" and part.get("of") == "tool_result"
    )


def rebuild(chain: list[Message], system: str) -> list[JSON]:
    """The chat-completions messages for `chain`: from the latest compaction summary on,
    every tool call answered (an unanswered one gets an "interrupted" result), tool results
    that answer nothing turned into text, empty messages left out."""
    chain = join_partials(chain)
    out: list[JSON] = [{"role": "system", "content": system}]
    start = 0
    for i in range(len(chain) - 1, -1, -1):
        if is_summary(chain[i]):
            text = "\n".join(t for p in chain[i].parts if (t := _text_of(p)))
            out.append({"role": "user", "content": text})
            start = i + 1
            break
    pending: dict[str, str] = {}

    def flush() -> None:
        for call_id in list(pending):
            out.append({"role": "tool", "tool_call_id": call_id, "content": INTERRUPTED_TOOL})
        pending.clear()

    for message in chain[start:]:
        notes: list[str] = []
        for part in message.parts:
            if not _is_result(part):
                continue
            call_id = str(part.get("tool_call_id", ""))
            if call_id in pending:
                pending.pop(call_id)
                out.append({"role": "tool", "tool_call_id": call_id, "content": _result_text(part)})
            else:
                notes.append(f"[result of an earlier tool call]\n{_result_text(part)}")
        texts = [t for p in message.parts if (t := _text_of(p)) is not None and t != ""]
        calls = [p for p in message.parts if p.get("type") == "tool_call"]
        if not texts and not calls and not notes:
            continue
        flush()
        if message.role == "assistant":
            entry: JSON = {"role": "assistant", "content": "\n".join(texts) or None}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": str(c["id"]),
                        "type": "function",
                        "function": {"name": str(c["name"]), "arguments": _arguments(c)},
                    }
                    for c in calls
                ]
                pending.update((str(c["id"]), str(c["name"])) for c in calls)
            if notes:
                out.append({"role": "user", "content": "\n\n".join(notes)})
            out.append(entry)
        else:
            prefix = "" if message.role == "user" else f"[{message.role} note] "
            content = "\n\n".join([*notes, *texts])
            out.append({"role": "user", "content": prefix + content})
    flush()
    return out


def _arguments(call: JSON) -> str:
    if isinstance(call.get("arguments"), str):
        return str(call["arguments"])  # what the model wrote, when it was not valid JSON
    return json.dumps(call.get("input", {}), ensure_ascii=False)


def dangling(chain: list[Message]) -> list[JSON]:
    """The tool calls at the end of the chain that have no result (left by a crash)."""
    answered: set[str] = set()
    for message in reversed(chain):
        calls = [p for p in message.parts if p.get("type") == "tool_call"]
        answered.update(str(p.get("tool_call_id")) for p in message.parts if _is_result(p))
        if calls:
            return [c for c in calls if str(c["id"]) not in answered]
        if message.role != "tool" and any(_text_of(p) for p in message.parts):
            return []
    return []


def estimate(messages: list[JSON]) -> int:
    """Tokens, roughly: four characters each."""
    return len(json.dumps(messages, ensure_ascii=False)) // 4


def fit(messages: list[JSON], budget: int) -> list[JSON]:
    """The oldest messages dropped (after the system prompt) until the rest fit, starting at a
    user message so no tool result is left without its call."""
    body = messages[1:]
    while len(body) > 1 and estimate([messages[0], *body]) > budget:
        body = body[1:]
        while len(body) > 1 and body[0].get("role") != "user":
            body = body[1:]
    return [messages[0], *body]


def _text(text: str) -> JSON:
    return {"type": "text", "text": text}


def written_in(chain: list[Message]) -> list[str]:
    """The files the tool results of `chain` say they wrote, in order, each once."""
    out: list[str] = []
    for message in chain:
        for part in message.parts:
            meta = part.get("metadata") if _is_result(part) else None
            files = meta.get("files_written") if isinstance(meta, dict) else None
            for name in files if isinstance(files, list) else []:
                if str(name) not in out:
                    out.append(str(name))
    return out


@dataclass
class _Draft:
    """The answer being streamed: its text, and how much of it is stored already."""

    chunks: list[str] = field(default_factory=list)
    stored: int = 0  # characters appended as partial messages
    at: float = 0.0  # when text was last appended, or first arrived (time.monotonic())
    asking: bool = False  # a model call is under way
    request: list[JSON] = field(default_factory=list)  # what it was asked, for an estimate

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def rest(self) -> str:
        return self.text[self.stored :]

    def start(self, request: list[JSON]) -> None:
        self.chunks.clear()
        self.stored = 0
        self.at = 0.0
        self.asking = True
        self.request = request


def _merge(old: Any, new: list[str]) -> list[str]:
    items = [str(x) for x in old] if isinstance(old, list) else []
    for item in new:
        if item not in items:
            items.append(item)
    return items[-FILES_KEPT:]


# ---------------------------------------------------------------------------------------------
# The loop


class Moved(Conflict):
    """Another writer recorded in the session while this agent worked on it: one chain, so
    the turn stops rather than interleave with it."""

    def __init__(self, session_id: str, added: int, current_head: str | None) -> None:
        super().__init__(
            f"session {session_id} moved on elsewhere while this turn ran ({added} message(s) "
            "recorded by another writer: a server run or another terminal); this turn stopped "
            "so the two do not interleave. The new messages are loaded: send your prompt again",
            current_head,
        )


class Agent:
    """One session's agent. `turn(prompt)` runs the model and its tools until it answers."""

    def __init__(
        self,
        service: Baton,
        owner: str,
        session_id: str,
        provider: Provider,
        tools: Tools,
        *,
        display: Display | None = None,
        confirm: Confirm | None = None,
        mode: str = "chat",
        snapshot: Callable[[], JSON | None] | None = None,
        system: str | None = None,
        max_steps: int = 100,
        stream: bool = True,
    ) -> None:
        self.service = service
        self.owner = owner
        self.session_id = session_id
        self.provider = provider
        self.tools = tools
        self.display: Display = display or Quiet()
        self.confirm = confirm  # None: every action is allowed (--yes)
        self.mode = mode
        self.snapshot = snapshot
        self.system = system or system_prompt(tools.root)
        self.max_steps = max_steps
        self.stream = stream
        self.chain: list[Message] = []
        self._context = 0  # tokens of the last request and its reply, as the endpoint counted

    @property
    def approval_mode(self) -> str | None:
        """The approval mode this turn runs in (ask, auto-edit, plan, yolo), as its prompt
        records it; None when the caller's `confirm` has no mode."""
        mode = getattr(self.confirm, "mode", None)
        return str(mode) if mode else None

    # the store
    def load(self) -> list[Message]:
        self.chain = list(self.service.messages(self.owner, self.session_id))
        return self.chain

    def record(self, message: JSON, cancel: Cancel | None = None) -> None:
        """Append one message to the session now (a write Ctrl-C does not cut in two), after
        the last message this agent knows: when another writer (a server run, another
        terminal) recorded something meanwhile, nothing is appended and `Moved` says so."""
        guard = cancel or Cancel()
        with guard.critical():
            expected = self.chain[-1].id if self.chain else None
            try:
                result = self.service.append(
                    self.owner,
                    self.session_id,
                    [message],
                    expected_head=expected,
                    idempotency_key=str(uuid.uuid4()),
                )
            except Conflict as exc:
                known = len(self.chain)
                self.load()
                raise Moved(self.session_id, len(self.chain) - known, exc.current_head) from None
            if result.appended:
                self.chain.extend(result.appended)
            else:
                self.load()

    def messages(self) -> list[JSON]:
        return rebuild(self.chain, self.system)

    # a turn
    def turn(
        self, prompt: str, cancel: Cancel | None = None, attachments: list[JSON] | None = None
    ) -> TurnResult:
        cancel = cancel or Cancel()
        result = TurnResult()
        draft = _Draft()
        state: JSON = {"assistant": None, "done": set(), "running": None, "prompt": False}
        first = _text(prompt)
        if self.approval_mode is not None:  # the turn's approval mode, recorded with it
            first["mode"] = self.approval_mode
        user = {"role": "user", "parts": [first, *(attachments or [])]}
        try:
            self.load()
            self.repair(cancel)
            self._compact_if_needed(result, cancel)
            self.record(user, cancel)
            state["prompt"] = True
            for _ in range(self.max_steps):
                cancel.check()
                if result.steps:
                    self._compact_if_needed(result, cancel)
                state.update(assistant=None, done=set(), running=None, output=None)
                reply = self._ask(draft, cancel)
                result.steps += 1
                result.add(reply.usage)
                self._record_reply(reply, cancel, draft.stored)
                draft.asking = False
                state["assistant"] = reply
                self.display.end_text()
                cancel.check()
                if not reply.tool_calls:
                    result.answer = reply.text
                    break
                for call in reply.tool_calls:
                    cancel.check()
                    state["running"] = call.id
                    outcome = self._call(call, cancel)
                    refused = (outcome.metadata or {}).get("refused")
                    if call.name == "run_command" and not refused:
                        result.commands += 1
                    result.read = _merge(result.read, outcome.read)
                    result.written = _merge(result.written, outcome.written)
                    self._record_result(call, outcome, cancel)
                    state["done"].add(call.id)
                    state["running"] = None
                    self.display.tool_result(call.name, outcome)
            else:
                self.display.notice(f"stopped after {self.max_steps} model calls in one turn")
        except (Interrupted, KeyboardInterrupt) as exc:
            result.interrupted = True
            if state["running"] is not None:
                result.commands += 1  # a tool was cut short: what it changed is unknown
                if isinstance(exc, Stopped):
                    state["output"] = exc.output
            with cancel.critical():
                if not state["prompt"]:
                    self.record(user, cancel)
                self._record_interruption(draft, state, result, cancel)
            self.display.notice("interrupted: the turn was stopped and recorded as interrupted")
        except ModelError as exc:
            result.error = exc.message
            with cancel.critical():
                if not state["prompt"]:
                    self.record(user, cancel)
                if draft.asking and draft.chunks:
                    self._record_cut(draft, result, cancel)
            raise
        finally:
            with cancel.critical():
                self._after_turn(result)
            cancel.clear()
        return result

    def repair(self, cancel: Cancel | None = None) -> int:
        """Give each tool call a crash left without a result an "interrupted" result."""
        missing = dangling(self.chain)
        for call in missing:
            self.record(self._result_message(call["id"], call["name"], INTERRUPTED_TOOL), cancel)
        return len(missing)

    def _ask(self, draft: _Draft, cancel: Cancel) -> Reply:
        request = self.messages()
        draft.start(request)

        def on_text(delta: str) -> None:
            draft.chunks.append(delta)
            self.display.text(delta)
            if not draft.at:
                draft.at = time.monotonic()
            elif self.stream and time.monotonic() - draft.at >= FLUSH_EVERY:
                self._flush(draft, cancel)

        self._busy("waiting for the model")
        reply = self.provider.complete(
            request,
            self.tools.specs,
            stream=self.stream,
            on_text=on_text,
            on_reasoning=self.display.reasoning,
            cancel=cancel,
        )
        usage = reply.usage or {}
        self._context = sum(
            int(usage.get(k) or 0) for k in ("input_tokens", "cache_read_tokens", "output_tokens")
        )
        return reply

    def _flush(self, draft: _Draft, cancel: Cancel) -> None:
        """Append the streamed text not stored yet, as a partial chunk of the answer."""
        rest = draft.rest
        draft.at = time.monotonic()
        if not rest:
            return
        part: JSON = {**_text(rest), "partial": True}
        self.record({"role": "assistant", "parts": [part], "model": self.provider.model}, cancel)
        draft.stored += len(rest)

    def _record_reply(self, reply: Reply, cancel: Cancel, stored: int = 0) -> None:
        """The answer's last message: the text after the `stored` characters kept as partial
        chunks, the reasoning, the tool calls and the usage."""
        parts: list[JSON] = []
        if reply.reasoning:
            parts.append({"type": "reasoning", "text": reply.reasoning})
        if reply.text[stored:]:
            parts.append(_text(reply.text[stored:]))
        for call in reply.tool_calls:
            args, problem = call.parsed()
            part: JSON = {"type": "tool_call", "id": call.id, "name": call.name, "input": args}
            if problem is not None:
                part["arguments"] = call.arguments
            parts.append(part)
        if not parts:
            parts.append(_text(""))
        message: JSON = {"role": "assistant", "parts": parts, "model": reply.model}
        if reply.usage is not None:
            message["usage"] = reply.usage
        self.record(message, cancel)

    def _call(self, call: ToolCall, cancel: Cancel) -> Outcome:
        args, problem = call.parsed()
        self.display.tool_call(call.name, args)
        if problem is not None:
            return Outcome(problem, True)
        if call.name in CONFIRM and self.confirm is not None:
            allowed = self.confirm(call.name, args, self.tools.describe(call.name, args))
            cancel.check()
            if allowed is not True:
                told = allowed if isinstance(allowed, str) and allowed else REFUSED
                return Outcome(told, True, metadata={"refused": True})
        diff = preview(self.tools, call.name, args)
        if call.name == "run_command":
            command = " ".join(str(args.get("command", "")).split())
            self._busy(f"running {command[:60] + '…' if len(command) > 60 else command}")
        outcome = self.tools.run(call.name, args)
        if diff and not outcome.is_error:  # the change, kept in the transcript
            outcome.metadata = {**(outcome.metadata or {}), "diff": diff}
        return outcome

    def _busy(self, label: str) -> None:
        """Tell a display that can show it (a spinner) that the agent waits for `label`; its
        next output ends it."""
        busy = getattr(self.display, "busy", None)
        if callable(busy):
            busy(label)

    def _result_message(self, call_id: str, name: str, output: str, error: bool = True) -> JSON:
        part: JSON = {"type": "tool_result", "tool_call_id": call_id, "name": name}
        part["output"] = output
        if error:
            part["is_error"] = True
        return {"role": "tool", "parts": [part]}

    def _record_result(self, call: ToolCall, outcome: Outcome, cancel: Cancel) -> None:
        message = self._result_message(call.id, call.name, outcome.output, outcome.is_error)
        if outcome.model_output is not None:
            message["parts"][0]["model_output"] = outcome.model_output
        metadata = dict(outcome.metadata or {})
        if outcome.written:
            metadata["files_written"] = outcome.written
        if metadata:
            message["parts"][0]["metadata"] = metadata
        message["parts"].extend(outcome.parts)  # e.g. a written file's content before (/undo)
        self.record(message, cancel)

    def _record_cut(self, draft: _Draft, result: TurnResult, cancel: Cancel) -> None:
        """The end of an answer cut short: the text not stored yet, with the usage estimated
        (the provider reports it only at the end of a stream)."""
        text = draft.rest
        usage: JSON = {
            "input_tokens": estimate(draft.request) + estimate(self.tools.specs),
            "output_tokens": (len(draft.text) + 3) // 4,
            "estimated": True,
        }
        cost = self.provider.cost(usage)
        if cost is not None:
            usage["cost_usd"] = cost
        result.add(usage)
        message: JSON = {"role": "assistant", "parts": [_text(text)], "usage": usage}
        self.record({**message, "model": self.provider.model}, cancel)
        draft.asking = False

    def _record_interruption(
        self, draft: _Draft, state: JSON, result: TurnResult, cancel: Cancel
    ) -> None:
        with cancel.critical():
            reply = state["assistant"]
            if reply is None and draft.asking:
                self._record_cut(draft, result, cancel)
            if reply is not None:
                for call in reply.tool_calls:
                    if call.id in state["done"]:
                        continue
                    text = NOT_RUN
                    if call.id == state["running"]:
                        output = str(state.get("output") or "").rstrip("\n")
                        text = f"{output}\n{INTERRUPTED_BY_USER}" if output else INTERRUPTED_BY_USER
                    self.record(self._result_message(call.id, call.name, text), cancel)
            self.record({"role": "user", "parts": [_text(INTERRUPTED_TURN)]}, cancel)

    # compaction
    def compact(self, cancel: Cancel | None = None) -> TurnResult:
        """Compact now (`/compact`): the conversation so far becomes a recorded summary.
        `compacted` is 0 when there is nothing to compact."""
        cancel = cancel or Cancel()
        result = TurnResult()
        self.load()
        self.repair(cancel)
        try:
            self._compact_if_needed(result, cancel, force=True)
        finally:
            cancel.clear()
        return result

    def _compact_if_needed(self, result: TurnResult, cancel: Cancel, force: bool = False) -> None:
        window = self.provider.config.context_window
        messages = self.messages()
        if len(messages) <= 3:  # a summary (or nothing) and at most one message
            return
        used = max(estimate(messages) + estimate(self.tools.specs), self._context)
        if used <= window * COMPACT_AT and not force:
            return
        self.display.notice(f"compacting: about {used} tokens of a {window}-token context")
        request = fit([*messages, {"role": "user", "content": COMPACT_REQUEST}], window)
        reply = self.provider.complete(request, None, stream=False, cancel=cancel)
        result.add(reply.usage)
        result.compacted += 1
        summary: JSON = {
            "role": "system",
            "parts": [{"type": "text", "text": SUMMARY_PREFIX + reply.text, "compaction": True}],
            "model": reply.model,
        }
        if reply.usage is not None:
            summary["usage"] = reply.usage
        self.record(summary, cancel)
        self._context = 0

    # after the turn: metadata and the state of the code
    def _after_turn(self, result: TurnResult) -> None:
        try:
            session = self.service.get(self.owner, self.session_id)
            meta = dict(session.metadata or {})
            wanted = dict(meta)
            wanted.update(agent="baton", mode=self.mode, model=self.provider.model)
            wanted["files_read"] = _merge(meta.get("files_read"), result.read)
            written = [*written_in(self.chain), *result.written]  # a killed turn's too
            wanted["files_written"] = _merge(meta.get("files_written"), written)
            if wanted != meta:
                self.service.update(self.owner, self.session_id, metadata=wanted)
            if (result.written or result.commands) and self.snapshot is not None:
                git = self.snapshot()
                if git is not None:
                    self.service.snapshot(self.owner, self.session_id, git)
        except Exception as exc:  # the turn is recorded; a failed extra must not hide it
            self.display.notice(f"could not update the session's metadata or git state: {exc}")
