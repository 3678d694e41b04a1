"""What `apply` does to the store, decided as pure functions over plain values.

The apply use case (`apply.py`) walks the default branch's first-parent commits from the store's
`applied_commit` to the head, asks a `MergedPullSource` which PR merged each, groups the commits a PR
landed (one merge or squash commit, the replayed commits of a rebase merge) into one *landed range*,
diffs the range's end against the commit before it, evaluates the PR's approvals (under the policy of
its base and of that commit) and hands the results to this module:

- `era_for` says whether a commit is governed (its parent has the policy), part of the baseline (before
  the policy existed: the flags are taken as they are) or ungoverned (the policy vanished: nothing can be
  verified, so nothing is applied);
- `judge` decides per change: applied (approved, and every file of it exactly the approved head's),
  warned (not approved, `on_unapproved: warn`) or blocked, with the reason and the approvers per step;
- `intermediate_units` records the states inside a range that its end does not keep: `skipped`, never
  served (a PR lands as one unit);
- `plan_units` turns a commit's changes into units of work (`<commit>/<change ident>`);
- `apply_units` applies a commit's units to a store snapshot: one flag's compiled entry replaced in one
  environment's flagd document, its rollout reconciled, one audit line and one `UnitOfWork` per change.
  Units already done are skipped, so a re-run never applies anything twice.

Nothing here reads git, GitHub, the store or the clock; `now` is a parameter. At ~460 lines it is kept
whole: judging a change, the unit it becomes, applying it and the audit line it leaves are one decision
read top to bottom.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from . import flagd, rollout
from .approvals import change_files
from .changes import Change, Diff
from .model import POLICY_PATH, Flag
from .problems import GitopsFlagsError
from .result import ChangeResult, Evaluation
from .store.base import StoreSnapshot, Update
from .store.state import RolloutState, StoreState, UnitOfWork, unit_id
from .tree import Tree
from .validate import read_flag

Era = Literal["governed", "baseline", "ungoverned"]
Outcome = Literal["applied", "warned", "blocked", "skipped"]
Approval = Literal["verified", "unverified", "baseline", "missing"]
OnUnapproved = Literal["block", "warn"]

UNVERIFIED = "approvals not verified (--no-verify-approvals)"
BASELINE = "baseline: applied as it was when the policy was adopted (no policy existed to approve it)"


# --- the PR that merged a commit -------------------------------------------------------------------


@dataclass(frozen=True)
class MergedPull:
    number: int
    url: str
    author: str
    head_sha: str  # the PR's head when it was merged: where its approvals are evaluated
    base_sha: str | None  # the policy and CODEOWNERS of this commit judge it
    merge_commit: str | None = None  # the commit GitHub recorded as the merge (the last one of a rebase)


class MergedPullSource(Protocol):
    """The port to GitHub's pull requests, as `apply` needs it (a fake in tests)."""

    def pull_for_commit(self, sha: str) -> MergedPull | None:
        """The merged PR that brought `sha` into the default branch; None for a direct push."""
        ...

    def evaluate(self, pull: MergedPull, policy_at: str | None = None) -> Evaluation:
        """The PR's approvals at its merged head (the `check` pipeline), under the policy and CODEOWNERS
        of its base, or of `policy_at` when given."""
        ...

    def read(self, sha: str, path: str) -> bytes | None:
        """A file at a commit (the PR's head, which a rebase or squash merge leaves off the branch)."""
        ...


# --- judging one change ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    approval: Approval
    approvers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # step id → logins
    reason: str = ""


def era_for(parent_has_policy: bool, governance_started: bool) -> Era:
    """A commit is governed when its parent has the policy file. Before the policy ever existed, commits
    are the baseline; once it has existed, a parent without it means nothing can be verified."""
    if parent_has_policy:
        return "governed"
    return "ungoverned" if governance_started else "baseline"


def judge(
    change: Change,
    commit: str,
    *,
    era: Era,
    verify: bool,
    pull: MergedPull | None,
    evaluation: Evaluation | None,
    on_unapproved: OnUnapproved,
    differs: Collection[str] = (),
) -> Judgement:
    """Whether one change landed at `commit` may be applied, and why. `commit` is the end of the PR's
    landed range; `differs` holds the files whose whole content there is not the approved head's."""
    if not verify:
        return Judgement("applied", "unverified", reason=UNVERIFIED)
    if era == "baseline":
        return Judgement("applied", "baseline", reason=BASELINE)
    found = _result_for(change, evaluation)
    approvers = {s.id: s.approved_by for s in found.steps} if found else {}
    reason = _unapproved(change, commit, era, pull, evaluation, found, differs)
    if reason is None:
        return Judgement("applied", "verified", approvers)
    # Without a usable policy at the parent there is no `on_unapproved` to read: fail closed.
    outcome: Outcome = "warned" if on_unapproved == "warn" and era == "governed" else "blocked"
    return Judgement(outcome, "missing", approvers, reason)


