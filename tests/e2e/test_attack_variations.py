"""Variations on the four approval bypasses of issue 11 (tests/e2e/test_attacks.py stages the originals),
as real `check` and `apply` processes against the GitHub double. Each asserts what is served (or not) and
what the audit or the status says, and where there is one, that the legitimate path still works.

People (tests/e2e/conftest.py): alice writes the PRs; mira is a manager and owns flags/ (@acme/web); quinn
is QA; pat is an admin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_flags.flagd import served_state

from .conftest import T_APPLY, Actions, Lifecycle, replace_once
from .github_double import GitHubDouble
from .test_attacks import (
    DARK,
    ONBOARDING,
    T_LATER,
    apply_comment,
    approve,
    checked,
    last_status,
    lines,
    main_text,
    started,
)

POLICY = ".github/gitops-flags.yml"
SNEAK = "flags/sneak.yaml"
SNEAK_FLAG = """\
key: sneak
name: Sneak
description: A flag no reviewer saw.
owner: "@acme/web"
type: boolean
variants:
  "on": true
  "off": false
default_variant: "on"
environments:
  staging:
    enabled: true
  production:
    enabled: true
"""


def dark_off(double: GitHubDouble) -> str:
    return replace_once(main_text(double, DARK), "  production:\n    enabled: true",
                        "  production:\n    enabled: false")


def started_with(double: GitHubDouble, actions: Actions, tmp_path: Path, stale_approvals: str) -> Lifecycle:
    """`started`, with the adopted policy's `stale_approvals` set to the given mode."""
    lc = Lifecycle(double, actions, f"file:{tmp_path / 'flag-store'}")
    lc.setup()
    if stale_approvals != "content":  # the adopting commit itself holds the mode (no later direct push)
        policy = replace_once(main_text(double, POLICY), "stale_approvals: content",
                              f"stale_approvals: {stale_approvals}")
        (blob,) = double.git.hash_objects([policy.encode()])
        tree = double.git.write_tree(lc.seed, {POLICY: ("100644", blob)})
        who = double.user("pat").identity
        lc.seed = double.git.commit_tree(tree, [], "Adopt gitops-flags", who, who, double.clock.tick())
        double.git.run("update-ref", "refs/heads/main", lc.seed)
    job = lc.apply(T_APPLY)
    assert job.code == 0, job
    return lc


# --- route 1: a rebase merge replays an intermediate commit that adds a flag the head deletes --------------


