"""The store's seal: an HMAC-SHA256 keyed with a secret that lives outside the repository.

The manifest (`store.sha256`) only says whether files match their checksums: anyone who can write the store
can edit a file and regenerate it. The seal is keyed: it covers the manifest (so state, every flagd
document and the audit log's hash) — or, in litestar-flags storage, the state, the documents and the audit
chain's head — and only a run holding `GITOPS_FLAGS_STORE_KEY` can produce it. The templates keep that key
in a deployment environment only the default branch may use, so a workflow pushed on another branch, or a
person with push rights, can still write the store's files but can no longer make them verify.

    store.seal   {"algorithm": "hmac-sha256", "format": 1, "key_id": "…", "mac": "…"}

`key_id` is an HMAC of a fixed text (never the key's own hash), so a message can tell "sealed with another
key" from "changed after sealing" without revealing anything about the key.

No library: HMAC-SHA256 and a constant-time comparison are in the standard library (`hmac`, `hashlib`);
the libraries that wrap them (itsdangerous, PyNaCl, cryptography) add token formats, expiry or asymmetric
keys that a shared-secret integrity check does not need, and a dependency the action would install on
every run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .base import SealStatus, StoreCorrupt, StoreError

KEY_ENV = "GITOPS_FLAGS_STORE_KEY"
SEAL_FILE = "store.seal"
MIN_KEY_LENGTH = 32
ALGORITHM = "hmac-sha256"
FORMAT = 1
_DOMAIN = b"gitops-flags store seal v1\0"

UNSEALED_WARNING = (
    f"warning: the flag store {{where}} is not sealed ({KEY_ENV} is not set). Anyone who can write the "
    "store (push to its branch, write its directory or database) can change what is served, and gitops-flags "
    "cannot tell. With a key, every write is sealed (HMAC-SHA256) and a store changed outside gitops-flags "
    "is refused; see docs/store.md, 'The seal'."
)
UNVERIFIED_WARNING = (
    f"warning: the flag store {{where}} is sealed, but {KEY_ENV} is not set, so the seal was not checked: "
    "what is shown may have been changed outside gitops-flags."
)


class StoreTampered(StoreCorrupt):
    """The store's seal does not verify: it was changed by something that does not hold the key."""


@dataclass(frozen=True)
class SealKey:
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """Names the key in seals and messages; reveals nothing usable about it."""
        return hmac.new(self.secret, b"gitops-flags key id", hashlib.sha256).hexdigest()[:16]


def key_from_env(environ: Mapping[str, str]) -> SealKey | None:
    """The seal key from the environment, never from the repository. None when it is not set."""
    value = environ.get(KEY_ENV, "").strip()
    if not value:
        return None
    if len(value) < MIN_KEY_LENGTH:
        raise StoreError(
            f"{KEY_ENV} holds {len(value)} characters; a seal key needs at least {MIN_KEY_LENGTH} "
            "(generate one with `openssl rand -hex 32`)"
        )
    return SealKey(value.encode())


def mac(key: SealKey, scope: str, binding: str, body: bytes) -> str:
    """The HMAC of `body`, bound to the kind of store (`scope`) and, for a branch, the parent commit."""
    message = _DOMAIN + scope.encode() + b"\0" + binding.encode() + b"\0" + body
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()


def seal_bytes(key: SealKey, scope: str, binding: str, body: bytes) -> bytes:
    data = {"algorithm": ALGORITHM, "format": FORMAT, "key_id": key.key_id,
            "mac": mac(key, scope, binding, body)}
    return (json.dumps(data, sort_keys=True) + "\n").encode()


def check(
    key: SealKey | None, raw: bytes | None, scope: str, binding: str, body: bytes, where: str
) -> SealStatus:
    """Check a non-empty store's seal. Raises StoreTampered when it fails, or when a run with a key finds no
    seal at all (removing the seal must not be a way around it)."""
    if raw is None:
        if key is None:
            return "unsealed"
        raise StoreTampered(
            f"{where} has no seal ({SEAL_FILE}), but {KEY_ENV} is set: the seal was removed, or the store "
            "was written before it had a key. If you set the key just now, adopt the store as it is with "
            "`gitops-flags store reseal`; otherwise restore the last sealed version with "
            "`gitops-flags apply --repair` (docs/store.md, 'The seal')"
        )
    seal = parse(raw, where)
    if key is None:
        return "unverified"
    if seal["key_id"] != key.key_id:
        raise StoreTampered(
            f"{where} was sealed with another key (key id {seal['key_id']}; {KEY_ENV} has key id "
            f"{key.key_id}): check that the secret is the store's key; after a deliberate key change, "
            "re-seal with `gitops-flags store reseal`"
        )
    if not hmac.compare_digest(seal["mac"], mac(key, scope, binding, body)):
        raise StoreTampered(
            f"{where} does not match its seal: it was changed outside gitops-flags (by someone or something "
            f"without {KEY_ENV}). It is not used. Restore the last sealed version with "
            "`gitops-flags apply --repair`, or, if the change was intended, `gitops-flags store reseal` "
            "(docs/store.md, 'The seal')"
        )
    return "verified"


def parse(raw: bytes, where: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    ok = (
        isinstance(data, dict)
        and data.get("algorithm") == ALGORITHM
        and data.get("format") == FORMAT
        and all(isinstance(data.get(k), str) for k in ("key_id", "mac"))
    )
    if not ok:
        raise StoreTampered(f"{where}/{SEAL_FILE} is not a seal gitops-flags wrote; it was changed by hand")
    assert isinstance(data, dict)
    return {"key_id": data["key_id"], "mac": data["mac"]}


def refuse_unkeyed_write(status: SealStatus, where: str) -> None:
    """A sealed store is written only with the key: a write without it would drop the seal."""
    if status == "unverified":
        raise StoreError(
            f"{where} is sealed; writing it needs the seal key in {KEY_ENV} (in Actions, from the "
            "`flag-store` environment's secret). Without it the write would break the seal"
        )


def require_key(key: SealKey | None, where: str) -> SealKey:
    """`repair` trusts only a sealed version, so it needs the key that checks one."""
    if key is None:
        raise StoreError(f"repairing {where} needs the seal key ({KEY_ENV}): only a sealed copy is trusted")
    return key


def audit_record(event: str, now: datetime, where: str, summary: str, reason: str = "",
                 actor: str = "") -> dict[str, Any]:
    """The audit line of a repair or a re-seal: who vouched for the store's content, when, and why."""
    return {
        "time": now.isoformat().replace("+00:00", "Z"),
        "event": event,
        "kind": "store",
        "key": "store",
        "store": where,
        "summary": summary,
        "reason": reason,
        "actor": actor or None,
    }
