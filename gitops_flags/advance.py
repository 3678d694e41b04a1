"""The advance use case: which due rollouts move one stage, given the store, the flag files at HEAD, the
gate results and the time; and the run that gathers the gate results and writes the store.

`decide` is pure. `run` reaches the world only through ports: the `Store` (compare-and-swap writes) and a
gate evaluator (the health adapter); the time is a value. Texts are `advance_report`'s.

Advance changes only rollout percentages. The flag at HEAD is used for the gate definition and to
recompile the entry, so it must be what apply last applied: a rollout whose plan or flag entry at HEAD
differs from the store (a merge apply has not processed yet, or a change apply refused) is left alone.
On a conflict (another run wrote first) `run` reads again and decides again, reusing the gate results it
already has, so two concurrent runs make one advance.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from . import egress, flagd, rollout, validate
from .model import POLICY_PATH, Flag, Policy, RolloutPlan
from .problems import GitopsFlagsError, Problem
from .store.base import ConflictError, Store, StoreSnapshot, Update
from .store.state import GateResult, OutboxEntry, RolloutState, StoreState, plan_hash
from .tree import Tree

ATTEMPTS = 5


def read_policy(tree: Tree) -> Policy | None:
    """The policy at HEAD; None when there is none (defaults apply); an invalid one is an error."""
    if tree.read(POLICY_PATH) is None:
        return None
    policy, problems = validate.read_policy(tree)
    if policy is None:
        listed = "; ".join(f"{p.location()}: {p.message}" for p in problems if p.severity == "error")
        raise GitopsFlagsError(f"the policy cannot be used: {listed}")
    return policy


@dataclass(frozen=True)
class Head:
    """A flag file at HEAD: the flag, or why it cannot be used."""

    path: str | None
    flag: Flag | None
    problem: str | None = None


class FlagFiles:
    """Flag files at HEAD found by key (the file's stem), read on first use."""

    def __init__(self, tree: Tree, policy: Policy | None) -> None:
        self._tree = tree
        self._policy = policy
        # What gates may send and reach: the policy at HEAD of the default branch (reviewed, merged).
        self.gate_rules = policy.health_checks.rules() if policy is not None else egress.Rules()
        self._index: dict[str, list[str]] | None = None
        self._read: dict[str, Head] = {}

    def get(self, key: str) -> Head:
        if key not in self._read:
            self._read[key] = self._load(key)
        return self._read[key]

    def _load(self, key: str) -> Head:
        if self._index is None:
            flags_dir = (self._policy.flags_dir if self._policy else "flags").strip("/")
            self._index = {}
            for path in self._tree.paths(flags_dir + "/"):
                if validate.is_flag_path(path, self._policy):
                    stem = posixpath.splitext(posixpath.basename(path))[0]
                    self._index.setdefault(stem, []).append(path)
        paths = self._index.get(key, [])
        if not paths:
            return Head(None, None)
        if len(paths) > 1:
            return Head(paths[0], None, f"more than one file defines {key}: {', '.join(paths)}")
        flag, problems = validate.read_flag(self._tree, paths[0])
        if flag is None:
            errors = [p for p in problems if p.severity == "error"]
            errors = errors or [Problem(paths[0], None, None, "unreadable")]
            return Head(paths[0], None, "; ".join(f"{p.location()}: {p.message}" for p in errors[:3]))
        return Head(paths[0], flag)


class MissingGate(KeyError):
    """decide() was called without the gate result a due rollout needs (a bug in the caller)."""


@dataclass(frozen=True)
class Outcome:
    """What this run found or did for one (flag, environment) rollout."""

    key: str
    environment: str
    before: RolloutState
    after: RolloutState
    event: rollout.Event | None = None
    gate: GateResult | None = None
    note: str = ""  # why nothing happened (waiting for apply, frozen, ...)
    problem: bool = False  # a configuration error (exit 2)

    @property
    def ident(self) -> str:
        return f"{self.key}@{self.environment}"


@dataclass(frozen=True)
class Decision:
    outcomes: tuple[Outcome, ...]
    update: Update | None


def blocker(key: str, environment: str, state: RolloutState, head: Head, snapshot: StoreSnapshot
            ) -> tuple[str, bool] | None:
    """Why advance must leave this rollout alone (message, is a configuration error), or None."""
    if head.problem is not None:
        return f"the flag file {head.path} cannot be read at HEAD: {head.problem}", True
    pending = "waiting for apply: "
    if head.flag is None:
        return pending + f"no flag file defines {key} at HEAD", False
    env = head.flag.environments.get(environment)
    if env is None or env.rollout is None:
        return pending + f"the rollout in {environment} was removed at HEAD", False
    if plan_hash(env.rollout) != state.plan_hash:
        return pending + f"the rollout plan at HEAD ({head.path}) is not the one applied", False
    entry = _entry(snapshot, key, environment)
    if entry is None:
        return f"the store has no {environment} entry for {key} (run apply to repair it)", True
    try:
        expected = flagd.compile_flag(head.flag, environment, state, _commit(snapshot, entry, environment))
    except GitopsFlagsError as exc:
        return f"{head.path}: {exc}", True
    if _without_metadata(expected) != _without_metadata(entry):
        return pending + f"{head.path} at HEAD differs from what the store serves", False
    if not env.enabled:
        return "frozen: the flag is disabled here (kill switch)", False
    return None


def decide(snapshot: StoreSnapshot, heads: Callable[[str], Head], gates: Mapping[tuple[str, str], GateResult],
           now: datetime, run_url: str | None = None) -> Decision:
    """Pure: what this run does, given the store, the flags at HEAD and the gate results at hand (a due
    rollout that needs a gate and has none in `gates` is left for the caller to evaluate first)."""
    state = snapshot.state
    documents = {env: dict(doc) for env, doc in snapshot.documents.items()}
    outcomes: list[Outcome] = []
    audit: list[dict[str, Any]] = []
    for key in sorted(state.rollouts):
        for environment, current in sorted(state.rollouts[key].items()):
            try:  # one rollout's bad state or flag file must not stop the others: it is reported instead
                if not rollout.due(current, now):
                    continue
                head = heads(key)
                blocked = blocker(key, environment, current, head, snapshot)
                if blocked is not None:
                    note, problem = blocked
                    outcomes.append(Outcome(key, environment, current, current, note=note, problem=problem))
                    continue
                assert head.flag is not None
                plan = _plan(head.flag, environment)
                gate = gates.get((key, environment)) if plan.health_check is not None else None
                if rollout.needs_gate(current, now) and plan.health_check is not None and gate is None:
                    raise MissingGate(f"no gate result for {key}@{environment}")  # the caller's mistake
                new, event = rollout.advance(current, now, gate, plan.on_failure)
                if event is not None:
                    entry = _entry(snapshot, key, environment)
                    assert entry is not None  # blocker() checked
                    compiled = flagd.compile_flag(head.flag, environment, new,
                                                  _commit(snapshot, entry, environment))
            except MissingGate:
                raise
            except Exception as exc:
                note = f"cannot advance this rollout: {type(exc).__name__}: {exc}"
                outcomes.append(Outcome(key, environment, current, current, note=note, problem=True))
                continue
            outcomes.append(Outcome(key, environment, current, new, event, gate))
            if event is None:
                continue
            state = state.with_rollout(key, environment, new)
            doc = documents[environment]
            documents[environment] = {**doc, "flags": {**doc["flags"], key: compiled}}
            audit.append(audit_record(key, environment, current, event, run_url))
    if not audit:
        return Decision(tuple(outcomes), None)
    events = ", ".join(f"{o.ident} {o.event.kind}" for o in outcomes if o.event)
    update = Update(state, documents, audit, f"gitops-flags advance: {events}")
    return Decision(tuple(outcomes), update)


def gates_needed(snapshot: StoreSnapshot, heads: Callable[[str], Head], now: datetime
                 ) -> list[tuple[str, str, RolloutPlan]]:
    """The (flag, environment, plan) whose gate this run must evaluate before deciding."""
    wanted = []
    for key in sorted(snapshot.state.rollouts):
        for environment, current in sorted(snapshot.state.rollouts[key].items()):
            try:
                if not rollout.needs_gate(current, now):
                    continue
                head = heads(key)
                if blocker(key, environment, current, head, snapshot) is not None or head.flag is None:
                    continue
                plan = _plan(head.flag, environment)
            except Exception:  # decide() reports it, for this rollout only
                continue
            if plan.health_check is not None:
                wanted.append((key, environment, plan))
    return wanted


def audit_record(key: str, environment: str, before: RolloutState, event: rollout.Event,
                 run_url: str | None) -> dict[str, Any]:
    summary = f"{event.kind} {event.before}% → {event.after}% (stage {event.stage_label})"
    record: dict[str, Any] = {
        "time": event.at.isoformat().replace("+00:00", "Z"),  # the same form as apply's records
        "command": "advance",
        "change_type": "rollout",
        "event": event.kind,
        "summary": f"{summary}: {event.reason}" if event.reason else summary,
        "kind": "flag",
        "key": key,
        "flag": key,
        "environment": environment,
        "variant": before.variant,
        "before": {"percentage": before.percentage, "status": before.status},
        "after": {"percentage": event.after, "stage": event.stage_label, "status": _status_after(event)},
        "pr": before.pr,
    }
    if event.reason:
        record["reason"] = event.reason
    if event.gate is not None:
        record["gate"] = event.gate.model_dump(mode="json")
    if run_url:
        record["run_url"] = run_url
    return record


def _status_after(event: rollout.Event) -> str:
    return {"advanced": "running", "started": "running", "resumed": "running"}.get(event.kind, event.kind)


def _plan(flag: Flag, environment: str) -> RolloutPlan:
    plan = flag.environments[environment].rollout
    assert plan is not None  # blocker() checked
    return plan


def _entry(snapshot: StoreSnapshot, key: str, environment: str) -> dict[str, Any] | None:
    flags = snapshot.documents.get(environment, {}).get("flags")
    entry = flags.get(key) if isinstance(flags, dict) else None
    return entry if isinstance(entry, dict) else None


def _commit(snapshot: StoreSnapshot, entry: Mapping[str, Any], environment: str) -> str:
    """The commit apply compiled the entry from (kept: advance changes no flag definition)."""
    for metadata in (entry.get("metadata"), snapshot.documents.get(environment, {}).get("metadata")):
        if isinstance(metadata, dict) and isinstance(metadata.get("gitopsCommit"), str):
            return str(metadata["gitopsCommit"])
    return snapshot.state.applied_commit or ""


def _without_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "metadata"}


