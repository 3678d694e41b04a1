"""The litestar-flags store on litestar-flags' memory backend: translation, the Store protocol, recovery.

Values are checked by evaluating with litestar-flags' own engine (`FeatureFlagClient`), not by reading
our specs back: what counts is what a Litestar app is served.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import logging
import socket
from contextlib import asynccontextmanager
from typing import Any

import pytest
from engine_cases import ERROR, MISSING, STAFF, T0, at, table
from litestar_flags.client import FeatureFlagClient  # type: ignore[import-untyped]
from litestar_flags.context import EvaluationContext  # type: ignore[import-untyped]
from litestar_flags.types import EvaluationReason, FlagStatus  # type: ignore[import-untyped]

from gitops_flags import flagd
from gitops_flags.model import Flag
from gitops_flags.store import ConflictError, StoreError, Update, update
from gitops_flags.store.base import StoreSnapshot
from gitops_flags.store.litestar import (
    Connection,
    DatabaseBackend,
    Flags,
    LitestarFlagsStore,
    MemoryBackend,
    Plan,
    RedisBackend,
    Spec,
    Untranslatable,
    environment_specs,
    open_litestar_store,
    parse_targeting,
)
from gitops_flags.store.state import OutboxEntry, StoreState

_names = itertools.count()


def checkout(**production: Any) -> Flag:
    return Flag.model_validate({
        "key": "new_checkout", "type": "boolean", "variants": {"on": True, "off": False},
        "default_variant": "off",
        "environments": {"production": {"enabled": True, **production}, "staging": {"enabled": True,
                                                                                    "default_variant": "on"}},
    })


def compiled(flags: dict[str, Flag], state: StoreState, commit: str = "c1") -> dict[str, dict[str, Any]]:
    return {env: flagd.compile_environment(flags, env, state.rollouts_for(env), commit)
            for env in ("production", "staging")}


def fresh() -> tuple[LitestarFlagsStore, MemoryBackend]:
    store = open_litestar_store(f"memory:test-{next(_names)}")
    assert isinstance(store.backend, MemoryBackend)
    return store, store.backend


def client(backend: MemoryBackend, environment: str = "production") -> FeatureFlagClient:
    return FeatureFlagClient(storage=backend.storage(environment))


def details(backend: MemoryBackend, key: str, default: Any, environment: str = "production",
            **ctx: Any) -> Any:
    c = client(backend, environment)
    context = EvaluationContext(targeting_key=ctx.pop("targeting_key", "user-1"), attributes=ctx)
    getter = {bool: c.get_boolean_details, str: c.get_string_details, int: c.get_number_details,
              dict: c.get_object_details}[type(default)]
    return asyncio.run(getter(key, default, context))


def value(backend: MemoryBackend, key: str, default: Any, environment: str = "production", **ctx: Any) -> Any:
    return details(backend, key, default, environment, **ctx).value


def stored(backend: MemoryBackend, key: str, environment: str = "production") -> Any:
    return asyncio.run(backend.storage(environment).get_flag(key))


def write(store: LitestarFlagsStore, flags: dict[str, Flag], state: StoreState, commit: str = "c1",
          audit: list[dict[str, Any]] | None = None) -> str:
    return store.write(state, compiled(flags, state, commit), store.read().version, audit or [])


# --- translation --------------------------------------------------------------------------------------


def test_flagd_document_maps_to_litestar_fields() -> None:
    state = StoreState().with_rollout("new_checkout", "production", at(25))
    document = compiled({"new_checkout": checkout(rules=[STAFF])}, state)["production"]
    document["flags"]["new_checkout"]["metadata"].update(
        gitopsName="New checkout", gitopsDescription="Redesigned checkout", gitopsTags='["q1","frontend"]')
    spec = environment_specs(document, "production")["new_checkout"]
    assert {k: spec[k] for k in ("key", "name", "description", "tags", "flag_type", "status",
                                 "default_enabled", "default_value")} == {
        "key": "new_checkout", "name": "New checkout", "description": "Redesigned checkout",
        "tags": ["q1", "frontend"], "flag_type": "boolean", "status": "active",
        "default_enabled": False, "default_value": None}
    assert [(r["conditions"], r["serve_enabled"], r["rollout_percentage"]) for r in spec["rules"]] == [
        ([{"attribute": "email", "operator": "gte", "value": ""},  # text, or the engine raises
          {"attribute": "email", "operator": "ends_with", "value": "@acme.com"}], True, None),
        ([], True, 25),
    ]
    assert [(v["key"], v["weight"], v["value"]) for v in spec["variants"]] == [
        ("off", 100, {"enabled": False}), ("on", 0, {"enabled": True})]
    # flagd's rule: document metadata merged under the flag's own
    assert spec["metadata"]["gitopsEnvironment"] == "production"
    assert spec["metadata"]["gitopsRolloutPercentage"] == 25


def test_tags_written_comma_separated_before_json_still_map() -> None:
    document = compiled({"new_checkout": checkout()}, StoreState())["production"]
    document["flags"]["new_checkout"]["metadata"]["gitopsTags"] = "q1, frontend"
    assert environment_specs(document, "production")["new_checkout"]["tags"] == ["q1", "frontend"]


def test_without_metadata_the_key_names_the_flag_and_the_type_follows_the_values() -> None:
    document = {"flags": {"limit": {"state": "DISABLED", "variants": {"low": 1, "high": 2.5},
                                    "defaultVariant": "high"}}}
    spec = environment_specs(document, "production")["limit"]
    assert (spec["name"], spec["description"], spec["tags"]) == ("limit", None, [])
    assert (spec["flag_type"], spec["status"], spec["default_value"]) == ("number", "inactive", 2.5)


def test_or_becomes_one_rule_per_alternative_and_and_one_rule() -> None:
    flag = Flag.model_validate({
        "key": "f", "type": "boolean", "variants": {"on": True, "off": False}, "default_variant": "off",
        "environments": {"production": {"enabled": True, "rules": [
            {"variant": "on", "when": {"any": [{"attribute": "a", "operator": "equals", "value": 1},
                                                {"attribute": "b", "operator": "equals", "value": 2}]}},
            {"variant": "on", "when": {"all": [{"attribute": "c", "operator": "in", "value": ["x"]},
                                                {"attribute": "d", "operator": "not_in", "value": ["y"]}]}},
        ]}},
    })
    document = {"flags": {"f": flagd.compile_flag(flag, "production", None, "c")}}
    rules = environment_specs(document, "production")["f"]["rules"]
    assert [(r["conditions"], r["description"]) for r in rules] == [
        # 1, and not True: str(True) is no dotted integer
        ([{"attribute": "a", "operator": "eq", "value": 1}, {"attribute": "a", "operator": "semver_eq",
                                                            "value": "1"}], "targeting rule 1"),
        ([{"attribute": "b", "operator": "eq", "value": 2}], "targeting rule 1"),
        ([{"attribute": "c", "operator": "in", "value": ["x"]},
          {"attribute": "d", "operator": "ne", "value": None},  # not_in holds for a present value only
          {"attribute": "d", "operator": "not_in", "value": ["y"]}], "targeting rule 2"),
    ]


def test_documents_written_before_gitops_rules_are_read_as_jsonlogic() -> None:
    legacy = {"if": [{"or": [{"==": [{"var": "a"}, 1]}, {"==": [{"var": "b"}, 2]}]}, "on",
                     {"if": [{"and": [{"in": [{"var": "c"}, ["x"]]}, {"!": [{"in": [{"var": "d"}, ["y"]]}]}]},
                             "on", None]}]}
    rules, splits = parse_targeting(legacy, "off")
    assert rules == [
        ([{"attribute": "a", "operator": "eq", "value": 1}], "on"),
        ([{"attribute": "b", "operator": "eq", "value": 2}], "on"),
        ([{"attribute": "c", "operator": "in", "value": ["x"]},
          {"attribute": "d", "operator": "not_in", "value": ["y"]}], "on"),
    ]
    assert splits == []


@pytest.mark.parametrize(("targeting", "splits"), [
    ({"fractional": [["on", 25], ["off", 75]]}, [("on", 25)]),
    ({"if": [True, "on", None]}, None),  # a rule with no condition: see the rules
    ("on", [("on", 100)]),
    ({"fractional": [["a", 1], ["b", 1], ["off", 2]]}, [("a", 25), ("b", 50)]),  # cumulative
    ({"fractional": [["a", 30], ["b", 70]]}, [("a", 30), ("b", 100)]),
])
def test_splits_become_cumulative_percentage_rules(targeting: Any, splits: Any) -> None:
    rules, got = parse_targeting(targeting, "off")
    if splits is None:
        assert (rules, got) == ([([], "on")], [])
    else:
        assert (rules, got) == ([], splits)


@pytest.mark.parametrize("targeting", [
    {"fractional": [{"var": "email"}, ["on", 50], ["off", 50]]},  # custom bucketing key
    {"if": [{"sem_ver": [{"var": "v"}, "^", "1.0.0"]}, "on", None]},
    {"if": [{"==": [1, {"var": "a"}]}, "on", None]},  # the value first
    {"if": [{"some": [{"var": "xs"}, {"==": [{"var": ""}, 1]}]}, "on", None]},
    {"$ref": "shared"},
    {"if": [{"==": [{"var": "a"}, 1]}, {"fractional": [["on", 50], ["off", 50]]}, None]},
])
def test_what_litestar_flags_cannot_serve_is_refused_before_anything_is_written(targeting: Any) -> None:
    store, backend = fresh()
    document = {"flags": {"f": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                "defaultVariant": "off", "targeting": targeting}}}
    with pytest.raises(Untranslatable, match="flag 'f' in 'production' cannot be written to litestar-flags"):
        store.write(StoreState(), {"production": document}, None)
    assert store.read() == StoreSnapshot(StoreState(), {}, None)
    assert stored(backend, "f") is None


def test_rule_operators_evaluate_as_the_file_means() -> None:
    """The operator table shared with the flagd tests (engine_cases)."""
    store, backend = fresh()
    write(store, {flag.key: flag for flag, _, _ in table()}, StoreState())
    for flag, context, expected in table():
        attributes = {k: v for k, v in context.items() if v is not MISSING}
        got = details(backend, flag.key, "code-default", **attributes)
        served = ERROR if got.reason == EvaluationReason.ERROR else got.variant
        assert served == expected, (flag.key, context)


def test_string_number_and_object_flags_serve_their_values() -> None:
    def flag(key: str, kind: str, variants: dict[str, Any], default: str, **production: Any) -> Flag:
        return Flag.model_validate({"key": key, "type": kind, "variants": variants,
                                    "default_variant": default,
                                    "environments": {"production": {"enabled": True, **production}}})

    vip = {"when": {"attribute": "vip", "operator": "equals", "value": True}, "variant": "b"}
    flags = {
        "color": flag("color", "string", {"r": "red", "b": "blue"}, "r", rules=[vip]),
        "retries": flag("retries", "number", {"few": 2, "many": 9}, "many"),
        "limits": flag("limits", "object", {"s": {"max": 1, "regions": ["eu"]}, "l": {"max": 9}}, "s"),
    }
    store, backend = fresh()
    write(store, flags, StoreState())
    assert value(backend, "color", "x") == "red"
    got = details(backend, "color", "x", vip=True)
    assert (got.value, got.variant, got.reason) == ("blue", "b", EvaluationReason.TARGETING_MATCH)
    assert value(backend, "retries", 0) == 9
    assert value(backend, "limits", {}) == {"max": 1, "regions": ["eu"]}
    assert details(backend, "limits", {}).variant == "s"  # no rule: the weight split names the default


def test_name_description_and_tags_of_the_flag_file_reach_litestar() -> None:
    """Through flagd.compile_flag's metadata (gitopsName/Description/Tags/Type), unicode included."""
    flag = Flag.model_validate({
        "key": "pricing", "name": "Prix — tarification ✨",
        "description": "Décrit les prix 価格 🚀 \"quoted\"", "tags": ["billing", "ünïcode"], "type": "object",
        "variants": {"a": {"tiers": [1, 2.5], "label": "Ä", "nested": {"x": None}}, "b": {}},
        "default_variant": "a", "environments": {"production": {"enabled": True}},
    })
    store, backend = fresh()
    write(store, {"pricing": flag}, StoreState())
    got = stored(backend, "pricing")
    assert (got.name, got.description, got.tags) == (
        "Prix — tarification ✨", 'Décrit les prix 価格 🚀 "quoted"', ["billing", "ünïcode"])
    assert str(got.flag_type.value) == "json"
    served = {"tiers": [1, 2.5], "label": "Ä", "nested": {"x": None}}
    assert value(backend, "pricing", {"code": "default"}) == served
    assert store.drift() == {}


