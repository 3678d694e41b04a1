"""notify: the merged-PR comment, the job summary, the webhook payload and its sending."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from gitops_flags import delivery, notify
from gitops_flags.changes import Change
from gitops_flags.reconcile import Judgement, MergedPull, Outcome, Unit, UnitResult
from gitops_flags.store import ConflictError, StoreSnapshot
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import OUTBOX_MAX_ATTEMPTS, OutboxEntry, RolloutState, StoreState

PULL = MergedPull(12, "https://github.com/acme/flags/pull/12", "carol", "h" * 40, "b" * 40, "m" * 40)
HOOK = "https://hooks.example.com/services/T0/B0/s3cret"


def result(
    key: str = "checkout",
    env: str | None = "production",
    outcome: Outcome = "applied",
    summary: str = "enabled false → true",
    reason: str = "",
    pull: MergedPull | None = PULL,
    approvers: dict[str, tuple[str, ...]] | None = None,
    rollout: RolloutState | None = None,
) -> UnitResult:
    change = Change("flag", key, f"flags/{key}.yaml", "toggle", summary, env)
    approval = "verified" if outcome == "applied" and pull else "missing"
    judgement = Judgement(outcome, approval, approvers or {}, reason)  # type: ignore[arg-type]
    unit = Unit(f"{'m' * 40}/{change.ident()}", "m" * 40, change, judgement, pull)
    return UnitResult(unit, outcome, reason, rollout)


def test_comment_lists_what_was_applied_and_why_not() -> None:
    body = notify.pr_comment(
        PULL,
        [result(approvers={"manager": ("dave",), "qa": ("erin",)}),
         result("search", "staging", "blocked", reason="PR #12 is pending for this change")],
        store="github-branch:flag-store",
        run_url="https://github.com/acme/flags/actions/runs/1",
    )
    assert body.startswith(notify.MARKER)
    assert "1 applied, 1 blocked" in body
    assert "| ✅ applied | `checkout@production` | toggle | enabled false → true |" in body
    assert "⛔ blocked" in body and "pending for this change" in body
    assert "[!CAUTION]" in body and "not applied" in body
    assert "manager: `dave`; qa: `erin`" in body  # approvers named without pinging them again
    assert "@dave" not in body
    assert "(https://github.com/acme/flags/actions/runs/1)" in body


def test_repository_text_cannot_mention_link_or_break_the_table() -> None:
    hostile = result(summary="ping @acme/everyone | see [x](https://evil.example) <b>")
    body = notify.pr_comment(PULL, [hostile], store="file:s")
    assert "@acme/everyone" not in body
    assert "](https://evil" not in body and "<b>" not in body
    row = next(line for line in body.splitlines() if "checkout@production" in line)
    assert row.count(" | ") == 3  # still four cells


def test_unverified_and_warned_runs_say_so() -> None:
    warned = result(outcome="warned", reason="no merged pull request", pull=PULL)
    unverified = UnitResult(
        Unit("x", "m" * 40, warned.unit.change, Judgement("applied", "unverified"), PULL), "applied"
    )
    body = notify.pr_comment(PULL, [warned, unverified], store="file:s")
    assert "without approval" in body and "not verified" in body


def test_an_overlong_comment_is_cut_with_a_pointer() -> None:
    many = [result(f"flag{i}", summary="x" * 190) for i in range(600)]
    body = notify.pr_comment(PULL, many, store="file:s", run_url="https://run")
    assert len(body) <= 65_536 and "the list is too long" in body and "(https://run)" in body


def test_rollout_progress_is_shown() -> None:
    state = RolloutState(variant="on", stages=[5, 50, 100], stage_index=0, percentage=5, status="running",
                         entered_at=datetime(2026, 12, 1, tzinfo=UTC), stage_delay_seconds=3600,
                         plan_hash="h")
    r = result(rollout=state)
    assert "running, 5% of on, stage 1/3" in notify.pr_comment(PULL, [r], store="file:s")
    assert "[rollout running, 5% of on, stage 1/3]" in notify.line(r)


def test_terminal_line_and_workflow_command() -> None:
    blocked = result("search", "staging", "blocked", reason="no merged pull request\nbrought it", pull=None)
    assert notify.line(blocked).startswith("blocked  search@staging  toggle")
    assert "(no PR, mmmmmmm, missing)" in notify.line(blocked)
    command = notify.workflow_command(blocked)
    assert command is not None and command.startswith("::error title=gitops-flags apply::search@staging")
    assert "\n" not in command
    assert notify.workflow_command(result()) is None
    warned = notify.workflow_command(result(outcome="warned", reason="r"))
    assert warned is not None and warned.startswith("::warning ") and "WITHOUT approval" in warned


def test_job_summary() -> None:
    text = notify.job_summary([result()], store="file:.flag-store", head="a" * 40, verified=False,
                              failures=["writing the store: disk full"], notes=["baseline: ..."])
    assert text.startswith("## gitops-flags apply\n")
    assert "not verified" in text and "[!CAUTION]" in text and "disk full" in text and "1 applied" in text


def test_webhook_payload_is_slack_compatible() -> None:
    payload = notify.webhook_payload(
        [result(summary="rules <changed> & more"),
         result("search", "staging", "blocked", reason="direct push", pull=None)],
        repository="acme/flags", store="github-branch:flag-store", head="a" * 40, run_url="https://run",
    )
    text = payload["text"]
    assert text.splitlines()[0] == "gitops-flags apply on acme/flags (aaaaaaa): 1 applied, 1 blocked"
    assert "rules &lt;changed&gt; &amp; more" in text  # Slack's escapes
    assert "⛔ blocked: search@staging toggle" in text and "— direct push" in text
    assert [c["outcome"] for c in payload["gitops_flags"]["changes"]] == ["applied", "blocked"]
    assert payload["gitops_flags"]["changes"][0]["pr_url"] == PULL.url
    json.dumps(payload)  # plain JSON


@responses.activate
def test_send_webhook_posts_json() -> None:
    responses.post(HOOK, body="ok")
    delivery.send_webhook(HOOK, {"text": "hi"})
    assert json.loads(responses.calls[0].request.body or b"") == {"text": "hi"}
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"


@responses.activate
def test_webhook_errors_never_show_the_url() -> None:
    responses.post(HOOK, status=404, body="no_team")
    with pytest.raises(delivery.NotifyError, match="404 no_team") as caught:
        delivery.send_webhook(HOOK, {"text": "hi"})
    assert "s3cret" not in str(caught.value)
    responses.replace(responses.POST, HOOK, body=requests.ConnectionError("refused"))
    with pytest.raises(delivery.NotifyError, match="could not be reached") as caught:
        delivery.send_webhook(HOOK, {"text": "hi"})
    assert "s3cret" not in str(caught.value)


# --- the outbox ------------------------------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OUTBOUND = notify.Outbound("run-7.1", comments=True, webhook=True, repository="acme/flags",
                           run_url="https://run")


class Commenter:
    """A PR's comments, as GitHub would keep them; `fail` makes the next posts raise."""

    def __init__(self, fail: int = 0) -> None:
        self.posted: list[tuple[int, str]] = []
        self.fail = fail
        self.lookups: list[int] = []

    def comment(self, number: int, body: str) -> None:
        if self.fail:
            self.fail -= 1
            raise delivery.NotifyError("GitHub answered 502")
        self.posted.append((number, body))

    def has_comment(self, number: int, marker: str) -> bool:
        self.lookups.append(number)
        return any(n == number and marker in body for n, body in self.posted)


