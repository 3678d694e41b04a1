"""The lifecycle again, with the faults a real GitHub and a real scheduler produce (issue #7, item 3).

- `check` meets a 502 and a secondary rate limit (403 with `retry-after`): both requests are retried and
  the report is the same.
- `apply` is killed (SIGKILL) after its first store write, while it waits for GitHub: the re-run (the
  same workflow run, attempt 2) resumes where it stopped and applies nothing twice.
- `advance` loses a race: while it waits for its health gate, a second `advance` runs and writes the
  store first; the first one's compare-and-swap write is refused, it reads again and finds nothing due.

The outcome (store files and audit lines, the PRs' comments, digests and statuses) must equal the fault-free
run's. Alongside, a second world puts the `github-branch:` store through its own faults: a lost answer to
the branch's creation, a ref update refused as "not a fast forward" because another writer moved the
branch, and a lost answer to the ref update that follows. It runs in a thread because PyGithub spaces
write requests one second apart, so a branch write (tree with inline contents, commit, ref) takes about
three seconds whatever the test does.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .conftest import (
    REFERENCE,
    STORE_BRANCH,
    T_ADVANCE,
    T_APPLY,
    T_DIRECT,
    Actions,
    Lifecycle,
    Outcome,
    outcome,
    play_fault_free,
)
from .github_double import GitHubDouble

REPO = "/repos/acme/flags"


def reference_outcome(root: Path) -> Outcome:
    """The fault-free run's outcome: from test_lifecycle when it ran in this session, else run here."""
    if "fault-free" not in REFERENCE:
        with GitHubDouble(root / "github") as double:
            lc = Lifecycle(double, Actions(double, root / "runner"), f"file:{root / 'flag-store'}")
            REFERENCE["fault-free"] = play_fault_free(lc)
    return REFERENCE["fault-free"]


def test_lifecycle_with_faults(double: GitHubDouble, actions: Actions, tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        branch_world: Future[None] = pool.submit(github_branch_store_with_faults, tmp_path / "branch-world")
        reference: Future[Outcome] = pool.submit(reference_outcome, tmp_path / "reference-world")
        lc = Lifecycle(double, actions, f"file:{tmp_path / 'flag-store'}")
        faulted = play_with_faults(lc)
        branch_world.result()
        assert faulted == reference.result()
    assert double.unhandled == []


def play_with_faults(lc: Lifecycle) -> Outcome:
    double = lc.double
    lc.setup()
    lc.open_pr1()

    # check: a 502 on the file list, a secondary rate limit on the commit status.
    bad_gateway = double.inject("GET", rf"{REPO}/pulls/1/files", "502")
    limited = double.inject("POST", rf"{REPO}/statuses/[0-9a-f]{{40}}", "rate_limit", retry_after="1")
    job = lc.check(1, "pull_request.opened")
    assert job.code == 0, job
    assert (bad_gateway.hits, limited.hits) == (1, 1)
    assert [r.status for r in double.requests("GET", rf"{REPO}/pulls/1/files")] == [502, 200]
    statuses = double.requests("POST", rf"{REPO}/statuses/.*")
    assert [r.status for r in statuses] == [403, 201]
    assert statuses[0].body == statuses[1].body  # the same status, sent again after retry-after
    assert len(double.statuses) == 1 and len(double.issue_comments(1)) == 1

    lc.first_reviews()
    lc.check(1, "pull_request_review.submitted")
    lc.push_pr1()
    lc.check(1, "pull_request.synchronize")
    lc.remaining_reviews()
    lc.check(1, "pull_request_review.submitted")
    merge = lc.merge_pr1()

    # apply: killed after its first change (the baseline is written), while it asks GitHub for the merge's PR.
    hold = double.inject("GET", rf"{REPO}/commits/{merge}/pulls", "hold")
    running = lc.apply_job(T_APPLY, run_id=7100)
    assert hold.arrived.wait(60), "apply never asked for the merge's pull request"
    crashed = lc.read_store().json("state.json")
    assert crashed["applied_commit"] == lc.seed  # the first change landed
    running.kill()
    hold.release.set()
    assert running.wait().code < 0  # killed by a signal
    assert len(double.issue_comments(1)) == 1  # nothing reported yet
    job = lc.apply(T_APPLY, run_id=7100, attempt=2)
    assert job.code == 0, job
    audit = lc.read_store().audit()
    assert len({line["unit"] for line in audit}) == len(audit)  # nothing applied twice

    # advance: a concurrent advance writes first, while this one waits for its health gate.
    rival: list[int] = []
    race = double.inject("GET", "//status.acme.example/api/checkout", "race",
                         before=lambda: rival.append(lc.advance(T_ADVANCE[0]).code))
    job = lc.advance(T_ADVANCE[0])
    assert (job.code, rival, race.hits) == (0, [0], 1), job
    lc.advance(T_ADVANCE[1])

    lc.open_pr2()
    lc.pr2_reviews()
    lc.check(2, "pull_request_review.submitted")
    lc.direct_push()
    lc.apply(T_DIRECT)
    return outcome(lc)


def github_branch_store_with_faults(root: Path) -> None:
    """The store on a branch, written through the Git data API, under a lost answer and a lost race."""
    with GitHubDouble(root / "github") as double:
        lc = Lifecycle(double, Actions(double, root / "runner"), f"github-branch:{STORE_BRANCH}")
        lc.setup()  # the policy's adoption: apply takes the flags as they are (the baseline)
        refs = rf"{REPO}/git/refs"
        lost = double.inject("POST", refs, "lost")  # the branch is created, the answer is a 502
        job = lc.apply(T_APPLY)
        assert job.code == 0, job
        assert lost.hits == 1
        creates = double.requests("POST", refs)
        assert [r.status for r in creates] == [502, 422]  # retried: "Reference already exists"
        store_commits = double.git.run("rev-list", f"refs/heads/{STORE_BRANCH}").split()
        assert len(store_commits) == 1  # written once
        store = lc.read_store()
        audit = store.audit()
        assert len(audit) == 30 and len({line["unit"] for line in audit}) == 30
        assert store.json("state.json")["applied_commit"] == lc.seed

        ref = rf"{REPO}/git/refs/heads/{STORE_BRANCH}"
        conflict = double.inject("PATCH", ref, "conflict")  # another writer moves the branch first
        lost_update = double.inject("PATCH", ref, "lost")  # then the winning update's answer is lost
        job = lc.advance(T_ADVANCE[0])
        assert job.code == 0, job
        assert (conflict.hits, lost_update.hits) == (1, 1)
        # refused (not a fast forward); redone on the new head, moved but answered 502; sent again: a no-op;
        # then the second write that clears the delivered notifications from the outbox
        assert [r.status for r in double.requests("PATCH", ref)] == [422, 502, 200, 200]
        # + rival + advance + outbox cleared
        assert len(double.git.run("rev-list", f"refs/heads/{STORE_BRANCH}").split()) == 4
        store = lc.read_store()
        assert store.rollout("new_checkout_flow", "production")["percentage"] == 25  # one stage, not two
        assert store.rollout("search_autocomplete", "staging")["percentage"] == 50
        advanced = [line for line in store.audit() if line.get("command") == "advance"]
        assert sorted(line["flag"] for line in advanced) == ["new_checkout_flow", "search_autocomplete"]
        assert double.unhandled == []
