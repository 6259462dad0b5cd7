"""The opencode export: the shape `opencode import` validates, the mapping from baton's
messages, deterministic ids; then the real round trip through the opencode CLI (import,
export, compare) and a resumed turn against a scripted model, and the same import in Kilo CLI.

The CLIs run offline in a temporary HOME. opencode is found through BATON_OPENCODE (a path),
`opencode` on PATH, or BATON_NPM_PREFIX/node_modules/.bin/opencode (Kilo: BATON_KILO, `kilo`,
BATON_NPM_PREFIX/node_modules/@kilocode/cli-linux-x64/bin/kilo). Without them these tests
skip, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from baton.core.models import JSON, Message, Session
from baton.render import export
from baton.render.opencode import NO_RESULT, VERSION, export_opencode, make_id, session_id
from baton.service import Service
from baton.store.blobs import MemoryBlobStore
from baton.store.memory import MemoryStore

NOW = "2026-11-25T09:30:00.000000Z"
SESSION_ID = re.compile(r"^ses_[0-9a-f]{12}[0-9A-Za-z]{14}$")
MESSAGE_ID = re.compile(r"^msg_[0-9a-f]{12}[0-9A-Za-z]{14}$")
PART_ID = re.compile(r"^prt_[0-9a-f]{12}[0-9A-Za-z]{14}$")
BIG = "".join(f"{i:05} {'=' * 70}\n" for i in range(1000))  # 76 KB: a blob in baton
PROMPT = "Make `greet.py` print «Grüße» ✓ and\n\n```python\nprint('x')\n```"


@dataclass
class Built:
    service: Service
    owner: str
    session: Session
    messages: list[Message]


def build(service: Service | None = None) -> Built:
    """A session with every mapping case: a system note, reasoning, parallel tool calls, a
    failed read (error), a failed command (exit status), a 76 KB output, a file, a call
    that never got its result, and usage with reasoning and cache tokens."""
    service = service or Service(MemoryStore(), MemoryBlobStore())
    owner = service.account("alice").id
    session = service.create(
        owner,
        title="Greetings in German",
        task="greet.py",
        metadata={"model": "openai/gpt-4o", "cwd": "/home/dev/greet"},
        git={"root": "/home/dev/greet", "root_commit": "a" * 40, "branch": "main"},
    )
    service.append(
        owner,
        session.id,
        [
            {
                "role": "system",
                "created_at": "2026-11-24T10:00:00.000000Z",
                "parts": [{"type": "text", "text": "Project rules: keep it short."}],
            },
            {
                "role": "user",
                "created_at": "2026-11-24T10:00:01.000000Z",
                "parts": [{"type": "text", "text": PROMPT}],
            },
            {
                "role": "assistant",
                "model": "openai/gpt-4o",
                "created_at": "2026-11-24T10:00:02.500000Z",
                "usage": {
                    "input_tokens": 1000,
                    "output_tokens": 120,
                    "reasoning_tokens": 20,
                    "cache_read_tokens": 300,
                    "cache_write_tokens": 5,
                    "cost_usd": 0.0125,
                },
                "parts": [
                    {"type": "reasoning", "text": "Read it first, then run it."},
                    {"type": "text", "text": "Reading and running it."},
                    {
                        "type": "tool_call",
                        "id": "call_read",
                        "name": "read",
                        "input": {"filePath": "/home/dev/greet/greet.py"},
                    },
                    {
                        "type": "tool_call",
                        "id": "call_run",
                        "name": "bash",
                        "input": {"command": "python3 greet.py", "description": "Run it"},
                    },
                ],
            },
            {
                "role": "tool",
                "created_at": "2026-11-24T10:00:04.000000Z",
                "parts": [
                    {
                        "type": "tool_result",
                        "tool_call_id": "call_read",
                        "output": "File not found: /home/dev/greet/greet.py",
                        "is_error": True,
                    },
                    {
                        "type": "tool_result",
                        "tool_call_id": "call_run",
                        "output": "python3: can't open file 'greet.py'",
                        "is_error": True,
                        "exit_code": 2,
                    },
                ],
            },
            {
                "role": "assistant",
                "model": "openai/gpt-4o",
                "created_at": "2026-11-24T10:00:05.000000Z",
                "usage": {"input_tokens": 1400, "output_tokens": 30, "cost_usd": 0.004},
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_log",
                        "name": "bash",
                        "input": {"command": "cat build.log"},
                    }
                ],
            },
            {
                "role": "tool",
                "created_at": "2026-11-24T10:00:06.000000Z",
                "parts": [{"type": "tool_result", "tool_call_id": "call_log", "output": BIG}],
            },
            {
                "role": "assistant",
                "model": "openai/gpt-4o",
                "created_at": "2026-11-24T10:00:07.000000Z",
                "parts": [{"type": "text", "text": "There is no greet.py yet. Shall I write it?"}],
            },
            {
                "role": "user",
                "created_at": "2026-11-24T10:01:00.000000Z",
                "parts": [
                    {"type": "text", "text": "Yes, like this file."},
                    {"type": "file", "path": "/home/dev/notes.txt", "data": "print('Grüße')\n"},
                ],
            },
            {
                "role": "assistant",
                "model": "openai/gpt-4o",
                "created_at": "2026-11-24T10:01:02.000000Z",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_write",
                        "name": "write",
                        "input": {"filePath": "greet.py", "content": "print('Grüße')\n"},
                    }
                ],
            },
        ],
    )
    return Built(
        service,
        owner,
        service.get(owner, session.id),
        service.messages(owner, session.id, hydrate=True),
    )


@pytest.fixture(scope="module")
def built() -> Built:
    return build()


@pytest.fixture(scope="module")
def document(built: Built) -> JSON:
    return export_opencode(built.session, built.messages)


def summary(doc: JSON) -> list[tuple[str, list[Any]]]:
    """What a reader (or the model, on resume) gets from an opencode document: roles, texts,
    tool calls with their input and result. Ids, times and bookkeeping parts are left out."""
    out: list[tuple[str, list[Any]]] = []
    for message in doc["messages"]:
        parts: list[Any] = []
        for part in message["parts"]:
            kind = part["type"]
            if kind in ("text", "reasoning"):
                parts.append((kind, part["text"], part.get("synthetic", False)))
            elif kind == "tool":
                state = part["state"]
                result = state.get("output", state.get("error"))
                exit_code = state.get("metadata", {}).get("exit")
                parts.append(
                    (
                        "tool",
                        part["callID"],
                        part["tool"],
                        state["input"],
                        state["status"],
                        result,
                        exit_code,
                    )
                )
            elif kind == "file":
                parts.append(("file", part["filename"], part["mime"], part["url"]))
        out.append((message["info"]["role"], parts))
    return out


EXPECTED = [
    ("user", [("text", "Project rules: keep it short.", True)]),
    ("user", [("text", PROMPT, False)]),
    (
        "assistant",
        [
            ("reasoning", "Read it first, then run it.", False),
            ("text", "Reading and running it.", False),
            (
                "tool",
                "call_read",
                "read",
                {"filePath": "/home/dev/greet/greet.py"},
                "error",
                "File not found: /home/dev/greet/greet.py",
                None,
            ),
            (
                "tool",
                "call_run",
                "bash",
                {"command": "python3 greet.py", "description": "Run it"},
                "completed",
                "python3: can't open file 'greet.py'",
                2,
            ),
        ],
    ),
    (
        "assistant",
        [("tool", "call_log", "bash", {"command": "cat build.log"}, "completed", BIG, None)],
    ),
    ("assistant", [("text", "There is no greet.py yet. Shall I write it?", False)]),
    (
        "user",
        [
            ("text", "Yes, like this file.", False),
            ("file", "notes.txt", "text/plain", "data:text/plain;base64,cHJpbnQoJ0dyw7zDn2UnKQo="),
        ],
    ),
    (
        "assistant",
        [
            (
                "tool",
                "call_write",
                "write",
                {"filePath": "greet.py", "content": "print('Grüße')\n"},
                "error",
                NO_RESULT,
                None,
            )
        ],
    ),
]


# --- the document -----------------------------------------------------------------------------


def test_messages_map_to_opencodes(document: JSON) -> None:
    assert summary(document) == EXPECTED


def test_ids_look_like_opencodes_and_sort_in_conversation_order(document: JSON) -> None:
    sid = document["info"]["id"]
    assert SESSION_ID.match(sid)
    infos = [m["info"] for m in document["messages"]]
    ids = [i["id"] for i in infos]
    assert all(MESSAGE_ID.match(i) for i in ids)
    # opencode lists messages by time.created, then id; parts by id
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [i["time"]["created"] for i in infos]
    assert times == sorted(times)
    for message in document["messages"]:
        assert message["info"]["sessionID"] == sid
        part_ids = [p["id"] for p in message["parts"]]
        assert all(PART_ID.match(p) for p in part_ids)
        assert part_ids == sorted(part_ids)
        assert {(p["sessionID"], p["messageID"]) for p in message["parts"]} == {
            (sid, message["info"]["id"])
        }
    every_part = [p["id"] for m in document["messages"] for p in m["parts"]]
    assert len(set(every_part)) == len(every_part)


def test_ids_carry_the_time_as_opencode_makes_them() -> None:
    # opencode: hex of the low 48 bits of (ms * 0x1000 + counter); sessions inverted
    assert make_id("msg", 1795481277720 * 0x1000 + 1, "x").startswith("msg_20b061518001")
    assert make_id("ses", 1795481277681 * 0x1000 + 1, "x", descending=True).startswith(
        "ses_df4f9eb0effe"  # the session of /work/shared/samples/opencode/export.json
    )


def test_session_info(built: Built, document: JSON) -> None:
    info = document["info"]
    created = document["messages"][0]["info"]["time"]["created"]
    assert created == 1795514400000  # 2026-11-24T10:00:00Z
    assert info == {
        "id": session_id(built.session),
        "slug": "baton-" + built.session.id.lower()[-10:],
        "projectID": "a" * 40,
        "directory": "/home/dev/greet",
        "path": "",
        "title": "Greetings in German",
        "version": VERSION,
        "agent": "build",
        "cost": 0.0165,
        "tokens": {
            "input": 2400,
            "output": 130,
            "reasoning": 20,
            "cache": {"read": 300, "write": 5},
        },
        "metadata": {"baton": {"session": built.session.id, "head": built.session.head}},
        "time": info["time"],
        "model": {"id": "gpt-4o", "providerID": "openai"},
    }
    assert info["time"]["created"] <= info["time"]["updated"]


def test_assistant_info_and_steps(document: JSON) -> None:
    user = document["messages"][1]["info"]
    first = document["messages"][2]
    assert first["info"] == {
        "id": first["info"]["id"],
        "sessionID": document["info"]["id"],
        "role": "assistant",
        "time": {"created": 1795514402500, "completed": 1795514404000},  # its last result
        "parentID": user["id"],
        "modelID": "gpt-4o",
        "providerID": "openai",
        "mode": "build",
        "agent": "build",
        "path": {"cwd": "/home/dev/greet", "root": "/home/dev/greet"},
        "cost": 0.0125,
        # baton's output tokens include reasoning; opencode's don't
        "tokens": {
            "input": 1000,
            "output": 100,
            "reasoning": 20,
            "cache": {"read": 300, "write": 5},
            "total": 1425,
        },
        "finish": "tool-calls",
    }
    kinds = [p["type"] for p in first["parts"]]
    assert kinds == ["step-start", "reasoning", "text", "tool", "tool", "step-finish"]
    finish = first["parts"][-1]
    assert (finish["reason"], finish["cost"], finish["tokens"]) == (
        "tool-calls",
        0.0125,
        first["info"]["tokens"],
    )
    run = first["parts"][4]["state"]
    assert run == {
        "status": "completed",
        "input": {"command": "python3 greet.py", "description": "Run it"},
        "output": "python3: can't open file 'greet.py'",
        "title": "python3 greet.py",
        "metadata": {"exit": 2},
        "time": {"start": 1795514402500, "end": 1795514404000},
    }
    last = document["messages"][4]["info"]
    assert (last["finish"], last["parentID"]) == ("stop", user["id"])
    assert last["tokens"] == {
        "input": 0,
        "output": 0,
        "reasoning": 0,
        "cache": {"read": 0, "write": 0},
        "total": 0,
    }


def test_user_info(document: JSON) -> None:
    info = document["messages"][1]["info"]
    assert info == {
        "id": info["id"],
        "sessionID": document["info"]["id"],
        "role": "user",
        "time": {"created": 1795514401000},
        "agent": "build",
        "model": {"providerID": "openai", "modelID": "gpt-4o"},
    }


def test_the_same_session_exports_to_the_same_file(built: Built, document: JSON) -> None:
    again = build(built.service)  # another session with the same content
    assert export_opencode(built.session, built.messages) == document
    assert export(built.session, built.messages, "opencode", NOW) == document
    other = export_opencode(again.session, again.messages)
    assert other["info"]["id"] != document["info"]["id"]
    assert summary(other) == summary(document)


def test_a_fork_shares_no_ids_with_its_parent(built: Built, document: JSON) -> None:
    """opencode keeps the first session that stored a message id: a fork exported with the
    parent's ids would lose its copied history on import."""
    fork = built.service.fork(built.owner, built.session.id, at=built.messages[3].id)
    messages = built.service.messages(built.owner, fork.id, hydrate=True)
    forked = export_opencode(fork, messages)
    assert summary(forked) == EXPECTED[:3]
    ids = {m["info"]["id"] for m in document["messages"]}
    assert not ids & {m["info"]["id"] for m in forked["messages"]}


