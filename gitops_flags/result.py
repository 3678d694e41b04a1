"""The evaluation result tree: overall verdict → changes → steps.

Every report (plan text/json/markdown, the PR comment, the commit status, annotations) renders from
these values, so they all tell the same story. `Evaluation.to_json()` is the documented, stable
contract of `plan --format json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .changes import Change
from .problems import Problem

StepState = Literal["satisfied", "pending", "waiting", "rejected", "skipped"]
Verdict = Literal["approved", "pending", "rejected", "invalid", "error"]

# worst first: the overall verdict is the worst over the changes
VERDICT_ORDER: tuple[Verdict, ...] = ("invalid", "error", "rejected", "pending", "approved")


def worst(verdicts: list[Verdict]) -> Verdict:
    if not verdicts:
        return "approved"
    return min(verdicts, key=VERDICT_ORDER.index)


@dataclass(frozen=True)
class StepResult:
    id: str
    role: str
    state: StepState
    approved_by: tuple[str, ...] = ()
    eligible: tuple[str, ...] = ()  # logins and @org/team slugs that may approve
    reason: str = ""
    awaited: tuple[str, ...] = ()  # who to ask now (logins and org/team), empty unless pending
    approvals: int = 1
    after: tuple[str, ...] = ()  # ids of the steps this one waits for (the workflow's `after`)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "state": self.state,
            "approved_by": list(self.approved_by),
            "eligible": list(self.eligible),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ChangeResult:
    change: Change
    workflow: str | None
    verdict: Verdict
    steps: tuple[StepResult, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        c = self.change
        return {
            "kind": c.kind,
            "key": c.key,
            "environment": c.environment,
            "change_type": c.change_type,
            "summary": c.summary,
            "breaking": c.breaking,
            "path": c.path,
            "workflow": self.workflow,
            "verdict": self.verdict,
            "reason": self.reason,
            "steps": [s.to_json() for s in self.steps],
        }


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    changes: tuple[ChangeResult, ...] = ()
    problems: tuple[Problem, ...] = ()
    message: str = ""  # one line for the commit status / summary
    warnings: tuple[str, ...] = field(default=())  # e.g. unreadable teams, skipped CODEOWNERS lines

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "message": self.message,
            "changes": [c.to_json() for c in self.changes],
            "problems": [
                {
                    "file": p.file,
                    "line": p.line,
                    "col": p.col,
                    "message": p.message,
                    "severity": p.severity,
                    "title": p.title,
                }
                for p in self.problems
            ],
            "warnings": list(self.warnings),
        }
