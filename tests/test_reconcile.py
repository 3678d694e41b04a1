"""reconcile: judging changes, planning units and applying them to a store snapshot (in-memory trees)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gitops_flags import changes, reconcile, validate
from gitops_flags.changes import Change
from gitops_flags.flagd import served_state
from gitops_flags.model import Flag, Policy
from gitops_flags.reconcile import Judgement, MergedPull, Unit
from gitops_flags.result import ChangeResult, Evaluation, StepResult, Verdict
from gitops_flags.store.base import StoreSnapshot
from gitops_flags.store.state import RolloutState, StoreState, UnitOfWork
from gitops_flags.tree import DictTree

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = """\
version: 1
environments: [staging, production]
roles: {owners: ["@alice"]}
rules: [{match: {kind: flag}, workflow: review}]
workflows: {review: {steps: [{id: owner, role: owners}]}}
"""


def flag_yaml(key: str, production: str = "enabled: true", staging: str = "enabled: true") -> str:
    return (
        f"key: {key}\ntype: boolean\nvariants: {{\"on\": true, \"off\": false}}\ndefault_variant: \"off\"\n"
        f"environments:\n  staging: {{{staging}}}\n  production: {{{production}}}\n"
    )


def policy() -> Policy:
    found, problems = validate.read_policy(DictTree({".github/gitops-flags.yml": POLICY}))
    assert found is not None, problems
    return found


def tree(**flags: str) -> DictTree:
    return DictTree({f"flags/{k}.yaml": v for k, v in flags.items()})


def diff(base: DictTree, head: DictTree) -> changes.Diff:
    return changes.diff(base, head, policy())


def pull(commit: str = "c1", number: int = 4, merge_commit: str | None = "c1") -> MergedPull:
    return MergedPull(number, f"https://github.com/acme/flags/pull/{number}", "carol", "head1", "base1",
                      merge_commit)


def approved(items: list[Change], verdict: Verdict = "approved") -> Evaluation:
    step = StepResult("owner", "owners", "satisfied", approved_by=("alice",))
    return Evaluation(verdict, tuple(ChangeResult(c, "review", verdict, (step,)) for c in items))


# --- eras and judgements -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("has_policy", "started", "era"),
    [(True, True, "governed"), (True, False, "governed"), (False, False, "baseline"),
     (False, True, "ungoverned")],
)
def test_era_for(has_policy: bool, started: bool, era: str) -> None:
    assert reconcile.era_for(has_policy, started) == era


CREATE = diff(tree(), tree(search=flag_yaml("search"))).changes[0]


def judge(change: Change = CREATE, **kw: Any) -> Judgement:
    args: dict[str, Any] = {"era": "governed", "verify": True, "pull": pull(),
                            "evaluation": approved([change]), "on_unapproved": "block"}
    args.update(kw)
    return reconcile.judge(change, "c1", **args)


def test_an_approved_change_is_applied_with_its_approvers() -> None:
    j = judge()
    assert (j.outcome, j.approval, j.reason) == ("applied", "verified", "")
    assert dict(j.approvers) == {"owner": ("alice",)}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"pull": None}, "no merged pull request brought c1"),
        ({"evaluation": None}, "PR #4 could not be evaluated"),
        ({"evaluation": approved([])}, "PR #4 does not contain this change"),
        ({"evaluation": approved([CREATE], "pending")}, "PR #4 is pending for this change"),
        ({"era": "ungoverned"}, "the parent commit has no usable policy"),
    ],
)
def test_unapproved_changes_are_blocked_with_a_reason(kw: dict[str, Any], reason: str) -> None:
    j = judge(**kw)
    assert (j.outcome, j.approval) == ("blocked", "missing")
    assert j.reason.startswith(reason)


def test_warn_applies_an_unapproved_change_but_never_without_a_policy() -> None:
    assert judge(pull=None, on_unapproved="warn").outcome == "warned"
    assert judge(era="ungoverned", on_unapproved="warn").outcome == "blocked"


def test_unverified_and_baseline_are_labelled() -> None:
    assert (judge(verify=False, pull=None).approval, judge(verify=False).outcome) == ("unverified", "applied")
    assert judge(era="baseline", pull=None).approval == "baseline"


def production(d: changes.Diff) -> Change:
    return next(c for c in d.changes if c.environment == "production")


def test_the_merge_must_carry_what_was_approved() -> None:
    merged = production(diff(tree(), tree(search=flag_yaml("search"))))
    reviewed = production(diff(tree(), tree(search=flag_yaml("search", production="enabled: false"))))
    j = judge(merged, evaluation=approved([reviewed]))
    assert j.outcome == "blocked" and "differs from what PR #4 approved at its head head1" in j.reason
    # the end of a landed range is always compared, whichever commit GitHub recorded as the merge
    assert judge(merged, evaluation=approved([reviewed]), pull=pull(merge_commit="c9")).outcome == "blocked"


def test_the_whole_file_must_be_the_approved_heads() -> None:
    """Route 3: the environment's block matches, but another part of the file (variants) does not."""
    j = judge(differs={"flags/search.yaml"})
    assert (j.outcome, j.approval) == ("blocked", "missing")
    assert "flags/search.yaml as landed at c1 is not the file PR #4 approved" in j.reason
    assert judge(differs={"flags/other.yaml"}).outcome == "applied"


