"""The turn loop: every message appended as it happens, usage and cost on assistant messages,
resume repairs what a crash left, Ctrl-C is recorded, confirmations, compaction, metadata and
the git snapshot."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from baton import gitstate
from baton.agent import loop
from baton.agent.loop import (
    COMPACT_REQUEST,
    INTERRUPTED_BY_USER,
    INTERRUPTED_TOOL,
    INTERRUPTED_TURN,
    NOT_RUN,
    REFUSED,
    SUMMARY_PREFIX,
    Agent,
    Quiet,
    estimate,
    rebuild,
)
from baton.agent.provider import Cancel, ModelConfig, Provider, parse_prices
from baton.agent.slash import show_history
from baton.agent.tools import Outcome, Tools
from baton.core import ids
from baton.service import Service
from tests.fixtures.model import MODEL, PRICES, FakeModel, Step, call


def make_agent(
    service: Service,
    owner: str,
    fake: FakeModel,
    root: Path,
    session_id: str | None = None,
    *,
    context_window: int = 128_000,
    tools: Tools | None = None,
    **kw: Any,
) -> Agent:
    if session_id is None:
        session_id = service.create(owner).id
    config = ModelConfig(
        MODEL,
        fake.url,
        "test-key",
        prices=parse_prices(PRICES),
        retry_delay=0.01,
        context_window=context_window,
    )
    return Agent(service, owner, session_id, Provider(config), tools or Tools(root), **kw)


def stored(agent: Agent, hydrate: bool = False) -> list[tuple[str, list[dict[str, Any]]]]:
    messages = agent.service.messages(agent.owner, agent.session_id, hydrate=hydrate)
    return [(m.role, m.parts) for m in messages]


def test_every_message_is_appended_as_it_happens_with_usage_and_cost(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    agent = make_agent(memory_service, me, fake_model, workdir)
    appends: list[list[str]] = []
    real_append = memory_service.append

    keys: list[str] = []

    def append(owner: str, sid: str, messages: list[Any], **kw: Any) -> Any:
        appends.append([m["role"] for m in messages])
        keys.append(kw["idempotency_key"])
        return real_append(owner, sid, messages, **kw)

    memory_service.append = append  # type: ignore[method-assign]
    fake_model.reply("I'll read it.", call("c1", "read_file", path="hello.py"), usage=(100, 10, 0))
    seen_before_second: list[int] = []

    def second(body: dict[str, Any]) -> Step:
        seen_before_second.append(len(memory_service.messages(me, agent.session_id)))
        return Step(text="It prints hello.", usage=(150, 5, 50))

    fake_model.responder = second
    result = agent.turn("What does hello.py do?")
    assert appends == [["user"], ["assistant"], ["tool"], ["assistant"]]  # one at a time
    assert len(set(keys)) == 4 and all(keys)  # each append can be retried safely, once
    assert seen_before_second == [3]  # stored before the model was asked again
    assert (result.answer, result.steps, result.interrupted) == ("It prints hello.", 2, False)
    messages = memory_service.messages(me, agent.session_id)
    assert [(m.role, m.parts, m.model, m.usage) for m in messages] == [
        ("user", [{"type": "text", "text": "What does hello.py do?"}], None, None),
        (
            "assistant",
            [
                {"type": "text", "text": "I'll read it."},
                {
                    "type": "tool_call",
                    "id": "c1",
                    "name": "read_file",
                    "input": {"path": "hello.py"},
                },
            ],
            MODEL,
            {"input_tokens": 100, "output_tokens": 10, "cost_usd": 0.00012},
        ),
        (
            "tool",
            [
                {
                    "type": "tool_result",
                    "tool_call_id": "c1",
                    "name": "read_file",
                    "output": "1\tprint('hello')",
                }
            ],
            None,
            None,
        ),
        (
            "assistant",
            [{"type": "text", "text": "It prints hello."}],
            MODEL,
            {
                "input_tokens": 100,
                "output_tokens": 5,
                "cache_read_tokens": 50,
                "cost_usd": 0.000135,
            },
        ),
    ]
    session = memory_service.get(me, agent.session_id)
    assert session.title == "What does hello.py do?"
    assert session.totals.to_dict() == {
        "input_tokens": 200,
        "output_tokens": 15,
        "cache_read_tokens": 50,
        "cache_write_tokens": 0,
        "cost_usd": 0.000255,
    }
    assert result.usage == session.totals.to_dict()
    assert session.metadata == {
        "agent": "baton",
        "mode": "chat",
        "model": MODEL,
        "files_read": ["hello.py"],
        "files_written": [],
    }
    second_request = fake_model.requests[1]["messages"]
    assert (
        second_request[0]["role"] == "system"
        and str(workdir.resolve()) in second_request[0]["content"]
    )
    assert second_request[1:] == [
        {"role": "user", "content": "What does hello.py do?"},
        {
            "role": "assistant",
            "content": "I'll read it.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "hello.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "1\tprint('hello')"},
    ]
    assert [t["function"]["name"] for t in fake_model.requests[0]["tools"]] == [
        "list_files",
        "read_file",
        "search_files",
        "write_file",
        "edit_file",
        "run_command",
    ]


class Crash(Exception):
    pass


class CrashingTools(Tools):
    """The process dies while the tool runs (as kill -9 would, from the store's view)."""

    def run(self, name: str, args: dict[str, Any]) -> Outcome:
        raise Crash("killed")


def test_a_crash_after_a_tool_call_is_repaired_on_resume(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    dying = make_agent(memory_service, me, fake_model, workdir, tools=CrashingTools(workdir))
    fake_model.reply("Running the tests.", call("c1", "run_command", command="pytest"))
    with pytest.raises(Crash):
        dying.turn("run the tests")
    assert [role for role, _ in stored(dying)] == ["user", "assistant"]
    assert stored(dying)[1][1][1]["type"] == "tool_call"  # the call is kept
    # a new process resumes the same session
    fake_model.reply("The run was cut short; shall I retry?")
    again = make_agent(memory_service, me, fake_model, workdir, dying.session_id)
    result = again.turn("what happened?")
    assert result.answer == "The run was cut short; shall I retry?"
    assert stored(again)[2:] == [
        (
            "tool",
            [
                {
                    "type": "tool_result",
                    "tool_call_id": "c1",
                    "name": "run_command",
                    "output": INTERRUPTED_TOOL,
                    "is_error": True,
                }
            ],
        ),
        ("user", [{"type": "text", "text": "what happened?"}]),
        ("assistant", [{"type": "text", "text": "The run was cut short; shall I retry?"}]),
    ]
    sent = fake_model.requests[-1]["messages"][1:]
    assert sent == [
        {"role": "user", "content": "run the tests"},
        {
            "role": "assistant",
            "content": "Running the tests.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "run_command", "arguments": '{"command": "pytest"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": INTERRUPTED_TOOL},
        {"role": "user", "content": "what happened?"},
    ]


def test_rebuild_repairs_gaps_and_orphans_anywhere_in_the_chain(
    memory_service: Service, me: str
) -> None:
    sid = memory_service.create(me).id
    raw = [
        {"role": "user", "parts": [{"type": "text", "text": "go"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "a", "name": "list_files", "input": {}},
                {"type": "tool_call", "id": "b", "name": "read_file", "input": {"path": "x"}},
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "b", "output": "B"}]},
        {"role": "user", "parts": [{"type": "text", "text": "and?"}]},
        {"role": "tool", "parts": [{"type": "tool_result", "tool_call_id": "zz", "output": "?"}]},
        {"role": "assistant", "parts": [{"type": "reasoning", "text": "hmm"}]},
        {"role": "system", "parts": [{"type": "text", "text": "be brief"}]},
    ]
    memory_service.append(me, sid, raw)
    rebuilt = rebuild(memory_service.messages(me, sid), "SYS")
    assert rebuilt == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "list_files", "arguments": "{}"},
                },
                {
                    "id": "b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "x"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": INTERRUPTED_TOOL},
        {"role": "user", "content": "and?"},
        {"role": "user", "content": "[tool note] [result of an earlier tool call]\n?"},
        {"role": "user", "content": "[system note] be brief"},
    ]


