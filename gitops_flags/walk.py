"""Which commits `apply` walks: from the store's applied commit to the default branch's head, along first
parents, with the baseline where governance starts (docs/apply.md, 'Where apply starts').

Pure over a `History` port (answered by `git.Repository`; a test can answer it from a dict): the walk
never runs git itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .model import POLICY_PATH
from .problems import GitopsFlagsError
from .tree import Tree


class ClosableTree(Tree, Protocol):
    """A tree that holds a resource (a `git cat-file` process) until closed."""

    def close(self) -> None: ...


class History(Protocol):
    """What the walk asks of the repository's history."""

    def resolve(self, rev: str) -> str:
        """The full sha of a revision; GitopsFlagsError when the clone does not have it."""
        ...

    def is_ancestor(self, a: str, b: str) -> bool: ...

    def first_parent_chain(self, base: str | None, head: str, path: str | None = None
                           ) -> list[tuple[str, str | None]]:
        """(commit, first parent) after `base` up to `head`, oldest first; with `path`, only commits
        changing it."""
        ...

    def tree(self, sha: str) -> ClosableTree: ...

    def changed_paths(self, base: str, commit: str) -> list[str]: ...


@dataclass(frozen=True)
class Step:
    """One diff to apply: from `base` (None: nothing) to `commit`."""

    commit: str
    base: str | None
    baseline: bool = False  # before the policy existed: every file compared, no approvals to check


@dataclass(frozen=True)
class Walk:
    """The steps from the store's applied commit to head, and notes for the report."""

    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()


def steps_between(history: History, base: str, head: str) -> list[Step]:
    """The governed steps after `base` up to `head`."""
    return [Step(sha, parent) for sha, parent in history.first_parent_chain(base, head)]


def plan_walk(history: History, applied: str | None, head: str, baseline: str | None) -> Walk:
    """The walk from the store's applied commit (None: an empty store) to `head`; with `baseline`, an
    empty store is seeded with the flags at that revision."""
    if baseline is not None:
        if applied is not None:
            raise GitopsFlagsError(f"--baseline only seeds an empty store; this one is at {applied[:12]}")
        start = history.resolve(baseline)
        if not history.is_ancestor(start, head):
            raise GitopsFlagsError(f"--baseline {baseline} is not an ancestor of {head[:12]}")
        note = f"baseline: the flags at {start[:12]} are applied as they are (--baseline)"
        return Walk((Step(start, None, baseline=True), *steps_between(history, start, head)), (note,))
    if applied is not None:
        try:
            applied = history.resolve(applied)
        except GitopsFlagsError:
            raise GitopsFlagsError(
                f"the store was last applied at {applied[:12]}, which this clone does not have: fetch "
                "the full history (actions/checkout with fetch-depth: 0)"
            ) from None
        if applied == head:
            return Walk(())
        if history.is_ancestor(head, applied):
            return Walk((), (f"the store is at {applied[:12]}, later than {head[:12]}: nothing to do",))
        if not history.is_ancestor(applied, head):
            raise GitopsFlagsError(
                f"the store was last applied at {applied[:12]}, which is not in the history of {head[:12]} "
                "(was the default branch rewritten?); see docs/apply.md, 'Rewritten history'"
            )
    chain = history.first_parent_chain(applied, head)
    if chain and chain[0][1] != applied:
        raise GitopsFlagsError(
            f"the store's commit {applied[:12] if applied else '(none)'} is not on the first-parent history "
            f"of {head[:12]}; see docs/apply.md, 'Rewritten history'"
        )
    if applied is not None and has_policy(history, applied):
        return Walk(_steps(chain))
    # Before the policy existed nothing was approved: the flags at the commit that adopted it are the
    # baseline, applied as they are. Commits after it are governed.
    touching = history.first_parent_chain(applied, head, POLICY_PATH)
    adoption = next((sha for sha, _ in touching if has_policy(history, sha)), head)
    note = f"baseline: the flags at {adoption[:12]} (the policy's adoption) are applied as they are"
    index = next(i for i, (sha, _) in enumerate(chain) if sha == adoption)
    return Walk((Step(adoption, applied, baseline=True), *_steps(chain[index + 1 :])), (note,))


def has_policy(history: History, sha: str) -> bool:
    tree = history.tree(sha)
    try:
        return tree.read(POLICY_PATH) is not None
    finally:
        tree.close()


def _steps(chain: Sequence[tuple[str, str | None]]) -> tuple[Step, ...]:
    return tuple(Step(sha, parent) for sha, parent in chain)
