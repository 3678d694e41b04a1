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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from ..flagd import NOT_FOLLOWED, skip_rules
from .base import (
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
from .litestar_rules import Alternative, Unmappable, expand, when_alternatives
from .seal import SealKey, StoreTampered, check, refuse_unkeyed_write, require_key, seal_bytes
from .state import StoreState


class _NoUuidUtilsNotice(logging.Filter):
    """advanced-alchemy logs "`uuid-utils` not installed" once per litestar-flags model class when they are
    defined (Python < 3.14): ten lines of noise on every CLI run, about ids nobody here relies on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "uuid-utils" not in record.getMessage()


_quiet = _NoUuidUtilsNotice()
logging.getLogger("advanced_alchemy").addFilter(_quiet)
try:
    from litestar_flags.models import FeatureFlag, FlagRule, FlagVariant  # type: ignore[import-untyped]
    from litestar_flags.types import FlagStatus, FlagType  # type: ignore[import-untyped]
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    _MISSING: str | None = str(_exc)
else:
    _MISSING = None
finally:
    logging.getLogger("advanced_alchemy").removeFilter(_quiet)

log = logging.getLogger(__name__)

SCHEME = "litestar-flags"
ENVIRONMENT = "{environment}"
DEFAULT_FLAG_PREFIX = "feature_flags:{environment}:"
DEFAULT_STATE_PREFIX = "gitops_flags:"
SCOPE = "litestar-flags"
STATE_DATABASE = "_gitops"  # `{environment}` of the database holding the state (no environment starts with _)
LEASE_SECONDS = 300.0
WAIT_SECONDS = 60.0

Spec = dict[str, Any]  # a litestar-flags flag as plain JSON-able values: what we write and compare
T = TypeVar("T")


# --- translation: flagd document → litestar-flags flag specs (pure) ---------------------------------


class Untranslatable(StoreError):
    """A flagd document uses something litestar-flags cannot serve."""


_COMPARISONS = {"==": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_SEMVER = {"=": "semver_eq", ">": "semver_gt", "<": "semver_lt"}
_FLAG_TYPES = {"boolean": "boolean", "string": "string", "number": "number", "object": "json"}
# flagd puts the targeting key into the context as `targetingKey`; litestar-flags has a field for it.
_ATTRIBUTES = {"targetingKey": "targeting_key"}


def environment_specs(document: Mapping[str, Any], environment: str) -> dict[str, Spec]:
    """flag key → spec for one environment's flagd document. Raises Untranslatable naming the flag."""
    flags = document.get("flags", {})
    doc_metadata = document.get("metadata", {})
    if not isinstance(flags, dict) or not isinstance(doc_metadata, dict):
        raise Untranslatable(f"the {environment!r} document is not a flagd document (flags is not an object)")
    out = {}
    for key, flag in sorted(flags.items()):
        try:
            out[key] = flag_spec(key, flag, doc_metadata)
        except (Untranslatable, KeyError, TypeError, ValueError) as exc:
            detail = exc.args[0] if isinstance(exc, Untranslatable) else f"{type(exc).__name__}: {exc}"
            raise Untranslatable(
                f"flag {key!r} in {environment!r} cannot be written to litestar-flags: {detail}"
            ) from None
    return out


def flag_spec(key: str, flag: Mapping[str, Any], doc_metadata: Mapping[str, Any]) -> Spec:
    variants: dict[str, Any] = dict(flag["variants"])
    default = flag["defaultVariant"]
    if not variants or default not in variants:
        raise Untranslatable(f"defaultVariant {default!r} is not one of its variants")
    if flag.get("state") not in ("ENABLED", "DISABLED"):
        raise Untranslatable(f"state must be ENABLED or DISABLED, not {flag.get('state')!r}")
    if any(value is None for value in variants.values()):
        raise Untranslatable("a variant's value is null, which litestar-flags cannot serve")
    metadata = {**doc_metadata, **flag.get("metadata", {})}  # flagd's rule: the flag's metadata wins
    flag_type = _flag_type(variants, metadata)
    boolean = flag_type == "boolean"

    def serve(variant: Any) -> dict[str, Any]:
        if not isinstance(variant, str) or variant not in variants:
            raise Untranslatable(f"targeting serves {variant!r}, which is not one of its variants")
        value = variants[variant]
        if boolean:
            return {"serve_enabled": value, "serve_value": None}
        return {"serve_enabled": True, "serve_value": value}

    disabled = flag["state"] == "DISABLED" or metadata.get("gitopsDisabled") is True
    rules = [] if disabled else _rules(flag.get("targeting"), metadata.get("gitopsRules"), default, serve)
    for priority, rule in enumerate(rules):
        rule.update(priority=priority, enabled=True)

    default_value = variants[default]
    return {
        "key": key,
        "name": str(metadata.get("gitopsName") or key),
        "description": metadata.get("gitopsDescription") or None,
        "tags": _tags(metadata.get("gitopsTags")),
        "flag_type": flag_type,
        # A killed flag serves its default (flagd.killed_variant wrote it) to everyone, reason DISABLED.
        "status": "inactive" if disabled else "active",
        "default_enabled": default_value if boolean else False,
        "default_value": None if boolean else default_value,
        "metadata": metadata,
        "rules": rules,
        # With no rule matching, litestar-flags picks a variant by weight: all of it on the default
        # variant, so it serves the default and reports its name.
        "variants": [
            {"key": name, "name": name, "description": None, "weight": 100 if name == default else 0,
             "value": {"enabled": value} if boolean else value}
            for name, value in sorted(variants.items())
        ],
    }


def _rules(targeting: Any, file_rules: Any, default: str,
           serve: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """The flag's litestar-flags rules. With `gitopsRules` (the flag file's rules, which flagd.compile_flag
    writes beside the JSONLogic), the rules keep the file's meaning (litestar_rules); the JSONLogic is
    read only for the rollout that ends it. Documents written before it are read as JSONLogic."""
    pairs: list[tuple[Alternative, str, int]] = []  # (alternative, variant, number of the file's rule)
    if file_rules is None:
        legacy, splits = parse_targeting(targeting, default)
        pairs = [(Alternative(tuple(conds)), variant, n) for n, (conds, variant) in enumerate(legacy, 1)]
    else:
        rules = json.loads(file_rules) if isinstance(file_rules, str) else None
        if not isinstance(rules, list):
            raise Untranslatable("metadata gitopsRules is not a JSON list of rules")
        for number, item in enumerate(rules, start=1):
            try:
                pairs += [(alt, item["variant"], number) for alt in when_alternatives(item["when"])]
            except (Unmappable, KeyError, TypeError) as exc:
                raise Untranslatable(f"targeting rule {number}: {exc}") from None
        rest = skip_rules(targeting, len(rules))
        if rest is NOT_FOLLOWED:
            raise Untranslatable(f"targeting {_short(targeting)} does not follow metadata gitopsRules")
        _, splits = parse_targeting(rest, default)

    def served(variant: str, description: str, percentage: int | None = None) -> dict[str, Any]:
        return {"name": variant, "description": description, "conditions": [],
                "rollout_percentage": percentage, **serve(variant)}

    # At 100% a rollout rule has no percentage: litestar-flags keeps a context without a targeting key
    # out of every percentage, even 100, and flagd serves it the variant.
    tail = [served(variant, f"rollout: {variant} to {percentage}%", None if percentage >= 100 else percentage)
            for variant, percentage in splits]
    targeted = [(alt, served(variant, f"targeting rule {number}")) for alt, variant, number in pairs]
    return expand(targeted, tail, lambda conditions: {
        **served(default, "targeting rule: the rules after it"), "conditions": list(conditions)})


def parse_targeting(
    targeting: Any, default: str
) -> tuple[list[tuple[list[dict[str, Any]], str]], list[tuple[str, int]]]:
    """flagd targeting → (rules as (AND-ed conditions, variant), first match wins; percentage rules).

    Accepts what `flagd.compile_flag` writes: a chain of `if`s whose conditions are comparisons joined by
    `and`/`or`, ending in nothing, a variant, or a `fractional` split. An `or` becomes one rule per
    alternative. A split becomes one rule per variant before the default, each with the cumulative
    percentage: litestar-flags buckets a key the same way for every rule of a flag, so a key inside
    the first p% stays inside at any larger p.
    """
    rules: list[tuple[list[dict[str, Any]], str]] = []
    expression = targeting
    while expression is not None:
        if isinstance(expression, str):
            return rules, [(expression, 100)]
        if not isinstance(expression, dict) or len(expression) != 1:
            raise Untranslatable(f"targeting {_short(expression)} is not an `if` chain")
        (operator, args), = expression.items()
        if operator == "fractional":
            return rules, _splits(args, default)
        if operator != "if" or not isinstance(args, list) or len(args) < 2:
            raise Untranslatable(f"targeting {_short(expression)} is not an `if` chain")
        for condition, variant in zip(args[0:-1:2], args[1::2], strict=False):
            if not isinstance(variant, str | None):
                raise Untranslatable(f"a rule serves {_short(variant)}; litestar-flags rules serve a variant")
            rules += [(alternative, variant or default) for alternative in _alternatives(condition)]
        expression = args[-1] if len(args) % 2 else None
    return rules, []


def _splits(args: Any, default: str) -> list[tuple[str, int]]:
    if not isinstance(args, list) or not args or not all(
        isinstance(a, list) and len(a) == 2 and isinstance(a[0], str) and isinstance(a[1], int | float)
        for a in args
    ):
        raise Untranslatable(f"fractional {_short(args)} is not a list of [variant, weight] (custom "
                             "bucketing keys are not supported)")
    total = sum(weight for _, weight in args)
    if total <= 0:
        raise Untranslatable("fractional weights sum to 0")
    out, cumulative = [], 0.0
    for position, (variant, weight) in enumerate(args):
        cumulative += weight
        last = position == len(args) - 1
        if last and variant == default:
            break  # keys outside every rule get the default variant anyway
        out.append((variant, 100 if last else round(100 * cumulative / total)))
    return out


def _alternatives(condition: Any) -> list[list[dict[str, Any]]]:
    """A condition as OR of ANDs: litestar-flags rules AND their conditions, so OR takes several rules."""
    if condition is True:
        return [[]]
    if isinstance(condition, dict) and len(condition) == 1:
        (operator, args), = condition.items()
        if operator == "and" and isinstance(args, list):
            combined: list[list[dict[str, Any]]] = [[]]
            for part in args:
                combined = [done + more for done in combined for more in _alternatives(part)]
            return combined
        if operator == "or" and isinstance(args, list):
            return [alternative for part in args for alternative in _alternatives(part)]
    return [[_condition(condition)]]


def _condition(expression: Any) -> dict[str, Any]:
    if isinstance(expression, dict) and len(expression) == 1:
        (operator, args), = expression.items()
        if operator == "!" and isinstance(args, list) and len(args) == 1:
            args = args[0]
        if operator == "!" and isinstance(args, dict) and list(args) == ["in"]:
            inner = _condition(args)
            if inner["operator"] == "in":
                return {**inner, "operator": "not_in"}
        if isinstance(args, list) and len(args) == 2:
            attribute = _attribute(args[0])
            if operator in _COMPARISONS and attribute:
                return {"attribute": attribute, "operator": _COMPARISONS[operator], "value": args[1]}
            if operator in ("starts_with", "ends_with") and attribute:
                return {"attribute": attribute, "operator": operator, "value": args[1]}
            if operator == "in" and attribute and isinstance(args[1], list):
                return {"attribute": attribute, "operator": "in", "value": args[1]}
            if operator == "in" and _attribute(args[1]):
                return {"attribute": _attribute(args[1]), "operator": "contains", "value": args[0]}
        if operator == "sem_ver" and isinstance(args, list) and len(args) == 3 and args[1] in _SEMVER:
            attribute = _attribute(args[0])
            if attribute:
                return {"attribute": attribute, "operator": _SEMVER[args[1]], "value": args[2]}
    raise Untranslatable(f"condition {_short(expression)} has no litestar-flags operator")


def _attribute(expression: Any) -> str | None:
    if isinstance(expression, dict) and list(expression) == ["var"]:
        name = expression["var"]
        if isinstance(name, list) and name:
            name = name[0]
        if isinstance(name, str) and name:
            return _ATTRIBUTES.get(name, name)
    return None


def _flag_type(variants: Mapping[str, Any], metadata: Mapping[str, Any]) -> str:
    declared = metadata.get("gitopsType")
    if declared is not None:
        if declared not in _FLAG_TYPES:
            raise Untranslatable(f"gitopsType {declared!r} is not one of {', '.join(_FLAG_TYPES)}")
        return _FLAG_TYPES[str(declared)]
    kinds = {_kind(value) for value in variants.values()}
    if len(kinds) == 1 and None not in kinds:
        return str(kinds.pop())
    raise Untranslatable("its variants mix value types; litestar-flags flags have one type")


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "json" if isinstance(value, dict) else None


def _tags(value: Any) -> list[str]:
    """`gitopsTags` as flagd.compile_flag writes it: a JSON array as text, or comma-separated text in
    documents written before tags could contain commas."""
    if not isinstance(value, str):
        return []
    if value.startswith("["):
        with contextlib.suppress(ValueError):
            tags = json.loads(value)
            if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
                return tags
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# --- litestar-flags models ↔ specs ---------------------------------------------------------------------


def spec_of(flag: Any) -> Spec:
    """The spec of a flag as litestar-flags storage returns it, to compare with the wanted one."""

    def text(value: Any) -> str:
        return str(getattr(value, "value", value))

    return {
        "key": flag.key,
        "name": flag.name,
        "description": flag.description,
        "tags": list(flag.tags or []),
        "flag_type": text(flag.flag_type),
        "status": text(flag.status),
        "default_enabled": flag.default_enabled,
        "default_value": flag.default_value,
        "metadata": dict(flag.metadata_ or {}),
        "rules": [
            {"name": r.name, "description": r.description, "priority": r.priority, "enabled": r.enabled,
             "conditions": list(r.conditions or []), "serve_enabled": r.serve_enabled,
             "serve_value": r.serve_value, "rollout_percentage": r.rollout_percentage}
            for r in sorted(flag.rules or [], key=lambda r: r.priority)
        ],
        "variants": [
            {"key": v.key, "name": v.name, "description": v.description, "weight": v.weight, "value": v.value}
            for v in sorted(flag.variants or [], key=lambda v: v.key)
        ],
    }


def scalar_fields(spec: Spec) -> dict[str, Any]:
    return {
        "key": spec["key"], "name": spec["name"], "description": spec["description"],
        "tags": list(spec["tags"]), "flag_type": FlagType(spec["flag_type"]),
        "status": FlagStatus(spec["status"]),
        "default_enabled": spec["default_enabled"], "default_value": spec["default_value"],
        "metadata_": dict(spec["metadata"]),
    }


def build_rules(spec: Spec) -> list[Any]:
    # Explicit ids: the models' id default applies only when a database session flushes them.
    return [FlagRule(id=uuid.uuid4(), **rule) for rule in spec["rules"]]


def build_variants(spec: Spec) -> list[Any]:
    return [FlagVariant(id=uuid.uuid4(), **variant) for variant in spec["variants"]]


def build_flag(spec: Spec, flag_id: uuid.UUID | None = None, created_at: Any = None) -> Any:
    """A new litestar-flags `FeatureFlag` (with rules and variants) from a spec."""
    extra = {"created_at": created_at} if created_at is not None else {}
    return FeatureFlag(id=flag_id or uuid.uuid4(), rules=build_rules(spec), variants=build_variants(spec),
                       **extra, **scalar_fields(spec))


# --- what a reconcile does (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    create: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def plan(wanted: Mapping[str, Spec], actual: Mapping[str, Spec], managed: Iterable[str]) -> Plan:
    """Bring `actual` to `wanted`. Only flags we wrote (`managed`) or want are ever deleted."""
    gone = sorted((set(managed) - set(wanted)) & set(actual))
    return Plan(
        create=tuple(k for k in sorted(wanted) if k not in actual),
        update=tuple(k for k in sorted(wanted) if k in actual and actual[k] != wanted[k]),
        delete=tuple(gone),
    )


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


class LitestarFlagsStore:
    """A Store (see base.Store) applying flagd documents to litestar-flags storage."""

    def __init__(self, backend: Backend, key: SealKey | None = None) -> None:
        _require_extra()
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
        return self._run(self._write(state_text, documents_text, expected_version, _lines(audit)))

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        current = self.read()
        return self.write(current.state, current.documents, expected_version, records)

    def read_audit(self) -> list[dict[str, Any]]:
        lines = self._run(self._with_connection(self._audit))
        return parse_audit("".join(line + "\n" for line in lines).encode(), self.where)

    def reseal(self, audit: Sequence[Mapping[str, Any]] = ()) -> str:
        """Accept the stored state, documents and audit log as they are (an intended hand edit): check that
        they parse, append `audit`, and commit them with a new version (and seal, with a key)."""
        return self._run(self._reseal(_lines(audit)))

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
                raise ConflictError(_moved(self.where, expected, current))
            base = meta.audit_head if meta else ""
            if meta is not None and self.key is not None and (trust or not meta.seal):
                base = chain_audit("", await conn.audit())  # the first seal covers the whole log
            head = chain_audit(base, lines)
            version = version_of(state_text, documents_text, head)
            if meta is not None and version == meta.version and not trust:
                return version  # nothing changed: write nothing
            seal = ""
            if self.key is not None:
                body = _sealed_text(state_text, documents_text, head)
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
        body = _sealed_text(meta.state, meta.documents, meta.audit_head)
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


def _require_extra() -> None:
    if _MISSING is not None:  # pragma: no cover - only without the extra
        raise StoreError(f"{SCHEME}: stores need the optional extra: pip install 'gitops-flags[litestar]' "
                         f"({_MISSING})")


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _moved(where: str, expected: str | None, found: str | None) -> str:
    return f"the store at {where} moved (expected version {expected}, found {found}); read it again"


def chain_audit(head: str, lines: Sequence[str]) -> str:
    """A running hash of the audit log, one link per line, so that appending lines alone gives a new version
    and the whole log can be checked against the head (a store written before this chained per write, so
    its head is recomputed from the log when it is first sealed)."""
    for line in lines:
        head = hashlib.sha256((head + line + "\n").encode()).hexdigest()
    return head


def version_of(state_text: str, documents_text: str, audit_head: str) -> str:
    return hashlib.sha256(_sealed_text(state_text, documents_text, audit_head)).hexdigest()


def _sealed_text(state_text: str, documents_text: str, audit_head: str) -> bytes:
    return "\n".join((state_text, documents_text, audit_head)).encode()


def _lines(audit: Sequence[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in audit]


def _meta_fields(meta: Meta) -> dict[str, str]:
    """Meta as named strings, the way the Redis and database backends keep it."""
    return {"version": meta.version, "state": meta.state, "documents": meta.documents,
            "audit_head": meta.audit_head, "seal": meta.seal}


def _meta_from(values: Mapping[str, str | None], where: str) -> Meta | None:
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
            raise ConflictError(_moved(self.backend.where, expected, current))
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
        return _meta_from(dict(zip(RedisBackend.FIELDS, values, strict=True)), self.backend.where)

    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None:
        from redis.exceptions import WatchError

        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(self.key("version"))
            current = await pipe.get(self.key("version"))
            if current != expected:
                raise ConflictError(_moved(self.backend.where, expected, current))
            pipe.multi()
            pipe.mset({self.key(name): value for name, value in _meta_fields(meta).items()})
            if audit:
                pipe.rpush(self.key("audit"), *audit)
            try:
                await pipe.execute()
            except WatchError:
                raise ConflictError(_moved(self.backend.where, expected, "a newer one")) from None

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
        return _meta_from({name: value for name, value in rows}, self.backend.where)

    async def commit(self, expected: str | None, meta: Meta, audit: Sequence[str]) -> None:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        moved = ConflictError(_moved(self.backend.where, expected, "another"))
        try:
            async with self.home.begin() as c:
                if expected is None:
                    await c.execute(insert(self.meta).values(name="version", value=meta.version))
                else:
                    row = (self.meta.c.name == "version") & (self.meta.c.value == expected)
                    done = await c.execute(update(self.meta).where(row).values(value=meta.version))
                    if done.rowcount != 1:
                        raise moved
                for name, value in _meta_fields(meta).items():
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


# --- URLs -----------------------------------------------------------------------------------------------


def open_litestar_store(location: str, key: SealKey | None = None) -> LitestarFlagsStore:
    """The store for `litestar-flags:<location>` (the part after the scheme), see the module docstring.

    Redis URLs take two extra query parameters, removed before connecting: `prefix` (default
    `feature_flags:{environment}:`) and `state_prefix` (default `gitops_flags:`)."""
    _require_extra()
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
