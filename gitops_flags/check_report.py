"""What `check` reports about a judged pull request, decided once as a `CheckReport`: the commit status,
what happens to the sticky comment, whose reviews are requested, the step outputs and the exit code. The
log, the dry run, the job summary and the GitHub writes (`github.writes`) all render this one value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from . import render
from .result import Evaluation
from .snapshot import PullInfo, Review

# Who can have written a comment with the action's token (besides bots): anyone can paste the marker.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
OUTPUTS_CHANGES_LIMIT = 256 * 1024  # step outputs share a 1 MB budget per job


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    user: str
    user_type: str
    association: str


def find_sticky(comments: Sequence[Comment], pr_author: str) -> Comment | None:
    """The tool's earlier comment: the first that starts with the marker and was written by a bot, or by a
    member/collaborator other than the PR's author (anyone can paste the marker; only these can have
    written it with the action's token)."""
    for c in comments:
        if not c.body.startswith(render.MARKER):
            continue
        trusted = c.association in TRUSTED_ASSOCIATIONS and c.user.lower() != pr_author.lower()
        if c.user_type == "Bot" or trusted:
            return c
    return None


def reviewed_by(reviews: Iterable[Review]) -> frozenset[str]:
    return frozenset(r.user.lower() for r in reviews if r.user)


def review_requests(
    awaited: Iterable[str], pull: PullInfo, reviews: Iterable[Review], owner: str
) -> tuple[list[str], list[str]]:
    """(logins, team slugs) to request: awaited now, not the author, not already requested, not already
    reviewed. Teams of another organization cannot be requested on this repository and are left out.
    Logins and slugs are case-insensitive: each is requested once."""
    done = reviewed_by(reviews) | pull.requested_users | {pull.author.lower()}
    users: dict[str, str] = {}
    teams: dict[str, str] = {}
    for who in awaited:
        name = who.strip().lstrip("@")
        if "/" in name:
            org, _, slug = name.partition("/")
            if org.lower() == owner.lower() and slug and slug.lower() not in pull.requested_teams:
                teams.setdefault(slug.lower(), slug)
        elif name and name.lower() not in done:
            users.setdefault(name.lower(), name)
    return list(users.values()), list(teams.values())


def exit_code(evaluation: Evaluation, fail_on_pending: bool) -> int:
    if evaluation.verdict == "approved":
        return 0
    if evaluation.verdict == "pending":
        return 1 if fail_on_pending else 0
    return 1


def outputs(evaluation: Evaluation) -> dict[str, str]:
    """The step outputs: verdict, the changes (identities only when the whole would be too large) and the
    pending steps."""
    data = evaluation.to_json()["changes"]
    changes_json = json.dumps(data, separators=(",", ":"))
    if len(changes_json) > OUTPUTS_CHANGES_LIMIT:
        data = [{k: c[k] for k in ("kind", "key", "environment", "change_type", "verdict")} for c in data]
        changes_json = json.dumps(data, separators=(",", ":"))
    pending = [
        {"change": c.change.ident(), "step": s.id, "role": s.role, "awaited": list(s.awaited)}
        for c in evaluation.changes
        for s in c.steps
        if s.state == "pending"
    ]
    return {"verdict": evaluation.verdict, "changes": changes_json,
            "pending-steps": json.dumps(pending, separators=(",", ":"))}


CommentAction = Literal["create", "edit", "unchanged", "none"]


@dataclass(frozen=True)
class CheckReport:
    """One PR's check, as every output shows it."""

    evaluation: Evaluation
    links: render.Links
    number: int
    head_sha: str
    context: str  # the commit status's name: one per base branch
    state: str  # the commit status: success, pending, failure, error
    description: str
    comment: str  # the sticky comment's body
    comment_action: CommentAction
    comment_id: int | None  # the sticky comment to edit
    users: tuple[str, ...] = ()  # reviews to request
    teams: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()  # awaited on a draft: requested once it is ready for review
    exit_code: int = 0

    def text(self) -> str:
        """The evaluation for the log."""
        return render.plan_text(self.evaluation)

    def summary(self) -> str:
        return render.job_summary(self.evaluation, self.links)

    def outputs(self) -> dict[str, str]:
        return outputs(self.evaluation)

    def comment_plan(self) -> str:
        """What happens to the sticky comment, in words (the dry run)."""
        return {"create": "create", "edit": f"edit comment {self.comment_id}",
                "unchanged": "unchanged, not edited", "none": "none (nothing to report)"}[self.comment_action]


def report(evaluation: Evaluation, pull: PullInfo, reviews: Sequence[Review], owner: str, links: render.Links,
           sticky: Comment | None, fail_on_pending: bool = False) -> CheckReport:
    """The report on `pull`, given its evaluation and its earlier sticky comment (if any). The comment is
    edited only when its digest changed, and created only when there is something to say."""
    previous = render.parse_digest(sticky.body) if sticky else None
    unchanged = previous is not None and previous == render.digest(evaluation, links)
    worth_a_comment = bool(evaluation.changes or evaluation.problems or evaluation.verdict != "approved")
    action: CommentAction
    if sticky is not None:
        action = "unchanged" if unchanged else "edit"
    else:
        action = "create" if worth_a_comment else "none"
    users, teams = review_requests(render.awaited(evaluation), pull, reviews, owner)
    deferred: list[str] = []
    if pull.draft and (users or teams):  # `ready_for_review` runs the check again and asks then
        deferred, users, teams = [*users, *teams], [], []
    return CheckReport(
        evaluation=evaluation,
        links=links,
        number=pull.number,
        head_sha=pull.head_sha,
        context=f"gitops-flags: {pull.base_ref}",
        state=render.status_state(evaluation),
        description=render.status_description(evaluation),
        comment=render.comment_markdown(evaluation, previous=previous, links=links),
        comment_action=action,
        comment_id=sticky.id if sticky else None,
        users=tuple(users),
        teams=tuple(teams),
        deferred=tuple(deferred),
        exit_code=exit_code(evaluation, fail_on_pending),
    )
