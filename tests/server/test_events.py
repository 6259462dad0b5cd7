"""GET /api/sessions/{id}/events: replay from the chain (Last-Event-ID, ?after), live messages
on an open stream (through the service's hub, and through the 1 s poll of the head when another
process appends), run and delta events, streamed chunks joined as the page joins them, the
headers proxies need, owner-only; and the client's `events` iterator."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from baton.client import Client, ServerEvent, parse_events
from baton.runs.events import Hub
from baton.server.api import events as events_api
from tests.fixtures.servers import Live, make_service
from tests.helpers import streamed_turns, text_message, tool_turn

WAIT = 10.0


def texts(events: list[ServerEvent]) -> list[str]:
    return [e.data["message"]["parts"][0].get("text", "") for e in events if e.event == "message"]


def replay(live: Live, session_id: str, **options: object) -> list[ServerEvent]:
    """The events of a `follow=false` stream (it ends after the replay)."""
    headers = options.pop("headers", {})
    params = {"follow": "false", **options}
    with live.client(live.alice, headers=headers) as http:
        response = http.get(f"/api/sessions/{session_id}/events", params=params)
    assert response.status_code == 200, response.text
    return list(parse_events(response.text.splitlines()))


@contextmanager
def watching(
    url: str, token: str, session_id: str, after: int = 0
) -> Iterator[queue.Queue[ServerEvent]]:
    """The events of a followed stream, put on a queue by a thread as they arrive."""
    got: queue.Queue[ServerEvent] = queue.Queue()
    client = Client(url, token)
    stop = threading.Event()

    def read() -> None:
        try:
            for event in client.events(session_id, after):
                got.put(event)
                if stop.is_set():
                    return
        except Exception as exc:  # shown by the test that waits for an event
            got.put(ServerEvent("error", str(exc)))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        stop.set()
        client.close()


def next_event(got: queue.Queue[ServerEvent], kind: str = "message") -> ServerEvent:
    deadline = time.monotonic() + WAIT
    while True:
        event = got.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert event.event != "error", event.data
        if event.event == kind:
            return event


def test_replay_with_last_event_id_loses_nothing_and_duplicates_nothing(live: Live) -> None:
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="replay")
    svc.append(me, session.id, [text_message("user", f"m{i}") for i in range(1, 8)])

    everything = replay(live, session.id)
    assert [e.id for e in everything] == [1, 2, 3, 4, 5, 6, 7]
    assert texts(everything) == ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
    stored = svc.messages(me, session.id)
    assert [e.data["message"] for e in everything] == [m.to_dict() for m in stored]
    assert [e.data["position"] for e in everything] == [1, 2, 3, 4, 5, 6, 7]

    # a client that saw up to 3 gets 4… exactly once; the header wins over ?after
    rest = replay(live, session.id, headers={"Last-Event-ID": "3"})
    assert [e.id for e in rest] == [4, 5, 6, 7] and texts(rest) == ["m4", "m5", "m6", "m7"]
    assert texts(replay(live, session.id, after=5)) == ["m6", "m7"]
    both = replay(live, session.id, after=1, headers={"Last-Event-ID": "6"})
    assert texts(both) == ["m7"]
    assert replay(live, session.id, headers={"Last-Event-ID": "7"}) == []
    # a client ahead of the chain (it was rewound) is told to start again
    assert replay(live, session.id, after=99) == [ServerEvent("reset", {"count": 7})]

    with live.client(live.alice, headers={"Last-Event-ID": "x1"}) as http:
        bad = http.get(f"/api/sessions/{session.id}/events", params={"follow": "false"})
    assert bad.status_code == 422


def test_a_message_event_carries_the_card_the_session_page_shows(live: Live) -> None:
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="cards")
    svc.append(
        me,
        session.id,
        [
            text_message("user", "run **ls**"),
            *tool_turn("c1", "bash", {"command": "ls"}, "a.txt\nb.txt"),
            text_message("assistant", "Two files."),
        ],
    )
    events = replay(live, session.id)
    with live.client(live.alice) as http:
        page = http.get(f"/sessions/{session.id}").text
    assert len(events) == 4
    for event in events:
        assert event.data["html"].startswith(
            f'<li class="message role-{event.data["message"]["role"]}" id="{event.data["message"]["id"]}"'
        )
        assert event.data["html"] in page
    assert "<strong>ls</strong>" in events[0].data["html"]
    assert '<span class="tool-name">bash</span>' in events[2].data["html"]
    assert '<span class="facts">2 lines · 0 ms</span>' in events[2].data["html"]
    # resumed after the call, the result still names its tool (read back from the chain)
    [result] = replay(live, session.id, after=2)[:1]
    assert result.data["html"] == events[2].data["html"]


def test_streamed_chunks_are_joined_as_the_page_joins_them(live: Live) -> None:
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="streamed")
    svc.append(me, session.id, streamed_turns())
    events = replay(live, session.id)
    assert [e.id for e in events] == list(range(1, 10))
    replaces = [e.data.get("replaces") for e in events]
    ids = [e.data["message"]["id"] for e in events]
    # each chunk's card replaces the one before; the answer's last message replaces the last
    assert replaces == [None, None, ids[1], ids[2], ids[3], None, None, ids[6], None]
    with live.client(live.alice) as http:
        page = http.get(f"/sessions/{session.id}").text
    shown = [events[4], events[7], events[8], events[0], events[5]]  # the cards a reload shows
    for event in shown:
        assert event.data["html"] in page
    assert re.search(r">#2–#5<", events[4].data["html"])
    assert "one two three four" in re.sub(r"<[^>]+>", "", events[4].data["html"])
    # resumed in the middle of the answer: the chunks before are read back and joined
    resumed = replay(live, session.id, after=3)
    assert resumed[1].data["html"] == events[4].data["html"]
    assert resumed[0].data["replaces"] == ids[2]


def test_the_stream_is_owner_only(live: Live) -> None:
    svc = live.service
    session = svc.create(live.alice.id, title="private")
    svc.append(live.alice.id, session.id, [text_message("user", "secret plans")])
    path = f"/api/sessions/{session.id}/events"
    with live.client(live.bob) as http:
        foreign = http.get(path, params={"follow": "false"})
        unknown = http.get("/api/sessions/ses_01AAAAAAAAAAAAAAAAAAAAAAAA/events")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == {"error": {"code": "not_found", "message": f"no session {session.id}"}}
    assert "secret plans" not in foreign.text
    with live.client() as http:
        anonymous = http.get(path, params={"follow": "false"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_a_live_append_reaches_an_open_stream_and_a_reconnect_replays(
    live_server: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "POLL", 60.0)  # so what arrives came through the hub
    live = live_server
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="live")
    svc.append(me, session.id, [text_message("user", "first")])
    path = f"/api/sessions/{session.id}/events"
    with live.client(live.alice) as http, http.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-length" not in response.headers
    with watching(live.url, live.alice.token, session.id) as got:
        assert next_event(got).data["message"]["parts"][0]["text"] == "first"
        with live.client(live.alice) as http:
            posted = http.post(
                f"/api/sessions/{session.id}/messages",
                json={"messages": [text_message("assistant", "second")]},
            )
        assert posted.status_code == 201
        event = next_event(got)
        assert (event.id, texts([event])) == (2, ["second"])
        svc.events.publish(session.id, {"kind": "delta", "text": "thinking about "})
        svc.events.publish(session.id, {"kind": "delta", "text": "it"})
        assert next_event(got, "delta").data == {"text": "thinking about "}
        assert next_event(got, "delta").data == {"text": "it"}
        run = {"id": "run_x", "session_id": session.id, "state": "running"}
        svc.events.publish(session.id, {"kind": "run", "run": run})
        assert next_event(got, "run").data == run
    # away for a while: a reconnect from the last id gets exactly what was missed
    svc.append(me, session.id, [text_message("user", "third"), text_message("user", "fourth")])
    with watching(live.url, live.alice.token, session.id, after=2) as got:
        assert [next_event(got).id, next_event(got).id] == [3, 4]
        svc.append(me, session.id, [text_message("user", "fifth")])
        fifth = next_event(got)
        assert (fifth.id, texts([fifth])) == (5, ["fifth"])
        assert got.empty()


def test_another_process_appending_is_seen_through_the_poll(
    live_server: Live, tmp_path: Path
) -> None:
    live = live_server
    session = live.service.create(live.alice.id, title="from the CLI")
    other = make_service(tmp_path / "server")  # the same SQLite file, no hub of the server's
    assert not isinstance(other.events, Hub)
    with watching(live.url, live.alice.token, session.id) as got:
        time.sleep(0.2)
        other.append(live.alice.id, session.id, [text_message("user", "from elsewhere")])
        event = next_event(got)
        assert (event.id, texts([event])) == (1, ["from elsewhere"])
    other.store.close()


def test_an_idle_stream_gets_heartbeats_and_the_watcher_goes_when_the_client_does(
    live_server: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "HEARTBEAT", 0.3)
    live = live_server
    session = live.service.create(live.alice.id, title="quiet")
    hub = live.service.events
    assert isinstance(hub, Hub)
    path = f"/api/sessions/{session.id}/events"
    with live.client(live.alice) as http, http.stream("GET", path) as response:
        lines = []
        for line in response.iter_lines():  # leaving this loop closes the connection
            lines.append(line)
            if line == ": keep-alive":
                assert hub.watchers(session.id) == 1
                break
        assert lines[:2] == ["retry: 1000", ""]
    deadline = time.monotonic() + WAIT
    while hub.watchers(session.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub.watchers(session.id) == 0


def test_parse_events() -> None:
    lines = [
        "retry: 1000",
        "",
        ": keep-alive",
        "",
        "id: 3",
        "event: message",
        'data: {"position": 3}',
        "",
        "event: delta",
        'data: {"text": "a"}',
        "",
    ]
    assert list(parse_events(lines)) == [
        ServerEvent("message", {"position": 3}, 3),
        ServerEvent("delta", {"text": "a"}, None),
    ]


def test_two_servers_on_postgresql_an_append_through_a_reaches_a_stream_on_b(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_api, "POLL", 60.0)  # so what arrives came through NOTIFY
    from baton.config import Settings, build_service
    from baton.runs.events import Bus
    from baton.server import create_app
    from tests.fixtures.servers import SECRET, ThreadServer, person

    settings = Settings.load(home=str(tmp_path)).replace(database_url=postgres_url)
    a, b = build_service(settings), build_service(settings)
    assert isinstance(a.events, Bus) and isinstance(b.events, Bus)
    alice = person(a, "alice", "Alice Example")
    session = a.create(alice.id, title="across servers")
    a.append(alice.id, session.id, [text_message("user", "before")])
    try:
        with (
            ThreadServer(create_app(a, secret=SECRET)) as url_a,
            ThreadServer(create_app(b, secret=SECRET)) as url_b,
            watching(url_b, alice.token, session.id) as got,
        ):
            assert texts([next_event(got)]) == ["before"]
            assert b.events.listen()  # LISTEN is in effect on B
            client = Client(url_a, alice.token)
            client.append(alice.id, session.id, [text_message("assistant", "through A")])
            client.close()
            event = next_event(got)
            assert (event.id, texts([event])) == (2, ["through A"])
            run = {"id": "run_y", "session_id": session.id, "state": "preparing"}
            a.events.publish(session.id, {"kind": "run", "run": run})
            assert next_event(got, "run").data == run
            a.events.publish(session.id, {"kind": "delta", "text": "x" * 20_000})
            cut = next_event(got, "delta").data["text"]
            assert 7000 < len(cut) < 7900 and set(cut) == {"x"}
    finally:
        for service in (a, b):
            service.events.close()  # type: ignore[attr-defined]
            service.close()


def test_a_runs_states_reach_the_stream_as_the_worker_moves_it(live_server: Live) -> None:
    live = live_server
    svc, me = live.service, live.alice.id
    repo = svc.add_repo(me, "/srv/git/widgets")
    env = svc.add_environment(me, "plain")
    run, session = svc.start_run(me, "Add a README", repo=repo.id, environment=env.id)
    # on connect: the messages so far, then the latest run
    with watching(live.url, live.alice.token, session.id) as got:
        first = next_event(got, "run")
        assert first.data == run.to_dict() and first.data["state"] == "queued"
        claimed = svc.claim_run("worker-1")
        assert claimed is not None and claimed.id == run.id
        assert next_event(got, "run").data == claimed.to_dict()
        svc.move_run(run.id, "running")
        assert next_event(got, "run").data["state"] == "running"
        svc.append(me, session.id, [text_message("assistant", "Done: README.md added.")])
        assert texts([next_event(got)]) == ["Done: README.md added."]
        done = svc.move_run(run.id, "done")
        assert next_event(got, "run").data == done.to_dict()
    # a stream opened later starts with the run as it ended
    replayed = replay_from(live, session.id)
    assert replayed[-1] == ServerEvent("run", done.to_dict())


def replay_from(live: Live, session_id: str) -> list[ServerEvent]:
    client = Client(live.url, live.alice.token)
    try:
        return list(client.events(session_id, follow=False))
    finally:
        client.close()


def test_the_client_reconnects_from_the_last_message_when_a_stream_ends(live_server: Live) -> None:
    live = live_server
    svc, me = live.service, live.alice.id
    session = svc.create(me, title="reconnect")
    svc.append(me, session.id, [text_message("user", "one"), text_message("user", "two")])
    hub = svc.events
    assert isinstance(hub, Hub)
    with watching(live.url, live.alice.token, session.id) as got:
        assert [next_event(got).id, next_event(got).id] == [1, 2]
        live.app.state.close_streams()  # what a server that stops does to open streams
        deadline = time.monotonic() + WAIT
        while hub.watchers(session.id) != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        svc.append(me, session.id, [text_message("user", "three")])
        third = next_event(got)
        assert (third.id, texts([third])) == (3, ["three"])
        time.sleep(0.3)
        assert [e for e in list(got.queue) if e.event == "message"] == []  # nothing twice


def test_a_run_moved_by_another_process_is_seen_through_the_poll(
    live_server: Live, tmp_path: Path
) -> None:
    live = live_server
    svc, me = live.service, live.alice.id
    repo = svc.add_repo(me, "/srv/git/widgets")
    _, session = svc.start_run(me, "Add a README", repo=repo.id)
    other = make_service(tmp_path / "server")  # a worker beside the store, without the hub
    try:
        with watching(live.url, live.alice.token, session.id) as got:
            assert next_event(got, "run").data["state"] == "queued"
            claimed = other.claim_run("worker-elsewhere")
            assert claimed is not None
            assert next_event(got, "run").data == claimed.to_dict()
            time.sleep(1.5)  # polls that find nothing new send nothing
            assert [e for e in list(got.queue) if e.event == "run"] == []
    finally:
        other.store.close()
