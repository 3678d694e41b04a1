"""The GitHub REST adapter: the only module that imports PyGithub (besides the store's github_branch backend).

PyGithub supplies authentication, GitHub Enterprise Server base URLs, `GithubRetry` (5xx and rate limits,
honouring `retry-after`) and its exceptions. The adapter sends each request itself through PyGithub's
requester, so the number of requests is a property of this module, not of lazy objects: one evaluation
of a PR with at most 100 files and no team lookups costs 6 on its first run (pull, files, reviews, status,
comment, review request: a PR without comments has no sticky comment to list) and 5 on later runs (pull,
files, reviews, comment list, status), plus the edit and a review request only when something changed,
and one page per further 100 files, reviews or comments.

Responses are turned into plain values by the pure `parse_*` functions beside the calls. Errors become
`GitHubError`s whose message names what was attempted and the token permission it needs.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from urllib3 import Retry
from urllib3.exceptions import InvalidHeader

from . import approvals, changes, codeowners, validate
from .model import POLICY_PATH
from .problems import GitopsFlagsError
from .reconcile import MergedPull
from .render import MARKER
from .result import Evaluation
from .snapshot import DECISIVE_STATES, PullSnapshot, Review, TeamLookup, normalize_login
from .tree import Tree

PER_PAGE = 100
FILES_LIMIT = 3000  # pulls/list-files returns at most 3,000 files
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
TEAM_PERMISSION_HELP = (
    "the token needs the 'Members: read' organization permission (GITHUB_TOKEN cannot; use a GitHub App "
    "or PAT)"
)


class GitHubError(GitopsFlagsError):
    """A request failed; the message says what was attempted and what the token needs."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WriteForbidden(GitHubError):
    """A write refused with 403: a read-only token (fork PRs on `pull_request`) or a missing permission."""


class TooManyFiles(GitHubError):
    """The PR changes more files than the API lists: evaluating a partial list would be unsafe."""


