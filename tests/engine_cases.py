"""What a flag file means, and how to ask each engine what it serves: shared by the operator tests of
flagd and litestar-flags and by the differential test, with the rollout scaffolding of the interop tests
(`T0`, `STAGES`, `STAFF`, `at`).

`reference` is a plain reading of the flag file (docs/formats.md, "What a condition means"), written
here without the compilers. `FlagdEngine` serves our flagd documents through OpenFeature's own Python
flagd provider (in-process, file mode, as an application does); `LitestarEngine` serves our litestar
store through litestar-flags' own client. Each answers a variant name, or ERROR when the application
would get its code default because evaluation failed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
from litestar_flags.client import FeatureFlagClient  # type: ignore[import-untyped]
from litestar_flags.context import EvaluationContext as LitestarContext  # type: ignore[import-untyped]
from litestar_flags.types import EvaluationReason  # type: ignore[import-untyped]
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from referencing import Registry, Resource

from gitops_flags import flagd
from gitops_flags.model import Condition, Flag
from gitops_flags.store.litestar import MemoryBackend, open_litestar_store
from gitops_flags.store.state import RolloutState, StoreState

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STAGES = [5, 25, 50, 75, 100]
STAFF = {"name": "staff", "when": {"attribute": "email", "operator": "ends_with", "value": "@acme.com"},
         "variant": "on"}


def at(percentage: int, status: str = "running") -> RolloutState:
    """A rollout of variant `on` at `percentage`: a stage of STAGES, or off them (stage index -1)."""
    index = STAGES.index(percentage) if percentage in STAGES else -1
    return RolloutState(
        variant="on", stages=STAGES, stage_index=index, percentage=percentage, status=status,
        entered_at=T0, stage_delay_seconds=3600, plan_hash="sha256:plan",
    )


ERROR = "<error: the code default>"
MISSING = object()  # an attribute the context does not have

SCHEMAS = Path(__file__).parent / "fixtures" / "flagd-schema"
_flags = json.loads((SCHEMAS / "flags.json").read_text())
_targeting = json.loads((SCHEMAS / "targeting.json").read_text())
FLAGD_SCHEMA = jsonschema.Draft7Validator(
    _flags,
    registry=Registry().with_resources([
        (_flags["$id"], Resource.from_contents(_flags)),
        (_targeting["$id"], Resource.from_contents(_targeting)),
        ("./targeting.json", Resource.from_contents(_targeting)),  # see test_flagd.flagd_validator
    ]),
)

# flagd-core logs every version it cannot parse, and litestar-flags every comparison that raised.
logging.getLogger("openfeature").setLevel(logging.CRITICAL)
logging.getLogger("litestar_flags").setLevel(logging.CRITICAL)


# --- the reference: what the flag file means -----------------------------------------------------------


def kind(value: Any) -> str:
    if value is None or value is MISSING:
        return "missing"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "object"


def same(a: Any, b: Any) -> bool:
    """Equal as the file means it: same kind, same value (numbers by value: 1 is 1.0)."""
    return kind(a) == kind(b) and kind(a) in ("text", "number", "boolean") and a == b


_PLAIN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}")


def _version(text: str) -> tuple[int, ...] | None:
    if not _PLAIN.fullmatch(text):
        return None
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def holds(cond: Condition, context: Mapping[str, Any]) -> bool | str:
    """True, False, or ERROR (an operator meeting a value it cannot compare)."""
    a = context.get(cond.attribute, MISSING)
    op, v = cond.operator, cond.value
    k = kind(a)
    if k == "missing":
        return False
    if op == "equals":
        return same(a, v)
    if op == "not_equals":
        return not same(a, v)
    if op == "in":
        return any(same(a, e) for e in v)
    if op == "not_in":
        return not any(same(a, e) for e in v)
    if op in ("greater_than", "greater_or_equal", "less_than", "less_or_equal"):
        if k == "boolean":
            return False
        if k != "number":
            return ERROR
        return {"greater_than": a > v, "greater_or_equal": a >= v, "less_than": a < v,
                "less_or_equal": a <= v}[op]
    if k != "text":
        return ERROR
    if op == "contains":
        return v in a
    if op == "starts_with":
        return bool(a.startswith(v))
    if op == "ends_with":
        return bool(a.endswith(v))
    mine, theirs = _version(a), _version(v.lstrip("vV"))
    assert theirs is not None, v
    if mine is None:
        return False
    return {"semver_equals": mine == theirs, "semver_greater_than": mine > theirs,
            "semver_less_than": mine < theirs}[op]


def reference(flag: Flag, environment: str, rollout_percentage: int, context: Mapping[str, Any]) -> str:
    """The variant the flag file serves this context (a partial rollout is left to the engines: each
    buckets users its own way, and the tests keep rollouts at 0 or 100%)."""
    env = flag.environments[environment]
    if not env.enabled:
        return flagd.killed_variant(flag, environment)
    for rule in env.rules:
        when = rule.when
        conds = when.all if hasattr(when, "all") else when.any if hasattr(when, "any") else [when]
        every = hasattr(when, "all") or isinstance(when, Condition)
        result: bool | str = every
        for cond in conds:
            got = holds(cond, context)
            if got == ERROR:
                return ERROR
            if got != every:  # `all` stops at the first that fails, `any` at the first that holds
                result = got
                break
        if result is True:
            return rule.variant
    default = flag.env_default(environment)
    if env.rollout is not None and rollout_percentage >= 100:
        return env.rollout.variant
    return default


# --- the engines ---------------------------------------------------------------------------------------

_names = itertools.count()


def rollout_at(variant: str, percentage: int) -> RolloutState:
    status = "completed" if percentage >= 100 else "scheduled"
    return RolloutState(variant=variant, stages=[100], stage_index=0 if percentage >= 100 else -1,
                        percentage=percentage, status=status,
                        entered_at="2026-12-01T09:00:00Z",  # type: ignore[arg-type]
                        stage_delay_seconds=60, plan_hash="sha256:plan")


def documents(flags: Mapping[str, Flag], environment: str, percentage: int) -> dict[str, Any]:
    rollouts = {key: rollout_at(f.environments[environment].rollout.variant, percentage)  # type: ignore[union-attr]
                for key, f in flags.items()
                if environment in f.environments and f.environments[environment].rollout is not None}
    return flagd.compile_environment(dict(flags), environment, rollouts, "c0ffee1")


def _details(flag_type: str) -> str:
    return {"boolean": "get_boolean_details", "string": "get_string_details", "number": "get_float_details",
            "object": "get_object_details"}[flag_type]


_DEFAULTS: dict[str, Any] = {"boolean": False, "string": "code default", "number": -12345.0, "object": {}}


class FlagdEngine:
    """OpenFeature's Python flagd provider reading one environment's flagd document from a file."""

    def __init__(self, document: Mapping[str, Any], directory: Path) -> None:
        assert not list(FLAGD_SCHEMA.iter_errors(document))
        n = next(_names)
        path = directory / f"engine-{n}.flagd.json"
        path.write_bytes(flagd.dumps(document))
        self.types = {key: f["metadata"]["gitopsType"] for key, f in document["flags"].items()}
        self.provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        api.set_provider_and_wait(self.provider, f"engine-{n}")
        self.client = api.get_client(f"engine-{n}")

    def serve(self, key: str, context: Mapping[str, Any], targeting_key: str = "user-1") -> str:
        attributes = {k: v for k, v in context.items() if v is not MISSING}
        flag_type = self.types[key]
        details = getattr(self.client, _details(flag_type))(
            key, _DEFAULTS[flag_type], EvaluationContext(targeting_key, attributes))
        if details.error_code is not None:
            return ERROR
        assert details.variant is not None, details
        return str(details.variant)

    def close(self) -> None:
        self.provider.shutdown()


class LitestarEngine:
    """litestar-flags' own client over what the litestar store wrote (memory backend)."""

    def __init__(self, store_documents: Mapping[str, Mapping[str, Any]], environment: str,
                 open_storage: Callable[[], Awaitable[Any]] | None = None) -> None:
        """`open_storage` opens the storage an app would (the store wrote it already); without it the
        documents are written to a new memory store here."""
        self.open_storage = open_storage
        if open_storage is None:
            store = open_litestar_store(f"memory:engines-{next(_names)}")
            assert isinstance(store.backend, MemoryBackend)
            store.write(StoreState(), store_documents, store.read().version)
            self.client = FeatureFlagClient(storage=store.backend.storage(environment))
        document = store_documents[environment]
        self.types = {key: f["metadata"]["gitopsType"] for key, f in document["flags"].items()}
        self.served = {key: (f["defaultVariant"], f["variants"][f["defaultVariant"]])
                       for key, f in document["flags"].items()}

    def serve_many(self, requests: list[tuple[str, Mapping[str, Any], str]]) -> list[str]:
        async def run() -> list[str]:
            if self.open_storage is None:
                return [await self._serve(*request) for request in requests]
            storage = await self.open_storage()
            self.client = FeatureFlagClient(storage=storage)
            try:
                return [await self._serve(*request) for request in requests]
            finally:
                await storage.close()

        return asyncio.run(run())

    def serve(self, key: str, context: Mapping[str, Any], targeting_key: str = "user-1") -> str:
        return self.serve_many([(key, context, targeting_key)])[0]

    async def _serve(self, key: str, context: Mapping[str, Any], targeting_key: str) -> str:
        attributes = {k: v for k, v in context.items() if v is not MISSING}
        flag_type = self.types[key]
        getter = {"boolean": "get_boolean_details", "string": "get_string_details",
                  "number": "get_number_details", "object": "get_object_details"}[flag_type]
        details = await getattr(self.client, getter)(
            key, _DEFAULTS[flag_type], LitestarContext(targeting_key=targeting_key, attributes=attributes))
        if details.reason == EvaluationReason.ERROR:
            return ERROR
        if details.variant is not None:
            return str(details.variant)
        # A killed flag reports no variant: it serves the document's default (flagd.killed_variant).
        assert details.reason == EvaluationReason.DISABLED, details
        name, value = self.served[key]
        assert details.value == value, (details, value)
        return str(name)