def entry(entry_id: str = "apply:c1:pr-12", kind: str = "pr_comment", **extra: Any) -> OutboxEntry:
    data: dict[str, Any] = {"kind": kind, "created_at": T0, **extra}
    if kind == "pr_comment":
        data = {"pr": 12, "body": notify.outbox_marker(entry_id) + "\nhello", **data}
    else:
        data = {"payload": {"text": "hi"}, **data}
    return OutboxEntry(id=entry_id, **data)


def test_apply_entries_one_comment_per_pr_and_one_webhook() -> None:
    other = MergedPull(13, "https://github.com/acme/flags/pull/13", "dan", "h" * 40, "b" * 40, None)
    results = [result("a"), result("b"), result("c", pull=other), result("d", pull=None)]
    entries = notify.apply_entries(results, OUTBOUND, store="file:s", head="f" * 40, now=T0)
    assert [(e.id, e.kind, e.pr) for e in entries] == [
        (f"apply:{'m' * 40}:pr-12", "pr_comment", 12), (f"apply:{'m' * 40}:pr-13", "pr_comment", 13),
        ("apply:run-7.1:webhook", "webhook", None)]
    first = entries[0].body
    assert first.startswith(notify.MARKER + "\n" + notify.outbox_marker(entries[0].id))
    assert "`a@production`" in first and "`b@production`" in first and "`c@production`" not in first
    assert entries[2].payload is not None and entries[2].payload["gitops_flags"]["id"] == entries[2].id
    only_13 = notify.apply_entries(results, OUTBOUND, store="file:s", head="f" * 40, now=T0, prs={13})
    assert [e.id for e in only_13] == [f"apply:{'m' * 40}:pr-13", "apply:run-7.1:webhook"]
    quiet = notify.Outbound("run-7.1")  # no token, no webhook URL: nothing this run could deliver
    assert notify.apply_entries(results, quiet, store="file:s", head="f" * 40, now=T0) == []