def test_a_tag_containing_a_comma_reaches_litestar_as_one_tag() -> None:
    flag = checkout().model_copy(update={"tags": ["team: a, b", "q1", "[x]"]})
    store, backend = fresh()
    write(store, {"new_checkout": flag}, StoreState())
    assert stored(backend, "new_checkout").tags == ["team: a, b", "q1", "[x]"]
    assert store.drift() == {}


# --- the Store protocol ---------------------------------------------------------------------------------


def test_empty_store_reads_as_nothing() -> None:
    store, _ = fresh()
    assert store.read() == StoreSnapshot(StoreState(), {}, None)
    assert store.read_audit() == []
    assert store.drift() == {}


def test_write_then_read_round_trips_and_flags_serve_per_environment() -> None:
    store, backend = fresh()
    state = StoreState(applied_commit="c1").with_rollout("new_checkout", "production", at(100))
    documents = compiled({"new_checkout": checkout()}, state)
    version = store.write(state, documents, None, [{"event": "apply"}])
    snap = store.read()
    assert (snap.state, snap.documents, snap.version) == (state, documents, version)
    assert value(backend, "new_checkout", False) is True  # 100%: everyone in production
    staging = details(backend, "new_checkout", False, "staging")
    assert (staging.value, staging.variant) == (True, "on")  # staging's default variant, no rollout
    assert store.read_audit() == [{"event": "apply"}]


