"""`baton handoff`: a baton session carried into Claude Code, Codex, opencode and Kilo, each
resumed by the real CLI (from the npm registry) against a local fake model that speaks its
protocol: the tool's next request holds the whole earlier conversation in its own shape.

The CLIs run offline in a temporary HOME, with their telemetry and update checks off and
every proxy variable pointing at a closed port, so a request that is not for the fake model
fails at once instead of leaving the machine. They are found under BATON_NPM_PREFIX (where
.ci/run installs them); without them these tests skip, except in CI (CI=true), where they
fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.agent_models import REPLY, AgentModel
from tests.helpers import run_baton, run_json

PROMPT = "Make `greet.py` print «Grüße» ✓"
BIG = "".join(f"{i:05} {'=' * 70}\n" for i in range(1000))  # 76 KB: a blob in baton
NO_RESULT = "No result was recorded for this tool call."
CONTINUE = "Carry on"

OFFLINE = {
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
    "NO_COLOR": "1",
    # Claude Code
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # opencode and Kilo
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
    "KILO_DISABLE_AUTOUPDATE": "1",
    "KILO_DISABLE_MODELS_FETCH": "1",
    "KILO_DISABLE_DEFAULT_PLUGINS": "1",
    "KILO_DISABLE_LSP_DOWNLOAD": "1",
    "KILO_DISABLE_SHARE": "1",
    "KILO_DISABLE_CLAUDE_CODE": "1",
    "KILO_DISABLE_EXTERNAL_SKILLS": "1",
    "KILO_DISABLE_SESSION_INGEST": "1",
    "KILO_DISABLE_PRESENCE": "1",
    "KILO_DISABLE_CODEBASE_INDEXING": "1",
    "KILO_TELEMETRY_LEVEL": "off",
}
BINARIES = {
    "claude": "node_modules/.bin/claude",
    "codex": "node_modules/.bin/codex",
    "opencode": "node_modules/.bin/opencode",
    "kilo": "node_modules/@kilocode/cli-linux-x64/bin/kilo",
}


def binary(tool: str) -> Path:
    prefix = os.environ.get("BATON_NPM_PREFIX")
    path = Path(prefix) / BINARIES[tool] if prefix else None
    if path is None or not path.exists():
        message = f"no {tool} CLI (set BATON_NPM_PREFIX; .ci/run installs it there)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def messages() -> list[dict[str, Any]]:
    """A session with what a hand-off must carry: a system note, a prompt with non-ASCII
    text, reasoning, parallel tool calls and their results (one failed), a 76 KB output
    (a blob in baton), a call that never got a result, and usage."""
    return [
        {
            "role": "system",
            "parts": [{"type": "text", "text": "Project rules: keep it short."}],
            "created_at": "2026-11-25T09:00:00.000000Z",
        },
        {
            "role": "user",
            "parts": [{"type": "text", "text": PROMPT}],
            "created_at": "2026-11-25T09:00:01.000000Z",
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "text": "Read it first, then run it."},
                {"type": "text", "text": "Reading and running it."},
                {
                    "type": "tool_call",
                    "id": "call_read",
                    "name": "read",
                    "input": {"path": "greet.py"},
                },
                {
                    "type": "tool_call",
                    "id": "call_run",
                    "name": "run",
                    "input": {"command": "python3 greet.py"},
                },
            ],
            "created_at": "2026-11-25T09:00:02.123456Z",
            "model": "fake/fake-model",
            "usage": {"input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 40},
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_result",
                    "tool_call_id": "call_read",
                    "output": "File not found: greet.py",
                    "is_error": True,
                }
            ],
            "created_at": "2026-11-25T09:00:03.000000Z",
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_result", "tool_call_id": "call_run", "output": BIG}],
            "created_at": "2026-11-25T09:00:04.000000Z",
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "text": "Writing it."},
                {
                    "type": "tool_call",
                    "id": "call_write",
                    "name": "write",
                    "input": {"path": "greet.py", "content": "print('Grüße')\n"},
                },
            ],
            "created_at": "2026-11-25T09:00:05.000000Z",
            "model": "fake/fake-model",
        },
        {
            "role": "user",
            "parts": [{"type": "text", "text": "Stop there; what is left?"}],
            "created_at": "2026-11-25T09:00:06.000000Z",
        },
        {
            "role": "assistant",
            "parts": [{"type": "text", "text": "Only the write."}],
            "created_at": "2026-11-25T09:00:07.000000Z",
            "model": "fake/fake-model",
            "usage": {"input_tokens": 300, "output_tokens": 5},
        },
    ]


class World:
    """A baton home with the session, a project folder (a long path with non-ASCII and a
    character beyond 16 bits: Claude Code hashes such folder names), and a HOME for the
    other tools."""

    def __init__(self, root: Path, baton_home: Path) -> None:
        self.root = root
        self.baton_home = baton_home
        self.project = root / ("p" * 150) / "grüße 🙂 app"
        self.project.mkdir(parents=True)
        self.home = root / "home"
        self.home.mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        self.messages = messages()
        document = {
            "format": "baton-session",
            "version": 1,
            "session": {"title": "Greetings in German", "metadata": {"cwd": str(self.project)}},
            "messages": self.messages,
        }
        path = root / "session.json"
        path.write_bytes(orjson.dumps(document))
        self.session = run_json("sessions", "import", str(path), home=baton_home)["id"]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "CLAUDE_CONFIG_DIR": str(self.root / "claude"),
            "CODEX_HOME": str(self.root / "codex"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            **OFFLINE,
            **extra,
        }

    def baton(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`baton ARGS` run from another folder than the project's."""
        return run_baton(*args, home=self.baton_home, env=self.env(), cwd=self.root)

    def handoff(self, tool: str, *args: str) -> dict[str, Any]:
        result = self.baton("handoff", self.session, "--to", tool, *args, "--json")
        assert result.returncode == 0, result.stderr
        found: dict[str, Any] = orjson.loads(result.stdout)
        return found

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            list(args),
            cwd=self.project,
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def reimport(self, path: str) -> list[dict[str, Any]]:
        """The handed-off file imported back into baton: its messages as baton shows them."""
        summary = run_json("sessions", "import", path, home=self.baton_home)
        shown = run_json(
            "sessions", "show", summary["sessions"][0]["id"], "--full", home=self.baton_home
        )
        return [
            {k: v for k, v in m.items() if k not in ("id", "parent")} for m in shown["messages"]
        ]


