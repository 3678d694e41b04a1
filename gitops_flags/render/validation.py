"""`validate`'s job summary: every problem (annotations show only the first 10 of each severity), as a
table of location, severity and message, escaped as the PR comment escapes them, within GitHub's 1 MiB
step-summary limit (what does not fit is counted, and stays in the log)."""

from __future__ import annotations

from collections.abc import Sequence

from ..problems import Problem
from .comment import SUMMARY_LIMIT_BYTES, problem_rows
from .escaping import escape_md
from .github_annotations import left_out_note

_TABLE_HEAD = "| | Location | Problem |\n|---|---|---|"
_RESERVE = 400  # bytes kept for the line counting what was left out


def validation_summary(problems: Sequence[Problem], outcome: str, *,
                       limit: int = SUMMARY_LIMIT_BYTES) -> str:
    """Markdown for `$GITHUB_STEP_SUMMARY`: the outcome line (`2 errors, 0 warnings (…)`), then a row per
    problem while the text stays under `limit` bytes, then a count of the rows left out."""
    errors = sum(1 for p in problems if p.severity == "error")
    icon = "❌" if errors else "⚠️" if problems else "✅"
    parts = [f"## {icon} gitops-flags validate", escape_md(outcome, 300)]
    note = left_out_note(problems)
    if note:
        parts.append(note)
    if not problems:
        return "\n\n".join(parts) + "\n"
    head = "\n\n".join([*parts, f"### Problems ({len(problems)})", _TABLE_HEAD]) + "\n"
    used = len(head.encode()) + _RESERVE
    rows: list[str] = []
    for row in problem_rows(problems, None):
        size = len(row.encode()) + 1
        if used + size > limit:
            break
        rows.append(row)
        used += size
    text = head + "".join(f"{row}\n" for row in rows)
    left = len(problems) - len(rows)
    if left:
        text += (f"\n… and {left} more problems (of {len(problems)}) in the log: GitHub limits a step "
                 "summary to 1 MiB.\n")
    return text
