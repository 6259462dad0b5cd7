"""A fake model: a local HTTP server that speaks the OpenAI chat-completions protocol
(streamed SSE and plain JSON, tool calls, usage, error statuses, 429 with Retry-After),
scripted per test and driven by the real `openai` client. No hosted model is ever called."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from baton import sandbox
from baton.agent import tools
from baton.scanning import SecretScanner
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore
from tests.test_gitstate import git_env, git_repo, origin  # noqa: F401

MODEL = "fake-model"
PRICES = {MODEL: {"input": 1.0, "output": 2.0, "cache_read": 0.5}}


@dataclass
class Step:
    """One scripted answer: a reply (text and/or tool calls, with usage) or an error."""

    text: str = ""
    tool_calls: list[tuple[str, str, Any]] = field(default_factory=list)  # (id, name, args)
    usage: tuple[int, int, int] | None = (100, 20, 0)  # prompt, completion, cached
    status: int = 200
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds between streamed chunks
    chunk: int = 4  # characters per streamed text chunk
    reasoning: str = ""


def call(call_id: str, name: str, **args: Any) -> tuple[str, str, Any]:
    return (call_id, name, args)


class FakeModel:
    def __init__(self) -> None:
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.responder: Callable[[dict[str, Any]], Step] | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                    step = fake.script.popleft() if fake.script else None
                if step is None and fake.responder is not None:
                    step = fake.responder(body)
                if step is None:
                    step = Step(status=500, error="the fake model has no scripted answer left")
                problem = validate(body.get("messages"))
                if problem is not None:  # what OpenAI refuses, refused here too
                    step = Step(status=400, error=problem)
                if not self.path.endswith("/chat/completions"):
                    step = Step(status=404, error=f"no route {self.path}")
                if step.status != 200:
                    self._json(
                        step.status,
                        {"error": {"message": step.error, "type": "error", "code": step.status}},
                        step.headers,
                    )
                elif body.get("stream"):
                    self._stream(body, step)
                else:
                    self._json(200, completion(body, step), step.headers)

            def _json(self, status: int, value: Any, headers: dict[str, str]) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], step: Step) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for chunk in chunks(body, step):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if step.delay:
                            time.sleep(step.delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def add(self, *steps: Step) -> FakeModel:
        self.script.extend(steps)
        return self

    def reply(self, text: str = "", *calls: tuple[str, str, Any], **kw: Any) -> FakeModel:
        return self.add(Step(text=text, tool_calls=list(calls), **kw))

    def fail(self, status: int, message: str = "", **headers: str) -> FakeModel:
        return self.add(Step(status=status, error=message or f"error {status}", headers=headers))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def validate(messages: Any) -> str | None:
    """The rules of the chat-completions API that a rebuilt conversation can break."""
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    f"Invalid parameter: messages[{i}] with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'."
                )
            pending.discard(message["tool_call_id"])
            if not isinstance(message.get("content"), str):
                return f"messages[{i}].content must be a string"
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}"
            )
        if role not in ("system", "user", "assistant"):
            return f"messages[{i}].role {role!r} is not valid"
        if role == "assistant":
            pending.update(c["id"] for c in message.get("tool_calls") or [])
            if message.get("content") is None and not message.get("tool_calls"):
                return f"messages[{i}]: an assistant message needs content or tool_calls"
        elif not isinstance(message.get("content"), str):
            return f"messages[{i}].content must be a string"
    if pending:
        return f"tool calls {sorted(pending)} have no tool message answering them"
    return None


def _usage(step: Step) -> dict[str, Any] | None:
    if step.usage is None:
        return None
    prompt, completion_tokens, cached = step.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _calls(step: Step) -> list[dict[str, Any]]:
    return [
        {"id": cid, "type": "function", "function": {"name": name, "arguments": _args(args)}}
        for cid, name, args in step.tool_calls
    ]


def _args(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args)


def completion(body: dict[str, Any], step: Step) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
    if step.tool_calls:
        message["tool_calls"] = _calls(step)
    if step.reasoning:
        message["reasoning_content"] = step.reasoning
    out: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", MODEL),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if step.tool_calls else "stop",
            }
        ],
    }
    if step.usage is not None:
        out["usage"] = _usage(step)
    return out


def chunks(body: dict[str, Any], step: Step) -> Iterator[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model", MODEL),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""})
    for i in range(0, len(step.reasoning), step.chunk):
        yield chunk({"reasoning_content": step.reasoning[i : i + step.chunk]})
    for i in range(0, len(step.text), step.chunk):
        yield chunk({"content": step.text[i : i + step.chunk]})
    for index, (cid, name, args) in enumerate(step.tool_calls):
        start = {"index": index, "id": cid, "type": "function"}
        yield chunk({"tool_calls": [{**start, "function": {"name": name, "arguments": ""}}]})
        text = _args(args)
        for i in range(0, len(text), 7):
            piece = {"index": index, "function": {"arguments": text[i : i + 7]}}
            yield chunk({"tool_calls": [piece]})
    yield chunk({}, "tool_calls" if step.tool_calls else "stop")
    if (body.get("stream_options") or {}).get("include_usage") and step.usage is not None:
        yield {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body.get("model", MODEL),
            "choices": [],
            "usage": _usage(step),
        }


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    fake = FakeModel()
    yield fake
    fake.close()


def model_env(fake: FakeModel, **extra: str) -> dict[str, str]:
    """The environment that points baton at the fake model."""
    return {
        "BATON_MODEL": MODEL,
        "BATON_BASE_URL": fake.url,
        "BATON_API_KEY": "test-key",
        "BATON_PRICES": json.dumps(PRICES),
        "BATON_RETRY_DELAY": "0.01",
        **extra,
    }


MODEL_VARS = (
    "BATON_MODEL",
    "BATON_BASE_URL",
    "BATON_API_KEY",
    "OPENAI_API_KEY",
    "BATON_PRICES",
    "BATON_CONTEXT_WINDOW",
    "BATON_RETRIES",
    "BATON_RETRY_DELAY",
    "BATON_RETRY_MAX_WAIT",
    "BATON_COMMAND_TIMEOUT",
    "BATON_SANDBOX",
    "BATON_NETWORK",
    "BATON_SANDBOX_LIMITS",
)


@pytest.fixture(autouse=True)
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No model settings leak in from the machine. Commands run in the sandbox; on a laptop
    without a usable bubblewrap they run unconfined instead (in CI the sandbox must work,
    and tests/agent/test_sandbox.py checks it)."""
    for name in MODEL_VARS:
        monkeypatch.delenv(name, raising=False)
    try:
        sandbox.check()
    except sandbox.SandboxUnavailable:
        if not os.environ.get("CI"):
            monkeypatch.setenv("BATON_SANDBOX", "off")
            monkeypatch.setattr(tools, "Policy", sandbox.Policy.unconfined)


@pytest.fixture
def model_settings(fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    for name, value in model_env(fake_model).items():
        monkeypatch.setenv(name, value)
    return fake_model


@pytest.fixture
def memory_service() -> Service:
    return Service(MemoryStore(), MemoryBlobStore(), scanner=SecretScanner({}))


@pytest.fixture
def me(memory_service: Service) -> str:
    return memory_service.account("alice", "Alice").id


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "hello.py").write_text("print('hello')\n")
    return folder
