"""The four approval bypasses of issue 11, staged as an attacker with write access would, against the GitHub
double with real `check` and `apply` processes. Each test asserts the secure outcome (the unapproved state
is not served; the audit and the PR comment say why) and that the legitimate path still works.

People (tests/e2e/conftest.py): alice writes the PRs; mira is a manager and owns flags/ (@acme/web); quinn
is QA; sam is a staff engineer; cora is compliance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gitops_flags.flagd import served_state

from .conftest import T_APPLY, Actions, Lifecycle, StoreFiles, replace_once
from .github_double import ApiError, GitHubDouble

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


def checked(lc: Lifecycle, double: GitHubDouble, number: int,
            event: str = "pull_request_review.submitted") -> str:
    """Run `check` for PR `number` on `event`; the state of the status it left on the PR's head."""
    job = lc.check(number, event)
    assert job.code == 0, job
    return str(last_status(double, double.pulls[number].head_sha).state)


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


# --- the merge queue ----------------------------------------------------------------------------------
# GitHub's queue (tests/e2e/github_double.py, `enqueue`/`land`): each queued PR gets a temporary branch
# `gh-readonly-queue/main/pr-<N>-<sha>` whose head is main plus every PR ahead of it plus this one, and a
# `merge_group` event; `check` posts the required status on that head; landing fast-forwards main.

LEGACY = "flags/legacy_export.yaml"


def queue_status(double: GitHubDouble, sha: str) -> tuple[str, str]:
    status = last_status(double, sha)
    assert status.context == "gitops-flags: main", status
    return status.state, status.description