def test_compare_and_swap() -> None:
    store, backend = fresh()
    v1 = write(store, {"new_checkout": checkout()}, StoreState())
    off = checkout(enabled=False)
    with pytest.raises(ConflictError, match="moved"):
        store.write(StoreState(), compiled({"new_checkout": off}, StoreState()), None)
    with pytest.raises(ConflictError):
        store.write(StoreState(), compiled({"new_checkout": off}, StoreState()), "not-the-version")
    assert store.read().version == v1
    assert details(backend, "new_checkout", True).reason != EvaluationReason.DISABLED  # nothing applied


def test_a_rerun_changes_nothing() -> None:
    store, backend = fresh()
    state = StoreState().with_rollout("new_checkout", "production", at(25))
    v1 = write(store, {"new_checkout": checkout()}, state)
    before = stored(backend, "new_checkout")
    assert write(store, {"new_checkout": checkout()}, state) == v1
    assert stored(backend, "new_checkout") is before  # not even rewritten
    assert store.read_audit() == []


def test_a_changed_flag_is_updated_in_place_keeping_its_id() -> None:
    store, backend = fresh()
    write(store, {"new_checkout": checkout()}, StoreState())
    first = stored(backend, "new_checkout")
    write(store, {"new_checkout": checkout(enabled=False)}, StoreState(), commit="c2")
    second = stored(backend, "new_checkout")
    assert second.id == first.id  # per-user overrides are keyed by flag id
    assert str(second.status.value) == "inactive"


