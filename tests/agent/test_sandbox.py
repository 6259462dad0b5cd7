"""The sandbox every `run_command` runs in (baton.sandbox, bubblewrap): escape attempts fail
inside it and are recorded with the policy they ran under; limits stop fork bombs, memory
hogs and CPU loops; nothing a command started outlives its turn or the agent."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from baton import sandbox
from baton.agent.tools import Tools
from baton.sandbox import Policy, SandboxUnavailable
from tests.agent.test_loop import make_agent, stored
from tests.fixtures.cli import Result
from tests.fixtures.model import FakeModel, call, model_env


@pytest.fixture(autouse=True)
def bubblewrap() -> None:
    """On a machine without a usable bubblewrap these tests skip; in CI they must run."""
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, why: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"condition not met in time {why}"
        time.sleep(0.05)


def gone(tag: str) -> None:
    """Wait until no process holds `tag`; else fail naming the survivors."""

    def survivors() -> str:
        out = []
        for pid in running(tag, anywhere=True):
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text()
                ppid = next(x for x in status.splitlines() if x.startswith("PPid"))
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                out.append(f"{pid} {ppid} {line[:120]!r}")
        return "; ".join(out)

    try:
        wait_until(lambda: not running(tag, anywhere=True))
    except AssertionError:
        raise AssertionError(f"still running: {survivors()}") from None


def running(marker: str, anywhere: bool = False) -> list[int]:
    """The processes named `marker` (by `exec -a`, or holding it in their command line when
    `anywhere`), as the host sees them."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                line = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if line.split(b"\0")[0] == marker.encode() or (anywhere and marker.encode() in line):
                found.append(int(name))
    return found


def marker() -> str:
    return f"baton-sandbox-test-{uuid.uuid4().hex[:12]}"


