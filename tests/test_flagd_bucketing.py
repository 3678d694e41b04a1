"""Which users a flagd `fractional` split serves, per flagd implementation (docs/rollouts.md, "Which users:
flagd's bucketing per implementation").

Every implementation hashes with MurmurHash3 (x86, 32 bits, seed 0) and maps the unsigned hash h to the
bucket (h * total_weight) >> 32; they differ in the bytes they hash:

- flagd itself (Go, >= 0.15) and JS flagd-core (>= 3): the UTF-8 of flag key + targeting key (JS hashes
  UTF-16 code units, the same bytes for ASCII keys only);
- Python flagd-core 2.x (openfeature-provider-flagd 0.6, the version the tests install): the deterministic
  CBOR encoding of the array [flag key, targeting key].

So the shares are the same and users who are in stay in within each implementation, but a user's bucket
differs between Python 2.x and the others. The references below are written from those descriptions; the
vectors are flagd-testbed's (open-feature/flagd-testbed v3.9.0, evaluator/gherkin/fractional.feature,
`@fractional-v2`), the suite flagd's and the providers' own CI run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext

from gitops_flags import flagd
from gitops_flags.model import Flag
from gitops_flags.store.state import RolloutState

MASK = 0xFFFFFFFF


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 (Austin Appleby's reference), unsigned."""
    h = seed
    tail = len(data) - len(data) % 4
    for i in range(0, tail, 4):
        h ^= _scramble(int.from_bytes(data[i:i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & MASK
        h = (h * 5 + 0xE6546B64) & MASK
    if len(data) % 4:
        h ^= _scramble(int.from_bytes(data[tail:], "little"))
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK
    return h ^ (h >> 16)


def _scramble(k: int) -> int:
    k = (k * 0xCC9E2D51) & MASK
    k = ((k << 15) | (k >> 17)) & MASK
    return (k * 0x1B873593) & MASK


def bucket(hashed: int, total_weight: int = 100) -> int:
    return (hashed * total_weight) >> 32


def flagd_bucket(flag_key: str, targeting_key: str, total_weight: int = 100) -> int:
    """flagd (Go) and JS flagd-core: the flag key and the targeting key concatenated, as UTF-8."""
    return bucket(murmur3_32((flag_key + targeting_key).encode()), total_weight)


def cbor_text(text: str) -> bytes:
    """RFC 8949 text string (major type 3) with its shortest length header."""
    raw = text.encode()
    n = len(raw)
    if n < 24:
        head = bytes([0x60 + n])
    elif n < 0x100:
        head = bytes([0x78, n])
    elif n < 0x10000:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x7A]) + n.to_bytes(4, "big")
    return head + raw


def python_core2_bucket(flag_key: str, targeting_key: str, total_weight: int = 100) -> int:
    """Python flagd-core 2.x: the CBOR array (major type 4, two items) of the two keys."""
    return bucket(murmur3_32(bytes([0x82]) + cbor_text(flag_key) + cbor_text(targeting_key)), total_weight)


# flagd-testbed's hash edge cases: keys whose MurmurHash3 lands on the boundaries.
EDGES = {"ejOoVL": 0, "bY9fO-": 1, "SI7p-": 2**31 - 1, "6LvT0": 2**31, "ceQdGm": 2**32 - 1}


@pytest.mark.parametrize(("key", "hashed"), EDGES.items())
def test_the_reference_murmur3_hits_flagd_testbeds_boundary_vectors(key: str, hashed: int) -> None:
    assert murmur3_32(key.encode()) == hashed


def test_the_flagd_reference_serves_what_flagd_testbed_expects_of_go_and_js() -> None:
    # "fractional-flag": {"cat": [flagKey, user.name]}, then clubs, diamonds, hearts, spades at 25 each.
    suits = ["clubs", "diamonds", "hearts", "spades"]
    expected = {"jack": "hearts", "queen": "spades", "ten": "clubs", "nine": "diamonds", "3": "clubs"}
    served = {name: suits[flagd_bucket("fractional-flag", name) // 25] for name in expected}
    assert served == expected
    # "fractional-flag-shorthand": [["heads"], ["tails", 1]], the targeting key (weights 1 and 1).
    shorthand = {k: ["heads", "tails"][flagd_bucket("fractional-flag-shorthand", k, 2)]
                 for k in ("jon@company.com", "jane@company.com")}
    assert shorthand == {"jon@company.com": "heads", "jane@company.com": "tails"}


KEYS = [f"user-{i:05d}" for i in range(2_000)] + ["zoë@example.com", "café-1", "用户-42", "😀-7"]
FLAG = "new_checkout"


@pytest.fixture
def python_provider(tmp_path: Path) -> Iterator[dict[int, OpenFeatureClient]]:
    """Our compiled production document at 5, 25 and 50%, each read by the installed Python provider in
    offline file mode (its in-process evaluator is flagd-core)."""
    flag = Flag.model_validate({
        "key": FLAG, "type": "boolean", "variants": {"on": True, "off": False}, "default_variant": "off",
        "environments": {"production": {"enabled": True}},
    })
    counter = itertools.count()
    providers, clients = [], {}
    for index, percentage in enumerate((5, 25, 50)):
        state = RolloutState(variant="on", stages=[5, 25, 50, 75, 100], stage_index=index,
                             percentage=percentage, status="running",
                             entered_at=datetime(2026, 12, 1, tzinfo=UTC), stage_delay_seconds=3600,
                             plan_hash="sha256:plan")
        document = flagd.compile_environment({FLAG: flag}, "production", {FLAG: state}, "0a1b2c")
        path = tmp_path / f"production-{percentage}.flagd.json"
        path.write_bytes(flagd.dumps(document))
        provider = FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path))
        providers.append(provider)
        name = f"bucketing-{next(counter)}"
        api.set_provider_and_wait(provider, name)
        clients[percentage] = api.get_client(name)
    yield clients
    for provider in providers:
        provider.shutdown()


def served(client: OpenFeatureClient) -> set[str]:
    return {k for k in KEYS if client.get_boolean_value(FLAG, False, EvaluationContext(targeting_key=k))}


def test_the_installed_python_provider_buckets_by_cbor_not_as_flagd_does(
    python_provider: dict[int, OpenFeatureClient],
) -> None:
    for percentage, client in python_provider.items():
        by_python = served(client)
        assert by_python == {k for k in KEYS if python_core2_bucket(FLAG, k) < percentage}, (
            "the Python provider's bucketing changed: update docs/rollouts.md and this test")
        by_flagd = {k for k in KEYS if flagd_bucket(FLAG, k) < percentage}
        # Same share, other users: at 25% about a quarter of flagd's users are also Python's.
        assert abs(len(by_python) - len(by_flagd)) < 0.03 * len(KEYS)
        assert len(by_python & by_flagd) < 0.5 * len(by_flagd) + 0.02 * len(KEYS)
        assert by_python != by_flagd
