"""What `apply` tells people: a comment on each merged PR, a job-summary section, a webhook message, and
the outbox entries that carry them (and `advance`'s) through a run that dies. Pure: results in, text or
JSON out; `delivery` sends them.

Flag keys, summaries and reasons come from files in the repository, so Markdown gets them through
`render`'s escaping (no mentions, links or HTML), and the webhook's Slack-compatible `text` gets Slack's
three escapes.

The outbox (docs/apply.md, "Notification"): a command writes its notifications as `OutboxEntry`s in the
same compare-and-swap write as the change they report, then `delivery.flush` delivers every pending entry
(its own and any an earlier run left) and removes the delivered ones in a second write.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from . import render
from .flagd import served_percentage
from .reconcile import MergedPull, UnitResult
from .store.state import OutboxEntry

MARKER = "<!-- gitops-flags:apply -->"
REFUSED_MARKER = "<!-- gitops-flags:store-refused -->"
ICON = {"applied": "✅", "warned": "⚠️", "blocked": "⛔", "skipped": "⏭️"}
TEXT_LIMIT = 3000  # Slack truncates a message's text around 4,000 characters; keep the end readable
TERMINAL_LINES = 50  # a run over many units prints its totals, then this many lines of detail
SUMMARY_ROWS = 1000  # GitHub refuses a job summary over 1 MiB; a row is up to ~800 characters
AUDIT_HINT = "every change is in the store's audit log (`gitops-flags audit`)"


class Notifier(Protocol):
    """Posts a comment on a pull request (the GitHub adapter; a fake in tests)."""

    def comment(self, number: int, body: str) -> None: ...

    def has_comment(self, number: int, marker: str) -> bool:
        """Whether the PR already has a comment of ours containing `marker` (an outbox re-send)."""
        ...


# --- plain text (terminal, logs) -----------------------------------------------------------------------


def target(result: UnitResult) -> str:
    change = result.unit.change
    env = f"@{change.environment}" if change.environment else ""
    return f"{change.key}{env}" if change.kind == "flag" else f"{change.kind}:{change.key}{env}"


def line(result: UnitResult) -> str:
    """One line for the terminal: outcome, what, change type, summary, where it came from, why."""
    unit = result.unit
    origin = f"PR #{unit.pull.number}" if unit.pull else "no PR"
    parts = [
        f"{result.outcome:<7}",
        render.plain(target(result), 120),
        unit.change.change_type,
        render.plain(unit.change.summary, 160),
        f"({origin}, {unit.commit[:7]}, {unit.judgement.approval})",
    ]
    if result.rollout is not None:
        parts.append(f"[rollout {_rollout_text(result)}]")
    if result.reason and result.outcome != "applied":
        parts.append(f"— {render.plain(result.reason, 300)}")
    return "  ".join(parts)


def first(results: Sequence[UnitResult], limit: int) -> tuple[list[UnitResult], int]:
    """At most `limit` results to show, and how many are left out. When some must be left out, those not
    applied as approved come first (in order), then the applied ones."""
    if len(results) <= limit:
        return list(results), 0
    ranked = sorted(results, key=lambda r: r.outcome == "applied")  # stable: commit order within each
    return ranked[:limit], len(results) - limit


def more_line(left_out: int, *, summary: bool) -> str:
    """The line after a cut list: how many more, and where they all are."""
    where = AUDIT_HINT + ("" if summary else f"; the job summary lists up to {SUMMARY_ROWS}")
    return f"… and {left_out} more: {where}"


def totals(counts: Mapping[str, int], *, where: str, dry_run: bool) -> str:
    """The terminal's totals line."""
    verb = "would be" if dry_run else "were"
    skipped = f", {counts['skipped']} intermediate states never served" if counts["skipped"] else ""
    return (f"{counts['applied']} applied, {counts['warned']} applied with a warning, "
            f"{counts['blocked']} blocked{skipped} ({verb} written to {where})")


