"""The approval workflows and rollout plans of the comment: a Mermaid flowchart per distinct workflow
state, and each new rollout plan in words (every stage, the delay, the start, the gate) and as a gantt."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC
from typing import Any

from ..changes import Change
from ..model import HttpHealthCheck, RolloutPlan
from ..result import ChangeResult
from . import mermaid
from .changes import target
from .escaping import code, escape_md


def _fmt_delay(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return " ".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "0m"


def _plan_of(value: Any) -> RolloutPlan | None:
    raw = value.get("rollout") if isinstance(value, dict) else None
    if not isinstance(raw, dict):
        return None
    try:
        return RolloutPlan.model_validate(raw)
    except ValueError:
        return None


def _gate_text(plan: RolloutPlan) -> str:
    gate = plan.health_check
    if gate is None:
        return "No health gate: each stage follows the last on time alone."
    if isinstance(gate, HttpHealthCheck):
        text = f"HTTP GET {code(gate.url, 200)} must answer {gate.expect_status}"
        if gate.json_field:
            text += f" with {code(gate.json_field, 80)} {escape_md(gate.comparison, 2)} {gate.threshold}"
    else:
        text = f"Prometheus {code(gate.query, 300)} {escape_md(gate.comparison, 2)} {gate.threshold}"
    then = "rolls back to 0%" if plan.on_failure == "rollback" else "pauses the rollout"
    return f"Gate before every stage after the first: {text}. A failed gate {then}."


def rollout_lines(plan: RolloutPlan, previous: RolloutPlan | None = None) -> list[str]:
    """The rollout plan in words (Markdown bullets): every stage, the delay, the start and the gate."""
    stages = " → ".join(f"{p}%" for p in plan.percentages())
    delay = _fmt_delay(plan.delay_seconds())
    total = _fmt_delay(plan.delay_seconds() * (len(plan.percentages()) - 1))
    lines = [
        f"Serves {code(plan.variant, 60)} to {stages} of the users no rule matches.",
        f"At least {delay} at each stage: the last stage no sooner than {total} after the start.",
    ]
    if plan.start_at is not None:
        at = plan.start_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"Starts at {at}, or when `apply` runs after the merge if that is later.")
    else:
        lines.append("Starts when `apply` runs after the merge.")
    if plan.paused:
        lines.append("**Paused**: holds where it is until a PR sets `paused: false`.")
    lines.append(_gate_text(plan))
    if previous is not None:
        was = " → ".join(f"{p}%" for p in previous.percentages())
        lines.append(f"Replaces: {code(previous.variant, 60)} to {was}, "
                     f"{_fmt_delay(previous.delay_seconds())} between stages.")
    return [f"- {line}" for line in lines]


def _is_new_plan(c: Change) -> bool:
    plan = _plan_of(c.after)
    return plan is not None and c.change_type != "delete" and (
        _plan_of(c.before) is None or json.dumps(c.before.get("rollout"), sort_keys=True)
        != json.dumps(c.after.get("rollout"), sort_keys=True))


def _listed_targets(changes: Sequence[Change], limit: int = 5) -> str:
    shown = ", ".join(target(c) for c in changes[:limit])
    return shown + (f" and {len(changes) - limit} more" if len(changes) > limit else "")


def workflow_items(results: Sequence[ChangeResult]) -> list[str]:
    """One Mermaid flowchart per distinct (workflow, step states) among the open multi-step changes."""
    groups: dict[tuple[Any, ...], list[ChangeResult]] = {}
    for r in results:
        if len(r.steps) > 1:
            sig = (r.workflow, tuple((s.id, s.role, s.state, s.approved_by, s.approvals, s.after)
                                     for s in r.steps))
            groups.setdefault(sig, []).append(r)
    items = []
    for members in groups.values():
        first = members[0]
        name = code(first.workflow or "workflow", 60)
        title = f"**{name}** for {_listed_targets([m.change for m in members])}"
        items.append(f"{title}\n\n{mermaid.fence(mermaid.workflow_flowchart(first.steps))}")
    return items


def rollout_items(results: Sequence[ChangeResult]) -> list[str]:
    """Each new or changed rollout plan in words and as a gantt chart (one per distinct plan)."""
    groups: dict[tuple[str, str], list[Change]] = {}
    for r in results:
        c = r.change
        if c.kind == "flag" and _is_new_plan(c):
            sig = (c.environment or "", json.dumps(c.after.get("rollout"), sort_keys=True))
            groups.setdefault(sig, []).append(c)
    items = []
    for members in groups.values():
        first = members[0]
        plan = _plan_of(first.after)
        assert plan is not None
        lines = "\n".join(rollout_lines(plan, _plan_of(first.before)))
        chart = mermaid.fence(mermaid.rollout_gantt(plan, first.key, first.environment or "-"))
        items.append(f"**{_listed_targets(members)}**\n\n{lines}\n\n{chart}")
    return items
