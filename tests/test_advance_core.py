"""The advance use case over fakes: the flag files in a dict, a store in memory, a gate evaluator that
answers from a value. No git, no HTTP, no clock (core tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from test_apply_core import MemoryStore

from gitops_flags import advance, egress, flagd, rollout
from gitops_flags.model import Flag, RolloutPlan
from gitops_flags.store.base import StoreSnapshot
from gitops_flags.store.state import GateResult, StoreState
from gitops_flags.tree import DictTree

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
FLAG = {
    "key": "checkout", "type": "boolean", "variants": {"on": True, "off": False}, "default_variant": "off",
    "environments": {"production": {"enabled": True, "rollout": {
        "variant": "on", "stages": [5, 25, 50, 75, 100], "stage_delay": "2h",
        "health_check": {"type": "http", "url": "https://status.example.com/x", "json_field": "ok",
                         "comparison": "==", "threshold": 1}}}},
}


def applied_store(conflicts: int = 0) -> MemoryStore:
    """The store as apply leaves it after merging FLAG at T0."""
    flag = Flag.model_validate(FLAG)
    plan = flag.environments["production"].rollout
    assert plan is not None
    started = rollout.start(plan, T0, 7)
    state = StoreState(applied_commit="c" * 40, rollouts={"checkout": {"production": started}})
    documents = {"production": flagd.compile_environment({"checkout": flag}, "production",
                                                         state.rollouts_for("production"), "c" * 40)}
    store = MemoryStore()
    store.write(state, documents, None)
    store.conflicts = conflicts
    return store


def files() -> advance.FlagFiles:
    return advance.FlagFiles(DictTree({"flags/checkout.yaml": json.dumps(FLAG)}), None)


def test_a_lost_race_decides_again_without_asking_the_gate_twice() -> None:
    store = applied_store(conflicts=1)
    asked: list[str] = []
    reads: list[int] = []

    def gate(plan: RolloutPlan, rules: egress.Rules) -> GateResult:
        asked.append(str(plan.health_check.url if plan.health_check else None))
        return GateResult(at=T0 + 2 * HOUR, outcome="passed", detail="ok == 1")

    def read(attempt: int) -> StoreSnapshot:
        reads.append(attempt)
        return store.read()

    result = advance.run(store, read, files(), gate, T0 + 2 * HOUR, dry_run=False, run_url=None,
                         outbox=lambda outcomes: [])
    assert reads == [1, 2] and len(asked) == 1
    assert result.count("advanced") == 1 and result.count("rolled_back", "paused") == 0
    assert result.version == store.version == "2" and result.exit_code == 0
    assert store.state.rollout("checkout", "production").percentage == 25  # type: ignore[union-attr]
    assert [a["event"] for a in store.audit] == ["advanced"]


def test_a_failed_gate_rolls_back_and_says_so_in_the_result() -> None:
    store = applied_store()

    def gate(plan: RolloutPlan, rules: egress.Rules) -> GateResult:
        return GateResult(at=T0 + 2 * HOUR, outcome="failed", detail="ok is 0")

    result = advance.run(store, lambda attempt: store.read(), files(), gate, T0 + 2 * HOUR, dry_run=False,
                         run_url=None, outbox=lambda outcomes: [])
    assert result.count("rolled_back") == 1 and result.count("advanced") == 0
    assert result.exit_code == 1
    assert store.state.rollout("checkout", "production").percentage == 0  # type: ignore[union-attr]


def test_a_dry_run_decides_and_writes_nothing() -> None:
    store = applied_store()
    result = advance.run(store, lambda attempt: store.read(), files(),
                         lambda plan, rules: GateResult(at=T0, outcome="passed"), T0 + 2 * HOUR, dry_run=True,
                         run_url=None, outbox=lambda outcomes: [])
    assert result.count("advanced") == 1 and result.version is None and store.version == "1"
    assert result.total == 1
