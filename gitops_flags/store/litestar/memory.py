"""`litestar-flags:memory:NAME`: litestar-flags' MemoryStorageBackend, state in the process (tests)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ..base import (
    ConflictError,
    StoreError,
)
from .backend import SCHEME, WAIT_SECONDS, Connection, Flags, Meta, StorageFlags, moved_message

# --- memory: litestar-flags' MemoryStorageBackend, state in the process --------------------------------


@dataclass
class _MemoryData:
    meta: Meta | None = None
    audit: list[str] = field(default_factory=list)
    storages: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_MEMORY: dict[str, _MemoryData] = {}
_MEMORY_LOCK = threading.Lock()


class MemoryBackend:
    """`litestar-flags:memory:NAME`: every store of that NAME in this process shares the data."""

    def __init__(self, name: str) -> None:
        self.where = f"{SCHEME}:memory:{name}"
        with _MEMORY_LOCK:
            self.data = _MEMORY.setdefault(name, _MemoryData())

    def location(self, environment: str) -> str:
        return environment

    def storage(self, environment: str) -> Any:
        """The MemoryStorageBackend an app in this process evaluates `environment` with."""
        from litestar_flags.storage.memory import MemoryStorageBackend  # type: ignore[import-untyped]

        return self.data.storages.setdefault(environment, MemoryStorageBackend())

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        yield _MemoryConnection(self)


class _MemoryConnection:
    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.data = backend.data

    async def load(self) -> Meta | None:
        return self.data.meta

    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None:
        current = self.data.meta.version if self.data.meta else None
        if current != expected:
            raise ConflictError(moved_message(self.backend.where, expected, current))
        self.data.meta = meta
        self.data.audit.extend(audit)

    async def mark_applied(self, version: str, managed: dict[str, list[str]]) -> None:
        if self.data.meta is not None and self.data.meta.version == version:
            self.data.meta = dataclasses.replace(self.data.meta, applied=version, managed=managed)

    async def audit(self) -> list[str]:
        return list(self.data.audit)

    @asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        if not self.data.lock.acquire(timeout=WAIT_SECONDS):
            raise StoreError(f"{self.backend.where}: another write holds the store")
        try:
            yield
        finally:
            self.data.lock.release()

    async def flags(self, location: str) -> Flags:
        return StorageFlags(self.backend.storage(location))
