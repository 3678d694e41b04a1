"""The store port: read a snapshot, write a new one with compare-and-swap, read the audit log.

Every backend holds the same files, so the encoding and the checksum check live here, as pure
functions over `{file name: bytes}`:

    <environment>.flagd.json   one flagd document per environment (what flagd serves)
    state.json                 StoreState: applied commit, rollouts, units of work
    audit.jsonl                one JSON object per line, appended, never rewritten
    store.sha256               the manifest: `sha256sum` lines covering every file above

A file whose bytes do not match the manifest, a data file the manifest does not list, or a listed file
that is missing makes the store refuse to work (StoreCorrupt), naming the file.

Audit lines are written in the same compare-and-swap write as the state they describe, so the two
never diverge: a write either lands whole (state, documents and audit lines) or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from ..problems import GitopsFlagsError
from .state import StoreState

STATE_FILE = "state.json"
AUDIT_FILE = "audit.jsonl"
MANIFEST_FILE = "store.sha256"
DOC_SUFFIX = ".flagd.json"
ENVIRONMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

HAND_EDIT_HINT = (
    "restore the last sealed version with `gitops-flags apply --repair` (or from a backup), or, if the edit "
    "is intended, accept it with `gitops-flags store reseal --reason …` (see docs/store.md, 'Hand edits')"
)


class StoreError(GitopsFlagsError):
    """A problem with the flag store itself."""


class ConflictError(StoreError):
    """The store moved since it was read: another run wrote first. Read again and redo the change."""


class StoreCorrupt(StoreError):
    """The store's files are damaged or were changed outside gitops-flags."""


SealStatus = Literal["verified", "unsealed", "unverified"]
"""verified: sealed, and this run's key checks it; unsealed: no seal (and no key asks for one); unverified:
sealed, but this run has no key to check it with (it may read, never write). See `seal`."""


@dataclass(frozen=True)
class StoreSnapshot:
    state: StoreState
    documents: dict[str, dict[str, Any]]  # environment → flagd document
    version: str | None  # None: the store is empty (nothing was ever written)
    seal: SealStatus = "unsealed"


@dataclass(frozen=True)
class Repaired:
    """What `repair` did: `restored_from` names the sealed version put back (empty when the store verified
    and nothing was restored); `problem` is what was wrong with the store before."""

    version: str | None
    restored_from: str = ""
    problem: str = ""


Snapshot = StoreSnapshot