def test_queue_a_group_with_an_unapproved_pr_is_not_success_and_is_never_served(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """#1 (approved) and #2 (two changes, no approval) are queued together. The group that holds #2 fails
    its required check; an admin lands it anyway: #1 is served, neither change of #2 is."""
    lc = started(double, actions, tmp_path)
    tour = replace_once(main_text(double, ONBOARDING), "  staging:\n    enabled: true",
                        "  staging:\n    enabled: false")
    one = double.open_pull("alice", "alice/quiet-tour", {ONBOARDING: tour}, "Quiet tour in staging")
    approve(double, one.number, "wendy")  # a code owner: all a staging change needs
    dark = replace_once(main_text(double, DARK), "  production:\n    enabled: true",
                        "  production:\n    enabled: false")
    legacy = replace_once(main_text(double, LEGACY), "  staging:\n    enabled: false",
                          "  staging:\n    enabled: true")
    two = double.open_pull("alice", "alice/tidy", {DARK: dark, LEGACY: legacy}, "Tidy up")
    before = lc.read_store()

    first, second = double.enqueue(one.number, two.number, by="pat")
    assert second.base_sha == first.base_sha == double.branch_sha("main")
    assert double.git.is_ancestor(first.head_sha, second.head_sha)  # #2's group holds #1
    job = lc.check_group(first)
    assert job.code == 0, job
    assert queue_status(double, first.head_sha) == ("success", "the group (#1) would apply as approved")
    job = lc.check_group(second)
    assert job.code == 1, job
    state, description = queue_status(double, second.head_sha)
    assert state == "failure" and description.startswith("2 change(s) would not be applied"), description
    assert "PR #2" in description
    with pytest.raises(ApiError):  # GitHub does not land a group whose required check failed
        double.land(second, "pat")

    double.land(second, "pat", admin=True)  # an admin bypass
    assert (one.merged, two.merged) == (True, True)
    assert (one.merge_commit_sha, two.merge_commit_sha) == (first.head_sha, second.head_sha)
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    after = lc.read_store()
    assert after.flag("production", "dark_mode") == before.flag("production", "dark_mode")
    assert after.flag("staging", "legacy_export") == before.flag("staging", "legacy_export")
    assert after.flag("staging", "onboarding_tour") != before.flag("staging", "onboarding_tour")
    blocked = lines(after, two.number)
    assert {(r["key"], r["environment"]) for r in blocked} >= {("dark_mode", "production"),
                                                                ("legacy_export", "staging")}
    assert all(r["outcome"] == "blocked" and r["merge_commit"] == second.head_sha for r in blocked)
    assert all(r["outcome"] == "applied" for r in lines(after, one.number))
    comment = apply_comment(double, two.number)
    assert "blocked" in comment and "dark_mode" in comment and "legacy_export" in comment


def test_queue_a_group_whose_merge_is_not_the_approved_head_is_blocked(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """#2 is approved for dark mode off in production. #1, ahead of it in the queue, edits the same file
    (approved too). In the group #2's file holds both edits: not the file #2's reviewers saw."""
    lc = started(double, actions, tmp_path)
    text = main_text(double, DARK)
    staged = replace_once(text, "  staging:\n", "  staging:\n    default_variant: \"off\"\n")
    one = double.open_pull("alice", "alice/dark-staging", {DARK: staged}, "Dark off in staging")
    approve(double, one.number, "wendy")
    off = replace_once(text, "  production:\n    enabled: true", "  production:\n    enabled: false")
    two = double.open_pull("alice", "alice/dark-off", {DARK: off}, "Dark mode off in production")
    approve(double, two.number, "mira")  # a manager who owns it: a kill switch needs no QA
    job = lc.check(two.number, "pull_request_review.submitted")
    assert job.code == 0, job
    assert last_status(double, two.head_sha).state == "success"  # approved on its own

    first, second = double.enqueue(one.number, two.number, by="mira")
    merged = double.read(second.head_sha, DARK)
    assert merged is not None and merged.decode() not in (staged, off)  # both edits
    assert lc.check_group(first).code == 0
    assert queue_status(double, first.head_sha)[0] == "success"
    job = lc.check_group(second)
    assert job.code == 1, job
    state, description = queue_status(double, second.head_sha)
    assert state == "failure", description
    assert f"{DARK} as landed at {second.head_sha[:12]} is not the file PR #2 approved" in description

    double.land(first, "mira")  # #1's own group passed: it lands alone
    double.land(second, "pat", admin=True)  # #2's group is landed anyway
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "ENABLED"  # #2 never served
    assert store.flag("staging", "dark_mode")["defaultVariant"] == "off"  # #1 is
    audit = [r for r in lines(store, two.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "blocked" for r in audit)
    assert "is not the file PR #2 approved" in audit[0]["reason"]


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_queue_two_approved_prs_land_together(
        double: GitHubDouble, actions: Actions, tmp_path: Path, method: str) -> None:
    """The legitimate path, with each merge method a queue can use: the group's status is success, apply
    serves both PRs and its audit names each."""
    lc = started(double, actions, tmp_path)
    off = replace_once(main_text(double, DARK), "  production:\n    enabled: true",
                       "  production:\n    enabled: false")
    one = double.open_pull("alice", "alice/dark-off", {DARK: off}, "Dark mode off in production")
    approve(double, one.number, "mira")
    tour = replace_once(main_text(double, ONBOARDING), "  staging:\n    enabled: true",
                        "  staging:\n    enabled: false")
    two = double.open_pull("alice", "alice/quiet-tour", {ONBOARDING: tour}, "Quiet tour in staging")
    approve(double, two.number, "wendy")

    _, second = double.enqueue(one.number, two.number, by="mira", method=method)
    job = lc.check_group(second)
    assert job.code == 0, job
    assert queue_status(double, second.head_sha) == ("success", "the group (#1, #2) would apply as approved")
    double.land(second, "mira")
    assert double.branch_sha("main") == second.head_sha
    assert not double.git.run("for-each-ref", "refs/heads/gh-readonly-queue/").strip()  # branches deleted

    job = lc.apply(T_LATER)
    assert job.code == 0, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "DISABLED"
    assert served_state(store.flag("staging", "onboarding_tour")) == "DISABLED"
    by_pr = {r["pr"]: r for r in store.audit() if r.get("pr") in (one.number, two.number)}
    assert set(by_pr) == {one.number, two.number}
    assert all(r["outcome"] == "applied" and r["approval"] == "verified" for r in by_pr.values())
    assert by_pr[one.number]["approvers"]["manager"] == ["mira"]
    assert by_pr[two.number]["approvers"] == {"owner": ["wendy"]}
    assert by_pr[two.number]["merge_commit"] == second.head_sha


def test_queue_a_forged_queue_branch_cannot_lend_another_bases_approvals(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """Anyone who can push may create a branch named like a queue entry (GitHub does not reserve the
    `gh-readonly-queue/` prefix). The attacker queues #1 (dark mode off in production, unapproved) ahead
    of an approved #3, and points a forged `gh-readonly-queue/main/pr-2-…` at #1's entry: #2 carries the
    same file into the unprotected branch `evil` (where it is only a description edit) and is approved
    there. The group's check must not judge #1's commit as #2's."""
    lc = started(double, actions, tmp_path)
    off = replace_once(main_text(double, DARK), "  production:\n    enabled: true",
                       "  production:\n    enabled: false")
    reworded = replace_once(off, "description: ", "description: (reworded) ")
    sneak = double.open_pull("alice", "alice/sneak", {DARK: reworded}, "Reword")
    double.commit("evil", {DARK: off}, "off", "alice", parent=double.branch_sha("main"))
    decoy = double.open_pull("alice", "alice/wording", {DARK: reworded}, "Reword", base_ref="evil")
    approve(double, decoy.number, "mira", "quinn")  # approved for a description edit on `evil`
    tour = replace_once(main_text(double, ONBOARDING), "  staging:\n    enabled: true",
                        "  staging:\n    enabled: false")
    legit = double.open_pull("alice", "alice/quiet-tour", {ONBOARDING: tour}, "Quiet tour in staging")
    approve(double, legit.number, "wendy")

    first, last = double.enqueue(sneak.number, legit.number, by="pat")
    forged = f"refs/heads/gh-readonly-queue/main/pr-{decoy.number}-{first.base_sha}"
    double.git.run("update-ref", forged, first.head_sha)
    assert forged > first.ref  # listed after the real entry, so it would win
    job = lc.check_group(last)
    assert job.code == 1, job
    state, description = queue_status(double, last.head_sha)
    assert state == "failure" and "no merged pull request" in description, description

    double.land(last, "pat", admin=True)
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "ENABLED"
    assert all(r["outcome"] == "blocked" for r in lines(store, sneak.number))
    assert all(r["outcome"] == "applied" for r in lines(store, legit.number))


# --- variations an attacker tries next ---------------------------------------------------------------

STAFF_RULE = ('    rules:\n      - {name: staff, when: {attribute: email, operator: ends_with, '
              'value: "@acme.com"}, variant: "off"}\n')


def test_route3_a_hand_made_merge_that_takes_the_prs_file_cannot_undo_a_kill_switch(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """#1 adds a production rule to dark mode; a manager and QA approve it. Then an incident: #2 turns
    production off (the kill switch) and lands. An admin merges #1 by hand taking #1's file whole, which
    turns production back on. The file is byte for byte #1's approved head, but the change it makes starts
    from `off`: not the change #1's reviewers saw."""
    lc = started(double, actions, tmp_path)
    text = main_text(double, DARK)
    ruled = replace_once(text, "  production:\n    enabled: true\n", "  production:\n    enabled: true\n"
                         + STAFF_RULE)
    one = double.open_pull("alice", "alice/staff-rule", {DARK: ruled}, "Staff see dark mode off")
    approve(double, one.number, "mira", "quinn")
    kill = replace_once(text, "  production:\n    enabled: true", "  production:\n    enabled: false")
    two = double.open_pull("alice", "alice/incident", {DARK: kill}, "Incident: dark mode off")
    approve(double, two.number, "mira")
    double.merge(two.number, "mira")
    assert lc.apply(T_LATER).code == 0
    assert served_state(lc.read_store().flag("production", "dark_mode")) == "DISABLED"

    merge = double.merge_edited(one.number, "pat", {DARK: ruled})  # the PR's side of the conflict, whole
    assert double.read(merge, DARK) == ruled.encode()
    job = lc.apply("2026-11-24T12:00:00Z")
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "DISABLED"  # the kill switch holds
    audit = [r for r in lines(store, one.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "blocked" for r in audit), audit
    assert "starts from another state" in audit[0]["reason"]

    # The legitimate path: the rule proposed again on top of the kill switch, approved, merged.
    three = double.open_pull("alice", "alice/staff-rule-2", {DARK: kill + STAFF_RULE}, "Staff rule, again")
    approve(double, three.number, "mira", "quinn")
    double.merge(three.number, "mira")
    job = lc.apply("2026-11-24T13:00:00Z")
    assert job.code == 0, job
    store = lc.read_store()
    assert all(r["outcome"] == "applied" for r in lines(store, three.number))
    assert served_state(store.flag("production", "dark_mode")) == "DISABLED"
