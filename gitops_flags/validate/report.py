"""How a problem is worded and placed: `Report` collects one file's problems at their data paths (lines
and columns from the document), and the wording helpers every check shares (`dotted`, `show`,
`did_you_mean`)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..loader import Document
from ..problems import Problem, Severity

if TYPE_CHECKING:
    from .salvage import Salvage

Key = str | int
Path = tuple[Key, ...]


def dotted(path: Sequence[Key]) -> str:
    """`environments.production.rules[0].when.operator`"""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def show(value: Any, limit: int = 60) -> str:
    """A short, YAML-flavoured rendering of a value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(word: Any, choices: Iterable[Any]) -> str | None:
    """The closest choice, or the only one that `word` abbreviates (prod → production)."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    text = str(word).lower()
    starts = [n for n in names if text and n.lower().startswith(text)]
    return starts[0] if len(starts) == 1 else None


def choices_hint(word: Any, choices: Sequence[Any], what: str) -> str:
    """"; did you mean 'x'? (known operators: a, b, c)" """
    close = did_you_mean(word, choices)
    listed = ", ".join(str(c) for c in choices)
    return (f"; did you mean '{close}'?" if close else "") + f" ({what}: {listed})"


_MAX_MESSAGE = 500


class Report:
    """Collects problems for one file, placing each by its data path when the document is known."""

    def __init__(self, file: str, doc: Document | None, salvage: Salvage | None = None) -> None:
        self.file, self.doc, self.salvage = file, doc, salvage
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str, title: str, severity: Severity = "error") -> None:
        if self.salvage is not None:  # checks of a repaired copy: only what the repair did not touch
            path = self.salvage.original(path)
            if not self.salvage.sound(path, title):
                return
        line, col = self.doc.position(path) if self.doc is not None else (None, None)
        if len(message) > _MAX_MESSAGE:  # jsonschema's messages quote the value, which may be megabytes
            message = message[: _MAX_MESSAGE - 1] + "…"
        prefix = dotted(path)
        self.problems.append(Problem(self.file, line, col, f"{prefix}: {message}" if prefix else message,
                                     severity, title))


def sort_key(p: Problem) -> tuple[str, int, int, str]:
    return (p.file, p.line or 0, p.col or 0, p.message)