def test_intermediate_states_are_skipped_never_served() -> None:
    head = tree(search=flag_yaml("search"))
    d = diff(tree(), head)
    [unit, *_] = reconcile.intermediate_units("c1", d.changes, "c3", pull())
    assert (unit.id, unit.judgement.outcome) == ("c1/flag:search@staging", "skipped")
    assert "intermediate state of PR #4 at c1" in unit.judgement.reason
    snapshot = StoreSnapshot(StoreState(), {}, None)
    applied = reconcile.apply_units(snapshot, [unit], NOW, advance_to="c3", order=["c1", "c3"])
    assert applied is not None
    assert applied.update.documents == {}  # nothing served
    assert [r["outcome"] for r in applied.update.audit] == ["skipped"]
    assert applied.update.state.unit(unit.id) is not None


# --- planning units ------------------------------------------------------------------------------------


def test_units_are_keyed_by_commit_and_change() -> None:
    head = tree(search=flag_yaml("search"))
    d = diff(tree(), head)
    units = reconcile.plan_units("c1", d, head, era="governed", verify=True, pull=pull(),
                                 evaluation=approved(list(d.changes)), on_unapproved="block")
    assert [u.id for u in units] == ["c1/flag:search@staging", "c1/flag:search@production"]
    assert all(u.flag is not None and u.flag.key == "search" for u in units)


def test_an_invalid_flag_file_is_blocked_even_when_approved() -> None:
    head = tree(search=flag_yaml("search").replace('default_variant: "off"', 'default_variant: "maybe"'))
    d = diff(tree(), head)
    units = reconcile.plan_units("c1", d, head, era="governed", verify=False, pull=None, evaluation=None,
                                 on_unapproved="warn")
    assert units and all(u.judgement.outcome == "blocked" for u in units)
    assert "the flag file does not validate: flags/search.yaml" in units[0].judgement.reason


# --- applying ------------------------------------------------------------------------------------------


def units_for(base: DictTree, head: DictTree, commit: str = "c1", **kw: Any) -> tuple[Unit, ...]:
    d = diff(base, head)
    args: dict[str, Any] = {"era": "governed", "verify": True, "pull": pull(commit, merge_commit=commit),
                            "evaluation": approved(list(d.changes)), "on_unapproved": "block"}
    args.update(kw)
    return reconcile.plan_units(commit, d, head, **args)


def apply(snapshot: StoreSnapshot, units: tuple[Unit, ...], commit: str = "c1",
          order: tuple[str, ...] = ("c0", "c1", "c2")) -> reconcile.Applied:
    result = reconcile.apply_units(snapshot, units, NOW, advance_to=commit, order=order, where="file:s")
    assert result is not None
    return result


EMPTY = StoreSnapshot(StoreState(applied_commit="c0"), {}, "v0")


def after(applied: reconcile.Applied, version: str = "v1") -> StoreSnapshot:
    u = applied.update
    return StoreSnapshot(u.state, {k: dict(v) for k, v in u.documents.items()}, version)