def test_escape_attempts_fail_inside_the_sandbox(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    monkeypatch.setenv("HOME", str(home))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    tools = Tools(workdir, command_timeout=60)
    policy = {
        "sandbox": "bwrap",
        "network": False,
        "writable": [],
        "cpu_seconds": 600,
        "memory_bytes": 8 * 1024**3,
        "max_processes": 512,
        "max_output_bytes": 10 * 1024**2,
        "timeout": 60,
    }

    def run(command: str) -> str:
        outcome = tools.run("run_command", {"command": command})
        assert outcome.metadata == policy
        return outcome.output

    # ../ is a private /tmp: the write lands there and is gone with the sandbox
    assert run("cd .. && echo x > ESCAPED && ls -A") == "ESCAPED\nhome\nwork\n\n[exit code 0]"
    assert not (tmp_path / "ESCAPED").exists()
    assert run("cat ~/.ssh/id_rsa; ls -A ~ | wc -l") == (
        f"cat: {home}/.ssh/id_rsa: No such file or directory\n0\n\n[exit code 0]"
    )
    assert run("echo x > /etc/x") == (
        "baton-command: line 1: /etc/x: Read-only file system\n\n[exit code 1]"
    )
    assert not Path("/etc/x").exists()
    monkeypatch.setenv("BATON_API_KEY", "sk-planted")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-planted")
    monkeypatch.setenv("PLAIN_SETTING", "kept")
    assert run("env | grep -c planted; echo $PLAIN_SETTING") == "0\nkept\n\n[exit code 0]"
    assert run(f"exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected") == (
        "baton-command: connect: Connection refused\n"
        f"baton-command: line 1: /dev/tcp/127.0.0.1/{port}: Connection refused\n\n"
        "[exit code 1]"
    )
    with pytest.raises(BlockingIOError):
        listener.accept()  # nobody reached it
    # the repository itself is writable, at the same path
    assert run("echo made > made.txt && pwd") == f"{workdir.resolve()}\n\n[exit code 0]"
    assert (workdir / "made.txt").read_text() == "made\n"
    # with the network allowed, the same connection is made
    allowed = Tools(workdir, policy=Policy(network=True))
    opened = allowed.run("run_command", {"command": f"exec 3<>/dev/tcp/127.0.0.1/{port}"})
    assert (opened.output, opened.metadata and opened.metadata["network"]) == (
        "[exit code 0]",
        True,
    )
    listener.setblocking(True)
    listener.settimeout(30)
    listener.accept()[0].close()
    listener.close()


def test_git_and_the_python_of_the_system_work_inside(git_repo: Path) -> None:
    tools = Tools(git_repo, command_timeout=60)
    done = tools.run(
        "run_command",
        {
            "command": "echo new > new.txt && git add new.txt && git commit -q -m new "
            "&& git log -1 --format=%s && python3 -c 'print(6 * 7)'"
        },
    )
    assert done.output == "new\n42\n\n[exit code 0]"
    assert (
        subprocess.run(
            ["git", "log", "-1", "--format=%s"], cwd=git_repo, capture_output=True, text=True
        ).stdout
        == "new\n"
    )


@pytest.mark.parametrize("mount", ["/home/user/project", "/tmp/user/project"])
def test_a_mount_shows_the_folder_at_a_neutral_path_only(workdir: Path, mount: str) -> None:
    """A server run's policy shows the workspace at a fixed path (under the tmpfs that hides
    /home, or the private /tmp of a host without /home), HOME its parent: its real path is
    nowhere to be seen, and what is written at the mount lands in the folder."""
    policy = Policy(mount=Path(mount), timeout=60)
    look = f"pwd; echo $PWD $HOME; ls -A; echo made > made.txt; ls {workdir} || echo hidden"
    done = sandbox.run(look, workdir, policy)
    home = str(Path(mount).parent)
    assert done.output == (
        f"{mount}\n{mount} {home}\nhello.py\n"
        f"ls: cannot access '{workdir}': No such file or directory\nhidden\n"
    )
    assert done.exit_code == 0
    assert (workdir / "made.txt").read_text() == "made\n"


def test_the_shown_path_is_under_home_and_named_after_the_repository() -> None:
    under = Path("/home/user") if Path("/home").is_dir() else Path("/tmp/user")
    assert sandbox.shown_path("project") == under / "project"
    assert sandbox.shown_path("my repo/..") == under / "my-repo"
    assert sandbox.shown_path("..") == under / "repo"


FORKER = """python3 -c '
import os, time  # {marker}
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError:
    pass
time.sleep(600)
'"""


@pytest.mark.parametrize("kind", ["python", "bash"])
def test_a_fork_bomb_is_stopped_at_the_process_limit(workdir: Path, kind: str) -> None:
    tag = marker()
    command = (
        FORKER.format(marker=tag) if kind == "python" else f": {tag}; :(){{ :|:& }};:; sleep 600"
    )
    tools = Tools(workdir, command_timeout=120, policy=Policy(max_processes=32))
    started = time.monotonic()
    outcome = tools.run("run_command", {"command": command})
    assert time.monotonic() - started < 60
    assert outcome.is_error
    assert outcome.output.endswith("[stopped: the sandbox's limit of 32 processes was reached]")
    assert outcome.metadata is not None and outcome.metadata["max_processes"] == 32
    gone(tag)


def test_memory_cpu_and_output_limits(workdir: Path) -> None:
    small = Policy(memory_bytes=256 * 1024**2, cpu_seconds=1, max_output_bytes=1000)
    tools = Tools(workdir, command_timeout=120, policy=small)
    hog = tools.run("run_command", {"command": "python3 -c 'b = bytearray(1024 ** 3)'"})
    assert hog.output.endswith("MemoryError\n\n[exit code 1]") and hog.is_error
    # address space merely reserved (as WebAssembly and JVMs do) is not memory used
    reserve = (
        "python3 -c 'import mmap; mmap.mmap(-1, 4 * 1024 ** 3, flags=mmap.MAP_PRIVATE, "
        'prot=0); print("reserved")\''
    )
    assert tools.run("run_command", {"command": reserve}).output == "reserved\n\n[exit code 0]"
    spin = tools.run("run_command", {"command": "while :; do :; done"})
    assert spin.output == "[exit code 152: the CPU time limit of 1s was reached]"
    loud = tools.run("run_command", {"command": "yes | head -c 5000"})
    assert loud.output == (
        "y\n" * 500 + "\n[output cut at 1000 bytes; the rest was dropped]\n[exit code 0]"
    )
    assert loud.metadata is not None and loud.metadata["max_output_bytes"] == 1000


@pytest.mark.parametrize("confined", [True, False], ids=["sandbox", "unconfined"])
def test_a_background_process_is_gone_when_the_command_ends(workdir: Path, confined: bool) -> None:
    tag = marker()
    policy = Policy() if confined else Policy.unconfined()
    tools = Tools(workdir, command_timeout=60, policy=policy)
    outcome = tools.run(
        "run_command", {"command": f"(exec -a {tag} sleep 600) >/dev/null 2>&1 & echo started"}
    )
    assert outcome.output == "started\n\n[exit code 0]"
    assert (outcome.metadata or {})["sandbox"] == ("bwrap" if confined else "off")
    gone(tag)


@pytest.mark.usefixtures("ctrl_c")
def test_a_ctrl_c_while_the_command_starts_is_stopped_with_its_output(workdir: Path) -> None:
    # the command interrupts this process at once: the signal often lands while Popen is
    # still starting it, before its output is watched (it did, 127 times in 200, under load)
    tag = marker()
    for _ in range(20):
        with pytest.raises(sandbox.Stopped) as stopped:
            sandbox.run(
                f"echo started; kill -INT {os.getpid()}; exec -a {tag} sleep 600",
                workdir,
                Policy.unconfined(),
            )
        assert stopped.value.output == "started\n"
    gone(tag)


def test_each_command_result_records_its_policy_in_the_session(
    memory_service: Any, me: str, fake_model: FakeModel, workdir: Path
) -> None:
    agent = make_agent(memory_service, me, fake_model, workdir)
    fake_model.reply("", call("c1", "run_command", command="echo hi"))
    fake_model.reply("Done.")
    agent.turn("say hi")
    results = [parts[0] for role, parts in stored(agent) if role == "tool"]
    assert [(r["output"], r["metadata"]["sandbox"], r["metadata"]["network"]) for r in results] == [
        ("hi\n\n[exit code 0]", "bwrap", False)
    ]


def test_without_bubblewrap_commands_are_refused_with_a_hint(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-not-installed-here")
    outcome = Tools(workdir).run("run_command", {"command": "touch x"})
    assert (outcome.output, outcome.is_error, outcome.metadata) == (
        "run_command refused: commands run in a sandbox, and bubblewrap is missing: install "
        "the package `bubblewrap`, or run with --sandbox off",
        True,
        {"sandbox": "missing"},
    )
    assert not (workdir / "x").exists()


@pytest.mark.parametrize(
    ("sig", "early"),
    [(signal.SIGKILL, False), (signal.SIGHUP, False), (signal.SIGKILL, True)],
    ids=["kill-9", "hangup", "kill-9-while-the-sandbox-starts"],
)
def test_no_command_outlives_the_agent(
    fake_model: FakeModel, baton_home: Path, tmp_path: Path, sig: signal.Signals, early: bool
) -> None:
    tag = marker()
    fake_model.reply("", call("c1", "run_command", command=f"(exec -a {tag} sleep 600) & wait"))
    env = {**os.environ, **model_env(fake_model), "BATON_HOME": str(baton_home)}
    agent = subprocess.Popen(
        [sys.executable, "-m", "baton", "run", "wait", "--yes"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        # early: as soon as bwrap exists (its command line holds the command), else once the
        # command's own process runs inside the sandbox
        wait_until(lambda: bool(running(tag, anywhere=early)), timeout=120)
        agent.send_signal(sig)
        agent.wait(timeout=60)
        gone(tag)
    finally:
        agent.kill()
        agent.wait()


def test_the_cli_flags_and_settings_choose_the_policy(
    baton_home: Path, fake_model: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in model_env(fake_model).items():
        monkeypatch.setenv(name, value)

    def baton(*args: str, **env: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "baton", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def ran(result: Result) -> dict[str, Any]:
        assert result.code == 0, result.err
        sid = result.err.split("session ")[-1].split(" ")[0]
        shown = baton("sessions", "show", sid, "--json")
        messages = orjson.loads(shown.out)["messages"]
        return dict(messages[2]["parts"][0]["metadata"])

    fake_model.reply("", call("c1", "run_command", command="true"))
    fake_model.reply("ok")
    off = baton("run", "go", "--yes", "--sandbox", "off")
    assert off.err.splitlines()[0] == (
        "baton: warning: --sandbox off: commands run unconfined, with your files, "
        "permissions and network"
    )
    assert ran(off)["sandbox"] == "off"
    fake_model.reply("", call("c1", "run_command", command="true"))
    fake_model.reply("ok")
    meta = ran(baton("run", "go", "--yes", "--network", BATON_SANDBOX_LIMITS="processes=64"))
    assert (meta["sandbox"], meta["network"], meta["max_processes"]) == ("bwrap", True, 64)
    bad = baton("run", "go", "--yes", BATON_SANDBOX="maybe")
    assert (bad.code, bad.out, bad.err) == (
        2,
        "",
        "error: sandbox must be on or off, got 'maybe'\n",
    )
