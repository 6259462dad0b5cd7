"""Timing helpers shared by the figures: medians, and medians of two sides in alternation."""

from __future__ import annotations

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
