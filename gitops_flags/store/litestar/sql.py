"""`litestar-flags:<database URL>`: litestar-flags' DatabaseStorageBackend, one database per environment,
the store's state in `gitops_flags_*` tables, one SQL transaction per commit and a lease row as the lock."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from ..base import (
    ConflictError,
    StoreError,
)
from .backend import (
    ENVIRONMENT,
    LEASE_SECONDS,
    SCHEME,
    STATE_DATABASE,
    WAIT_SECONDS,
    Connection,
    Flags,
    Meta,
    StorageFlags,
    meta_fields,
    meta_from,
    moved_message,
)
from .models import build_rules, build_variants, scalar_fields
from .translate import Spec

# --- databases: litestar-flags' DatabaseStorageBackend, one database per environment ------------------


class DatabaseBackend:
    """`url` names a database per environment through `{environment}` (or one database, for one
    environment). The state lives in tables `gitops_flags_meta`, `gitops_flags_audit` and
    `gitops_flags_lock` of the database `{environment}` = `_gitops` names (the only one, without it)."""

    def __init__(self, url: str, lease_seconds: float = LEASE_SECONDS,
                 wait_seconds: float = WAIT_SECONDS) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except ArgumentError as exc:
            raise StoreError(f"{SCHEME}: {url!r} is not a database URL: {exc}") from None
        self.url = url
        self.where = f"{SCHEME}:{shown.replace('%7Benvironment%7D', ENVIRONMENT)}"
        self.lease_seconds, self.wait_seconds = lease_seconds, wait_seconds

    def location(self, environment: str) -> str:
        return environment if ENVIRONMENT in self.url else "the database"

    def database(self, location: str) -> str:
        return self.url.replace(ENVIRONMENT, location)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        conn = _DatabaseConnection(self)
        try:
            await conn.open()
            yield conn
        finally:
            await conn.close()


def _tables() -> tuple[Any, Any, Any, Any]:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

    metadata = MetaData()
    meta = Table("gitops_flags_meta", metadata, Column("name", String(32), primary_key=True),
                 Column("value", Text, nullable=False))
    audit = Table("gitops_flags_audit", metadata,
                  Column("seq", Integer, primary_key=True, autoincrement=True),
                  Column("record", Text, nullable=False))
    lock = Table("gitops_flags_lock", metadata, Column("name", String(32), primary_key=True),
                 Column("token", String(64), nullable=False), Column("expires_at", Float, nullable=False))
    return metadata, meta, audit, lock


class _DatabaseConnection:
    def __init__(self, backend: DatabaseBackend) -> None:
        self.backend = backend
        self.metadata, self.meta, self.audit_table, self.lock_table = _tables()
        self.engines: dict[str, Any] = {}
        self.home: Any = None

    async def open(self) -> None:
        self.home = self._engine(self.backend.url.replace(ENVIRONMENT, STATE_DATABASE))
        async with self.home.begin() as c:
            await c.run_sync(self.metadata.create_all)

    async def close(self) -> None:
        for engine in self.engines.values():
            await engine.dispose()

    def _engine(self, url: str) -> Any:
        from sqlalchemy.exc import ArgumentError, InvalidRequestError
        from sqlalchemy.ext.asyncio import create_async_engine

        if url not in self.engines:
            try:
                self.engines[url] = create_async_engine(url)
            except ImportError as exc:
                driver = getattr(exc, "name", None) or str(exc)
                hint = "use an async driver such as sqlite+aiosqlite:// or postgresql+asyncpg://"
                if "+" in url.partition(":")[0]:  # the URL names its driver: the fix is to install it
                    hint = f"install it (pip install {driver}; gitops-flags[litestar] brings aiosqlite only)"
                raise StoreError(f"{self.backend.where}: the database driver {driver!r} is not installed; "
                                 f"{hint}") from None
            except (ArgumentError, InvalidRequestError) as exc:
                raise StoreError(f"{self.backend.where}: cannot open the database ({exc}); use an async "
                                 "driver such as sqlite+aiosqlite:// or postgresql+asyncpg://") from None
        return self.engines[url]

    async def load(self) -> Meta | None:
        from sqlalchemy import select

        async with self.home.connect() as c:
            rows = (await c.execute(select(self.meta.c.name, self.meta.c.value))).all()
        return meta_from({name: value for name, value in rows}, self.backend.where)

    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        moved = ConflictError(moved_message(self.backend.where, expected, "another"))
        try:
            async with self.home.begin() as c:
                if expected is None:
                    await c.execute(insert(self.meta).values(name="version", value=meta.version))
                else:
                    row = (self.meta.c.name == "version") & (self.meta.c.value == expected)
                    done = await c.execute(update(self.meta).where(row).values(value=meta.version))
                    if done.rowcount != 1:
                        raise moved
                for name, value in meta_fields(meta).items():
                    if name != "version":
                        await self._put(c, name, value)
                if audit:
                    await c.execute(insert(self.audit_table), [{"record": line} for line in audit])
        except IntegrityError:
            raise moved from None

    async def mark_applied(self, version: str, managed: dict[str, list[str]]) -> None:
        from sqlalchemy import select

        async with self.home.begin() as c:
            query = select(self.meta.c.value).where(self.meta.c.name == "version")
            current = (await c.execute(query)).scalar()
            if current == version:
                await self._put(c, "applied", version)
                await self._put(c, "managed", json.dumps(managed, sort_keys=True))

    async def _put(self, c: Any, name: str, value: str) -> None:
        from sqlalchemy import insert, update

        done = await c.execute(update(self.meta).where(self.meta.c.name == name).values(value=value))
        if done.rowcount == 0:
            await c.execute(insert(self.meta).values(name=name, value=value))

    async def audit(self) -> list[str]:
        from sqlalchemy import select

        async with self.home.connect() as c:
            query = select(self.audit_table.c.record).order_by(self.audit_table.c.seq)
            return list((await c.execute(query)).scalars())

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """A lease row: taken by inserting it, released by deleting it, taken over once expired."""
        from sqlalchemy import delete, insert
        from sqlalchemy.exc import IntegrityError

        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.backend.wait_seconds
        while True:
            try:
                async with self.home.begin() as c:
                    await c.execute(delete(self.lock_table).where(self.lock_table.c.expires_at < time.time()))
                    await c.execute(insert(self.lock_table).values(
                        name="write", token=token, expires_at=time.time() + self.backend.lease_seconds))
                break
            except IntegrityError:
                if time.monotonic() > deadline:
                    raise StoreError(f"{self.backend.where}: another write has held the store's lock for "
                                     f"more than {self.backend.wait_seconds:g}s") from None
                await asyncio.sleep(0.1)
        try:
            yield
        finally:
            async with self.home.begin() as c:
                await c.execute(delete(self.lock_table).where(self.lock_table.c.token == token))

    async def flags(self, location: str) -> Flags:
        from advanced_alchemy.base import orm_registry
        from litestar_flags.storage.database import DatabaseStorageBackend  # type: ignore[import-untyped]
        from sqlalchemy.ext.asyncio import async_sessionmaker

        engine = self._engine(self.backend.database(location))
        async with engine.begin() as c:  # what DatabaseStorageBackend.create(create_tables=True) does
            await c.run_sync(orm_registry.metadata.create_all)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        return DatabaseFlags(DatabaseStorageBackend(engine=engine, session_maker=sessions), sessions)


class DatabaseFlags(StorageFlags):
    """Reads, creates and deletes through DatabaseStorageBackend. Updates go through a session of the
    same engine: the backend's update_flag merges relationship rows with `load=False`, which refuses new
    (unsaved) rules and variants, so it cannot change a flag's rules."""

    def __init__(self, storage: Any, sessions: Any) -> None:
        super().__init__(storage)
        self.sessions = sessions

    async def update(self, existing: Any, spec: Spec) -> None:
        from litestar_flags.models import FeatureFlag  # type: ignore[import-untyped]
        from sqlalchemy import select

        async with self.sessions() as session:
            query = select(FeatureFlag).where(FeatureFlag.key == spec["key"])
            flag = (await session.execute(query)).scalar_one()
            for name, value in scalar_fields(spec).items():
                setattr(flag, name, value)
            # Old rows go first (delete-orphan): variant keys are unique per flag. One transaction.
            flag.rules, flag.variants = [], []
            await session.flush()
            flag.rules, flag.variants = build_rules(spec), build_variants(spec)
            await session.commit()
