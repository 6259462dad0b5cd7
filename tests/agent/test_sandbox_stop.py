"""What server runs ask of the sandbox: variables given through the environment (secrets
included, never in an argv), and a stop from another thread that kills the whole sandbox
within a fraction of a second."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from baton import sandbox
from baton.sandbox import Policy, Stopped
from tests.agent.test_sandbox import bubblewrap, gone, marker, running, wait_until

__all__ = ["bubblewrap"]  # autouse: skip without a usable bubblewrap (fail in CI)


def test_given_variables_reach_the_command_even_named_like_secrets(workdir: Path) -> None:
    done = sandbox.run(
        'echo "$API_TOKEN/$PLAIN"', workdir, Policy(), env={"API_TOKEN": "t0k", "PLAIN": "p"}
    )
    assert (done.exit_code, done.output) == (0, "t0k/p\n")


@pytest.mark.parametrize("confined", [True, False])
def test_a_stop_from_another_thread_kills_the_sandbox(workdir: Path, confined: bool) -> None:
    tag = marker()
    stop = threading.Event()
    policy = Policy() if confined else Policy.unconfined()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped) as stopped:
        sandbox.run(
            f"echo begun; (exec -a {tag} sleep 600) & exec -a {tag} sleep 600",
            workdir,
            policy,
            stop=stop,
        )
    assert time.monotonic() - started < 5
    assert stopped.value.output == "begun\n"
    gone(tag)
    wait_until(lambda: not running(tag), 10)