@pytest.fixture
def world(tmp_path: Path, baton_home: Path) -> World:
    (tmp_path / "world").mkdir()
    return World(tmp_path / "world", baton_home)


@pytest.fixture
def anthropic() -> Iterator[AgentModel]:
    fake = AgentModel("anthropic")
    yield fake
    fake.close()


@pytest.fixture
def responses() -> Iterator[AgentModel]:
    fake = AgentModel("responses")
    yield fake
    fake.close()


def without(value: Any, key: str) -> Any:
    """`value` with `key` left out of every object in it."""
    if isinstance(value, dict):
        return {k: without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without(v, key) for v in value]
    return value


def text(value: str) -> dict[str, str]:
    return {"type": "text", "text": value}


# --- Claude Code -------------------------------------------------------------------------------


def test_claude_code_resumes_the_handed_off_session(world: World, anthropic: AgentModel) -> None:
    claude = binary("claude")
    done = world.handoff("claude")
    sid = done["id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", sid)
    # A folder name over 200 characters is cut and hashed as Claude Code does, or it would
    # not find the file below; 🙂 counts twice, as JavaScript counts it.
    slug = re.sub(r"[^A-Za-z0-9]", "-", str(world.project).replace("🙂", "--"))
    assert len(slug) > 200
    folder = Path(done["path"]).parent
    assert folder.parent == world.root / "claude" / "projects"
    assert re.fullmatch(re.escape(slug[:200]) + r"-[0-9a-z]+", folder.name)
    assert done == {
        "tool": "claude",
        "session": world.session,
        "id": sid,
        "path": str(folder / f"{sid}.jsonl"),
        "directory": str(world.project),
        "command": f"cd '{world.project}' && claude --resume {sid}",
        "written": True,
        "imported": None,
    }
    result = world.run(
        str(claude),
        "-p",
        "--resume",
        sid,
        CONTINUE,
        ANTHROPIC_BASE_URL=anthropic.url,
        ANTHROPIC_API_KEY="sk-ant-test",
    )
    assert result.stdout.strip() == REPLY
    [request] = anthropic.requests
    sent = [m for m in without(request["messages"], "cache_control") if m["role"] != "system"]
    calls = [
        {"type": "tool_use", "id": "call_read", "name": "read", "input": {"path": "greet.py"}},
        {
            "type": "tool_use",
            "id": "call_run",
            "name": "run",
            "input": {"command": "python3 greet.py"},
        },
    ]
    write = {"path": "greet.py", "content": "print('Grüße')\n"}
    assert sent[:-1] == [
        # Claude Code joins a run of user lines into one message
        {"role": "user", "content": [text("Project rules: keep it short.\n"), text(PROMPT)]},
        {"role": "assistant", "content": [text("Reading and running it."), *calls]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_read",
                    "content": "File not found: greet.py",
                    "is_error": True,
                },
                {"type": "tool_result", "tool_use_id": "call_run", "content": BIG},
            ],
        },
        {
            "role": "assistant",
            "content": [
                text("Writing it."),
                {"type": "tool_use", "id": "call_write", "name": "write", "input": write},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_write",
                    "content": NO_RESULT,
                    "is_error": True,
                },
                text("Stop there; what is left?"),
            ],
        },
        {"role": "assistant", "content": [text("Only the write.")]},
    ]
    assert sent[-1]["role"] == "user" and sent[-1]["content"][-1] == text(CONTINUE)

    # Handed off again at the same head: the same file, not overwritten (Claude Code has
    # added the new turn to it); imported back, baton has the conversation and the new turn.
    grown = Path(done["path"]).read_bytes()
    assert REPLY.encode() in grown
    again = world.handoff("claude")
    assert {**again, "written": True} == done and again["written"] is False
    assert Path(done["path"]).read_bytes() == grown
    back = world.reimport(done["path"])
    expected = expected_back(world.messages)
    assert back[: len(expected)] == expected
    assert [(m["role"], m["parts"]) for m in back[len(expected) :]] == [
        ("user", [text(CONTINUE)]),
        ("assistant", [text(REPLY)]),
    ]


