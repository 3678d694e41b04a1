"""What the store asks of a backend: the state kept beside the flags (`Meta`), one operation's
`Connection`, one environment's `Flags`; and `StorageFlags`, the flags through litestar-flags' own
StorageBackend API, which the memory and Redis backends use as it is and the SQL backend extends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..base import StoreCorrupt, StoreError
from .models import MISSING_EXTRA, build_flag
from .translate import Spec

SCHEME = "litestar-flags"
ENVIRONMENT = "{environment}"
DEFAULT_FLAG_PREFIX = "feature_flags:{environment}:"
DEFAULT_STATE_PREFIX = "gitops_flags:"
SCOPE = "litestar-flags"
STATE_DATABASE = "_gitops"  # `{environment}` of the database holding the state (no environment starts with _)
LEASE_SECONDS = 300.0
WAIT_SECONDS = 60.0

log = logging.getLogger("gitops_flags.store.litestar")


# --- the Store ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """What the store keeps beside the flags. `applied` is the version last reconciled into the flags;
    `managed` names the flags each storage location holds because we wrote them."""

    version: str
    state: str
    documents: str
    audit_head: str
    applied: str | None = None
    managed: dict[str, list[str]] = field(default_factory=dict)
    seal: str = ""  # store.seal's JSON text; empty when unsealed


class Flags(Protocol):
    """One environment's litestar-flags storage."""

    async def get(self, keys: Sequence[str]) -> dict[str, Any]: ...
    async def create(self, spec: Spec) -> None: ...
    async def update(self, existing: Any, spec: Spec) -> None: ...
    async def delete(self, key: str) -> None: ...


class Connection(Protocol):
    """One operation's connection to a backend: the state beside the flags, and the flags."""

    async def load(self) -> Meta | None: ...
    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None: ...
    async def mark_applied(self, version: str, managed: dict[str, list[str]]) -> None: ...
    async def audit(self) -> list[str]: ...
    def lock(self) -> AbstractAsyncContextManager[None]: ...
    async def flags(self, location: str) -> Flags: ...


class Backend(Protocol):
    where: str

    def location(self, environment: str) -> str:
        """Names where an environment's flags live (a key prefix, a database); kept in the state, so
        never a secret."""
        ...

    def connect(self) -> AbstractAsyncContextManager[Connection]: ...


def moved_message(where: str, expected: str | None, found: str | None) -> str:
    return f"the store at {where} moved (expected version {expected}, found {found}); read it again"


def chain_audit(head: str, lines: Sequence[str]) -> str:
    """A running hash of the audit log, one link per line, so that appending lines alone gives a new version
    and the whole log can be checked against the head (a store written before this chained per write, so
    its head is recomputed from the log when it is first sealed)."""
    for line in lines:
        head = hashlib.sha256((head + line + "\n").encode()).hexdigest()
    return head


def version_of(state_text: str, documents_text: str, audit_head: str) -> str:
    return hashlib.sha256(sealed_text(state_text, documents_text, audit_head)).hexdigest()


def sealed_text(state_text: str, documents_text: str, audit_head: str) -> bytes:
    return "\n".join((state_text, documents_text, audit_head)).encode()


def audit_lines(audit: Sequence[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in audit]


def meta_fields(meta: Meta) -> dict[str, str]:
    """Meta as named strings, the way the Redis and database backends keep it."""
    return {"version": meta.version, "state": meta.state, "documents": meta.documents,
            "audit_head": meta.audit_head, "seal": meta.seal}


def meta_from(values: Mapping[str, str | None], where: str) -> Meta | None:
    version = values.get("version")
    if version is None:
        return None
    missing = [name for name in ("state", "documents", "audit_head") if values.get(name) is None]
    if missing:
        raise StoreCorrupt(f"{where}: the store has a version but no {', '.join(missing)}; "
                           "restore it from a backup")
    try:
        managed = json.loads(values.get("managed") or "{}")
    except ValueError:
        raise StoreCorrupt(f"{where}: the list of managed flags is not JSON") from None
    return Meta(version, str(values["state"]), str(values["documents"]), str(values["audit_head"]),
                values.get("applied"), managed, values.get("seal") or "")



# --- litestar-flags storage through its StorageBackend API (memory, Redis) -----------------------------


# What litestar-flags raises loading a flag it cannot deserialize (a Redis value edited by hand).
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError)


class StorageFlags:
    def __init__(self, storage: Any) -> None:
        self.storage = storage

    async def get(self, keys: Sequence[str]) -> dict[str, Any]:
        """The flags stored under `keys`. One litestar-flags cannot load counts as missing (so drift
        reports it and the next write replaces it) instead of failing every command."""
        if not keys:
            return {}
        with contextlib.suppress(*_UNREADABLE):
            return dict(await self.storage.get_flags(list(keys)))
        out = {}
        for key in keys:
            try:
                flag = await self.storage.get_flag(key)
            except _UNREADABLE as exc:
                log.warning("warning: litestar-flags cannot load the stored flag %r (%s: %s); it counts as "
                            "missing", key, type(exc).__name__, exc)
                continue
            if flag is not None:
                out[key] = flag
        return out

    async def create(self, spec: Spec) -> None:
        await self.storage.create_flag(build_flag(spec))

    async def update(self, existing: Any, spec: Spec) -> None:
        # The same id keeps per-user overrides (keyed by flag id) attached.
        await self.storage.update_flag(build_flag(spec, existing.id, existing.created_at))

    async def delete(self, key: str) -> None:
        await self.storage.delete_flag(key)


def require_extra() -> None:
    if MISSING_EXTRA is not None:  # pragma: no cover - only without the extra
        raise StoreError(f"{SCHEME}: stores need the optional extra: pip install 'gitops-flags[litestar]' "
                         f"({MISSING_EXTRA})")
