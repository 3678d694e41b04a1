"""Compile flags and rollout state into OpenFeature flagd flag-definition documents.

One document per environment, valid against https://flagd.dev/schema/v0/flags.json, so that flagd
(`flagd start --uri file:production.flagd.json`) or any in-process flagd provider can serve it.

Targeting is a chain of JSONLogic `if`s, one per rule (first match wins); its last `else` is the
rollout: a `fractional` split with the rolled-out variant listed first. flagd buckets a key by hashing
the flag key with the targeting key and serves the first variant when the bucket falls below its
weight, so a key inside the first p% stays inside at any larger p: users who are in stay in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .model import AllOf, AnyOf, Condition, Flag, TargetingRule
from .problems import GitopsFlagsError
from .store.base import canonical_json
from .store.state import RolloutState

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"

JsonLogic = dict[str, Any]

_COMPARISONS = {
    "equals": "==",
    "not_equals": "!=",
    "greater_than": ">",
    "greater_or_equal": ">=",
    "less_than": "<",
    "less_or_equal": "<=",
}
_SEMVER = {"semver_equals": "=", "semver_greater_than": ">", "semver_less_than": "<"}
_PARTIAL_SEMVER = re.compile(r"^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+].*)?$")


def compile_environment(
    flags: Mapping[str, Flag], environment: str, rollouts: Mapping[str, RolloutState], commit: str
) -> dict[str, Any]:
    """The flagd document of one environment. Flags that do not declare the environment are left out;
    `rollouts` maps flag key → that flag's rollout in this environment."""
    compiled = {
        key: compile_flag(flag, environment, rollouts.get(key), commit)
        for key, flag in sorted(flags.items())
        if environment in flag.environments
    }
    return {
        "$schema": SCHEMA_URL,
        "metadata": {"gitopsCommit": commit, "gitopsEnvironment": environment},
        "flags": compiled,
    }


def compile_flag(flag: Flag, environment: str, rollout: RolloutState | None, commit: str) -> dict[str, Any]:
    env = flag.environments[environment]
    default = flag.env_default(environment)
    where = f"flag {flag.key!r} in {environment!r}"
    _require_variant(flag, default, f"{where}: default variant")
    for rule in env.rules:
        _require_variant(flag, rule.variant, f"{where}: rule {rule.name or rule.variant!r}")

    # flagd documents have no name, description or tags: carry them as metadata (a flagd client can read
    # them, and the litestar-flags backend maps them back onto its own fields).
    metadata: dict[str, str | int | bool] = {"gitopsCommit": commit, "gitopsType": flag.type}
    if flag.name:
        metadata["gitopsName"] = flag.name
    if flag.description:
        metadata["gitopsDescription"] = flag.description
    if flag.tags:
        # A JSON array as text (metadata values must be scalars): a tag may itself contain a comma.
        metadata["gitopsTags"] = json.dumps(flag.tags, ensure_ascii=False, separators=(",", ":"))
    fallback: JsonLogic | str | None = None
    if rollout is not None:
        _require_variant(flag, rollout.variant, f"{where}: rollout")
        fallback = rollout_expression(rollout.variant, default, served_percentage(rollout))
        metadata.update(
            gitopsRolloutVariant=rollout.variant,
            gitopsRolloutPercentage=served_percentage(rollout),
            gitopsRolloutStatus=rollout.status,
        )

    out: dict[str, Any] = {
        "state": "ENABLED" if env.enabled else "DISABLED",
        "variants": dict(flag.variants),
        "defaultVariant": default,
        "metadata": metadata,
    }
    targeting = targeting_expression(env.rules, fallback)
    if targeting is not None:
        out["targeting"] = targeting
    return out


def served_percentage(rollout: RolloutState) -> int:
    """The share served the rollout variant: 0 before the start and after a rollback, 100 once
    completed, otherwise the percentage reached (a paused rollout keeps serving it)."""
    if rollout.status in ("scheduled", "rolled_back"):
        return 0
    if rollout.status == "completed":
        return 100
    return rollout.percentage


def rollout_expression(variant: str, default: str, percentage: int) -> JsonLogic | str | None:
    """None at 0% (targeting falls through to the default variant), the variant itself at 100%,
    otherwise `fractional` with the rolled-out variant first and weights summing to 100."""
    if percentage <= 0 or variant == default:
        return None
    if percentage >= 100:
        return variant
    return {"fractional": [[variant, percentage], [default, 100 - percentage]]}


def targeting_expression(rules: list[TargetingRule], fallback: JsonLogic | str | None) -> JsonLogic | None:
    """Rules as nested `if`s, first match wins, ending in `fallback` (None: the default variant).
    Returns None when there is nothing to target (flagd then serves the default variant, STATIC)."""
    expression: JsonLogic | str | None = fallback
    for rule in reversed(rules):
        expression = {"if": [when_expression(rule.when), rule.variant, expression]}
    if isinstance(expression, str):
        # A bare variant name is not a JSONLogic object; `if true` keeps the document schema-valid.
        return {"if": [True, expression, None]}
    return expression


def when_expression(when: Condition | AllOf | AnyOf) -> JsonLogic:
    if isinstance(when, AllOf):
        return {"and": [condition_expression(c) for c in when.all]}
    if isinstance(when, AnyOf):
        return {"or": [condition_expression(c) for c in when.any]}
    return condition_expression(when)


def condition_expression(cond: Condition) -> JsonLogic:
    attr = {"var": cond.attribute}
    op, value = cond.operator, cond.value
    if op in _COMPARISONS:
        return {_COMPARISONS[op]: [attr, value]}
    if op == "in":
        return {"in": [attr, _as_list(value)]}
    if op == "not_in":
        return {"!": [{"in": [attr, _as_list(value)]}]}
    if op == "contains":
        # JSONLogic `in` with a string (or list) haystack: the attribute contains the value.
        return {"in": [value, attr]}
    if op in ("starts_with", "ends_with"):
        return {op: [attr, str(value)]}
    if op in _SEMVER:
        return {"sem_ver": [attr, _SEMVER[op], _semver(value)]}
    raise GitopsFlagsError(f"operator {op!r} has no flagd translation")  # pragma: no cover - model forbids


def dumps(document: Mapping[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, two-space indent, UTF-8, final newline), as the store writes them:
    the same input always gives the same bytes, so a re-run that changes nothing writes nothing."""
    return canonical_json(document)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _semver(value: Any) -> str:
    """flagd's schema wants a full `MAJOR.MINOR.PATCH`; flagd itself pads `1.2` and strips a `v`."""
    text = str(value)
    match = _PARTIAL_SEMVER.match(text)
    if not match:
        return text
    major, minor, patch, rest = match.groups()
    return f"{major}.{minor or 0}.{patch or 0}{rest or ''}"


def _require_variant(flag: Flag, variant: str, what: str) -> None:
    if variant not in flag.variants:
        known = ", ".join(sorted(flag.variants))
        raise GitopsFlagsError(f"{what} is {variant!r}, which is not one of the flag's variants ({known})")
