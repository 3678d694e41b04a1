"""Printing to the workflow log without handing the runner a command: the one printer of every command.

The GitHub Actions runner reads each line a step prints (stdout and stderr) and executes two forms
(actions/runner, src/Runner.Common/ActionCommand.cs):
- `::name props::data` when the line starts with `::` after leading blanks (`TryParseV2`);
- `##[name props]data` anywhere in the line (`TryParse`, the legacy form).
So repository content in a line (a folder name, a description, a summary, "moved from … to …", a gate
detail) could add masks, set outputs, stop command processing (`::stop-commands::`) and so silence the
annotations that report blocked changes, or forge annotations of its own.

`inert` breaks both forms with a zero-width space (U+200B), which the log shows as nothing: `::` at a
line's start becomes `:​:` and `##[` becomes `#​#[`, wherever the text came from. Line breaks split lines
the way the runner does (CR, LF, CRLF), and each line is treated; other control characters (ANSI escapes
that could redraw the log) are shown as `\\xNN`. The tool's own workflow commands (annotations, built with
their data escaped) are printed with `echo_command`, and nothing else is.

JSON output is passed through `json_text`, which writes `[` after `##` as the JSON escape `\\u005b`: the
document parses to the same data, and no line of it is a command.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

ZWSP = "\u200b"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def inert(text: str) -> str:
    """`text` with no line the runner would execute; `\\n` separates its lines."""
    return "\n".join(_inert_line(line) for line in _LINE_BREAK.split(text))


def _inert_line(line: str) -> str:
    line = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", line).replace("##[", f"#{ZWSP}#[")
    # Python's idea of a blank covers .NET's (`TrimStart`), so no command hides behind an exotic space.
    rest = line.lstrip()
    if rest.startswith("::"):
        cut = len(line) - len(rest)
        line = f"{line[:cut]}:{ZWSP}{line[cut + 1:]}"
    return line


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print a line (or lines) that may carry repository content."""
    click.echo(inert(text), err=err, nl=nl)


def echo_command(command: str) -> None:
    """Print one of the tool's own workflow commands (`::error …::…`); its data must be escaped already
    (`render.annotation`), so it is a single line."""
    if "\n" in command or "\r" in command:
        raise ValueError("a workflow command is one line")
    click.echo(command)


def json_text(data: Any, **options: Any) -> str:
    """`json.dumps(data, **options)` in which no line is a workflow command (same data when parsed)."""
    return json.dumps(data, **options).replace("##[", "##\\u005b")
