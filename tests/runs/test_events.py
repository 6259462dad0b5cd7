"""The hub and the bus of live events: publish from any thread, watchers on event loops, a
closed hub ends its watchers, NOTIFY payloads stay under PostgreSQL's limit, and a bus that
cannot reach its database never fails the publisher."""

from __future__ import annotations

import asyncio
import threading

import orjson

from baton.runs.events import PAYLOAD_LIMIT, QUEUE_LIMIT, Bus, Hub, open_events, payload


def test_events_published_from_threads_reach_every_watcher_in_order() -> None:
    hub = Hub()

    async def watch() -> tuple[list[int], list[int], int]:
        with hub.subscribe("ses_a") as first, hub.subscribe("ses_a") as second:
            other = hub.subscribe("ses_b")

            def publish() -> None:
                for i in range(100):
                    hub.publish("ses_a", {"kind": "append", "count": i})

            thread = threading.Thread(target=publish)
            thread.start()
            got: list[list[int]] = [[], []]
            for watcher, into in ((first, got[0]), (second, got[1])):
                while len(into) < 100:
                    event = await watcher.get(5.0)
                    assert event is not None
                    into.append(event["count"])
            thread.join()
            assert await other.get(0.05) is None
            other.close()
            return got[0], got[1], hub.watchers("ses_a")

    first, second, watching = asyncio.run(watch())
    assert first == second == list(range(100))
    assert watching == 2
    assert hub.watchers("ses_a") == hub.watchers("ses_b") == 0


def test_a_slow_watcher_drops_deltas_first_and_a_closed_hub_ends_it() -> None:
    hub = Hub()

    async def watch() -> tuple[int, list[str], bool]:
        with hub.subscribe("ses_a") as watcher:
            for i in range(QUEUE_LIMIT):
                hub.publish("ses_a", {"kind": "append", "count": i})
            hub.publish("ses_a", {"kind": "delta", "text": "lost"})
            hub.publish("ses_a", {"kind": "run", "run": {"state": "done"}})
            await asyncio.sleep(0.05)
            kinds = []
            while (event := await watcher.get(0.01)) is not None:
                kinds.append(str(event["kind"]))
            hub.close()
            await asyncio.sleep(0.01)
            ended = watcher.closed and await watcher.get(60.0) is None
            return watcher.dropped, kinds, ended

    dropped, kinds, ended = asyncio.run(watch())
    assert dropped == 2
    assert len(kinds) == QUEUE_LIMIT and kinds[-1] == "run" and "delta" not in kinds
    assert ended


def test_notify_payloads_stay_under_the_limit() -> None:
    small = payload("o1", "ses_a", {"kind": "append", "count": 3})
    assert orjson.loads(small) == {"o": "o1", "s": "ses_a", "e": {"kind": "append", "count": 3}}
    delta = orjson.loads(payload("o1", "ses_a", {"kind": "delta", "text": "é" * 10_000}))
    assert len(orjson.dumps(delta)) <= PAYLOAD_LIMIT
    assert set(delta["e"]["text"]) == {"é"} and len(delta["e"]["text"]) > 3000
    run = {"kind": "run", "run": {"id": "run_1", "error": "x" * 10_000}}
    assert orjson.loads(payload("o1", "ses_a", run))["e"] == {"kind": "run", "run_id": "run_1"}


def test_a_bus_that_cannot_reach_its_database_never_fails_the_publisher() -> None:
    bus = Bus("postgresql://127.0.0.1:1/nothing?connect_timeout=1")

    async def watch() -> object:
        with bus.subscribe("ses_a") as watcher:
            bus.publish("ses_a", {"kind": "append", "count": 1})  # logged, not raised
            return await watcher.get(2.0)

    assert asyncio.run(watch()) == {"kind": "append", "count": 1}  # this process still hears
    bus.close()


def test_the_store_url_picks_the_events() -> None:
    assert type(open_events("sqlite:///tmp/x.db")) is Hub
    assert type(open_events("memory://")) is Hub
    assert type(open_events("postgresql://localhost/baton")) is Bus