def test_orphans_first_replies_and_models() -> None:
    """A reply before any prompt hangs under itself; a result whose call is unknown gets a
    message of its own; a bare model name has no provider; other parts become text."""
    service = Service(MemoryStore(), MemoryBlobStore())
    owner = service.account("bob").id
    session = service.create(owner, title="odd", metadata={"agent": "code"})
    service.append(
        owner,
        session.id,
        [
            {"role": "assistant", "model": "qwen3", "parts": [{"type": "text", "text": "Hi."}]},
            {
                "role": "tool",
                "parts": [{"type": "tool_result", "tool_call_id": "lost", "output": {"n": 1}}],
            },
            {"role": "user", "parts": [{"type": "reasoning", "text": "odd but kept"}]},
        ],
    )
    doc = export_opencode(service.get(owner, session.id), service.messages(owner, session.id))
    first, orphan, user = (m["info"] for m in doc["messages"])
    assert first["parentID"] == first["id"]
    assert (first["providerID"], first["modelID"], first["agent"], first["mode"]) == (
        "",
        "qwen3",
        "code",
        "code",
    )
    assert orphan["parentID"] == orphan["id"]
    assert user["model"] == {"providerID": "", "modelID": "qwen3"}
    assert summary(doc) == [
        ("assistant", [("text", "Hi.", False)]),
        ("assistant", [("tool", "lost", "unknown", {}, "completed", '{\n  "n": 1\n}', None)]),
        ("user", [("text", "odd but kept", False)]),
    ]
    assert "model" in doc["info"] and doc["info"]["agent"] == "code"


