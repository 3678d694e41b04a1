"""Mermaid pictures for the PR comment: an approval workflow as a flowchart, a rollout plan as a gantt chart.

Pure functions returning Mermaid source (without the Markdown fence). Node ids are generated here, never
taken from the PR. Text that comes from the PR or the policy is reduced to a safe alphabet before it enters a
diagram: in flowchart labels (always quoted) everything else becomes a Mermaid entity code (`#64;` for `@`),
which Mermaid decodes when it draws and which cannot end a label, a statement, a comment or the Markdown
fence; in gantt text, where `#` starts a comment and `:` ends a task name, everything else becomes `_`.
No backtick, newline, `%%` directive, `click` or HTML can come through either way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..model import RolloutPlan
from ..result import StepResult

_FLOW_SAFE = re.compile(r"[A-Za-z0-9 _.,-]")
_GANTT_UNSAFE = re.compile(r"[^A-Za-z0-9 _./-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")

STATE_ICON = {"satisfied": "✅", "pending": "⏳", "waiting": "🕓", "rejected": "❌", "skipped": "➖"}
# GitHub's Primer colours: light fills readable in both themes, strokes saying the state
STATE_STYLE = {
    "satisfied": "fill:#dafbe1,stroke:#1a7f37,color:#0d3b1e",
    "pending": "fill:#fff8c5,stroke:#9a6700,color:#3b2300",
    "waiting": "fill:#f6f8fa,stroke:#8c959f,color:#24292f,stroke-dasharray:4 3",
    "rejected": "fill:#ffebe9,stroke:#cf222e,color:#4c0007",
    "skipped": "fill:#ffffff,stroke:#d0d7de,color:#8c959f,stroke-dasharray:2 2",
}
RELATIVE_ANCHOR = datetime(2000, 1, 1)  # day 1, 00:00: the axis counts days and hours from the start


def _short(text: object, limit: int) -> str:
    s = _CONTROL.sub(" ", str(text)).strip()
    return s if len(s) <= limit else s[: max(limit - 1, 0)] + "…"


def label(text: object, limit: int = 60) -> str:
    """Text for a quoted flowchart label: letters, digits, space and `_.,-` as they are; anything else
    as a Mermaid entity code."""
    return "".join(ch if _FLOW_SAFE.fullmatch(ch) else f"#{ord(ch)};" for ch in _short(text, limit))


def gantt_text(text: object, limit: int = 60) -> str:
    """Text for a gantt title, section or task name: anything outside a small alphabet becomes `_`."""
    return _GANTT_UNSAFE.sub("_", _short(text, limit)).strip() or "_"


def workflow_flowchart(steps: Sequence[StepResult]) -> str:
    """The steps of one change's workflow, left to right along `after`, each coloured by its state."""
    ids = {s.id: f"s{i}" for i, s in enumerate(steps)}
    lines = ["flowchart LR"]
    for s in steps:
        text = f"{s.id} ({s.role})" if s.role != s.id else s.id
        detail = _step_detail(s)
        lines.append(f'  {ids[s.id]}["{STATE_ICON.get(s.state, "")} {label(text)}<br/>{label(detail, 80)}"]')
    for s in steps:
        for before in s.after:
            if before in ids:
                lines.append(f"  {ids[before]} --> {ids[s.id]}")
    used = dict.fromkeys(s.state for s in steps)
    lines.extend(f"  classDef {state} {STATE_STYLE[state]}" for state in used if state in STATE_STYLE)
    for state in used:
        members = ",".join(ids[s.id] for s in steps if s.state == state)
        if state in STATE_STYLE:
            lines.append(f"  class {members} {state}")
    return "\n".join(lines)


def _step_detail(s: StepResult) -> str:
    if s.state == "satisfied":
        return "approved by " + ", ".join(s.approved_by) if s.approved_by else "satisfied"
    if s.state == "pending":
        have = f" ({len(s.approved_by)} of {s.approvals})" if s.approvals > 1 else ""
        return f"pending{have}"
    if s.state == "waiting":
        return "waits for " + ", ".join(s.after) if s.after else "waiting"
    if s.state == "rejected":
        return "changes requested"
    return "skipped, not needed"


def rollout_gantt(plan: RolloutPlan, key: str, environment: str) -> str:
    """The rollout's stages as bars (each at least `stage_delay` long), with a gate milestone before each
    stage after the first when the plan has a health check. Times are UTC when the plan has `start_at`;
    otherwise the axis counts from the start (`apply` after the merge)."""
    start = plan.start_at.astimezone(UTC).replace(tzinfo=None) if plan.start_at else RELATIVE_ANCHOR
    when = "times in UTC" if plan.start_at else "from the start"
    minutes = max(plan.delay_seconds() // 60, 1)
    lines = [
        "gantt",
        f"  title {gantt_text(key)} in {gantt_text(environment)}, {when}",
        "  dateFormat YYYY-MM-DDTHH:mm",
        "  axisFormat " + ("%b %-d %H:%M" if plan.start_at else "day %-j %H:%M"),
        "  todayMarker off",
        f"  tickInterval {tick_interval(minutes * len(plan.percentages()))}",
        f"  section {gantt_text(environment, 40)}",
    ]
    stages = plan.percentages()
    for i, pct in enumerate(stages):
        at = (start + timedelta(minutes=minutes * i)).strftime("%Y-%m-%dT%H:%M")
        if i and plan.health_check is not None:
            lines.append(f"  gate :milestone, g{i}, {at}, 0m")
        if i == len(stages) - 1 and pct == 100:
            lines.append(f"  100% reached :milestone, s{i}, {at}, 0m")
        else:
            # "at 5%", not "5%": Mermaid's gantt lexer reads a line whose second character is `%` as a
            # comment, so a one-digit stage would vanish from the picture
            lines.append(f"  at {pct}% :s{i}, {at}, {minutes}m")
    return "\n".join(lines)


_TICKS = [(15, "15minute"), (30, "30minute"), (60, "1hour"), (120, "2hour"), (180, "3hour"), (240, "4hour"),
          (360, "6hour"), (720, "12hour"), (1440, "1day"), (2880, "2day"), (10080, "1week")]


def tick_interval(span_minutes: int) -> str:
    """At most about seven labelled ticks along the axis: left to itself Mermaid ticks every hour of a
    16-hour plan, and the labels overlap."""
    wanted = span_minutes / 7
    return next((name for minutes, name in _TICKS if minutes >= wanted), f"{-(-int(wanted) // 10080)}week")


def fence(source: str) -> str:
    """A Markdown code block GitHub draws as a Mermaid picture (the source holds no backtick)."""
    assert "`" not in source
    return f"```mermaid\n{source}\n```"
