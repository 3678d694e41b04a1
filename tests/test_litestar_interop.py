"""The litestar-flags store against a real Redis server and real SQLite databases, evaluated by
litestar-flags itself.

After every write (by the real `apply` and `advance` commands, or by the store directly) the tests read
the flag back the way a Litestar app does (litestar-flags' RedisStorageBackend / DatabaseStorageBackend
on the same Redis or database) and evaluate it for 10,000 targeting keys with litestar-flags'
EvaluationEngine. The engine asks its storage only for per-user overrides, which these tests never set,
so the bulk evaluations use an empty in-memory storage for those lookups (10,000 round trips per stage
otherwise); a sample goes through FeatureFlagClient on the real storage and must agree. The Redis server
is started by the tests on a free port, without persistence, and stopped at the end.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from engine_cases import STAFF, STAGES, T0
from engine_cases import at as shared_at
from litestar import Litestar, get
from litestar.testing import TestClient
from litestar_flags import FeatureFlagClient, FeatureFlagsConfig, FeatureFlagsPlugin  # type: ignore[import-untyped]
from litestar_flags.context import EvaluationContext  # type: ignore[import-untyped]
from litestar_flags.engine import EvaluationEngine  # type: ignore[import-untyped]
from litestar_flags.storage.database import DatabaseStorageBackend  # type: ignore[import-untyped]
from litestar_flags.storage.memory import MemoryStorageBackend  # type: ignore[import-untyped]
from litestar_flags.storage.redis import RedisStorageBackend  # type: ignore[import-untyped]
from litestar_flags.types import EvaluationReason, FlagStatus  # type: ignore[import-untyped]

from gitops_flags import cli, flagd
from gitops_flags.commands import advance
from gitops_flags.commands import apply as apply_cmd
from gitops_flags.model import Flag
from gitops_flags.store import Update, update
from gitops_flags.store.base import Store, StoreSnapshot
from gitops_flags.store.litestar import LitestarFlagsStore, open_litestar_store
from gitops_flags.store.state import RolloutState, StoreState

KEYS = [f"user-{i:05d}" for i in range(10_000)]
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
                    stderr = process.stderr.read() if process.stderr else b""
                    raise RuntimeError(f"redis-server did not start: {stderr!r}") from None
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


# --- both backends, seen from the gitops side and from the app side ---------------------------------


class Target:
    """One litestar-flags storage: the store URL apply uses, and how an app opens the same data."""

    def __init__(self, kind: str, store_url: str, app: Callable[[str], Any],
                 config: Callable[[str], Any]) -> None:
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
        "default_variant": "off",
        "environments": {"production": {"enabled": True, "rules": [STAFF], **production},
                         "staging": {"enabled": True}},
    })


def at(percentage: int) -> RolloutState:
    return shared_at(percentage, "completed" if percentage == 100 else "running")


def apply(store: Store, flags: dict[str, Flag], state: StoreState, commit: str = "c1") -> str:
    """What apply and advance do: compile every environment, write with compare-and-swap."""

    def decide(snapshot: StoreSnapshot) -> Update:
        documents = {env: flagd.compile_environment(flags, env, state.rollouts_for(env), commit)
                     for env in ("production", "staging")}
        return Update(state, documents, [{"commit": commit}])

    version = update(store, decide)
    assert version is not None
    return version


def served(target: Target, keys: list[str] = KEYS, **attributes: Any) -> tuple[set[str], dict[str, int]]:
    """Keys served True in production, and the count of each evaluation reason."""

    async def run() -> tuple[set[str], dict[str, int]]:
        async with target.storage() as storage:
            flag = await storage.get_flag("new_checkout")
            assert flag is not None
            engine, no_overrides = EvaluationEngine(), MemoryStorageBackend()
            on, reasons = set(), dict[str, int]()
            for key in keys:
                ctx = EvaluationContext(targeting_key=key, attributes=attributes)
                result = await engine.evaluate(flag, ctx, no_overrides)
                assert result.error_code is None, result
                reasons[result.reason] = reasons.get(result.reason, 0) + 1
                if result.value:
                    on.add(key)
            client = FeatureFlagClient(storage=storage)  # the app's path, on the real storage
            for key in keys[::97]:
                ctx = EvaluationContext(targeting_key=key, attributes=attributes)
                assert await client.get_boolean_value("new_checkout", key not in on, ctx) is (key in on)
            return on, reasons

    return asyncio.run(run())


# --- the acceptance criteria ----------------------------------------------------------------------------


POLICY = """\
version: 1
flags_dir: flags
environments: [staging, production]
roles: {owner: ["@acme/owners"]}
rules: [{match: {kind: flag}, workflow: review}]
workflows: {review: {steps: [{id: owner, role: owner}]}}
"""
FLAG = """\
key: new_checkout
type: boolean
variants: {"on": true, "off": false}
default_variant: "off"
environments:
  staging: {enabled: true}
  production:
    enabled: %s
    rules: [{name: staff, when: {attribute: email, operator: ends_with, value: "@acme.com"}, variant: "on"}]
    rollout: {variant: "on", stages: [5, 25, 50, 75, 100], stage_delay: 1h}
