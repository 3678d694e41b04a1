"""What the GitHub Actions runner would execute in a step's output, mirrored from actions/runner
(src/Runner.Common/ActionCommand.cs, `TryParseV2` and `TryParse`), deliberately broader than the runner:
any name counts as a command, not only the registered ones (`::stop-commands::` registers its token)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINES = re.compile(r"\r\n|\r|\n")
# .NET's Char.IsWhiteSpace, which `TrimStart()` removes.
_DOTNET_BLANKS = (" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                  "\u200a\u2028\u2029\u202f\u205f\u3000")


@dataclass(frozen=True)
class Command:
    form: str  # "::" or "##["
    head: str  # the command name and its properties
    data: str
    line: str


def command_in(line: str) -> Command | None:
    rest = line.lstrip(_DOTNET_BLANKS)
    if rest.startswith("::"):
        end = rest.find("::", 2)
        if end >= 0:
            return Command("::", rest[2:end], rest[end + 2:], line)
    start = line.find("##[")
    if start >= 0:
        close = line.find("]", start)
        if close >= 0:
            return Command("##[", line[start + 3:close], line[close + 1:], line)
    return None


def commands(output: str) -> list[Command]:
    """Every line of `output` the runner would treat as a command."""
    return [c for c in (command_in(line) for line in _LINES.split(output)) if c is not None]


def foreign(output: str, marker: str) -> list[Command]:
    """Commands the tool did not mean to give: anything but its own annotations, which are `::error`,
    `::warning` or `::notice` lines whose `title` property starts with `gitops-flags`. (Their other
    properties and data may quote hostile text, escaped: the runner parses one command per line and tries
    the legacy `##[` form only on lines that are not `::` commands.) `marker` must not be in the name or
    the title."""
    found = []
    for command in commands(output):
        name, _, props = command.head.partition(" ")
        titles = [p.split("=", 1)[1] for p in props.split(",") if p.strip().startswith("title=")]
        own = (command.form == "::" and name in ("error", "warning", "notice") and len(titles) == 1
               and titles[0].startswith("gitops-flags") and marker not in titles[0])
        if not own:
            found.append(command)
    return found
