"""The sandbox policy from the settings (no bubblewrap needed): flags and config keys, the
limits table, and bad values as one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.config import Settings
from baton.core.errors import InvalidInput
from baton.sandbox import GiB, MiB, Policy, choose, parse_limits


def test_the_config_file_sets_sandbox_network_and_limits(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'sandbox = "on"\nnetwork = true\n'
        'sandbox_limits = {cpu = 60, memory = "2G", processes = 128, output = "1M"}\n'
    )
    settings = Settings.load({}, home=str(tmp_path))
    policy = choose(settings.sandbox, settings.network, settings.sandbox_limits)
    assert policy == Policy(
        network=True,
        cpu_seconds=60,
        memory_bytes=2 * GiB,
        max_processes=128,
        max_output_bytes=MiB,
    )
    assert choose(None, None, None) == Policy()  # on, no network, the default limits
    off = choose("off", "true", "cpu=none")
    assert (off.confined, off.network, off.cpu_seconds) == (False, False, None)
    assert off.describe()["sandbox"] == "off"
    env = Settings.load({"BATON_SANDBOX_LIMITS": "memory=512M,processes=0"}, home=str(tmp_path))
    assert parse_limits(env.sandbox_limits) == {"memory_bytes": 512 * MiB, "max_processes": None}


@pytest.mark.parametrize(
    ("sandbox", "network", "limits", "message"),
    [
        ("maybe", None, None, "sandbox must be on or off, got 'maybe'"),
        (None, "sometimes", None, "network must be true or false, got 'sometimes'"),
        (None, None, "cpu=lots", "sandbox limits: cpu must be a number, got 'lots'"),
        (
            None,
            None,
            "disk=1G",
            "sandbox limits: unknown limit 'disk'; the limits are cpu, memory, processes, output",
        ),
        (None, None, "cpu", "sandbox limits: 'cpu' is not key=value"),
        (None, None, "output=0", "sandbox limits: output needs a size, e.g. 10M"),
        (None, None, {"cpu": -1}, "sandbox limits: cpu must not be negative"),
        (None, None, ["cpu"], 'sandbox limits must be a table like {cpu = 600, memory = "4G"}'),
    ],
)
def test_bad_values_are_one_line_errors(
    sandbox: str | None, network: str | None, limits: object, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        choose(sandbox, network, limits)
    assert caught.value.message == message
