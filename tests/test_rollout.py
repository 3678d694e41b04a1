"""rollout: start, due, one stage per call, gates, and plan edits by PR (pure, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_flags import rollout
from gitops_flags.model import RolloutPlan
from gitops_flags.store.state import GateOutcome, GateResult, RolloutState, plan_hash

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def plan(**fields: Any) -> RolloutPlan:
    return RolloutPlan.model_validate({"variant": "on", "stage_delay": "1h", **fields})


def gate(outcome: GateOutcome, at: datetime = T0, detail: str = "") -> GateResult:
    return GateResult(at=at, outcome=outcome, detail=detail or f"the gate {outcome}")


def step(state: RolloutState, now: datetime, outcome: GateOutcome | None = "passed",
         on_failure: rollout.OnFailure = "rollback") -> tuple[RolloutState, rollout.Event | None]:
    return rollout.advance(state, now, gate(outcome, now) if outcome else None, on_failure)


def valid(state: RolloutState) -> RolloutState:
    """The state survives a JSON round trip through the model's own checks."""
    assert RolloutState.model_validate_json(state.model_dump_json()) == state
    return state


# --- start ---------------------------------------------------------------------------------------------


def test_start_runs_the_first_stage_from_now() -> None:
    state = rollout.start(plan(), T0, pr=42)
    assert (state.status, state.stage_index, state.percentage, state.entered_at) == ("running", 0, 5, T0)
    assert state.pr == 42 and state.plan_hash == plan_hash(plan())
    assert state.stage_delay_seconds == 3600
    assert [h.event for h in state.history] == ["started"]
    valid(state)


def test_start_in_the_future_is_scheduled_at_zero() -> None:
    state = rollout.start(plan(start_at=T0 + 2 * HOUR), T0, pr=None)
    assert (state.status, state.stage_index, state.percentage, state.entered_at) == ("scheduled", -1, 0, None)
    assert not rollout.due(state, T0 + HOUR)
    assert rollout.due(state, T0 + 2 * HOUR)


def test_start_paused_serves_nothing_until_resumed() -> None:
    state = rollout.start(plan(paused=True), T0, pr=1)
    assert (state.status, state.percentage, state.reason) == ("paused", 0, rollout.REASON_PLAN)
    assert not rollout.due(state, T0 + 10 * HOUR)


def test_single_full_stage_completes_at_once() -> None:
    state = rollout.start(plan(stages=["full"]), T0, pr=1)
    assert (state.status, state.percentage) == ("completed", 100)
    assert [h.event for h in state.history] == ["started", "completed"]


# --- due and advance -----------------------------------------------------------------------------------


def test_due_only_after_the_full_stage_delay() -> None:
    state = rollout.start(plan(), T0, pr=1)
    assert not rollout.due(state, T0 + HOUR - timedelta(seconds=1))
    assert rollout.due(state, T0 + HOUR)
    same, event = step(state, T0 + HOUR - timedelta(seconds=1))
    assert same == state and event is None


def test_a_later_start_at_holds_a_running_rollout() -> None:
    state = rollout.start(plan(), T0, pr=1).model_copy(update={"start_at": T0 + 5 * HOUR})
    assert not rollout.due(state, T0 + 2 * HOUR)
    assert rollout.due(state, T0 + 5 * HOUR)


def test_whole_plan_one_stage_per_call_then_completed() -> None:
    state = rollout.start(plan(), T0, pr=1)
    seen = [state.percentage]
    now = T0
    while state.status != "completed":
        now += HOUR
        state, event = step(state, now)
        assert event is not None and event.before == seen[-1] and event.after == state.percentage
        seen.append(state.percentage)
    assert seen == [5, 25, 50, 75, 100]
    assert event is not None and event.kind == "completed" and event.stage_label == "5/5"
    assert step(state, now + 10 * HOUR) == (state, None)
    assert [h.event for h in state.history] == ["started", "advanced", "advanced", "advanced", "completed"]
    valid(state)


