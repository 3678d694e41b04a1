"""After every stage `advance` writes, the store's flagd document is served by OpenFeature's own flagd
provider in offline file mode, as an application would read it: the share of 10,000 targeting keys served
the rolled-out variant matches the stage, and keys that are in stay in."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import responses
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from test_cli_advance import GATE_URL, HTTP_GATE, T0, FlagRepo, flag_data

KEYS = [f"user-{i:05d}" for i in range(10_000)]
HOUR = timedelta(hours=1)

Served = Callable[[Path], set[str]]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The targeting keys served `on` by a copy of a flagd document (the store replaces its files)."""
    counter = itertools.count()
    providers: list[FlagdProvider] = []

    def _served(document: Path) -> set[str]:
        n = next(counter)
        copy = tmp_path / f"served-{n}.flagd.json"
        shutil.copyfile(document, copy)
        provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(copy))
        providers.append(provider)
        api.set_provider_and_wait(provider, f"rollout-interop-{n}")
        client = api.get_client(f"rollout-interop-{n}")
        out = set()
        for key in KEYS:
            details = client.get_boolean_details("new_checkout", False, EvaluationContext(targeting_key=key))
            assert details.error_code is None, details
            if details.value:
                out.add(key)
        return out

    yield _served
    for provider in providers:
        provider.shutdown()


def share(keys: set[str]) -> float:
    return 100 * len(keys) / len(KEYS)


def test_every_stage_advance_writes_serves_its_share_and_keeps_users_in(
    tmp_path: Path, served: Served
) -> None:
    repo = FlagRepo(tmp_path / "repo")
    repo.applied(flag_data())
    document = repo.store_dir / "production.flagd.json"
    previous = served(document)
    assert abs(share(previous) - 5) <= 1.5
    now = T0
    for stage in (25, 50, 75, 100):
        now += 2 * HOUR
        assert repo.advance(now) == 0
        assert repo.rollout().percentage == stage
        current = served(document)
        assert abs(share(current) - stage) <= 1.5, (stage, share(current))
        assert previous <= current, f"{len(previous - current)} keys left the variant at {stage}%"
        previous = current
    assert previous == set(KEYS)


def test_a_rollback_serves_nobody(tmp_path: Path, served: Served) -> None:
    repo = FlagRepo(tmp_path / "repo")
    repo.applied(flag_data(health_check=HTTP_GATE))
    with responses.RequestsMock() as rsps:
        rsps.get(GATE_URL, status=200)
        assert repo.advance(T0 + 2 * HOUR) == 0
        assert abs(share(served(repo.store_dir / "production.flagd.json")) - 25) <= 1.5
        rsps.replace(responses.GET, GATE_URL, status=500)
        assert repo.advance(T0 + 4 * HOUR) == 1
    assert served(repo.store_dir / "production.flagd.json") == set()
