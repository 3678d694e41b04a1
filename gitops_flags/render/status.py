"""The verdict in a sentence (`headline`), shared by every report, and the commit status built from it."""

from __future__ import annotations

from ..result import Evaluation
from .escaping import plain

STATUS_LIMIT = 140  # commit status descriptions
VERDICT_ICON = {"approved": "✅", "pending": "⏳", "rejected": "❌", "invalid": "🚫", "error": "⚠️"}
STEP_ICON = {"satisfied": "✅", "pending": "⏳", "waiting": "🕓", "rejected": "❌", "skipped": "➖"}
SEVERITY_ICON = {"error": "❌", "warning": "⚠️"}


def awaited(evaluation: Evaluation) -> list[str]:
    """Everyone awaited by a pending step, in first-seen order, without a leading `@`."""
    seen: dict[str, None] = {}
    for change in evaluation.changes:
        for step in change.steps:
            if step.state == "pending":
                for who in step.awaited:
                    seen.setdefault(who.strip().lstrip("@"), None)
    return [w for w in seen if w]


def _count(evaluation: Evaluation, verdict: str) -> int:
    return sum(1 for c in evaluation.changes if c.verdict == verdict)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def headline(evaluation: Evaluation) -> str:
    """One sentence on the verdict, e.g. `2 of 5 changes await approval.` (plain text, not escaped)."""
    n = len(evaluation.changes)
    errors = sum(1 for p in evaluation.problems if p.severity == "error")
    v = evaluation.verdict
    if v == "approved":
        return f"All {plural(n, 'change')} approved." if n else "No flag, schema or governance changes."
    if v == "pending":
        pending = _count(evaluation, "pending")
        return f"{pending} of {plural(n, 'change')} {'awaits' if pending == 1 else 'await'} approval."
    if v == "rejected":
        return f"{_count(evaluation, 'rejected')} of {plural(n, 'change')} rejected."
    if v == "invalid":
        if errors:
            return f"{plural(errors, 'problem')} to fix before approval."
        return f"{_count(evaluation, 'invalid')} of {plural(n, 'change')} cannot be approved."
    return "The evaluation failed."


STATUS_STATE = {"approved": "success", "pending": "pending", "rejected": "failure", "invalid": "failure",
                "error": "error"}


def status_state(evaluation: Evaluation) -> str:
    return STATUS_STATE[evaluation.verdict]


def status_description(evaluation: Evaluation) -> str:
    """At most 140 characters for the commit status, e.g. `Pending: 2 of 5 changes await approval (qa)`."""
    text = f"{evaluation.verdict.capitalize()}: {headline(evaluation)}"
    if evaluation.verdict == "pending":
        roles = dict.fromkeys(s.role for c in evaluation.changes for s in c.steps if s.state == "pending")
        if roles:
            text = text.rstrip(".") + f" ({', '.join(roles)})"
    elif evaluation.verdict == "invalid":
        first = next((p for p in evaluation.problems if p.severity == "error"), None)
        if first is not None:
            text += f" {first.location()}: {first.message}"
    elif evaluation.verdict == "error" and evaluation.message:
        text = f"Error: {evaluation.message}"
    return plain(text, STATUS_LIMIT)
