"""Compile flags and rollout state into OpenFeature flagd flag-definition documents.

One document per environment, valid against https://flagd.dev/schema/v0/flags.json, so that flagd
(`flagd start --uri file:production.flagd.json`) or any in-process flagd provider can serve it.

Targeting is a chain of JSONLogic `if`s, one per rule (first match wins); its last `else` is the
rollout: a `fractional` split with the rolled-out variant listed first. flagd buckets a key by hashing
the flag key with the targeting key and serves the first variant when the bucket falls below its
weight, so a key inside the first p% stays inside at any larger p: users who are in stay in.

Conditions keep the flag file's meaning (docs/formats.md, "What a condition means"), not JSONLogic's
loose one: each compiles to a guarded expression that holds only for a value of the right type (no
`"3" == 3`, no `true == 1`, no missing attribute read as 0 or ""), and an operator that cannot compare
the value it is given (text in a numeric comparison) makes the evaluation fail with an error, as
litestar-flags' engine does, instead of silently choosing a rule. A killed flag (`enabled: false`) is
written ENABLED with its off variant as the default and no targeting: flagd's own DISABLED state returns
the application's code default, which can be "on".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .model import AllOf, AnyOf, Condition, Flag, TargetingRule
from .problems import GitopsFlagsError
from .semantics import (  # noqa: F401  (killed_variant, engine_problems: part of this module's API)
    ORDERED,
    PARTIAL_SEMVER,
    SEMVER,
    condition_problem,
    conditions,
    engine_problems,
    killed_variant,
)
from .store.base import canonical_json
from .store.state import RolloutState

SCHEMA_URL = "https://flagd.dev/schema/v0/flags.json"

JsonLogic = dict[str, Any]

# Targeting returns this when a condition cannot compare the value it is given: not a variant, so flagd
# answers with an error and the application gets its code default (reason ERROR), as litestar-flags does.
WRONG_TYPE = "gitops-flags: an attribute has the wrong type for its condition"


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
    if env.rules:
        # The rules as the flag file has them: the litestar-flags store maps these (not the JSONLogic
        # below) onto its engine's operators, so both keep the file's meaning.
        metadata["gitopsRules"] = json.dumps(
            [rule.model_dump(mode="json", exclude_none=True) for rule in env.rules],
            ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for rule in env.rules:
        for cond in conditions(rule.when):
            check_condition(cond, f"{where}: rule {rule.name or rule.variant!r}")
    fallback: JsonLogic | str | None = None
    if rollout is not None:
        _require_variant(flag, rollout.variant, f"{where}: rollout")
        fallback = rollout_expression(rollout.variant, default, served_percentage(rollout))
        metadata.update(
            gitopsRolloutVariant=rollout.variant,
            gitopsRolloutPercentage=served_percentage(rollout),
            gitopsRolloutStatus=rollout.status,
        )

    if not env.enabled:
        # The kill switch serves one variant to everyone, the same on every store (killed_variant).
        metadata["gitopsDisabled"] = True
        return {"state": "ENABLED", "variants": dict(flag.variants),
                "defaultVariant": killed_variant(flag, environment), "metadata": metadata}
    out: dict[str, Any] = {
        "state": "ENABLED",
        "variants": dict(flag.variants),
        "defaultVariant": default,
        "metadata": metadata,
    }
    if WRONG_TYPE in flag.variants:
        raise GitopsFlagsError(f"{where}: a variant may not be named {WRONG_TYPE!r}")
    targeting = targeting_expression(env.rules, fallback)
    if targeting is not None:
        out["targeting"] = targeting
    return out


def served_state(entry: Mapping[str, Any]) -> str:
    """ENABLED or DISABLED, as a flag entry of a document serves it: a killed flag is written ENABLED
    (serving its off variant statically, see `compile_flag`) with metadata `gitopsDisabled`."""
    metadata = entry.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("gitopsDisabled") is True:
        return "DISABLED"
    return str(entry.get("state", "-"))


def stored_rules(entry: Mapping[str, Any]) -> tuple[list[tuple[str, str]], Any] | None:
    """The flag file's rules of a document entry in words, `(condition, variant)` in order, and the
    targeting that follows them (the rollout); None for an entry without `gitopsRules` or whose
    targeting does not follow them."""
    metadata = entry.get("metadata")
    text = metadata.get("gitopsRules") if isinstance(metadata, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        rules = [TargetingRule.model_validate(rule) for rule in json.loads(text)]
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return None
    rest = skip_rules(entry.get("targeting"), len(rules))
    if rest is NOT_FOLLOWED:
        return None
    return [(when_text(rule.when), rule.variant) for rule in rules], rest


NOT_FOLLOWED = object()


def skip_rules(targeting: Any, count: int) -> Any:
    """What follows the first `count` rules of an `if` chain targeting_expression wrote (a completed
    rollout without rules, `if true` around a variant, is that variant), or NOT_FOLLOWED."""
    expression = targeting
    for _ in range(count):
        branches = expression.get("if") if isinstance(expression, dict) else None
        if not isinstance(branches, list) or len(branches) not in (3, 5):
            return NOT_FOLLOWED
        expression = branches[-1]
    if isinstance(expression, dict) and list(expression) == ["if"] and expression["if"][:1] == [True] \
            and len(expression["if"]) == 3 and expression["if"][2] is None:
        return expression["if"][1]
    return expression


def when_text(when: Condition | AllOf | AnyOf) -> str:
    """`email ends_with "@acme.com"`, `plan equals "gold" and seats greater_than 5`."""
    words = [f"{c.attribute} {c.operator} {json.dumps(c.value, ensure_ascii=False)}"
             for c in conditions(when)]
    return (" or " if isinstance(when, AnyOf) else " and ").join(words)


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
    A rule whose conditions can meet a value they cannot compare first tests for that and answers
    WRONG_TYPE. Returns None when there is nothing to target (flagd serves the default, STATIC)."""
    expression: JsonLogic | str | None = fallback
    for rule in reversed(rules):
        holds, error = when_expressions(rule.when)
        branches: list[Any] = [] if error is None else [error, WRONG_TYPE]
        expression = {"if": [*branches, holds, rule.variant, expression]}
    if isinstance(expression, str):
        # A bare variant name is not a JSONLogic object; `if true` keeps the document schema-valid.
        return {"if": [True, expression, None]}
    return expression


