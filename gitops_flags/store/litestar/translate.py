"""flagd documents → litestar-flags flag specs, and what a reconcile does (pure).

A spec is a litestar-flags flag as plain JSON-able values: what the store writes and compares. The
targeting rules keep the flag file's meaning through `rules`; the mapping is in docs/litestar.md.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...flagd import NOT_FOLLOWED, skip_rules
from ..base import (
    StoreError,
)
from .rules import Alternative, Unmappable, expand, when_alternatives

Spec = dict[str, Any]  # a litestar-flags flag as plain JSON-able values: what we write and compare


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