def test_a_week_of_missed_runs_still_moves_one_stage_and_restarts_the_wait() -> None:
    state = rollout.start(plan(), T0, pr=1)
    late = T0 + timedelta(days=7)
    state, event = step(state, late)
    assert event is not None and (event.before, event.after) == (5, 25)
    assert state.entered_at == late  # not the time the stage was scheduled: it gets its full wait
    assert step(state, late + timedelta(minutes=15)) == (state, None)
    state, _ = step(state, late + HOUR)
    assert state.percentage == 50


def test_scheduled_rollout_starts_on_the_first_run_after_start_at_without_a_gate() -> None:
    state = rollout.start(plan(start_at=T0), T0 - HOUR, pr=1)
    assert step(state, T0 - timedelta(minutes=1)) == (state, None)
    run = T0 + timedelta(minutes=7)
    started, event = step(state, run, "failed")  # starting is not gated, like apply's start
    assert event is not None and event.kind == "started"
    assert (started.status, started.percentage, started.entered_at) == ("running", 5, run)
    assert step(started, run + timedelta(minutes=59)) == (started, None)


def test_no_gate_in_the_plan_passes() -> None:
    state, event = step(rollout.start(plan(), T0, pr=1), T0 + HOUR, None)
    assert event is not None and state.percentage == 25 and state.last_gate is None


def test_passed_gate_is_recorded() -> None:
    state, event = step(rollout.start(plan(), T0, pr=1), T0 + HOUR, "passed")
    assert state.last_gate is not None and state.last_gate.outcome == "passed"
    assert event is not None and event.gate == state.last_gate


def _at_50() -> RolloutState:
    state = rollout.start(plan(), T0, pr=1)
    for i in (1, 2):
        state, _ = step(state, T0 + i * HOUR)
    assert state.percentage == 50
    return state


def test_failed_gate_rolls_back_and_later_runs_do_not_roll_forward() -> None:
    state, event = step(_at_50(), T0 + 3 * HOUR, "failed")
    assert event is not None and event.kind == "rolled_back" and (event.before, event.after) == (50, 0)
    assert (state.status, state.percentage) == ("rolled_back", 0)
    assert state.reason.startswith("health gate failed: ")
    for hours in (4, 5, 48):
        assert step(state, T0 + hours * HOUR, "passed") == (state, None)
    valid(state)


def test_failed_gate_with_on_failure_pause_pauses_at_its_stage() -> None:
    state, event = step(_at_50(), T0 + 3 * HOUR, "failed", "pause")
    assert event is not None and event.kind == "paused"
    assert (state.status, state.percentage) == ("paused", 50)
    assert rollout.pause_cause(state) == "gate_failed"
    assert step(state, T0 + 10 * HOUR, "passed") == (state, None)


def test_inconclusive_gate_pauses_and_never_advances() -> None:
    state, event = step(_at_50(), T0 + 3 * HOUR, "inconclusive")
    assert event is not None and event.kind == "paused"
    assert (state.status, state.percentage) == ("paused", 50)
    assert rollout.pause_cause(state) == "gate_inconclusive"
    # the next runs retry the gate; still unknown: nothing changes, nothing to report
    assert rollout.due(state, T0 + 3 * HOUR + timedelta(minutes=15))
    assert step(state, T0 + 4 * HOUR, "inconclusive") == (state, None)
    # known good again: the stage had its wait, so it advances
    advanced, event = step(state, T0 + 5 * HOUR, "passed")
    assert event is not None and event.kind == "advanced"
    assert (advanced.status, advanced.percentage, advanced.reason) == ("running", 75, "")


def test_inconclusive_then_failed_applies_on_failure() -> None:
    held, _ = step(_at_50(), T0 + 3 * HOUR, "inconclusive")
    state, event = step(held, T0 + 4 * HOUR, "failed")
    assert event is not None and event.kind == "rolled_back" and state.percentage == 0