def expected_back(sent: list[dict[str, Any]], *, errors: bool = True) -> list[dict[str, Any]]:
    """What baton reads back from a handed-off file: the session without its reasoning,
    the system note as a user message, and the result made up for the call that had none.
    Without `errors` (Codex, whose outputs have no error mark), no result is an error."""
    out = []
    for message in sent:
        parts = [p for p in message["parts"] if p["type"] != "reasoning"]
        if not errors:
            parts = [{k: v for k, v in p.items() if k != "is_error"} for p in parts]
        message = {**message, "parts": parts}
        if message["role"] == "system":
            message["role"] = "user"
        out.append(message)
        if message["parts"][-1].get("id") == "call_write":
            result = {"type": "tool_result", "tool_call_id": "call_write", "output": NO_RESULT}
            if errors:
                result["is_error"] = True
            out.append({"role": "tool", "parts": [result], "created_at": message["created_at"]})
    return out


# --- Codex --------------------------------------------------------------------------------------


def codex_config(world: World, fake: AgentModel) -> None:
    config = (
        'model = "fake-model"\nmodel_provider = "fake"\ncheck_for_update_on_startup = false\n'
        f'[model_providers.fake]\nname = "fake"\nbase_url = "{fake.url}/v1"\n'
        'wire_api = "responses"\nenv_key = "FAKE_API_KEY"\n[analytics]\nenabled = false\n'
    )
    (world.root / "codex").mkdir(exist_ok=True)
    (world.root / "codex" / "config.toml").write_text(config, "utf-8")


def conversation(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Responses request's input without what Codex adds on every turn (its developer
    instructions and environment context) and without item ids."""
    out = []
    for item in items:
        first = (item.get("content") or [{}])[0].get("text", "")
        if item.get("role") == "developer" or first.startswith("<environment_context>"):
            continue
        out.append({k: v for k, v in item.items() if k != "id"})
    return out


def said(role: str, value: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    block: dict[str, Any] = {"type": kind, "text": value}
    if role == "assistant":
        block["annotations"] = []
    return {"type": "message", "role": role, "content": [block]}


def output(call: str, value: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call, "output": value}


def function(call: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    encoded = json.dumps(arguments, ensure_ascii=False)
    return {"type": "function_call", "name": name, "arguments": encoded, "call_id": call}


def shortened(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Codex cuts the middle out of a long tool output before it sends it (as it does with
    the output of a command it ran itself): check the cut, then put the whole back."""
    out = []
    for item in items:
        if item.get("call_id") == "call_run" and item["type"] == "function_call_output":
            cut = re.fullmatch(r"(.+)…(\d+) chars truncated…(.+)", item["output"], re.S)
            assert cut, item["output"][:200]
            head, tail = cut.group(1), cut.group(3)
            assert BIG.startswith(head) and BIG.endswith(tail) and len(head) > 1000
            item = {**item, "output": BIG}
        out.append(item)
    return out


