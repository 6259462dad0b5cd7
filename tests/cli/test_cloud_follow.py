"""`baton cloud logs --follow` against a server: it reads the session's live events (Server-
Sent Events), not a poll of the API: every message once, in order, each state of the run, and
it ends when the run does (exit 0 for done, 1 otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from baton.config import Settings, build_service
from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json, text_message


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)


def follow(home: Path, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "BATON_HOME": str(home)}
    env.pop("BATON_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "baton", "cloud", "logs", run_id, "--follow", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_logs_follow_against_a_server_reads_its_events(served: Served, tmp_path: Path) -> None:
    home = tmp_path / "client-home"
    assert run_baton("login", served.url, "--token", served.token, home=home).returncode == 0
    run_json("cloud", "repos", "add", "/srv/git/widgets", home=home)
    run = run_json("cloud", "start", "--repo", "widgets", "Fix it", home=home)["run"]
    followed = follow(home, run["id"])
    # a worker beside the server's store (another process, as `baton worker` is)
    worker = build_service(Settings.load(env={"BATON_HOME": str(served.home)}))
    try:
        first = followed.stdout.readline() if followed.stdout else ""  # it is watching
        claimed = worker.claim_run("test-worker")
        assert claimed is not None and claimed.id == run["id"]
        owner, session = claimed.owner, claimed.session_id
        worker.append(owner, session, [text_message("system", "$ make setup\nok")])
        worker.move_run(claimed.id, "running")
        worker.append(owner, session, [text_message("user", "Fix it")])
        time.sleep(1.5)
        worker.append(owner, session, [text_message("assistant", "Fixed it.")])
        worker.move_run(claimed.id, "done")
        out, err = followed.communicate(timeout=60)
    finally:
        if followed.poll() is None:
            followed.kill()
        worker.close()
    assert followed.returncode == 0, err
    events = [orjson.loads(line) for line in [first, *out.splitlines()]]
    messages = [(e["position"], e["message"]["role"]) for e in events if "position" in e]
    assert messages == [(1, "system"), (2, "user"), (3, "assistant")]
    states = [e["run"]["state"] for e in events if "run" in e]
    assert states[0] == "queued" and states[-1] == "done"
    assert states == sorted(set(states), key=["queued", "preparing", "running", "done"].index)
    assert events[-1]["run"]["state"] == "done"
