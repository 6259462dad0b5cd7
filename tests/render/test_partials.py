"""A streamed answer stored in chunks (baton.core.partials) reads as one message in the
human views — the HTML and Markdown exports and the opencode export, which opencode resumes —
while the JSON export keeps the chunks as stored. Over every backend."""

from __future__ import annotations

import re

from baton.core.models import Message
from baton.core.partials import is_partial, join_partials, join_runs
from baton.service import Service
from tests.helpers import streamed_turns

NOW = "2026-11-25T09:30:00.000000Z"


def stored(service: Service, owner: str) -> str:
    session = service.create(owner, title="Counting")
    service.append(owner, session.id, streamed_turns())
    return session.id


def test_join_runs_joins_each_run_into_the_message_after_it_or_one_of_its_own(
    service: Service, owner: str
) -> None:
    messages = service.messages(owner, stored(service, owner))
    partial = [is_partial(m) for m in messages]
    assert partial == [False, True, True, True, False, False, True, True, False]
    runs = join_runs(messages)
    assert [(m.role, m.parts, count) for m, count in runs] == [
        ("user", [{"type": "text", "text": "Count to four"}], 1),
        ("assistant", [{"type": "text", "text": "one two three four"}], 4),
        ("user", [{"type": "text", "text": "And on?"}], 1),
        ("assistant", [{"type": "text", "text": "five six"}], 2),
        ("user", [{"type": "text", "text": "Stop"}], 1),
    ]
    # each keeps the id of its last stored message; the finished one its model and usage
    assert [m.id for m, _ in runs] == [messages[i].id for i in (0, 4, 5, 7, 8)]
    assert runs[1][0].model == "qwen-coder" and runs[1][0].usage == messages[4].usage
    assert join_partials(messages) == [m for m, _ in runs]


def test_html_export_shows_one_card_per_answer(service: Service, owner: str) -> None:
    exported = service.export(owner, stored(service, owner), "html")
    assert isinstance(exported, str)
    cards = re.findall(r'<li class="message role-(\w+)"', exported)
    assert cards == ["user", "assistant", "user", "assistant", "user"]
    assert exported.count("one two three four") == 1
    assert '<div class="text"><p>one two three four</p>\n</div>' in exported
    assert '<div class="text"><p>five six</p>\n</div>' in exported
    assert "<p>one tw</p>" not in exported and "<p>e four</p>" not in exported
    anchors = re.findall(
        r'<a class="anchor" href="#\w+" title="Link to this message">([^<]+)</a>', exported
    )
    assert anchors == ["#1", "#2–#5", "#6", "#7–#8", "#9"]
    assert "<dt>Messages</dt><dd>9</dd>" in exported  # the stored count


def test_markdown_export_shows_one_heading_per_answer(service: Service, owner: str) -> None:
    exported = service.export(owner, stored(service, owner), "markdown")
    assert isinstance(exported, str)
    headings = re.findall(r"^## (.+)$", exported, re.M)
    assert headings == ["User", "Assistant (qwen-coder)", "User", "Assistant", "User"]
    assert exported.count("one two three four") == 1
    assert "\n\none two three four\n\n## User" in exported
    assert re.search(r"## Assistant\n\n\*[^*\n]+\*\n\nfive six\n\n## User\n", exported)


def test_json_export_keeps_the_chunks_as_stored(service: Service, owner: str) -> None:
    doc = service.export(owner, stored(service, owner), "json")
    assert isinstance(doc, dict)
    assert [m["parts"] for m in doc["messages"]][1:5] == [
        [{"type": "text", "text": "one tw", "partial": True}],
        [{"type": "text", "text": "o thr", "partial": True}],
        [{"type": "text", "text": "e", "partial": True}],
        [{"type": "text", "text": "e four"}],
    ]
    assert len(doc["messages"]) == 9


def test_opencode_export_has_one_assistant_message_per_answer(service: Service, owner: str) -> None:
    doc = service.export(owner, stored(service, owner), "opencode")
    assert isinstance(doc, dict)
    texts = [
        (m["info"]["role"], [p["text"] for p in m["parts"] if p["type"] == "text"])
        for m in doc["messages"]
    ]
    assert texts == [
        ("user", ["Count to four"]),
        ("assistant", ["one two three four"]),
        ("user", ["And on?"]),
        ("assistant", ["five six"]),
        ("user", ["Stop"]),
    ]


def test_a_lone_message_is_left_as_it_is() -> None:
    message = Message("m1", None, "assistant", [{"type": "text", "text": "hi"}], NOW)
    assert join_runs([message]) == [(message, 1)]
