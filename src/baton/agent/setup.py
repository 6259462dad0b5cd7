"""Setup commands: what a new workspace runs once before the agent's first turn (install the
dependencies, build), declared by the repository, the user's config or the command line.
Shared by the CLI (a new session, `baton restore`, `fork --restore`, `baton setup`) and,
later, server runs.

Where they come from, the first that gives any: `--setup "CMD"` (repeated), the repository
(`.baton/setup.toml`, else the `[setup]` table of `.baton/config.toml`), then `setup` in
BATON_HOME/config.toml. Each runs in the sandbox with the network allowed, in order, each
with its own timeout; the first that fails stops the rest. Each is recorded in the session as
a setup message: a system message whose text part holds the output and a `setup` object
(command, exit code, duration, timed out, the sandbox policy); big outputs are moved to a
blob by the store's validation, like any text."""

from __future__ import annotations

import re
import shlex
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from baton import sandbox
from baton.core.errors import BatonError, InvalidInput
from baton.core.models import JSON

if TYPE_CHECKING:
    from baton.contract import Baton

NOTE_TAIL = 2000  # characters of a failed setup command's output the model is shown
DEFAULT_TIMEOUT = 600.0  # seconds a setup command may run unless its declaration says
REPO_FILES = (".baton/setup.toml", ".baton/config.toml")
SETUP_EXIT = 4  # 3 is `baton run`'s "an action was refused"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # the CLI's exit code when a setup command failed


class SetupFailed(BatonError):
    """A setup command failed: the start is refused (its output is kept in the session)."""

    code = "setup_failed"
    status = 422
    exit_code = SETUP_EXIT


@dataclass(frozen=True)
class SetupCommand:
    command: str
    timeout: float = DEFAULT_TIMEOUT
    env: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {"command": self.command, "timeout": self.timeout, "env": dict(self.env)}


@dataclass(frozen=True)
class SetupResult:
    command: SetupCommand
    exit_code: int | None  # None: stopped (timeout, limit, Ctrl-C)
    output: str
    duration: float  # seconds
    timed_out: bool = False
    policy: JSON = field(default_factory=dict)
    source: str = ""
    interrupted: bool = False  # Ctrl-C stopped it: the output so far is kept

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def message(self) -> JSON:
        """The setup message recorded in the session."""
        info: JSON = {
            "command": self.command.command,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "timed_out": self.timed_out,
            "timeout": self.command.timeout,
            "source": self.source,
            "policy": self.policy,
        }
        if self.interrupted:
            info["interrupted"] = True
        if self.command.env:
            info["env"] = sorted(self.command.env)  # names only: values may be secrets
        return {
            "role": "system",
            "parts": [{"type": "text", "text": self.output, "setup": info}],
        }

    def problem(self) -> str:
        """One line: why it failed."""
        if self.timed_out:
            return (
                f"setup command `{self.command.command}` timed out after {self.command.timeout:g}s"
            )
        if self.interrupted:
            return f"setup command `{self.command.command}` was interrupted"
        if self.exit_code is None:
            return f"setup command `{self.command.command}` was stopped at a sandbox limit"
        return f"setup command `{self.command.command}` failed with exit code {self.exit_code}"


@dataclass(frozen=True)
class SetupSpec:
    commands: tuple[SetupCommand, ...]
    source: str  # "--setup", ".baton/setup.toml", ".baton/config.toml", "config.toml", ""


def note(part: JSON) -> str:
    """What the model is told of a recorded setup command: one line, and the end of the
    output when it failed."""
    info = part["setup"]
    code = info.get("exit_code")
    if info.get("timed_out"):
        how = f"timed out after {info.get('timeout')}s"
    elif info.get("interrupted"):
        how = "was interrupted"
    elif code is None:
        how = "was stopped at a sandbox limit"
    else:
        how = f"exited with code {code}"
    line = f"setup command `{info.get('command')}` {how}"
    if code == 0:
        return line
    output = part.get("text", part.get("preview", ""))
    return f"{line}; the end of its output:\n{str(output)[-NOTE_TAIL:]}"