def test_route1_a_flag_added_and_deleted_inside_a_rebased_pr_is_never_served(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """Commit 1 adds a new flag `sneak` (on in production) and rewords the tour; commit 2 deletes `sneak`.
    The head, approved, only rewords the tour. "Rebase and merge" replays both commits on main: the first
    landed commit's tree holds `sneak`, which must never reach the store."""
    lc = started(double, actions, tmp_path)
    reworded = replace_once(main_text(double, ONBOARDING), "description: ", "description: (reworded) ")
    pull = double.open_pull("alice", "alice/tour-words", {ONBOARDING: reworded, SNEAK: SNEAK_FLAG}, "Words")
    double.push(pull.number, {SNEAK: None}, "Drop the extra flag")
    assert double.read(pull.head_sha, SNEAK) is None
    approve(double, pull.number, "mira", "quinn")
    assert checked(lc, double, pull.number) == "success"

    double.merge(pull.number, "mira", method="rebase")
    first, last = double.pulls[pull.number].landed
    assert double.read(first, SNEAK) == SNEAK_FLAG.encode()  # the replayed intermediate commit holds it
    job = lc.apply(T_LATER)
    assert job.code == 0, job  # the approved end state applies

    store = lc.read_store()
    for env in ("staging", "production"):
        assert store.flag(env, "sneak") is None  # never served, in any environment
        assert "(reworded)" in str(store.flag(env, "onboarding_tour"))
    audit = lines(store, pull.number)
    sneaky = [r for r in audit if r["key"] == "sneak"]
    assert {(r["merge_commit"], r["environment"], r["outcome"]) for r in sneaky} == {
        (first, "staging", "skipped"), (first, "production", "skipped")}
    assert all(f"intermediate state of PR #{pull.number}" in r["reason"] and "never" in r["reason"]
               for r in sneaky), sneaky
    tour = [r for r in audit if r["key"] == "onboarding_tour" and r["merge_commit"] == last]
    assert {r["environment"] for r in tour} == {"staging", "production"}
    assert all(r["outcome"] == "applied" and r["approval"] == "verified" for r in tour), tour
    assert "never served" in apply_comment(double, pull.number)


# --- route 2: retargeted away and back -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["content", "commit", "keep"])
def test_route2_retargeted_away_and_back_the_old_approvals_do_not_count(
        double: GitHubDouble, actions: Actions, tmp_path: Path, mode: str) -> None:
    """A PR into main is approved, then retargeted to `release` and back to main. Its base is main again and
    its head never moved, but each retarget is a `base_ref_changed`: the approvals predate it (policy.md,
    "Stale approvals": stale in every mode, `keep` too). An admin merges anyway: apply blocks it."""
    lc = started_with(double, actions, tmp_path, mode)
    assert f"stale_approvals: {mode} " in main_text(double, POLICY)
    double.commit("release", {}, "branch", "pat", parent=double.branch_sha("main"))
    pull = double.open_pull("alice", "alice/off", {DARK: dark_off(double)}, "Dark mode off")
    approve(double, pull.number, "mira")  # a kill switch needs the manager only
    assert checked(lc, double, pull.number) == "success"

    double.retarget(pull.number, "release", "alice")
    double.retarget(pull.number, "main", "alice")
    assert [e.event for e in double.pulls[pull.number].events] == ["base_ref_changed"] * 2
    job = lc.check(pull.number, "pull_request.edited.base-changed")
    assert job.code == 0, job
    status = last_status(double, pull.head_sha)
    assert (status.context, status.state) == ("gitops-flags: main", "pending"), status
    sticky = next(c.body for c in double.issue_comments(pull.number) if c.body.startswith("<!-- gitops"))
    assert "base branch was changed" in sticky

    double.merge(pull.number, "pat")
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "ENABLED"  # the old state still served
    audit = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "blocked" for r in audit), audit
    assert "base branch was changed" in audit[0]["reason"]
    assert "base branch was changed" in apply_comment(double, pull.number)


