"""Files at any commit: the local checkout's git objects when it has the commit, else the contents API
(a fork's head under `pull_request_target` is not in the checkout)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..problems import GitopsFlagsError
from ..tree import Tree
from .client import GitHubClient


class ApiTree:
    """`tree.Tree` over the contents API at one commit, each answer cached."""

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
    """Files at any commit, each commit's tree opened once. Also the `ContentReader` of the PullSnapshot
    (stale-approval checks read files at review commits)."""

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
        from .. import git  # the git adapter; imported here so API-only runs need no git

        try:
            return git.GitTree(self.checkout, sha)
        except GitopsFlagsError:  # not a clone, or the commit is not in it
            return None

    def read(self, sha: str, path: str) -> bytes | None:
        return self.at(sha).read(path)

    def merge_base(self, base: str, commit: str) -> str | None:
        """The merge base of two commits: local git when the checkout has both, else the compare API."""
        if self.checkout is not None and self.is_local(base) and self.is_local(commit):
            from .. import git

            return git.merge_base(self.checkout, base, commit)
        return self.client.merge_base(base, commit)

    def close(self) -> None:
        for tree in self._trees.values():
            close = getattr(tree, "close", None)
            if close is not None:
                close()