# --- plan edits by PR ----------------------------------------------------------------------------------


def test_reconcile_without_plan_removes_and_without_state_starts() -> None:
    state = rollout.start(plan(), T0, pr=1)
    assert rollout.reconcile_plan(state, None, True, T0, 2) is None
    started = rollout.reconcile_plan(None, plan(), True, T0, 7)
    assert started == rollout.start(plan(), T0, 7)


def test_reconcile_same_plan_changes_nothing() -> None:
    state = _at_50()
    assert rollout.reconcile_plan(state, plan(), True, T0 + 9 * HOUR, 5) == state
    rolled, _ = step(state, T0 + 3 * HOUR, "failed")
    assert rollout.reconcile_plan(rolled, plan(), True, T0 + 9 * HOUR, 5) == rolled


def test_pause_and_resume_by_plan_keep_the_stage_and_restart_its_wait() -> None:
    state = _at_50()
    paused = rollout.reconcile_plan(state, plan(paused=True), True, T0 + 2 * HOUR + HOUR / 2, 3)
    assert paused is not None and (paused.status, paused.percentage) == ("paused", 50)
    assert not rollout.due(paused, T0 + 10 * HOUR)
    resumed_at = T0 + 10 * HOUR
    resumed = rollout.reconcile_plan(paused, plan(paused=False), True, resumed_at, 4)
    assert resumed is not None
    assert (resumed.status, resumed.percentage, resumed.entered_at) == ("running", 50, resumed_at)
    assert resumed.pr == 1  # comments keep going to the PR that started it
    assert not rollout.due(resumed, resumed_at + timedelta(minutes=59))
    assert rollout.due(resumed, resumed_at + HOUR)
    assert [h.event for h in resumed.history][-2:] == ["paused", "resumed"]


def test_new_stage_list_continues_from_the_current_percentage() -> None:
    state = _at_50()  # stages 5, 25, 50, 75, 100 → at 50
    edited = rollout.reconcile_plan(state, plan(stages=[10, 40, 60, 100]), True, T0 + 2 * HOUR + HOUR / 2, 9)
    assert edited is not None
    assert (edited.percentage, edited.stage_index, edited.status) == (50, 1, "running")
    assert edited.entered_at == state.entered_at  # an edit is not a resume: the wait already served counts
    assert edited.plan_hash == plan_hash(plan(stages=[10, 40, 60, 100]))
    nxt, event = step(edited, T0 + 3 * HOUR)
    assert event is not None and (event.before, event.after, event.stage_label) == (50, 60, "3/4")
    valid(nxt)


def test_stage_list_edit_below_every_stage_waits_for_the_first_one_above() -> None:
    state = rollout.start(plan(stages=[30, 100]), T0, pr=1)
    edited = rollout.reconcile_plan(state, plan(stages=[50, 100], stage_delay="2h"), True, T0, 2)
    assert edited is not None and (edited.percentage, edited.stage_index) == (30, -1)
    assert rollout.next_due(edited) == T0 + 2 * HOUR
    nxt, _ = step(edited, T0 + 2 * HOUR)
    assert (nxt.percentage, nxt.stage_index) == (50, 0)


def test_kill_switch_freezes_and_enabling_resumes() -> None:
    state = _at_50()
    frozen = rollout.reconcile_plan(state, plan(), False, T0 + 2 * HOUR + HOUR / 4, 3)
    assert frozen is not None and (frozen.status, frozen.percentage) == ("paused", 50)
    assert rollout.pause_cause(frozen) == "kill_switch"
    assert not rollout.due(frozen, T0 + 20 * HOUR)
    again = rollout.reconcile_plan(frozen, plan(), False, T0 + 5 * HOUR, 3)
    assert again == frozen
    thawed = rollout.reconcile_plan(frozen, plan(), True, T0 + 20 * HOUR, 4)
    assert thawed is not None and (thawed.status, thawed.percentage) == ("running", 50)
    assert thawed.entered_at == T0 + 20 * HOUR