class CappedRetry(GithubRetry):
    """`GithubRetry` that also retries PATCH (editing the sticky comment is idempotent) and applies
    `max_rate_limit_wait` to a `retry-after` header too: GithubRetry caps only the waits it computes from a
    rate-limit message, so a `retry-after: 3600` would otherwise hold the job for an hour per retry."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allowed_methods", Retry.DEFAULT_ALLOWED_METHODS | {"GET", "POST", "PATCH"})
        super().__init__(**kwargs)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        if response is not None and self.max_rate_limit_wait is not None:
            try:
                wait = self.get_retry_after(response)
            except InvalidHeader:
                wait = None
            if wait is not None and wait > self.max_rate_limit_wait:
                try:
                    data: Any = json.loads(self.get_content(response, url or ""))
                except ValueError:
                    data = None
                headers = dict(response.headers)
                raise RateLimitExceededExceedsMaxWait(response.status, data, headers, wait=wait)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def production_retry(*, total: int = 5, backoff_factor: float = 1.0, secondary_rate_wait: float = 60,
                     max_rate_limit_wait: float = 300) -> GithubRetry:
    """Retries for real runs: 5xx and rate limits, honouring `retry-after`, at most 5 retries and 5 minutes
    of rate-limit waiting (a job should fail with a clear message rather than hang for an hour). Tests pass
    zero waits; the policy is otherwise the same."""
    return CappedRetry(total=total, backoff_factor=backoff_factor, secondary_rate_wait=secondary_rate_wait,
                       max_rate_limit_wait=max_rate_limit_wait)


def connect(
    api_url: str, token: str | None, *, retry: GithubRetry | None = None, pauses: bool = True
) -> Github:
    """A PyGithub client. Reads are not paced (one evaluation makes about six); writes wait one second
    between each, as GitHub asks of clients that create content, unless GITOPS_FLAGS_WRITE_PAUSE says
    otherwise (seconds; 0 turns it off, e.g. against a GitHub Enterprise Server without secondary limits).
    `pauses=False` drops every pause (tests, benchmarks)."""
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=api_url.rstrip("/"),
        per_page=PER_PAGE,
        retry=retry if retry is not None else production_retry(),
        seconds_between_requests=None,
        seconds_between_writes=write_pause() if pauses else None,
        user_agent="gitops-flags",
        lazy=True,
    )


def write_pause(environ: Mapping[str, str] | None = None) -> float | None:
    raw = (os.environ if environ is None else environ).get("GITOPS_FLAGS_WRITE_PAUSE", "").strip()
    if not raw:
        return 1.0
    try:
        seconds = float(raw)
    except ValueError:
        raise GitopsFlagsError(f"GITOPS_FLAGS_WRITE_PAUSE={raw!r} is not a number of seconds") from None
    if seconds < 0 or seconds != seconds:
        raise GitopsFlagsError(f"GITOPS_FLAGS_WRITE_PAUSE={raw!r} must be 0 or more seconds")
    return seconds or None


# --- plain values from responses (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class PullInfo:
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


def parse_pull(data: Mapping[str, Any]) -> PullInfo:
    head, base = data.get("head") or {}, data.get("base") or {}
    return PullInfo(
        number=int(data["number"]),
        author=str((data.get("user") or {}).get("login") or ""),
        head_sha=str(head.get("sha") or ""),
        base_sha=str(base.get("sha") or ""),
        base_ref=str(base.get("ref") or ""),
        head_repo=str((head.get("repo") or {}).get("full_name") or ""),
        base_repo=str((base.get("repo") or {}).get("full_name") or ""),
        labels=frozenset(str(label.get("name")) for label in data.get("labels") or []),
        requested_users=frozenset(str(u.get("login")).lower() for u in data.get("requested_reviewers") or []),
        requested_teams=frozenset(str(t.get("slug")).lower() for t in data.get("requested_teams") or []),
        changed_files=int(data.get("changed_files") or 0),
        state=str(data.get("state") or ""),
        draft=bool(data.get("draft")),
        html_url=str(data.get("html_url") or ""),
        comments=data["comments"] if isinstance(data.get("comments"), int) else None,
    )


@dataclass(frozen=True)
class FileEntry:
    path: str
    status: str  # added, removed, modified, renamed, copied, changed, unchanged
    previous_path: str | None = None


def parse_files(items: Iterable[Mapping[str, Any]]) -> list[FileEntry]:
    return [
        FileEntry(str(i["filename"]), str(i.get("status") or ""), i.get("previous_filename")) for i in items
    ]


def changed_paths(files: Iterable[FileEntry]) -> list[str]:
    """Every path the PR touches, including the old path of a rename."""
    paths: dict[str, None] = {}
    for f in files:
        paths[f.path] = None
        if f.previous_path:
            paths[f.previous_path] = None
    return list(paths)


@dataclass(frozen=True)
class Comment:
    id: int
    body: str
    user: str
    user_type: str
    association: str


def parse_comment(item: Mapping[str, Any]) -> Comment:
    user = item.get("user") or {}
    return Comment(
        id=int(item["id"]),
        body=str(item.get("body") or ""),
        user=str(user.get("login") or ""),
        user_type=str(user.get("type") or ""),
        association=str(item.get("author_association") or ""),
    )


def find_sticky(comments: Sequence[Comment], pr_author: str) -> Comment | None:
    """The tool's earlier comment: the first that starts with the marker and was written by a bot, or by a
    member/collaborator other than the PR's author (anyone can paste the marker; only these can have
    written it with the action's token)."""
    for c in comments:
        if not c.body.startswith(MARKER):
            continue
        trusted = c.association in TRUSTED_ASSOCIATIONS and c.user.lower() != pr_author.lower()
        if c.user_type == "Bot" or trusted:
            return c
    return None


def next_link(headers: Mapping[str, Any]) -> str | None:
    link = headers.get("link") or headers.get("Link")
    if not link:
        return None
    for part in requests.utils.parse_header_links(str(link)):
        if part.get("rel") == "next":
            return part.get("url")
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


# --- the adapter ---------------------------------------------------------------------------------------


