"""The evaluation for a terminal (`plan --format text`)."""

from __future__ import annotations

from ..result import Evaluation
from .escaping import plain
from .status import headline


def plan_text(evaluation: Evaluation) -> str:
    """The evaluation for a terminal (`plan --format text`)."""
    lines = [f"{evaluation.verdict.upper()}: {headline(evaluation)}"]
    if evaluation.message:
        lines.append(plain(evaluation.message))
    for result in evaluation.changes:
        c = result.change
        where = f" @ {plain(c.environment)}" if c.environment else ""
        lines.append("")
        lines.append(f"{c.kind} {plain(c.key)}{where}  [{c.change_type}]  {result.verdict}"
                     + (f"  (workflow {plain(result.workflow)})" if result.workflow else ""))
        if c.summary:
            lines.append(f"  {plain(c.summary)}")
        if result.reason:
            lines.append(f"  {plain(result.reason)}")
        for s in result.steps:
            text = f"  - {s.id} ({plain(s.role)}): {s.state}"
            if s.approved_by:
                text += f", approved by {', '.join(plain(a) for a in s.approved_by)}"
            if s.state == "pending" and s.awaited:
                text += f", awaiting {', '.join('@' + plain(w).lstrip('@') for w in s.awaited)}"
            if s.reason:
                text += f" — {plain(s.reason)}"
            lines.append(text)
    if evaluation.problems:
        lines.append("")
        lines.append("Problems:")
        lines.extend(f"  {plain(p.location())}: {p.severity}: {plain(p.message)}"
                     for p in evaluation.problems)
    if evaluation.warnings:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  {plain(w)}" for w in evaluation.warnings)
    return "\n".join(lines) + "\n"
