"""The sandbox policy from the settings (no bubblewrap needed): flags and config keys, the
limits table, and bad values as one-line errors when the settings are loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton.config import Settings
from baton.core.errors import InvalidInput
from baton.sandbox import GiB, MiB, Policy, choose


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
    empty = tmp_path / "empty"
    plain = Settings.load({}, home=str(empty))
    assert (plain.sandbox, plain.network, plain.sandbox_limits) == (True, False, {})
    assert choose(plain.sandbox, plain.network, plain.sandbox_limits) == Policy()
    off = Settings.load(
        {"BATON_SANDBOX": "off", "BATON_NETWORK": "true", "BATON_SANDBOX_LIMITS": "cpu=none"},
        home=str(empty),
    )
    policy = choose(off.sandbox, off.network, off.sandbox_limits)
    assert (policy.confined, policy.network, policy.cpu_seconds) == (False, False, None)
    assert policy.describe()["sandbox"] == "off"
    env = Settings.load({"BATON_SANDBOX_LIMITS": "memory=512M,processes=0"}, home=str(tmp_path))
    assert env.sandbox_limits == {"memory_bytes": 512 * MiB, "max_processes": None}


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({"BATON_SANDBOX": "maybe"}, "", "sandbox must be on or off, got 'maybe'"),
        ({"BATON_NETWORK": "sometimes"}, "", "network must be true or false, got 'sometimes'"),
        (
            {"BATON_SANDBOX_LIMITS": "cpu=lots"},
            "",
            "sandbox limits: cpu must be a number, got 'lots'",
        ),
        (
            {"BATON_SANDBOX_LIMITS": "disk=1G"},
            "",
            "sandbox limits: unknown limit 'disk'; the limits are cpu, memory, processes, output",
        ),
        ({"BATON_SANDBOX_LIMITS": "cpu"}, "", "sandbox limits: 'cpu' is not key=value"),
        ({"BATON_SANDBOX_LIMITS": "output=0"}, "", "sandbox limits: output needs a size, e.g. 10M"),
        ({}, "sandbox_limits = {cpu = -1}", "sandbox limits: cpu must not be negative"),
        (
            {},
            'sandbox_limits = ["cpu"]',
            'sandbox limits must be a table like {cpu = 600, memory = "4G"}',
        ),
    ],
)
def test_bad_values_are_one_line_errors(
    tmp_path: Path, env: dict[str, str], toml: str, message: str
) -> None:
    (tmp_path / "config.toml").write_text(toml + "\n")
    with pytest.raises(InvalidInput) as caught:
        Settings.load(env, home=str(tmp_path))
    assert caught.value.message == message