def test_kill_switch_serves_off_to_everyone_even_with_default_variant_on() -> None:
    store, backend = fresh()
    state = StoreState().with_rollout("new_checkout", "production", at(100))
    write(store, {"new_checkout": checkout(enabled=False, rules=[STAFF], default_variant="on")}, state)
    for who in ("user-1", "user-2"):
        got = details(backend, "new_checkout", True, targeting_key=who, email="boss@acme.com")
        assert (got.value, got.reason) == (False, EvaluationReason.DISABLED)


def test_a_deleted_flag_is_deleted_and_a_dropped_environment_loses_its_flags() -> None:
    store, backend = fresh()
    other = Flag.model_validate({"key": "other", "type": "boolean", "variants": {"on": True, "off": False},
                                 "default_variant": "on", "environments": {"production": {"enabled": True}}})
    write(store, {"new_checkout": checkout(), "other": other}, StoreState())
    assert stored(backend, "other") is not None
    write(store, {"new_checkout": checkout()}, StoreState(), commit="c2")
    assert stored(backend, "other") is None
    assert value(backend, "other", True) is True  # the code default: the flag is not found
    assert details(backend, "other", False).error_code == "FLAG_NOT_FOUND"
    assert stored(backend, "new_checkout", "staging") is not None
    state = store.read()
    store.write(state.state, {"production": state.documents["production"]}, state.version)
    assert stored(backend, "new_checkout", "staging") is None
    assert stored(backend, "new_checkout", "production") is not None