class GitHubClient:
    """One repository on one GitHub host. Every method sends the requests its docstring names."""

    def __init__(self, gh: Github, repository: str) -> None:
        self._requester = gh.requester
        self.repository = repository
        self.owner = repository.split("/", 1)[0]
        self.requests = 0  # requests sent by this adapter (retries not counted)

    # plumbing

    def _call(self, verb: str, url: str, what: str, permission: str, *, params: dict[str, Any] | None = None,
              body: Any = None) -> tuple[dict[str, Any], Any]:
        self.requests += 1
        try:
            return self._requester.requestJsonAndCheck(verb, url, parameters=params, input=body)
        except GithubException as exc:
            raise _error(exc, what, permission, write=verb != "GET") from exc
        except requests.exceptions.RetryError as exc:  # urllib3 gave up: every answer was a 5xx or a 403
            raise GitHubError(f"cannot {what}: GitHub kept failing, and the retries ran out "
                              f"({_reason(exc)}). Re-run the job later.") from exc
        except requests.RequestException as exc:
            raise GitHubError(f"cannot {what}: {type(exc).__name__}: {exc}") from exc

    def _pages(self, url: str, what: str, permission: str, limit: int | None = None) -> list[Any]:
        items: list[Any] = []
        next_url: str | None = url
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        while next_url:
            headers, data = self._call("GET", next_url, what, permission, params=params)
            if not isinstance(data, list):
                raise GitHubError(f"cannot {what}: expected a list from GitHub, got {type(data).__name__}")
            items.extend(data)
            if limit is not None and len(items) >= limit:
                break
            next_url, params = next_link(headers), None  # the next link repeats per_page
        return items

    @property
    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    # reads

    def pull(self, number: int) -> PullInfo:
        """GET /repos/{repo}/pulls/{n}."""
        _, data = self._call("GET", f"{self._repo}/pulls/{number}", f"read pull request #{number}",
                             "pull-requests: read")
        return parse_pull(data)

    def files(self, pull: PullInfo) -> list[FileEntry]:
        """GET /repos/{repo}/pulls/{n}/files, every page. Fails when GitHub lists fewer than the PR has."""
        items = self._pages(f"{self._repo}/pulls/{pull.number}/files", f"list the files of #{pull.number}",
                            "pull-requests: read", limit=None)
        files = parse_files(items)
        listed = len(files)
        if listed >= FILES_LIMIT and pull.changed_files != listed:
            raise TooManyFiles(
                f"pull request #{pull.number} changes {pull.changed_files} files but GitHub lists only "
                f"{listed} (its API stops at {FILES_LIMIT}); a partial list could hide a change, so it is "
                "not evaluated. Split the pull request."
            )
        if pull.changed_files > listed:
            raise TooManyFiles(
                f"GitHub listed {listed} of the {pull.changed_files} files pull request #{pull.number} "
                "changes (it probably changed while being read); a partial list could hide a change, so it "
                "is not evaluated. Re-run the check."
            )
        return files

    def reviews(self, number: int) -> list[Review]:
        """GET /repos/{repo}/pulls/{n}/reviews, every page."""
        items = self._pages(f"{self._repo}/pulls/{number}/reviews", f"list the reviews of #{number}",
                            "pull-requests: read")
        return [Review.from_github(i) for i in items]

    def team_members(self, teams: Iterable[str]) -> dict[str, TeamLookup]:
        """GET /orgs/{org}/teams/{slug}/members per team (paginated): one request per 100 members, and a 403
        or 404 is unambiguous (per-user membership checks answer 404 both for "not a member" and for "cannot
        see the team", which would silently drop approvers)."""
        found: dict[str, TeamLookup] = {}
        for team in sorted({t.lstrip("@").lower() for t in teams}):
            org, _, slug = team.partition("/")
            try:
                items = self._pages(f"/orgs/{quote(org)}/teams/{quote(slug)}/members",
                                    f"read the members of @{team}", "Members: read (organization)")
            except GitHubError as exc:
                if exc.status in (403, 404):
                    found[team] = TeamLookup(None, f"cannot read members of @{team}: {TEAM_PERMISSION_HELP}")
                    continue
                raise
            found[team] = TeamLookup(frozenset(str(i.get("login")) for i in items if i.get("login")))
        return found

    def contents(self, sha: str, path: str) -> bytes | None:
        """GET /repos/{repo}/contents/{path}?ref={sha}: the file's bytes, None when it is not a file there."""
        try:
            _, data = self._call("GET", f"{self._repo}/contents/{quote(path)}", f"read {path} at {sha[:12]}",
                                 "contents: read", params={"ref": sha})
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        return parse_content(data, path)

    def directory(self, sha: str, path: str) -> list[tuple[str, str]]:
        """GET /repos/{repo}/contents/{dir}?ref={sha}: [(path, type)], [] when there is no such directory."""
        try:
            _, data = self._call("GET", f"{self._repo}/contents/{quote(path.rstrip('/'))}",
                                 f"list {path} at {sha[:12]}", "contents: read", params={"ref": sha})
        except GitHubError as exc:
            if exc.status == 404:
                return []
            raise
        if not isinstance(data, list):
            return []
        return [(str(e.get("path")), str(e.get("type"))) for e in data]

    def issue_events(self, number: int) -> list[dict[str, Any]]:
        """GET /repos/{repo}/issues/{n}/events, every page: the only endpoint with `base_ref_changed`
        (the timeline has `head_ref_force_pushed` but not it)."""
        return self._pages(f"{self._repo}/issues/{number}/events", f"list the events of #{number}",
                           "pull-requests: read")

    def pull_commits(self, number: int) -> list[dict[str, Any]]:
        """GET /repos/{repo}/pulls/{n}/commits, every page (GitHub lists at most 250)."""
        return self._pages(f"{self._repo}/pulls/{number}/commits", f"list the commits of #{number}",
                           "pull-requests: read")

    def merge_base(self, base: str, head: str) -> str | None:
        """GET /repos/{repo}/compare/{base}...{head}: `merge_base_commit.sha`."""
        what = f"compare {base[:12]} with {head[:12]}"
        _, data = self._call("GET", f"{self._repo}/compare/{base}...{head}", what, "contents: read",
                             params={"per_page": 1})
        sha = (data.get("merge_base_commit") or {}).get("sha") if isinstance(data, dict) else None
        return str(sha) if sha else None

    def branch_head(self, branch: str) -> str | None:
        """GET /repos/{repo}/git/ref/heads/{branch}: the branch's head commit, None when it does not exist."""
        try:
            _, data = self._call("GET", f"{self._repo}/git/ref/heads/{quote(branch)}",
                                 f"read the head of {branch}", "contents: read")
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        sha = (data.get("object") or {}).get("sha") if isinstance(data, dict) else None
        return str(sha) if sha else None

    def matching_refs(self, prefix: str) -> list[tuple[str, str]]:
        """GET /repos/{repo}/git/matching-refs/{prefix}: [(ref, sha)] of the refs whose names start so."""
        items = self._pages(f"{self._repo}/git/matching-refs/{quote(prefix)}", f"list the refs {prefix}*",
                            "contents: read")
        return [(str(i.get("ref")), str((i.get("object") or {}).get("sha"))) for i in items if i.get("ref")]

    def commit_pulls(self, sha: str) -> list[dict[str, Any]]:
        """GET /repos/{repo}/commits/{sha}/pulls (first page: a commit belongs to few PRs)."""
        _, data = self._call("GET", f"{self._repo}/commits/{sha}/pulls", f"find the PR of commit {sha[:12]}",
                             "pull-requests: read", params={"per_page": PER_PAGE})
        return list(data) if isinstance(data, list) else []

    def comments(self, number: int) -> list[Comment]:
        """GET /repos/{repo}/issues/{n}/comments, every page."""
        items = self._pages(f"{self._repo}/issues/{number}/comments", f"list the comments of #{number}",
                            "pull-requests: read")
        return [parse_comment(i) for i in items]

    # writes

    def create_comment(self, number: int, body: str) -> int:
        """POST /repos/{repo}/issues/{n}/comments."""
        _, data = self._call("POST", f"{self._repo}/issues/{number}/comments", f"comment on #{number}",
                             "pull-requests: write", body={"body": body})
        return int(data["id"])

    def edit_comment(self, comment_id: int, body: str) -> None:
        """PATCH /repos/{repo}/issues/comments/{id}."""
        self._call("PATCH", f"{self._repo}/issues/comments/{comment_id}", f"edit comment {comment_id}",
                   "pull-requests: write", body={"body": body})

    def create_status(
        self, sha: str, state: str, description: str, context: str, target_url: str | None
    ) -> None:
        """POST /repos/{repo}/statuses/{sha}."""
        body = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        self._call("POST", f"{self._repo}/statuses/{sha}", f"set the commit status on {sha[:12]}",
                   "statuses: write", body=body)

    def request_reviewers(self, number: int, users: Sequence[str], teams: Sequence[str]) -> str | None:
        """POST /repos/{repo}/pulls/{n}/requested_reviewers. A 422 (someone who is not a collaborator, or a
        team the token cannot resolve) is returned as a warning, not raised: the evaluation stands without
        the request. GitHub refuses the whole request for one bad team, and GITHUB_TOKEN cannot resolve
        teams at all, so the users are then requested again on their own (one more request)."""
        what = f"request reviews on #{number}"
        url = f"{self._repo}/pulls/{number}/requested_reviewers"
        try:
            self._call("POST", url, what, "pull-requests: write",
                       body={"reviewers": list(users), "team_reviewers": list(teams)})
        except GitHubError as exc:
            if exc.status != 422:
                raise
            warning = f"{exc} (requesting a team's review needs a token that can see the team: " + (
                f"{TEAM_PERMISSION_HELP})")
            if not (users and teams):
                return warning if teams else str(exc)
            try:
                self._call("POST", url, what, "pull-requests: write",
                           body={"reviewers": list(users), "team_reviewers": []})
            except GitHubError as again:
                if again.status != 422:
                    raise
                return f"{again}; {warning}"
            return f"teams {', '.join(teams)} not requested: {warning}"
        return None