def _result_for(change: Change, evaluation: Evaluation | None) -> ChangeResult | None:
    if evaluation is None:
        return None
    for result in evaluation.changes:
        if result.change.ident() == change.ident():
            return result
    return None


def _unapproved(
    change: Change,
    commit: str,
    era: Era,
    pull: MergedPull | None,
    evaluation: Evaluation | None,
    found: ChangeResult | None,
    differs: Collection[str] = (),
) -> str | None:
    """Why the change is not approved, or None when it is."""
    if era == "ungoverned":
        return "the parent commit has no usable policy, so nothing in this commit can be verified"
    if pull is None:
        return f"no merged pull request brought {commit[:12]} into the branch (a direct push or bypass)"
    if evaluation is None:
        return f"PR #{pull.number} could not be evaluated"
    if found is None:
        return f"PR #{pull.number} does not contain this change: its reviewers did not approve it"
    if found.verdict != "approved":
        why = f": {found.reason}" if found.reason else ""
        # The steps say why (a stale approval, the last pusher, a team that could not be read).
        details = "; ".join(f"{s.id}: {s.reason}" for s in found.steps
                            if s.state not in ("satisfied", "skipped") and s.reason)
        more = f" ({details})" if details else ""
        return f"PR #{pull.number} is {found.verdict} for this change{why}{more}"
    # A PR lands as one unit: the state at the end of its landed range must be the approved head, file
    # for file and whole (top-level fields, variants, every environment), or nothing of it is served.
    changed = [path for path in change_files(change) if path in differs]
    if changed:
        return (
            f"{changed[0]} as landed at {commit[:12]} is not the file PR #{pull.number} approved at its "
            f"head {pull.head_sha[:12]} (the whole file is compared: a merge, a squash or a later commit "
            "changed it)"
        )
    if _json(found.change.after) != _json(change.after):
        return (
            f"the merged content differs from what PR #{pull.number} approved at its head "
            f"{pull.head_sha[:12]} (the merge changed it)"
        )
    # An approval approves a change, not an end state: a merge that takes the PR's file whole over newer
    # base content (a kill switch that landed since) makes a change its reviewers never saw.
    if _json(found.change.before) != _json(change.before):
        return (
            f"the change as landed at {commit[:12]} starts from another state than the one PR #{pull.number} "
            "was approved against (its base): the merge undid what landed on the branch since, so this is "
            "not the change its reviewers saw"
        )
    return None


def intermediate(change: Change, commit: str, end: str, pull: MergedPull | None) -> Judgement:
    """A state inside a PR's landed range (an earlier commit of a rebase merge) that differs from the
    range's end: never served, only recorded."""
    via = f"PR #{pull.number}" if pull else "the landed range"
    return Judgement(
        "skipped", "missing",
        reason=(f"an intermediate state of {via} at {commit[:12]}: a PR lands as one unit, so only the "
                f"state at {end[:12]} is judged and served; this one never was"),
    )


# --- units of work ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One change of one commit, decided and ready to apply."""

    id: str
    commit: str
    change: Change
    judgement: Judgement
    pull: MergedPull | None = None
    flag: Flag | None = None  # the flag at `commit`, for flag changes that leave it in the environment

    def input(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "change": self.change.to_dict(),
            "pr": self.pull.number if self.pull else None,
            "approval": self.judgement.approval,
        }


