"""notify: the merged-PR comment, the job summary, the webhook payload and its sending."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
import responses

from gitops_flags import notify
from gitops_flags.changes import Change
from gitops_flags.reconcile import Judgement, MergedPull, Outcome, Unit, UnitResult
from gitops_flags.store.state import RolloutState

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
    notify.send_webhook(HOOK, {"text": "hi"})
    assert json.loads(responses.calls[0].request.body or b"") == {"text": "hi"}
    assert responses.calls[0].request.headers["Content-Type"] == "application/json"


@responses.activate
def test_webhook_errors_never_show_the_url() -> None:
    responses.post(HOOK, status=404, body="no_team")
    with pytest.raises(notify.NotifyError, match="404 no_team") as caught:
        notify.send_webhook(HOOK, {"text": "hi"})
    assert "s3cret" not in str(caught.value)
    responses.replace(responses.POST, HOOK, body=requests.ConnectionError("refused"))
    with pytest.raises(notify.NotifyError, match="could not be reached") as caught:
        notify.send_webhook(HOOK, {"text": "hi"})
    assert "s3cret" not in str(caught.value)
