"""Approvals that mean what the user meant.

An answer is read from the terminal only (`/dev/tty`), after discarding whatever was typed
ahead (termios TCIFLUSH), so `a⏎` typed while the model thinks never approves anything and a
piped prompt line is never taken for an answer. An edit or write shows its unified diff before
it is asked. "Always" is scoped: for a command, to the prefix shown (`pytest`, `npm test`), for
edits, to this session. The modes are those users know: `ask` (the default), `auto-edit` (edits
without asking, commands ask), `plan` (read-only tools only) and `yolo` (`--yes`: everything
without asking, because the sandbox holds)."""

from __future__ import annotations

import difflib
import os
import shlex
from collections.abc import Callable
from typing import Any

from baton.agent.tools import CONFIRM, ToolError, Tools

MODES = ("ask", "auto-edit", "plan", "yolo")
EDITS = frozenset({"write_file", "edit_file"})
PLAN_REFUSED = (
    "refused: the session is in plan mode (read-only tools only); describe the change instead, "
    "the user can switch modes with /mode"
)
# commands whose first word alone says little: their prefix is two words (`npm test`)
TWO_WORDS = frozenset(
    {"npm", "npx", "yarn", "pnpm", "bun", "cargo", "go", "git", "uv", "poetry", "pipenv",
     "bundle", "dotnet", "mvn", "gradle", "make", "docker", "kubectl", "pip", "pip3"}
)  # fmt: skip
PYTHONS = frozenset({"python", "python3"})
SHELL_SYNTAX = set(";&|<>`$(){}\n\\*?[]~!#")
DIFF_LINES = 400  # lines of a diff shown before asking

Reader = Callable[[str], "str | None"]  # (prompt) -> the answer line, None: no terminal


def mode_of(yes: bool, mode: str | None) -> str:
    """The mode the flags ask for: `--mode` when given (`--mode plan --yes` stays read-only),
    else `--yes` is yolo."""
    return mode or ("yolo" if yes else "ask")


def simple_words(command: str) -> list[str] | None:
    """The words of a single plain command; None when it has shell syntax (`;`, `&&`, `|`,
    redirections, substitutions, globs), which no "always" ever covers."""
    if not command.strip() or SHELL_SYNTAX & set(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    return words or None


def command_prefix(command: str) -> tuple[str, ...] | None:
    """What "always" would allow for `command`: its program (`pytest`), its program and
    sub-command (`npm test`, `python -m pytest`); None when it cannot be scoped."""
    words = simple_words(command)
    if words is None or "=" in words[0]:
        return None
    if words[0] in PYTHONS and len(words) > 2 and words[1] == "-m":
        return tuple(words[:3])
    if words[0] in TWO_WORDS and len(words) > 1 and not words[1].startswith("-"):
        return tuple(words[:2])
    return (words[0],)


def preview(tools: Tools, name: str, args: dict[str, Any]) -> str | None:
    """The unified diff an edit or write would make (nothing is written); None when it cannot
    be worked out (the tool will say why)."""
    path = args.get("path")
    if name not in EDITS or not isinstance(path, str):
        return None
    try:
        target = tools.path(path, must_exist=False)
    except ToolError:
        return None
    try:
        old = target.read_text("utf-8") if target.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return None
    if name == "write_file":
        new = args.get("content")
        if not isinstance(new, str):
            return None
    else:
        before, after = args.get("old_text"), args.get("new_text")
        if not isinstance(before, str) or not isinstance(after, str) or not before:
            return None
        count = old.count(before)
        if count == 0 or (count > 1 and not args.get("replace_all")):
            return None
        new = old.replace(before, after)
    rel = tools.rel(target)
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        "/dev/null" if not target.exists() else f"a/{rel}",
        f"b/{rel}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def read_terminal(prompt: str) -> str | None:
    """One answer line from the controlling terminal, typed after `prompt` was shown: what was
    typed before is discarded. None when there is no terminal."""
    import termios

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        try:
            termios.tcflush(fd, termios.TCIFLUSH)
        except termios.error:
            return None
        os.write(fd, prompt.encode("utf-8", "replace"))
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(fd, 1024)
            if not chunk:  # Ctrl-D
                break
            data += chunk
        return data.decode("utf-8", "replace")
    finally:
        os.close(fd)


class Approver:
    """The agent's `confirm`: True to run, False (or the model's refusal text) to refuse."""

    def __init__(
        self,
        tools: Tools,
        mode: str = "ask",
        reader: Reader | None = read_terminal,
        out: Callable[[str], None] | None = None,
        color: bool = True,
        diffs: bool = True,
    ) -> None:
        self.tools = tools
        self.mode = mode
        self.reader = reader  # None: nobody to ask (piped, --json): refuse
        self.out = out or (lambda text: None)
        self.color = color
        self.diffs = diffs  # show the diff of an edit that is not asked too
        self.prefixes: set[tuple[str, ...]] = set()  # commands allowed "always", by prefix
        self.edits = False  # edits allowed "always", this session
        self.refused: list[str] = []  # what was refused, one line each

    def __call__(self, name: str, args: dict[str, Any], description: str) -> bool | str:
        if name not in CONFIRM:
            return True
        if self.mode == "plan":
            return self._refuse(description, "plan mode: read-only tools only", PLAN_REFUSED)
        diff = preview(self.tools, name, args) if name in EDITS else None
        if self.mode == "yolo" or (name in EDITS and (self.mode == "auto-edit" or self.edits)):
            if diff and self.diffs:
                self._show_diff(diff)
            return True
        if name == "run_command" and self.covers(str(args.get("command", ""))):
            return True
        if self.reader is None:
            return self._refuse(description, "no terminal to ask; pass --yes to allow")
        if diff is not None:
            self._show_diff(diff)
        prefix = command_prefix(str(args.get("command", ""))) if name == "run_command" else None
        if name in EDITS:
            always = "a = every edit this session"
        elif prefix is not None:
            always = f'a = always "{" ".join(prefix)} …" this session'
        else:
            always = ""
        choices = "[y/n/a] " if always else "[y/n] "
        question = f"allow {description}? {choices}"
        if always:
            question = f"allow {description}? ({always}) {choices}"
        while True:
            answer = self.reader(self._style(question, "33"))
            if answer is None:
                return self._refuse(description, "no terminal to ask; pass --yes to allow")
            answer = answer.strip().lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("a", "always") and always:
                if name in EDITS:
                    self.edits = True
                elif prefix is not None:
                    self.prefixes.add(prefix)
                return True
            if answer in ("n", "no", ""):
                self.refused.append(description)
                return False

    def covers(self, command: str) -> bool:
        """Whether an "always" the user gave allows `command` without asking."""
        words = simple_words(command)
        if words is None:
            return False
        return any(tuple(words[: len(p)]) == p for p in self.prefixes)

    def _refuse(self, description: str, why: str, for_model: str | None = None) -> bool | str:
        self.refused.append(description)
        self.out(f"baton: refused {description} ({why})")
        return for_model if for_model is not None else False

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def _show_diff(self, diff: str) -> None:
        lines = diff.splitlines()
        if len(lines) > DIFF_LINES:
            lines = [*lines[:DIFF_LINES], f"[… {len(lines) - DIFF_LINES} more lines]"]
        shown = []
        for line in lines:
            if line.startswith(("+++", "---")):
                shown.append(self._style(line, "1"))
            elif line.startswith("+"):
                shown.append(self._style(line, "32"))
            elif line.startswith("-"):
                shown.append(self._style(line, "31"))
            elif line.startswith("@@"):
                shown.append(self._style(line, "36"))
            else:
                shown.append(line)
        self.out("\n".join(shown))