def _reason(exc: requests.exceptions.RetryError) -> str:
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return str(getattr(reason, "args", [None])[0] or reason or exc)


def parse_content(data: Any, path: str) -> bytes | None:
    """A contents-API answer → bytes of a file; None for a directory, symlink or submodule."""
    if not isinstance(data, dict) or data.get("type") != "file":
        return None
    if data.get("encoding") != "base64":
        raise GitHubError(f"{path} is too large for the contents API ({data.get('size')} bytes)")
    return base64.b64decode(str(data.get("content") or ""))


def _error(exc: GithubException, what: str, permission: str, *, write: bool) -> GitHubError:
    status = exc.status
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.data or "")
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    if isinstance(exc, RateLimitExceededExceedsMaxWait) or status == 429 or (
        status == 403 and ("rate limit" in message.lower() or headers.get("x-ratelimit-remaining") == "0")
    ):
        return GitHubError(f"cannot {what}: {_rate_limit_text(exc, message, headers)}", status)
    if status == 401:
        return GitHubError(
            f"cannot {what}: GitHub rejected the token (401 {message}). Check the github-token input or "
            "GITHUB_TOKEN.", status)
    if status == 403:
        text = (f"cannot {what}: GitHub answered 403 ({message}). The token needs the '{permission}' "
                "permission (set it under `permissions:` in the workflow).")
        return WriteForbidden(text, status) if write else GitHubError(text, status)
    if status == 404:
        return GitHubError(
            f"cannot {what}: GitHub answered 404 Not Found. Either it does not exist, or the token cannot "
            f"see it (it needs '{permission}').", status)
    return GitHubError(f"cannot {what}: GitHub answered {status} ({message}).", status)


