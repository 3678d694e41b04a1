"""Compiled documents evaluated by OpenFeature's own Python flagd provider, in offline file mode.

This is what an application does: FlagdProvider(resolver_type=FILE) loads `<env>.flagd.json` and the
OpenFeature SDK evaluates flags per targeting key. The provider's in-process evaluator (flagd-core)
implements flagd's `fractional`, `starts_with`, `ends_with` and `sem_ver`, so the shares measured
here are the shares flagd serves.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from engine_cases import ERROR, MISSING, STAFF, STAGES, T0, at, table
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import Reason
from referencing import Registry, Resource

from gitops_flags import flagd
from gitops_flags.model import Flag
from gitops_flags.store.state import RolloutState

KEYS = [f"user-{i:05d}" for i in range(10_000)]
SCHEMAS = Path(__file__).parent / "fixtures" / "flagd-schema"

_flags = json.loads((SCHEMAS / "flags.json").read_text())
_targeting = json.loads((SCHEMAS / "targeting.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(
    _flags,
    registry=Registry().with_resources(
        [
            (_flags["$id"], Resource.from_contents(_flags)),
            (_targeting["$id"], Resource.from_contents(_targeting)),
            ("./targeting.json", Resource.from_contents(_targeting)),  # see test_flagd.flagd_validator
        ]
    ),
)


def checkout(**env: Any) -> Flag:
    return Flag.model_validate({
        "key": "new_checkout", "type": "boolean", "variants": {"on": True, "off": False},
        "default_variant": "off", "environments": {"production": {"enabled": True, **env}},
    })


Serve = Callable[..., OpenFeatureClient]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Compile, validate against flagd's schema, write the file, and return a client reading it."""
    counter = itertools.count()
    providers: list[FlagdProvider] = []

    def _serve(
        flags: dict[str, Flag], rollouts: dict[str, RolloutState], commit: str = "0123abc"
    ) -> OpenFeatureClient:
        document = flagd.compile_environment(flags, "production", rollouts, commit)
        assert not list(VALIDATOR.iter_errors(document))
        n = next(counter)
        path = tmp_path / f"production-{n}.flagd.json"
        path.write_bytes(flagd.dumps(document))
        provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        providers.append(provider)
        api.set_provider_and_wait(provider, f"interop-{n}")  # initialization is asynchronous otherwise
        return api.get_client(f"interop-{n}")

    yield _serve
    for provider in providers:
        provider.shutdown()


def served_on(client: OpenFeatureClient, flag: str = "new_checkout", **attributes: Any) -> set[str]:
    out = set()
    for key in KEYS:
        ctx = EvaluationContext(targeting_key=key, attributes=attributes)
        details = client.get_boolean_details(flag, False, ctx)
        assert details.error_code is None, details
        if details.value:
            out.add(key)
    return out


def test_each_stage_serves_its_share_and_users_who_are_in_stay_in(serve: Serve) -> None:
    previous: set[str] = set()
    for stage in STAGES:
        client = serve({"new_checkout": checkout()}, {"new_checkout": at(stage)})
        served = served_on(client)
        share = 100 * len(served) / len(KEYS)
        assert abs(share - stage) <= 1.5, (stage, share)
        assert previous <= served, f"{len(previous - served)} keys lost the variant at {stage}%"
        previous = served
    assert previous == set(KEYS)


def test_buckets_do_not_depend_on_the_commit_or_other_flags(serve: Serve) -> None:
    a = served_on(serve({"new_checkout": checkout()}, {"new_checkout": at(25)}))
    other = Flag.model_validate({"key": "other", "type": "boolean", "variants": {"on": True, "off": False},
                                 "default_variant": "off", "environments": {"production": {"enabled": True}}})
    b = served_on(serve({"new_checkout": checkout(), "other": other}, {"new_checkout": at(25)}, "fedcba9"))
    assert a == b


@pytest.mark.parametrize(("status", "percentage"), [("scheduled", 0), ("rolled_back", 0)])
def test_not_started_or_rolled_back_serves_nobody(serve: Serve, status: str, percentage: int) -> None:
    client = serve({"new_checkout": checkout()}, {"new_checkout": at(percentage, status)})
    assert served_on(client) == set()
    details = client.get_boolean_details("new_checkout", True, EvaluationContext(targeting_key="user-1"))
    assert (details.value, details.variant, details.reason) == (False, "off", Reason.STATIC)


def test_paused_rollout_keeps_serving_its_share(serve: Serve) -> None:
    running = served_on(serve({"new_checkout": checkout()}, {"new_checkout": at(50)}))
    paused = served_on(serve({"new_checkout": checkout()}, {"new_checkout": at(50, "paused")}))
    assert paused == running


def test_a_killed_flag_serves_off_whatever_the_code_default(serve: Serve) -> None:
    """flagd's DISABLED would return the code default, which can be true: a killed flag is written to
    serve its false variant statically instead (docs/formats.md, "The kill switch")."""
    killed = checkout(enabled=False, rules=[STAFF], default_variant="on")
    client = serve({"new_checkout": killed}, {"new_checkout": at(50)})
    for default in (True, False):
        details = client.get_boolean_details("new_checkout", default, EvaluationContext(
            "user-1", {"email": "boss@acme.com"}))
        assert (details.value, details.variant, details.reason) == (False, "off", Reason.STATIC)
        assert details.flag_metadata["gitopsDisabled"] is True