def parse_commands(value: Any, where: str) -> tuple[SetupCommand, ...]:
    """A declaration: a command, a list of commands (strings or tables {command, timeout,
    env}), or a table {commands = [...], timeout = default, env = {shared}}. One-line
    InvalidInput for anything else."""
    if value is None or value == "" or value == []:
        return ()
    timeout: Any = DEFAULT_TIMEOUT
    shared: Mapping[str, str] = {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        unknown = set(value) - {"commands", "timeout", "env"}
        if unknown:
            raise InvalidInput(
                f"{where}: setup: unknown key(s) {', '.join(sorted(unknown))}; "
                "the keys are commands, timeout, env"
            )
        timeout = _timeout(value.get("timeout", DEFAULT_TIMEOUT), f"{where}: setup.timeout")
        shared = _env(value.get("env", {}), f"{where}: setup.env")
        value = value.get("commands", [])
        if isinstance(value, str):
            value = [value]
    if not isinstance(value, list):
        raise InvalidInput(
            f'{where}: setup must be a list of commands, like setup = ["pip install -e ."]'
        )
    out = []
    for i, item in enumerate(value, 1):
        at = f"{where}: setup command {i}"
        if isinstance(item, str):
            if not item.strip():
                raise InvalidInput(f"{at} is empty")
            out.append(SetupCommand(item, timeout, dict(shared)))
            continue
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{at} must be a string or a table {{command, timeout, env}}")
        unknown = set(item) - {"command", "timeout", "env"}
        if unknown:
            raise InvalidInput(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
        command = item.get("command")
        if not isinstance(command, str) or not command.strip():
            raise InvalidInput(f"{at} needs a command (a non-empty string)")
        out.append(
            SetupCommand(
                command,
                _timeout(item.get("timeout", timeout), f"{at}: timeout"),
                {**shared, **_env(item.get("env", {}), f"{at}: env")},
            )
        )
    return tuple(out)


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidInput(f"{where} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _env(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f'{where} must be a table like {{NAME = "value"}}')
    out = {}
    for key, item in value.items():
        if not _NAME.match(str(key)):
            raise InvalidInput(f"{where}: {key!r} is not a variable name")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise InvalidInput(f"{where}.{key} must be a string")
        out[str(key)] = str(item)
    return out


def from_repository(root: Path) -> SetupSpec | None:
    """The repository's declaration, or None when it declares none."""
    return from_files(
        {name: (root / name).read_bytes() for name in REPO_FILES if (root / name).is_file()}
    )


def from_files(files: Mapping[str, bytes]) -> SetupSpec | None:
    """The declaration of a repository whose REPO_FILES (those it has) are `files`."""
    for name in REPO_FILES:
        if name not in files:
            continue
        try:
            data = tomllib.loads(files[name].decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{name} is not valid TOML: {exc}") from None
        if name.endswith("setup.toml"):
            return SetupSpec(parse_commands(data, name), name)
        if "setup" in data:
            return SetupSpec(parse_commands(data["setup"], name), name)
    return None


def load(root: Path, configured: Sequence[SetupCommand], flags: Sequence[str] = ()) -> SetupSpec:
    """What to run in the workspace at `root`: the flags, else the repository's declaration,
    else the configured commands (Settings.setup)."""
    if flags:
        return SetupSpec(parse_commands(list(flags), "--setup"), "--setup")
    declared = from_repository(root)
    if declared is not None:
        return declared
    return SetupSpec(tuple(configured), "config.toml" if configured else "")


def run(
    spec: SetupSpec,
    root: Path,
    policy: sandbox.Policy,
    on_result: Callable[[SetupResult], None] | None = None,
    on_start: Callable[[SetupCommand], None] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> list[SetupResult]:
    """Run the commands in order under `policy` with the network allowed and each command's
    timeout, until one fails; `on_result` is called with each (to record it) as it ends.
    Ctrl-C (sandbox.Stopped) is recorded like a failed command (exit code None, interrupted,
    the output so far), then raised again; so is `stop` set by another thread. `env`: more
    variables every command gets, through its environment (a server run's variables and
    secrets), never written into the command."""
    results = []
    for command in spec.commands:
        if on_start is not None:
            on_start(command)
        confined = replace(policy, network=policy.confined, timeout=command.timeout)
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in command.env.items())
        started = time.monotonic()
        try:
            done = sandbox.run(exports + command.command, root, confined, env=env, stop=stop)
        except sandbox.Stopped as stopped:
            if on_result is not None:
                on_result(
                    SetupResult(
                        command=command,
                        exit_code=None,
                        output=stopped.output,
                        duration=time.monotonic() - started,
                        policy=confined.describe(),
                        source=spec.source,
                        interrupted=True,
                    )
                )
            raise
        result = SetupResult(
            command=command,
            exit_code=done.exit_code,
            output=done.output,
            duration=time.monotonic() - started,
            timed_out=done.timed_out,
            policy=done.policy,
            source=spec.source,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
        if not result.ok:
            break
    return results


def recorder(service: Baton, owner: str, session_id: str) -> Callable[[SetupResult], None]:
    """Append each result to the session as a setup message."""

    def record(result: SetupResult) -> None:
        service.append(owner, session_id, [result.message()], idempotency_key=str(uuid.uuid4()))

    return record


def check(results: Sequence[SetupResult], session_id: str | None) -> None:
    """Raise SetupFailed (one line) if the last command failed."""
    if results and not results[-1].ok:
        kept = f"; its output is kept in session {session_id}" if session_id else ""
        raise SetupFailed(results[-1].problem() + kept)