def _rate_limit_text(exc: GithubException, message: str, headers: Mapping[str, str]) -> str:
    """Which limit, when it resets, and what to do (the retries, if any, already waited what they could)."""
    primary = headers.get("x-ratelimit-remaining") == "0" or message.lower().startswith("api rate limit")
    text = f"GitHub's {'primary' if primary else 'secondary'} rate limit was exceeded ({exc.status} " + (
        f"{message or 'Too Many Requests'}).")
    wait = getattr(exc, "wait", None)
    if isinstance(exc, RateLimitExceededExceedsMaxWait) and wait is not None:
        text += (f" GitHub asks to wait {wait:.0f} s, longer than this job waits for a rate limit, so it "
                 "stops here instead of holding the runner.")
    reset = headers.get("x-ratelimit-reset", "")
    if primary and reset.isdigit():
        text += f" It resets at {datetime.fromtimestamp(int(reset), UTC):%Y-%m-%d %H:%M:%S} UTC."
    return text + (" Re-run the job after the reset (GITHUB_TOKEN allows 1,000 requests per hour per "
                   "repository)." if primary else " Re-run the job in a few minutes.")


# --- files at a commit ---------------------------------------------------------------------------------


class ApiTree:
    """`tree.Tree` over the contents API at one commit, each answer cached (used when the commit's objects
    are not in the local checkout, e.g. a fork head under `pull_request_target`)."""

    def __init__(self, client: GitHubClient, sha: str) -> None:
        self.client = client
        self.sha = sha
        self._files: dict[str, bytes | None] = {}
        self._dirs: dict[str, list[tuple[str, str]]] = {}

    def read(self, path: str) -> bytes | None:
        if path not in self._files:
            self._files[path] = self.client.contents(self.sha, path)
        return self._files[path]

    def _walk(self, directory: str) -> Iterator[str]:
        if directory not in self._dirs:
            self._dirs[directory] = self.client.directory(self.sha, directory)
        for path, kind in self._dirs[directory]:
            if kind == "dir":
                yield from self._walk(path)
            elif kind == "file":
                yield path

    def paths(self, prefix: str = "") -> Iterator[str]:
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        return iter(sorted(p for p in self._walk(directory) if p.startswith(prefix)))


