"""The apply use case: walk the landed commits (`walk`), judge each landed range's PR, and write the
store once per commit; returns an `ApplyResult` that every output renders from.

It reaches the world only through ports: `walk.History` (git), `reconcile.MergedPullSource` (GitHub),
`Store` (compare-and-swap writes); the time is a value. The decisions per change are `reconcile`'s.

One store write per commit: the units of a merge land together (flagd never serves half a PR), and a
github-branch store pays one commit per merge rather than one per change. A write that fails records its
units as failed and stops; the next run resumes at them.

A landed range is the commits GitHub associates with one merged PR, up to its merge commit (a rebase
merge replays the PR's commits one by one): it is judged once, under the PR's base policy and the policy
where it landed, and only its end is served (docs/apply.md, 'Landed ranges').

About 440 lines: most of it is the `Walker`, whose parts share the run's state (the snapshot it last wrote,
the policy it distrusts after an unapproved policy change); split, the landed-range rule would be read in
pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import cast

from . import approvals, changes, notify, reconcile, validate
from .model import POLICY_PATH, Policy
from .problems import GitopsFlagsError
from .reconcile import MergedPull, MergedPullSource, Unit, UnitResult
from .result import Evaluation
from .store.base import Store, StoreSnapshot, Update, update
from .store.state import OutboxEntry, StoreState, unit_id
from .tree import DictTree, Tree
from .walk import ClosableTree, History, Step, steps_between

EMPTY: Tree = DictTree({})
OUTCOMES = ("applied", "warned", "blocked", "skipped")


@dataclass
class Report:
    """What the walk found so far (it grows as the walk goes)."""

    results: list[UnitResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # told everywhere: summary, webhook, stderr
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # for stderr only, in the order they happened


@dataclass(frozen=True)
class ApplyResult:
    """One apply run, explained: what was walked, each unit's result, what stopped it, and the store
    after it (its outbox is what is left to deliver)."""

    where: str
    start: str | None  # the store's applied commit before the run
    head: str
    steps: int
    dry_run: bool
    verify: bool
    results: tuple[UnitResult, ...]
    failures: tuple[str, ...]
    notes: tuple[str, ...]
    errors: tuple[str, ...]
    latest: StoreState  # the state last read or written
    version: str | None  # the store's version after the run's writes
    recorded: frozenset[str]  # ids of the outbox entries this run wrote to the store
    notifications: tuple[OutboxEntry, ...]  # every notification of the run, as it ended

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def counts(self) -> dict[str, int]:
        return {o: self.count(o) for o in OUTCOMES}

    @property
    def exit_code(self) -> int:
        """1 when a change was blocked or a write failed, else 0."""
        return 1 if self.failures or self.count("blocked") else 0

    def outputs(self, version: str | None) -> dict[str, str]:
        """The step outputs (docs/action.md): the counts, whether the run stopped at a failure, and the
        store after it (`version`: the store's version once the outbox was delivered)."""
        counts = {o: str(n) for o, n in self.counts.items()}
        return {**counts, "failed": "true" if self.failures else "false", "store-version": version or "",
                "store-commit": self.latest.applied_commit or ""}


# --- trees and views ---------------------------------------------------------------------------------


class _Trees:
    """Trees by commit for one landed range, each opened once (a git tree holds a `git cat-file`)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._open: dict[str, ClosableTree] = {}

    def at(self, sha: str) -> ClosableTree:
        if sha not in self._open:
            self._open[sha] = self.history.tree(sha)
        return self._open[sha]

    def close(self) -> None:
        for tree in self._open.values():
            tree.close()


def _same_rules(trees: _Trees, a: str, b: str) -> bool:
    """Whether two commits hold the same policy and CODEOWNERS (a commit not in the clone: unknown, so no)."""
    try:
        return approvals.same_rules(trees.at(a), trees.at(b))
    except GitopsFlagsError:
        return False


@dataclass(frozen=True)
class _View:
    era: reconcile.Era
    policy: Policy
    parent_policy: Policy | None
    diff: changes.Diff
    todo: list[changes.Change]


@dataclass(frozen=True)
class RunOutbox:
    """Builds this run's outbox entries (pure given the run's results so far)."""

    outbound: notify.Outbound
    where: str
    head: str
    now: datetime

    def for_write(self, report: Report, new: Sequence[UnitResult] = ()) -> list[OutboxEntry]:
        """What a write adds: the webhook message so far, and the comments of the PRs `new` touches
        (with every result of this run for each, so a PR merged as several commits gets one comment)."""
        prs = {r.unit.pull.number for r in new if r.unit.pull is not None}
        return notify.apply_entries([*report.results, *new], self.outbound, store=self.where, head=self.head,
                                    now=self.now, failures=report.failures, prs=prs)

    def complete(self, report: Report) -> list[OutboxEntry]:
        """Every notification of the run, as it ended (including failures the store could not record)."""
        return notify.apply_entries(report.results, self.outbound, store=self.where, head=self.head,
                                    now=self.now, failures=report.failures)


# --- the walker --------------------------------------------------------------------------------------


class Walker:
    """Applies the steps in order, one store write per commit, remembering what it wrote."""

    def __init__(self, history: History, store: Store, snapshot: StoreSnapshot, now: datetime, *,
                 verify: bool, dry_run: bool, source: MergedPullSource | None, head_policy: Policy | None,
                 order: list[str], outbox: RunOutbox) -> None:
        self.history, self.store, self.snapshot, self.now = history, store, snapshot, now
        self.verify, self.dry_run, self.source, self.head_policy = verify, dry_run, source, head_policy
        start = snapshot.state.applied_commit
        self.order = ([start] if start else []) + order
        self.clean: str | None = None  # the last commit walked whose units are all done
        self.distrust_policy = False  # a policy change was not approved: its on_unapproved is not trusted
        self.outbox = outbox
        self.latest: StoreState = snapshot.state  # the state last read or written: its outbox is pending
        self.version: str | None = snapshot.version
        self.recorded: set[str] = set()  # ids of the outbox entries this run wrote to the store

    def walk(self, steps: Sequence[Step], report: Report) -> None:
        """Every step in order, stopping at the first failure; then move the applied commit on."""
        index = 0
        while index < len(steps):
            taken = self.step(steps, index, report)
            if not taken:
                return
            index += taken
        self.finish(report)

    def _wrote(self, state: StoreState, version: str | None) -> None:
        self.latest = state
        self.version = version
        self.recorded.update(e.id for e in state.outbox)

    def step(self, steps: Sequence[Step], index: int, report: Report) -> int:
        """Apply the landed range that starts at `steps[index]`; the number of steps it took (0: stop)."""
        trees = _Trees(self.history)
        try:
            return self._land(steps, index, trees, report)
        finally:  # each tree holds a `git cat-file` process
            trees.close()

    def _view(self, step: Step, commit: str, trees: _Trees) -> _View:
        """The diff from the step's base to `commit` (the end of its landed range), and its era."""
        tree = trees.at(commit)
        parent_policy: Policy | None = None
        if step.baseline:
            era: reconcile.Era = "baseline"
            policy, _ = validate.read_policy(tree)
            changed: list[str] | None = None
            base_tree: Tree = trees.at(step.base) if step.base else EMPTY
        else:
            assert step.base is not None
            base_tree = trees.at(step.base)
            parent_policy, _ = validate.read_policy(base_tree)
            era = reconcile.era_for(parent_policy is not None, governance_started=True)
            policy = parent_policy or validate.read_policy(tree)[0]
            changed = self.history.changed_paths(step.base, commit)
        policy = policy or self.head_policy
        if policy is None:
            raise GitopsFlagsError(
                f"no usable policy ({POLICY_PATH}) at {commit[:12]} or at the head: fix the policy "
                "first (`gitops-flags validate`)"
            )
        diff = changes.diff(base_tree, tree, policy, changed=changed)
        state = self.snapshot.state
        todo = [c for c in diff.changes if not reconcile.done(state, unit_id(commit, c.ident()))]
        return _View(era, policy, parent_policy, diff, todo)

    def _land(self, steps: Sequence[Step], index: int, trees: _Trees, report: Report) -> int:
        first = steps[index]
        view = self._view(first, first.commit, trees)
        if not view.todo:
            self.clean = first.commit
            return 1
        group = [first]
        pull: MergedPull | None = None
        evaluation = None
        differs: set[str] = set()
        extra: list[Unit] = []
        if self.verify and view.era == "governed":
            assert self.source is not None and first.base is not None
            try:
                pull = self.source.pull_for_commit(first.commit)
                if pull is not None:
                    group = self._range(steps, index, pull)
                    if len(group) > 1:  # a rebase merge: judge and serve the state at the range's end
                        end = group[-1].commit
                        extra = self._intermediates(group, pull, trees)
                        view = self._view(first, end, trees)
                    evaluation = self._evaluate(pull, first.base, trees)
                    differs = self._differs(pull, view.diff.changes, trees.at(group[-1].commit))
            except (GitopsFlagsError, OSError) as exc:
                error = f"looking up the PR of {first.commit[:12]}: {exc}"
                self._fail(first.commit, view.todo, error, report)
                return 0
        on_unapproved: reconcile.OnUnapproved = "block"
        if view.parent_policy is not None and not self.distrust_policy:
            on_unapproved = view.parent_policy.options.on_unapproved
        end = group[-1].commit
        units = reconcile.plan_units(
            end, view.diff, trees.at(end), era=view.era, verify=self.verify, pull=pull,
            evaluation=evaluation, on_unapproved=on_unapproved, differs=differs,
        )  # fmt: skip
        return len(group) if self._write(end, [*extra, *units], report) else 0

    def _range(self, steps: Sequence[Step], index: int, pull: MergedPull) -> list[Step]:
        """The steps of the PR's landed range from `steps[index]`: the commits GitHub associates with the
        same merged PR, up to its merge commit. A commit of another PR, or a direct push, ends the range:
        it is never judged as part of this one."""
        group = [steps[index]]
        later = [s.commit for s in steps[index + 1 :]]
        if pull.merge_commit in (None, steps[index].commit) or pull.merge_commit not in later:
            return group
        assert self.source is not None
        for step in steps[index + 1 :]:
            found = self.source.pull_for_commit(step.commit)
            if step.baseline or found is None or found.number != pull.number:
                break
            group.append(step)
            if step.commit == pull.merge_commit:
                break
        return group

    def _intermediates(self, group: Sequence[Step], pull: MergedPull, trees: _Trees) -> list[Unit]:
        """The states the range's earlier commits introduced that its end does not keep: recorded, never
        served."""
        end = group[-1].commit
        units: list[Unit] = []
        for step in group[:-1]:
            own = self._view(step, step.commit, trees)
            if not own.todo:
                continue
            later = changes.diff(trees.at(step.commit), trees.at(end), own.policy,
                                 changed=self.history.changed_paths(step.commit, end))
            undone = {c.ident() for c in later.changes}
            kept = [c for c in own.todo if c.ident() in undone]
            units += reconcile.intermediate_units(step.commit, kept, end, pull)
        return units

    def _evaluate(self, pull: MergedPull, parent: str, trees: _Trees) -> Evaluation:
        """The PR's approvals under its base policy and, when the rules differ, under the policy of the
        commit it landed on: a policy tightened after the PR was opened binds it too."""
        assert self.source is not None
        evaluation = self.source.evaluate(pull)
        if pull.base_sha is None or _same_rules(trees, pull.base_sha, parent):
            return evaluation
        landed = self.source.evaluate(pull, policy_at=parent)
        return approvals.combine(
            evaluation, f"under PR #{pull.number}'s base policy (at {pull.base_sha[:12]})",
            landed, f"under the policy where it landed (at {parent[:12]}, the landed range's first parent)",
        )

    def _differs(self, pull: MergedPull, items: Sequence[changes.Change], end: Tree) -> set[str]:
        """The files of `items` whose whole content as landed is not the approved head's."""
        assert self.source is not None
        paths = {path for change in items for path in approvals.change_files(change)}
        return {p for p in sorted(paths) if end.read(p) != self.source.read(pull.head_sha, p)}

    def _write(self, commit: str, units: Sequence[Unit], report: Report) -> bool:
        holder: list[tuple[reconcile.Applied, Update]] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            holder.clear()
            applied = reconcile.apply_units(snapshot, units, self.now, advance_to=commit, order=self.order,
                                            where=self.store.where)
            if applied is None:
                return None
            # The notifications this commit owes travel in the same write as its units.
            wanted = applied.update
            if not self.dry_run:
                entries = self.outbox.for_write(report, applied.results)
                wanted = replace(wanted, state=wanted.state.with_outbox(entries))
            holder.append((applied, wanted))
            return wanted

        try:
            if self.dry_run:
                update_ = decide(self.snapshot)
                if update_ is not None:
                    self.snapshot = _snapshot(update_, self.snapshot.version)
            else:
                version = update(self.store, decide)
                if holder:
                    self.snapshot = _snapshot(holder[0][1], version)
                    self._wrote(holder[0][1].state, version)
        except (GitopsFlagsError, OSError) as exc:
            changes_ = [u.change for u in units]
            return self._fail(commit, changes_, f"writing the store for {commit[:12]}: {exc}", report)
        results = holder[0][0].results if holder else ()
        report.results.extend(results)
        if reconcile.blocks_policy(results):
            self.distrust_policy = True
            report.notes.append(
                f"a change to {POLICY_PATH} at {commit[:12]} was not approved: later commits in this run are "
                "judged with on_unapproved: block"
            )
        self.clean = commit
        return True

    def _fail(self, commit: str, todo: Sequence[changes.Change], error: str, report: Report) -> bool:
        report.failures.append(f"{error} — the next run resumes here")
        report.errors.append(error)
        if self.dry_run:
            return False

        holder: list[StoreState] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            state = reconcile.failed(snapshot.state, commit, todo, self.now, error)
            state = _advanced(state, self.clean, self.order)
            state = state.with_outbox(self.outbox.for_write(report))  # the webhook tells of the failure
            holder[:] = [state]
            return Update(state, snapshot.documents, (), f"gitops-flags apply {commit[:12]}: failed")

        try:
            version = update(self.store, decide)
            if version is not None:
                self._wrote(holder[0], version)
        except (GitopsFlagsError, OSError) as exc:
            report.errors.append(f"the failure could not be recorded in the store either: {exc}")
        return False

    def finish(self, report: Report) -> None:
        """Move applied_commit over trailing commits that had nothing to apply."""
        if self.clean is None or self.dry_run:
            return
        target = self.clean

        holder: list[Update] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            wanted = reconcile.advance_only(snapshot, target, self.order)
            holder[:] = [wanted] if wanted is not None else []
            return wanted

        try:
            version = update(self.store, decide)
            if version is not None:
                self._wrote(holder[0].state, version)
        except (GitopsFlagsError, OSError) as exc:
            report.failures.append(f"recording the applied commit {target[:12]}: {exc}")
            report.errors.append(f"recording the applied commit {target[:12]}: {exc}")

    def result(self, report: Report, *, head: str, steps: int, start: str | None) -> ApplyResult:
        return ApplyResult(
            where=self.store.where, start=start, head=head, steps=steps, dry_run=self.dry_run,
            verify=self.verify, results=tuple(report.results), failures=tuple(report.failures),
            notes=tuple(report.notes), errors=tuple(report.errors),
            latest=self.latest, version=self.version,
            recorded=frozenset(self.recorded), notifications=tuple(self.outbox.complete(report)),
        )  # fmt: skip


