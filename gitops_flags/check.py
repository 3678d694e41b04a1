"""Judging a pull request: its changes, under the policy and CODEOWNERS of its base (never its head), against
its reviews → an `Evaluation`. `check` judges an open PR here (`evaluate_current`); `apply` judges the PR
that merged a commit (`evaluate_landed`), and a merge queue's group is judged the same way.

Pure but for the `PullPort`, through which everything beyond the PR's description, files and reviews is
read: files at a commit, team members, the PR's history, a branch's head. Each is asked for only when its
answer can change the outcome (with no review that counts, no team is looked up and no history read), so
the number of requests the GitHub adapter (`github.pulls`) sends is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from . import approvals, changes, codeowners, two_policies, validate
from .model import POLICY_PATH
from .reconcile import MergedPull
from .result import Evaluation
from .snapshot import DECISIVE_STATES, PullInfo, PullSnapshot, Review, TeamLookup, normalize_login
from .tree import Tree


@dataclass(frozen=True)
class PullHistory:
    """What the PR's timeline says about its reviews: when its base branch last changed (an approval
    given before approved the change against another base), and who pushed its head (None: unknown)."""

    base_changed_at: str | None = None
    last_pushers: frozenset[str] | None = frozenset()


class PullPort(Protocol):
    """What judging a PR may still read, on demand (the GitHub adapter; a fake in tests)."""

    def tree(self, sha: str) -> Tree:
        """The repository's files at a commit."""
        ...

    def read(self, sha: str, path: str) -> bytes | None:
        """One file at a commit (stale approvals compare files at review commits)."""
        ...

    def merge_base(self, base: str, commit: str) -> str | None:
        """The merge base of two commits; None when it cannot be known."""
        ...

    def team_members(self, teams: Iterable[str]) -> dict[str, TeamLookup]:
        """The members of each `org/slug` team, or why they could not be read."""
        ...

    def history(self, number: int, head_sha: str, pushers: bool) -> PullHistory:
        """The PR's history; who pushed `head_sha` only when `pushers` (else an empty set)."""
        ...

    def branch_head(self, branch: str) -> str | None:
        """The branch's head commit; None when the branch does not exist."""
        ...


def voters(reviews: Iterable[Review], author: str, allow_author: bool) -> set[str]:
    """The logins whose decisive reviews can count: with none, nothing about people needs reading."""
    found = {normalize_login(r.user) for r in reviews if r.user and r.state in DECISIVE_STATES}
    if not allow_author:
        found.discard(normalize_login(author))
    return found


def teams_to_read(
    needed: Iterable[str], reviews: Iterable[Review], author: str, allow_author: bool
) -> set[str]:
    """The needed teams whose members can matter: only a decisive review's author is ever checked against a
    team, so with no such review no lookup can change the outcome (and none is sent)."""
    return set(needed) if voters(reviews, author, allow_author) else set()


def evaluate_pull(pull: PullInfo, changed: Sequence[str], reviews: Sequence[Review], port: PullPort,
                  config: str = POLICY_PATH, policy_at: str | None = None) -> Evaluation:
    """Policy and CODEOWNERS at the base commit (or at `policy_at`: the base branch's head, the commit a
    PR landed on), flag files at base and head, the teams the policy needs → the PR's Evaluation. The
    policy and CODEOWNERS are never read at the head. `changed` lists every path the PR touches."""
    base = port.tree(pull.base_sha)
    rules_at = policy_at or pull.base_sha
    rules = port.tree(rules_at)
    policy, policy_problems = validate.read_policy(rules, config)
    if policy is None:
        message = f"the policy {config} at {rules_at[:7]} cannot be used"
        return Evaluation("invalid", problems=tuple(policy_problems), message=message)
    owners = codeowners.find_codeowners(rules)
    head = port.tree(pull.head_sha)
    diff = changes.diff(base, head, policy, changed=changed, policy_path=config)
    needed = approvals.teams_needed(policy, diff.changes, owners, labels=pull.labels)
    wanted = teams_to_read(needed, reviews, pull.author, policy.options.allow_author)
    teams = port.team_members(wanted) if wanted else {}
    for team in needed:
        teams.setdefault(team.lower(), TeamLookup(frozenset()))  # nobody's membership is in question
    # Whether the base changed since a review, and who pushed the head, matter only for reviews that count.
    history = PullHistory()
    if voters(reviews, pull.author, policy.options.allow_author):
        history = port.history(pull.number, pull.head_sha, not policy.options.last_pusher_can_approve)
    base_sha = pull.base_sha
    snapshot = PullSnapshot(
        author=pull.author,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        number=pull.number,
        labels=pull.labels,
        reviews=tuple(reviews),
        teams=teams,
        read=port.read,
        url=pull.html_url,
        merge_base=lambda commit: port.merge_base(base_sha, commit),
        base_changed_at=history.base_changed_at,
        last_pushers=history.last_pushers,
    )
    problems = [*policy_problems, *diff.problems]
    return approvals.evaluate(diff.changes, policy, owners, snapshot, problems=problems)


def evaluate_current(pull: PullInfo, changed: Sequence[str], reviews: Sequence[Review], port: PullPort,
                     config: str = POLICY_PATH) -> Evaluation:
    """`evaluate_pull`, and when the PR's base is behind its base branch and the branch's policy or
    CODEOWNERS have changed since, under those too: a policy tightened after the PR was opened binds it
    (apply will require both). The evaluation says so."""
    evaluation = evaluate_pull(pull, changed, reviews, port, config)
    if not (evaluation.changes and pull.base_ref and voters(reviews, pull.author, allow_author=False)):
        return evaluation  # nobody's review counts yet: no policy can approve, one request saved
    tip = port.branch_head(pull.base_ref)
    if tip is None or tip == pull.base_sha:
        return evaluation
    if two_policies.same_rules(port.tree(pull.base_sha), port.tree(tip), config):
        return evaluation
    current = evaluate_pull(pull, changed, reviews, port, config, policy_at=tip)
    branch = pull.base_ref
    combined = two_policies.combine(
        evaluation, f"under the PR's base policy (at {pull.base_sha[:7]})",
        current, f"under {branch}'s current policy (at {tip[:7]}; the PR's base is behind)",
    )
    note = (f"the PR's base {pull.base_sha[:7]} is behind {branch} ({tip[:7]}), whose policy or CODEOWNERS "
            f"changed since: the changes need the approvals of both (apply requires it too)")
    return replace(combined, warnings=(*combined.warnings, note))


def evaluate_landed(landed: MergedPull, pull: PullInfo, changed: Sequence[str], reviews: Sequence[Review],
                    port: PullPort, config: str = POLICY_PATH, policy_at: str | None = None) -> Evaluation:
    """A PR that landed (or waits in a merge queue), judged as it was when it merged: at the head that
    merged and against the base recorded then, not at whatever the PR shows now."""
    at_merge = replace(pull, head_sha=landed.head_sha, base_sha=landed.base_sha or pull.base_sha)
    return evaluate_pull(at_merge, changed, reviews, port, config, policy_at)