class Store(Protocol):
    """A backend. `where` names it in messages (a directory, a branch)."""

    where: str

    def read(self) -> StoreSnapshot: ...

    def write(
        self,
        state: StoreState,
        documents: Mapping[str, Mapping[str, Any]],
        expected_version: str | None,
        audit: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> str:
        """Replace the store's state and documents, append `audit` lines, all at once, if the store is
        still at `expected_version` (None: still empty); raise ConflictError otherwise. `documents` is
        the complete set: an environment left out loses its document. Returns the new version."""
        ...

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        """Append audit lines only (state and documents unchanged), with the same compare-and-swap."""
        ...

    def read_audit(self) -> list[dict[str, Any]]: ...


# --- encoding (pure) ---------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8, final newline: equal values give equal bytes."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def doc_file(environment: str) -> str:
    if not ENVIRONMENT_PATTERN.match(environment):
        raise StoreError(
            f"environment name {environment!r} cannot name a store file "
            "(use letters, digits, '_', '.', '-'; at most 64 characters)"
        )
    return environment + DOC_SUFFIX


def is_data_file(name: str) -> bool:
    return name in (STATE_FILE, AUDIT_FILE) or name.endswith(DOC_SUFFIX)


def encode(state: StoreState, documents: Mapping[str, Mapping[str, Any]]) -> dict[str, bytes]:
    """state.json and one file per environment document (not the audit log, not the manifest)."""
    files = {STATE_FILE: canonical_json(state.model_dump(mode="json"))}
    for environment, document in documents.items():
        files[doc_file(environment)] = canonical_json(document)
    return files


def audit_lines(records: Sequence[Mapping[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for r in records
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest(files: Mapping[str, bytes]) -> bytes:
    """`sha256sum` format, sorted by name, so `sha256sum -c store.sha256` checks a store by hand."""
    return "".join(f"{sha256(files[name])}  {name}\n" for name in sorted(files)).encode()


def version_of(manifest_bytes: bytes) -> str:
    return sha256(manifest_bytes)


def parse_manifest(raw: bytes, where: str) -> dict[str, str]:
    """name → sha256 hex. Raises StoreCorrupt for anything that is not a manifest we wrote."""
    entries: dict[str, str] = {}
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise StoreCorrupt(f"{where}/{MANIFEST_FILE} is not UTF-8 text; {HAND_EDIT_HINT}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not match or not is_data_file(match[2]) or match[2] in entries:
            raise StoreCorrupt(
                f"{where}/{MANIFEST_FILE}:{number}: not a line gitops-flags wrote; " + HAND_EDIT_HINT
            )
        entries[match[2]] = match[1]
    if STATE_FILE not in entries:
        raise StoreCorrupt(f"{where}/{MANIFEST_FILE} does not list {STATE_FILE}; {HAND_EDIT_HINT}")
    return entries


def check_listing(entries: Mapping[str, str], present: Sequence[str], where: str) -> None:
    """Every listed file exists and every data file present is listed."""
    for name in sorted(entries):
        if name not in present:
            raise StoreCorrupt(f"{where}/{name} is missing (the manifest lists it); {HAND_EDIT_HINT}")
    for name in sorted(present):
        if is_data_file(name) and name not in entries:
            raise StoreCorrupt(
                f"{where}/{name} is not in the store's manifest: it was added outside gitops-flags; "
                f"{HAND_EDIT_HINT}"
            )


def check_file(entries: Mapping[str, str], name: str, data: bytes, where: str) -> None:
    if sha256(data) != entries.get(name):
        raise StoreCorrupt(
            f"{where}/{name} was modified outside gitops-flags (its checksum does not match the manifest); "
            + HAND_EDIT_HINT
        )


def decode(
    entries: Mapping[str, str], files: Mapping[str, bytes], where: str
) -> tuple[StoreState, dict[str, Any]]:
    """State and documents from checked files (the audit log is read separately, on demand)."""
    for name, data in files.items():
        check_file(entries, name, data, where)
    try:
        state = StoreState.model_validate_json(files[STATE_FILE])
    except ValidationError as exc:
        raise StoreCorrupt(f"{where}/{STATE_FILE} is not a valid store state: {_first_error(exc)}") from None
    documents: dict[str, Any] = {}
    for name, data in files.items():
        if name.endswith(DOC_SUFFIX):
            try:
                document = json.loads(data)
            except ValueError as exc:
                raise StoreCorrupt(f"{where}/{name} is not JSON: {exc}") from None
            if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
                raise StoreCorrupt(f"{where}/{name} is not a flagd document (an object with `flags`)")
            documents[name[: -len(DOC_SUFFIX)]] = document
    return state, documents


def parse_audit(data: bytes, where: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise StoreCorrupt(f"{where}/{AUDIT_FILE}:{number} is not a JSON line") from None
        if not isinstance(record, dict):
            raise StoreCorrupt(f"{where}/{AUDIT_FILE}:{number} is not a JSON object")
        records.append(record)
    return records


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err["loc"])
    return f"{loc}: {err['msg']}" if loc else str(err["msg"])


# --- the retry loop that apply and advance share ------------------------------------------------------


@dataclass(frozen=True)
class Update:
    """What one attempt wants written."""

    state: StoreState
    documents: Mapping[str, Mapping[str, Any]]
    audit: Sequence[Mapping[str, Any]] = field(default=())
    message: str = ""


def update(store: Store, decide: Callable[[StoreSnapshot], Update | None], attempts: int = 5) -> str | None:
    """Read, decide, write with compare-and-swap; on a conflict read again and decide again.

    `decide` must be pure over the snapshot (it may run several times). Returns the new version, or
    None when `decide` found nothing to write. Raises ConflictError after `attempts` lost races.
    """
    for attempt in range(1, attempts + 1):
        snapshot = store.read()
        wanted = decide(snapshot)
        if wanted is None:
            return None
        try:
            return store.write(wanted.state, wanted.documents, snapshot.version, wanted.audit, wanted.message)
        except ConflictError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
