"""`gitops-flags plan`: what a change between two revisions needs, and (with --pull) whether it has it.

Both trees are read from git objects. Without --head, the head is HEAD plus the working tree's
uncommitted edits (tracked changes and untracked files git does not ignore), snapshotted as a commit object
that no branch points to and without touching the index; stderr says so, naming how many files. With
--head, only commits are planned. The policy and CODEOWNERS come from --base only, as in the PR check: a
change cannot loosen the rules that judge it. Only the changed files (and what they reference) are loaded,
so planning scales with the change, not with the repository.

Wiring only: the trees and the changed paths come from git (`git`), the --pull file becomes a
`PullSnapshot` here, and `plan.plan` decides; its `PlanResult` renders every format.

Exit codes: 0 approved; 1 pending, rejected, invalid or error; 2 when nothing can be evaluated (an
unreadable revision, a missing or unparseable base policy, an unreadable --pull file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .. import git
from .. import plan as planning
from ..inert import echo, json_text
from ..plan import FORMATS, PlanResult
from ..problems import GitopsFlagsError
from ..snapshot import ContentReader, PullSnapshot, Review, TeamLookup
from .options import directory_option


@click.command(name="plan")
@click.option("--base", required=True, help="The base revision: its policy and CODEOWNERS judge the change.")
@click.option("--head", default=None,
              help="The revision with the change. Default: HEAD plus the working tree's uncommitted edits.")
@directory_option("The git repository.", default=".")
@click.option("--pull", "pull_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help='PR snapshot JSON: {"author", "labels", "reviews", "teams"}; evaluates approvals offline.')
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def command(base: str, head: str | None, repo: Path, pull_file: Path | None, fmt: str) -> int:
    """Show what each change between --base and --head needs; with --pull, evaluate its approvals."""
    base_sha, head_sha = git.resolve(repo, base), git.resolve(repo, head or "HEAD")
    if head is None:
        snapshot = git.worktree_commit(repo, head_sha)
        if snapshot is not None:
            head_sha, count = snapshot
            echo(f"note: planning HEAD plus {count} uncommitted file{'s' if count != 1 else ''} in the "
                       "working tree (pass --head HEAD to plan commits only)", err=True)
    pull = load_pull(pull_file, repo, base_sha, head_sha) if pull_file else None
    result = plan(repo, base_sha, head_sha, pull)
    for line in result.errors():
        echo(line, err=True)
    document = result.document()
    if fmt == "json" and document is not None:
        echo(json_text(document, indent=2, ensure_ascii=False) + "\n", nl=False)
    else:
        echo(result.render(fmt), nl=False)
    return result.exit_code


def plan(repo: Path, base_sha: str, head_sha: str, pull: PullSnapshot | None) -> PlanResult:
    """The plan of the change, both trees read from git objects. The PR's files are those changed since
    the merge base, as GitHub lists them."""
    with git.GitTree(repo, base_sha) as base_tree, git.GitTree(repo, head_sha) as head_tree:

        def changed() -> list[str]:
            entries = git.changed_files(repo, git.merge_base(repo, base_sha, head_sha), head_sha)
            return list(dict.fromkeys(p for e in entries for p in (e.old_path, e.path) if p))

        return planning.plan(base_sha, base_tree, head_tree, changed, pull)


# --- the --pull snapshot ----------------------------------------------------------------------------------


def load_pull(path: Path, repo: Path, base_sha: str, head_sha: str) -> PullSnapshot:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GitopsFlagsError(f"--pull {path}: cannot read it as JSON: {exc}") from None
    return replace(parse_pull(data, str(path), base_sha, head_sha, git_reader(repo)),
                   merge_base=lambda commit: git.merge_base(repo, base_sha, commit))


def parse_pull(data: Any, source: str, base_sha: str, head_sha: str, read: ContentReader) -> PullSnapshot:
    """`{"author": login, "labels": [names], "reviews": [GitHub review objects], "teams": {"org/slug":
    [logins]}}` → a snapshot. Teams the file does not list are unknown (reported, never guessed)."""
    if not isinstance(data, Mapping):
        raise GitopsFlagsError(f"--pull {source}: expected a JSON object with author, labels, reviews, teams")
    unknown = sorted(set(data) - {"author", "labels", "reviews", "teams"})
    if unknown:
        raise GitopsFlagsError(f"--pull {source}: unknown keys {', '.join(unknown)} "
                               "(allowed: author, labels, reviews, teams)")
    author = data.get("author")
    if not isinstance(author, str) or not author:
        raise GitopsFlagsError(f"--pull {source}: `author` must be the PR author's login")
    labels = _list(data, "labels", source)
    if not all(isinstance(x, str) or (isinstance(x, Mapping) and isinstance(x.get("name"), str))
               for x in labels):
        raise GitopsFlagsError(f"--pull {source}: `labels` must list label names (or label objects)")
    reviews = _list(data, "reviews", source)
    for index, review in enumerate(reviews):
        problem = _review_problem(review)
        if problem:
            raise GitopsFlagsError(f"--pull {source}: reviews[{index}]: {problem}")
    teams = data.get("teams", {})
    if not isinstance(teams, Mapping) or not all(
        isinstance(v, list) and all(isinstance(m, str) for m in v) for v in teams.values()
    ):
        raise GitopsFlagsError(f'--pull {source}: `teams` must map "org/slug" to a list of logins')
    return PullSnapshot(
        author=author.removeprefix("@"),
        head_sha=head_sha,
        base_sha=base_sha,
        labels=frozenset(x if isinstance(x, str) else x["name"] for x in labels),
        reviews=tuple(Review.from_github(r) for r in reviews),
        teams={
            slug.lstrip("@").lower(): TeamLookup(frozenset(m.removeprefix("@") for m in members))
            for slug, members in teams.items()
        },
        read=read,
    )


REVIEW_STATES = ("APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING")


def _review_problem(review: Any) -> str:
    """Why `review` is not a GitHub review object this tool can read ("" when it is). REST spells states
    in upper case, webhooks in lower case; `user` is null for a deleted account."""
    if not isinstance(review, Mapping):
        return "expected a GitHub review object"
    user = review.get("user")
    if user is not None and not (isinstance(user, Mapping) and isinstance(user.get("login"), str)):
        return '`user` must be an object with a `login` (or null), e.g. {"login": "octocat", "type": "User"}'
    state = review.get("state")
    if not isinstance(state, str) or state.upper() not in REVIEW_STATES:
        return f"`state` must be one of {', '.join(REVIEW_STATES)} (any case), not {json.dumps(state)}"
    review_id = review.get("id", 0)
    if isinstance(review_id, bool) or not isinstance(review_id, int):
        return "`id` must be an integer"
    if not isinstance(review.get("commit_id"), str | None):
        return "`commit_id` must be a commit SHA (or null)"
    submitted = review.get("submitted_at")
    if submitted is not None:
        try:
            datetime.fromisoformat(submitted)
        except (TypeError, ValueError):
            return f"`submitted_at` must be an ISO 8601 time (2026-01-02T10:00:00Z), not {submitted!r}"
    return ""


def _list(data: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise GitopsFlagsError(f"--pull {source}: `{key}` must be a list")
    return value


def git_reader(repo: Path) -> ContentReader:
    """File contents at any commit of the local repository (for stale approvals). A commit that is not in
    the repository raises, which the evaluator treats as unreadable: the approval is void."""
    trees: dict[str, git.GitTree] = {}

    def read(sha: str, path: str) -> bytes | None:
        if sha not in trees:
            trees[sha] = git.GitTree(repo, sha)
        return trees[sha].read(path)

    return read