def test_an_empty_session() -> None:
    service = Service(MemoryStore(), MemoryBlobStore())
    owner = service.account("carol").id
    session = service.create(owner, title="")
    doc = export_opencode(session, [])
    assert doc["messages"] == []
    assert doc["info"]["title"] == "Untitled session"
    assert "model" not in doc["info"]


# --- the real CLIs ----------------------------------------------------------------------------


def locate(name: str, env: str, below_prefix: str) -> Path | None:
    given = os.environ.get(env)
    if given:
        return Path(given)
    found = shutil.which(name)
    if found:
        return Path(found)
    prefix = os.environ.get("BATON_NPM_PREFIX")
    if prefix and (Path(prefix) / below_prefix).exists():
        return Path(prefix) / below_prefix
    return None


def required(path: Path | None, what: str) -> Path:
    if path is None or not path.exists():
        message = f"no {what} (set BATON_NPM_PREFIX or see the module docstring)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Tool:
    binary: Path
    home: Path
    offline: dict[str, str]

    def run(
        self, *args: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        project = self.home / "project"
        project.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "NO_COLOR": "1",
            **self.offline,
            **(extra or {}),
        }
        # stdout goes to a file: opencode can drop what passes 64 KiB on a pipe
        # (anomalyco/opencode#29330), and an export is bigger than that
        out = self.home / "stdout.txt"
        started = time.monotonic()
        with out.open("w", encoding="utf-8") as stdout:
            result = subprocess.run(
                [str(self.binary), *args],
                cwd=project,
                env=env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                text=True,
                timeout=180,
            )
        took = time.monotonic() - started
        print(f"{self.binary.name} {args[0]}: {took:.2f}s")  # shown with pytest -s
        result.stdout = out.read_text("utf-8")
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def load(self, document: JSON) -> str:
        """Import a document and return the session id the tool printed."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / f"{document['info']['id']}.json"
        path.write_text(json.dumps(document), "utf-8")
        printed = self.run("import", str(path)).stdout
        found = re.search(r"Imported session: (ses_\w+)", printed)
        assert found, printed
        return found.group(1)

    def dump(self, sid: str) -> JSON:
        result: JSON = json.loads(self.run("export", sid).stdout)
        return result


OPENCODE_OFFLINE = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
}
KILO_OFFLINE = {
    **{k.replace("OPENCODE_", "KILO_"): v for k, v in OPENCODE_OFFLINE.items()},
    "KILO_DISABLE_SESSION_INGEST": "1",
    "KILO_DISABLE_PRESENCE": "1",
    "KILO_DISABLE_CODEBASE_INDEXING": "1",
    "KILO_TELEMETRY_LEVEL": "off",
}


@dataclass
class Imported:
    tool: Tool
    document: JSON
    fork: JSON
    sid: str
    fork_sid: str


@pytest.fixture(scope="module")
def opencode(built: Built, document: JSON, tmp_path_factory: pytest.TempPathFactory) -> Imported:
    """The session and a fork of it, imported into a fresh opencode home."""
    binary = required(
        locate("opencode", "BATON_OPENCODE", "node_modules/.bin/opencode"), "opencode CLI"
    )
    tool = Tool(binary, tmp_path_factory.mktemp("opencode-home"), OPENCODE_OFFLINE)
    print("opencode", tool.run("--version").stdout.strip())
    fork = built.service.fork(built.owner, built.session.id, at=built.messages[3].id)
    fork_doc = export_opencode(fork, built.service.messages(built.owner, fork.id, hydrate=True))
    return Imported(tool, document, fork_doc, tool.load(document), tool.load(fork_doc))


def test_opencode_imports_the_session_under_its_id(opencode: Imported) -> None:
    assert opencode.sid == opencode.document["info"]["id"]
    assert opencode.fork_sid == opencode.fork["info"]["id"]


def test_opencode_exports_what_was_imported(opencode: Imported) -> None:
    back = opencode.tool.dump(opencode.sid)
    assert summary(back) == EXPECTED
    roles = [m["info"]["role"] for m in back["messages"]]
    assert (roles.count("user"), roles.count("assistant")) == (3, 4)
    assert [m["info"]["id"] for m in back["messages"]] == [
        m["info"]["id"] for m in opencode.document["messages"]
    ]
    sent, kept = opencode.document["info"], back["info"]
    for key in ("title", "time", "tokens", "cost", "model", "metadata", "version", "agent"):
        assert kept[key] == sent[key], key
    assert kept["directory"] == str(opencode.tool.home / "project")  # where it was imported


def test_opencode_keeps_the_fork_and_the_parent_whole(opencode: Imported) -> None:
    back = opencode.tool.dump(opencode.fork_sid)
    assert summary(back) == EXPECTED[:3]
    listed = json.loads(opencode.tool.run("session", "list", "--format", "json").stdout)
    assert sorted(s["id"] for s in listed) == sorted([opencode.sid, opencode.fork_sid])


def test_opencode_imports_the_same_file_once(opencode: Imported) -> None:
    assert opencode.tool.load(opencode.document) == opencode.sid
    listed = json.loads(opencode.tool.run("session", "list", "--format", "json").stdout)
    assert len(listed) == 2
    assert summary(opencode.tool.dump(opencode.sid)) == EXPECTED


class Model(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that records each request and answers in text."""

    requests: ClassVar[list[JSON]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Model.requests.append(body)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake-model"}
        for choice, usage in (
            ({"index": 0, "delta": {"role": "assistant", "content": "Resumed."}}, None),
            (
                {"index": 0, "delta": {}, "finish_reason": "stop"},
                {"prompt_tokens": 9, "completion_tokens": 1},
            ),
        ):
            chunk = {**base, "choices": [choice], **({"usage": usage} if usage else {})}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def model() -> Iterator[str]:
    Model.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_opencode_resumes_the_imported_session(opencode: Imported, model: str) -> None:
    """The point of the export: carry on in opencode. The model is sent the whole history,
    tool calls and results included, then the new prompt."""
    config = {
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "options": {"baseURL": model, "apiKey": "x"},
                "models": {"fake-model": {"name": "Fake"}},
            }
        },
        "autoupdate": False,
        "share": "disabled",
    }
    extra = {"OPENCODE_CONFIG_CONTENT": json.dumps(config)}
    result = opencode.tool.run(
        "run", "--session", opencode.fork_sid, "--model", "fake/fake-model", "Carry on", extra=extra
    )
    assert "Resumed." in result.stdout
    chats = [r for r in Model.requests if r.get("tools")]
    assert len(chats) == 1
    sent = [
        (m["role"], m.get("content"), m.get("tool_calls"), m.get("tool_call_id"))
        for m in chats[0]["messages"]
    ]
    assert sent[0][0] == "system"
    calls = [
        {
            "id": "call_read",
            "type": "function",
            "function": {
                "name": "read",
                "arguments": json.dumps(
                    {"filePath": "/home/dev/greet/greet.py"}, separators=(",", ":")
                ),
            },
        },
        {
            "id": "call_run",
            "type": "function",
            "function": {
                "name": "bash",
                "arguments": json.dumps(
                    {"command": "python3 greet.py", "description": "Run it"}, separators=(",", ":")
                ),
            },
        },
    ]
    assert sent[1:] == [
        ("user", "Project rules: keep it short.", None, None),
        ("user", PROMPT, None, None),
        ("assistant", "Read it first, then run it.Reading and running it.", calls, None),
        ("tool", "File not found: /home/dev/greet/greet.py", None, "call_read"),
        ("tool", "python3: can't open file 'greet.py'", None, "call_run"),
        ("user", '"Carry on"', None, None),
    ]
    back = opencode.tool.dump(opencode.fork_sid)
    assert summary(back)[:3] == EXPECTED[:3]
    assert summary(back)[3:] == [
        ("user", [("text", '"Carry on"', False)]),
        ("assistant", [("text", "Resumed.", False)]),
    ]


def test_kilo_imports_and_exports_it(document: JSON, tmp_path: Path) -> None:
    binary = required(
        locate("kilo", "BATON_KILO", "node_modules/@kilocode/cli-linux-x64/bin/kilo"), "Kilo CLI"
    )
    tool = Tool(binary, tmp_path / "kilo-home", KILO_OFFLINE)
    sid = tool.load(document)
    assert sid == document["info"]["id"]
    assert summary(tool.dump(sid)) == EXPECTED
