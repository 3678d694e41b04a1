"""Problems (validation findings) and the one base error of the tool.

A Problem is a plain value: where (file relative to the repository root, 1-based line and column when
known), what, and how bad. Every layer reports problems this way so that the CLI, the PR comment and the
GitHub annotations all render the same facts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int | None
    col: int | None
    message: str
    severity: Severity = "error"
    title: str = "invalid"  # a short slug naming the class of problem, e.g. "duplicate-key"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def location(self) -> str:
        """`file:line:col` with the parts that are known."""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)


def has_errors(problems: list[Problem] | tuple[Problem, ...]) -> bool:
    return any(p.severity == "error" for p in problems)


class GitopsFlagsError(Exception):
    """Base of every error the tool raises on purpose. The CLI turns it into a message and exit 2."""


class ProblemError(GitopsFlagsError):
    """An error that points at a place in a file (a file that cannot be loaded at all, for instance)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.location()}: {problem.message}")
        self.problem = problem
