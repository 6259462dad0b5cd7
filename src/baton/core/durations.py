"""Durations as people type them (`30m`, `12h`, `7d`, `2w`): share and token lifetimes."""

from __future__ import annotations

import re
from datetime import timedelta

from baton.core.errors import InvalidInput

MAX_EXPIRY = timedelta(days=36500)  # a share or token lives at most about 100 years
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`30m`, `12h`, `7d`, `2w`; at most MAX_EXPIRY."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"expiry {text!r} is not a duration like 30m, 12h, 7d or 2w")
    try:
        duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        duration = timedelta.max
    if duration > MAX_EXPIRY:
        raise InvalidInput(f"expiry {text!r} is too far ahead; at most {MAX_EXPIRY.days}d")
    return duration
