"""Live events of sessions: what watchers (the session page, `baton cloud logs --follow`) are
told as it happens: an append (`{"kind": "append", "count": n}`), a run's new state
(`{"kind": "run", "run": {...}}`), streamed assistant text (`{"kind": "delta", "text": ...}`).

Events are hints, never the record: the chain is. A watcher that misses one (a full queue, a
dropped connection to PostgreSQL, another process appending to the same SQLite file) still
sees every message, because it re-reads the chain after the last position it sent.

- `Hub`: in one process. `publish` may be called from any thread (the service appends in
  worker threads); each subscriber lives on an asyncio loop and is handed its events with
  `call_soon_threadsafe`.
- `Bus`: on PostgreSQL, a Hub whose `publish` also sends `NOTIFY baton_events` and whose one
  LISTEN thread per process delivers the other processes' events, so a browser on server A
  sees a run executed on machine B.

`open_events(database_url)` picks one: the one place the choice is made."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from baton.core.models import JSON

if TYPE_CHECKING:
    import asyncio

CHANNEL = "baton_events"
PAYLOAD_LIMIT = 7900  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
QUEUE_LIMIT = 1000  # events waiting for one slow watcher; beyond it, deltas are dropped
LOG = logging.getLogger("baton.events")


class Subscription:
    """The events of one session for one watcher, on the event loop it was made on. Use it
    as a context manager (or call `close`) so the hub forgets it."""

    def __init__(self, hub: Hub, session_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.session_id = session_id
        self.loop = loop
        self.dropped = 0  # events lost to a full queue (the chain still has every message)
        self.closed = False  # the hub was closed (the server stops): the watcher should go
        self._events: deque[JSON] = deque()
        import asyncio  # here, not at start-up: only a server's watchers need it

        self._ready = asyncio.Event()

    def _put(self, event: JSON) -> None:  # on self.loop
        if len(self._events) >= QUEUE_LIMIT:
            self.dropped += 1
            if event.get("kind") == "delta":
                return
            self._events.popleft()  # an old event makes way: the newest state matters most
        self._events.append(event)
        self._ready.set()

    async def get(self, timeout: float) -> JSON | None:
        """The next event, or None when none came within `timeout` seconds (at once when
        the hub was closed)."""
        import asyncio

        if not self._events and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._events.popleft() if self._events else None

    def close(self) -> None:
        self.hub._forget(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """Events within one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str, set[Subscription]] = {}

    def publish(self, session_id: str, event: JSON) -> None:
        """Tell this process's watchers of `session_id` (from any thread; never raises)."""
        self.deliver(session_id, event)

    def deliver(self, session_id: str, event: JSON) -> None:
        with self._lock:
            watchers = list(self._watchers.get(session_id, ()))
        for watcher in watchers:
            try:
                watcher.loop.call_soon_threadsafe(watcher._put, event)
            except RuntimeError:  # its loop is closed: it went away without closing
                watcher.close()

    def subscribe(self, session_id: str) -> Subscription:
        """A subscription to `session_id`'s events, on the running event loop."""
        import asyncio

        watcher = Subscription(self, session_id, asyncio.get_running_loop())
        with self._lock:
            self._watchers.setdefault(session_id, set()).add(watcher)
        return watcher

    def watchers(self, session_id: str) -> int:
        with self._lock:
            return len(self._watchers.get(session_id, ()))

    def _end(self, watcher: Subscription) -> None:  # on watcher.loop
        watcher.closed = True
        watcher._ready.set()

    def _forget(self, watcher: Subscription) -> None:
        with self._lock:
            found = self._watchers.get(watcher.session_id)
            if found is not None:
                found.discard(watcher)
                if not found:
                    del self._watchers[watcher.session_id]

    def close(self) -> None:
        """End every subscription (a server that stops must not wait for open streams)."""
        with self._lock:
            watchers = [w for found in self._watchers.values() for w in found]
        for watcher in watchers:
            with contextlib.suppress(RuntimeError):
                watcher.loop.call_soon_threadsafe(self._end, watcher)


