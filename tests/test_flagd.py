"""The flagd compiler: rules → JSONLogic, rollouts → fractional, valid against flagd's own schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from gitops_flags import flagd
from gitops_flags.flagd import served_state
from gitops_flags.model import Condition, Flag
from gitops_flags.problems import GitopsFlagsError
from gitops_flags.store.state import RolloutState

SCHEMAS = Path(__file__).parent / "fixtures" / "flagd-schema"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def flagd_validator() -> jsonschema.Draft7Validator:
    flags = json.loads((SCHEMAS / "flags.json").read_text())
    targeting = json.loads((SCHEMAS / "targeting.json").read_text())
    # flags.json's root has `$ref` beside `$id`; under draft 7 the `$ref` wins, so its `./targeting.json`
    # resolves against no base URI. Register the file under that name too, as flagd's own tests do.
    registry: Registry[Any] = Registry().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in (flags, targeting)]
        + [("./targeting.json", Resource.from_contents(targeting))]
    )
    return jsonschema.Draft7Validator(flags, registry=registry)


VALIDATOR = flagd_validator()


def assert_valid(document: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def make_flag(**env: Any) -> Flag:
    return Flag.model_validate(
        {
            "key": "checkout",
            "type": "boolean",
            "variants": {"on": True, "off": False},
            "default_variant": "off",
            "environments": {"production": {"enabled": True, **env}, "staging": {"enabled": False}},
        }
    )


def rollout(status: str = "running", percentage: int = 25, stage_index: int = 1, **kw: Any) -> RolloutState:
    return RolloutState(
        variant="on", stages=[5, 25, 50, 75, 100], stage_index=stage_index, percentage=percentage,
        status=status, entered_at=T0, stage_delay_seconds=3600, plan_hash="sha256:x", **kw,
    )


def compile_one(flag: Flag, state: RolloutState | None = None, env: str = "production") -> dict[str, Any]:
    doc = flagd.compile_environment({flag.key: flag}, env, {flag.key: state} if state else {}, "abc123")
    assert_valid(doc)
    return dict(doc["flags"][flag.key])


# --- rules ------------------------------------------------------------------------------------------

EMAIL = {"var": "email"}


def parts(tree: Any) -> Iterator[Any]:
    """Every JSONLogic expression inside `tree`."""
    yield tree
    if isinstance(tree, dict):
        for args in tree.values():
            yield from parts(args)
    elif isinstance(tree, list):
        for item in tree:
            yield from parts(item)


# What each operator compares with once its guards pass (what it means is tested on the engines:
# test_engines_differential.py); `fails` says whether a wrong type makes the evaluation fail.
@pytest.mark.parametrize(
    ("operator", "value", "core", "fails"),
    [
        ("equals", "gold", {"===": [EMAIL, "gold"]}, False),
        ("not_equals", 3, {"===": [EMAIL, 3]}, False),
        ("in", ["a", "b"], {"in": [EMAIL, ["a", "b"]]}, False),
        ("in", "a", {"in": [EMAIL, ["a"]]}, False),
        ("not_in", ["a"], {"in": [EMAIL, ["a"]]}, False),
        ("contains", "acme", {"in": ["acme", EMAIL]}, True),
        ("starts_with", "ops-", {"starts_with": [EMAIL, "ops-"]}, True),
        ("ends_with", "@acme.com", {"ends_with": [EMAIL, "@acme.com"]}, True),
        ("greater_than", 10, {">": [EMAIL, 10]}, True),
        ("greater_or_equal", 10, {">=": [EMAIL, 10]}, True),
        ("less_than", 10, {"<": [EMAIL, 10]}, True),
        ("less_or_equal", 10, {"<=": [EMAIL, 10]}, True),
        ("semver_equals", "1.2.3", {"sem_ver": [EMAIL, "=", "1.2.3"]}, True),
        ("semver_greater_than", "v2", {"sem_ver": [EMAIL, ">", "2.0.0"]}, True),
        ("semver_less_than", "1.4", {"sem_ver": [EMAIL, "<", "1.4.0"]}, True),
    ],
)
def test_each_operator_compiles_to_guarded_jsonlogic(operator: str, value: Any, core: dict[str, Any],
                                                      fails: bool) -> None:
    rule = {"when": {"attribute": "email", "operator": operator, "value": value}, "variant": "on"}
    out = compile_one(make_flag(rules=[rule]))
    branches = out["targeting"]["if"]
    assert branches[-2:] == ["on", None]
    assert core in list(parts(branches[-3]))
    assert {"!==": [EMAIL, None]} in list(parts(branches)) or operator in ("equals", "in")
    if fails:
        assert len(branches) == 5 and branches[1] == flagd.WRONG_TYPE
    else:
        assert len(branches) == 3


def test_all_and_any_combine_conditions() -> None:
    cond_a = {"attribute": "plan", "operator": "equals", "value": "gold"}
    cond_b = {"attribute": "seats", "operator": "greater_than", "value": 5}
    rules = [
        {"when": {"all": [cond_a, cond_b]}, "variant": "on"},
        {"when": {"any": [cond_b, cond_a]}, "variant": "off"},
    ]
    out = compile_one(make_flag(rules=rules))
    a = {"===": [{"var": "plan"}, "gold"]}
    b_holds, b_fails = flagd.condition_expressions(Condition.model_validate(cond_b))
    first = out["targeting"]["if"]
    # all: b can fail only once a holds; any: b is tried first, so it can fail at once
    assert first[:4] == [{"and": [a, *b_fails["and"]]}, flagd.WRONG_TYPE, {"and": [a, b_holds]}, "on"]
    second = first[4]["if"]
    assert second == [b_fails, flagd.WRONG_TYPE, {"or": [b_holds, a]}, "off", None]


def test_rules_keep_their_order_first_match_wins() -> None:
    rules = [
        {"name": f"r{i}", "when": {"attribute": "n", "operator": "equals", "value": i}, "variant": v}
        for i, v in enumerate(["on", "off", "on"])
    ]
    expr = compile_one(make_flag(rules=rules))["targeting"]
    seen = []
    while expr is not None:
        cond, variant, expr = expr["if"]
        seen.append((cond["and"][-1]["==="][1], variant))
    assert seen == [(0, "on"), (1, "off"), (2, "on")]


def test_what_no_engine_reads_alike_is_refused() -> None:
    for when, message in [
        ({"attribute": "user.plan", "operator": "equals", "value": "x"}, "nested path"),
        ({"attribute": "v", "operator": "semver_equals", "value": "1.2.3-beta"}, "pre-release"),
        ({"attribute": "v", "operator": "in", "value": [None]}, "text, numbers or booleans"),
    ]:
        with pytest.raises(GitopsFlagsError, match=message):
            compile_one(make_flag(rules=[{"when": when, "variant": "on"}]))


def test_a_killed_flag_serves_its_off_variant_statically() -> None:
    """flagd's DISABLED would return the application's code default, which can be true."""
    out = compile_one(make_flag(enabled=False, default_variant="on", rules=[
        {"when": {"attribute": "x", "operator": "equals", "value": 1}, "variant": "on"}]))
    assert (out["state"], out["defaultVariant"], "targeting" in out) == ("ENABLED", "off", False)
    assert out["metadata"]["gitopsDisabled"] is True and flagd.served_state(out) == "DISABLED"
    assert flagd.served_state({"state": "ENABLED", "metadata": {}}) == "ENABLED"
    only_true = Flag.model_validate({"key": "t", "type": "boolean", "variants": {"yes": True},
                                     "default_variant": "yes", "environments": {"p": {"enabled": False}}})
    assert flagd.killed_variant(only_true, "p") == "yes"
    text = Flag.model_validate({"key": "t", "type": "string", "variants": {"a": "a", "b": "b"},
                                "default_variant": "a",
                                "environments": {"p": {"enabled": False, "default_variant": "b"}}})
    assert flagd.killed_variant(text, "p") == "b"


def test_no_rules_no_rollout_has_no_targeting() -> None:
    out = compile_one(make_flag())
    assert "targeting" not in out
    assert served_state(out) == "ENABLED" and out["defaultVariant"] == "off"
    assert out["variants"] == {"on": True, "off": False}


# --- rollouts ---------------------------------------------------------------------------------------


def test_running_rollout_is_fractional_with_the_variant_first() -> None:
    out = compile_one(make_flag(), rollout(percentage=25))
    assert out["targeting"] == {"fractional": [["on", 25], ["off", 75]]}
    weights = out["targeting"]["fractional"]
    assert weights[0][0] == "on" and sum(w for _, w in weights) == 100


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (rollout(status="scheduled", percentage=0, stage_index=-1), None),
        (rollout(status="rolled_back", percentage=0), None),
        (rollout(status="paused", percentage=50, stage_index=2), {"fractional": [["on", 50], ["off", 50]]}),
        (rollout(status="running", percentage=100, stage_index=4), {"if": [True, "on", None]}),
        (rollout(status="completed", percentage=100, stage_index=4), {"if": [True, "on", None]}),
    ],
)
def test_rollout_status_decides_what_is_served(state: RolloutState, expected: Any) -> None:
    out = compile_one(make_flag(), state)
    assert out.get("targeting") == expected
    assert out["metadata"]["gitopsRolloutStatus"] == state.status


def test_rules_come_first_and_the_rollout_is_the_fallback() -> None:
    staff = {"name": "staff", "when": {"attribute": "email", "operator": "ends_with", "value": "@acme.com"},
             "variant": "on"}
    out = compile_one(make_flag(rules=[staff]), rollout(percentage=5, stage_index=0))
    _, wrong, cond, variant, fallback = out["targeting"]["if"]
    assert {"ends_with": [EMAIL, "@acme.com"]} in cond["and"] and (wrong, variant) == (flagd.WRONG_TYPE, "on")
    assert fallback == {"fractional": [["on", 5], ["off", 95]]}
    full = compile_one(make_flag(rules=[staff]), rollout(status="completed", percentage=100, stage_index=4))
    assert full["targeting"]["if"][-1] == "on"


def test_rollout_to_the_default_variant_changes_nothing() -> None:
    flag = make_flag(default_variant="on")
    assert "targeting" not in compile_one(flag, rollout(percentage=25))


def test_rollout_of_an_unknown_variant_is_an_error() -> None:
    state = RolloutState(variant="blue", stages=[50], stage_index=0, percentage=50, status="running",
                         stage_delay_seconds=0, plan_hash="x")
    with pytest.raises(GitopsFlagsError, match="rollout is 'blue', which is not one of the flag's variants"):
        flagd.compile_environment({"checkout": make_flag()}, "production", {"checkout": state}, "c")


# --- documents --------------------------------------------------------------------------------------


def test_document_shape_and_metadata() -> None:
    other = Flag.model_validate({
        "key": "theme", "type": "string", "variants": {"dark": "dark", "light": "light"},
        "default_variant": "light", "environments": {"staging": {"enabled": True}},
    })
    config = Flag.model_validate({
        "key": "limits", "type": "object", "default_variant": "small",
        "variants": {"small": {"max": 1, "tags": ["a"]}, "big": {"max": 9, "nested": {"x": None}}},
        "environments": {"production": {"enabled": True, "default_variant": "big"}},
    })
    flags = {"checkout": make_flag(enabled=False), "theme": other, "limits": config}
    doc = flagd.compile_environment(flags, "production", {"checkout": rollout()}, "abc123")
    assert_valid(doc)
    assert doc["$schema"] == "https://flagd.dev/schema/v0/flags.json"
    assert doc["metadata"] == {"gitopsCommit": "abc123", "gitopsEnvironment": "production"}
    assert set(doc["flags"]) == {"checkout", "limits"}  # theme has no production section
    checkout = doc["flags"]["checkout"]
    assert (checkout["state"], checkout["defaultVariant"]) == ("ENABLED", "off")
    assert checkout["metadata"] == {"gitopsCommit": "abc123", "gitopsRolloutPercentage": 25,
                                    "gitopsType": "boolean", "gitopsRolloutStatus": "running",
                                    "gitopsRolloutVariant": "on", "gitopsDisabled": True}
    named = Flag.model_validate({**other.model_dump(by_alias=True), "name": "Theme", "description": "Colours",
                                 "tags": ["ui", "q1, q2", "ünï"]})
    meta = flagd.compile_flag(named, "staging", None, "abc123")["metadata"]
    # tags as a JSON array in a string: metadata values must be scalars, and a tag may hold a comma
    assert meta == {"gitopsCommit": "abc123", "gitopsType": "string", "gitopsName": "Theme",
                    "gitopsDescription": "Colours", "gitopsTags": '["ui","q1, q2","ünï"]'}
    limits = doc["flags"]["limits"]
    assert limits["defaultVariant"] == "big"  # the environment's default wins
    assert limits["variants"]["big"] == {"max": 9, "nested": {"x": None}}  # objects pass through
    staging = flagd.compile_environment(flags, "staging", {}, "abc123")
    assert_valid(staging)
    assert set(staging["flags"]) == {"checkout", "theme"}


def test_output_bytes_are_deterministic() -> None:
    a = make_flag(rules=[{"when": {"attribute": "x", "operator": "equals", "value": 1}, "variant": "on"}])
    b = make_flag().model_copy(update={"key": "zeta"})
    rollouts = {"zeta": rollout()}
    one = flagd.dumps(flagd.compile_environment({"checkout": a, "zeta": b}, "production", rollouts, "c"))
    two = flagd.dumps(flagd.compile_environment({"zeta": b, "checkout": a}, "production", rollouts, "c"))
    assert one == two
    assert one.endswith(b"\n") and list(json.loads(one)) == sorted(json.loads(one))


def test_the_vendored_schema_rejects_what_flagd_rejects() -> None:
    good = flagd.compile_environment({"checkout": make_flag()}, "production", {"checkout": rollout()}, "c")
    assert_valid(good)
    bad_state = json.loads(json.dumps(good))
    bad_state["flags"]["checkout"]["state"] = "ON"
    bad_weight = json.loads(json.dumps(good))
    bad_weight["flags"]["checkout"]["targeting"] = {"fractional": [["on", "25"], ["off", 75]]}
    bad_metadata = json.loads(json.dumps(good))
    bad_metadata["flags"]["checkout"]["metadata"]["nested"] = {"a": 1}
    for bad in (bad_state, bad_weight, bad_metadata):
        assert list(VALIDATOR.iter_errors(bad))


def test_validate_reports_what_no_engine_reads_alike_and_a_surprising_kill_switch() -> None:
    from gitops_flags.validate import check_flag

    flag = Flag.model_validate({
        "key": "x", "type": "boolean", "variants": {"on": True, "off": False}, "default_variant": "off",
        "environments": {
            "production": {"enabled": False, "default_variant": "on", "rules": [
                {"when": {"attribute": "user.plan", "operator": "equals", "value": "gold"},
                 "variant": "on"},
                {"when": {"all": [
                    {"attribute": "app", "operator": "semver_greater_than", "value": "2.0.0-rc.1"},
                    {"attribute": "tier", "operator": "in", "value": [1, None]}]}, "variant": "on"},
            ]},
            "staging": {"enabled": False}}})
    found = {(p.message.split(":")[0], p.severity) for p in check_flag(flag, "flags/x.yaml", None, {})}
    assert found == {
        ("environments.production.rules[0].when.attribute", "error"),
        ("environments.production.rules[1].when.all[0].value", "error"),
        ("environments.production.rules[1].when.all[1].value", "error"),
        ("environments.production.enabled", "warning"),  # serves off, not default_variant on
    }
    only_on = Flag.model_validate({"key": "x", "type": "boolean", "variants": {"on": True},
                                   "default_variant": "on",
                                   "environments": {"production": {"enabled": False}}})
    [problem] = check_flag(only_on, "flags/x.yaml", None, {})
    assert "cannot turn this flag off" in problem.message and problem.severity == "warning"