def when_expression(when: Condition | AllOf | AnyOf) -> JsonLogic:
    """When the rule holds (given that no condition failed with a wrong type)."""
    return when_expressions(when)[0]


def when_expressions(when: Condition | AllOf | AnyOf) -> tuple[JsonLogic, JsonLogic | None]:
    """(holds, fails): `fails` holds when evaluating the conditions in order (`all` stops at the first
    that does not hold, `any` at the first that does) reaches one that cannot compare its value; None
    when no condition can fail."""
    parts = [condition_expressions(c) for c in conditions(when)]
    if isinstance(when, Condition):
        return parts[0]
    errors: list[JsonLogic] = []
    for k, (_, error) in enumerate(parts):
        if error is None:
            continue
        before = [holds if isinstance(when, AllOf) else _not(holds) for holds, _ in parts[:k]]
        errors.append(_and(*before, error) if before else error)
    failing = None if not errors else errors[0] if len(errors) == 1 else {"or": errors}
    joined = {"and" if isinstance(when, AllOf) else "or": [holds for holds, _ in parts]}
    return joined, failing


def condition_expression(cond: Condition) -> JsonLogic:
    return condition_expressions(cond)[0]


def condition_expressions(cond: Condition) -> tuple[JsonLogic, JsonLogic | None]:
    """(holds, fails) of one condition; the table in docs/formats.md says what each operator means."""
    x = {"var": cond.attribute}
    op, value = cond.operator, cond.value
    if op == "equals":
        return _equals(x, value), None
    if op == "not_equals":
        return _and(_present(x), _not(_equals(x, value))), None
    if op == "in":
        return _in(x, _as_list(value)), None
    if op == "not_in":
        return _and(_present(x), _not(_in(x, _as_list(value)))), None
    if op in ORDERED:
        return _and(_is_number(x), {ORDERED[op]: [x, value]}), _and(_present(x), _not(_is_number(x)),
                                                                      _not(_is_boolean(x)))
    wrong = _and(_present(x), _not(_is_text(x)))
    if op == "contains":
        return _and(_is_text(x), {"in": [value, x]}), wrong
    if op in ("starts_with", "ends_with"):
        return _and(_is_text(x), {op: [x, value]}), wrong
    if op in SEMVER:
        # Only a plain MAJOR[.MINOR[.PATCH]] is a version here: flagd's sem_ver would also take a leading
        # `v`, a pre-release or a build, which litestar-flags cannot order.
        plain = [_not({"starts_with": [x, "v"]}), _not({"starts_with": [x, "V"]}),
                 *(_not({"in": [c, x]}) for c in ("-", "+", "\n"))]
        return _and(_is_text(x), *plain, {"sem_ver": [x, SEMVER[op], _semver(value)]}), wrong
    raise GitopsFlagsError(f"operator {op!r} has no flagd translation")  # pragma: no cover - model forbids