def exit_code(outcomes: tuple[Outcome, ...]) -> int:
    if any(o.problem for o in outcomes):
        return 2
    if any(o.gate is not None and o.gate.outcome != "passed" for o in outcomes):
        return 1
    return 0




# --- the run -----------------------------------------------------------------------------------------

GateEvaluator = Callable[[RolloutPlan, egress.Rules], GateResult]  # the health adapter, for one plan's gate
Reader = Callable[[int], StoreSnapshot]  # the store read through the seal guard, given the attempt number
OutboxFor = Callable[[tuple[Outcome, ...]], list[OutboxEntry]]  # the notifications of a decision's events


@dataclass(frozen=True)
class AdvanceResult:
    """One advance run, explained: the decision, the snapshot it was made on, and the store after it."""

    decision: Decision
    snapshot: StoreSnapshot
    latest: StoreState  # the state now in the store: its outbox is what is left to deliver
    version: str | None  # the version this run wrote (None: nothing written)
    dry_run: bool

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        return self.decision.outcomes

    @property
    def total(self) -> int:
        """The rollouts in the store."""
        return sum(len(envs) for envs in self.snapshot.state.rollouts.values())

    def count(self, *kinds: str) -> int:
        """Events of these kinds (`advanced`, `rolled_back`, ...) in this run."""
        return sum(1 for o in self.outcomes if o.event is not None and o.event.kind in kinds)

    @property
    def exit_code(self) -> int:
        return exit_code(self.outcomes)

    def outputs(self, version: str | None) -> dict[str, str]:
        """The step outputs (docs/action.md): events by kind, and the store's version after the run."""
        kinds = {"started": ("started",), "advanced": ("advanced",), "completed": ("completed",),
                 "rolled-back": ("rolled_back",), "paused": ("paused",)}
        counts = {name: str(self.count(*of)) for name, of in kinds.items()}
        return {**counts, "store-version": version or self.snapshot.version or ""}


