"""The apply use case and its walk, over hand-written fakes: a history held in dicts, a store in memory and a
merged-PR source that answers from a table. No git, no GitHub, no clock (core tests, docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_flags import apply, notify, walk
from gitops_flags.problems import GitopsFlagsError
from gitops_flags.reconcile import MergedPull
from gitops_flags.result import ChangeResult, Evaluation, StepResult, Verdict
from gitops_flags.store.base import ConflictError, StoreSnapshot
from gitops_flags.store.state import StoreState
from gitops_flags.tree import DictTree

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = """\
version: 1
environments: [production]
roles: {owners: ["@alice"]}
rules: [{match: {kind: flag}, workflow: review}, {match: {kind: governance}, workflow: review}]
workflows: {review: {steps: [{id: owner, role: owners}]}}
"""


def flag(key: str, enabled: bool = True) -> str:
    return (f"key: {key}\ntype: boolean\nvariants: {{\"on\": true, \"off\": false}}\n"
            f"default_variant: \"off\"\nenvironments:\n  production: {{enabled: {str(enabled).lower()}}}\n")


class ClosingTree(DictTree):
    def close(self) -> None:
        pass


class History:
    """`walk.History` from a list of commits on one first-parent line: c1 (oldest) ... cN."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, str]] = {}
        self.order: list[str] = []

    def commit(self, changes: Mapping[str, str | None]) -> str:
        files = dict(self.files[self.order[-1]]) if self.order else {}
        for path, text in changes.items():
            if text is None:
                files.pop(path, None)
            else:
                files[path] = text
        sha = f"{len(self.order) + 1:040x}"
        self.files[sha] = files
        self.order.append(sha)
        return sha

    def resolve(self, rev: str) -> str:
        if rev not in self.files:
            raise GitopsFlagsError(f"cannot read revision {rev!r}")
        return rev

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.order.index(a) <= self.order.index(b)

    def first_parent_chain(self, base: str | None, head: str, path: str | None = None
                           ) -> list[tuple[str, str | None]]:
        start = self.order.index(base) + 1 if base else 0
        chain = []
        for i in range(start, self.order.index(head) + 1):
            parent = self.order[i - 1] if i else None
            if path is None or self._get(parent, path) != self.files[self.order[i]].get(path):
                chain.append((self.order[i], parent))
        return chain

    def tree(self, sha: str) -> ClosingTree:
        return ClosingTree(self.files[sha])

    def changed_paths(self, base: str, commit: str) -> list[str]:
        a, b = self.files[base], self.files[commit]
        return sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))

    def _get(self, sha: str | None, path: str) -> str | None:
        return self.files[sha].get(path) if sha else None


class MemoryStore:
    """`Store` in memory, with compare-and-swap on an integer version; `conflicts` writes lose a race."""

    where = "memory"

    def __init__(self, conflicts: int = 0) -> None:
        self.state = StoreState()
        self.documents: dict[str, dict[str, Any]] = {}
        self.version: str | None = None
        self.audit: list[dict[str, Any]] = []
        self.conflicts = conflicts

    def read(self) -> StoreSnapshot:
        return StoreSnapshot(self.state, {k: dict(v) for k, v in self.documents.items()}, self.version)

    def write(self, state: StoreState, documents: Mapping[str, Mapping[str, Any]],
              expected_version: str | None, audit: Sequence[Mapping[str, Any]] = (),
              message: str = "") -> str:
        if self.conflicts:
            self.conflicts -= 1
            raise ConflictError("another run wrote first")
        if expected_version != self.version:
            raise ConflictError(f"at {self.version}, not {expected_version}")
        self.state, self.documents = state, {k: dict(v) for k, v in documents.items()}
        self.audit += [dict(r) for r in audit]
        self.version = str(int(self.version or "0") + 1)
        return self.version

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        raise NotImplementedError

    def read_audit(self) -> list[dict[str, Any]]:
        return list(self.audit)


