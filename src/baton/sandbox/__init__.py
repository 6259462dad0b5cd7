"""How a command runs confined (DESIGN §2), shared by the CLI agent and server runs.

On Linux a command runs in a fresh bubblewrap sandbox: the whole system read-only, the
repository (and any extra writable folder) read-write at the same path (a server run's
repository at a fixed neutral path instead, `shown_path`: /home/user/<repo>, so nothing the
commands print holds the server's folders), home folders hidden behind empty ones, a
private /tmp, no network unless allowed, no environment variable named
like a secret (API keys, tokens, passwords), its own PID namespace (the sandbox and
everything in it die together, also when the agent is killed), and bounded CPU time,
memory, processes and output. `Policy.unconfined()` runs the command as it is, with the same
time, CPU, memory and output bounds."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from baton.core.errors import InvalidInput

BWRAP = "bwrap"
INSTALL_HINT = "install the package `bubblewrap`, or run with --sandbox off"
HIDDEN = ("/home", "/root", "/tmp", "/var/tmp", "/run/user")  # replaced by empty folders
POLL = 0.05  # seconds between checks of the deadline and the process count
CPU_EXIT = 128 + signal.SIGXCPU  # what bash answers for a command killed at RLIMIT_CPU
GiB, MiB = 1024**3, 1024**2
# environment variables a sandboxed command does not get (Codex CLI's default excludes too)
SECRET_NAMES = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
# where a server run's repository is shown in the sandbox (as hosted agents do), under the
# tmpfs that hides /home; on a host without /home, under the sandbox's private /tmp
SHOWN_HOME = Path("/home/user")
SHOWN_HOME_NO_HOME = Path("/tmp/user")


def shown_path(name: str) -> Path:
    """Where the sandbox shows a repository named `name` (a server run's workspace): a
    fixed path the server's own folders are not in, e.g. /home/user/project. HOME is its
    parent folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "repo"
    home = SHOWN_HOME if Path("/home").is_dir() else SHOWN_HOME_NO_HOME
    return home / safe


class SandboxUnavailable(Exception):
    """The sandbox cannot run here; the message is one line with what to do."""


class Stopped(KeyboardInterrupt):
    """Ctrl-C stopped a command: the interrupt, with the output the command had written."""

    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


@dataclass(frozen=True)
class Policy:
    """What a command may do. A limit of None is no limit."""

    confined: bool = True
    network: bool = False
    writable: tuple[Path, ...] = ()  # read-write besides the working folder
    cpu_seconds: int | None = 600  # per process (RLIMIT_CPU)
    # writable memory per process (RLIMIT_DATA: unlike RLIMIT_AS it leaves out reserved
    # address space, which WebAssembly and JVMs take by the gigabyte)
    memory_bytes: int | None = 8 * GiB
    max_processes: int | None = 512  # live processes in the sandbox
    max_output_bytes: int = 10 * MiB  # output kept; the rest is read and dropped
    timeout: float = 120.0  # wall-clock seconds, then the whole sandbox is killed
    # more folders replaced by empty ones (a server's data: its store, its other workspaces)
    hidden: tuple[Path, ...] = ()
    # variables whose name starts with one of these are not passed on (a server's settings)
    env_drop: tuple[str, ...] = ()
    # where the sandbox shows the working folder (HOME: its parent); None: at its own path.
    # A server run's commands see `shown_path(repo)`, never the workspace's folder
    mount: Path | None = None

    @classmethod
    def unconfined(cls, **limits: Any) -> Policy:
        return cls(confined=False, **limits)

    def describe(self) -> dict[str, Any]:
        """The policy as recorded with each command's result."""
        return {
            "sandbox": "bwrap" if self.confined else "off",
            "network": self.network if self.confined else True,
            "writable": [str(p) for p in self.writable],
            "cpu_seconds": self.cpu_seconds,
            "memory_bytes": self.memory_bytes,
            "max_processes": self.max_processes if self.confined else None,
            "max_output_bytes": self.max_output_bytes,
            "timeout": self.timeout,
        }


@dataclass
class Result:
    exit_code: int | None  # None when the command was stopped (timeout, limit, interrupt)
    output: str  # stdout and stderr interleaved, up to max_output_bytes
    truncated: bool = False  # output past max_output_bytes was dropped
    timed_out: bool = False
    killed_by_limit: str | None = None  # "processes" or "cpu"
    policy: dict[str, Any] = field(default_factory=dict)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
LIMIT_KEYS = {
    "cpu": "cpu_seconds",
    "memory": "memory_bytes",
    "processes": "max_processes",
    "output": "max_output_bytes",
}


def parse_limits(value: Any) -> dict[str, Any]:
    """Policy limits from the config: a table {cpu = 600, memory = "4G", processes = 256,
    output = "10M"} or the same as "cpu=600,memory=4G" (BATON_SANDBOX_LIMITS). 0 or "none"
    lifts a limit (output keeps one)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for item in value.split(","):
            key, sep, raw = item.partition("=")
            if not sep:
                raise InvalidInput(f"sandbox limits: {item.strip()!r} is not key=value")
            pairs[key.strip()] = raw.strip()
        value = pairs
    if not isinstance(value, dict):
        raise InvalidInput('sandbox limits must be a table like {cpu = 600, memory = "4G"}')
    out: dict[str, Any] = {}
    for key, raw in value.items():
        if key not in LIMIT_KEYS:
            raise InvalidInput(
                f"sandbox limits: unknown limit {key!r}; the limits are " + ", ".join(LIMIT_KEYS)
            )
        number = _number(key, raw)
        if number is None and key == "output":
            raise InvalidInput("sandbox limits: output needs a size, e.g. 10M")
        out[LIMIT_KEYS[key]] = number
    return out


def _number(key: str, raw: Any) -> int | None:
    if isinstance(raw, bool):
        raise InvalidInput(f"sandbox limits: {key} must be a number")
    if isinstance(raw, int):
        number = raw
    else:
        text = str(raw).strip().lower()
        if text in ("none", "off"):
            return None
        match = _SIZE.match(text)
        if match is None:
            raise InvalidInput(f"sandbox limits: {key} must be a number, got {raw!r}")
        unit = match.group(2).lower()
        scale = 1024 ** ("kmgt".index(unit) + 1) if unit else 1
        number = int(match.group(1)) * scale
    if number < 0:
        raise InvalidInput(f"sandbox limits: {key} must not be negative")
    return number or None


def choose(confined: bool, network: bool, limits: Mapping[str, int | None]) -> Policy:
    """The policy the settings ask for (baton.config checked them): confined or not, the
    network allowed or not (only ever inside the sandbox), limits as parse_limits gives them."""
    given: dict[str, Any] = dict(limits)
    return Policy(confined=confined, network=network and confined, **given)


_probed: dict[str, str | None] = {}
PR_SET_PDEATHSIG = 1
try:  # loaded now: nothing may be imported between fork and exec
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_us(parent: int) -> Any:
    """A preexec function: the child is killed when this process dies, from the fork on
    (bwrap's own --die-with-parent starts later, and a death in between would orphan it)."""

    def arm() -> None:
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # died before it was armed
            os._exit(1)

    return arm


def check() -> None:
    """Raise SandboxUnavailable (one line, with the hint) if bubblewrap cannot run here."""
    binary = shutil.which(BWRAP)
    if binary is None:
        raise SandboxUnavailable(
            f"commands run in a sandbox, and bubblewrap is missing: {INSTALL_HINT}"
        )
    if binary not in _probed:
        try:
            done = subprocess.run(
                [binary, "--ro-bind", "/", "/", "--unshare-all", "--", "true"],
                capture_output=True,
                timeout=30,
                check=False,
            )
            problem = None if done.returncode == 0 else _first_line(done.stderr)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problem = str(exc)
        _probed[binary] = problem
    if _probed[binary] is not None:
        raise SandboxUnavailable(
            f"bubblewrap cannot make a sandbox here ({_probed[binary]}); "
            "allow unprivileged user namespaces, or run with --sandbox off"
        )


def _first_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else "no message"


def bwrap_arguments(cwd: Path, policy: Policy, env: dict[str, str]) -> list[str]:
    """bwrap's arguments for a sandbox over `cwd` (the command follows them): `cwd` is
    shown at its own path, or at `policy.mount` (then HOME is the mount's parent)."""
    cwd = cwd.resolve()
    writable = [cwd, *(Path(p).resolve() for p in policy.writable)]
    home = Path(env.get("HOME") or "/root")
    inside = cwd if policy.mount is None else policy.mount
    shown_home = home if policy.mount is None else policy.mount.parent
    args = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    more = (str(Path(p).resolve()) for p in policy.hidden)
    hidden = sorted({*HIDDEN, str(home), *more}, key=lambda p: p.count("/"))
    for path in hidden:
        where = Path(path)
        if path == "/" or not where.is_dir() or any(where.is_relative_to(w) for w in writable):
            continue  # missing, or inside a writable folder (which the user chose to expose)
        args += ["--tmpfs", path]
    for config in (Path(".gitconfig"), Path(".config", "git", "config")):
        if (home / config).is_file():  # git keeps the user's name and settings, nothing else
            args += ["--ro-bind", str(home / config), str(shown_home / config)]
    args += ["--bind", str(cwd), str(inside)]
    for folder in writable[1:]:
        args += ["--bind", str(folder), str(folder)]
    args += ["--unshare-all", "--die-with-parent", "--new-session"]
    if policy.network:
        args.append("--share-net")
    args += ["--setenv", "HOME", str(shown_home), "--setenv", "TMPDIR", "/tmp"]
    if policy.mount is not None:
        args += ["--setenv", "PWD", str(inside), "--unsetenv", "OLDPWD"]
    args += ["--chdir", str(inside)]
    return args


def _ulimits(policy: Policy) -> str:
    lines = []
    if policy.cpu_seconds:
        # SIGXCPU at the limit (bash answers 152), SIGKILL a second later if it is ignored
        lines += [f"ulimit -S -t {policy.cpu_seconds}", f"ulimit -H -t {policy.cpu_seconds + 1}"]
    if policy.memory_bytes:
        lines.append(f"ulimit -d {max(policy.memory_bytes // 1024, 1)}")
    if policy.max_processes and policy.confined:  # counted per user namespace: the sandbox's
        lines.append(f"ulimit -u {policy.max_processes}")
    return "".join(f"{line} || exit 126; " for line in lines)


def run(
    command: str,
    cwd: Path,
    policy: Policy,
    *,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> Result:
    """Run `command` with bash in `cwd` under `policy`; everything it started is gone when
    this returns (or raises: an interrupt kills the sandbox, then propagates). Call it from a
    thread that lives until it returns: die-with-parent follows the thread that started it.
    `env`: variables the command gets besides this process's (passed in its environment,
    never in an argv; given on purpose, so kept even when named like a secret). `stop`: when
    another thread sets it, the sandbox is killed within POLL seconds and Stopped is raised
    with the output so far, as for Ctrl-C."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(policy.env_drop)}
    if policy.confined:
        inherited = {k: v for k, v in inherited.items() if not SECRET_NAMES.search(k)}
    env = {**inherited, **(env or {})}
    life_read, life_write = os.pipe()  # the lifeline: only this process holds its write end
    shell = [
        "bash",
        "-c",
        _ulimits(policy) + _lifeline(life_read, policy.confined) + 'eval "$1"',
        "baton-command",
        command,
    ]
    info_read = info_write = -1
    if policy.confined:
        try:
            check()
        except SandboxUnavailable:
            os.close(life_read)
            os.close(life_write)
            raise
        info_read, info_write = os.pipe()
        argv = [
            *bwrap_arguments(cwd, policy, env),
            "--info-fd",
            str(info_write),
            "--",
            *shell,
        ]
    else:
        argv = shell
    held = _HeldInterrupt()  # a Ctrl-C while the command starts waits until it is watched
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C stops the turn, and the turn stops the command
            pass_fds=(life_read,) + ((info_write,) if info_write >= 0 else ()),
            preexec_fn=_die_with_us(os.getpid()),
        )
    except BaseException:
        for fd in (info_read, life_write):
            if fd >= 0:
                os.close(fd)
        held.release()
        raise
    finally:
        for fd in (info_write, life_read):
            if fd >= 0:
                os.close(fd)
    watch = _Watch(process, policy, info_read, stop)
    try:
        return watch.wait(ready=held.release)
    except Stopped:
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C: the output so far goes with the interrupt
        raise Stopped(watch.kept.decode("utf-8", "replace")) from exc
    finally:
        held.release()  # already done unless it failed before watching
        os.close(life_write)


class _HeldInterrupt:
    """Holds back Ctrl-C (SIGINT) from its creation until `release`, which delivers one
    that came meanwhile to the handler it held back. A command that interrupts this process
    at once (or a Ctrl-C while it starts, on a loaded machine) could otherwise land inside
    Popen or before the output is watched: a bare KeyboardInterrupt, the output lost, the
    command left running. Only in the main thread, the one where Python runs handlers."""

    def __init__(self) -> None:
        self.previous: Callable[[int, Any], Any] | None = None
        self.came: tuple[int, Any] | None = None
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if callable(previous):
            self.previous = previous
            signal.signal(signal.SIGINT, self._hold)

    def _hold(self, signum: int, frame: Any) -> None:
        self.came = (signum, frame)

    def release(self) -> None:
        previous, self.previous = self.previous, None
        if previous is None:
            return
        signal.signal(signal.SIGINT, previous)
        if self.came is not None:
            previous(*self.came)


def _lifeline(fd: int, confined: bool) -> str:
    """A watcher that kills the command when the lifeline's write end closes: when this
    process dies, however it dies (die-with-parent alone leaves a window while bwrap starts).
    In the sandbox's PID namespace `kill -1` reaches every process of the sandbox; outside,
    the command's process group."""
    target = "-1" if confined else "0"
    return f"{{ read -r -u {fd} _; kill -KILL {target}; }} & exec {fd}<&-; "


class _Watch:
    """Reads a running command's output, and stops it at its deadline or limits."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        policy: Policy,
        info: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.process = process
        self.stop = stop
        self.policy = policy
        self.info = info
        self.info_text = b""
        self.inner: int | None = None  # the sandbox's first process (PID 1 inside)
        self.namespace: str | None = None
        self.kept = bytearray()
        self.truncated = False

    def wait(self, ready: Callable[[], None] | None = None) -> Result:
        """`ready` is called once the output is watched: an interrupt it raises kills the
        command, and the output it had written goes with the interrupt."""
        policy = self.policy
        deadline = time.monotonic() + policy.timeout
        stopped: str | None = None
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ, "out")
        if self.info >= 0:
            selector.register(self.info, selectors.EVENT_READ, "info")
        try:
            if ready is not None:
                ready()
            open_streams = len(selector.get_map())
            while open_streams:
                left = deadline - time.monotonic()
                if left <= 0:
                    stopped = "timeout"
                    break
                for key, _ in selector.select(min(left, POLL)):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                    elif key.data == "info":
                        self._info(data)
                    else:
                        self._keep(data)
                if self._too_many_processes():
                    stopped = "processes"
                    break
                if self.stop is not None and self.stop.is_set():
                    raise Stopped(self.kept.decode("utf-8", "replace"))
                if self.process.poll() is not None and not policy.confined:
                    self.kill()  # what it left running in the background goes with it
        except BaseException:
            self.kill()
            raise
        finally:
            if stopped is not None:
                self.kill()
            self._drain(selector)
            selector.close()
            if self.info >= 0:
                os.close(self.info)
            self.process.wait()
            if not policy.confined:
                self.kill()
        code = self.process.returncode
        limit = "processes" if stopped == "processes" else None
        if stopped is None and policy.cpu_seconds and code == CPU_EXIT:
            limit = "cpu"
        return Result(
            exit_code=None if stopped else code,
            output=self.kept.decode("utf-8", "replace"),
            truncated=self.truncated,
            timed_out=stopped == "timeout",
            killed_by_limit=limit,
            policy=policy.describe(),
        )

    def _keep(self, data: bytes) -> None:
        room = self.policy.max_output_bytes - len(self.kept)
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        self.kept += data

    def _info(self, data: bytes) -> None:
        self.info_text += data
        if self.inner is None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.inner = int(json.loads(self.info_text)["child-pid"])
            if self.inner is not None:
                with contextlib.suppress(OSError):
                    self.namespace = os.readlink(f"/proc/{self.inner}/ns/pid")

    def _too_many_processes(self) -> bool:
        """Whether the sandbox's PID namespace holds max_processes: the kernel enforces the
        count inside a user namespace, except for root, so it is watched here too."""
        limit = self.policy.max_processes
        if not limit or self.namespace is None:
            return False
        count = 0
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{name}/ns/pid") == self.namespace:
                        count += 1
        return count >= limit

    def kill(self) -> None:
        """SIGKILL the process group; in the sandbox also its first process, whose death
        takes every process of the namespace with it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.inner is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.inner, signal.SIGKILL)

    def _drain(self, selector: selectors.BaseSelector) -> None:
        """What is left in the pipes once the command is gone (a few seconds at most: a
        process that left the group may still hold the pipe outside the sandbox)."""
        end = time.monotonic() + 5
        while selector.get_map() and time.monotonic() < end:
            for key, _ in selector.select(0.1):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.data == "out":
                    self._keep(data)
