"""Pull requests as the use cases read them: `PullSource` answers `check.PullPort` (files, teams,
history, branch heads) from the API and the checkout; `MergedPulls` and `QueuePulls` answer
`reconcile.MergedPullSource` (which PR brought a commit in) and hand its facts to `check.evaluate_landed`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .. import check
from ..check import PullHistory
from ..model import POLICY_PATH
from ..reconcile import MergedPull
from ..result import Evaluation
from ..snapshot import PullInfo, TeamLookup
from ..tree import Tree
from .client import GitHubClient
from .errors import TooManyFiles
from .parse import base_changed_at, changed_paths, last_pushers, merged_pull_of, parse_pull
from .trees import Trees


class PullSource:
    """`check.PullPort` over one repository: files from the checkout or the contents API, the rest from
    the API. The trees stay open until `close`."""

    def __init__(self, client: GitHubClient, checkout: Path | None) -> None:
        self.client = client
        self.trees = Trees(client, checkout)

    def tree(self, sha: str) -> Tree:
        return self.trees.at(sha)

    def read(self, sha: str, path: str) -> bytes | None:
        return self.trees.read(sha, path)

    def merge_base(self, base: str, commit: str) -> str | None:
        return self.trees.merge_base(base, commit)

    def team_members(self, teams: Iterable[str]) -> dict[str, TeamLookup]:
        return self.client.team_members(teams)

    def history(self, number: int, head_sha: str, pushers: bool) -> PullHistory:
        """The issue events (the only endpoint with `base_ref_changed`), and the PR's commits when who
        pushed the head is asked."""
        events = self.client.issue_events(number)
        who = last_pushers(self.client.pull_commits(number), head_sha, events) if pushers else frozenset()
        return PullHistory(base_changed_at(events), who)

    def branch_head(self, branch: str) -> str | None:
        return self.client.branch_head(branch)

    def close(self) -> None:
        self.trees.close()


class MergedPulls:
    """`reconcile.MergedPullSource` over the API: which merged PR brought a commit in, and its Evaluation
    at its merged head (`check.evaluate_landed`)."""

    def __init__(self, client: GitHubClient, checkout: Path | None, config: str = POLICY_PATH) -> None:
        self.client = client
        self.checkout = checkout
        self.config = config
        self._pulls: dict[int, PullInfo] = {}
        self.source = PullSource(client, checkout)  # closed by `close` (apply's run ends with it)
        self.trees = self.source.trees

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
        try:
            reviews = self.client.reviews(pull.number)
            changed = changed_paths(self.client.files(info))
        except TooManyFiles as exc:
            return Evaluation("error", message=str(exc))
        return check.evaluate_landed(pull, info, changed, reviews, self.source, self.config, policy_at)

    def read(self, sha: str, path: str) -> bytes | None:
        return self.trees.read(sha, path)

    def close(self) -> None:
        self.source.close()


class QueuePulls(MergedPulls):
    """`reconcile.MergedPullSource` for a merge queue's group, before it lands: each first-parent commit of
    the group belongs to the PR whose queue entry is the next at or after it (`ends` maps an entry's
    commit to its PR). Commits after the last entry belong to no PR."""

    def __init__(self, client: GitHubClient, checkout: Path | None, chain: Sequence[str],
                 ends: Mapping[str, int], config: str = POLICY_PATH, *, base_ref: str) -> None:
        super().__init__(client, checkout, config)
        self.base_ref = base_ref
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
        # A queued PR is open until its group lands, and merges into the group's base: anyone who can push
        # can create a branch named like a queue entry, naming a PR approved against another base.
        if info.state != "open" or info.base_ref != self.base_ref:
            return None
        return MergedPull(info.number, info.html_url, info.author, info.head_sha, info.base_sha or None, end)
