"""The tools: confined to the repository root, clear refusals, exact edits, commands with a
timeout and an output cap."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from baton.agent.tools import Tools, cap, repository_root


@pytest.fixture
def tools(workdir: Path) -> Tools:
    (workdir / "src").mkdir()
    (workdir / "src" / "app.py").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    return Tools(workdir, command_timeout=5)


def refused(tools: Tools, name: str, **args: object) -> str:
    outcome = tools.run(name, dict(args))
    assert outcome.is_error, outcome.output
    return outcome.output


def test_paths_outside_the_root_are_refused(tools: Tools, workdir: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside\n")
    (workdir / "out").symlink_to(tmp_path / "secret.txt")
    (workdir / "outdir").symlink_to(tmp_path)
    (workdir / "inside").symlink_to(workdir / "src" / "app.py")
    assert refused(tools, "read_file", path="../secret.txt") == (
        "../secret.txt is outside the repository: '..' may not leave the root"
    )
    assert refused(tools, "read_file", path="src/../../secret.txt").endswith(
        "may not leave the root"
    )
    assert refused(tools, "read_file", path="/etc/passwd") == (
        "/etc/passwd is an absolute path: only paths relative to the repository root are allowed"
    )
    assert refused(tools, "write_file", path="~/x", content="").startswith("~/x is an absolute")
    assert refused(tools, "read_file", path="out") == (
        f"out leads outside the repository (through a symlink to {(tmp_path / 'secret.txt').resolve()}); refused"
    )
    assert "through a symlink" in refused(tools, "write_file", path="outdir/new.txt", content="x")
    assert "through a symlink" in refused(tools, "list_files", path="outdir")
    assert "through a symlink" in refused(tools, "search_files", pattern="x", path="outdir")
    assert "through a symlink" in refused(tools, "edit_file", path="out", old_text="o", new_text="")
    assert refused(tools, "write_file", path=".git/config", content="x") == (
        ".git/config is inside .git; refused"
    )
    assert not (tmp_path / "new.txt").exists()
    assert (tmp_path / "secret.txt").read_text() == "outside\n"
    # a symlink that stays inside, and '..' that stays inside, are fine
    assert "line 1" in tools.run("read_file", {"path": "inside"}).output
    assert "line 1" in tools.run("read_file", {"path": "src/../src/app.py"}).output
    listed = tools.run("list_files", {}).output.splitlines()
    assert "out" not in listed and "src/app.py" in listed and "hello.py" in listed


def test_read_file_with_line_ranges(tools: Tools) -> None:
    whole = tools.run("read_file", {"path": "src/app.py"})
    assert whole.output.splitlines()[0] == " 1\tline 1" and whole.read == ["src/app.py"]
    part = tools.run("read_file", {"path": "src/app.py", "start_line": 3, "end_line": 4})
    assert part.output == "3\tline 3\n4\tline 4\n[lines 3-4 of 10; ask for more with start_line]"
    assert refused(tools, "read_file", path="src/app.py", start_line=11) == (
        "src/app.py has 10 lines; start_line 11 is past the end"
    )
    assert refused(tools, "read_file", path="nope.py") == "nope.py does not exist"
    assert refused(tools, "read_file", path="src") == "src is a folder; use list_files"
    assert refused(tools, "read_file", path="src/app.py", start_line=0).startswith("start_line")
    assert refused(tools, "read_file", paths="x").startswith("bad arguments for read_file")


def test_search_files_with_a_regex(tools: Tools, workdir: Path) -> None:
    (workdir / "notes.md").write_text("line 7 is here\n")
    found = tools.run("search_files", {"pattern": r"line [7]\b"}).output
    assert found.splitlines() == ["notes.md:1: line 7 is here", "src/app.py:7: line 7"]
    only = tools.run("search_files", {"pattern": "line 7", "glob": "*.py"}).output
    assert only == "src/app.py:7: line 7"
    assert tools.run("search_files", {"pattern": "zebra"}).output == "no matches"
    assert refused(tools, "search_files", pattern="(").startswith("pattern is not a valid")


def test_list_files_respects_gitignore_in_a_repository(git_repo: Path) -> None:
    (git_repo / "debug.log").write_text("ignored")
    (git_repo / "new.txt").write_text("untracked")
    tools = Tools(git_repo)
    listed = tools.run("list_files", {}).output.splitlines()
    assert "new.txt" in listed and "src/app.py" in listed and "debug.log" not in listed
    assert not any(p.startswith(".git/") for p in listed)
    assert tools.run("list_files", {"path": "src"}).output.splitlines() == [
        "src/app.py",
        "src/util.py",
    ]
    assert repository_root(git_repo / "src") == git_repo.resolve()


def test_write_and_edit(tools: Tools, workdir: Path) -> None:
    made = tools.run("write_file", {"path": "pkg/new.py", "content": "x = 1\nx = 1\n"})
    assert (made.output, made.written) == ("created pkg/new.py (12 bytes)", ["pkg/new.py"])
    assert (workdir / "pkg" / "new.py").read_text() == "x = 1\nx = 1\n"
    assert refused(tools, "edit_file", path="pkg/new.py", old_text="y = 2", new_text="z") == (
        "old_text was not found in pkg/new.py; read the file and copy the exact text "
        "(whitespace and indentation included)"
    )
    assert refused(tools, "edit_file", path="pkg/new.py", old_text="x = 1", new_text="z") == (
        "old_text occurs 2 times in pkg/new.py; include more surrounding lines so it is unique, "
        "or set replace_all"
    )
    assert (workdir / "pkg" / "new.py").read_text() == "x = 1\nx = 1\n"  # untouched
    done = tools.run("edit_file", {"path": "pkg/new.py", "old_text": "x = 1\nx", "new_text": "y"})
    assert done.output == "edited pkg/new.py (1 replacement(s))"
    assert (workdir / "pkg" / "new.py").read_text() == "y = 1\n"
    every = {"path": "src/app.py", "old_text": "line", "new_text": "row", "replace_all": True}
    assert tools.run("edit_file", every).output == "edited src/app.py (10 replacement(s))"
    assert refused(tools, "edit_file", path="gone.py", old_text="a", new_text="b") == (
        "gone.py does not exist"
    )
    replaced = tools.run("write_file", {"path": "hello.py", "content": ""})
    assert replaced.output == "replaced hello.py (0 bytes)"


def test_run_command_output_exit_code_and_timeout(tools: Tools, workdir: Path) -> None:
    ok = tools.run("run_command", {"command": "echo hi; echo err >&2; pwd"})
    assert ok.output == f"hi\nerr\n{workdir.resolve()}\n\n[exit code 0]" and not ok.is_error
    bad = tools.run("run_command", {"command": "exit 3"})
    assert (bad.output, bad.is_error) == ("[exit code 3]", True)
    started = time.monotonic()
    slow = tools.run("run_command", {"command": "echo started; sleep 120 & wait", "timeout": 0.5})
    assert time.monotonic() - started < 60  # stopped, not waited for (room for a busy machine)
    assert slow.is_error and slow.output == (
        "started\n\n[timed out after 0.5s; the command was stopped]"
    )


def test_long_output_is_capped_for_the_model_and_kept_whole(tools: Tools) -> None:
    big = tools.run("run_command", {"command": "seq 1 20000"})
    numbers = "\n".join(str(n) for n in range(1, 20001))
    assert big.output == numbers + "\n\n[exit code 0]"
    assert big.model_output is not None and len(big.model_output) < 16_200
    assert big.model_output.startswith("1\n2\n3\n") and big.model_output.endswith("[exit code 0]")
    assert "characters cut here; the session keeps the full output" in big.model_output
    assert cap("short") is None


def test_unknown_tool_and_bad_arguments(tools: Tools) -> None:
    assert refused(tools, "delete_everything").startswith("unknown tool 'delete_everything'")
    assert refused(tools, "run_command", command="").startswith("command must be")
    if os.geteuid() != 0:  # root reads anything
        (tools.root / "locked.txt").write_text("x")
        (tools.root / "locked.txt").chmod(0)
        assert refused(tools, "read_file", path="locked.txt").startswith("read_file failed")
