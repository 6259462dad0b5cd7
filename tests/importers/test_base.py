"""The small readers every importer shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from baton.core.models import format_time
from baton.importers.base import ms_time

_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@given(st.integers(min_value=0, max_value=_MAX_MS))
def test_ms_time_writes_what_format_time_writes(ms: int) -> None:
    assert ms_time(ms) == format_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms))


def test_ms_time_is_exact_to_the_millisecond() -> None:
    assert ms_time(0) == "1970-01-01T00:00:00.000000Z"
    assert ms_time(1_793_523_601_123) == "2026-11-01T09:00:01.123000Z"
    assert ms_time(_MAX_MS) == "9999-12-31T23:59:59.999000Z"