def check_condition(cond: Condition, where: str) -> None:
    """Refuse what no store can serve with one meaning (validate reports the same, with lines)."""
    problem = condition_problem(cond)
    if problem:
        raise GitopsFlagsError(f"{where}: {problem}")


# --- type tests that hold in every JSONLogic (strict `===` in JavaScript and Go, Python's `==` in
# flagd-core, which takes `true == 1`: the `cat` test tells booleans from numbers there; `cat` writes
# a boolean `true` in JavaScript and `True` in Python) -------------------------------------------------


def _is_text(x: JsonLogic) -> JsonLogic:
    return {"===": [{"cat": [x]}, x]}


def _boolean_text(x: JsonLogic) -> JsonLogic:
    return {"in": [{"cat": [x]}, ["true", "false", "True", "False"]]}


def _is_boolean(x: JsonLogic) -> JsonLogic:
    return _and({"or": [{"===": [x, True]}, {"===": [x, False]}]}, _boolean_text(x))


def _is_number(x: JsonLogic) -> JsonLogic:
    return _and({"===": [{"+": [x]}, x]}, _not(_boolean_text(x)))


def _present(x: JsonLogic) -> JsonLogic:
    return {"!==": [x, None]}


def _equals(x: JsonLogic, value: Any) -> JsonLogic:
    if isinstance(value, str):
        return {"===": [x, value]}
    return _and(_is_boolean(x) if isinstance(value, bool) else _is_number(x), {"===": [x, value]})


def _in(x: JsonLogic, values: list[Any]) -> JsonLogic:
    texts = _unique([v for v in values if isinstance(v, str)])
    booleans = _unique([v for v in values if isinstance(v, bool)])
    numbers = _unique([v for v in values if isinstance(v, int | float) and not isinstance(v, bool)])
    groups = [_and(test(x), {"in": [x, group]})
              for test, group in ((_is_text, texts), (_is_number, numbers), (_is_boolean, booleans)) if group]
    return groups[0] if len(groups) == 1 else {"or": groups}


def _and(*parts: JsonLogic) -> JsonLogic:
    flat: list[JsonLogic] = []
    for part in parts:
        flat += part["and"] if list(part) == ["and"] else [part]
    return {"and": flat}


def _not(part: JsonLogic) -> JsonLogic:
    return {"!": [part]}


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if not any(type(v) is type(o) and v == o for o in out):
            out.append(v)
    return out


def dumps(document: Mapping[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, two-space indent, UTF-8, final newline), as the store writes them:
    the same input always gives the same bytes, so a re-run that changes nothing writes nothing."""
    return canonical_json(document)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _semver(value: Any) -> str:
    """flagd's schema wants a full `MAJOR.MINOR.PATCH`; flagd itself pads `1.2` and strips a `v`."""
    text = str(value)
    match = PARTIAL_SEMVER.match(text)
    if not match:
        return text
    major, minor, patch, rest = match.groups()
    return f"{major}.{minor or 0}.{patch or 0}{rest or ''}"


def _require_variant(flag: Flag, variant: str, what: str) -> None:
    if variant not in flag.variants:
        known = ", ".join(sorted(flag.variants))
        raise GitopsFlagsError(f"{what} is {variant!r}, which is not one of the flag's variants ({known})")
