"""GET /api/sessions/{id}/events: a session as it happens, as Server-Sent Events.

Event ids are message positions (counting from 1). `Last-Event-ID: N` (what a reconnecting
EventSource sends) or `?after=N` replays the messages after position N from the chain; then
each event of the session (baton.runs.events) makes the stream re-read the chain after the
last position it sent, so a lost event loses nothing and nothing is sent twice. A poll of the
session's head every second stands in for events nobody published here (another process
appending to the same SQLite file). Events:

- `message` (id N): `{"position", "message": <the API's message JSON>, "html": <the card the
  session page shows for it>}`; for a streamed answer stored in chunks the card is the joined
  answer so far, and `"replaces"` names the id of the card it supersedes (as a reload shows);
- `run`: the session's latest run (once on connect, then on each change; read again after a
  second without events, should a change have gone unannounced);
- `delta`: `{"text"}`, assistant text while it is generated (not stored; no id);
- `reset`: `{"count"}`, the chain is shorter than what was sent (it was rewound): reload.

A comment every 15 s keeps proxies from closing an idle stream; `X-Accel-Buffering: no` and
`Cache-Control: no-cache` keep them from holding it back. `follow=false` replays and ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from baton.core.errors import BatonError, InvalidInput
from baton.core.models import JSON, Message
from baton.core.partials import is_partial, join_runs
from baton.render.html import PAGE_PART_CHARS, Calls, message_html, tool_names
from baton.runs.events import Hub, Subscription
from baton.server.deps import Me, ServiceDep
from baton.service import Service

HEARTBEAT = 15.0  # seconds between keep-alive comments on an idle stream
POLL = 1.0  # seconds without an event before the session's head is read
BATCH = 200  # messages read from the chain at a time
READ_BACK = 100  # messages before the first one sent, read for tool names and a streamed run
RETRY = 1000  # milliseconds an EventSource waits before it reconnects
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

router = APIRouter()
T = TypeVar("T")


def sse(event: str, data: Any, id: int | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def _position(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not text.isdigit() or len(text) > 18:
            raise InvalidInput(f"Last-Event-ID {last_event_id!r} is not a message position")
        return int(text)
    return after or 0


class Watcher:
    """What one stream has sent, and how it renders what comes next (the same renderer and
    the same joining of streamed chunks as the session page)."""

    def __init__(self, service: Service, owner: str, session_id: str, after: int) -> None:
        self.service = service
        self.owner = owner
        self.session_id = session_id
        self.sent = after  # the last position sent
        self.tools: Calls = {}
        self.carry: list[Message] = []  # the streamed chunks of an answer not yet complete
        self.run: JSON | None = None  # the run as last sent

    def open(self) -> None:
        """Check the session is the caller's (404 otherwise) and read what comes before the
        first message to send: the names of the tools called, a streamed answer's chunks."""
        session = self.service.get(self.owner, self.session_id)
        start = min(self.sent, session.message_count)
        if start == 0:
            return
        back = max(start - READ_BACK, 0)
        before = self.service.messages(self.owner, self.session_id, start=back, limit=start - back)
        tool_names(before, self.tools)
        for message in reversed(before):
            if not is_partial(message):
                break
            self.carry.insert(0, message)

    def catch_up(self) -> tuple[list[bytes], bool]:
        """The events for the messages after the last one sent (at most BATCH of them), and
        whether more are waiting."""
        session = self.service.get(self.owner, self.session_id)
        if session.message_count < self.sent:
            self.sent = session.message_count
            self.carry = []
            return [sse("reset", {"count": session.message_count})], False
        if session.message_count == self.sent:
            return [], False
        found = self.service.messages(self.owner, self.session_id, start=self.sent, limit=BATCH)
        out = [self.event(message) for message in found]
        return out, self.sent < session.message_count and len(found) == BATCH

    def appended(self, count: int, head: str) -> list[bytes]:
        """The events for an append that made the chain `count` messages long, ending at
        `head`: nothing when they were sent already. The messages are read once per process
        for every watcher of the session (`_appended`: the head names the whole chain)."""
        if count <= self.sent:
            return []
        limit = min(count - self.sent, BATCH)
        key = (self.session_id, head, self.sent, limit)
        found = _appended.get(key)
        if found is None:
            found = self.service.messages(self.owner, self.session_id, start=self.sent, limit=limit)
            if len(found) == limit and (limit < count - self.sent or found[-1].id == head):
                if len(_appended) >= 256:
                    _appended.clear()
                _appended[key] = found
        out = [self.event(message) for message in found]
        if self.sent < count:  # more than a batch, or the chain moved on since: read the rest
            chunks, _ = self.catch_up()
            out += chunks
        return out

    def event(self, message: Message) -> bytes:
        self.sent += 1
        position = self.sent
        tool_names([message], self.tools)
        data: JSON = {"position": position, "message": message.to_dict()}
        shown, count = message, 1
        if self.carry and (is_partial(message) or message.role == "assistant"):
            data["replaces"] = self.carry[-1].id
            [(shown, count)] = join_runs([*self.carry, message])
        if is_partial(message):
            self.carry.append(message)
        else:
            self.carry = []
        first = position - count + 1
        data["html"] = message_html(shown, position, self.tools, PAGE_PART_CHARS, first=first)
        return sse("message", data, position)

    def run_event(self, run: JSON | None) -> list[bytes]:
        """The event for the session's run as it is now: nothing when that was sent last."""
        if run is None or run == self.run:
            return []
        self.run = run
        return [sse("run", run)]

    def latest_run(self) -> JSON | None:
        """The session's latest run, if the service keeps runs."""
        runs: Callable[..., list[Any]] | None = getattr(self.service, "runs", None)
        if runs is None:
            return None
        try:
            found = runs(self.owner, session_id=self.session_id, limit=1)
        except NotImplementedError:
            return None
        if not found:
            return None
        data: JSON = found[0].to_dict()
        return data