CODEX_SENT = [
    said("user", "Project rules: keep it short."),
    said("user", PROMPT),
    said("assistant", "Reading and running it."),
    function("call_read", "read", {"path": "greet.py"}),
    function("call_run", "run", {"command": "python3 greet.py"}),
    output("call_read", "File not found: greet.py"),
    output("call_run", BIG),
    said("assistant", "Writing it."),
    function("call_write", "write", {"path": "greet.py", "content": "print('Grüße')\n"}),
    output("call_write", NO_RESULT),
    said("user", "Stop there; what is left?"),
    said("assistant", "Only the write."),
]


def test_codex_resumes_the_handed_off_session(world: World, responses: AgentModel) -> None:
    codex = binary("codex")
    done = world.handoff("codex")
    sid = done["id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", sid)
    path = Path(done["path"])
    assert re.fullmatch(rf"rollout-\d{{4}}-\d\d-\d\dT\d\d-\d\d-\d\d-{sid}\.jsonl", path.name)
    assert path.parents[3] == world.root / "codex" / "sessions"
    assert done["command"] == f"cd '{world.project}' && codex resume {sid}"
    codex_config(world, responses)
    result = world.run(
        str(codex), "exec", "--skip-git-repo-check", "resume", sid, CONTINUE, FAKE_API_KEY="x"
    )
    assert result.stdout.strip() == REPLY
    [request] = responses.requests
    assert shortened(conversation(request["input"])) == [*CODEX_SENT, said("user", CONTINUE)]

    # The session moves on in baton: handed off again, it is a new Codex session (the first
    # stays as Codex left it), which Codex, now with its own state database, resumes too.
    first = path.read_bytes()
    assert REPLY.encode() in first
    added = world.baton("sessions", "append", world.session, "--role", "user", "--text", "And?")
    assert added.returncode == 0, added.stderr
    second = world.handoff("codex")
    assert second["id"] != sid and second["written"] is True
    assert path.read_bytes() == first
    world.run(
        str(codex),
        "exec",
        "--skip-git-repo-check",
        "resume",
        second["id"],
        CONTINUE,
        FAKE_API_KEY="x",
    )
    assert shortened(conversation(responses.requests[-1]["input"])) == [
        *CODEX_SENT,
        said("user", "And?"),
        said("user", CONTINUE),
    ]
    back = world.reimport(str(path))
    expected = expected_back(world.messages, errors=False)
    assert back[: len(expected)] == expected
    assert [(m["role"], m["parts"]) for m in back[len(expected) :]] == [
        ("user", [text(CONTINUE)]),
        ("assistant", [text(REPLY)]),
    ]


# --- opencode and Kilo --------------------------------------------------------------------------


def flat(content: Any) -> Any:
    """Chat content as text: Kilo sends a user message's text as a list of parts, and adds
    its own `<environment_details>` (the message's time, the folder) to each."""
    if isinstance(content, list):
        content = "".join(p["text"] for p in content if p.get("type") == "text")
    if isinstance(content, str):
        return re.sub(r"\n*<environment_details>.*?</environment_details>", "", content, flags=re.S)
    return content


