"""core/terminal.py: stored text made safe to print on a terminal."""

from __future__ import annotations

from baton.core.terminal import has_controls, json_printable, printable

EVIL = (
    "\x1b]0;pwned\x07a\x1b[2Jb\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\c\u202ed\x9b2Je"
)


def test_printable_shows_controls_and_keeps_layout() -> None:
    assert printable(EVIL) == (
        "\\x1b]0;pwned\\x07a\\x1b[2Jb\\x1b]8;;https://evil.example/\\x1b\\click"
        "\\x1b]8;;\\x1b\\c\\u202ed\\x9b2Je"
    )
    assert printable("line one\n\tline two\r\n") == "line one\n\tline two\n"
    assert printable("über ✓ 日本") == "über ✓ 日本"
    assert printable("a\rb\x00\x7f") == "a\\x0db\\x00\\x7f"
    assert json_printable('{"a": "\x9b\u202e\x7fü"}') == '{"a": "\\u009b\\u202e\\u007fü"}'
    assert has_controls("Alice\u202e") and has_controls("a\nb") and not has_controls("Zoë")