def test_the_marker_is_a_well_formed_html_comment() -> None:
    assert notify.outbox_marker("apply:abc:pr-1") == "<!-- gitops-flags:outbox apply:abc:pr-1 -->"
    odd = notify.outbox_marker("advance:f@eu--west>:x")
    assert odd.count("--") == 2 and odd.count(">") == 1 and odd.endswith(" -->")


def test_run_key_names_the_actions_run_and_attempt() -> None:
    assert notify.run_key({"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2"}) == "run-77.2"
    local = notify.run_key({})
    assert local.startswith("local-") and local != notify.run_key({})


def test_a_comment_left_by_an_earlier_run_is_not_posted_twice() -> None:
    commenter = Commenter()
    left = entry()
    commenter.posted.append((12, left.body))  # the earlier run posted it, then died before clearing it
    [done] = delivery.deliver([left], notifier=commenter, webhook_url=None)
    assert done.status == "already_posted" and len(commenter.posted) == 1
    mine = delivery.deliver([left], notifier=commenter, webhook_url=None, own={left.id})
    assert mine[0].status == "delivered" and len(commenter.posted) == 2  # its own: no lookup first
    assert commenter.lookups == [12]


def test_deliver_skips_what_it_has_no_channel_for_and_reports_errors() -> None:
    sent: list[Mapping[str, Any]] = []

    def refused(url: str, payload: Mapping[str, Any]) -> None:
        raise delivery.NotifyError("the webhook answered 500")

    hook = entry("w", "webhook")
    assert [d.status for d in delivery.deliver([entry(), hook], notifier=None, webhook_url=None)] == [
        "skipped", "skipped"]
    failed = delivery.deliver([entry(), hook], notifier=Commenter(fail=1), webhook_url=HOOK, send=refused)
    assert [(d.status, d.error) for d in failed] == [
        ("failed", "GitHub answered 502"), ("failed", "the webhook answered 500")]
    ok = delivery.deliver([hook], notifier=None, webhook_url=HOOK, send=lambda url, p: sent.append(p))
    assert ok[0].status == "delivered" and sent == [{"text": "hi"}]


