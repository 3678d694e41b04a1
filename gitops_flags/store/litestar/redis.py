"""`litestar-flags:redis://…`: litestar-flags' RedisStorageBackend for the flags, the store's state under
its own key prefix, WATCH/MULTI commits and a redis-py lock as the write lease."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..base import (
    ConflictError,
    StoreError,
)
from .backend import (
    DEFAULT_FLAG_PREFIX,
    DEFAULT_STATE_PREFIX,
    ENVIRONMENT,
    LEASE_SECONDS,
    SCHEME,
    WAIT_SECONDS,
    Connection,
    Flags,
    Meta,
    StorageFlags,
    meta_fields,
    meta_from,
    moved_message,
)

# --- Redis: litestar-flags' RedisStorageBackend, state under its own prefix ----------------------------


class RedisBackend:
    """Flags under `prefix` (a template with {environment}), state under `state_prefix`:

    <state_prefix>version, applied, state, documents, managed, audit_head, seal   strings
    <state_prefix>audit                                                     a list, one JSON line each
    <state_prefix>lock                                                      the write lease (redis-py Lock)
    """

    FIELDS = ("version", "applied", "state", "documents", "managed", "audit_head", "seal")

    def __init__(self, url: str, prefix: str = DEFAULT_FLAG_PREFIX, state_prefix: str = DEFAULT_STATE_PREFIX,
                 lease_seconds: float = LEASE_SECONDS, wait_seconds: float = WAIT_SECONDS) -> None:
        from redis.connection import parse_url

        if not prefix or not state_prefix or prefix.replace(ENVIRONMENT, "") == state_prefix:
            raise StoreError(f"{SCHEME}: the flag prefix {prefix!r} and the state prefix {state_prefix!r} "
                             "must be set and differ")
        self.url, self.prefix, self.state_prefix = url, prefix, state_prefix
        self.lease_seconds, self.wait_seconds = lease_seconds, wait_seconds
        self.where = f"{SCHEME}:{_hide_password(url)}"
        try:
            parse_url(url)  # type: ignore[no-untyped-call]  # refused only when connecting otherwise
        except ValueError as exc:
            raise StoreError(f"{self.where} is not a Redis URL redis-py accepts: {exc}") from None

    def location(self, environment: str) -> str:
        return self.prefix.replace(ENVIRONMENT, environment)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        from redis.asyncio import Redis

        # A Redis that accepts connections but never answers fails the run instead of hanging it; the URL's
        # own `socket_timeout` / `socket_connect_timeout` win.
        client = Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=10, socket_timeout=30)
        try:
            yield _RedisConnection(self, client)
        finally:
            await client.aclose()


class _RedisConnection:
    def __init__(self, backend: RedisBackend, client: Any) -> None:
        self.backend = backend
        self.client = client

    def key(self, name: str) -> str:
        return self.backend.state_prefix + name

    async def load(self) -> Meta | None:
        values = await self.client.mget([self.key(n) for n in RedisBackend.FIELDS])  # one atomic read
        return meta_from(dict(zip(RedisBackend.FIELDS, values, strict=True)), self.backend.where)

    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None:
        from redis.exceptions import WatchError

        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(self.key("version"))
            current = await pipe.get(self.key("version"))
            if current != expected:
                raise ConflictError(moved_message(self.backend.where, expected, current))
            pipe.multi()
            pipe.mset({self.key(name): value for name, value in meta_fields(meta).items()})
            if audit:
                pipe.rpush(self.key("audit"), *audit)
            try:
                await pipe.execute()
            except WatchError:
                raise ConflictError(moved_message(self.backend.where, expected, "a newer one")) from None

    async def mark_applied(self, version: str, managed: dict[str, list[str]]) -> None:
        from redis.exceptions import WatchError

        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(self.key("version"))
            if await pipe.get(self.key("version")) != version:
                return  # a newer version was committed; its writer reconciles
            pipe.multi()
            managed_text = json.dumps(managed, sort_keys=True)
            pipe.mset({self.key("applied"): version, self.key("managed"): managed_text})
            try:
                await pipe.execute()
            except WatchError:
                return

    async def audit(self) -> list[str]:
        return list(await self.client.lrange(self.key("audit"), 0, -1))

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        from redis.exceptions import LockError

        lock = self.client.lock(self.key("lock"), timeout=self.backend.lease_seconds,
                                blocking_timeout=self.backend.wait_seconds)
        if not await lock.acquire():
            raise StoreError(f"{self.backend.where}: another write has held the store's lock for more than "
                             f"{self.backend.wait_seconds:g}s")
        try:
            yield
        finally:
            with contextlib.suppress(LockError):  # the lease expired; the version check kept the write safe
                await lock.release()

    async def flags(self, location: str) -> Flags:
        from litestar_flags.storage.redis import RedisStorageBackend  # type: ignore[import-untyped]

        return StorageFlags(RedisStorageBackend(redis=self.client, prefix=location))


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