class Source:
    """Merged PRs by commit, each judged as `verdicts` says."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.pulls: dict[str, MergedPull] = {}
        self.verdicts: dict[int, Verdict] = {}

    def merged(self, sha: str, number: int, verdict: Verdict) -> None:
        parent = self.history.order[self.history.order.index(sha) - 1]
        self.pulls[sha] = MergedPull(number, f"https://example.test/pull/{number}", "carol", sha, parent, sha)
        self.verdicts[number] = verdict

    def pull_for_commit(self, sha: str) -> MergedPull | None:
        return self.pulls.get(sha)

    def evaluate(self, pull: MergedPull, policy_at: str | None = None) -> Evaluation:
        assert pull.base_sha is not None
        from gitops_flags import changes, validate

        base, head = self.history.tree(pull.base_sha), self.history.tree(pull.head_sha)
        policy, _ = validate.read_policy(base)
        assert policy is not None
        verdict = self.verdicts[pull.number]
        step = StepResult("owner", "owners", "satisfied" if verdict == "approved" else "pending",
                          approved_by=("alice",) if verdict == "approved" else ())
        found = changes.diff(base, head, policy).changes
        return Evaluation(verdict, tuple(ChangeResult(c, "review", verdict, (step,)) for c in found))

    def read(self, sha: str, path: str) -> bytes | None:
        return self.history.tree(sha).read(path)


@pytest.fixture
def history() -> Iterator[History]:
    h = History()
    h.commit({"flags/old.yaml": flag("old")})  # before the policy: nothing governed
    yield h


def run(history: History, store: MemoryStore, source: Source | None, *, verify: bool = True,
        dry_run: bool = False) -> apply.ApplyResult:
    snapshot = store.read()
    head = history.order[-1]
    planned = walk.plan_walk(history, snapshot.state.applied_commit, head, None)
    return apply.run(history, store, snapshot, planned.steps, head=head, now=NOW, verify=verify,
                     dry_run=dry_run, source=source, head_policy=None, outbound=notify.Outbound("test"),
                     notes=planned.notes)


# --- the walk ----------------------------------------------------------------------------------------


def test_an_empty_store_starts_at_the_policys_adoption(history: History) -> None:
    adoption = history.commit({".github/gitops-flags.yml": POLICY})
    later = history.commit({"flags/new.yaml": flag("new")})
    planned = walk.plan_walk(history, None, later, None)
    assert planned.steps == (walk.Step(adoption, None, baseline=True), walk.Step(later, adoption))
    assert planned.notes == (f"baseline: the flags at {adoption[:12]} (the policy's adoption) are applied as "
                             "they are",)


def test_a_store_at_head_has_nothing_to_walk_and_one_ahead_says_so(history: History) -> None:
    first = history.order[0]
    head = history.commit({".github/gitops-flags.yml": POLICY})
    assert walk.plan_walk(history, head, head, None) == walk.Walk(())
    ahead = walk.plan_walk(history, head, first, None)
    assert ahead.steps == () and "later than" in ahead.notes[0]


def test_the_walk_refuses_a_store_commit_the_clone_does_not_have(history: History) -> None:
    head = history.commit({".github/gitops-flags.yml": POLICY})
    with pytest.raises(GitopsFlagsError, match="which this clone does not have: fetch the full history"):
        walk.plan_walk(history, "f" * 40, head, None)


def test_baseline_seeds_only_an_empty_store(history: History) -> None:
    head = history.commit({".github/gitops-flags.yml": POLICY})
    with pytest.raises(GitopsFlagsError, match="--baseline only seeds an empty store"):
        walk.plan_walk(history, head, head, history.order[0])
    planned = walk.plan_walk(history, None, head, history.order[0])
    first = history.order[0]
    assert planned.steps == (walk.Step(first, None, baseline=True), walk.Step(head, first))


# --- the use case ------------------------------------------------------------------------------------


def test_an_approved_merge_is_applied_and_an_unapproved_one_blocked(history: History) -> None:
    history.commit({".github/gitops-flags.yml": POLICY})
    store, source = MemoryStore(), Source(history)
    run(history, store, source)  # the baseline
    good = history.commit({"flags/good.yaml": flag("good")})
    bad = history.commit({"flags/bad.yaml": flag("bad")})
    source.merged(good, 1, "approved")
    source.merged(bad, 2, "pending")
    result = run(history, store, source)
    outcomes = [(r.unit.change.key, r.outcome) for r in result.results]
    assert outcomes == [("good", "applied"), ("bad", "blocked")]
    assert result.counts == {"applied": 1, "warned": 0, "blocked": 1, "skipped": 0}
    assert result.exit_code == 1
    assert result.steps == 2 and result.head == bad and result.failures == ()
    assert store.state.applied_commit == bad and result.version == store.version
    assert "good" in store.documents["production"]["flags"]
    assert "bad" not in store.documents["production"]["flags"]


def test_a_dry_run_decides_the_same_and_writes_nothing(history: History) -> None:
    history.commit({".github/gitops-flags.yml": POLICY})
    store, source = MemoryStore(), Source(history)
    run(history, store, source)
    version = store.version
    sha = history.commit({"flags/good.yaml": flag("good")})
    source.merged(sha, 1, "approved")
    result = run(history, store, source, dry_run=True)
    assert [r.outcome for r in result.results] == ["applied"]
    assert store.version == version and result.version == version


def test_a_write_that_keeps_losing_its_race_is_a_failure_to_resume_from(history: History) -> None:
    history.commit({".github/gitops-flags.yml": POLICY})
    store, source = MemoryStore(), Source(history)
    run(history, store, source)
    sha = history.commit({"flags/good.yaml": flag("good")})
    source.merged(sha, 1, "approved")
    store.conflicts = 10  # every attempt of the unit's write and of the failure's record loses
    result = run(history, store, source)
    assert result.results == ()
    assert result.failures == (f"writing the store for {sha[:12]}: another run wrote first — the next run "
                               "resumes here",)
    assert result.errors[0] == f"writing the store for {sha[:12]}: another run wrote first"
    assert result.errors[1].startswith("the failure could not be recorded in the store either")
    assert result.exit_code == 1