def test_flags_gitops_flags_did_not_write_are_left_alone() -> None:
    store, backend = fresh()
    theirs = environment_specs({"flags": {"theirs": {"state": "ENABLED", "variants": {"a": "x"},
                                                     "defaultVariant": "a"}}}, "production")["theirs"]
    from gitops_flags.store.litestar import build_flag

    asyncio.run(backend.storage("production").create_flag(build_flag(theirs)))
    write(store, {"new_checkout": checkout()}, StoreState())
    write(store, {}, StoreState(), commit="c2")
    assert stored(backend, "new_checkout") is None
    assert stored(backend, "theirs") is not None


def test_audit_lines_are_appended_with_compare_and_swap() -> None:
    store, _ = fresh()
    v1 = write(store, {"new_checkout": checkout()}, StoreState(), audit=[{"n": 1}])
    v2 = store.append_audit([{"n": 2}, {"n": 3}], v1)
    assert v2 != v1
    assert store.read_audit() == [{"n": 1}, {"n": 2}, {"n": 3}]
    with pytest.raises(ConflictError):
        store.append_audit([{"n": 4}], v1)
    assert store.read().version == v2


def test_update_loop_retries_after_a_lost_race() -> None:
    store, _ = fresh()
    rival = open_litestar_store(store.where.removeprefix("litestar-flags:"))  # the same memory store
    calls = []

    def decide(snapshot: StoreSnapshot) -> Update:
        calls.append(snapshot.version)
        if len(calls) == 1:  # another run writes between our read and our write
            rival.write(StoreState(applied_commit="rival"), {}, snapshot.version)
        return Update(StoreState(applied_commit="ours"), compiled({"new_checkout": checkout()}, StoreState()))

    update(store, decide)
    assert len(calls) == 2
    assert store.read().state.applied_commit == "ours"


def test_a_hand_edit_shows_as_drift_and_the_next_write_puts_it_back() -> None:
    store, backend = fresh()
    write(store, {"new_checkout": checkout()}, StoreState())
    flag = stored(backend, "new_checkout")
    flag.default_enabled = True  # someone toggled it in an admin UI
    asyncio.run(backend.storage("production").update_flag(flag))
    assert store.drift() == {"production": Plan(update=("new_checkout",))}
    write(store, {"new_checkout": checkout()}, StoreState(), commit="c2")
    assert store.drift() == {}
    assert value(backend, "new_checkout", True) is False


def test_the_outbox_round_trips_through_this_store() -> None:
    store, _ = fresh()
    outbox = [
        OutboxEntry(id="apply:c1:pr-7", kind="pr_comment", pr=7, body="Appliqué ✅ à 5 %", created_at=T0),
        OutboxEntry(id="apply:run-1:webhook", kind="webhook", payload={"text": "hi", "n": [1, 2.5]},
                    attempts=3, last_error="the webhook answered 500", created_at=T0),
    ]
    state = StoreState(applied_commit="c1").with_outbox(outbox)
    version = write(store, {"new_checkout": checkout()}, state)
    assert store.read().state.outbox == outbox
    delivered = state.model_copy(update={"outbox": outbox[1:]})  # the comment went out
    store.write(delivered, store.read().documents, version)
    assert open_litestar_store(store.where.removeprefix("litestar-flags:")).read().state.outbox == outbox[1:]