def _snapshot(wrote: Update, version: str | None) -> StoreSnapshot:
    documents = {env: dict(doc) for env, doc in wrote.documents.items()}
    return StoreSnapshot(wrote.state, documents, version)


def _advanced(state: StoreState, to: str | None, order: Sequence[str]) -> StoreState:
    if to is not None and reconcile.position(to, order) > reconcile.position(state.applied_commit, order):
        return state.with_applied_commit(to)
    return state


# --- the use case ------------------------------------------------------------------------------------


def run(history: History, store: Store, snapshot: StoreSnapshot, steps: Sequence[Step], *, head: str,
        now: datetime, verify: bool, dry_run: bool, source: MergedPullSource | None,
        head_policy: Policy | None, outbound: notify.Outbound, notes: Sequence[str] = ()) -> ApplyResult:
    """Apply `steps` (from `walk.plan_walk`) to the store read as `snapshot`."""
    report = Report(notes=list(notes))
    walker = Walker(history, store, snapshot, now, verify=verify, dry_run=dry_run, source=source,
                    head_policy=head_policy, order=[s.commit for s in steps],
                    outbox=RunOutbox(outbound, store.where, head, now))
    walker.walk(steps, report)
    return walker.result(report, head=head, steps=len(steps), start=snapshot.state.applied_commit)


class _Nowhere:
    """The store of a dry walk that starts at a given commit: only its name is ever read."""

    where = "nowhere (judged, not applied)"


def judge_commits(history: History, base: str, head: str, source: MergedPullSource, now: datetime,
                  head_policy: Policy | None) -> ApplyResult:
    """What apply would decide for the first-parent commits base..head, written nowhere: the same landed
    ranges, whole-file comparison and two policies. `check` runs it on a merge queue's group."""
    steps = steps_between(history, base, head)
    snapshot = StoreSnapshot(StoreState().with_applied_commit(base), {}, None)
    return run(history, cast(Store, _Nowhere()), snapshot, steps, head=head, now=now, verify=True,
               dry_run=True, source=source, head_policy=head_policy,
               outbound=notify.Outbound("merge-group"))