class Trees:
    """Files at any commit: the local checkout's git objects when it has the commit, else the contents API.
    Also the `ContentReader` of the PullSnapshot (stale-approval checks read files at review commits)."""

    def __init__(self, client: GitHubClient, checkout: Path | None) -> None:
        self.client = client
        self.checkout = checkout
        self._trees: dict[str, Tree] = {}

    def at(self, sha: str) -> Tree:
        if sha not in self._trees:
            self._trees[sha] = self._local(sha) or ApiTree(self.client, sha)
        return self._trees[sha]

    def is_local(self, sha: str) -> bool:
        return not isinstance(self.at(sha), ApiTree)

    def _local(self, sha: str) -> Tree | None:
        if self.checkout is None:
            return None
        from . import git  # the git adapter; imported here so API-only runs need no git

        try:
            return git.GitTree(self.checkout, sha)
        except GitopsFlagsError:  # not a clone, or the commit is not in it
            return None

    def read(self, sha: str, path: str) -> bytes | None:
        return self.at(sha).read(path)

    def merge_base(self, base: str, commit: str) -> str | None:
        """The merge base of two commits: local git when the checkout has both, else the compare API."""
        if self.checkout is not None and self.is_local(base) and self.is_local(commit):
            from . import git

            return git.merge_base(self.checkout, base, commit)
        return self.client.merge_base(base, commit)

    def close(self) -> None:
        for tree in self._trees.values():
            close = getattr(tree, "close", None)
            if close is not None:
                close()


# --- the evaluation pipeline (shared by `check` and `apply`) ---------------------------------------------


BASE_CHANGES = frozenset({"base_ref_changed", "automatic_base_change_succeeded"})


def base_changed_at(events: Iterable[Mapping[str, Any]]) -> str | None:
    """When the PR's base branch last changed (a retarget, or GitHub's automatic one when the old base
    was deleted), from the issue events; None when it never did."""
    times = [str(e.get("created_at") or "") for e in events if e.get("event") in BASE_CHANGES]
    return max(times, key=_instant) if times else None