def plan_units(
    commit: str,
    diff: Diff,
    tree: Tree,
    *,
    era: Era,
    verify: bool,
    pull: MergedPull | None,
    evaluation: Evaluation | None,
    on_unapproved: OnUnapproved,
    differs: Collection[str] = (),
) -> tuple[Unit, ...]:
    """The units of one commit, in the diff's order. A flag file that does not validate at the commit is
    blocked whatever the approvals say: there is nothing sound to serve."""
    units: list[Unit] = []
    flags: dict[str, Flag | None] = {}
    for change in diff.changes:
        judgement = judge(
            change, commit, era=era, verify=verify, pull=pull, evaluation=evaluation,
            on_unapproved=on_unapproved, differs=differs,
        )  # fmt: skip
        flag: Flag | None = None
        if change.kind == "flag" and judgement.outcome != "blocked":
            errors = [p for p in diff.problems if p.file == change.path and p.severity == "error"]
            if not errors and change.after is not None:
                if change.path not in flags:
                    flags[change.path] = read_flag(tree, change.path)[0]
                flag = flags[change.path]
            if errors or (change.after is not None and flag is None):
                first = f": {errors[0].location()}: {errors[0].message}" if errors else ""
                why = f"the flag file does not validate{first}"
                judgement = Judgement("blocked", judgement.approval, judgement.approvers, why)
        units.append(Unit(unit_id(commit, change.ident()), commit, change, judgement, pull, flag))
    return tuple(units)


def intermediate_units(
    commit: str, items: Sequence[Change], end: str, pull: MergedPull | None
) -> tuple[Unit, ...]:
    """Audit-only units for the states `commit` introduced inside a landed range that its end undoes or
    changes again: recorded with the PR, never served."""
    return tuple(
        Unit(unit_id(commit, c.ident()), commit, c, intermediate(c, commit, end, pull), pull) for c in items
    )


def done(state: StoreState, unit: str) -> bool:
    """Applied or blocked by an earlier run: never again. (A failed unit is not done: it is retried.)"""
    found = state.unit(unit)
    return found is not None and found.succeeded


def pending(state: StoreState, units: Sequence[Unit]) -> list[Unit]:
    return [u for u in units if not done(state, u.id)]


# --- applying --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitResult:
    unit: Unit
    outcome: Outcome
    reason: str = ""
    rollout: RolloutState | None = None
    environments: tuple[str, ...] = ()  # flagd documents this unit changed


@dataclass(frozen=True)
class Applied:
    update: Update
    results: tuple[UnitResult, ...]


def position(commit: str | None, order: Sequence[str]) -> int:
    """Index of `commit` in the walk (-1: before it, or unknown)."""
    return order.index(commit) if commit in order else -1


def apply_units(
    snapshot: StoreSnapshot,
    units: Sequence[Unit],
    now: datetime,
    *,
    advance_to: str | None,
    order: Sequence[str],
    where: str = "",
) -> Applied | None:
    """Apply the units not yet done, in order, and move `applied_commit` to `advance_to` (when that is
    later in `order` than where the store stands). None when there is nothing to write.

    Pure over the snapshot, so `store.update` may call it again after a compare-and-swap conflict."""
    state = snapshot.state
    documents: dict[str, dict[str, Any]] = dict(snapshot.documents)
    todo = pending(state, units)
    moves = advance_to is not None and position(advance_to, order) > position(state.applied_commit, order)
    if not todo and not moves:
        return None
    results: list[UnitResult] = []
    audit: list[dict[str, Any]] = []
    for unit in todo:
        outcome, reason = unit.judgement.outcome, unit.judgement.reason
        served: RolloutState | None = None
        touched: tuple[str, ...] = ()
        served_ok = outcome in ("applied", "warned")
        if served_ok and unit.change.kind == "flag" and unit.change.environment:
            try:
                state, documents, served = apply_flag_change(state, documents, unit, now)
                touched = (unit.change.environment,)
            except (GitopsFlagsError, ValueError) as exc:  # deterministic: retrying would fail again
                outcome, reason = "blocked", f"cannot be compiled for flagd: {exc}"
        result = UnitResult(unit, outcome, reason, served, touched)
        results.append(result)
        audit.append(audit_record(result, now, snapshot.version, where))
        state = state.with_unit(
            UnitOfWork(id=unit.id, input=unit.input(), output=_output(result), succeeded_at=now)
        )
    if moves and advance_to is not None:
        state = state.with_applied_commit(advance_to)
    commit = units[-1].commit if units else advance_to or ""
    message = _message(commit, results)
    return Applied(Update(state, documents, audit, message), tuple(results))


