"""One change in the comment: what it targets and does, its next step and who can act next (the summary
table's row), and its folded details with every step."""

from __future__ import annotations

from ..changes import Change
from ..result import ChangeResult, StepResult
from .escaping import Links, code, escape_md, file_link, html_text
from .status import STEP_ICON, VERDICT_ICON


def target(c: Change) -> str:
    """The change's kind, key and environment as Markdown code spans."""
    text = f"{c.kind} {code(c.key, 80)}"
    return text + f" · {code(c.environment, 40)}" if c.environment else text


def toggle_direction(c: Change) -> str | None:
    """"on" or "off" when the change switches the flag on or off in its environment, else None."""
    before = c.before.get("enabled") if isinstance(c.before, dict) else None
    after = c.after.get("enabled") if isinstance(c.after, dict) else None
    if isinstance(before, bool) and isinstance(after, bool) and before != after:
        return "on" if after else "off"
    return None


def _what(c: Change, limit: int = 90) -> str:
    """What the change does, short (Markdown): the way a toggle goes, else its type and summary."""
    direction = toggle_direction(c)
    turn = ("turns **on**" if direction == "on" else "turns **off** (kill switch)") if direction else ""
    if c.change_type == "toggle" and turn:
        text = turn
    else:
        text = escape_md(c.change_type, 20)
        if c.summary:
            summary = c.summary.removeprefix(f"{c.change_type} ")  # "rollout: rollout started" reads twice
            text += ": " + escape_md(summary, limit)
        if turn and c.change_type != "delete":
            text += f"; {turn}"
    return text + (" · **breaking**" if c.breaking else "")


def _name(who: str) -> str:
    """A login or team named without notifying it (mentions are made once, in the header)."""
    return escape_md(who.strip().lstrip("@"), 60)


def _need(s: StepResult) -> str:
    text = code(s.id, 40) + (f" ({escape_md(s.role, 40)})" if s.role != s.id else "")
    if s.approvals > 1:
        text += f" {len(s.approved_by)} of {s.approvals}"
    return text


def next_step(result: ChangeResult) -> tuple[str, str]:
    """(the next step, who can act next) for one change, as Markdown for table cells."""
    v = result.verdict
    if v == "approved":
        return "merge; `apply` ships it", "PR author"
    if v == "pending":
        pending = [s for s in result.steps if s.state == "pending"]
        waiting = [s for s in result.steps if s.state == "waiting"]
        text = "approval: " + ", ".join(_need(s) for s in pending) if pending else "approval"
        if waiting:
            more = f" +{len(waiting) - 3}" if len(waiting) > 3 else ""
            text += "; then " + ", ".join(code(s.id, 40) for s in waiting[:3]) + more
        names = list(dict.fromkeys(w.strip().lstrip("@") for s in pending for w in s.awaited))
        if names:
            who = ", ".join(_name(w) for w in names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
        else:
            who = ", ".join(dict.fromkeys(escape_md(s.role, 40) for s in pending)) or "nobody eligible"
        return text, who
    if v == "rejected":
        steps = [code(s.id, 40) for s in result.steps if s.state == "rejected"]
        return "answer the changes requested" + (f" ({', '.join(steps)})" if steps else ""), "PR author"
    if v == "invalid":
        return escape_md(result.reason, 120) if result.reason else "fix the problems below", "PR author"
    return escape_md(result.reason, 120) if result.reason else "re-run the check", "repository admins"


def summary_row(result: ChangeResult) -> str:
    step, who = next_step(result)
    cells = [f"{target(result.change)} — {_what(result.change)}",
             f"{VERDICT_ICON[result.verdict]} {result.verdict}", step, who]
    return "| " + " | ".join(cells) + " |"


def _plain_target(c: Change) -> str:
    env = f" · {c.environment}" if c.environment else ""
    return html_text(f"{c.kind} {c.key}{env}", 140)


def _step_line(s: StepResult) -> str:
    text = f"- {STEP_ICON.get(s.state, '')} {code(s.id, 60)} ({escape_md(s.role, 60)}): {s.state}"
    if s.approved_by:
        text += " — approved by " + ", ".join(escape_md(a, 60) for a in s.approved_by)
        if s.approvals > 1:
            text += f" ({len(s.approved_by)} of {s.approvals})"
    if s.state == "pending" and s.awaited:
        text += " — can approve: " + ", ".join(_name(w) for w in s.awaited[:10])
        text += f" and {len(s.awaited) - 10} more" if len(s.awaited) > 10 else ""
    if s.reason:
        text += f" — {escape_md(s.reason, 300)}"
    return text


def detail_item(result: ChangeResult, links: Links | None) -> str:
    c = result.change
    summary = (f"{VERDICT_ICON[result.verdict]} {_plain_target(c)} — {html_text(c.change_type, 20)}, "
               f"{result.verdict}")
    facts = [escape_md(c.summary, 300)] if c.summary else []
    if result.workflow:
        facts.append(f"workflow {code(result.workflow)}")
    at_head = c.change_type not in ("delete", "schema_delete")
    facts.append(file_link(c.path, None, links if at_head else None))
    body = [" · ".join(facts)]
    if result.reason:
        body.append(f"> {escape_md(result.reason, 500)}")
    if result.steps:
        body.append("\n".join(_step_line(s) for s in result.steps))
    return f"<details><summary>{summary}</summary>\n\n" + "\n\n".join(body) + "\n\n</details>"
