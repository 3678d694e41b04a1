"""Staged rollouts: when a stage is due, and what a run or an approved plan edit does to a rollout.

Pure functions over `RolloutState` values: no I/O and no clock (`now` is a parameter), so every decision
can be replayed in a test. `apply` calls `start` / `reconcile_plan` when a merged PR adds or edits a
rollout; the scheduled `advance` run calls `due` and `advance`. The rules are documented in
docs/rollouts.md.

Pauses come from four places (the plan, the kill switch, a failed gate, an inconclusive gate) and each
ends differently, so a paused rollout records its cause in `paused_by` (and says it in words in `reason`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .model import RolloutPlan
from .store.state import (
    GATE_FAILED,
    GATE_INCONCLUSIVE,
    REASON_KILL_SWITCH,
    REASON_PLAN,
    GateResult,
    OnFailure,
    PauseCause,
    RolloutEvent,
    RolloutHistoryEntry,
    RolloutState,
    plan_hash,
)

__all__ = ["GATE_FAILED", "GATE_INCONCLUSIVE", "REASON_KILL_SWITCH", "REASON_PLAN", "OnFailure", "PauseCause"]

NEVER = datetime.max.replace(tzinfo=UTC)
MAX_HISTORY = 100  # pause/resume cycles must not grow state.json without bound


@dataclass(frozen=True)
class Event:
    """What one call did to a rollout, for the audit log, the job summary and the PR comment."""

    kind: RolloutEvent
    at: datetime
    before: int  # percentage served before
    after: int  # percentage served after
    stage_index: int  # after the event; -1 before the first stage
    stages: int
    reason: str = ""
    gate: GateResult | None = None

    @property
    def stage_label(self) -> str:
        return f"{self.stage_index + 1}/{self.stages}"


# --- reading a state ---------------------------------------------------------------------------------


def pause_cause(state: RolloutState) -> PauseCause | None:
    """Why a paused rollout is paused (None when it is not paused)."""
    return state.paused_by if state.status == "paused" else None


def started(state: RolloutState) -> bool:
    return state.entered_at is not None


def next_index(state: RolloutState) -> int | None:
    """The stage to enter next: the first stage above the current percentage (after a PR changed the
    stage list this is not always `stage_index + 1`)."""
    for i, percentage in enumerate(state.stages):
        if percentage > state.percentage:
            return i
    return None


def retrying(state: RolloutState) -> bool:
    """A rollout held by an inconclusive gate: later runs evaluate the gate again."""
    return pause_cause(state) == "gate_inconclusive"


def next_due(state: RolloutState) -> datetime | None:
    """When the time rule next allows a step (start or next stage); None when no step is ahead or the
    rollout waits for a person (paused, rolled back). A scheduled rollout without `start_at` is due now:
    its `entered_at` is None too, so this also returns None; `due()` is the authority."""
    if state.status == "scheduled":
        return state.start_at
    if not (state.status == "running" or retrying(state)) or next_index(state) is None:
        return None
    candidates = [state.start_at] if state.start_at is not None else []
    if state.entered_at is not None:
        try:
            candidates.append(state.entered_at + timedelta(seconds=state.stage_delay_seconds))
        except OverflowError:  # a delay recorded before validate capped them: never due, not a crash
            candidates.append(NEVER)
    return max(candidates) if candidates else None


def due(state: RolloutState, now: datetime) -> bool:
    """A run should act on this rollout now: a scheduled one whose `start_at` has passed, or a running
    one (or one held by an inconclusive gate) whose stage has had its full `stage_delay` since it was
    entered and, if the plan has one, past `start_at`."""
    if state.status == "scheduled":
        return state.start_at is None or now >= state.start_at
    if not (state.status == "running" or retrying(state)) or next_index(state) is None:
        return False
    when = next_due(state)
    return when is None or now >= when


def needs_gate(state: RolloutState, now: datetime) -> bool:
    """Due, and the step is a stage advance (starting a scheduled rollout is not gated: apply starts
    rollouts without a gate too)."""
    return due(state, now) and state.status != "scheduled"


# --- apply: starting and editing ---------------------------------------------------------------------


def start(plan: RolloutPlan, now: datetime, pr: int | None) -> RolloutState:
    """A new rollout as apply records it: scheduled when `start_at` is in the future, paused when the
    plan says `paused: true`, else running at the first stage from `now`."""
    state = RolloutState(
        variant=plan.variant,
        stages=plan.percentages(),
        stage_delay_seconds=plan.delay_seconds(),
        start_at=plan.start_at,
        pr=pr,
        plan_hash=plan_hash(plan),
        on_failure=plan.on_failure,
    )
    if plan.paused:
        return _pause(state, now, "plan", REASON_PLAN)
    if plan.start_at is not None and plan.start_at > now:
        return state
    return _enter(state, 0, now, "started")


def reconcile_plan(
    state: RolloutState | None, plan: RolloutPlan | None, enabled: bool, now: datetime, pr: int | None
) -> RolloutState | None:
    """The rollout after apply brings an approved change of one (flag, environment): its rollout
    section (`plan`, None when removed) and its `enabled`. Idempotent: the same inputs again change
    nothing, so apply may call it for any change of the flag.

    - no plan: no rollout (None); no state yet: `start`.
    - another variant: a new rollout (`start`).
    - a changed plan (its hash): a rollback or a pause by the gate ends (a rolled-back rollout starts
      again from the first stage, a paused one resumes at its stage); a rollout not started yet starts
      over; a running one continues from its current percentage on the new stage list and delay.
    - `paused: true` pauses, `paused: false` resumes a rollout paused by the plan.
    - `enabled: false` (the kill switch) freezes the rollout where it is; `true` again resumes it.
    A resumed rollout waits a full `stage_delay` at its stage before the next one.
    """
    if plan is None:
        return None
    if state is None or state.variant != plan.variant:
        fresh = start(plan, now, pr)
        if state is not None:
            fresh = _with_history(fresh, state.history + fresh.history)
        return _switches(fresh, plan, enabled, now)
    if plan_hash(plan) != state.plan_hash:
        state = _edit(state, plan, now, pr)
    return _switches(state, plan, enabled, now)


def _edit(state: RolloutState, plan: RolloutPlan, now: datetime, pr: int | None) -> RolloutState:
    if state.status == "rolled_back" or not started(state):
        fresh = start(plan, now, pr if state.status == "rolled_back" or state.pr is None else state.pr)
        return _with_history(fresh, state.history + fresh.history)
    stages = plan.percentages()
    at_or_below = [i for i, p in enumerate(stages) if p <= state.percentage]
    edited = _update(
        state,
        stages=stages,
        stage_index=at_or_below[-1] if at_or_below else -1,
        stage_delay_seconds=plan.delay_seconds(),
        start_at=plan.start_at,
        plan_hash=plan_hash(plan),
        on_failure=plan.on_failure,
    )
    if pause_cause(edited) in ("gate_failed", "gate_inconclusive", "other"):
        edited = _resume(edited, now)
    return edited


def _switches(state: RolloutState, plan: RolloutPlan, enabled: bool, now: datetime) -> RolloutState:
    """`enabled` and `paused` from the plan. A pause by the gate outranks both: only a plan edit ends
    it, not a toggle."""
    if state.status in ("completed", "rolled_back"):
        return state
    cause = pause_cause(state)
    if cause in ("gate_failed", "gate_inconclusive", "other"):
        return state
    if not enabled:
        return state if cause == "kill_switch" else _pause(state, now, "kill_switch", REASON_KILL_SWITCH)
    if plan.paused:
        return state if cause == "plan" else _pause(state, now, "plan", REASON_PLAN)
    if cause in ("plan", "kill_switch"):
        return _resume(state, now)
    return state


# --- advance: one step per call ----------------------------------------------------------------------


def advance(
    state: RolloutState, now: datetime, gate: GateResult | None, on_failure: OnFailure = "rollback"
) -> tuple[RolloutState, Event | None]:
    """At most one step. A due scheduled rollout starts (stage 0, not gated). A due running rollout
    enters the next stage when `gate` passed (None: the plan has no gate), with `entered_at = now`, so
    missed runs never skip a stage's wait; reaching 100% completes it. A failed gate rolls back to 0%
    or pauses (`on_failure`); an inconclusive gate pauses, and later runs evaluate it again (a pass
    then advances, a failure acts as above, another inconclusive result changes nothing)."""
    if not due(state, now):
        return state, None
    before = state.percentage
    if state.status == "scheduled":
        new = _enter(state, 0, now, "started")
        return new, _event(new, now, before, "completed" if new.status == "completed" else "started")
    index = next_index(state)
    assert index is not None  # due() checked
    outcome = gate.outcome if gate is not None else "passed"
    detail = gate.detail if gate is not None else ""
    if outcome == "passed":
        kind: RolloutEvent = "completed" if state.stages[index] >= 100 else "advanced"
        new = _enter(_update(state, last_gate=gate or state.last_gate), index, now, kind)
        return new, _event(new, now, before, kind, gate=gate)
    if outcome == "inconclusive":
        if retrying(state):
            return state, None  # still unknown: nothing to record, nobody to notify again
        reason = _reason(GATE_INCONCLUSIVE, detail)
        new = _pause(_update(state, last_gate=gate), now, "gate_inconclusive", reason)
        return new, _event(new, now, before, "paused", new.reason, gate)
    reason = _reason(GATE_FAILED, detail)
    if on_failure == "pause":
        new = _pause(_update(state, last_gate=gate), now, "gate_failed", reason)
        return new, _event(new, now, before, "paused", reason, gate)
    back = _update(state, status="rolled_back", percentage=0, reason=reason, paused_by=None, last_gate=gate)
    new = _record(back, now, "rolled_back")
    return new, _event(new, now, before, "rolled_back", reason, gate)


# --- small steps -------------------------------------------------------------------------------------


def _reason(prefix: str, detail: str) -> str:
    return f"{prefix}: {detail}" if detail else prefix


def _enter(state: RolloutState, index: int, now: datetime, event: RolloutEvent) -> RolloutState:
    percentage = state.stages[index]
    new = _update(
        state,
        stage_index=index,
        percentage=percentage,
        status="completed" if percentage >= 100 else "running",
        entered_at=now,
        reason="",
        paused_by=None,
    )
    if event == "started" and percentage >= 100:
        new = _record(new, now, "started")
        event = "completed"
    return _record(new, now, event)


def _pause(state: RolloutState, now: datetime, cause: PauseCause, reason: str) -> RolloutState:
    return _record(_update(state, status="paused", paused_by=cause, reason=reason), now, "paused")


def _resume(state: RolloutState, now: datetime) -> RolloutState:
    """Back to running at the same stage, which waits a full `stage_delay` again from now (a rollout
    that was never started goes back to scheduled)."""
    if not started(state):
        return _record(_update(state, status="scheduled", reason="", paused_by=None), now, "resumed")
    running = _update(state, status="running", reason="", paused_by=None, entered_at=now)
    return _record(running, now, "resumed")


def _record(state: RolloutState, now: datetime, event: RolloutEvent) -> RolloutState:
    entry = RolloutHistoryEntry(
        stage_index=state.stage_index, percentage=state.percentage, at=now, event=event)
    return _with_history(state, [*state.history, entry])


def _with_history(state: RolloutState, history: list[RolloutHistoryEntry]) -> RolloutState:
    return _update(state, history=history[-MAX_HISTORY:])


def _update(state: RolloutState, **changes: object) -> RolloutState:
    """A copy with `changes`, validated again (`model_copy` alone would skip the model's invariants)."""
    return RolloutState.model_validate({**dict(state), **changes})


def _event(
    state: RolloutState, now: datetime, before: int, kind: RolloutEvent, reason: str = "",
    gate: GateResult | None = None,
) -> Event:
    return Event(kind, now, before, state.percentage, state.stage_index, len(state.stages), reason, gate)
