"""What `advance` tells people: a line per rollout (terminal, webhook), the PR comment of an event, the job
summary, the webhook message, and the outbox entries that carry them. Pure: outcomes in, text out. Text
from gates (remote answers) and repository content is escaped for each medium.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from . import notify, render, rollout
from .advance import Outcome
from .store.base import StoreSnapshot
from .store.state import OutboxEntry


def next_due_text(snapshot: StoreSnapshot, now: datetime) -> str:
    """When the next stage of any rollout is due: `the next stage is due 2026-12-01 13:00 UTC (…)`."""
    due = [(when, key, env) for key, envs in snapshot.state.rollouts.items() for env, state in envs.items()
           if state.status in ("running", "scheduled") and (when := rollout.next_due(state)) is not None]
    if not due:
        return "no rollout is waiting for a stage"
    when, key, env = min(due)
    return f"the next stage is due {when_text(when)} ({key} in {env}, in {span_text(when - now)})"


def span_text(delta: timedelta) -> str:
    """`2d 3h`, `45m`: precise enough to plan around a cron schedule."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return " ".join(p for p in parts if p) or "0m"


def when_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def outcome_text(outcome: Outcome) -> str:
    """One plain line: stdout and the webhook's `text`."""
    event, after, variant = outcome.event, outcome.after, outcome.after.variant
    gate = f"; gate {outcome.gate.outcome}: {render.plain(outcome.gate.detail, 200)}" if outcome.gate else ""
    head = f"{outcome.ident} ({variant})"
    if event is None:
        if outcome.note:
            return f"{head}: {outcome.note}"
        return f"{head}: still paused at {after.percentage}%{gate} (the gate is retried at each run)"
    if event.kind == "started":
        return f"{head}: started at {event.after}% (stage {event.stage_label})"
    if event.kind == "advanced":
        due = when_text(rollout.next_due(after))
        stage = f"(stage {event.stage_label})"
        return f"{head}: {event.before}% → {event.after}% {stage}{gate}; next stage due {due}"
    if event.kind == "completed":
        return f"{head}: completed, {event.before}% → 100% (stage {event.stage_label}){gate}"
    if event.kind == "rolled_back":
        return f"{head}: ROLLED BACK {event.before}% → 0%: {render.plain(event.reason, 300)}"
    return f"{head}: paused at {event.after}%: {render.plain(event.reason, 300)}"


def comment_body(outcome: Outcome, run_url: str | None) -> str:
    """The PR comment: text from gates (remote answers) is escaped, names are code spans."""
    event = outcome.event
    assert event is not None
    what = {
        "started": f"started at **{event.after}%**",
        "advanced": f"advanced **{event.before}% → {event.after}%**",
        "completed": "**completed** (100%)",
        "rolled_back": f"**rolled back** {event.before}% → 0%",
        "paused": f"**paused** at {event.after}%",
    }.get(event.kind, event.kind)
    lines = [
        f"**gitops-flags rollout**: {render.code(outcome.key)} in {render.code(outcome.environment)} "
        f"(variant {render.code(outcome.after.variant)}) {what}, stage {event.stage_label}.",
        "",
    ]
    if outcome.gate is not None:
        lines.append(f"- Health gate: {outcome.gate.outcome}: {render.escape_md(outcome.gate.detail, 300)}")
    if event.reason and event.kind in ("paused", "rolled_back"):
        lines.append(f"- Reason: {render.escape_md(event.reason, 300)}")
        lines.append("- It stays so until a pull request changes the rollout plan (see docs/rollouts.md).")
    due = rollout.next_due(outcome.after)
    if event.kind in ("started", "advanced") and due is not None:
        lines.append(f"- Next stage due: {when_text(due)} (if the gate passes)")
    if run_url:
        lines.append(f"- [Workflow run]({run_url})")
    return "\n".join(lines) + "\n"


SUMMARY_LINES = 1000  # GitHub refuses a job summary over 1 MiB


def summary_markdown(outcomes: tuple[Outcome, ...], dry_run: bool, total: int,
                     undelivered: tuple[str, ...] = ()) -> str:
    """The job summary: the events counted by kind, then a line per rollout that did or found something
    (at most SUMMARY_LINES; the store's audit log holds every event)."""
    title = "### gitops-flags advance" + (" (dry run)" if dry_run else "")
    lines = [title, ""]
    shown = [o for o in outcomes if o.event or o.note or o.gate]
    kinds: dict[str, int] = {}
    for outcome in shown:
        if outcome.event is not None:
            kinds[outcome.event.kind] = kinds.get(outcome.event.kind, 0) + 1
    if kinds:
        counted = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
        lines += [f"{counted} ({total} rollout{'s' if total != 1 else ''} in the store).", ""]
    for outcome in shown[:SUMMARY_LINES]:
        lines.append(f"- {render.escape_md(outcome_text(outcome), 600)}")
    if len(shown) > SUMMARY_LINES:
        more = len(shown) - SUMMARY_LINES
        lines += ["", f"… and {more} more: every event is in the store's audit log (`gitops-flags audit`)"]
    if not shown:
        lines.append(f"Nothing due ({total} rollout{'s' if total != 1 else ''} in the store).")
    lines += notify.undelivered_markdown(undelivered)
    return "\n".join(lines) + "\n"


def notifications(outcomes: tuple[Outcome, ...], outbound: notify.Outbound, now: datetime
                  ) -> list[OutboxEntry]:
    """The outbox entries of this run's events: a comment per event on the PR that started the rollout,
    one webhook message. Pure. A comment's id names the event (flag, environment, kind, time), so it is
    the same whichever run writes it."""
    events = [o for o in outcomes if o.event is not None]
    entries: list[OutboxEntry] = []
    for outcome in events:
        assert outcome.event is not None
        pr = outcome.before.pr
        if outbound.comments and pr is not None:
            at = outcome.event.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            entry_id = f"advance:{outcome.ident}:{outcome.event.kind}:{at}:pr-{pr}"
            body = notify.outbox_marker(entry_id) + "\n" + comment_body(outcome, outbound.run_url)
            entries.append(OutboxEntry(id=entry_id, kind="pr_comment", pr=pr, body=body, created_at=now))
    if outbound.webhook and events:
        entry_id = f"advance:{outbound.run_key}:webhook"
        payload = webhook_payload(events, outbound.repository, outbound.run_url, entry_id)
        entries.append(OutboxEntry(id=entry_id, kind="webhook", payload=payload, created_at=now))
    return entries


def webhook_payload(events: list[Outcome], repository: str, run_url: str | None,
                    notification_id: str | None = None) -> dict[str, Any]:
    """One message per run: a Slack-compatible `text` (Slack escapes &, < and >) and the same facts
    as data, in the shape apply's webhook uses (`id` names the notification, for deduplication)."""
    lines = [f"gitops-flags advance on {repository or 'the flag repository'}:"]
    lines += [outcome_text(o) for o in events]
    if run_url:
        lines.append(run_url)
    text = "\n".join(render.plain(line, 500) for line in lines)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    rollouts = []
    for o in events:
        assert o.event is not None
        rollouts.append({
            "flag": o.key, "environment": o.environment, "variant": o.after.variant, "event": o.event.kind,
            "before": o.event.before, "after": o.event.after, "stage": o.event.stage_label,
            "reason": o.event.reason, "gate": o.gate.model_dump(mode="json") if o.gate else None,
            "pr": o.before.pr,
        })
    data = {"event": "advance", "id": notification_id, "repository": repository, "run_url": run_url,
            "rollouts": rollouts}
    return {"text": text, "gitops_flags": data}