@pytest.mark.parametrize("tool", ["opencode", "kilo"])
def test_opencode_and_kilo_resume_the_handed_off_session(world: World, tool: str) -> None:
    (world.bin / tool).symlink_to(binary(tool))
    done = world.handoff(tool)
    sid = done["id"]
    assert re.fullmatch(r"ses_[0-9a-f]{12}[0-9A-Za-z]{14}", sid)
    assert done == {
        "tool": tool,
        "session": world.session,
        "id": sid,
        "path": str(world.baton_home / "handoff" / f"{sid}.opencode.json"),
        "directory": str(world.project),
        "command": f"cd '{world.project}' && {tool} -s {sid}",
        "written": True,
        "imported": True,
    }
    listed = json.loads(world.run(tool, "session", "list", "--format", "json").stdout)
    assert [(s["id"], s["directory"]) for s in listed] == [(sid, str(world.project))]

    fake = AgentModel("chat")
    try:
        config = {
            "provider": {
                "fake": {
                    "npm": "@ai-sdk/openai-compatible",
                    "options": {"baseURL": f"{fake.url}/v1", "apiKey": "x"},
                    "models": {"fake-model": {"name": "Fake"}},
                }
            },
            "autoupdate": False,
            "share": "disabled",
        }
        variable = "KILO_CONFIG_CONTENT" if tool == "kilo" else "OPENCODE_CONFIG_CONTENT"
        result = world.run(
            tool,
            "run",
            "--session",
            sid,
            "--model",
            "fake/fake-model",
            CONTINUE,
            **{variable: json.dumps(config)},
        )
        assert REPLY in result.stdout
        chats = [r for r in fake.requests if r.get("tools")]
    finally:
        fake.close()
    assert len(chats) == 1
    sent = [
        (m["role"], flat(m.get("content")), [c["id"] for c in m.get("tool_calls") or []])
        for m in chats[0]["messages"][1:]
    ]
    assert sent == [
        ("user", "Project rules: keep it short.", []),
        ("user", PROMPT, []),
        ("assistant", "Reading and running it.", ["call_read", "call_run"]),
        ("tool", "File not found: greet.py", []),
        ("tool", BIG, []),
        ("assistant", "Writing it.", ["call_write"]),
        ("tool", "No result was recorded for this tool call.", []),
        ("user", "Stop there; what is left?", []),
        ("assistant", "Only the write.", []),
        ("user", json.dumps(CONTINUE), []),
    ]


def test_without_the_tool_on_path_the_command_imports_first(world: World) -> None:
    env = world.env(PATH=str(world.bin))
    result = run_baton(
        "handoff", world.session, "--to", "opencode", home=world.baton_home, env=env, cwd=world.root
    )
    assert result.returncode == 0, result.stderr
    sid = re.search(r"opencode session (ses_\w+)", result.stderr)
    assert sid
    path = world.baton_home / "handoff" / f"{sid.group(1)}.opencode.json"
    assert result.stdout == (
        f"cd '{world.project}' && opencode import {path} && opencode -s {sid.group(1)}\n"
    )
    assert json.loads(path.read_bytes())["info"]["id"] == sid.group(1)


# --- what a user can get wrong ------------------------------------------------------------------


def test_mistakes_are_one_line(world: World) -> None:
    unknown = world.baton("handoff", "ses_01J00000000000000000000000", "--to", "claude")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr.startswith("error: ") and unknown.stderr.count("\n") == 1
    empty = run_json("sessions", "new", "--title", "Nothing yet", "--no-git", home=world.baton_home)
    nothing = world.baton("handoff", empty["id"], "--to", "codex")
    assert (nothing.returncode, nothing.stderr) == (
        2,
        f"error: {empty['id']} has no messages: there is nothing to hand off\n",
    )
    missing = world.root / "gone"
    bad = world.baton("handoff", world.session, "--to", "claude", "--cwd", str(missing))
    assert (bad.returncode, bad.stderr) == (
        2,
        f"error: {missing} is not a folder: pass --cwd with the project folder\n",
    )
    tool = world.baton("handoff", world.session, "--to", "cursor")
    assert tool.returncode == 2 and "'cursor' is not one of" in tool.stderr


def test_a_session_on_the_server_is_handed_off_the_same(world: World, tmp_path: Path) -> None:
    """After `baton login` the session comes from the server (its 76 KB output read back in
    full) and the file is written here, as from the local store."""
    from tests.fixtures.servers import start_serve, stop

    served = start_serve(tmp_path / "server-home")
    try:
        client = tmp_path / "client-home"
        login = run_baton("login", served.url, "--token", served.token, home=client)
        assert login.returncode == 0, login.stderr
        remote = run_json("sessions", "import", str(world.root / "session.json"), home=client)
        result = run_baton(
            "handoff", remote["id"], "--to", "claude", "--json",
            home=client, env=world.env(), cwd=world.root,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        done = orjson.loads(result.stdout)
    finally:
        stop(served)
    assert (done["session"], done["directory"], done["written"]) == (
        remote["id"],
        str(world.project),
        True,
    )
    assert world.reimport(done["path"]) == expected_back(world.messages)
