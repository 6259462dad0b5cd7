"""The chat's slash commands against a live `baton serve` (remote mode after `baton login`):
the same commands, the sessions on the server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.model import FakeModel, Step, model_env
from tests.fixtures.servers import Served, start_serve, stop
from tests.helpers import run_baton, run_json


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_serve(tmp_path / "server-home")
    yield running
    stop(running)


def test_chat_share_and_fork_against_a_server(
    served: Served, fake_model: FakeModel, tmp_path: Path
) -> None:
    home = tmp_path / "client"
    assert run_baton("login", served.url, "--token", served.token, home=home).returncode == 0
    fake_model.responder = lambda body: Step(text="echo: " + body["messages"][-1]["content"])
    env = model_env(fake_model)
    first = run_baton(
        "chat", input=b"remote hello\n/session share\n/exit\n", home=home, env=env, cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "echo: remote hello" in first.stdout
    share = re.search(rf"{re.escape(served.url)}/share/(\S+)", first.stdout)
    assert share, first.stdout
    second = run_baton(
        "chat",
        input=f"/session fork {share.group(1)}\nin the fork\n/session rename Forked\n".encode(),
        home=home,
        env=env,
        cwd=tmp_path,
    )
    assert second.returncode == 0, second.stderr
    fork = re.search(r"into (ses_\w+) \(2 messages\); you are now in the fork", second.stdout)
    assert fork, second.stdout
    assert "› remote hello" in second.stdout and "echo: in the fork" in second.stdout
    assert f"renamed {fork.group(1)}: Forked" in second.stdout
    # on the server, under the logged-in account; nothing in the client's home store
    owner = {"BATON_USER": "owner"}
    on_server = {s["title"]: s for s in run_json("sessions", "list", home=served.home, env=owner)}
    assert set(on_server) == {"remote hello", "Forked"}
    forked = on_server["Forked"]
    assert forked["id"] == fork.group(1) and forked["message_count"] == 4
    assert forked["forked_from"]["share"] == share.group(1)
    assert forked["metadata"]["mode"] == "chat"
    assert on_server["remote hello"]["message_count"] == 2
    assert not (home / "baton.db").exists()
    assert [m["messages"][-1]["content"] for m in fake_model.requests] == [
        "remote hello",
        "in the fork",
    ]
    assert [m["content"] for m in fake_model.requests[-1]["messages"][1:]] == [
        "remote hello",
        "echo: remote hello",
        "in the fork",
    ]