"""


def commit(repo: Path, files: dict[str, str | None]) -> None:
    for rel, content in files.items():
        if content is None:
            (repo / rel).unlink()
        else:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(content)
    for args in (["add", "-A"], ["commit", "-q", "-m", "change"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_apply_and_advance_change_who_litestar_serves(target: Target, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `apply` and `advance` commands, unchanged, writing through this store: after apply and
    after every stage the share served is the stage's, users who are in stay in, staff always are; then a
    kill switch serves the default to everyone, and a deleted flag is gone."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    commit(repo, {".github/gitops-flags.yml": POLICY, "flags/new_checkout.yaml": FLAG % "true"})
    monkeypatch.setattr(apply_cmd, "store_opener", lambda url, env: target.store())
    services = advance.Services(environ={}, open_store=lambda url, env: target.store())

    def run_apply(now: datetime) -> None:
        args = ["apply", "--repo", str(repo), "--store", target.store_url, "--no-verify-approvals"]
        assert cli.main([*args, "--now", now.isoformat()]) == 0

    run_apply(T0)
    previous: set[str] = set()
    shares = SHARES.setdefault(target.kind, [])
    for number, stage in enumerate(STAGES):
        if number:
            options = advance.Options(store=target.store_url, repo=repo, now=T0 + timedelta(hours=number))
            assert advance.run(options, services) == 0
        rollout = target.store().read().state.rollout("new_checkout", "production")
        assert rollout is not None and rollout.percentage == stage
        on, reasons = served(target)
        share = 100 * len(on) / len(KEYS)
        shares.append(share)
        assert abs(share - stage) <= 1.5, (target.kind, stage, share)
        assert previous <= on, f"{len(previous - on)} keys lost the variant at {stage}%"
        assert reasons.get(EvaluationReason.TARGETING_MATCH, 0) == len(on)  # served by the rollout rule
        previous = on
        staff, _ = served(target, KEYS[::10], email="someone@acme.com")
        assert staff == set(KEYS[::10])  # the targeting rule comes first
    assert previous == set(KEYS)
    print(f"\n{target.kind}: share served per stage {STAGES}: {shares}")

    commit(repo, {"flags/new_checkout.yaml": FLAG % "false"})  # the kill switch
    run_apply(T0 + timedelta(hours=5))
    on, reasons = served(target)
    assert (on, reasons) == (set(), {EvaluationReason.DISABLED: len(KEYS)})

    commit(repo, {"flags/new_checkout.yaml": None})
    run_apply(T0 + timedelta(hours=6))

    async def gone() -> Any:
        async with target.storage() as storage:
            return await FeatureFlagClient(storage=storage).get_boolean_details("new_checkout", True)

    details = asyncio.run(gone())
    assert (details.value, details.error_code) == (True, "FLAG_NOT_FOUND")
    assert target.store().drift() == {}


def test_kill_switch_serves_the_default_to_everyone(target: Target) -> None:
    store = target.store()
    state = StoreState().with_rollout("new_checkout", "production", at(50))
    apply(store, {"new_checkout": checkout()}, state)
    assert served(target)[0]
    apply(store, {"new_checkout": checkout(enabled=False)}, state, commit="c2")
    on, reasons = served(target)
    assert (on, reasons) == (set(), {EvaluationReason.DISABLED: len(KEYS)})
    staff, reasons = served(target, KEYS[::10], email="boss@acme.com")
    assert (staff, reasons) == (set(), {EvaluationReason.DISABLED: len(KEYS[::10])})


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
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runs = [str(line["run"]) for line in target.store().read_audit() if "run" in line]
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


# --- hostile cases ----------------------------------------------------------------------------------------


def test_apply_against_a_redis_that_is_down_exits_2(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    commit(repo, {".github/gitops-flags.yml": POLICY, "flags/new_checkout.yaml": FLAG % "true"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        url = f"litestar-flags:redis://:secret@127.0.0.1:{port}/0"
        for args in (["apply", "--no-verify-approvals"], ["advance"], ["status"]):
            assert cli.main([*args, "--repo", str(repo), "--store", url]) == 2, args
            err = capsys.readouterr().err
            where = f"litestar-flags:redis://:***@127.0.0.1:{port}/0"
            assert f"error: litestar-flags storage at {where} failed" in err
            assert "secret" not in err and "Traceback" not in err


def test_the_outbox_and_unicode_object_and_number_flags_round_trip(target: Target) -> None:
    """Through real storage: what is written reads back equal (no drift from JSON columns or floats), and
    the app is served the exact values."""
    from gitops_flags.store.state import OutboxEntry

    pricing = Flag.model_validate({
        "key": "pricing", "name": "Prix — tarification ✨", "description": "価格 🚀 \"quoted\" 'single'",
        "tags": ["billing", "ünïcode"], "type": "object",
        "variants": {"a": {"tiers": [1, 2.5], "label": "Ä", "nested": {"x": None}}, "b": {}},
        "default_variant": "a",
        "environments": {"production": {"enabled": True}, "staging": {"enabled": True}},
    })
    limit = Flag.model_validate({
        "key": "limit", "type": "number", "variants": {"low": 0, "high": 2.5, "big": 10**12},
        "default_variant": "low", "environments": {"production": {"enabled": True, "rules": [
            {"when": {"attribute": "plan", "operator": "in", "value": ["pro", "ent"]}, "variant": "big"}]}},
    })
    outbox = [OutboxEntry(id="apply:c1:pr-7", kind="pr_comment", pr=7, body="Appliqué ✅", created_at=T0)]
    state = StoreState(applied_commit="c1").with_outbox(outbox)
    apply(target.store(), {"pricing": pricing, "limit": limit}, state)
    assert target.store().read().state == state
    assert target.store().drift() == {}

    async def read() -> tuple[Any, Any, Any, Any]:
        async with target.storage() as storage:
            client = FeatureFlagClient(storage=storage)
            pro = EvaluationContext(targeting_key="u", attributes={"plan": "pro"})
            number = client.get_number_value
            return (await storage.get_flag("pricing"), await client.get_object_value("pricing", {}),
                    await number("limit", -1), await number("limit", -1, pro))

    flag, served_object, served_default, served_pro = asyncio.run(read())
    assert (flag.name, flag.description, flag.tags) == (
        "Prix — tarification ✨", "価格 🚀 \"quoted\" 'single'", ["billing", "ünïcode"])
    assert served_object == {"tiers": [1, 2.5], "label": "Ä", "nested": {"x": None}}
    assert (served_default, served_pro) == (0, 10**12)


def test_a_hand_edited_store_is_reported_and_put_back(target: Target, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    apply(target.store(), {"new_checkout": checkout()}, StoreState())

    async def edit() -> None:
        async with target.storage() as storage:
            flag = await storage.get_flag("new_checkout")
            flag.status, flag.default_enabled = FlagStatus.INACTIVE, True  # on for everyone, by hand
            await storage.update_flag(flag)

    asyncio.run(edit())
    if target.kind == "redis":  # and a value litestar-flags cannot even load
        redis.Redis.from_url(target.store_url.removeprefix("litestar-flags:")).set(
            "feature_flags:staging:flag:new_checkout", "{not json")
    assert served(target)[0] == set(KEYS)
    with caplog.at_level(logging.WARNING, logger="gitops_flags.store.litestar"):
        assert cli.main(["status", "--store", target.store_url, "--repo", str(tmp_path)]) == 0
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "differs from the approved flags" in warned and "production: new_checkout edited" in warned
    if target.kind == "redis":
        assert "staging: new_checkout missing" in warned
    assert served(target)[0] == set(KEYS)  # status only reports
    target.store().reconcile()
    assert target.store().drift() == {}
    assert served(target)[0] == set()