def test_a_hand_edit_is_reported_by_the_first_read_and_reconcile_puts_it_back(
        caplog: pytest.LogCaptureFixture) -> None:
    """`apply` with nothing new to apply, `status` and `advance` all read first: they say so on stderr."""
    store, backend = fresh()
    write(store, {"new_checkout": checkout()}, StoreState())
    flag = stored(backend, "new_checkout")
    flag.status, flag.default_enabled = FlagStatus.INACTIVE, True  # switched on for everyone in an admin UI
    asyncio.run(backend.storage("production").update_flag(flag))
    asyncio.run(backend.storage("staging").delete_flag("new_checkout"))
    command = open_litestar_store(store.where.removeprefix("litestar-flags:"))  # what the next command opens
    with caplog.at_level(logging.WARNING, logger="gitops_flags.store.litestar"):
        command.read()
        command.read()
    assert [r.getMessage() for r in caplog.records] == [
        f"warning: litestar-flags storage at {store.where} differs from the approved flags (edited outside "
        "gitops-flags?): production: new_checkout edited; staging: new_checkout missing. The next change "
        "applied puts them back; LitestarFlagsStore.reconcile() does it now (docs/litestar.md)"]
    assert value(backend, "new_checkout", False) is True  # reading reports, it does not revert
    assert command.reconcile() == {"production": Plan(update=("new_checkout",)),
                                   "staging": Plan(create=("new_checkout",))}
    assert (command.drift(), command.reconcile()) == ({}, {})
    assert value(backend, "new_checkout", True) is False
    assert stored(backend, "new_checkout", "staging") is not None


# --- an interrupted write ------------------------------------------------------------------------------


class CrashingFlags:
    """Flags that fail after `survive` successful writes: a process killed mid-reconcile."""

    def __init__(self, inner: Flags, budget: list[int]) -> None:
        self.inner, self.budget = inner, budget

    async def get(self, keys: Any) -> dict[str, Any]:
        return await self.inner.get(keys)

    def _spend(self) -> None:
        if not self.budget[0]:
            raise RuntimeError("killed")
        self.budget[0] -= 1

    async def create(self, spec: Spec) -> None:
        self._spend()
        await self.inner.create(spec)

    async def update(self, existing: Any, spec: Spec) -> None:
        self._spend()
        await self.inner.update(existing, spec)

    async def delete(self, key: str) -> None:
        self._spend()
        await self.inner.delete(key)


class CrashingBackend(MemoryBackend):
    def __init__(self, name: str, survive: int) -> None:
        super().__init__(name)
        self.budget = [survive]

    @asynccontextmanager
    async def connect(self) -> Any:
        async with super().connect() as conn:
            yield _Crashing(conn, self.budget)


class _Crashing:
    def __init__(self, inner: Connection, budget: list[int]) -> None:
        self.inner, self.budget = inner, budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def flags(self, location: str) -> Flags:
        return CrashingFlags(await self.inner.flags(location), self.budget)


def many(n: int) -> dict[str, Flag]:
    def one(key: str) -> Flag:
        return Flag.model_validate({"key": key, "type": "boolean", "variants": {"on": True, "off": False},
                                    "default_variant": "on",
                                    "environments": {"production": {"enabled": True}}})

    return {f"f{i}": one(f"f{i}") for i in range(n)}


def test_a_write_killed_midway_is_finished_by_the_next_reader() -> None:
    name = f"crash-{next(_names)}"
    crashing = LitestarFlagsStore(CrashingBackend(name, survive=2))
    documents = {"production": flagd.compile_environment(many(5), "production", {}, "c1")}
    with pytest.raises(RuntimeError, match="killed"):
        crashing.write(StoreState(applied_commit="c1"), documents, None)
    healthy = open_litestar_store(f"memory:{name}")
    backend = healthy.backend
    assert isinstance(backend, MemoryBackend)
    assert len(asyncio.run(backend.storage("production").get_flags([f"f{i}" for i in range(5)]))) == 2
    snap = healthy.read()  # committed before the crash: the reader finishes applying it
    assert snap.state.applied_commit == "c1"
    assert len(asyncio.run(backend.storage("production").get_flags([f"f{i}" for i in range(5)]))) == 5
    assert healthy.drift() == {}


def test_a_write_after_a_crash_finishes_the_old_one_before_deleting() -> None:
    """A flag created by the interrupted write and dropped by the next is not left behind."""
    name = f"crash-{next(_names)}"
    crashing = LitestarFlagsStore(CrashingBackend(name, survive=3))
    with pytest.raises(RuntimeError):
        documents = {"production": flagd.compile_environment(many(5), "production", {}, "c1")}
        crashing.write(StoreState(), documents, None)
    healthy = open_litestar_store(f"memory:{name}")
    version = healthy.backend.data.meta.version  # type: ignore[attr-defined]
    healthy.write(StoreState(), {"production": flagd.compile_environment(many(1), "production", {}, "c2")},
                  version)
    backend = healthy.backend
    assert isinstance(backend, MemoryBackend)
    assert sorted(asyncio.run(backend.storage("production").get_flags([f"f{i}" for i in range(5)]))) == ["f0"]


