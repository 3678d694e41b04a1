"""The GitHub REST adapter: with the store's github_branch backend, the only code that imports PyGithub.
It turns GitHub's answers into plain values (`PullInfo`, reviews, files, trees) and plain values into
writes; what those values mean is decided in the core (`check`, `check_report`, `reconcile`).

- `connection`: the PyGithub client, its retries (5xx, rate limits, `retry-after`, each wait capped) and the
  pause between writes;
- `client`: `GitHubClient`, one repository's requests, each named in its docstring; `errors` words failures;
- `parse`: the pure `parse_*` functions from answers to plain values;
- `trees`: files at a commit, from the checkout or the contents API;
- `pulls`: the ports the use cases read PRs through (`PullSource`, `MergedPulls`, `QueuePulls`);
- `writes`: a `CheckReport` posted (status, sticky comment, review requests).

Requests: one evaluation of a PR with at most 100 files and no team lookups costs 6 on its first run (pull,
files, reviews, status, comment, review request: a PR without comments has no sticky comment to list) and 5
on later runs (pull, files, reviews, comment list, status), plus the edit and a review request only when
something changed, and one page per further 100 files, reviews or comments.
"""

from ..check_report import TRUSTED_ASSOCIATIONS, Comment
from ..snapshot import PullInfo
from .client import FILES_LIMIT, GitHubClient
from .connection import PER_PAGE, CappedRetry, connect, production_retry, write_pause
from .errors import TEAM_PERMISSION_HELP, GitHubError, TooManyFiles, WriteForbidden
from .parse import (
    QUEUE_REF,
    FileEntry,
    changed_paths,
    merged_pull_of,
    parse_comment,
    parse_content,
    parse_files,
    parse_pull,
    queue_entries,
)
from .pulls import MergedPulls, PullSource, QueuePulls
from .trees import ApiTree, Trees
from .writes import post_report

__all__ = [
    "FILES_LIMIT", "PER_PAGE", "QUEUE_REF", "TEAM_PERMISSION_HELP", "TRUSTED_ASSOCIATIONS", "ApiTree",
    "CappedRetry", "Comment", "FileEntry", "GitHubClient", "GitHubError", "MergedPulls", "PullInfo",
    "PullSource", "QueuePulls", "TooManyFiles", "Trees", "WriteForbidden", "changed_paths", "connect",
    "merged_pull_of", "parse_comment", "parse_content", "parse_files", "parse_pull", "post_report",
    "production_retry", "queue_entries", "write_pause",
]
