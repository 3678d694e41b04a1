"""Inert logs: no repository text printed by any command becomes a workflow command (issue 12, part 4).

A table of hostile strings goes through `inert` and through each printer's line builder; the runner's
parser (mirrored in tests/runner_commands.py) must find no command in what comes out, and the text must
still be there for a person to read. tests/e2e/test_inert_logs.py stages the same strings as a real
repository and reads the output of the real processes.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from runner_commands import commands, foreign

from gitops_flags import inert

MARK = "PWNED"
HOSTILE = [
    f"::stop-commands::{MARK}",
    f"::add-mask::{MARK}",
    f"::error title={MARK}::forged",
    f"  ::warning file=x::{MARK}",
    f"\t::set-output name={MARK}::1",
    f"\u3000::notice::{MARK}",  # an ideographic space: blank to .NET's TrimStart
    f"\xa0::debug::{MARK}",
    f"##[error]{MARK}",
    f"text then ##[add-mask]{MARK}",
    f"##[group]{MARK}",
    f"line one\n::error::{MARK}",
    f"line one\r::error::{MARK}",
    f"line one\r\n##[warning]{MARK}",
    f"::{MARK}::",  # the resume token of a stop-commands block
    f"\x1b[2K\x1b[1A::error::{MARK}",  # ANSI: erase the line above, then a command
    f"::::{MARK}",
    f"#:#[::]{MARK}",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_inert_leaves_no_command_and_keeps_the_text(text: str) -> None:
    shown = inert.inert(text)
    assert commands(shown) == []
    assert MARK in shown
    assert "\x1b" not in shown and "\r" not in shown
    assert shown.replace(inert.ZWSP, "").replace("\\x1b", "\x1b") == text.replace("\r\n", "\n").replace(
        "\r", "\n"), "only zero-width spaces and escapes are added"


def test_inert_does_not_touch_ordinary_text() -> None:
    for text in ("applied  checkout/production  toggle  on → off", "fd00:ec2::254 is refused",
                 "a: b", "## heading", "[x](y)", "\ttabbed", "café ✓"):
        assert inert.inert(text) == text


@pytest.mark.parametrize("text", HOSTILE)
def test_json_output_parses_to_the_same_data(text: str) -> None:
    data = {"description": text, text: [text]}
    shown = inert.json_text(data, indent=2, ensure_ascii=False)
    assert foreign(shown, MARK) == []
    assert json.loads(shown) == data


def test_commands_are_one_line() -> None:
    with pytest.raises(ValueError):
        inert.echo_command("::error::a\n::add-mask::b")


# --- every printer goes through it ------------------------------------------------------------------------


COMMANDS = Path(__file__).resolve().parents[1] / "gitops_flags"
ALLOWED_RAW = {("cli.py", "Aborted."), ("commands/schema.py", "committed_text")}


def test_no_command_prints_around_inert() -> None:
    """Every `click.echo`, `print` and `sys.stdout.write` in the commands is `inert.echo` instead: one
    function for every printer, so a new printer cannot forget. The two exceptions print no repository
    text (click's abort notice and the committed JSON Schemas)."""
    raw: list[str] = []
    for path in sorted([COMMANDS / "cli.py", *(COMMANDS / "commands").glob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("click.echo", "print", "sys.stdout.write", "sys.stderr.write", "click.secho"):
                where = str(path.relative_to(COMMANDS))
                text = ast.unparse(node)
                if not any(where == f and marker in text for f, marker in ALLOWED_RAW):
                    raw.append(f"{where}:{node.lineno}: {text}")
    assert raw == [], "print through gitops_flags.inert.echo (or echo_command for the tool's own annotations)"
