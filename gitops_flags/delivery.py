"""Sending notifications: PR comments through the GitHub adapter, the webhook over HTTP, and the outbox's
delivery (`flush`: send what is pending, then remove what was delivered from the store).

Delivery is at-least-once; a PR comment carries a hidden marker with its entry's id (`notify.outbox_marker`),
so a re-send first looks for it. `settle` decides what the outbox keeps (pure); the rest is I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import requests

from . import render
from .notify import Notifier, outbox_marker
from .problems import GitopsFlagsError
from .store.base import Store, StoreSnapshot, Update, update
from .store.state import OUTBOX_MAX_AGE, OUTBOX_MAX_ATTEMPTS, OutboxEntry, StoreState

WEBHOOK_TIMEOUT = 10.0


class NotifyError(GitopsFlagsError):
    """A notification could not be delivered (the store was written all the same)."""


class GitHubCommenter:
    """`Notifier` over `github.GitHubClient` (kept untyped here so PyGithub is imported only when used)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def comment(self, number: int, body: str) -> None:
        self.client.create_comment(number, body)

    def has_comment(self, number: int, marker: str) -> bool:
        from .github import TRUSTED_ASSOCIATIONS

        # Ours: written by a bot (GITHUB_TOKEN, an App) or a member with write access (a PAT). Anyone can
        # paste a marker; the worst a forged one does is suppress a re-sent notice.
        return any(
            marker in c.body and (c.user_type == "Bot" or c.association in TRUSTED_ASSOCIATIONS)
            for c in self.client.comments(number)
        )


