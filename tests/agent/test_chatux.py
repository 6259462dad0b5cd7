"""The chat as users expect it: `/undo` puts back exactly the files the last turn wrote and
records it, `/compact` compacts on demand, `@path` attaches a file (and refuses one outside the
repository), in the chat's line mode through the real entry point on a real git repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baton.agent.loop import COMPACT_REQUEST, SUMMARY_PREFIX
from baton.agent.mentions import ATTACH_BYTES, complete, mentioned
from tests.fixtures.git import BIN, commit_all, git
from tests.fixtures.model import FakeModel, Step, call


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("a0\n")
    (path / "b.txt").write_text("b0\n")
    (path / "other.txt").write_text("o0\n")
    (path / "src").mkdir()
    (path / "src" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    commit_all(path, "first")
    monkeypatch.chdir(path)
    return path


def test_undo_restores_exactly_the_files_the_last_turn_wrote_and_records_it(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    model = model_settings
    model.reply("", call("c1", "write_file", path="a.txt", content="a1\n"))
    model.reply("first done")
    model.reply(
        "",
        call("c2", "edit_file", path="b.txt", old_text="b0", new_text="b1"),
        call("c3", "write_file", path="new.txt", content="n\n"),
        call("c4", "write_file", path="b.txt", content="b2\n"),  # a second write: one pre-image
    )
    model.reply("second done")
    model.reply("noted")
    (repo / "untracked.txt").write_text("mine\n")
    script = "/undo\nfirst\nsecond\n/undo\n/undo\nthird\n"
    result = baton("chat", "--yes", stdin=script)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "error: no session yet: send a prompt first (or /session resume ID)" in lines
    undone = "undo of the last turn: restored b.txt; deleted new.txt (created by the turn)"
    assert undone in lines
    assert "nothing to undo: the last turn was undone already" in lines
    # the last turn's files are back; the first turn's write and the others are untouched
    assert (repo / "a.txt").read_text() == "a1\n"
    assert (repo / "b.txt").read_text() == "b0\n"
    assert not (repo / "new.txt").exists()
    assert (repo / "other.txt").read_text() == "o0\n"
    assert (repo / "untracked.txt").read_text() == "mine\n"
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    shown = baton("sessions", "show", sid, "--json").json()
    undo = [m for m in shown["messages"] if any("undo" in p for p in m["parts"])]
    assert len(undo) == 1
    assert undo[0]["role"] == "system"
    assert undo[0]["parts"] == [
        {
            "type": "text",
            "text": f"[{undone}]",
            "undo": {
                "restored": ["b.txt"],
                "deleted": ["new.txt"],
                "skipped": [],
                "not_kept": [],
            },
        }
    ]
    # the model is told, and the session's state of the code is the one after the undo
    assert model.requests[-1]["messages"][-2] == {
        "role": "user",
        "content": f"[system note] [{undone}]",
    }
    status = git(repo, "status", "--porcelain")
    assert status == "M a.txt\n?? untracked.txt"  # (git() strips the leading space)
    assert shown["git"]["patch"]["files"] == 2


def test_undo_in_a_fork_leaves_the_turn_it_inherited_alone(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    model_settings.reply("", call("c1", "write_file", path="a.txt", content="a1\n"))
    model_settings.reply("done")
    assert baton("chat", "--yes", stdin="change a\n").code == 0
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    fork = baton("fork", sid, "--json").json()["id"]
    result = baton("chat", "-s", fork, stdin="/undo\n")
    assert result.code == 0, result.err
    assert (
        "nothing to undo: the last turn came with the fork (it wrote files in another workspace)"
        in result.out.splitlines()
    )
    assert (repo / "a.txt").read_text() == "a1\n"
    assert baton("sessions", "show", fork, "--json").json()["message_count"] == 4
    result = baton("chat", "-s", sid, stdin="/undo\n")  # in the session that ran it
    assert "undo of the last turn: restored a.txt" in result.out.splitlines()
    assert (repo / "a.txt").read_text() == "a0\n"


def test_undo_from_the_records_leaves_a_file_changed_since_the_turn(
    tmp_path: Path, memory_service: Any, me: str
) -> None:
    """What the tool results record, stored and read back (hydrated): text, bytes that are not
    UTF-8 and a file over 64 KiB (kept as a blob) come back exactly; a file changed since the
    turn and a recorded path outside the root are left alone."""
    from baton.agent.tools import Tools
    from baton.agent.undo import KEEP_LIMIT, TrackedTools, last_turn, undo_text

    root = tmp_path / "root"
    root.mkdir()
    big = "top\n" + "line\n" * 20_000
    (root / "x.txt").write_text("x0\n")
    (root / "y.txt").write_text("y0\n")
    (root / "blob.bin").write_bytes(BIN)
    (root / "big.txt").write_text(big)
    (root / "huge.txt").write_bytes(b"h" * (KEEP_LIMIT + 1))
    tools = TrackedTools(Tools(root))
    sid = memory_service.create(me).id
    memory_service.append(me, sid, [{"role": "user", "parts": [{"type": "text", "text": "go"}]}])
    tools.start_turn()
    calls = [
        ("write_file", {"path": "x.txt", "content": "x1\n"}),
        ("edit_file", {"path": "x.txt", "old_text": "x1", "new_text": "x2"}),  # kept once
        ("write_file", {"path": "y.txt", "content": "y1\n"}),
        ("write_file", {"path": "blob.bin", "content": "text now\n"}),
        ("edit_file", {"path": "big.txt", "old_text": "top", "new_text": "TOP"}),
        ("write_file", {"path": "huge.txt", "content": "small now\n"}),
        ("write_file", {"path": "new/made.txt", "content": "n\n"}),
        ("write_file", {"path": "../out.txt", "content": "no\n"}),  # refused: nothing kept
    ]
    for i, (name, args) in enumerate(calls):
        outcome = tools.run(name, args)
        result = {"type": "tool_result", "tool_call_id": f"c{i}", "name": name}
        result.update(output=outcome.output, metadata=outcome.metadata or {})
        message = {"role": "tool", "parts": [result, *outcome.parts]}
        memory_service.append(me, sid, [message])
    kept = [p for m in memory_service.messages(me, sid) for p in m.parts if p.get("before_turn")]
    assert [(p["type"], p["path"]) for p in kept] == [
        ("file", "x.txt"),
        ("file", "y.txt"),
        ("file", "blob.bin"),
        ("blob_ref", "big.txt"),  # over 64 KiB: a blob of the session
        ("file", "huge.txt"),
        ("file", "new/made.txt"),
    ]
    assert kept[4] == {
        "type": "file",
        "path": "huge.txt",
        "before_turn": True,
        "kept": False,
        "size": KEEP_LIMIT + 1,
    }
    assert kept[2]["bytes"] == "latin-1" and kept[5] == {
        "type": "file",
        "path": "new/made.txt",
        "before_turn": True,
        "existed": False,
    }
    # a record naming a path outside the root (an imported or forged session) is not followed
    outside = {"type": "file", "path": "../out.txt", "before_turn": True, "data": "o\n"}
    memory_service.append(me, sid, [{"role": "tool", "parts": [outside]}])
    (root / "y.txt").write_text("edited by hand\n")
    chain = memory_service.messages(me, sid)
    turn = last_turn(chain)
    assert turn is not None and (turn.start, turn.files, turn.commands) == (1, 7, 0)
    done = tools.undo(memory_service.messages(me, sid, start=turn.start, hydrate=True))
    assert done == {
        "restored": ["x.txt", "blob.bin", "big.txt"],
        "deleted": ["new/made.txt"],
        "skipped": ["y.txt"],
        "not_kept": ["huge.txt", "../out.txt"],
    }
    assert undo_text(done, 1) == (
        "undo of the last turn: restored x.txt, blob.bin, big.txt; deleted new/made.txt "
        "(created by the turn); left y.txt as is (changed since the turn wrote it); left "
        "huge.txt, ../out.txt as is (its content before the turn was not kept); what its 1 "
        "command(s) changed is not undone"
    )
    assert (root / "x.txt").read_text() == "x0\n"
    assert (root / "y.txt").read_text() == "edited by hand\n"
    assert (root / "blob.bin").read_bytes() == BIN
    assert (root / "big.txt").read_text() == big
    assert not (root / "new" / "made.txt").exists()
    assert (root / "huge.txt").read_text() == "small now\n"
    assert not (tmp_path / "out.txt").exists()


def test_compact_on_demand_records_a_summary_the_next_turn_starts_from(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    model = model_settings
    model.reply("hello one")
    model.reply("hello two")
    model.reply("SUMMARY: two greetings")
    model.reply("hello three")
    script = "/compact\none\n/compact\ntwo\n/compact\nthree\n"
    result = baton("chat", stdin=script)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "error: no session yet: send a prompt first (or /session resume ID)" in lines
    assert "nothing to compact yet" in lines
    assert "compacted: earlier messages are now a summary" in lines
    assert len(model.requests) == 4
    asked = model.requests[2]["messages"]
    assert asked[-1] == {"role": "user", "content": COMPACT_REQUEST}
    assert [m["content"] for m in asked[1:-1]] == ["one", "hello one", "two", "hello two"]
    assert "tools" not in model.requests[2]
    summary = SUMMARY_PREFIX + "SUMMARY: two greetings"
    assert [m["content"] for m in model.requests[3]["messages"][1:]] == [summary, "three"]
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    messages = baton("sessions", "show", sid, "--json").json()["messages"]
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "system",
        "user",
        "assistant",
    ]
    assert messages[4]["parts"] == [{"type": "text", "text": summary, "compaction": True}]


def test_at_path_attaches_the_file_and_refuses_a_path_outside(
    baton: Any, model_settings: FakeModel, repo: Path, tmp_path: Path
) -> None:
    model = model_settings
    model.responder = lambda body: Step(text="seen")
    (tmp_path / "outside").write_text("secret\n")
    (repo / "big.txt").write_text("x" * (ATTACH_BYTES + 10))
    script = "explain @src/calc.py, please (ask @someone)\nlook at @../outside\nand @big.txt\n"
    result = baton("chat", stdin=script)
    assert result.code == 0, result.err
    assert (
        "error: @../outside: ../outside is outside the repository: '..' may not leave the root"
        in result.out.splitlines()
    )
    assert len(model.requests) == 2  # the refused prompt was not sent
    first = model.requests[0]["messages"][-1]
    assert first == {
        "role": "user",
        "content": "explain @src/calc.py, please (ask @someone)\n\n"
        '<file path="src/calc.py">\ndef add(a, b):\n    return a + b\n\n</file>',
    }
    big = model.requests[1]["messages"][-1]["content"]
    assert big.endswith(
        "x" * 10 + f"\n[… cut: the first {ATTACH_BYTES} of {ATTACH_BYTES + 10} bytes]\n</file>"
    )
    sid = baton("sessions", "list", "--json").json()[0]["id"]
    messages = baton("sessions", "show", sid, "--json").json()["messages"]
    assert messages[0]["parts"][1] == {
        "type": "file",
        "path": "src/calc.py",
        "data": "def add(a, b):\n    return a + b\n",
        "size": 32,
    }
    assert "secret" not in str(messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def test_at_path_refused_with_json_is_one_json_line(
    baton: Any, model_settings: FakeModel, repo: Path
) -> None:
    result = baton("chat", "--json", stdin="look at @/etc/passwd\n")
    assert result.code == 0, result.err
    message = "@/etc/passwd: /etc/passwd is an absolute path: only paths relative to the "
    message += "repository root are allowed"
    assert result.json() == {"session_id": None, "error": message}
    assert f"error: {message}" in result.err
    assert not model_settings.requests


def test_at_path_completion_and_mentions(repo: Path) -> None:
    root = repo.resolve()
    assert complete("", root) == ["a.txt", "b.txt", "other.txt", "src/"]
    assert complete("s", root) == ["src/"]
    assert complete("src/c", root) == ["src/calc.py"]
    assert complete(".gi", root) == []  # .git is never offered
    assert complete("../", root) == []
    assert mentioned("see @a.txt, @b.txt and @a.txt; mail x@y.z") == ["a.txt", "b.txt"]


def test_the_last_turn_counts_its_commands_and_goes_on_past_an_interruption(
    memory_service: Any, me: str
) -> None:
    from baton.agent.loop import INTERRUPTED_TURN, NOT_RUN
    from baton.agent.undo import last_turn

    def result(call_id: str, output: str, **metadata: Any) -> dict[str, Any]:
        part = {"type": "tool_result", "tool_call_id": call_id, "name": "run_command"}
        part.update(output=output, metadata=metadata)
        return {"role": "tool", "parts": [part]}

    def text(role: str, words: str, **extra: Any) -> dict[str, Any]:
        return {"role": role, "parts": [{"type": "text", "text": words, **extra}]}

    sid = memory_service.create(me).id
    assert last_turn(memory_service.messages(me, sid)) is None
    kept = {"type": "file", "path": "a.txt", "before_turn": True, "existed": False}
    turn = [
        text("user", "first"),
        text("user", "second"),
        result("c1", "ok"),
        {"role": "tool", "parts": [result("c2", "refused", refused=True)["parts"][0], kept]},
        result("c3", NOT_RUN),
        text("user", INTERRUPTED_TURN),
    ]
    memory_service.append(me, sid, turn)
    chain = memory_service.messages(me, sid)
    assert last_turn(chain) == last_turn(chain[:-1])
    found = last_turn(chain)
    assert found is not None
    assert (found.start, found.files, found.commands, found.undone) == (2, 1, 1, False)
    memory_service.append(me, sid, [text("system", "[undo …]", undo={"restored": []})])
    found = last_turn(memory_service.messages(me, sid))
    assert found is not None and found.undone
