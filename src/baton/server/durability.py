"""Group commit for the appends a SQLite server runs on its event loop: each commits without
an fsync, and its answer waits for the next flush of the WAL, which serves every append that
committed before it. While one flush runs (in a worker thread), the loop goes on committing
the next appends, which the following flush covers. Nothing is acknowledged before it is on
disk."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class GroupSync:
    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._waiting: list[asyncio.Future[None]] = []
        self._flushing = False
        self.flushes = 0  # how many fsyncs served how many appends: see the tests

    async def durable(self) -> None:
        """Return once everything committed before this call is on disk."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await run_in_threadpool(self._sync)
                except Exception as exc:
                    for future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.flushes += 1
                for future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flushing = False