def send_webhook(url: str, payload: Mapping[str, Any], *, timeout: float = WEBHOOK_TIMEOUT) -> None:
    """POST the payload as JSON. The URL is a secret: it never appears in an error message."""
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        raise NotifyError(f"the webhook could not be reached ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise NotifyError(f"the webhook answered {response.status_code} {render.plain(response.text, 200)}")


DeliveryStatus = Literal["delivered", "already_posted", "failed", "skipped"]


@dataclass(frozen=True)
class Delivery:
    entry: OutboxEntry
    status: DeliveryStatus
    error: str = ""


@dataclass(frozen=True)
class Dropped:
    entry: OutboxEntry
    reason: str


def deliver(
    entries: Sequence[OutboxEntry],
    *,
    notifier: Notifier | None,
    webhook_url: str | None,
    own: Collection[str] = (),
    send: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> list[Delivery]:
    """Try each entry once. A comment left by an earlier run (not in `own`) may have been posted
    before that run died: it is sent only if the PR has no comment with its marker. An entry this run
    has no channel for (no token, no webhook URL) is skipped and waits. Errors are returned, not raised."""
    post = send or send_webhook
    out: list[Delivery] = []
    for entry in entries:
        try:
            if entry.kind == "pr_comment":
                if notifier is None or entry.pr is None:
                    out.append(Delivery(entry, "skipped"))
                    continue
                if entry.id not in own and notifier.has_comment(entry.pr, outbox_marker(entry.id)):
                    out.append(Delivery(entry, "already_posted"))
                    continue
                notifier.comment(entry.pr, entry.body)
            else:
                if not webhook_url or entry.payload is None:
                    out.append(Delivery(entry, "skipped"))
                    continue
                post(webhook_url, entry.payload)
        except (GitopsFlagsError, OSError) as exc:  # requests' errors are OSErrors
            out.append(Delivery(entry, "failed", render.plain(str(exc), 300) or type(exc).__name__))
            continue
        out.append(Delivery(entry, "delivered"))
    return out


def settle(
    state: StoreState, deliveries: Sequence[Delivery], now: datetime
) -> tuple[StoreState, list[Dropped]]:
    """The outbox after delivery: delivered entries removed, failed ones counted, and entries that are
    too old or failed too often dropped (returned, to be audited). Entries are matched by id, so this
    works on a snapshot read again after a conflict. Pure."""
    by_id = {d.entry.id: d for d in deliveries}
    kept: list[OutboxEntry] = []
    dropped: list[Dropped] = []
    for entry in state.outbox:
        found = by_id.get(entry.id)
        if found is not None and found.status in ("delivered", "already_posted"):
            continue
        if found is not None and found.status == "failed":
            entry = entry.model_copy(update={"attempts": entry.attempts + 1, "last_error": found.error})
        if entry.expired(now):
            dropped.append(Dropped(entry, _drop_reason(entry, now)))
            continue
        kept.append(entry)
    if kept == state.outbox:
        return state, []
    return state.model_copy(update={"outbox": kept}), dropped


def _drop_reason(entry: OutboxEntry, now: datetime) -> str:
    last = f"; last error: {entry.last_error}" if entry.last_error else ""
    if entry.attempts >= OUTBOX_MAX_ATTEMPTS:
        return f"not delivered after {entry.attempts} attempts{last}"
    return f"not delivered within {OUTBOX_MAX_AGE.days} days ({entry.attempts} failed attempts){last}"


def dropped_record(dropped: Dropped, now: datetime, where: str) -> dict[str, Any]:
    """The audit line that says a notification was given up on, and why."""
    entry = dropped.entry
    return {
        "time": now.isoformat().replace("+00:00", "Z"),
        "event": "notification_dropped",
        "kind": "notification",
        "key": entry.id,
        "notification": entry.kind,
        "pr": entry.pr,
        "created_at": entry.created_at.isoformat().replace("+00:00", "Z"),
        "attempts": entry.attempts,
        "reason": dropped.reason,
        "store": where or None,
    }


@dataclass(frozen=True)
class Flushed:
    deliveries: tuple[Delivery, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    problems: tuple[str, ...] = ()  # for stderr and the job summary; never fail the run
    version: str | None = None  # the store's version after removing the delivered entries (None: not written)

    @property
    def sent(self) -> int:
        return sum(1 for d in self.deliveries if d.status == "delivered")


def flush(
    store: Store,
    pending: Sequence[OutboxEntry],
    *,
    notifier: Notifier | None,
    webhook_url: str | None,
    now: datetime,
    own: Collection[str] = (),
    recorded: Collection[str] | None = None,
    send: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> Flushed:
    """Deliver `pending` (the outbox as this run last wrote or read it, plus anything it could not
    record), then remove what was delivered with a compare-and-swap write (read again and matched by id
    on a conflict). `recorded` names the ids known to be in the store (default: all of `pending`); only
    those are settled. A write that fails leaves the entries for the next run: at-least-once."""
    due = [e for e in pending if not e.expired(now)]
    deliveries = deliver(due, notifier=notifier, webhook_url=webhook_url, own=own, send=send)
    problems = [_problem(d) for d in deliveries if d.status == "failed"]
    in_store = {e.id for e in pending} if recorded is None else set(recorded)
    expired = [e.id for e in pending if e not in due]
    changes = [d.entry.id for d in deliveries if d.status != "skipped"] + expired
    if not in_store.intersection(changes):  # nothing to remove, count or drop: no write
        return Flushed(tuple(deliveries), (), tuple(problems))
    holder: list[list[Dropped]] = []

    def decide(snapshot: StoreSnapshot) -> Update | None:
        holder.clear()
        settled = [d for d in deliveries if d.entry.id in in_store]
        state, dropped = settle(snapshot.state, settled, now)
        holder.append(dropped)
        if state == snapshot.state:
            return None
        audit = [dropped_record(d, now, store.where) for d in dropped]
        sent = sum(1 for d in settled if d.status in ("delivered", "already_posted"))
        message = f"gitops-flags: {sent} notification{'s' if sent != 1 else ''} delivered"
        return Update(state, snapshot.documents, audit, message)

    version: str | None = None
    try:
        version = update(store, decide)
    except (GitopsFlagsError, OSError) as exc:
        problems.append(f"the delivered notifications could not be removed from the store's outbox ({exc}); "
                        "the next run sends them again")
        holder.clear()
    dropped = holder[0] if holder else []
    problems += [f"notification {d.entry.id} dropped: {d.reason}" for d in dropped]
    return Flushed(tuple(deliveries), tuple(dropped), tuple(problems), version)


def _problem(delivery: Delivery) -> str:
    entry = delivery.entry
    what = f"the comment on PR #{entry.pr}" if entry.kind == "pr_comment" else "the webhook"
    return f"{what} could not be delivered ({delivery.error}); it stays in the outbox for the next run"


