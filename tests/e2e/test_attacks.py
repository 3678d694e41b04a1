"""The four approval bypasses of issue 11, staged as an attacker with write access would, against the GitHub
double with real `check` and `apply` processes. Each test asserts the secure outcome (the unapproved state
is not served; the audit and the PR comment say why) and that the legitimate path still works.

People (tests/e2e/conftest.py): alice writes the PRs; mira is a manager and owns flags/ (@acme/web); quinn
is QA; sam is a staff engineer; cora is compliance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_flags.flagd import served_state

from .conftest import T_APPLY, Actions, Lifecycle, StoreFiles, replace_once
from .github_double import GitHubDouble

T_LATER = "2026-11-24T11:00:00Z"
ONBOARDING = "flags/onboarding_tour.yaml"
DARK = "flags/dark_mode.yaml"
GATE = """\
      health_check:
        type: http
        url: http://status.acme.example/api/onboarding
        json_field: data.error_rate
        comparison: "<="
        threshold: 0.02
"""


def started(double: GitHubDouble, actions: Actions, tmp_path: Path) -> Lifecycle:
    """The example repository adopted, and its baseline applied to a file store."""
    lc = Lifecycle(double, actions, f"file:{tmp_path / 'flag-store'}")
    lc.setup()
    job = lc.apply(T_APPLY)
    assert job.code == 0, job
    return lc


def main_text(double: GitHubDouble, path: str) -> str:
    data = double.read(double.branch_sha("main"), path)
    assert data is not None
    return data.decode()


def approve(double: GitHubDouble, number: int, *logins: str) -> None:
    for login in logins:
        double.review(number, login, "APPROVED")


def last_status(double: GitHubDouble, sha: str) -> Any:
    return double.statuses_for(sha)[-1]


def lines(files: StoreFiles, pr: int) -> list[dict[str, Any]]:
    return [r for r in files.audit() if r.get("pr") == pr]


def apply_comment(double: GitHubDouble, number: int) -> str:
    bodies = [c.body for c in double.issue_comments(number) if "gitops-flags apply" in c.body]
    assert bodies, f"no apply comment on #{number}"
    return bodies[-1]


def test_route1_a_rebase_merge_never_serves_an_intermediate_commit(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """Commit 1 starts the production rollout at 100% with no gate; commit 2 is the approved
    [25, 50, 100] with a health gate. Merged with "Rebase and merge": only the end state is served."""
    lc = started(double, actions, tmp_path)
    text = main_text(double, ONBOARDING)
    at_once = text + '    rollout:\n      variant: "on"\n      stages: [100]\n'
    gated = text + ('    rollout:\n      variant: "on"\n      stages: [25, 50, 100]\n      stage_delay: 1h\n'
                    + GATE)
    pull = double.open_pull("alice", "alice/tour", {ONBOARDING: at_once}, "Roll out the tour")
    double.push(pull.number, {ONBOARDING: gated}, "Stage it behind a gate")
    approve(double, pull.number, "mira", "quinn")
    job = lc.check(pull.number, "pull_request_review.submitted")
    assert job.code == 0, job
    assert last_status(double, pull.head_sha).state == "success"

    double.merge(pull.number, "mira", method="rebase")
    first, last = double.pulls[pull.number].landed
    job = lc.apply(T_LATER)
    assert job.code == 0, job  # the legitimate end state applies

    store = lc.read_store()
    served = store.rollout("onboarding_tour", "production")
    assert served["stages"] == [25, 50, 100] and served["stage_index"] == 0  # 25%, never 100%
    audit = lines(store, pull.number)
    assert [(r["merge_commit"], r["environment"], r["outcome"]) for r in audit] == [
        (first, "production", "skipped"), (last, "production", "applied")]
    assert audit[0]["after"]["rollout"]["stages"] == [100]
    assert "intermediate state of PR #1" in audit[0]["reason"] and "never" in audit[0]["reason"]
    assert audit[1]["approval"] == "verified"
    comment = apply_comment(double, pull.number)
    assert "never served" in comment and "skipped" in comment


def test_route2_a_retargeted_pr_loses_its_approvals(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """production.enabled: false is pushed straight to an unprotected branch `evil`; a PR into `evil` that
    only edits the description is approved, then retargeted to main, where it is a production toggle."""
    lc = started(double, actions, tmp_path)
    text = main_text(double, DARK)
    off = replace_once(text, "  production:\n    enabled: true", "  production:\n    enabled: false")
    double.commit("evil", {DARK: off}, "off", "alice", parent=double.branch_sha("main"))
    described = replace_once(off, "description: ", "description: (reworded) ")
    pull = double.open_pull("alice", "alice/wording", {DARK: described}, "Reword", base_ref="evil")
    approve(double, pull.number, "mira", "quinn")
    job = lc.check(pull.number, "pull_request_review.submitted")
    assert job.code == 0, job
    assert last_status(double, pull.head_sha).context == "gitops-flags: evil"
    assert last_status(double, pull.head_sha).state == "success"  # a description edit, approved

    double.retarget(pull.number, "main", "alice")
    job = lc.check(pull.number, "pull_request.edited.base-changed")
    assert job.code == 0, job
    status = last_status(double, pull.head_sha)
    assert (status.context, status.state) == ("gitops-flags: main", "pending")
    sticky = next(c.body for c in double.issue_comments(pull.number) if c.body.startswith("<!-- gitops"))
    assert "base branch was changed" in sticky

    # An admin merges it anyway: apply re-checks and blocks the toggle.
    double.merge(pull.number, "pat")
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "ENABLED"
    blocked = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert blocked and all(r["outcome"] == "blocked" for r in blocked)
    assert "base branch was changed" in blocked[0]["reason"]
    assert "base branch was changed" in apply_comment(double, pull.number)


def test_route2_approvals_given_after_the_retarget_count(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    lc = started(double, actions, tmp_path)
    text = main_text(double, DARK)
    double.commit("release", {}, "branch", "pat", parent=double.branch_sha("main"))
    off = replace_once(text, "  production:\n    enabled: true", "  production:\n    enabled: false")
    pull = double.open_pull("alice", "alice/off", {DARK: off}, "Dark mode off", base_ref="release")
    approve(double, pull.number, "mira")
    double.retarget(pull.number, "main", "alice")
    approve(double, pull.number, "mira")  # seen again against main
    job = lc.check(pull.number, "pull_request_review.submitted")
    assert job.code == 0, job
    assert last_status(double, pull.head_sha).state == "success"
    double.merge(pull.number, "mira")
    assert lc.apply(T_LATER).code == 0
    assert served_state(lc.read_store().flag("production", "dark_mode")) == "DISABLED"


def test_route3_a_hand_made_merge_that_swaps_variants_is_not_served(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """The approved PR adds a staging rule; the admin's merge commit also swaps the top-level variants."""
    lc = started(double, actions, tmp_path)
    text = main_text(double, DARK)
    assert '"on": true' in text and '"off": false' in text
    edited = replace_once(text, "  staging:\n", "  staging:\n    default_variant: \"off\"\n")
    pull = double.open_pull("alice", "alice/staging", {DARK: edited}, "Dark mode on in staging")
    approve(double, pull.number, "mira")
    assert lc.check(pull.number, "pull_request_review.submitted").code == 0
    swapped = edited.replace('"on": true', '"on": @@').replace('"off": false', '"off": true')
    swapped = swapped.replace('"on": @@', '"on": false')
    before = lc.read_store()
    merge = double.merge_edited(pull.number, "pat", {DARK: swapped})
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    after = lc.read_store()
    for env in ("staging", "production"):
        assert after.flag(env, "dark_mode") == before.flag(env, "dark_mode")  # neither environment served
    audit = [r for r in lines(after, pull.number) if r["merge_commit"] == merge]
    assert audit and all(r["outcome"] == "blocked" for r in audit)
    expected = f"{DARK} as landed at {merge[:12]} is not the file PR #{pull.number} approved"
    assert expected in audit[0]["reason"]
    assert "not the file" in apply_comment(double, pull.number)

    # The legitimate path: a PR that puts the approved file back, approved and merged by the button.
    legit = double.open_pull("alice", "alice/legit", {DARK: edited}, "Variants back")
    approve(double, legit.number, "mira", "quinn")
    double.merge(legit.number, "mira")
    job = lc.apply("2026-11-24T12:00:00Z")
    assert job.code == 0, job
    applied = lines(lc.read_store(), legit.number)
    assert applied and all(r["outcome"] == "applied" for r in applied), applied


