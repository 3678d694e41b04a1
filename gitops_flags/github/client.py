"""The GitHub REST client for one repository: every method sends the requests its docstring names.

It sends each request itself through PyGithub's requester (authentication, base URL, retries: see
`connection`), so the number of requests is a property of this module, not of lazy objects. Answers
become plain values through the pure `parse` functions; failures become `GitHubError`s (`errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import requests
from github import Github, GithubException

from ..check_report import Comment
from ..snapshot import PullInfo, Review, TeamLookup
from .connection import PER_PAGE
from .errors import TEAM_PERMISSION_HELP, GitHubError, TooManyFiles, error_for, retries_ran_out
from .parse import FileEntry, next_link, parse_comment, parse_content, parse_files, parse_pull

FILES_LIMIT = 3000  # pulls/list-files returns at most 3,000 files


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
            raise error_for(exc, what, permission, write=verb != "GET") from exc
        except requests.exceptions.RetryError as exc:
            raise retries_ran_out(exc, what) from exc
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
