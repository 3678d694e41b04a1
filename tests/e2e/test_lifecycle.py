"""The whole loop, as GitHub Actions runs it, against the GitHub double (issue #7).

One test drives real `gitops-flags` processes in order: a PR is checked, reviewed, pushed to, approved,
merged and applied; its rollout is advanced to 100%; a second PR edits the policy; a direct push is
refused. Every state is asserted from the requests the double recorded and from the store's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_flags.flagd import served_state

from .conftest import (
    REFERENCE,
    STICKY,
    T_ADVANCE,
    T_APPLY,
    T_DIRECT,
    Actions,
    Lifecycle,
    outcome,
    section,
    steps,
)
from .github_double import GitHubDouble, Recorded


def writes(double: GitHubDouble, since: int) -> list[Recorded]:
    return [r for r in double.log[since:] if r.method != "GET"]


def only(records: list[Recorded], method: str, path: str) -> Recorded:
    found = [r for r in records if r.method == method and r.path == path]
    assert len(found) == 1, f"expected one {method} {path}, got {[(r.method, r.path) for r in records]}"
    return found[0]


def hook_payloads(double: GitHubDouble, since: int) -> list[dict[str, Any]]:
    return [r.json_body() for r in double.log[since:]
            if r.host == "hooks.acme.example" and r.method == "POST"]


def test_lifecycle(double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    store_url = f"file:{tmp_path / 'flag-store'}"
    lc = Lifecycle(double, actions, store_url)
    lc.setup()
    repo = f"/repos/{double.full_name}"

    # 1. A PR: a create (gift_cards, staging), a rollout (onboarding_tour, production), a production toggle
    #    (dark_mode) and a schema change (rate_limits).
    pr1 = lc.open_pr1()
    head1 = pr1.head_sha

    # 2. `check` on pull_request.opened: pending, one comment listing every awaited step, reviews requested.
    mark = len(double.log)
    job = lc.check(1, "pull_request.opened")
    assert job.code == 0, job
    sent = writes(double, mark)
    status = only(sent, "POST", f"{repo}/statuses/{head1}").json_body()
    assert status["state"] == "pending"
    assert status["context"] == "gitops-flags: main"
    assert status["description"].startswith("Pending: 4 of 4 changes await approval")
    assert status["target_url"] == f"{double.server_url}/{double.full_name}/actions/runs/7001"
    comment = only(sent, "POST", f"{repo}/issues/1/comments").json_body()["body"]
    assert comment.startswith(STICKY)
    assert steps(comment) == {
        "flag:dark_mode@production": {"manager": ("pending", []), "qa": ("skipped", [])},
        "flag:gift_cards@staging": {"owner": ("pending", [])},
        "flag:onboarding_tour@production": {"manager": ("pending", []), "qa": ("waiting", [])},
        "schema:rate_limits": {"review1": ("pending", []), "review2": ("waiting", []),
                               "review3": ("skipped", [])},
    }
    awaiting = next(line for line in comment.splitlines() if line.startswith("**Awaiting:**"))
    for team in ("@acme/eng-managers", "@acme/checkout", "@acme/schema-reviewers"):
        assert team in awaiting
    requested = only(sent, "POST", f"{repo}/pulls/1/requested_reviewers").json_body()
    assert sorted(requested["team_reviewers"]) == ["checkout", "eng-managers", "schema-reviewers"]
    assert sorted(double.pulls[1].requested_teams) == ["checkout", "eng-managers", "schema-reviewers"]
    assert not double.requests(path=r"/orgs/.*")  # no decisive review yet: no team lookups
    sticky_id = double.issue_comments(1)[0].id

    # 3. Reviews: a manager approves; the author (a member of @acme/checkout, the owners of gift_cards)
    #    approves her own PR; QA requests changes. `check` on pull_request_review: rejected.
    lc.first_reviews()
    mark = len(double.log)
    job = lc.check(1, "pull_request_review.submitted")
    assert job.code == 1, job
    sent = writes(double, mark)
    status = only(sent, "POST", f"{repo}/statuses/{head1}").json_body()
    assert (status["state"], status["description"]) == ("failure", "Rejected: 1 of 4 changes rejected.")
    comment = only(sent, "PATCH", f"{repo}/issues/comments/{sticky_id}").json_body()["body"]
    after_reviews = steps(comment)
    assert after_reviews["flag:dark_mode@production"]["manager"] == ("satisfied", ["mira"])
    assert after_reviews["flag:onboarding_tour@production"] == {"manager": ("satisfied", ["mira"]),
                                                               "qa": ("rejected", [])}
    assert after_reviews["flag:gift_cards@staging"] == {"owner": ("pending", [])}  # not the author's
    assert not [r for r in sent if r.method == "POST" and r.path.endswith("/comments")]
    lookups = {r.path: r.status for r in double.requests("GET", r"/orgs/.*")}
    assert lookups["/orgs/acme/teams/checkout/members"] == 200
    assert lookups["/orgs/acme/teams/compliance/members"] == 404  # a team the token cannot read

    # 4. A push changes onboarding_tour only: approvals covering it go stale, the others stand.
    head2 = lc.push_pr1()
    mark = len(double.log)
    job = lc.check(1, "pull_request.synchronize")
    assert job.code == 1, job
    sent = writes(double, mark)
    assert only(sent, "POST", f"{repo}/statuses/{head2}").json_body()["state"] == "failure"
    comment = only(sent, "PATCH", f"{repo}/issues/comments/{sticky_id}").json_body()["body"]
    after_push = steps(comment)
    assert after_push["flag:dark_mode@production"]["manager"] == ("satisfied", ["mira"])
    assert after_push["flag:onboarding_tour@production"] == {"manager": ("pending", []),
                                                            "qa": ("rejected", [])}
    assert after_push["flag:gift_cards@staging"] == {"owner": ("pending", [])}

    # 5. The remaining approvals: success, and the one comment was edited in place throughout.
    lc.remaining_reviews()
    mark = len(double.log)
    job = lc.check(1, "pull_request_review.submitted")
    assert job.code == 0, job
    sent = writes(double, mark)
    status = only(sent, "POST", f"{repo}/statuses/{head2}").json_body()
    assert (status["state"], status["description"]) == ("success", "Approved: All 4 changes approved.")
    comment = only(sent, "PATCH", f"{repo}/issues/comments/{sticky_id}").json_body()["body"]
    assert steps(comment) == {
        "flag:dark_mode@production": {"manager": ("satisfied", ["mira"]), "qa": ("skipped", [])},
        "flag:gift_cards@staging": {"owner": ("satisfied", ["carl"])},
        "flag:onboarding_tour@production": {"manager": ("satisfied", ["mira"]),
                                            "qa": ("satisfied", ["quinn"])},
        "schema:rate_limits": {"review1": ("satisfied", ["rita", "rob"]), "review2": ("satisfied", ["sam"]),
                               "review3": ("skipped", [])},
    }
    assert len(double.requests("POST", rf"{repo}/issues/1/comments")) == 1
    assert len(double.requests("PATCH", rf"{repo}/issues/comments/{sticky_id}")) == 3
    assert [c.id for c in double.issue_comments(1)] == [sticky_id]

    # 6. Merge; `apply` on the push to main writes the store and the audit log, and comments on the PR.
    merge = lc.merge_pr1()
    mark = len(double.log)
    job = lc.apply(T_APPLY)
    assert job.code == 0, job
    store = lc.read_store()
    state = store.json("state.json")
    assert state["applied_commit"] == merge
    tour = store.rollout("onboarding_tour", "production")
    assert (tour["status"], tour["percentage"], tour["pr"]) == ("running", 25, 1)
    assert tour["stage_delay_seconds"] == 2 * 3600  # the plan as pushed in step 4
    assert served_state(store.flag("production", "dark_mode")) == "DISABLED"  # type: ignore[index]
    assert store.flag("production", "onboarding_tour")["metadata"]["gitopsRolloutPercentage"] == 25  # type: ignore[index]
    assert store.flag("staging", "gift_cards")["defaultVariant"] == "on"  # type: ignore[index]
    audit = store.audit()
    baseline = [line for line in audit if line["approval"] == "baseline"]
    verified = [line for line in audit if line["approval"] == "verified"]
    assert len(baseline) + len(verified) == len(audit)
    assert {line["merge_commit"] for line in baseline} == {lc.seed}
    assert sorted((line["key"], line["environment"]) for line in verified) == [
        ("dark_mode", "production"), ("gift_cards", "staging"), ("onboarding_tour", "production"),
        ("rate_limits", None)]
    for line in verified:
        assert (line["outcome"], line["pr"], line["merge_commit"], line["author"]) == (
            "applied", 1, merge, "alice")
    by_key = {line["key"]: line for line in verified}
    assert by_key["onboarding_tour"]["approvers"] == {"manager": ["mira"], "qa": ["quinn"]}
    assert by_key["rate_limits"]["approvers"]["review1"] == ["rita", "rob"]
    sent = writes(double, mark)
    asked = [r.path for r in double.log[mark:] if r.path.endswith("/pulls")]
    assert asked == [f"{repo}/commits/{merge}/pulls"]
    applied = only(sent, "POST", f"{repo}/issues/1/comments").json_body()["body"]
    assert "gitops-flags apply: 4 applied" in applied
    idents = ("dark_mode@production", "gift_cards@staging", "onboarding_tour@production",
              "schema:rate_limits")
    for ident in idents:
        assert f"| ✅ applied | `{ident}` |" in applied
    [hook] = hook_payloads(double, mark)
    assert hook["gitops_flags"]["event"] == "apply"
    assert {c["outcome"] for c in hook["gitops_flags"]["changes"]} == {"applied"}

    # 7. `advance` with --now stepping through the 2h stage delay: 25% → 50% → 100%, a comment each.
    expected = [(50, "running", "advanced **25% → 50%**"), (100, "completed", "**completed** (100%)")]
    for now, (percentage, status_, said) in zip(T_ADVANCE, expected, strict=True):
        mark = len(double.log)
        job = lc.advance(now)
        assert job.code == 0, job
        store = lc.read_store()
        tour = store.rollout("onboarding_tour", "production")
        assert (tour["percentage"], tour["status"]) == (percentage, status_)
        assert tour["last_gate"]["outcome"] == "passed"
        entry = store.flag("production", "onboarding_tour")
        assert entry is not None and entry["metadata"]["gitopsRolloutPercentage"] == percentage
        [line] = [a for a in store.audit() if a.get("command") == "advance" and a["flag"] == "onboarding_tour"
                  and a["time"].startswith(now[:16])]
        assert line["after"]["percentage"] == percentage and line["pr"] == 1
        gate = [r for r in double.log[mark:] if r.host == "status.acme.example"]
        assert "/api/onboarding" in [r.path for r in gate]
        [posted] = [r for r in writes(double, mark) if r.path == f"{repo}/issues/1/comments"]
        assert "`onboarding_tour` in `production`" in posted.json_body()["body"]
        assert said in posted.json_body()["body"]
    assert len(double.issue_comments(1)) == 4  # sticky, apply, two rollout steps

    # 8. A second PR loosens the policy and, in the same PR, turns dark mode back on in production. The
    #    base policy judges it: the policy edit needs the governance workflow, dark mode still needs a
    #    manager, and then QA, since turning a flag on is not the kill switch (the proposed rule would
    #    have let the code owner's approval suffice).
    pr2 = lc.open_pr2()
    lc.pr2_reviews()
    mark = len(double.log)
    job = lc.check(2, "pull_request_review.submitted")
    assert job.code == 0, job
    sent = writes(double, mark)
    assert only(sent, "POST", f"{repo}/statuses/{pr2.head_sha}").json_body()["state"] == "pending"
    comment = only(sent, "POST", f"{repo}/issues/2/comments").json_body()["body"]
    assert steps(comment) == {
        "flag:dark_mode@production": {"manager": ("pending", []), "qa": ("waiting", [])},
        "governance:.github/gitops-flags.yml": {"senior": ("pending", []), "compliance": ("pending", [])},
    }
    assert "workflow `flag_approval`" in section(comment, "flag dark_mode · production")
    governance = section(comment, "governance .github/gitops-flags.yml")
    assert "workflow `governance`" in governance
    compliance = "- ⏳ `compliance` (compliance): pending"
    [row] = [line for line in governance.splitlines() if line.startswith(compliance)]
    assert "cannot read members of @&#8203;acme/compliance" in row  # said, not guessed

    # 9. A direct push to main changes a flag: `apply` refuses it, records it and reports it.
    direct = lc.direct_push()
    before = lc.read_store()
    mark = len(double.log)
    job = lc.apply(T_DIRECT)
    assert job.code == 1, job
    lookup = [r for r in double.log[mark:] if r.path == f"{repo}/commits/{direct}/pulls"]
    assert [r.status for r in lookup] == [200]  # the double knows no PR for it
    store = lc.read_store()
    last = store.audit()[-1]
    assert (last["key"], last["environment"], last["outcome"], last["approval"], last["pr"]) == (
        "legacy_export", "staging", "blocked", "missing", None)
    assert last["merge_commit"] == direct and "direct push" in last["reason"]
    assert store.files["staging.flagd.json"] == before.files["staging.flagd.json"]  # still served as before
    assert served_state(store.flag("staging", "legacy_export")) == "DISABLED"  # type: ignore[index]
    [hook] = hook_payloads(double, mark)
    [change] = hook["gitops_flags"]["changes"]
    assert (change["key"], change["outcome"], change["pr"]) == ("legacy_export", "blocked", None)
    assert not [r for r in writes(double, mark) if r.path.startswith(f"{repo}/issues")]  # no PR to tell

    assert double.unhandled == []
    REFERENCE["fault-free"] = outcome(lc)
