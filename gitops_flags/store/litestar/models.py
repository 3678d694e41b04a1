"""Specs ↔ litestar-flags models (`FeatureFlag`, `FlagRule`, `FlagVariant`); `MISSING_EXTRA` says why
they could not be imported (the optional `gitops-flags[litestar]` extra is not installed)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from .translate import Spec


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
    MISSING_EXTRA: str | None = str(_exc)
else:
    MISSING_EXTRA = None
finally:
    logging.getLogger("advanced_alchemy").removeFilter(_quiet)

log = logging.getLogger(__name__)

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
