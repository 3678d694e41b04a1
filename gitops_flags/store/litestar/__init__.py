"""`litestar-flags:<url>`: apply the store's flagd documents to litestar-flags storage.

Teams that serve flags with litestar-flags keep their Litestar app as it is: every write translates each
environment's flagd document into litestar-flags models (`FeatureFlag`, `FlagRule`, `FlagVariant`) and
applies them through litestar-flags' own storage backends, so its evaluation engine serves what a PR
approved, rollout percentage included. The mapping is in docs/litestar.md.

    litestar-flags:redis://HOST:6379/0    flags under `feature_flags:<env>:`, the rest under `gitops_flags:`
    litestar-flags:sqlite+aiosqlite:///flags/{environment}.db         one database per environment
    litestar-flags:postgresql+asyncpg://u:p@h/flags_{environment}     (the same)
    litestar-flags:memory:NAME            in-process (tests); one store per NAME

One litestar-flags store per environment (a Redis key prefix, or a database): litestar-flags' own
environment models (`Environment`, `EnvironmentFlag`) are implemented by neither its Redis nor its
database backend, and its client does not apply them when it evaluates.

Beside the flags, in the same Redis (under its own prefix) or database (tables `gitops_flags_*`), live
the store's version, state, the flagd documents as written, and the audit log. A write goes:

1. under a lease lock (Redis lock / lock row), compare-and-swap the version and commit state, documents
   and audit lines in one transaction (Redis WATCH/MULTI, or one SQL transaction): the commit point;
2. reconcile litestar-flags storage to the committed documents: create missing flags, update those that
   differ, delete the ones gone (only flags gitops-flags wrote: others are left alone);
3. record that version as applied.

A crash between 1 and 3 leaves the version marked not applied; the next read or write finishes step 2
first (as the file store replays its journal), once the stored version checks out (and, with a key, its
seal). Reconciling compares with what the storage holds, so it
also puts back a managed flag edited by hand, and a re-run that changes nothing writes nothing.

litestar-flags is asynchronous and the Store protocol is not: each call runs one `asyncio.run`, opening
and closing its connections inside it. Do not call the store from a running event loop (use a thread).

The package: `translate` (flagd documents → specs, pure) with `rules` (targeting rules that keep the
file's meaning, pure), `models` (specs ↔ litestar-flags models), `store` (the Store protocol),
`backend` (what a backend provides), and the backends `memory`, `redis`, `sql`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..base import StoreError
from ..seal import SealKey
from .backend import (
    DEFAULT_FLAG_PREFIX,
    DEFAULT_STATE_PREFIX,
    ENVIRONMENT,
    SCHEME,
    Backend,
    Connection,
    Flags,
    Meta,
    StorageFlags,
    chain_audit,
    require_extra,
    version_of,
)
from .memory import MemoryBackend
from .models import build_flag, spec_of
from .redis import RedisBackend
from .sql import DatabaseBackend, DatabaseFlags
from .store import LitestarFlagsStore
from .translate import Plan, Spec, Untranslatable, environment_specs, flag_spec, parse_targeting, plan

__all__ = [
    "Backend",
    "Connection",
    "DatabaseBackend",
    "DatabaseFlags",
    "Flags",
    "LitestarFlagsStore",
    "MemoryBackend",
    "Meta",
    "Plan",
    "RedisBackend",
    "Spec",
    "StorageFlags",
    "Untranslatable",
    "build_flag",
    "chain_audit",
    "environment_specs",
    "flag_spec",
    "open_litestar_store",
    "parse_targeting",
    "plan",
    "spec_of",
    "version_of",
]


def open_litestar_store(location: str, key: SealKey | None = None) -> LitestarFlagsStore:
    """The store for `litestar-flags:<location>` (the part after the scheme), see the module docstring.

    Redis URLs take two extra query parameters, removed before connecting: `prefix` (default
    `feature_flags:{environment}:`) and `state_prefix` (default `gitops_flags:`)."""
    require_extra()
    if location == "memory" or location.startswith("memory:"):
        return LitestarFlagsStore(MemoryBackend(location.partition(":")[2]), key)
    scheme = location.partition(":")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        parts = urlsplit(location)
        query = parse_qsl(parts.query, keep_blank_values=True)
        options = {k: v for k, v in query if k in ("prefix", "state_prefix")}
        url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k not in options])))
        return LitestarFlagsStore(RedisBackend(url, options.get("prefix", DEFAULT_FLAG_PREFIX),
                                               options.get("state_prefix", DEFAULT_STATE_PREFIX)), key)
    if "://" in location:
        return LitestarFlagsStore(DatabaseBackend(location), key)
    raise StoreError(
        f"store URL {SCHEME}:{location!r} names no litestar-flags storage; use "
        f"{SCHEME}:redis://HOST:PORT/DB, {SCHEME}:sqlite+aiosqlite:///PATH/{ENVIRONMENT}.db, "
        f"{SCHEME}:postgresql+asyncpg://…/NAME_{ENVIRONMENT} or {SCHEME}:memory:NAME"
    )