def apply_flag_change(
    state: StoreState, documents: Mapping[str, dict[str, Any]], unit: Unit, now: datetime
) -> tuple[StoreState, dict[str, dict[str, Any]], RolloutState | None]:
    """One flag's entry in one environment's document, replaced by its compiled form at the unit's commit
    (or removed), and its rollout reconciled. Other flags are left exactly as they are served."""
    change = unit.change
    key, env = change.key, change.environment
    assert env is not None
    flag = unit.flag if change.after is not None else None  # None: the flag left this environment
    env_state = flag.environments.get(env) if flag is not None else None
    doc = documents.get(env) or flagd.compile_environment({}, env, {}, unit.commit)
    flags = dict(doc.get("flags") or {})
    new_rollout: RolloutState | None = None
    if flag is None or env_state is None:
        flags.pop(key, None)
    else:
        pr = unit.pull.number if unit.pull else None
        current = state.rollout(key, env)
        new_rollout = rollout.reconcile_plan(current, env_state.rollout, env_state.enabled, now, pr)
        flags[key] = flagd.compile_flag(flag, env, new_rollout, unit.commit)
    metadata = {**(doc.get("metadata") or {}), "gitopsCommit": unit.commit, "gitopsEnvironment": env}
    new_documents = dict(documents)
    new_documents[env] = {**doc, "flags": flags, "metadata": metadata}
    return state.with_rollout(key, env, new_rollout), new_documents, new_rollout


def advance_only(snapshot: StoreSnapshot, to: str, order: Sequence[str]) -> Update | None:
    """Move `applied_commit` forward over commits that had nothing to apply."""
    if position(to, order) <= position(snapshot.state.applied_commit, order):
        return None
    return Update(snapshot.state.with_applied_commit(to), snapshot.documents, (), f"apply: up to {to[:12]}")


def failed(state: StoreState, commit: str, items: Sequence[Change], now: datetime, error: str) -> StoreState:
    """The state with the changes of `commit` not yet done recorded as failed units (the next run retries
    them). Takes changes, not units: a failure can come before the units are judged (a PR lookup)."""
    for change in items:
        uid = unit_id(commit, change.ident())
        if not done(state, uid):
            data = {"commit": commit, "change": change.to_dict()}
            state = state.with_unit(UnitOfWork(id=uid, input=data, failed_at=now, error=error))
    return state


# --- the audit line --------------------------------------------------------------------------------


def audit_record(
    result: UnitResult, now: datetime, store_version: str | None, where: str = ""
) -> dict[str, Any]:
    """One line of `audit.jsonl` (documented in docs/apply.md)."""
    unit, change, judgement = result.unit, result.unit.change, result.unit.judgement
    pull = unit.pull
    record: dict[str, Any] = {
        "time": _iso(now),
        "event": "apply",
        "outcome": result.outcome,
        "kind": change.kind,
        "key": change.key,
        "flag": change.key if change.kind == "flag" else None,
        "environment": change.environment,
        "change_type": change.change_type,
        "summary": change.summary,
        "before": change.before if change.kind == "flag" else None,
        "after": change.after if change.kind == "flag" else None,
        "merge_commit": unit.commit,
        "pr": pull.number if pull else None,
        "pr_url": pull.url if pull else None,
        "author": pull.author if pull else None,
        "approval": judgement.approval,
        "approvers": {step: list(who) for step, who in judgement.approvers.items()},
        "reason": result.reason,
        "unit": unit.id,
        "store_version": store_version,
        "store": where or None,
    }
    if result.rollout is not None:
        record["rollout"] = rollout_summary(result.rollout)
    return record


def rollout_summary(state: RolloutState) -> dict[str, Any]:
    return {
        "status": state.status,
        "percentage": flagd.served_percentage(state),
        "stage": state.stage_index + 1,
        "stages": len(state.stages),
        "variant": state.variant,
        "entered_at": _iso(state.entered_at) if state.entered_at else None,
        "start_at": _iso(state.start_at) if state.start_at else None,
    }


def _output(result: UnitResult) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": result.outcome, "documents": list(result.environments)}
    if result.reason and result.outcome != "applied":
        out["reason"] = result.reason
    if result.rollout is not None:
        out["rollout"] = rollout_summary(result.rollout)
    return out


def _message(commit: str, results: Sequence[UnitResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    detail = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing new"
    prs = sorted({r.unit.pull.number for r in results if r.unit.pull})
    via = f" (PR {', '.join(f'#{n}' for n in prs)})" if prs else ""
    return f"gitops-flags apply {commit[:12]}{via}: {detail}"


def blocks_policy(results: Sequence[UnitResult]) -> bool:
    """A change to the policy file itself was not approved: its `on_unapproved` must not be trusted."""
    return any(
        r.outcome in ("warned", "blocked")
        and r.unit.change.kind == "governance"
        and r.unit.change.key == POLICY_PATH
        for r in results
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
