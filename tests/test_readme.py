"""The README's commands are run, so they cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import click

from baton.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text("utf-8")


def block_after(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```\w*\n(.*?)\n```", README, re.S)
    assert match, f"README has no block after <!-- {marker} -->"
    return match.group(1)


def run_shell(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "BATON_HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_quick_start_runs_and_prints_a_share_link(tmp_path: Path) -> None:
    result = run_shell(block_after("quick-start"), tmp_path / "home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"m_[0-9a-f]{64}", lines[0])  # the appended message id
    assert re.fullmatch(r"http://127\.0\.0\.1:8765/share/[A-Za-z0-9_][A-Za-z0-9_-]{22}", lines[1])
    listed = run_shell("baton sessions list --json", tmp_path / "home")
    assert '"title": "Fix the login bug"' in listed.stdout


def test_run_command_serves_baton_with_a_working_login_link(tmp_path: Path) -> None:
    import socket

    import httpx

    command = block_after("run-command")
    assert "pip install ." in command
    last = command.split("&&")[-1].strip()
    assert last == "baton serve"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "BATON_HOME": str(tmp_path / "home"), "BATON_PORT": str(port)}
    env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    env.pop("BATON_URL", None)
    server = subprocess.Popen(
        ["bash", "-c", f"exec {last}"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("baton: first start"), lines
        link = re.search(r"(http://127\.0\.0\.1:\d+/login\?code=\S+)", lines[1])
        assert link and f":{port}/" in link.group(1)
        assert lines[4].startswith(f"baton serving http://127.0.0.1:{port}")
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(link.group(1))
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            code = re.search(r'name="code" value="([^"]+)"', page.text)
            assert csrf and code
            home = browser.post(
                f"http://127.0.0.1:{port}/login",
                data={"csrf": csrf.group(1), "code": code.group(1), "next": "/"},
            )
            assert home.status_code == 200 and "Recent sessions" in home.text
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = block_after("test-command")
    extracted = subprocess.run(
        [
            "awk",
            "/<!-- test-command -->/{f=1;next} f&&/^```/{if(s)exit; s=1; next} f&&s{print}",
            str(ROOT / "README.md"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert extracted == command
    assert "pytest" in command and "mypy" in command and "ruff check" in command
    assert "awk" in (ROOT / ".ci" / "run").read_text()


def _commands(group: click.Group, prefix: str = "baton") -> list[str]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_in_the_readme_table() -> None:
    missing = [c for c in _commands(cli) if f"`{c}" not in README]
    assert missing == []