def test_staff_rule_wins_over_the_rollout(serve: Serve) -> None:
    client = serve({"new_checkout": checkout(rules=[STAFF])}, {"new_checkout": at(5)})
    staff = served_on(client, email="someone@acme.com")
    assert staff == set(KEYS)
    outsiders = served_on(client, email="someone@example.com")
    assert abs(100 * len(outsiders) / len(KEYS) - 5) <= 1.5
    details = client.get_boolean_details(
        "new_checkout", False, EvaluationContext(targeting_key="user-1", attributes={"email": "a@acme.com"}))
    assert (details.value, details.reason, details.flag_metadata["gitopsCommit"]) == (
        True, Reason.TARGETING_MATCH, "0123abc")


def test_rule_operators_evaluate_as_the_file_means(serve: Serve) -> None:
    """The operator table shared with the litestar-flags tests (engine_cases)."""
    client = serve({flag.key: flag for flag, _, _ in table()}, {})
    for flag, context, expected in table():
        attributes = {k: v for k, v in context.items() if v is not MISSING}
        details = client.get_string_details(flag.key, "code-default", EvaluationContext("k", attributes))
        assert (ERROR if details.error_code else details.variant) == expected, (flag.key, context)


def test_object_variants_pass_through(serve: Serve) -> None:
    flag = Flag.model_validate({
        "key": "limits", "type": "object", "default_variant": "small",
        "variants": {"small": {"max": 1, "regions": ["eu"]}, "big": {"max": 9, "nested": {"retry": True}}},
        "environments": {"production": {"enabled": True, "rules": [
            {"when": {"attribute": "plan", "operator": "equals", "value": "gold"}, "variant": "big"}]}},
    })
    client = serve({"limits": flag}, {})
    gold = client.get_object_value("limits", {}, EvaluationContext("k", {"plan": "gold"}))
    free = client.get_object_value("limits", {}, EvaluationContext("k", {"plan": "free"}))
    assert gold == {"max": 9, "nested": {"retry": True}}
    assert free == {"max": 1, "regions": ["eu"]}


def boolean_flag(key: str) -> Flag:
    return Flag.model_validate({"key": key, "type": "boolean", "variants": {"on": True, "off": False},
                                "default_variant": "off", "environments": {"production": {"enabled": True}}})


def test_each_flag_buckets_users_on_its_own(serve: Serve) -> None:
    """flagd hashes the flag key with the targeting key: being in flag A's 50% says nothing about B's."""
    client = serve({"a": boolean_flag("a"), "b": boolean_flag("b")}, {"a": at(50), "b": at(50)})
    in_a, in_b = served_on(client, "a"), served_on(client, "b")
    assert abs(100 * len(in_a) / len(KEYS) - 50) <= 1.5 and abs(100 * len(in_b) / len(KEYS) - 50) <= 1.5
    assert abs(100 * len(in_a & in_b) / len(KEYS) - 25) <= 1.5  # independent, not the same half


def test_a_key_with_dots_and_dashes_and_a_number_flag_with_floats(serve: Serve) -> None:
    flag = Flag.model_validate({
        "key": "api.rate-limit_v2", "type": "number", "default_variant": "mid",
        "variants": {"low": 0.5, "mid": 1, "high": 2.75},
        "environments": {"production": {"enabled": True, "rules": [
            {"variant": "high", "when": {"any": [
                {"attribute": "score", "operator": "greater_than", "value": 9.5},
                {"attribute": "score", "operator": "less_or_equal", "value": -1.25},
            ]}},
            {"variant": "low", "when": {"all": [
                {"attribute": "app", "operator": "semver_equals", "value": "1.2"},
                {"attribute": "tier", "operator": "in", "value": [1, 2]},
            ]}},
        ], "rollout": {"variant": "high", "stages": [50]}}},
    })
    rollout = RolloutState(variant="high", stages=[50], stage_index=0, percentage=50, status="running",
                           entered_at=T0, stage_delay_seconds=60, plan_hash="sha256:plan")
    client = serve({flag.key: flag}, {flag.key: rollout})

    def value(key: str = "k", **attributes: Any) -> tuple[float, str | None]:
        details = client.get_float_details(flag.key, -1.0, EvaluationContext(key, attributes))
        assert details.error_code is None, details
        return details.value, details.variant

    assert value(score=9.6) == (2.75, "high")
    assert value(score=-1.25) == (2.75, "high")
    assert value(app="1.2.0", tier=2) == (0.5, "low")
    assert value(app="v1.2.0", tier=2)[1] in ("mid", "high")  # a leading v in the context is no version
    assert value(app="1.2.0", tier=3)[1] in ("mid", "high")  # not `in`: falls through to the rollout
    shares = [value(key)[0] for key in KEYS]
    assert set(shares) == {1.0, 2.75}
    assert abs(100 * shares.count(2.75) / len(KEYS) - 50) <= 1.5


def test_not_equals_and_less_than(serve: Serve) -> None:
    flag = Flag.model_validate({
        "key": "banner", "type": "string", "default_variant": "none",
        "variants": {"none": "", "legacy": "upgrade", "other": "hello"},
        "environments": {"production": {"enabled": True, "rules": [
            {"variant": "legacy", "when": {"attribute": "build", "operator": "less_than", "value": 100}},
            {"variant": "other", "when": {"attribute": "region", "operator": "not_equals", "value": "eu"}},
        ]}},
    })
    client = serve({"banner": flag}, {})

    def banner(**attributes: Any) -> str | None:
        details = client.get_string_details("banner", "code", EvaluationContext("k", attributes))
        assert details.error_code is None, details
        return details.variant

    assert banner(build=99, region="eu") == "legacy"
    assert banner(build=99.5, region="eu") == "legacy"
    assert banner(build=100, region="eu") == "none"
    assert banner(build=100, region="us") == "other"