def last_pushers(commits: Sequence[Mapping[str, Any]], head_sha: str,
                 events: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """Who pushed the head: the GitHub accounts of its author and committer (not `web-flow`, GitHub's own
    committer for web edits and merges), and whoever force-pushed since it was committed. None when
    the head is not among the listed commits (GitHub lists at most 250): unknown."""
    head = next((c for c in commits if c.get("sha") == head_sha), None)
    if head is None:
        return None
    accounts = (head.get("author"), head.get("committer"))
    logins = {normalize_login(str((who or {}).get("login") or "")) for who in accounts}
    logins -= {"", "web-flow"}
    committed = str(((head.get("commit") or {}).get("committer") or {}).get("date") or "")
    for event in events:
        if event.get("event") == "head_ref_force_pushed" and _instant(str(event.get("created_at") or "")) >= (
                _instant(committed)):
            logins.add(normalize_login(str((event.get("actor") or {}).get("login") or "")))
    return frozenset(logins - {""})


def _instant(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def teams_to_read(
    needed: Iterable[str], reviews: Iterable[Review], author: str, allow_author: bool
) -> set[str]:
    """The needed teams whose members can matter: only a decisive review's author is ever checked against a
    team, so with no such review no lookup can change the outcome (and none is sent)."""
    return set(needed) if voters(reviews, author, allow_author) else set()


def voters(reviews: Iterable[Review], author: str, allow_author: bool) -> set[str]:
    """The logins whose decisive reviews can count: with none, nothing about people needs reading."""
    found = {normalize_login(r.user) for r in reviews if r.user and r.state in DECISIVE_STATES}
    if not allow_author:
        found.discard(normalize_login(author))
    return found


def evaluate_pull(client: GitHubClient, pull: PullInfo, files: Sequence[FileEntry], reviews: Sequence[Review],
                  trees: Trees, config: str = POLICY_PATH, policy_at: str | None = None) -> Evaluation:
    """Policy and CODEOWNERS at the base commit (or at `policy_at`: the base branch's head, the commit a
    PR landed on), flag files at base and head, the teams the policy needs → the PR's Evaluation. The
    policy and CODEOWNERS are never read at the head."""
    base = trees.at(pull.base_sha)
    rules_at = policy_at or pull.base_sha
    rules = trees.at(rules_at)
    policy, policy_problems = validate.read_policy(rules, config)
    if policy is None:
        message = f"the policy {config} at {rules_at[:7]} cannot be used"
        return Evaluation("invalid", problems=tuple(policy_problems), message=message)
    owners = codeowners.find_codeowners(rules)
    head = trees.at(pull.head_sha)
    diff = changes.diff(base, head, policy, changed=changed_paths(files), policy_path=config)
    needed = approvals.teams_needed(policy, diff.changes, owners, labels=pull.labels)
    wanted = teams_to_read(needed, reviews, pull.author, policy.options.allow_author)
    teams = client.team_members(wanted) if wanted else {}
    for team in needed:
        teams.setdefault(team.lower(), TeamLookup(frozenset()))  # nobody's membership is in question
    # Whether the base changed since a review, and who pushed the head, matter only for reviews that count.
    counted = voters(reviews, pull.author, policy.options.allow_author)
    events = client.issue_events(pull.number) if counted else []
    pushers: frozenset[str] | None = frozenset()
    if counted and not policy.options.last_pusher_can_approve:
        pushers = last_pushers(client.pull_commits(pull.number), pull.head_sha, events)
    base_sha = pull.base_sha
    snapshot = PullSnapshot(
        author=pull.author,
        head_sha=pull.head_sha,
        base_sha=pull.base_sha,
        number=pull.number,
        labels=pull.labels,
        reviews=tuple(reviews),
        teams=teams,
        read=trees.read,
        url=pull.html_url,
        merge_base=lambda commit: trees.merge_base(base_sha, commit),
        base_changed_at=base_changed_at(events),
        last_pushers=pushers,
    )
    problems = [*policy_problems, *diff.problems]
    return approvals.evaluate(diff.changes, policy, owners, snapshot, problems=problems)


def evaluate_current(client: GitHubClient, pull: PullInfo, files: Sequence[FileEntry],
                     reviews: Sequence[Review], trees: Trees, config: str = POLICY_PATH) -> Evaluation:
    """`evaluate_pull`, and when the PR's base is behind its base branch and the branch's policy or
    CODEOWNERS have changed since, under those too: a policy tightened after the PR was opened binds it
    (apply will require both). The evaluation says so."""
    evaluation = evaluate_pull(client, pull, files, reviews, trees, config)
    if not (evaluation.changes and pull.base_ref and voters(reviews, pull.author, allow_author=False)):
        return evaluation  # nobody's review counts yet: no policy can approve, one request saved
    tip = client.branch_head(pull.base_ref)
    if tip is None or tip == pull.base_sha:
        return evaluation
    if approvals.same_rules(trees.at(pull.base_sha), trees.at(tip), config):
        return evaluation
    current = evaluate_pull(client, pull, files, reviews, trees, config, policy_at=tip)
    branch = pull.base_ref
    combined = approvals.combine(
        evaluation, f"under the PR's base policy (at {pull.base_sha[:7]})",
        current, f"under {branch}'s current policy (at {tip[:7]}; the PR's base is behind)",
    )
    note = (f"the PR's base {pull.base_sha[:7]} is behind {branch} ({tip[:7]}), whose policy or CODEOWNERS "
            f"changed since: the changes need the approvals of both (apply requires it too)")
    return replace(combined, warnings=(*combined.warnings, note))


def merged_pull_of(items: Sequence[Mapping[str, Any]], sha: str) -> Mapping[str, Any] | None:
    """Of the PRs GitHub associates with a commit, the merged one that brought it in: the PR whose merge
    commit it is, else the first merged PR (a rebase merge's earlier commits); None for a direct push.
    Only PRs merged into the default branch count: a PR merged into another branch whose commits later
    reached main unreviewed there must not vouch for them."""
    merged = [i for i in items if i.get("merged_at") and _into_default_branch(i)]
    return next((i for i in merged if i.get("merge_commit_sha") == sha), merged[0] if merged else None)


def _into_default_branch(item: Mapping[str, Any]) -> bool:
    base = item.get("base") or {}
    default = (base.get("repo") or {}).get("default_branch")
    return default is None or base.get("ref") == default


class MergedPulls:
    """`reconcile.MergedPullSource` over the API: which merged PR brought a commit in, and its Evaluation
    at its merged head (the `check` pipeline)."""

    def __init__(self, client: GitHubClient, checkout: Path | None, config: str = POLICY_PATH) -> None:
        self.client = client
        self.checkout = checkout
        self.config = config
        self._pulls: dict[int, PullInfo] = {}
        self.trees = Trees(client, checkout)  # closed by `close` (apply's run ends with it)

    def pull_for_commit(self, sha: str) -> MergedPull | None:
        found = merged_pull_of(self.client.commit_pulls(sha), sha)
        if found is None:
            return None
        info = parse_pull(found)
        self._pulls[info.number] = info
        merge = found.get("merge_commit_sha")
        return MergedPull(info.number, info.html_url, info.author, info.head_sha, info.base_sha or None,
                          str(merge) if merge else None)

    def evaluate(self, pull: MergedPull, policy_at: str | None = None) -> Evaluation:
        info = self._pulls.get(pull.number) or self.client.pull(pull.number)
        info = replace(info, head_sha=pull.head_sha, base_sha=pull.base_sha or info.base_sha)
        try:
            reviews = self.client.reviews(pull.number)
            return evaluate_pull(self.client, info, self.client.files(info), reviews, self.trees, self.config,
                                 policy_at)
        except TooManyFiles as exc:
            return Evaluation("error", message=str(exc))

    def read(self, sha: str, path: str) -> bytes | None:
        return self.trees.read(sha, path)

    def close(self) -> None:
        self.trees.close()


QUEUE_REF = re.compile(
    r"(?:refs/heads/)?gh-readonly-queue/(?P<base>.+)/pr-(?P<number>[0-9]+)-(?P<base_sha>[0-9a-f]{40})"
)


def queue_entries(refs: Iterable[tuple[str, str]], base_ref: str) -> dict[str, int]:
    """{commit: PR number} from merge queue branches: GitHub names each PR's entry in a queue
    `gh-readonly-queue/<base>/pr-<N>-<base sha>`, pointing at the commit where that PR's changes end."""
    found: dict[str, int] = {}
    for ref, sha in refs:
        match = QUEUE_REF.fullmatch(ref)
        if match and match["base"] == base_ref:
            found[sha] = int(match["number"])
    return found


class QueuePulls(MergedPulls):
    """`reconcile.MergedPullSource` for a merge queue's group, before it lands: each first-parent commit of
    the group belongs to the PR whose queue entry is the next at or after it (`ends` maps an entry's
    commit to its PR). Commits after the last entry belong to no PR."""

    def __init__(self, client: GitHubClient, checkout: Path | None, chain: Sequence[str],
                 ends: Mapping[str, int], config: str = POLICY_PATH) -> None:
        super().__init__(client, checkout, config)
        self._owner: dict[str, tuple[int, str]] = {}
        waiting: list[str] = []
        for sha in chain:
            waiting.append(sha)
            if sha in ends:
                for member in waiting:
                    self._owner[member] = (ends[sha], sha)
                waiting = []

    def pull_for_commit(self, sha: str) -> MergedPull | None:
        owner = self._owner.get(sha)
        if owner is None:
            return None
        number, end = owner
        info = self._pulls.get(number) or self.client.pull(number)
        self._pulls[number] = info
        if info.state != "open":
            return None  # a queued PR is open until its group lands
        return MergedPull(info.number, info.html_url, info.author, info.head_sha, info.base_sha or None, end)
