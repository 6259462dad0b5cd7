"""`python -m bench --quick --json` runs and reports every figure as a measured ratio.
(Timing targets are bench/'s business, not the tests'.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.slow  # the whole quick bench: a minute or two


def test_quick_bench_reports_every_figure() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    names = [f["figure"] for f in report["figures"]]

    def named(prefix: str) -> bool:  # N: a size, smaller with --quick
        pattern = re.escape(prefix).replace("N", r"[\d,]+")
        return any(re.match(pattern, n) for n in names)

    for prefix in (
        "append at",
        "load",
        "fork at",
        "share at",
        "database bytes added by one fork",
        "list 50 most recent",
        "`baton --version`",
        "`baton sessions list`",
        "share page (GET /share/ID)",
        "session page of N messages vs of 10: time to interactive, Chromium",
        "session page of N messages vs of 10: first contentful paint, Chromium",
        "git capture",
        "server run: Start to the first event on the session's stream",
        "server run: Start to the first model request",
        "cold resume (100 unpushed commits",
        "runs per minute, two ",  # workers on PostgreSQL, else runner threads
        "event latency, append → N SSE watchers on one server, p50",
        "event latency, append → N SSE watchers on one server, p99",
        "the first search after the import: time",
        "the first share after the import: time",
    ):
        assert named(prefix), prefix
    from bench import load
    from bench.imports import opencode_binary

    if load.available() or os.environ.get("CI") == "true":  # .ci/run installs wrk
        assert named("appends per second through the HTTP API")

    if opencode_binary() is not None or os.environ.get("CI") == "true":
        assert named("import a N-message opencode export")
    if os.environ.get("CI") == "true":  # PostgreSQL, wrk and py-spy are there
        for prefix in (
            "load a N-message session from PostgreSQL vs from SQLite",
            "appends per second over HTTP on PostgreSQL, two server processes vs one",
            "runs per minute, two workers vs one on PostgreSQL",
        ):
            pattern = re.escape(prefix).replace("N", r"[\d,]+")
            [figure] = [f for f in report["figures"] if re.match(pattern, f["figure"])]
            if prefix.startswith("appends"):
                assert "threads running Python" in figure["note"], figure["note"]
    for figure in report["figures"]:
        assert isinstance(figure["ratio"], float) and figure["ratio"] > 0