# --- URLs and misuse ------------------------------------------------------------------------------------


def test_urls() -> None:
    redis = open_litestar_store("redis://:secret@127.0.0.1:6379/2?prefix=ff:{environment}:&state_prefix=gf:")
    assert isinstance(redis.backend, RedisBackend)
    assert (redis.backend.url, redis.backend.prefix, redis.backend.state_prefix) == (
        "redis://:secret@127.0.0.1:6379/2", "ff:{environment}:", "gf:")
    assert "secret" not in redis.where
    assert redis.backend.location("production") == "ff:production:"
    database = open_litestar_store("postgresql+asyncpg://u:pw@db/flags_{environment}")
    assert database.where == "litestar-flags:postgresql+asyncpg://u:***@db/flags_{environment}"
    assert isinstance(database.backend, DatabaseBackend)
    assert database.backend.database(database.backend.location("staging")) == (
        "postgresql+asyncpg://u:pw@db/flags_staging")
    single = open_litestar_store("sqlite+aiosqlite:///flags.db")
    with pytest.raises(StoreError, match="'production' and 'staging' would share one litestar-flags store"):
        single.write(StoreState(), compiled({"new_checkout": checkout()}, StoreState()), None)
    with pytest.raises(StoreError, match="names no litestar-flags storage"):
        open_litestar_store("flags.db")


def test_two_environments_cannot_share_one_litestar_store() -> None:
    store = open_litestar_store("redis://127.0.0.1:1/0?prefix=feature_flags:")
    with pytest.raises(StoreError, match="'production' and 'staging' would share one litestar-flags store"):
        store.write(StoreState(), compiled({"new_checkout": checkout()}, StoreState()), None)


def test_bad_environment_name_is_refused() -> None:
    store, _ = fresh()
    with pytest.raises(StoreError, match="cannot name a store file"):
        store.write(StoreState(), {"../prod": {"flags": {}}}, None)


def test_unreachable_redis_is_a_store_error() -> None:
    store = open_litestar_store("redis://127.0.0.1:1/0")
    with pytest.raises(StoreError, match=r"storage at litestar-flags:redis://127\.0\.0\.1:1/0 failed"):
        store.read()


def test_malformed_redis_urls_are_refused_when_opened() -> None:
    with pytest.raises(StoreError, match=r"redis://:\*\*\*@127\.0\.0\.1:abc/0 is not a Redis URL.*Port"):
        open_litestar_store("redis://:secret@127.0.0.1:abc/0")
    with pytest.raises(StoreError, match="socket_timeout"):
        open_litestar_store("redis://127.0.0.1:6379/0?socket_timeout=soon")
    with pytest.raises(StoreError, match="must be set and differ"):
        open_litestar_store("redis://127.0.0.1:6379/0?prefix=")


def test_a_redis_that_never_answers_fails_instead_of_hanging() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        store = open_litestar_store(f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")
        with pytest.raises(StoreError, match=r"failed: Timeout"):
            store.read()


@pytest.mark.skipif(importlib.util.find_spec("asyncpg") is not None, reason="asyncpg is installed")
def test_a_postgresql_url_without_asyncpg_says_to_install_it() -> None:
    store = open_litestar_store("postgresql+asyncpg://u:secret@db/flags_{environment}")
    with pytest.raises(StoreError, match=r"the database driver 'asyncpg' is not installed; install it "
                                         r"\(pip install asyncpg") as raised:
        store.read()
    assert "secret" not in str(raised.value)


def test_a_sync_database_driver_is_refused_with_the_fix() -> None:
    store = open_litestar_store("sqlite:///flags.db")
    with pytest.raises(StoreError, match="use an async driver such as sqlite\\+aiosqlite://"):
        store.read()


def test_calling_from_a_running_event_loop_says_what_to_do() -> None:
    store, _ = fresh()

    async def inside() -> None:
        store.read()

    with pytest.raises(StoreError, match=r"asyncio\.to_thread"):
        asyncio.run(inside())