def test_applying_writes_entries_units_audit_and_the_commit() -> None:
    applied = apply(EMPTY, units_for(tree(), tree(search=flag_yaml("search"))))
    update = applied.update
    assert update.state.applied_commit == "c1"
    assert served_state(update.documents["production"]["flags"]["search"]) == "ENABLED"
    assert update.documents["production"]["metadata"]["gitopsCommit"] == "c1"
    assert [u.id for u in update.state.units] == ["c1/flag:search@staging", "c1/flag:search@production"]
    assert all(u.succeeded_at == NOW and u.output == {"outcome": "applied", "documents": [u.id.split("@")[1]]}
               for u in update.state.units)
    line = update.audit[0]
    keys = ("time", "outcome", "kind", "key", "environment", "change_type", "merge_commit", "pr", "author",
            "approval", "approvers", "store_version", "unit")
    assert {k: line[k] for k in keys} == {
        "time": "2026-12-01T09:00:00Z", "outcome": "applied", "kind": "flag", "key": "search",
        "environment": "staging", "change_type": "create", "merge_commit": "c1", "pr": 4, "author": "carol",
        "approval": "verified", "approvers": {"owner": ["alice"]}, "store_version": "v0",
        "unit": "c1/flag:search@staging",
    }


def test_units_already_done_are_never_applied_again() -> None:
    units = units_for(tree(), tree(search=flag_yaml("search")))
    first = after(apply(EMPTY, units))
    assert reconcile.apply_units(first, units, NOW + timedelta(hours=1), advance_to="c1",
                                 order=("c0", "c1")) is None
    # a failed unit is retried; the succeeded one is skipped
    half = EMPTY.state.with_unit(UnitOfWork(id=units[0].id, succeeded_at=NOW))
    state = reconcile.failed(half, "c1", [u.change for u in units], NOW, "boom")
    assert [(u.id, u.error) for u in state.units if not u.succeeded] == [(units[1].id, "boom")]
    retried = apply(StoreSnapshot(state, {}, "v0"), units)
    assert [r.unit.id for r in retried.results] == [units[1].id]


def test_applied_commit_never_moves_back() -> None:
    units = units_for(tree(), tree(search=flag_yaml("search")))
    ahead = StoreSnapshot(StoreState(applied_commit="c2"), {}, "v0")
    assert apply(ahead, units).update.state.applied_commit == "c2"
    assert reconcile.advance_only(ahead, "c1", ("c0", "c1", "c2")) is None
    moved = reconcile.advance_only(EMPTY, "c2", ("c0", "c1", "c2"))
    assert moved is not None and moved.state.applied_commit == "c2" and not moved.audit


def test_other_flags_are_left_as_served() -> None:
    stale = {"state": "ENABLED", "variants": {"on": True}, "defaultVariant": "on", "metadata": {"x": 1}}
    docs = {"production": {"$schema": "s", "metadata": {}, "flags": {"dark_mode": stale}}}
    snapshot = StoreSnapshot(StoreState(applied_commit="c0"), docs, "v0")
    update = apply(snapshot, units_for(tree(), tree(search=flag_yaml("search")))).update
    assert update.documents["production"]["flags"]["dark_mode"] == stale
    assert docs["production"]["flags"] == {"dark_mode": stale}  # the snapshot itself is not mutated


def test_a_blocked_unit_writes_only_its_audit_line_and_record() -> None:
    units = units_for(tree(), tree(search=flag_yaml("search")), pull=None)
    update = apply(EMPTY, units).update
    assert update.documents == {}
    assert [line["outcome"] for line in update.audit] == ["blocked", "blocked"]
    assert all(u.succeeded and (u.output or {})["outcome"] == "blocked" for u in update.state.units)


PLAN = 'enabled: true, rollout: {variant: "on", stages: [5, 50, 100], stage_delay: 1h}'