def workflow_command(result: UnitResult) -> str | None:
    """A GitHub Actions `::error` / `::warning` line for a change that was not applied as approved."""
    if result.outcome == "applied":
        return None
    level = "error" if result.outcome == "blocked" else "warning"
    verbs = {"blocked": "NOT applied", "skipped": "never served"}
    verb = verbs.get(result.outcome, "applied WITHOUT approval")
    text = f"{target(result)} ({result.unit.commit[:7]}) {verb}: {result.reason}"
    return f"::{level} title=gitops-flags apply::{_escape_command(render.plain(text, 1000))}"


def _escape_command(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# --- Markdown: the PR comment and the job summary ------------------------------------------------------


def _rollout_text(result: UnitResult) -> str:
    state = result.rollout
    if state is None:
        return ""
    text = f"{state.status}, {served_percentage(state)}% of {state.variant}"
    if state.status == "scheduled" and state.start_at is not None:
        text += f", starts {state.start_at.isoformat().replace('+00:00', 'Z')}"
    elif state.stage_index >= 0:
        text += f", stage {state.stage_index + 1}/{len(state.stages)}"
    return text


def _row(result: UnitResult) -> str:
    change = result.unit.change
    what = render.code(target(result), 120)
    detail = render.escape_md(change.summary, 200)
    if result.rollout is not None:
        detail += f"; rollout {render.escape_md(_rollout_text(result), 120)}"
    if result.reason and result.outcome != "applied":
        detail += f" — {render.escape_md(result.reason, 400)}"
    icon = ICON[result.outcome]
    return f"| {icon} {result.outcome} | {what} | {change.change_type} | {detail} |"


def _table(results: Sequence[UnitResult]) -> list[str]:
    return ["| outcome | change | type | detail |", "| --- | --- | --- | --- |", *(_row(r) for r in results)]


def _counts(results: Sequence[UnitResult]) -> str:
    outcomes = ("applied", "warned", "blocked", "skipped")
    counts = {o: sum(1 for r in results if r.outcome == o) for o in outcomes}
    return ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "nothing"


def pr_comment(
    pull: MergedPull, results: Sequence[UnitResult], *, store: str, run_url: str | None = None,
    notification_id: str | None = None,
) -> str:
    """The comment on a merged PR: what reached the store and what did not, and why."""
    commits = sorted({r.unit.commit[:12] for r in results})
    lines = [MARKER] + ([outbox_marker(notification_id)] if notification_id else [])
    lines += [f"### gitops-flags apply: {_counts(results)}", ""]
    lines.append(
        f"Merged as {', '.join(f'`{c}`' for c in commits)}; flag store {render.code(store, 120)}."
    )
    if any(r.outcome == "blocked" for r in results):
        lines += [
            "",
            "> [!CAUTION]",
            "> Some changes were **not applied**: the flag files on the default branch now differ from "
            "what is served. Open a pull request that reverts them, or one that gets them approved.",
        ]
    if any(r.outcome == "skipped" for r in results):
        lines += ["", "> [!NOTE]", "> States inside the landed commits that were not the approved head were "
                  "**never served** (a pull request lands as one unit); they are listed as skipped."]
    if any(r.outcome == "warned" for r in results):
        warn = "> Some changes were applied **without approval** (`on_unapproved: warn`)."
        lines += ["", "> [!WARNING]", warn]
    if any(r.unit.judgement.approval == "unverified" for r in results):
        lines += ["", "> [!WARNING]", "> Approvals were **not verified** (`--no-verify-approvals`)."]
    lines += ["", *_table(results)]
    approvers = _approvers(results)
    if approvers:
        lines += ["", f"Approved by: {approvers}"]
    if run_url:
        lines += ["", f"[Workflow run]({run_url})"]
    body = "\n".join(lines) + "\n"
    return body if len(body) <= render.COMMENT_LIMIT else _shorten(body, run_url)


def _approvers(results: Sequence[UnitResult]) -> str:
    steps: dict[str, list[str]] = {}
    for r in results:
        for step, who in r.unit.judgement.approvers.items():
            for login in who:
                if login not in steps.setdefault(step, []):
                    steps[step].append(login)
    # Logins are written without @ so that the comment does not notify them again.
    parts = [
        f"{render.escape_md(step, 60)}: {', '.join(render.code(w, 60) for w in who)}"
        for step, who in steps.items()
        if who
    ]
    return "; ".join(parts)


def _shorten(body: str, run_url: str | None) -> str:
    cut = body[: render.COMMENT_LIMIT - 300].rsplit("\n", 1)[0]
    where = f" in the [workflow run]({run_url})" if run_url else " in the job summary"
    return f"{cut}\n\n… the list is too long for a comment; the rest is{where}.\n"


def job_summary(
    results: Sequence[UnitResult],
    *,
    store: str,
    head: str,
    verified: bool,
    dry_run: bool = False,
    failures: Sequence[str] = (),
    notes: Sequence[str] = (),
    undelivered: Sequence[str] = (),
    version: str | None = None,
    limit: int = SUMMARY_ROWS,
) -> str:
    """The job summary: totals first, then what stopped the run, then at most `limit` rows."""
    title = "gitops-flags apply" + (" (dry run: nothing written)" if dry_run else "")
    lines = [f"## {title}", "", f"Flag store {render.code(store, 120)}, default branch at `{head[:12]}`: "
             f"{_counts(results)}."]
    if version:
        lines[-1] += f" Store version `{render.plain(version, 64)}`."
    if not verified:
        lines += ["", "> [!WARNING]", "> Approvals were **not verified** (`--no-verify-approvals`)."]
    for failure in failures:
        lines += ["", "> [!CAUTION]", f"> {render.escape_md(failure, 1000)}"]
    lines += undelivered_markdown(undelivered)
    for note in notes:
        lines += ["", f"- {render.escape_md(note, 500)}"]
    if results:
        shown, left_out = first(results, limit)
        lines += ["", *_table(shown)]
        if left_out:
            lines += ["", more_line(left_out, summary=True)]
    return "\n".join(lines) + "\n"


def refused_comment(command: str, problem: str, run_url: str | None) -> str:
    """The comment on the PR whose merge a run could not apply because the store failed its seal."""
    lines = [REFUSED_MARKER, f"### gitops-flags {command}: the flag store was NOT used", "",
             "> [!CAUTION]", f"> {render.escape_md(problem, 1000)}", "",
             "Nothing of this merge was applied: the store failed its integrity check (its seal), so nothing "
             "is built on it until an administrator restores it (`gitops-flags apply --repair`) or accepts "
             "an intended edit (`gitops-flags store reseal`); the next apply then applies this merge. See "
             "docs/store.md, 'The seal'."]
    if run_url:
        lines += ["", f"[Workflow run]({run_url})"]
    return "\n".join(lines) + "\n"


# --- the webhook ---------------------------------------------------------------------------------------


def _slack(text: str) -> str:
    """Slack's escapes: only &, < and > are control characters in its `text`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_payload(
    results: Sequence[UnitResult],
    *,
    repository: str,
    store: str,
    head: str,
    run_url: str | None = None,
    failures: Sequence[str] = (),
    notification_id: str | None = None,
) -> dict[str, Any]:
    """JSON for the webhook: a Slack-compatible `text`, plus the same facts as structured data.
    `gitops_flags.id` names the notification, so a receiver can drop an at-least-once duplicate."""
    where = repository or "the flag repository"
    lines = [f"gitops-flags apply on {where} ({head[:7]}): {_counts(results)}"]
    for r in results:
        origin = f"PR #{r.unit.pull.number}" if r.unit.pull else "no PR"
        reason = f" — {r.reason}" if r.reason and r.outcome != "applied" else ""
        lines.append(f"{ICON[r.outcome]} {r.outcome}: {target(r)} {r.unit.change.change_type} "
                     f"({r.unit.change.summary}; {origin}){reason}")
    lines += [f"❗ {f}" for f in failures]
    if run_url:
        lines.append(run_url)
    text = _slack("\n".join(render.plain(x, 500) for x in lines))
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    return {
        "text": text,
        "gitops_flags": {
            "event": "apply",
            "id": notification_id,
            "repository": repository,
            "store": store,
            "head": head,
            "run_url": run_url,
            "failures": list(failures),
            "changes": [_change_json(r) for r in results],
        },
    }


def _change_json(result: UnitResult) -> dict[str, Any]:
    unit = result.unit
    return {
        "outcome": result.outcome,
        "kind": unit.change.kind,
        "key": unit.change.key,
        "environment": unit.change.environment,
        "change_type": unit.change.change_type,
        "summary": unit.change.summary,
        "merge_commit": unit.commit,
        "pr": unit.pull.number if unit.pull else None,
        "pr_url": unit.pull.url if unit.pull else None,
        "approval": unit.judgement.approval,
        "reason": result.reason,
    }


# --- the outbox ------------------------------------------------------------------------------------------


def outbox_marker(notification_id: str) -> str:
    """The hidden line that names a comment's outbox entry (an HTML comment cannot hold `--` or `>`)."""
    safe = notification_id.replace("%", "%25").replace("--", "-%2D").replace(">", "%3E")
    return f"<!-- gitops-flags:outbox {safe} -->"


def run_key(environ: Mapping[str, str]) -> str:
    """Names this run in outbox ids: the Actions run and attempt (a re-run is another attempt), or a
    random id outside Actions."""
    run_id = environ.get("GITHUB_RUN_ID", "")
    if run_id:
        return f"run-{run_id}.{environ.get('GITHUB_RUN_ATTEMPT') or '1'}"
    return f"local-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Outbound:
    """What this run can deliver, so it enqueues only that (an entry no run can deliver would wait out
    its seven days), and how its entries are named."""

    run_key: str
    comments: bool = False  # a commenter is at hand (a token and a repository)
    webhook: bool = False  # the policy's webhook variable holds a URL
    repository: str = ""
    run_url: str | None = None


def apply_entries(
    results: Sequence[UnitResult],
    outbound: Outbound,
    *,
    store: str,
    head: str,
    now: datetime,
    failures: Sequence[str] = (),
    prs: Collection[int] | None = None,
) -> list[OutboxEntry]:
    """`apply`'s notifications for the results of this run so far: one comment per merged PR (only the
    PRs in `prs`, when given) and one webhook message. Pure.

    A comment's id is the PR's first commit applied in this run, so a later write of the same run
    replaces it (one comment per PR per run), while a run resuming a PR after a crash gets its own."""
    entries: list[OutboxEntry] = []
    if outbound.comments:
        by_pr: dict[int, tuple[MergedPull, list[UnitResult]]] = {}
        for r in results:
            if r.unit.pull is not None:
                by_pr.setdefault(r.unit.pull.number, (r.unit.pull, []))[1].append(r)
        for number, (pull, mine) in by_pr.items():
            if prs is not None and number not in prs:
                continue
            entry_id = f"apply:{mine[0].unit.commit}:pr-{number}"
            body = pr_comment(pull, mine, store=store, run_url=outbound.run_url, notification_id=entry_id)
            entries.append(OutboxEntry(id=entry_id, kind="pr_comment", pr=number, body=body, created_at=now))
    if outbound.webhook and (results or failures):
        entry_id = f"apply:{outbound.run_key}:webhook"
        payload = webhook_payload(results, repository=outbound.repository, store=store, head=head,
                                  run_url=outbound.run_url, failures=failures, notification_id=entry_id)
        entries.append(OutboxEntry(id=entry_id, kind="webhook", payload=payload, created_at=now))
    return entries


def pending_note(entries: Sequence[OutboxEntry]) -> str | None:
    """A dry run's word about what the next real run would deliver."""
    if not entries:
        return None
    n = len(entries)
    return f"{n} notification{'s' if n != 1 else ''} pending in the store's outbox (sent by the next run)"


def undelivered_markdown(problems: Sequence[str]) -> list[str]:
    if not problems:
        return []
    return ["", "> [!WARNING]", *(f"> {render.escape_md(p, 500)}  " for p in problems)]
