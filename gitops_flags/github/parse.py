"""GitHub's answers → plain values (pure): pulls, files, comments, file contents, a PR's history, the PR
that merged a commit, merge queue branches. Each `parse_*` sits beside no request: the client calls them."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from ..check_report import Comment
from ..snapshot import PullInfo, normalize_login
from .errors import GitHubError


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


def parse_comment(item: Mapping[str, Any]) -> Comment:
    user = item.get("user") or {}
    return Comment(
        id=int(item["id"]),
        body=str(item.get("body") or ""),
        user=str(user.get("login") or ""),
        user_type=str(user.get("type") or ""),
        association=str(item.get("author_association") or ""),
    )


def parse_content(data: Any, path: str) -> bytes | None:
    """A contents-API answer → bytes of a file; None for a directory, symlink or submodule."""
    if not isinstance(data, dict) or data.get("type") != "file":
        return None
    if data.get("encoding") != "base64":
        raise GitHubError(f"{path} is too large for the contents API ({data.get('size')} bytes)")
    return base64.b64decode(str(data.get("content") or ""))


def next_link(headers: Mapping[str, Any]) -> str | None:
    link = headers.get("link") or headers.get("Link")
    if not link:
        return None
    for part in requests.utils.parse_header_links(str(link)):
        if part.get("rel") == "next":
            return part.get("url")
    return None


# --- a PR's history ------------------------------------------------------------------------------------


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


# --- which PR brought a commit in ------------------------------------------------------------------------


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
