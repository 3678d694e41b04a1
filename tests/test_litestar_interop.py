"""The litestar-flags store against a real Redis server and real SQLite databases, evaluated by
litestar-flags itself.

After every write the test reads the flag back the way a Litestar app does (litestar-flags'
RedisStorageBackend / DatabaseStorageBackend on the same Redis or database) and evaluates it for 10,000
targeting keys with litestar-flags' EvaluationEngine. The engine asks its storage only for per-user
overrides, which these tests never set, so the bulk evaluations use an empty in-memory storage for those
lookups (10,000 round trips per stage otherwise); a sample goes through FeatureFlagClient on the real
storage and must agree. The Redis server is started by the tests on a free port, without persistence.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar import Litestar, get  # type: ignore[import-untyped]
from litestar.testing import TestClient  # type: ignore[import-untyped]
from litestar_flags import FeatureFlagClient, FeatureFlagsConfig, FeatureFlagsPlugin  # type: ignore[import-untyped]
from litestar_flags.context import EvaluationContext  # type: ignore[import-untyped]
from litestar_flags.engine import EvaluationEngine  # type: ignore[import-untyped]
from litestar_flags.storage.database import DatabaseStorageBackend  # type: ignore[import-untyped]
from litestar_flags.storage.memory import MemoryStorageBackend  # type: ignore[import-untyped]
from litestar_flags.storage.redis import RedisStorageBackend  # type: ignore[import-untyped]
from litestar_flags.types import EvaluationReason  # type: ignore[import-untyped]

from gitops_flags import flagd
from gitops_flags.model import Flag
from gitops_flags.store import Update, update
from gitops_flags.store.base import Store, StoreSnapshot
from gitops_flags.store.litestar import LitestarFlagsStore, open_litestar_store
from gitops_flags.store.state import RolloutState, StoreState

KEYS = [f"user-{i:05d}" for i in range(10_000)]
STAGES = [5, 25, 50, 75, 100]
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STAFF = {"name": "staff", "when": {"attribute": "email", "operator": "ends_with", "value": "@acme.com"},
         "variant": "on"}
SHARES: dict[str, list[float]] = {}


# --- a real Redis server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run installs it)")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {process.stderr and process.stderr.read()!r}")
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


# --- both backends, seen from the gitops side and from the app side ---------------------------------


class Target:
    """One litestar-flags storage: the store URL apply uses, and how an app opens the same data."""

    def __init__(self, kind: str, store_url: str, app: Callable[[str], Any], config: Callable[[str], Any]) -> None:
        self.kind, self.store_url, self._app, self.config = kind, store_url, app, config

    def store(self) -> LitestarFlagsStore:
        return open_litestar_store(self.store_url.removeprefix("litestar-flags:"))

    @asynccontextmanager
    async def storage(self, environment: str = "production") -> AsyncIterator[Any]:
        storage = await self._app(environment)
        try:
            yield storage
        finally:
            await storage.close()


@pytest.fixture(params=["redis", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "redis":
        url = request.getfixturevalue("redis_server")
        redis.Redis.from_url(url).flushdb()

        async def redis_app(env: str) -> Any:
            return await RedisStorageBackend.create(url=url, prefix=f"feature_flags:{env}:")

        return Target("redis", f"litestar-flags:{url}", redis_app, lambda env: FeatureFlagsConfig(
            backend="redis", redis_url=url, redis_prefix=f"feature_flags:{env}:"))

    def db(env: str) -> str:
        return f"sqlite+aiosqlite:///{tmp_path}/{env}.db"

    async def sqlite_app(env: str) -> Any:
        return await DatabaseStorageBackend.create(connection_string=db(env))

    return Target("sqlite", f"litestar-flags:{db('{environment}')}", sqlite_app,
                  lambda env: FeatureFlagsConfig(backend="database", connection_string=db(env)))


def checkout(**production: Any) -> Flag:
    return Flag.model_validate({
        "key": "new_checkout", "type": "boolean", "variants": {"on": True, "off": False},
        "default_variant": "off", "environments": {"production": {"enabled": True, "rules": [STAFF], **production},
                                                   "staging": {"enabled": True}},
    })


def at(percentage: int) -> RolloutState:
    return RolloutState(
        variant="on", stages=STAGES, stage_index=STAGES.index(percentage), percentage=percentage,
        status="completed" if percentage == 100 else "running", entered_at=T0, stage_delay_seconds=3600,
        plan_hash="sha256:plan",
    )


def apply(store: Store, flags: dict[str, Flag], state: StoreState, commit: str = "c1") -> str:
    """What apply and advance do: compile every environment, write with compare-and-swap."""

    def decide(snapshot: StoreSnapshot) -> Update:
        documents = {env: flagd.compile_environment(flags, env, state.rollouts_for(env), commit)
                     for env in ("production", "staging")}
        return Update(state, documents, [{"commit": commit}])

    version = update(store, decide)
    assert version is not None
    return version


def served(target: Target, **attributes: Any) -> tuple[set[str], dict[str, int]]:
    """Keys served True in production, and the count of each evaluation reason."""

    async def run() -> tuple[set[str], dict[str, int]]:
        async with target.storage() as storage:
            flag = await storage.get_flag("new_checkout")
            assert flag is not None
            engine, no_overrides = EvaluationEngine(), MemoryStorageBackend()
            on, reasons = set(), dict[str, int]()
            for key in KEYS:
                result = await engine.evaluate(flag, EvaluationContext(targeting_key=key, attributes=attributes),
                                               no_overrides)
                assert result.error_code is None, result
                reasons[result.reason] = reasons.get(result.reason, 0) + 1
                if result.value:
                    on.add(key)
            client = FeatureFlagClient(storage=storage)  # the app's path, on the real storage
            for key in KEYS[::97]:
                ctx = EvaluationContext(targeting_key=key, attributes=attributes)
                assert await client.get_boolean_value("new_checkout", not (key in on), ctx) is (key in on)
            return on, reasons

    return asyncio.run(run())


# --- the acceptance criteria ----------------------------------------------------------------------------


def test_each_stage_serves_its_share_and_users_who_are_in_stay_in(target: Target) -> None:
    store = target.store()
    previous: set[str] = set()
    shares = SHARES.setdefault(target.kind, [])
    for stage in STAGES:
        state = StoreState(applied_commit=f"stage-{stage}").with_rollout("new_checkout", "production", at(stage))
        apply(store, {"new_checkout": checkout()}, state, commit=f"stage-{stage}")
        on, reasons = served(target)
        share = 100 * len(on) / len(KEYS)
        shares.append(share)
        assert abs(share - stage) <= 1.5, (target.kind, stage, share)
        assert previous <= on, f"{len(previous - on)} keys lost the variant at {stage}%"
        assert reasons.get(EvaluationReason.TARGETING_MATCH, 0) == len(on)  # served by the rollout rule
        previous = on
        staff, _ = served(target, email="someone@acme.com")
        assert staff == set(KEYS)  # the targeting rule comes first
    assert previous == set(KEYS)
    print(f"\n{target.kind}: share served per stage {STAGES}: {shares}")


def test_kill_switch_serves_the_default_to_everyone(target: Target) -> None:
    store = target.store()
    state = StoreState().with_rollout("new_checkout", "production", at(50))
    apply(store, {"new_checkout": checkout()}, state)
    assert served(target)[0]
    apply(store, {"new_checkout": checkout(enabled=False)}, state, commit="c2")
    for attributes in ({}, {"email": "boss@acme.com"}):
        on, reasons = served(target, **attributes)
        assert on == set()
        assert reasons == {EvaluationReason.DISABLED: len(KEYS)}


def test_a_rerun_changes_nothing_and_a_deleted_flag_is_deleted(target: Target) -> None:
    store = target.store()
    state = StoreState().with_rollout("new_checkout", "production", at(25))
    other = Flag.model_validate({"key": "other", "type": "string", "variants": {"a": "A", "b": "B"},
                                 "default_variant": "b", "environments": {"production": {"enabled": True}}})
    v1 = apply(store, {"new_checkout": checkout(), "other": other}, state)

    async def snapshot() -> dict[str, Any]:
        async with target.storage() as storage:
            flags = await storage.get_flags(["new_checkout", "other"])
            return {k: (f.id, f.updated_at) for k, f in flags.items()}

    before = asyncio.run(snapshot())
    assert sorted(before) == ["new_checkout", "other"]
    assert store.write(state, store.read().documents, v1) == v1  # the same content: the same version
    assert asyncio.run(snapshot()) == before  # nothing rewritten
    assert store.read_audit() == [{"commit": "c1"}]

    apply(store, {"new_checkout": checkout()}, state, commit="c2")
    assert sorted(asyncio.run(snapshot())) == ["new_checkout"]

    async def evaluate_deleted() -> Any:
        async with target.storage() as storage:
            return await FeatureFlagClient(storage=storage).get_string_details("other", "code-default")

    gone = asyncio.run(evaluate_deleted())
    assert (gone.value, gone.error_code) == ("code-default", "FLAG_NOT_FOUND")


def test_another_process_reads_the_same_store(target: Target) -> None:
    state = StoreState(applied_commit="c1").with_rollout("new_checkout", "production", at(25))
    version = apply(target.store(), {"new_checkout": checkout()}, state)
    snap = target.store().read()
    assert (snap.version, snap.state) == (version, state)
    assert sorted(snap.documents) == ["production", "staging"]
    assert snap.documents["production"]["flags"]["new_checkout"]["metadata"]["gitopsRolloutPercentage"] == 25
    assert target.store().drift() == {}


def test_concurrent_writers_each_land_once(target: Target) -> None:
    """Two runs racing: the lock and the version check make one retry, and both audit lines land."""
    apply(target.store(), {"new_checkout": checkout()}, StoreState())
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            def decide(snapshot: StoreSnapshot) -> Update:
                return Update(snapshot.state, snapshot.documents, [{"run": name}])

            for _ in range(3):
                update(target.store(), decide, attempts=20)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runs = [line.get("run") for line in target.store().read_audit() if "run" in line]
    assert sorted(runs) == ["a"] * 3 + ["b"] * 3


def test_a_litestar_app_serves_what_apply_wrote(target: Target) -> None:
    """The recipe of docs/litestar.md: FeatureFlagsPlugin on the same Redis prefix or database."""
    state = StoreState().with_rollout("new_checkout", "production", at(100))
    apply(target.store(), {"new_checkout": checkout()}, state)

    @get("/checkout")
    async def checkout_page(feature_flags: FeatureFlagClient, user: str, email: str = "") -> dict[str, Any]:
        ctx = EvaluationContext(targeting_key=user, attributes={"email": email})
        details = await feature_flags.get_boolean_details("new_checkout", False, ctx)
        return {"new": details.value, "variant": details.variant}

    app = Litestar([checkout_page], plugins=[FeatureFlagsPlugin(config=target.config("production"))])
    with TestClient(app) as http:
        assert http.get("/checkout", params={"user": "user-1"}).json() == {"new": True, "variant": "on"}
    apply(target.store(), {"new_checkout": checkout(enabled=False)}, state, commit="c2")
    with TestClient(app) as http:
        assert http.get("/checkout", params={"user": "user-1"}).json() == {"new": False, "variant": None}