def test_kill_switch_and_plan_pause_combine() -> None:
    state = _at_50()
    both = rollout.reconcile_plan(state, plan(paused=True), False, T0 + 3 * HOUR, 3)
    assert both is not None and rollout.pause_cause(both) == "kill_switch"
    enabled = rollout.reconcile_plan(both, plan(paused=True), True, T0 + 4 * HOUR, 3)
    assert enabled is not None and rollout.pause_cause(enabled) == "plan"


def test_toggles_do_not_lift_a_pause_by_the_gate() -> None:
    held, _ = step(_at_50(), T0 + 3 * HOUR, "failed", "pause")
    off = rollout.reconcile_plan(held, plan(), False, T0 + 4 * HOUR, 3)
    on = rollout.reconcile_plan(off, plan(), True, T0 + 5 * HOUR, 3)
    assert off == held and on == held


def test_changed_plan_resumes_a_pause_by_the_gate() -> None:
    held, _ = step(_at_50(), T0 + 3 * HOUR, "failed", "pause")
    resumed = rollout.reconcile_plan(held, plan(stage_delay="2h"), True, T0 + 4 * HOUR, 8)
    assert resumed is not None and (resumed.status, resumed.percentage) == ("running", 50)
    assert resumed.entered_at == T0 + 4 * HOUR and resumed.reason == ""


def test_rollback_stays_until_the_plan_changes_then_restarts() -> None:
    rolled, _ = step(_at_50(), T0 + 3 * HOUR, "failed")
    same = rollout.reconcile_plan(rolled, plan(), True, T0 + 4 * HOUR, 8)
    assert same == rolled
    restarted = rollout.reconcile_plan(rolled, plan(stages=[1, 10, 100]), True, T0 + 5 * HOUR, 8)
    assert restarted is not None
    assert (restarted.status, restarted.percentage, restarted.entered_at) == ("running", 1, T0 + 5 * HOUR)
    assert restarted.pr == 8
    assert [h.event for h in restarted.history][-2:] == ["rolled_back", "started"]
    later = rollout.reconcile_plan(rolled, plan(start_at=T0 + 24 * HOUR), True, T0 + 5 * HOUR, 8)
    assert later is not None and later.status == "scheduled"


def test_variant_change_restarts() -> None:
    state = _at_50()
    other = RolloutPlan.model_validate({"variant": "blue", "stage_delay": "1h"})
    restarted = rollout.reconcile_plan(state, other, True, T0 + 3 * HOUR, 6)
    assert restarted is not None
    assert (restarted.variant, restarted.percentage, restarted.stage_index) == ("blue", 5, 0)


def test_edit_of_a_scheduled_rollout_takes_the_new_start() -> None:
    state = rollout.start(plan(start_at=T0 + 48 * HOUR), T0, pr=1)
    sooner = rollout.reconcile_plan(state, plan(start_at=T0 + HOUR), True, T0 + 2 * HOUR, 2)
    assert sooner is not None and (sooner.status, sooner.percentage) == ("running", 5)
    assert sooner.pr == 1


def test_resume_before_the_start_goes_back_to_scheduled() -> None:
    state = rollout.start(plan(paused=True, start_at=T0 + 5 * HOUR), T0, pr=1)
    resumed = rollout.reconcile_plan(state, plan(paused=False, start_at=T0 + 5 * HOUR), True, T0 + HOUR, 1)
    assert resumed is not None and resumed.status == "scheduled"
    assert rollout.due(resumed, T0 + 5 * HOUR)


def test_completed_rollout_stays_completed_on_edits_and_toggles() -> None:
    state = rollout.start(plan(stages=[100]), T0, pr=1)
    edited = rollout.reconcile_plan(state, plan(stages=[100], stage_delay="2h"), False, T0, 1)
    assert edited is not None and (edited.status, edited.percentage) == ("completed", 100)


