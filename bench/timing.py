"""Timing helpers shared by the figures: medians, and medians of two sides in alternation;
the environment of a timed `baton` process."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_medians(
    small: Callable[[], Any], big: Callable[[], Any], repeat: int, warmup: int = 2
) -> tuple[float, float]:
    """Median times of two operations measured in alternation, so that drift in the machine
    (fsync latency, caches, the other core) falls on both alike."""
    for _ in range(warmup):
        small()
        big()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((small, times[0]), (big, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def baton_env(home: str | os.PathLike[str]) -> dict[str, str]:
    """The environment of a timed `baton` process over the data folder `home`: this one's,
    without BATON_* settings and without PYTHONDONTWRITEBYTECODE (set on the machines these
    figures come from), so that baton starts from cached bytecode as an installed one does
    instead of compiling its modules at every start (about 0.1 s)."""
    kept = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BATON_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    return {**kept, "BATON_HOME": str(home)}