# --- the operator table both engines are checked against ------------------------------------------------


def cond(attribute: str, operator: str, value: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


def rule(variant: str, when: dict[str, Any]) -> dict[str, Any]:
    return {"when": when, "variant": variant}


# One flag exercising every operator, with the cases the issue names (flag, context → variant).
TIER = Flag.model_validate({
    "key": "tier", "type": "string", "default_variant": "none",
    "variants": {v: v for v in ("none", "beta", "old", "gold", "de", "ops", "big", "team", "both", "end")},
    "environments": {"production": {"enabled": True, "rules": [
        rule("both", {"all": [cond("plan", "equals", "gold"), cond("country", "in", ["DE", "AT"])]}),
        rule("beta", cond("version", "semver_greater_than", "2.0")),
        rule("old", cond("version", "semver_less_than", "v1.5.0")),
        rule("gold", cond("plan", "equals", "gold")),
        rule("de", cond("country", "not_in", ["US", "FR", "GB", "DE", "AT"])),
        rule("ops", cond("team", "starts_with", "ops-")),
        rule("big", cond("seats", "greater_or_equal", 100)),
        rule("team", cond("team", "contains", "platform")),
        rule("end", cond("email", "ends_with", "@acme.com")),
    ]}},
})
TIER_BASE = {"version": "1.8.0", "country": "US", "plan": "free", "team": "web", "seats": 1, "email": "a@b.c"}
TIER_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "none"),
    ({"plan": "gold", "country": "AT"}, "both"),
    ({"version": "2.1.0"}, "beta"),
    ({"version": "1.4.9"}, "old"),
    ({"version": "v2.1.0"}, "none"),        # a leading v in the context is no version
    ({"version": "2.1.0-beta.1"}, "none"),  # nor is a pre-release
    ({"version": ""}, "none"),
    ({"version": 2.1}, ERROR),              # a number where the file compares versions
    ({"plan": "gold"}, "gold"),
    ({"plan": "GOLD"}, "none"),             # text compares exactly: no case folding
    ({"country": "JP"}, "de"),
    ({"country": MISSING}, "none"),         # not_in holds for a present value only
    ({"team": "ops-eu"}, "ops"),
    ({"team": "OPS-eu"}, "none"),
    ({"seats": 100}, "big"),
    ({"seats": 100.0}, "big"),
    ({"seats": "100"}, ERROR),              # text in a numeric comparison
    ({"seats": True}, "none"),              # a boolean is no number
    ({"seats": MISSING}, "none"),
    ({"team": "web-platform-core"}, "team"),
    ({"email": "x@acme.com"}, "end"),
    ({"email": ""}, "none"),
]

# The issue's own example: a comparison against a missing attribute matches nobody.
AGE = Flag.model_validate({
    "key": "age", "type": "string", "default_variant": "zulu", "variants": {"zulu": "z", "gamma": "g"},
    "environments": {"production": {"enabled": True, "rules": [
        rule("gamma", cond("account_age_days", "less_than", 30))]}},
})
AGE_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "zulu"), ({"account_age_days": None}, "zulu"), ({"account_age_days": 3}, "gamma"),
    ({"account_age_days": 0}, "gamma"), ({"account_age_days": False}, "zulu"),
    ({"account_age_days": "3"}, ERROR), ({"account_age_days": 30}, "zulu"),
]


def table() -> Iterator[tuple[Flag, dict[str, Any], str]]:
    for flag, base, cases in ((TIER, TIER_BASE, TIER_CASES), (AGE, {}, AGE_CASES)):
        for change, expected in cases:
            yield flag, {**base, **change}, expected