def test_route2_retargeted_away_and_back_a_new_approval_counts(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    lc = started(double, actions, tmp_path)
    double.commit("release", {}, "branch", "pat", parent=double.branch_sha("main"))
    pull = double.open_pull("alice", "alice/off", {DARK: dark_off(double)}, "Dark mode off")
    approve(double, pull.number, "mira")
    double.retarget(pull.number, "release", "alice")
    double.retarget(pull.number, "main", "alice")
    approve(double, pull.number, "mira")  # seen again, after the last base change
    assert checked(lc, double, pull.number) == "success"
    double.merge(pull.number, "mira")
    assert lc.apply(T_LATER).code == 0
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "DISABLED"
    applied = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert applied and all(r["outcome"] == "applied" and r["approval"] == "verified" for r in applied)


# --- route 3 (the approval itself): a dismissed approval -------------------------------------------------


def test_route3_a_dismissed_approval_does_not_count(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """The manager approves the kill switch; a maintainer dismisses that review (its state becomes
    DISMISSED, no new review); an admin merges anyway."""
    lc = started(double, actions, tmp_path)
    pull = double.open_pull("alice", "alice/off", {DARK: dark_off(double)}, "Dark mode off")
    review = double.review(pull.number, "mira", "APPROVED")
    assert checked(lc, double, pull.number) == "success"  # before the dismissal

    double.dismiss(pull.number, review.id, "pat")
    assert [r.state for r in double.pulls[pull.number].reviews] == ["DISMISSED"]
    assert checked(lc, double, pull.number, "pull_request_review.dismissed") == "pending"

    double.merge(pull.number, "pat")
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert served_state(store.flag("production", "dark_mode")) == "ENABLED"
    audit = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "blocked" for r in audit), audit
    assert "waiting for manager" in audit[0]["reason"] and "mira" not in audit[0]["reason"]
    assert "blocked" in apply_comment(double, pull.number)


def test_route3_an_approval_given_again_after_a_dismissal_counts(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    lc = started(double, actions, tmp_path)
    pull = double.open_pull("alice", "alice/off", {DARK: dark_off(double)}, "Dark mode off")
    double.dismiss(pull.number, double.review(pull.number, "mira", "APPROVED").id, "pat")
    approve(double, pull.number, "mira")  # a new review: the dismissed one stays DISMISSED
    assert [r.state for r in double.pulls[pull.number].reviews] == ["DISMISSED", "APPROVED"]
    assert checked(lc, double, pull.number) == "success"


# --- route 4 (the head): force-pushed away and back ---------------------------------------------------------


@pytest.mark.parametrize("back", ["a-itself", "a-new-commit-with-a-tree"])
def test_route4_force_pushed_back_to_the_approved_content_is_served_and_the_detour_never(
        double: GitHubDouble, actions: Actions, tmp_path: Path, back: str) -> None:
    """Approved at head A (the kill switch). The author pushes B (production off, and a description nobody
    approved), then force-pushes the branch back to A, or to a new commit with A's exact tree. Approvals
    approve content (policy.md, `stale_approvals: content`): the head's files are A's, so the approval
    holds; B's content never reaches the store."""
    lc = started(double, actions, tmp_path)
    off = dark_off(double)
    pull = double.open_pull("alice", "alice/off", {DARK: off}, "Dark mode off")
    a = pull.head_sha
    approve(double, pull.number, "mira")
    b = double.push(pull.number, {DARK: replace_once(off, "description: ", "description: (B) ")}, "Words")
    assert lc.check(pull.number, "pull_request.synchronize").code == 0
    assert last_status(double, b).state == "pending"  # B is not approved

    c = double.force_push(pull.number, a if back == "a-itself" else {DARK: off}, "alice")
    assert (c == a) == (back == "a-itself")
    assert double.git.rev(f"{c}^{{tree}}") == double.git.rev(f"{a}^{{tree}}")
    assert double.pulls[pull.number].commits == [c]
    assert [e.event for e in double.pulls[pull.number].events] == ["head_ref_force_pushed"]
    job = lc.check(pull.number, "pull_request.synchronize")
    assert job.code == 0, job
    assert last_status(double, c).state == "success"  # A's content, approved at A

    double.merge(pull.number, "mira")
    assert lc.apply(T_LATER).code == 0
    store = lc.read_store()
    served = store.flag("production", "dark_mode")
    assert served is not None and served_state(served) == "DISABLED"
    assert served["metadata"]["gitopsDescription"] == "Offers the dark colour theme in account settings."
    audit = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "applied" and r["approval"] == "verified" for r in audit), audit


def test_route4_force_pushed_to_unapproved_content_and_merged_is_blocked(
        double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    """Approved at head A; the author force-pushes B (production back on by default but with a staff rule
    nobody saw) and an admin merges before any check runs."""
    lc = started(double, actions, tmp_path)
    off = dark_off(double)
    pull = double.open_pull("alice", "alice/off", {DARK: off}, "Dark mode off")
    a = pull.head_sha
    approve(double, pull.number, "mira")
    assert checked(lc, double, pull.number) == "success"
    before = lc.read_store()

    other = replace_once(off, '  production:\n    enabled: false\n', '  production:\n    enabled: true\n'
                         '    default_variant: "off"\n')
    b = double.force_push(pull.number, {DARK: other}, "alice")
    assert double.pulls[pull.number].commits == [b]
    double.merge(pull.number, "pat")
    job = lc.apply(T_LATER)
    assert job.code == 1, job
    store = lc.read_store()
    assert store.flag("production", "dark_mode") == before.flag("production", "dark_mode")  # B never served
    audit = [r for r in lines(store, pull.number) if r["environment"] == "production"]
    assert audit and all(r["outcome"] == "blocked" for r in audit), audit
    assert f"approval by mira is stale (files changed since {a[:7]})" in audit[0]["reason"]
    assert "blocked" in apply_comment(double, pull.number)