def run(store: Store, read: Reader, files: FlagFiles, evaluate_gate: GateEvaluator, now: datetime, *,
        dry_run: bool, run_url: str | None, outbox: OutboxFor) -> AdvanceResult:
    """Read, gather the gates the due rollouts need, decide, and write once (compare-and-swap). A dry run
    decides and writes nothing."""
    gates: dict[tuple[str, str], GateResult] = {}
    for attempt in range(1, ATTEMPTS + 1):
        snapshot = read(attempt)
        for key, environment, plan in gates_needed(snapshot, files.get, now):
            if (key, environment) not in gates:
                gates[key, environment] = evaluate_gate(plan, files.gate_rules)
        decision = decide(snapshot, files.get, gates, now, run_url)
        if decision.update is None or dry_run:
            return AdvanceResult(decision, snapshot, snapshot.state, None, dry_run)
        # The notifications of these events travel in the same write as the events.
        update = replace(decision.update, state=decision.update.state.with_outbox(outbox(decision.outcomes)))
        try:
            version = store.write(
                update.state, update.documents, snapshot.version, update.audit, update.message)
        except ConflictError:
            if attempt == ATTEMPTS:
                raise
            continue  # another run wrote first: read again, decide again
        return AdvanceResult(decision, snapshot, update.state, version, dry_run)
    raise AssertionError("unreachable")  # pragma: no cover