def test_route4_a_policy_tightened_after_the_pr_was_opened_binds_it(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """A staging change needs one code owner when the PR is opened; main's policy then requires a manager
    and QA for every flag. The PR gets one code owner's approval and is merged: blocked."""
    lc = started(double, actions, tmp_path)
    double.hidden_teams.pop("acme/compliance", None)  # compliance can approve governance here
    text = main_text(double, ONBOARDING)
    staged = replace_once(text, "  staging:\n    enabled: true", "  staging:\n    enabled: false")
    pull = double.open_pull("alice", "alice/quiet", {ONBOARDING: staged}, "Quiet tour in staging")

    policy = main_text(double, ".github/gitops-flags.yml")
    tightened = replace_once(policy, "{match: {kind: flag}, workflow: codeowner_review}",
                             "{match: {kind: flag}, workflow: flag_approval}")
    gov = double.open_pull("pat", "pat/tighten", {".github/gitops-flags.yml": tightened}, "Tighten")
    approve(double, gov.number, "sam", "cora")
    double.merge(gov.number, "sam")
    assert lc.apply(T_LATER).code == 0

    approve(double, pull.number, "wendy")  # a code owner: enough under the PR's base policy only
    job = lc.check(pull.number, "pull_request_review.submitted")
    assert job.code == 0, job
    assert last_status(double, pull.head_sha).state == "pending"
    sticky = next(c.body for c in double.issue_comments(pull.number) if c.body.startswith("<!-- gitops"))
    assert "current policy" in sticky and "is behind main" in sticky

    double.merge(pull.number, "wendy")
    job = lc.apply("2026-11-24T12:00:00Z")
    assert job.code == 1, job
    audit = lines(lc.read_store(), pull.number)
    assert audit and all(r["outcome"] == "blocked" for r in audit)
    assert "under the policy where it landed" in audit[0]["reason"]
    assert "under the policy where it landed" in apply_comment(double, pull.number)

    # The legitimate path: a PR opened on the tightened policy with its approvals applies.
    text = main_text(double, ONBOARDING)
    legit = double.open_pull("alice", "alice/legit", {ONBOARDING: text.replace("description: ",
                                                                               "description: (new) ", 1)},
                             "Wording")
    approve(double, legit.number, "mira", "quinn")
    double.merge(legit.number, "mira")
    lc.apply("2026-11-24T13:00:00Z")
    assert all(r["outcome"] == "applied" for r in lines(lc.read_store(), legit.number))