def test_history_is_bounded() -> None:
    state = rollout.start(plan(), T0, pr=1)
    for i in range(2 * rollout.MAX_HISTORY):
        state = rollout.reconcile_plan(state, plan(), i % 2 == 1, T0 + i * HOUR, 1) or state
    assert len(state.history) == rollout.MAX_HISTORY


# --- properties ----------------------------------------------------------------------------------------

stage_lists = st.lists(st.integers(1, 99), max_size=5, unique=True).map(lambda xs: [*sorted(xs), 100])
calls = st.lists(
    st.tuples(st.integers(0, 300), st.sampled_from([None, "passed", "passed", "failed", "inconclusive"])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(stage_lists, st.integers(1, 180), calls, st.sampled_from(["rollback", "pause"]),
       st.integers(-120, 120))
def test_percentages_never_decrease_unless_rolled_back_and_one_stage_per_call(
    stages: list[int], delay_minutes: int, sequence: list[tuple[int, GateOutcome | None]],
    on_failure: rollout.OnFailure, start_offset: int,
) -> None:
    start_at = T0 + timedelta(minutes=start_offset)
    state = rollout.start(plan(stages=stages, stage_delay=f"{delay_minutes}m", start_at=start_at), T0, pr=1)
    now = T0
    for minutes, outcome in sequence:
        now += timedelta(minutes=minutes)
        new, event = step(state, now, outcome, on_failure)
        valid(new)
        if event is None:
            assert new == state
        else:
            assert event.after == new.percentage and event.before == state.percentage
        if new.status == "rolled_back":
            assert new.percentage == 0
        else:
            assert new.percentage >= state.percentage
            assert new.stage_index - state.stage_index <= 1  # at most one stage per call
            assert new.percentage == 0 or new.percentage in stages
            if new.percentage > state.percentage:
                assert new.entered_at == now
        if state.status == "rolled_back":
            assert new == state  # no run rolls forward again
        state = new


# --- the cause of a pause, recorded ------------------------------------------------------------------


def test_the_cause_of_a_pause_is_recorded_and_cleared() -> None:
    held, _ = step(_at_50(), T0 + 3 * HOUR, "inconclusive", "pause")
    assert held.paused_by == "gate_inconclusive"
    failed, _ = step(held, T0 + 4 * HOUR, "failed", "pause")
    assert failed.paused_by == "gate_failed"
    rolled, _ = step(held, T0 + 4 * HOUR, "failed")
    assert (rolled.status, rolled.paused_by) == ("rolled_back", None)
    passed, _ = step(held, T0 + 4 * HOUR, "passed")
    assert (passed.status, passed.paused_by) == ("running", None)
    assert rollout.start(plan(paused=True), T0, 1).paused_by == "plan"
    killed = rollout.reconcile_plan(_at_50(), plan(), False, T0 + 3 * HOUR, 1)
    assert killed is not None and killed.paused_by == "kill_switch"
    assert rollout.start(plan(on_failure="pause"), T0, 1).on_failure == "pause"
    for state in (held, failed, rolled, passed, killed):
        valid(state)


def test_a_state_written_before_paused_by_existed_still_reads() -> None:
    """state.json files from before `paused_by` and `on_failure`: the cause comes from the reason."""
    old = _at_50().model_dump(mode="json", exclude={"paused_by", "on_failure"})
    for reason, cause in [
        (rollout.REASON_PLAN, "plan"),
        (rollout.REASON_KILL_SWITCH, "kill_switch"),
        ("health gate inconclusive: GET https://x answered 503, expected 200", "gate_inconclusive"),
        ("health gate failed: error_rate 0.3 not <= 0.01", "gate_failed"),
        ("paused by hand", "other"),
    ]:
        state = RolloutState.model_validate({**old, "status": "paused", "reason": reason})
        assert (state.paused_by, state.on_failure) == (cause, "rollback")
        assert rollout.pause_cause(state) == cause
    running = RolloutState.model_validate(old)
    assert running.paused_by is None and rollout.pause_cause(running) is None