def test_a_cancel_during_streaming_keeps_what_was_said_and_records_the_interruption(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    cancel = Cancel()

    class StopAfterFirstWords(Quiet):
        def text(self, delta: str) -> None:
            cancel.set()

    agent = make_agent(memory_service, me, fake_model, workdir, display=StopAfterFirstWords())
    fake_model.reply("one two three four five six seven", chunk=4, delay=0.02)
    result = agent.turn("count", cancel)
    assert result.interrupted and result.steps == 0
    assert stored(agent) == [
        ("user", [{"type": "text", "text": "count"}]),
        ("assistant", [{"type": "text", "text": "one "}]),
        ("user", [{"type": "text", "text": INTERRUPTED_TURN}]),
    ]
    # the provider reports usage only at the end of a stream: the cut answer has an estimate
    asked = estimate(fake_model.requests[0]["messages"]) + estimate(agent.tools.specs)
    usage = {"input_tokens": asked, "output_tokens": 1, "estimated": True}
    usage["cost_usd"] = round(asked * 1.0 / 1e6 + 1 * 2.0 / 1e6, 9)
    assert agent.chain[1].usage == usage
    assert result.usage["input_tokens"] == asked and result.usage["output_tokens"] == 1
    assert not cancel.is_set  # ready for the next turn
    fake_model.reply("Stopped at one.")
    agent.display = Quiet()
    assert agent.turn("where did you stop?", cancel).answer == "Stopped at one."
    assert fake_model.requests[-1]["messages"][1:] == [
        {"role": "user", "content": "count"},
        {"role": "assistant", "content": "one "},
        {"role": "user", "content": INTERRUPTED_TURN},
        {"role": "user", "content": "where did you stop?"},
    ]


def test_ctrl_c_during_a_command_stops_it_and_is_recorded(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    agent = make_agent(memory_service, me, fake_model, workdir)
    command = "echo halfway; echo started > started.txt; sleep 30; echo no > end.txt"
    fake_model.reply("", call("c1", "run_command", command=command), call("c2", "list_files"))

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 60
        while not (workdir / "started.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # "halfway" is in the pipe already: written before started.txt was
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_started)
    before = signal.getsignal(signal.SIGINT)  # an xdist worker ignores SIGINT, pytest does not
    cancel = Cancel()
    with cancel.installed():
        started = time.monotonic()
        timer.start()
        result = agent.turn("run it", cancel)
    timer.join()
    assert time.monotonic() - started < 60
    assert result.interrupted
    assert not (workdir / "end.txt").exists()
    assert [
        (role, parts[0].get("output", parts[0].get("text"))) for role, parts in stored(agent)
    ] == [
        ("user", "run it"),
        ("assistant", None),
        ("tool", f"halfway\n{INTERRUPTED_BY_USER}"),  # the partial output is kept
        ("tool", NOT_RUN),
        ("user", INTERRUPTED_TURN),
    ]
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_a_streamed_answer_is_appended_in_partial_chunks_that_readers_join(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(loop, "FLUSH_EVERY", 0.0)  # store what was shown at every chunk
    seen: list[list[str]] = []

    class Watch(Quiet):
        def text(self, delta: str) -> None:
            seen.append([m.id for m in agent.chain])

    agent = make_agent(memory_service, me, fake_model, workdir, display=Watch())
    fake_model.reply("", call("c1", "write_file", path="a.txt", content="A"))
    fake_model.reply("one two three four", chunk=4, usage=(100, 5, 0))
    assert agent.turn("count").answer == "one two three four"
    chain = memory_service.messages(me, agent.session_id)
    assert [(m.role, m.parts) for m in chain[2:]] == [
        (
            "tool",
            [
                {
                    "type": "tool_result",
                    "tool_call_id": "c1",
                    "name": "write_file",
                    "output": "created a.txt (1 bytes)",
                    "metadata": {  # per tool result
                        "diff": "--- /dev/null\n+++ b/a.txt\n@@ -0,0 +1 @@\n+A\n",
                        "files_written": ["a.txt"],
                    },
                }
            ],
        ),
        ("assistant", [{"type": "text", "text": "one two ", "partial": True}]),
        ("assistant", [{"type": "text", "text": "thre", "partial": True}]),
        ("assistant", [{"type": "text", "text": "e fo", "partial": True}]),
        ("assistant", [{"type": "text", "text": "ur", "partial": True}]),
        ("assistant", [{"type": "text", "text": ""}]),  # the end of the answer, with its usage
    ]
    assert [m.usage is None for m in chain[3:]] == [True, True, True, True, False]
    # appended, never rewritten: each id seen while streaming is still the chain's
    ids = [m.id for m in chain]
    assert len(seen) == 5 and all(ids[: len(before)] == before for before in seen)
    assert memory_service.verify(me, agent.session_id).ok
    # the model sees one answer
    fake_model.reply("Four words.")
    agent.turn("how many?")
    sent = fake_model.requests[-1]["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": "one two three four"},
        {"role": "user", "content": "how many?"},
    ]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "tool", "assistant", "user"]


def test_a_reply_cut_short_in_partial_chunks_is_shown_and_sent_as_one(
    memory_service: Service, me: str
) -> None:
    sid = memory_service.create(me).id
    chunk = {"role": "assistant", "model": MODEL}
    memory_service.append(
        me,
        sid,
        [
            {"role": "user", "parts": [{"type": "text", "text": "count"}]},
            {**chunk, "parts": [{"type": "text", "text": "one tw", "partial": True}]},
            {**chunk, "parts": [{"type": "text", "text": "o three", "partial": True}]},
            {"role": "user", "parts": [{"type": "text", "text": "go on"}]},
        ],
    )
    chain = memory_service.messages(me, sid)
    assert rebuild(chain, "sys")[1:] == [
        {"role": "user", "content": "count"},
        {"role": "assistant", "content": "one two three"},
        {"role": "user", "content": "go on"},
    ]
    out = Console(file=io.StringIO(), width=100, color_system=None)
    show_history(out, chain, None)
    shown = [line.rstrip() for line in out.file.getvalue().splitlines()]
    assert shown == ["› count", "one two three", "› go on"]


def test_writes_and_commands_ask_first_and_a_refusal_goes_back_to_the_model(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    asked: list[tuple[str, str]] = []
    answers = [True, False]

    def confirm(name: str, args: dict[str, Any], description: str) -> bool:
        asked.append((name, description))
        return answers.pop(0)

    agent = make_agent(memory_service, me, fake_model, workdir, confirm=confirm)
    fake_model.reply("", call("c0", "read_file", path="hello.py"))
    fake_model.reply("", call("c1", "write_file", path="a.txt", content="A"))
    fake_model.reply("", call("c2", "run_command", command="touch b.txt"))
    fake_model.reply("I could not run it.")
    result = agent.turn("make a.txt then b.txt")
    assert asked == [("write_file", "write a.txt (1 bytes)"), ("run_command", "run: touch b.txt")]
    assert (workdir / "a.txt").read_text() == "A" and not (workdir / "b.txt").exists()
    results = [parts[0] for role, parts in stored(agent) if role == "tool"]
    assert [(r["output"], r.get("is_error", False)) for r in results] == [
        ("1\tprint('hello')", False),
        ("created a.txt (1 bytes)", False),
        (REFUSED, True),
    ]
    assert fake_model.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "c2",
        "content": REFUSED,
    }
    assert result.written == ["a.txt"] and result.commands == 0


def test_a_big_output_is_kept_whole_as_a_blob_and_capped_for_the_model(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    agent = make_agent(memory_service, me, fake_model, workdir)
    fake_model.reply("", call("c1", "run_command", command="seq 1 30000"))
    fake_model.reply("30000 lines.")
    agent.turn("count to 30000")
    full = "\n".join(str(n) for n in range(1, 30001)) + "\n\n[exit code 0]"
    lean = stored(agent)[2][1][0]
    assert lean["type"] == "blob_ref" and lean["of"] == "tool_result"
    assert lean["sha256"] == ids.sha256_hex(full.encode()) and lean["size"] == len(full)
    whole = stored(agent, hydrate=True)[2][1][0]
    assert whole["type"] == "tool_result" and whole["output"] == full
    sent = fake_model.requests[-1]["messages"][-1]["content"]
    assert sent == whole["model_output"] and len(sent) < 16_200 and "characters cut here" in sent


def test_compaction_appends_a_summary_and_starts_later_requests_from_it(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    agent = make_agent(memory_service, me, fake_model, workdir, context_window=10_000)
    fake_model.reply("First answer.", usage=(100, 10, 0))
    agent.turn("first question")
    assert len(fake_model.requests) == 1
    fake_model.reply("", call("c1", "list_files"), usage=(9000, 10, 0))  # near the window
    fake_model.reply("SUMMARY: asked two questions, listed the files.", usage=(500, 50, 0))
    fake_model.reply("Second answer.", usage=(300, 5, 0))
    result = agent.turn("second question")
    assert result.compacted == 1 and result.answer == "Second answer."
    summary_request = fake_model.requests[2]
    assert "stream" not in summary_request and "tools" not in summary_request
    assert summary_request["messages"][-1] == {"role": "user", "content": COMPACT_REQUEST}
    assert summary_request["messages"][1] == {"role": "user", "content": "first question"}
    summary = SUMMARY_PREFIX + "SUMMARY: asked two questions, listed the files."
    assert fake_model.requests[3]["messages"][1:] == [{"role": "user", "content": summary}]
    fake_model.reply("Third answer.")
    agent.turn("third question")
    assert fake_model.requests[4]["messages"][1:] == [
        {"role": "user", "content": summary},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "third question"},
    ]
    # the history is complete in the store, the summary one more message in it
    chain = stored(agent)
    assert [role for role, _ in chain] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "system",
        "assistant",
        "user",
        "assistant",
    ]
    assert chain[5][1] == [{"type": "text", "text": summary, "compaction": True}]
    totals = memory_service.get(me, agent.session_id).totals
    assert totals.input_tokens == 100 + 9000 + 500 + 300 + 100  # the summary's cost counts
    # a new agent on the same session (a resume) also starts from the summary
    fake_model.reply("Fourth.")
    make_agent(memory_service, me, fake_model, workdir, agent.session_id).turn("fourth")
    assert fake_model.requests[5]["messages"][1] == {"role": "user", "content": summary}


def test_a_turn_that_changes_files_records_a_git_snapshot(
    memory_service: Service, me: str, fake_model: FakeModel, git_repo: Path
) -> None:
    def put(data: bytes) -> str:
        sha = ids.sha256_hex(data)
        memory_service.put_blob(sha, data, me)  # as the CLI's capture does
        return sha

    before = gitstate.capture(git_repo, put)
    assert before is not None and before["dirty"] is False
    sid = memory_service.create(me, git=before).id
    agent = make_agent(
        memory_service,
        me,
        fake_model,
        git_repo,
        sid,
        snapshot=lambda: gitstate.capture(git_repo, put),
    )
    fake_model.reply("", call("c1", "write_file", path="NOTES.md", content="notes\n"))
    fake_model.reply("Wrote NOTES.md.")
    agent.turn("write notes")
    session = memory_service.get(me, sid)
    assert session.git is not None and session.git["dirty"] is True
    assert session.git["state"] != before["state"] and session.git["patch"]["files"] == 1
    assert session.metadata["files_written"] == ["NOTES.md"]
    # a turn that only reads takes no new snapshot
    version = session.version
    fake_model.reply("Nothing to change.")
    agent.turn("anything else?")
    after = memory_service.get(me, sid)
    assert after.git == session.git and after.version == version + 2  # the two appends only


def test_a_turn_stops_rather_than_interleave_with_another_writer(
    memory_service: Service, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    """One session, one chain: when another writer (a server run, another terminal) records
    in the session while a turn waits for the model, the turn's answer is not appended after
    it; the turn stops with a one-line error, and the next turn starts from the new head."""
    agent = make_agent(memory_service, me, fake_model, workdir)
    elsewhere = {"role": "user", "parts": [{"type": "text", "text": "from the server"}]}

    def meanwhile(body: dict[str, Any]) -> Step:
        memory_service.append(me, agent.session_id, [elsewhere])
        return Step(text="my answer")

    fake_model.responder = meanwhile
    with pytest.raises(loop.Moved) as moved:
        agent.turn("Do it")
    assert moved.value.status == 409
    assert moved.value.message == (
        f"session {agent.session_id} moved on elsewhere while this turn ran (1 message(s) "
        "recorded by another writer: a server run or another terminal); this turn stopped so "
        "the two do not interleave. The new messages are loaded: send your prompt again"
    )
    assert [(role, parts[0]["text"]) for role, parts in stored(agent)] == [
        ("user", "Do it"),
        ("user", "from the server"),
    ]
    fake_model.responder = None
    fake_model.reply("next answer")
    assert agent.turn("Again").answer == "next answer"
    assert [parts[0]["text"] for _, parts in stored(agent)][-2:] == ["Again", "next answer"]
