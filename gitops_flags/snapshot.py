"""Everything the approval evaluator needs to know about a pull request, as frozen values.

`PullInfo` is the PR as GitHub describes it; `PullSnapshot` adds what the evaluator reads about it
(reviews, team members, history). The GitHub adapter builds them once per run (few requests); tests build
them by hand. Nothing in here performs I/O except through the `ContentReader` the builder supplies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# (commit sha, path) -> bytes, or None when the file does not exist at that commit
ContentReader = Callable[[str, str], bytes | None]
# commit sha -> its merge base with the PR's current base (the "before" side of the change a review
# saw); None when it cannot be known
MergeBase = Callable[[str], str | None]

DECISIVE_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


def normalize_login(login: str) -> str:
    """The one form logins are compared in, everywhere: GitHub logins are case-insensitive, and a
    hand-written `--pull` file may carry spaces or an `@` (`" maria"` is maria)."""
    return login.strip().removeprefix("@").strip().casefold()


@dataclass(frozen=True)
class PullInfo:
    """A pull request's description: who opened it, which commits it joins, how it stands."""

    number: int
    author: str
    head_sha: str
    base_sha: str
    base_ref: str
    head_repo: str  # owner/name; "" when the fork was deleted
    base_repo: str
    labels: frozenset[str]
    requested_users: frozenset[str]  # lower-case logins
    requested_teams: frozenset[str]  # lower-case slugs (of the base repository's organization)
    changed_files: int
    state: str
    draft: bool
    html_url: str
    comments: int | None = None  # issue comments on the PR; 0 means there is no sticky comment to look for

    @property
    def from_fork(self) -> bool:
        return self.head_repo.lower() != self.base_repo.lower()


@dataclass(frozen=True)
class Review:
    id: int
    user: str  # login; "" when GitHub returns user: null (a deleted account): never counts
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING (upper case)
    commit_id: str | None
    submitted_at: str | None = None
    is_bot: bool = False
    body: str = ""

    @classmethod
    def from_github(cls, obj: Mapping[str, Any]) -> Review:
        """From a REST `pull-request-review` object or a webhook `review` (lower-case state)."""
        user = obj.get("user") or {}
        login = str(user.get("login") or "").strip().removeprefix("@").strip()
        return cls(
            id=int(obj.get("id") or 0),
            user=login,
            state=str(obj.get("state") or "").upper(),
            commit_id=obj.get("commit_id"),
            submitted_at=obj.get("submitted_at"),
            is_bot=user.get("type") == "Bot" or login.endswith("[bot]"),
            body=str(obj.get("body") or ""),
        )


@dataclass(frozen=True)
class TeamLookup:
    """Members of one `org/slug` team, or why they could not be read (never guessed)."""

    members: frozenset[str] | None
    error: str | None = None  # e.g. "needs a token with members:read on the organization"

    @property
    def known(self) -> bool:
        return self.members is not None


def _no_content(sha: str, path: str) -> bytes | None:
    return None


def _no_merge_base(commit: str) -> str | None:
    return None  # unknown: an approval given on another commit cannot be shown to hold (it goes stale)


@dataclass(frozen=True)
class PullSnapshot:
    author: str
    head_sha: str
    base_sha: str = ""
    number: int = 0
    labels: frozenset[str] = frozenset()
    reviews: tuple[Review, ...] = ()
    teams: Mapping[str, TeamLookup] = field(default_factory=dict)  # keyed "org/slug", lower case
    read: ContentReader = _no_content
    url: str = ""
    merge_base: MergeBase = _no_merge_base
    # When the PR's base branch last changed (a retarget, GitHub's `base_ref_changed`): an approval
    # given before it approved the change against another base.
    base_changed_at: str | None = None
    # Lower-case logins of whoever pushed the head commit (`last_pusher_can_approve: false`); None when
    # the builder did not look them up.
    last_pushers: frozenset[str] | None = None

    def team(self, slug: str) -> TeamLookup:
        key = slug.lstrip("@").lower()
        found = self.teams.get(key)
        if found is None:  # a builder that kept GitHub's spelling ("Acme/QA"); slugs are case-insensitive
            found = next((v for k, v in self.teams.items() if k.lstrip("@").lower() == key), None)
        return found or TeamLookup(None, f"team @{key} was not looked up")