def test_a_new_rollout_starts_and_an_unrelated_edit_keeps_a_rollback() -> None:
    first = apply(EMPTY, units_for(tree(), tree(search=flag_yaml("search", production=PLAN))))
    started = first.update.state.rollout("search", "production")
    assert started is not None
    assert (started.status, started.percentage, started.entered_at) == ("running", 5, NOW)
    assert first.update.documents["production"]["flags"]["search"]["metadata"]["gitopsRolloutPercentage"] == 5

    # a gate failed later and advance rolled it back; a PR then edits only the rules
    rolled_back = RolloutState.model_validate({**dict(started), "status": "rolled_back", "percentage": 0,
                                               "reason": "health gate failed"})
    snapshot = after(first)
    snapshot = StoreSnapshot(snapshot.state.with_rollout("search", "production", rolled_back),
                             snapshot.documents, "v1")
    rules = PLAN.replace("enabled: true", 'enabled: true, rules: [{when: {attribute: email, operator: '
                                          'ends_with, value: "@acme.com"}, variant: "on"}]')
    units = units_for(tree(search=flag_yaml("search", production=PLAN)),
                      tree(search=flag_yaml("search", production=rules)), commit="c2")
    update = apply(snapshot, units, commit="c2").update
    kept = update.state.rollout("search", "production")
    assert kept is not None and kept.status == "rolled_back"  # no quiet roll-forward


def test_the_kill_switch_disables_and_pauses() -> None:
    first = after(apply(EMPTY, units_for(tree(), tree(search=flag_yaml("search", production=PLAN)))))
    off = PLAN.replace("enabled: true", "enabled: false")
    units = units_for(tree(search=flag_yaml("search", production=PLAN)),
                      tree(search=flag_yaml("search", production=off)), commit="c2")
    update = apply(first, units, commit="c2").update
    assert served_state(update.documents["production"]["flags"]["search"]) == "DISABLED"
    rollout = update.state.rollout("search", "production")
    assert rollout is not None and rollout.status == "paused" and rollout.percentage == 5


def test_deleting_removes_the_entry_and_the_rollout() -> None:
    first = after(apply(EMPTY, units_for(tree(), tree(search=flag_yaml("search", production=PLAN)))))
    units = units_for(tree(search=flag_yaml("search", production=PLAN)), tree(), commit="c2")
    update = apply(first, units, commit="c2").update
    assert update.documents["production"]["flags"] == {} and update.documents["staging"]["flags"] == {}
    assert update.state.rollouts == {}


def test_removing_an_environment_removes_only_that_entry() -> None:
    first = after(apply(EMPTY, units_for(tree(), tree(search=flag_yaml("search")))))
    only_staging = flag_yaml("search").replace("  production: {enabled: true}\n", "")
    units = units_for(tree(search=flag_yaml("search")), tree(search=only_staging), commit="c2")
    assert [(u.change.environment, u.change.change_type) for u in units] == [("production", "delete")]
    update = apply(first, units, commit="c2").update
    assert "search" not in update.documents["production"]["flags"]
    assert "search" in update.documents["staging"]["flags"]


def test_a_change_that_cannot_be_compiled_is_blocked_not_failed() -> None:
    bad = Flag.model_validate({"key": "search", "type": "boolean", "variants": {"on": True, "off": False},
                               "default_variant": "off",
                               "environments": {"production": {"enabled": True, "default_variant": "gone"}}})
    change = Change("flag", "search", "flags/search.yaml", "create", "created", "production", None, {"x": 1})
    unit = Unit("c1/flag:search@production", "c1", change, Judgement("applied", "unverified"), None, bad)
    applied = apply(EMPTY, (unit,))
    assert applied.results[0].outcome == "blocked"
    assert "cannot be compiled for flagd" in applied.results[0].reason
    assert applied.update.documents == {}


def test_an_unapproved_policy_change_is_noticed() -> None:
    change = Change("governance", ".github/gitops-flags.yml", ".github/gitops-flags.yml", "governance",
                    "policy changed")
    unit = Unit("c1/governance:.github/gitops-flags.yml", "c1", change, Judgement("blocked", "missing"))
    assert reconcile.blocks_policy([reconcile.UnitResult(unit, "blocked")])
    assert not reconcile.blocks_policy([reconcile.UnitResult(unit, "applied")])
