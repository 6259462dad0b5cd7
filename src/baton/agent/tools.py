"""The agent's tools, confined to the repository root: a path that leaves it (`../`, an
absolute path, a symlink that points out) is refused with a message the model can act on.
Commands run in the sandbox (baton.sandbox) unless the policy says otherwise."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from baton import sandbox
from baton.sandbox import Policy, SandboxUnavailable

READ_LINES = 2000  # lines read_file returns when no range is given
READ_CHARS = 100_000
LIST_LIMIT = 1000
SEARCH_LIMIT = 200
SEARCH_FILE_BYTES = 2 * 1024 * 1024
OUTPUT_CAP = 16_000  # characters of a tool's output the model sees; the session keeps all
COMMAND_TIMEOUT = 120.0
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache"}
CONFIRM = frozenset({"write_file", "edit_file", "run_command"})  # asked unless --yes


class ToolError(Exception):
    """A refusal or failure the model is told about (is_error), in one or two lines."""


@dataclass
class Outcome:
    output: str  # everything, as the session keeps it
    is_error: bool = False
    model_output: str | None = None  # what the model is sent, when it is shorter
    read: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    metadata: dict[str, Any] | None = None  # kept with the result, e.g. the sandbox policy
    parts: list[dict[str, Any]] = field(default_factory=list)  # recorded after the result

    @property
    def for_model(self) -> str:
        return self.model_output if self.model_output is not None else self.output


def _fn(name: str, description: str, properties: dict[str, Any], required: list[str]) -> Any:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_PATH = {"type": "string", "description": "A path relative to the repository root."}
SPECS: list[dict[str, Any]] = [
    _fn(
        "list_files",
        "List the files under a folder of the repository (recursively; .gitignore'd files "
        "are left out).",
        {"path": {**_PATH, "description": "Folder relative to the root (default: the root)."}},
        [],
    ),
    _fn(
        "read_file",
        "Read a text file, with line numbers. Give start_line/end_line (1-based, inclusive) "
        f"for part of a long file; at most {READ_LINES} lines are returned at once.",
        {
            "path": _PATH,
            "start_line": {"type": "integer", "minimum": 1},
            "end_line": {"type": "integer", "minimum": 1},
        },
        ["path"],
    ),
    _fn(
        "search_files",
        "Search file contents with a regular expression (Python syntax); answers path:line: "
        "text for each match.",
        {
            "pattern": {"type": "string"},
            "path": {**_PATH, "description": "Folder or file to search (default: the root)."},
            "glob": {"type": "string", "description": "Only files matching this, e.g. *.py"},
        },
        ["pattern"],
    ),
    _fn(
        "write_file",
        "Create or replace a file with the given content.",
        {"path": _PATH, "content": {"type": "string"}},
        ["path", "content"],
    ),
    _fn(
        "edit_file",
        "Replace exact text in a file. old_text must occur exactly once (include enough "
        "surrounding lines to make it unique), unless replace_all is true.",
        {
            "path": _PATH,
            "old_text": {"type": "string"},
            "new_text": {"type": "string"},
            "replace_all": {"type": "boolean"},
        },
        ["path", "old_text", "new_text"],
    ),
    _fn(
        "run_command",
        "Run a shell command (bash) in the repository root and return its output and exit "
        "code. Long outputs are cut for you; the session keeps them whole.",
        {
            "command": {"type": "string"},
            "timeout": {"type": "number", "description": "Seconds (default 120)."},
        },
        ["command"],
    ),
]
NAMES = frozenset(s["function"]["name"] for s in SPECS)


def cap(text: str, limit: int = OUTPUT_CAP) -> str | None:
    """The head and tail of a long text with what was cut in between, or None if it fits."""
    if len(text) <= limit:
        return None
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    cut = len(text) - len(head) - len(tail)
    return f"{head}\n[… {cut} characters cut here; the session keeps the full output …]\n{tail}"


class Tools:
    def __init__(
        self,
        root: Path,
        *,
        command_timeout: float = COMMAND_TIMEOUT,
        output_cap: int = OUTPUT_CAP,
        policy: Policy | None = None,
        env: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.command_timeout = command_timeout
        self.output_cap = output_cap
        self.policy = policy if policy is not None else Policy()  # sandboxed by default
        self.env = dict(env or {})  # variables commands get (a server run's environment)
        self.stop = stop  # set by another thread: the running command is killed (Stopped)

    specs = SPECS

    # paths
    def path(self, value: Any, *, must_exist: bool = True) -> Path:
        """`value` inside the root, or a ToolError saying why not."""
        if not isinstance(value, str) or not value.strip():
            raise ToolError("path must be a non-empty string relative to the repository root")
        given = value.strip()
        if given.startswith("~") or os.path.isabs(given):
            raise ToolError(
                f"{given} is an absolute path: only paths relative to the repository root "
                "are allowed"
            )
        target = self.root / given
        resolved = target.resolve()
        if not resolved.is_relative_to(self.root):
            if ".." in Path(given).parts and not _through_symlink(self.root, given):
                raise ToolError(f"{given} is outside the repository: '..' may not leave the root")
            raise ToolError(
                f"{given} leads outside the repository (through a symlink to {resolved}); refused"
            )
        if must_exist and not resolved.exists():
            raise ToolError(f"{given} does not exist")
        return resolved

    def rel(self, path: Path) -> str:
        relative = path.relative_to(self.root).as_posix()
        return relative or "."

    # dispatch
    def run(self, name: str, args: dict[str, Any]) -> Outcome:
        if name not in NAMES:
            return Outcome(f"unknown tool {name!r}; the tools are {', '.join(sorted(NAMES))}", True)
        try:
            outcome: Outcome = getattr(self, name)(**args)
        except TypeError as exc:
            return Outcome(f"bad arguments for {name}: {exc}", True)
        except ToolError as exc:
            return Outcome(str(exc), True)
        except OSError as exc:
            return Outcome(f"{name} failed: {exc.strerror or exc}", True)
        short = cap(outcome.output, self.output_cap)
        if short is not None and outcome.model_output is None:
            outcome.model_output = short
        return outcome

    def describe(self, name: str, args: dict[str, Any]) -> str:
        """One line for a confirmation prompt."""
        if name == "run_command":
            return f"run: {args.get('command', '')}"
        if name == "write_file":
            size = len(str(args.get("content", "")).encode())
            return f"write {args.get('path', '?')} ({size} bytes)"
        if name == "edit_file":
            return f"edit {args.get('path', '?')}"
        return f"{name} {args}"

    # the tools
    def list_files(self, path: str = ".") -> Outcome:
        folder = self.path(path)
        if not folder.is_dir():
            raise ToolError(f"{path} is not a folder")
        files = list(self._files(folder))
        shown = files[:LIST_LIMIT]
        lines = [self.rel(f) for f in shown]
        if len(files) > LIST_LIMIT:
            lines.append(f"[… and {len(files) - LIST_LIMIT} more; list a subfolder]")
        return Outcome("\n".join(lines) if lines else "(no files)")

    def read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> Outcome:
        target = self.path(path)
        if target.is_dir():
            raise ToolError(f"{path} is a folder; use list_files")
        data = target.read_bytes()
        if b"\x00" in data[:8192]:
            raise ToolError(f"{path} is a binary file ({len(data)} bytes)")
        lines = data.decode("utf-8", "replace").splitlines()
        for name, value in (("start_line", start_line), ("end_line", end_line)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ToolError(f"{name} must be a line number from 1")
        start = start_line or 1
        if start > max(len(lines), 1):
            raise ToolError(f"{path} has {len(lines)} lines; start_line {start} is past the end")
        end = min(end_line or start + READ_LINES - 1, len(lines), start + READ_LINES - 1)
        if end < start and lines:
            raise ToolError("end_line is before start_line")
        width = len(str(end))
        body = "\n".join(f"{n:>{width}}\t{lines[n - 1]}" for n in range(start, end + 1))
        if len(body) > READ_CHARS:
            body = body[:READ_CHARS] + "\n[… cut; read a smaller range]"
        note = ""
        if end < len(lines):
            note = f"\n[lines {start}-{end} of {len(lines)}; ask for more with start_line]"
        rel = self.rel(target)
        return Outcome((body or "(empty file)") + note, read=[rel])

    def search_files(self, pattern: str, path: str = ".", glob: str | None = None) -> Outcome:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"pattern is not a valid regular expression: {exc}") from None
        base = self.path(path)
        candidates = [base] if base.is_file() else self._files(base)
        found: list[str] = []
        more = 0
        for file in candidates:
            if glob and not (file.match(glob) or Path(self.rel(file)).match(glob)):
                continue
            try:
                if file.stat().st_size > SEARCH_FILE_BYTES:
                    continue
                data = file.read_bytes()
            except OSError:
                continue
            if b"\x00" in data[:8192]:
                continue
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if regex.search(line):
                    if len(found) < SEARCH_LIMIT:
                        found.append(f"{self.rel(file)}:{number}: {line[:300]}")
                    else:
                        more += 1
        if more:
            found.append(f"[… {more} more matches; narrow the pattern or the path]")
        return Outcome("\n".join(found) if found else "no matches")

    def write_file(self, path: str, content: str) -> Outcome:
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        target = self._writable(path)
        existed = target.exists()
        if target.is_dir():
            raise ToolError(f"{path} is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, "utf-8")
        rel = self.rel(target)
        verb = "replaced" if existed else "created"
        return Outcome(f"{verb} {rel} ({len(content.encode())} bytes)", written=[rel])

    def edit_file(
        self, path: str, old_text: str, new_text: str, replace_all: bool = False
    ) -> Outcome:
        if not isinstance(old_text, str) or not isinstance(new_text, str):
            raise ToolError("old_text and new_text must be strings")
        if old_text == "":
            raise ToolError("old_text is empty; to create a file use write_file")
        target = self._writable(path)
        if not target.is_file():
            raise ToolError(
                f"{path} does not exist" if not target.exists() else f"{path} is a folder"
            )
        text = target.read_text("utf-8")
        count = text.count(old_text)
        rel = self.rel(target)
        if count == 0:
            raise ToolError(
                f"old_text was not found in {rel}; read the file and copy the exact text "
                "(whitespace and indentation included)"
            )
        if count > 1 and not replace_all:
            raise ToolError(
                f"old_text occurs {count} times in {rel}; include more surrounding lines so it "
                "is unique, or set replace_all"
            )
        target.write_text(text.replace(old_text, new_text), "utf-8")
        return Outcome(f"edited {rel} ({count} replacement(s))", written=[rel])

    def run_command(self, command: str, timeout: float | None = None) -> Outcome:
        if not isinstance(command, str) or not command.strip():
            raise ToolError("command must be a non-empty string")
        limit = self.command_timeout
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
            limit = min(float(timeout), max(self.command_timeout, 600.0))
        policy = replace(self.policy, timeout=limit)
        try:
            result = sandbox.run(command, self.root, policy, env=self.env, stop=self.stop)
        except SandboxUnavailable as exc:
            return Outcome(f"run_command refused: {exc}", True, metadata={"sandbox": "missing"})
        notes = []
        if result.truncated:
            notes.append(f"[output cut at {policy.max_output_bytes} bytes; the rest was dropped]")
        if result.timed_out:
            notes.append(f"[timed out after {limit:g}s; the command was stopped]")
        elif result.killed_by_limit == "processes":
            notes.append(
                f"[stopped: the sandbox's limit of {policy.max_processes} processes was reached]"
            )
        elif result.killed_by_limit == "cpu":
            notes.append(
                f"[exit code {result.exit_code}: the CPU time limit of {policy.cpu_seconds}s "
                "was reached]"
            )
        else:
            notes.append(f"[exit code {result.exit_code}]")
        text = "\n".join([result.output, *notes]).lstrip("\n")
        error = result.exit_code != 0
        return Outcome(text, error, metadata=result.policy)

    # helpers
    def _writable(self, path: str) -> Path:
        target = self.path(path, must_exist=False)
        if ".git" in target.relative_to(self.root).parts:
            raise ToolError(f"{path} is inside .git; refused")
        return target

    def _files(self, folder: Path) -> Iterator[Path]:
        """Files under `folder`, .gitignore respected in a git work tree, sorted."""
        listed = self._git_files(folder)
        if listed is not None:
            yield from listed
            return
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                file = Path(dirpath) / name
                if file.resolve().is_relative_to(self.root):
                    yield file

    def _git_files(self, folder: Path) -> list[Path] | None:
        try:
            done = subprocess.run(
                ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                cwd=folder,
                capture_output=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        out: list[Path] = []
        for raw in sorted(set(done.stdout.split(b"\0"))):
            if not raw:
                continue
            file = folder / os.fsdecode(raw)
            if file.is_file() and file.resolve().is_relative_to(self.root):
                out.append(file)
        return out


def _through_symlink(root: Path, given: str) -> bool:
    """Whether some component of `given` (below the root) is a symlink."""
    current = root
    for part in Path(given).parts:
        if part == "..":
            current = current.parent
            continue
        current = current / part
        if current.is_symlink():
            return True
    return False


def repository_root(start: Path) -> Path:
    """The root of the git work tree `start` is in, else `start` itself."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return start.resolve()
    if done.returncode == 0 and done.stdout.strip():
        return Path(done.stdout.strip()).resolve()
    return start.resolve()