def test_settle_removes_counts_and_drops_by_id() -> None:
    gone, failing, waiting, worn, old = (entry(f"e{i}") for i in range(5))
    worn = worn.model_copy(update={"attempts": OUTBOX_MAX_ATTEMPTS - 1})
    old = old.model_copy(update={"created_at": T0 - timedelta(days=8)})
    state = StoreState().with_outbox([gone, failing, waiting, worn, old])
    deliveries = [delivery.Delivery(gone, "delivered"), delivery.Delivery(failing, "failed", "502"),
                  delivery.Delivery(waiting, "skipped"), delivery.Delivery(worn, "failed", "502")]
    settled, dropped = delivery.settle(state, deliveries, T0)
    assert [(e.id, e.attempts, e.last_error) for e in settled.outbox] == [("e1", 1, "502"), ("e2", 0, None)]
    assert [(d.entry.id, d.reason) for d in dropped] == [
        ("e3", f"not delivered after {OUTBOX_MAX_ATTEMPTS} attempts; last error: 502"),
        ("e4", "not delivered within 7 days (0 failed attempts)")]
    record = delivery.dropped_record(dropped[0], T0, "file:s")
    assert (record["event"], record["key"], record["attempts"]) == ("notification_dropped", "e3", 20)
    assert delivery.settle(StoreState().with_outbox([waiting]), deliveries, T0)[1] == []


class ConflictOnce:
    """A file store where another writer adds an entry between our read and our write."""

    def __init__(self, inner: FileStore, added: OutboxEntry) -> None:
        self.inner, self.added, self.where = inner, added, inner.where
        self.raced = False

    def read(self) -> StoreSnapshot:
        return self.inner.read()

    def write(self, state: StoreState, documents: Any, expected: str | None, audit: Sequence[Any] = (),
              message: str = "") -> str:
        if not self.raced:
            self.raced = True
            now = self.inner.read()
            self.inner.write(now.state.with_outbox([self.added]), now.documents, now.version)
            raise ConflictError("the store moved")
        return self.inner.write(state, documents, expected, audit, message)

    def append_audit(self, records: Any, expected_version: str | None) -> str:
        return self.inner.append_audit(records, expected_version)

    def read_audit(self) -> list[dict[str, Any]]:
        return self.inner.read_audit()


def test_flush_delivers_then_removes_by_id_after_a_conflict(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old = entry("e-old", created_at=T0 - timedelta(days=8))
    pending = [entry("e1"), entry("e2", "webhook"), old]
    store.write(StoreState().with_outbox(pending), {}, None)
    racing = ConflictOnce(store, entry("e3"))
    commenter = Commenter()
    sent: list[Mapping[str, Any]] = []
    flushed = delivery.flush(racing, pending, notifier=commenter, webhook_url=HOOK, now=T0, own={"e1"},
                           send=lambda url, payload: sent.append(payload))
    assert flushed.sent == 2 and [n for n, _ in commenter.posted] == [12] and len(sent) == 1
    assert [e.id for e in store.read().state.outbox] == ["e3"]  # the other writer's entry stays
    assert [d.entry.id for d in flushed.dropped] == ["e-old"]  # too old to send: dropped, audited
    [line] = store.read_audit()
    assert (line["event"], line["key"]) == ("notification_dropped", "e-old")
    assert "e-old dropped: not delivered within 7 days" in flushed.problems[0]


def test_flush_with_nothing_to_settle_writes_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write(StoreState().with_outbox([entry()]), {}, None)
    version = store.read().version
    flushed = delivery.flush(store, [entry()], notifier=None, webhook_url=None, now=T0)
    assert [d.status for d in flushed.deliveries] == ["skipped"] and flushed.problems == ()
    assert store.read().version == version


def test_the_refused_store_comment_escapes_the_problem_and_says_what_to_do() -> None:
    body = notify.refused_comment("apply", "github-branch:@acme/all <img src=x> does not match its seal",
                                  "https://github.com/acme/flags/actions/runs/1")
    assert body.startswith(notify.REFUSED_MARKER + "\n### gitops-flags apply: the flag store was NOT used")
    assert "@acme" not in body and "<img" not in body  # no mention, no HTML from the store's name
    assert "`gitops-flags apply --repair`" in body and "`gitops-flags store reseal`" in body
    assert body.endswith("[Workflow run](https://github.com/acme/flags/actions/runs/1)\n")