def payload(origin: str, session_id: str, event: JSON) -> str:
    """The NOTIFY payload for `event`, under PAYLOAD_LIMIT bytes: a delta's text is cut, any
    other event too big is sent as its kind alone (a run's: with its id), which tells the
    watcher to read the state itself."""
    data = {"o": origin, "s": session_id, "e": event}
    text = orjson.dumps(data)
    if len(text) <= PAYLOAD_LIMIT:
        return text.decode()
    if event.get("kind") == "delta" and isinstance(event.get("text"), str):
        cut = event["text"].encode()
        while cut:  # the UTF-8 bytes over the limit (more, once escaped) come off the end
            cut = cut[: len(cut) - (len(text) - PAYLOAD_LIMIT) - 1]
            shorter = cut.decode("utf-8", "ignore")
            text = orjson.dumps({**data, "e": {**event, "text": shorter}})
            if len(text) <= PAYLOAD_LIMIT:
                return text.decode()
    small: JSON = {"kind": event.get("kind")}
    run = event.get("run")
    if isinstance(run, dict) and isinstance(run.get("id"), str):
        small["run_id"] = run["id"]
    return orjson.dumps({**data, "e": small}).decode()


class Bus(Hub):
    """Events across processes over PostgreSQL's LISTEN/NOTIFY. `publish` delivers to this
    process's watchers at once and NOTIFYs the others (on a connection of its own, opened on
    first use); the LISTEN thread starts with the first subscription and skips this
    process's own notifications."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.origin = f"{os.getpid()}-{id(self):x}-{time.monotonic_ns()}"
        self._publisher: Any = None
        self._publish_lock = threading.Lock()
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()  # set once LISTEN is in effect
        self._stop = threading.Event()

    def publish(self, session_id: str, event: JSON) -> None:
        self.deliver(session_id, event)
        message = payload(self.origin, session_id, event)
        with self._publish_lock:
            for attempt in (1, 2):
                try:
                    if self._publisher is None or self._publisher.closed:
                        import psycopg

                        self._publisher = psycopg.connect(
                            self.url, autocommit=True, connect_timeout=5
                        )
                    self._publisher.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                    return
                except Exception as exc:  # the append succeeded: never fail it for a hint
                    self._drop_publisher()
                    if attempt == 2:
                        LOG.warning("could not publish an event of %s: %s", session_id, exc)

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                self._publisher.close()
        self._publisher = None

    def subscribe(self, session_id: str) -> Subscription:
        watcher = super().subscribe(session_id)
        self.listen(timeout=0)  # never waits on the event loop (the 1 s poll covers a gap)
        return watcher

    def listen(self, timeout: float = 5.0) -> bool:
        """Start the LISTEN thread if it is not running; whether LISTEN is in effect (waits
        up to `timeout` seconds for it the first time)."""
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._stop.clear()
                self._listener = threading.Thread(
                    target=self._listen, name="baton-events", daemon=True
                )
                self._listener.start()
        return self._listening.wait(timeout)

    def _listen(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    delay = 0.1
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._received(note.payload)
            except Exception as exc:
                self._listening.clear()
                if self._stop.is_set():
                    return
                LOG.warning("listening for events failed (%s); trying again", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _received(self, text: str) -> None:
        try:
            data = orjson.loads(text)
            origin, session_id, event = data["o"], data["s"], data["e"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        if origin != self.origin and isinstance(session_id, str) and isinstance(event, dict):
            self.deliver(session_id, event)

    def close(self) -> None:
        super().close()
        self._stop.set()
        listener = self._listener
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=3)
        with self._publish_lock:
            self._drop_publisher()


def open_events(database_url: str) -> Hub:
    """The events of a process over this store: a Bus on PostgreSQL, else a Hub."""
    if database_url.startswith(("postgresql:", "postgres:")):
        return Bus(database_url)
    return Hub()