# What the last appends added, by (session, head, after position, count): read by the first
# watcher of a session, reused by the others.
_appended: dict[tuple[str, str, int, int], list[Message]] = {}


def hub_of(service: Service) -> Hub:
    """The service's events (create_app gives a service that publishes nowhere a Hub)."""
    events = service.events
    if not isinstance(events, Hub):
        raise TypeError("the service's events cannot be watched: create the app with a Hub")
    return events


@router.get(
    "/sessions/{session_id}/events",
    tags=["sessions"],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: message (id = position), run, delta, reset",
        }
    },
)
async def events(
    account: Me,
    service: ServiceDep,
    session_id: str,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    follow: bool = True,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=100, pattern=r"^\s*[0-9]{0,18}\s*$")
    ] = None,
) -> Response:
    """The session's messages after position `after` (or the Last-Event-ID header), then
    live: new messages, the latest run's state and streamed text (see the module's doc).
    With `follow=false` the stream ends after the replay."""
    watcher = Watcher(service, account.id, session_id, _position(last_event_id, after))

    async def call(work: Callable[[], T]) -> T:
        if service.inline_writes:  # a local store: a read costs less than a thread hop
            return work()
        return await run_in_threadpool(work)

    hub = hub_of(service)
    subscription = hub.subscribe(session_id) if follow else None  # before the first read
    try:
        await call(watcher.open)
    except BaseException:
        if subscription is not None:
            subscription.close()
        raise
    return StreamingResponse(
        _stream(watcher, subscription, call), media_type="text/event-stream", headers=HEADERS
    )


async def _stream(
    watcher: Watcher,
    subscription: Subscription | None,
    call: Callable[[Callable[[], Any]], Any],
) -> AsyncIterator[bytes]:
    try:
        yield f"retry: {RETRY}\n\n".encode()
        more = True
        while more:
            chunks, more = await call(watcher.catch_up)
            if chunks:
                yield b"".join(chunks)
        for chunk in watcher.run_event(await call(watcher.latest_run)):
            yield chunk
        if subscription is None:
            return
        quiet_since = time.monotonic()
        while True:
            event = await subscription.get(POLL)
            if subscription.closed:
                return
            kind = event.get("kind") if event is not None else None
            out: list[bytes] = []
            if kind == "delta" and event is not None:
                out.append(sse("delta", {"text": str(event.get("text", ""))}))
            elif kind == "run" and event is not None:
                run = event.get("run")
                if not isinstance(run, dict):  # cut from a notification: read it
                    run = await call(watcher.latest_run)
                out += watcher.run_event(run)
            elif (
                kind == "append"
                and event is not None
                and isinstance(event.get("count"), int)
                and isinstance(event.get("head"), str)
            ):
                out += await call(partial(watcher.appended, event["count"], event["head"]))
            else:  # an event without a count, or a second without events: read what is new
                more = True
                while more:
                    chunks, more = await call(watcher.catch_up)
                    out += chunks
                if event is None:  # and the run's state, should an event of it have been lost
                    out += watcher.run_event(await call(watcher.latest_run))
            if out:
                yield b"".join(out)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
    except BatonError:  # the session went away (deleted): the stream ends
        return
    finally:
        if subscription is not None:
            subscription.close()
