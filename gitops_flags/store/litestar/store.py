"""`LitestarFlagsStore`: the Store protocol over a backend: compare-and-swap commits, the seal,
reconciling litestar-flags storage to the committed documents, drift reports.

The Store protocol is synchronous and litestar-flags is not: each method runs its asynchronous body in
one `asyncio.run` (see the package docstring).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from ..base import (
    ConflictError,
    Repaired,
    SealStatus,
    StoreCorrupt,
    StoreError,
    StoreSnapshot,
    canonical_json,
    doc_file,
    parse_audit,
)
from ..seal import SealKey, StoreTampered, check, refuse_unkeyed_write, require_key, seal_bytes
from ..state import StoreState
from .backend import (
    ENVIRONMENT,
    SCOPE,
    Backend,
    Connection,
    Meta,
    audit_lines,
    chain_audit,
    log,
    moved_message,
    require_extra,
    sealed_text,
    version_of,
)
from .models import spec_of
from .translate import Plan, Spec, environment_specs, plan

T = TypeVar("T")


class LitestarFlagsStore:
    """A Store (see base.Store) applying flagd documents to litestar-flags storage."""

    def __init__(self, backend: Backend, key: SealKey | None = None) -> None:
        require_extra()
        self.backend = backend
        self.where = backend.where
        self.key = key
        self._drift_checked = False  # the first read of each store (each command) reports drift

    # --- the Store protocol --------------------------------------------------------------------------

    def read(self) -> StoreSnapshot:
        return self._run(self._read())

    def write(
        self,
        state: StoreState,
        documents: Mapping[str, Mapping[str, Any]],
        expected_version: str | None,
        audit: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> str:
        # Everything that can be refused is refused before any I/O.
        for environment, document in documents.items():
            doc_file(environment)
            environment_specs(document, environment)
        self._locations(documents)
        state_text = canonical_json(state.model_dump(mode="json")).decode()
        documents_text = canonical_json(documents).decode()
        return self._run(self._write(state_text, documents_text, expected_version, audit_lines(audit)))

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        current = self.read()
        return self.write(current.state, current.documents, expected_version, records)

    def read_audit(self) -> list[dict[str, Any]]:
        lines = self._run(self._with_connection(self._audit))
        return parse_audit("".join(line + "\n" for line in lines).encode(), self.where)

    def reseal(self, audit: Sequence[Mapping[str, Any]] = ()) -> str:
        """Accept the stored state, documents and audit log as they are (an intended hand edit): check that
        they parse, append `audit`, and commit them with a new version (and seal, with a key)."""
        return self._run(self._reseal(audit_lines(audit)))

    def repair(self, audit: Sequence[Mapping[str, Any]] = ()) -> Repaired:
        """litestar-flags storage keeps no history, so only what is beside the seal can be repaired: when the
        sealed state verifies, flags edited in storage are put back to the sealed documents. When the state
        itself fails its seal, there is no sealed copy to restore: this says to restore a backup."""
        require_key(self.key, self.where)
        try:
            snapshot = self.read()
        except StoreCorrupt as exc:
            raise StoreError(
                f"{exc}. litestar-flags storage keeps no earlier versions, so nothing sealed can be restored "
                "from it: restore the Redis or database from its backup, then run `gitops-flags apply "
                "--repair` again (it checks the restored copy's seal)"
            ) from None
        put_back = self.reconcile()
        if not put_back:
            return Repaired(None)
        problem = "; ".join(f"{e}: {', '.join(p.update + p.create + p.delete)}" for e, p in put_back.items())
        version = self.append_audit(audit, snapshot.version) if audit else snapshot.version
        return Repaired(version, "the sealed flagd documents (flags put back in litestar-flags storage)",
                        f"flags changed in storage outside gitops-flags: {problem}")

    # --- beyond the protocol -------------------------------------------------------------------------

    def drift(self) -> dict[str, Plan]:
        """environment → what the next write would change in litestar-flags storage (flags edited or
        deleted outside gitops-flags, or a write not finished). Empty when storage serves the documents."""
        return self._run(self._with_connection(self._drift))

    def reconcile(self) -> dict[str, Plan]:
        """Put litestar-flags storage back to the stored documents now (after a hand edit), without a new
        version; returns what it changed. A write does the same as part of every change."""
        return self._run(self._with_connection(self._put_back))

    # --- async implementation ------------------------------------------------------------------------

    async def _read(self) -> StoreSnapshot:
        async with self.backend.connect() as conn:
            meta = await conn.load()
            status = self._verify(meta)  # before anything is built on it
            if meta is not None and meta.applied != meta.version:
                async with conn.lock():  # an interrupted write: finish it first
                    meta = await conn.load()
                    status = self._verify(meta)
                    if meta is not None and meta.applied != meta.version:
                        await self._reconcile(conn, meta)
            if meta is None:
                return StoreSnapshot(StoreState(), {}, None)
            if not self._drift_checked:
                self._drift_checked = True
                _warn_drift(self.where, await self._drift(conn))
            return self._snapshot(meta, status)

    async def _write(self, state_text: str, documents_text: str, expected: str | None,
                     lines: list[str], *, trust: bool = False) -> str:
        """Commit, then reconcile storage. `trust`: take the current meta as it is (a re-seal)."""
        async with self.backend.connect() as conn, conn.lock():
            meta = await conn.load()
            if not trust:
                refuse_unkeyed_write(self._verify(meta), self.where)
                if meta is not None and meta.applied != meta.version:
                    await self._reconcile(conn, meta)  # finish an interrupted write first
                    meta = await conn.load()
            current = meta.version if meta else None
            if current != expected:
                raise ConflictError(moved_message(self.where, expected, current))
            base = meta.audit_head if meta else ""
            if meta is not None and self.key is not None and (trust or not meta.seal):
                base = chain_audit("", await conn.audit())  # the first seal covers the whole log
            head = chain_audit(base, lines)
            version = version_of(state_text, documents_text, head)
            if meta is not None and version == meta.version and not trust:
                return version  # nothing changed: write nothing
            seal = ""
            if self.key is not None:
                body = sealed_text(state_text, documents_text, head)
                seal = seal_bytes(self.key, SCOPE, "", body).decode()
            new = Meta(version, state_text, documents_text, head, meta.applied if meta else None,
                       meta.managed if meta else {}, seal)
            await conn.commit(current, new, lines)
            await self._reconcile(conn, new)
            return version

    async def _reseal(self, lines: list[str]) -> str:
        async with self.backend.connect() as conn:
            meta = await conn.load()
        if meta is None:
            raise StoreError(f"{self.where} is empty; there is nothing to re-seal")
        self._snapshot(meta, "unsealed")  # the state and documents must still parse
        for environment, document in self._documents(meta).items():
            environment_specs(document, environment)
        return await self._write(meta.state, meta.documents, meta.version, lines, trust=True)

    async def _audit(self, conn: Connection) -> list[str]:
        """The audit lines; with a key, checked against the sealed chain head."""
        lines = await conn.audit()
        if self.key is not None:
            meta = await conn.load()
            sealed = self._verify(meta) == "verified" and meta is not None
            if sealed and meta is not None and chain_audit("", lines) != meta.audit_head:
                raise StoreTampered(f"{self.where}: the audit log does not match its sealed head: lines were "
                                    "changed, added or removed outside gitops-flags")
        return lines

    def _verify(self, meta: Meta | None) -> SealStatus:
        """The stored version must be the hash of what is stored, and, with a key, the seal must verify."""
        if meta is None:
            return "unsealed"
        if version_of(meta.state, meta.documents, meta.audit_head) != meta.version:
            raise StoreTampered(f"{self.where}: the stored state or documents do not match the stored "
                                "version: they were changed outside gitops-flags")
        body = sealed_text(meta.state, meta.documents, meta.audit_head)
        return check(self.key, meta.seal.encode() if meta.seal else None, SCOPE, "", body, self.where)

    async def _reconcile(self, conn: Connection, meta: Meta) -> None:
        for location, _, wanted, managed in self._targets(meta):
            flags = await conn.flags(location)
            actual = await flags.get(sorted(set(wanted) | set(managed)))
            todo = plan(wanted, {k: spec_of(f) for k, f in actual.items()}, managed)
            for key in todo.delete:
                await flags.delete(key)
            for key in todo.create:
                await flags.create(wanted[key])
            for key in todo.update:
                await flags.update(actual[key], wanted[key])
        documents = self._documents(meta)
        managed_now = {
            self.backend.location(env): sorted(doc.get("flags", {})) for env, doc in documents.items()
            if doc.get("flags")
        }
        await conn.mark_applied(meta.version, managed_now)

    async def _drift(self, conn: Connection) -> dict[str, Plan]:
        meta = await conn.load()
        if meta is None:
            return {}
        out = {}
        for location, label, wanted, managed in self._targets(meta):
            flags = await conn.flags(location)
            actual = await flags.get(sorted(set(wanted) | set(managed)))
            todo = plan(wanted, {k: spec_of(f) for k, f in actual.items()}, managed)
            if todo:
                out[label] = todo
        return out

    async def _put_back(self, conn: Connection) -> dict[str, Plan]:
        async with conn.lock():
            todo = await self._drift(conn)
            meta = await conn.load()
            if todo and meta is not None:
                await self._reconcile(conn, meta)
            return todo

    async def _with_connection(self, use: Callable[[Connection], Awaitable[T]]) -> T:
        async with self.backend.connect() as conn:
            return await use(conn)

    # --- helpers -------------------------------------------------------------------------------------

    def _targets(self, meta: Meta) -> list[tuple[str, str, dict[str, Spec], list[str]]]:
        """(location, environment, wanted specs, managed keys) for every location that holds or will
        hold flags; a location no environment uses any more is named by itself."""
        documents = self._documents(meta)
        labels = {self.backend.location(env): env for env in documents}
        wanted = {self.backend.location(env): environment_specs(doc, env) for env, doc in documents.items()}
        locations = sorted(set(wanted) | set(meta.managed))
        return [(loc, labels.get(loc, loc), wanted.get(loc, {}), meta.managed.get(loc, []))
                for loc in locations]

    def _locations(self, documents: Mapping[str, Any]) -> None:
        seen: dict[str, str] = {}
        for environment in sorted(documents):
            location = self.backend.location(environment)
            if location in seen:
                raise StoreError(
                    f"{self.where}: environments {seen[location]!r} and {environment!r} would share one "
                    f"litestar-flags store ({location}); put {ENVIRONMENT} in the URL (see docs/litestar.md)"
                )
            seen[location] = environment

    def _documents(self, meta: Meta) -> dict[str, Any]:
        try:
            documents = json.loads(meta.documents)
        except ValueError:
            raise StoreCorrupt(f"{self.where}: the stored flagd documents are not JSON") from None
        if not isinstance(documents, dict):
            raise StoreCorrupt(f"{self.where}: the stored flagd documents are not an object")
        return documents

    def _snapshot(self, meta: Meta, status: SealStatus) -> StoreSnapshot:
        try:
            state = StoreState.model_validate_json(meta.state)
        except ValidationError as exc:
            raise StoreCorrupt(f"{self.where}: the stored state is not a valid store state: "
                               f"{exc.errors()[0]['msg']}") from None
        return StoreSnapshot(state, self._documents(meta), meta.version, status)

    def _run(self, coroutine: Awaitable[T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            close = getattr(coroutine, "close", None)
            if close:
                close()
            raise StoreError(f"{self.where}: the store is synchronous; call it outside the event loop "
                             "(for example through asyncio.to_thread)")
        try:
            return asyncio.run(_as_coroutine(coroutine))
        except StoreError:
            raise
        except Exception as exc:
            module = type(exc).__module__
            if isinstance(exc, OSError) or module.startswith(("redis.", "sqlalchemy.", "sqlite3", "asyncpg")):
                raise StoreError(f"litestar-flags storage at {self.where} failed: {exc}") from exc
            raise


def _warn_drift(where: str, drift: Mapping[str, Plan]) -> None:
    """Say (on stderr, through logging) which flags storage serves differently from the approved ones."""
    if not drift:
        return
    parts = []
    for environment, todo in sorted(drift.items()):
        named = [(todo.update, "edited"), (todo.create, "missing"), (todo.delete, "deleted in the repo")]
        parts += [f"{environment}: {', '.join(keys)} {what}" for keys, what in named if keys]
    log.warning(
        "warning: litestar-flags storage at %s differs from the approved flags (edited outside "
        "gitops-flags?): %s. The next change applied puts them back; LitestarFlagsStore.reconcile() does "
        "it now (docs/litestar.md)",
        where, "; ".join(parts),
    )




async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable
