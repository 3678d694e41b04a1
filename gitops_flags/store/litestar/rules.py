"""Flag-file targeting rules → litestar-flags `FlagRule`s that keep the flag file's meaning (pure).

litestar-flags' engine compares with Python: `eq` takes `True == 1`, `ne` holds for a missing attribute,
`gt` raises on text (the client then serves the code default, reason ERROR), `starts_with` reads
`str(45)`, `semver_gt` reads `str(1.2)`. The file means something stricter (docs/formats.md, "What a
condition means"), so each condition becomes one or more *alternatives* of litestar-flags conditions,
each guarded so that it holds exactly where the file's condition holds, and raises exactly where the
file's condition meets a value it cannot compare (the flagd compiler answers an error there too):

- `gte ""` holds for any text and raises for every other present value: the guard of text operators;
- `matches "True\\Z"` (on `str(value)`) tells `True` from `1`; `semver_eq "1"` tells `1` and `1.0` from
  `True`, as `str(True)` is no dotted integer;
- `False` is told from `0` only by what it is not (`eq 0` holds for both, `semver_eq "0"` only for the
  number): an alternative can carry an `unless`, expanded into rules by `expand`.

Alternatives of one condition never overlap (at most one can hold or raise for a value), so a product of
them (`all`) and a sequence of them (`any`) keep first-match-wins and raise-where-the-file-fails.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Cond = dict[str, Any]

ORDERED = {"greater_than": "gt", "greater_or_equal": "gte", "less_than": "lt", "less_or_equal": "lte"}
TEXT = ("contains", "starts_with", "ends_with")
SEMVER = {"semver_equals": "semver_eq", "semver_greater_than": "semver_gt", "semver_less_than": "semver_lt"}
# What flagd's sem_ver (python-semver, after padding) and litestar-flags' dotted integers both read.
PLAIN_VERSION = r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}\Z"
_COMPARE = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b}
# flagd puts the targeting key into the context as `targetingKey`; litestar-flags has a field for it.
ATTRIBUTES = {"targetingKey": "targeting_key"}
# litestar-flags' EvaluationContext.get reads these members, never the attributes of the same name.
RESERVED = frozenset({"attributes", "timestamp", "targeting_key", "get", "merge", "with_attributes",
                      "with_environment", "with_targeting_key"})


class Unmappable(ValueError):
    """A condition litestar-flags cannot serve with the flag file's meaning."""


@dataclass(frozen=True)
class Alternative:
    """Holds when every condition holds and no `unless` conjunction does."""

    conditions: tuple[Cond, ...]
    unless: tuple[tuple[Cond, ...], ...] = ()

    def __add__(self, other: Alternative) -> Alternative:
        return Alternative(self.conditions + other.conditions, self.unless + other.unless)


def _alt(attribute: str, *conditions: tuple[str, Any], unless: Sequence[tuple[str, Any]] = ()) -> Alternative:
    def cond(op: str, value: Any) -> Cond:
        return {"attribute": attribute, "operator": op, "value": value}

    return Alternative(tuple(cond(*c) for c in conditions),
                       (tuple(cond(*c) for c in unless),) if unless else ())


def _is_number(value: Any, target: int) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == target


def alternatives(attribute: str, operator: str, value: Any) -> list[Alternative]:
    """One flag-file condition as non-overlapping litestar-flags alternatives (see the module doc)."""
    a = ATTRIBUTES.get(attribute, attribute)
    if a in RESERVED or "." in a:
        raise Unmappable(f"attribute {attribute!r} is not an attribute litestar-flags' context reads")
    true = _alt(a, ("eq", True), ("matches", r"True\Z"))
    one = _alt(a, ("eq", 1), ("semver_eq", "1"))
    zero = _alt(a, ("eq", 0), ("semver_eq", "0"))
    false = _alt(a, ("eq", False), unless=[("eq", 0), ("semver_eq", "0")])

    def equals(v: Any) -> Alternative:
        if v is True:
            return true
        if v is False:
            return false
        if _is_number(v, 1):
            return one
        if _is_number(v, 0):
            return zero
        return _alt(a, ("eq", v))

    def twins(values: list[Any]) -> list[Alternative]:
        """Values that Python's `==` takes for a member of `values` but the file does not."""
        has = {"true": any(v is True for v in values), "false": any(v is False for v in values),
               "one": any(_is_number(v, 1) for v in values), "zero": any(_is_number(v, 0) for v in values)}
        pairs = (("one", "true", true), ("true", "one", one), ("zero", "false", false),
                 ("false", "zero", zero))
        return [alt for member, twin, alt in pairs if has[member] and not has[twin]]

    if operator == "equals":
        return [equals(value)]
    if operator == "not_equals":
        return [_alt(a, ("ne", None), ("ne", value)), *twins([value])]
    if operator in ("in", "not_in"):
        values = list(value) if isinstance(value, list) else [value]
        if operator == "not_in":
            return [_alt(a, ("ne", None), ("not_in", values)), *twins(values)]
        special = [v for v in values if isinstance(v, bool) or _is_number(v, 0) or _is_number(v, 1)]
        plain = [v for v in values if not any(v is s for s in special)]
        out = [_alt(a, ("in", plain))] if plain else []
        seen: list[Alternative] = []
        for v in special:
            alt = equals(v)
            if alt not in seen:
                seen.append(alt)
        return out + seen
    if operator in ORDERED:
        op = ORDERED[operator]
        # Truthy values but True (text, lists and objects raise in the comparison); the falsy text, list
        # and object values, and "True", which must raise too; and the number zero.
        out = [_alt(a, ("matches", r"(?!True\Z)"), (op, value)),
               _alt(a, ("in", ["True", "", [], {}]), (op, value))]
        if _COMPARE[op](0, value):
            out.append(zero + _alt(a, (op, value)))
        return out
    if operator in TEXT:
        return [_alt(a, ("gte", "")) if value == "" else _alt(a, ("gte", ""), (operator, value))]
    if operator in SEMVER:
        return [_alt(a, ("gte", ""), ("matches", PLAIN_VERSION), (SEMVER[operator], _plain(value)))]
    raise Unmappable(f"operator {operator!r} has no litestar-flags mapping")


def when_alternatives(when: Mapping[str, Any]) -> list[Alternative]:
    """A rule's `when` (one condition, `all` or `any`, as JSON) as alternatives tried in order."""
    if "all" in when:
        combined = [Alternative(())]
        for cond in when["all"]:
            combined = [done + more for done in combined for more in when_alternatives(cond)]
        return combined
    if "any" in when:
        return [alt for cond in when["any"] for alt in when_alternatives(cond)]
    return alternatives(when["attribute"], when["operator"], when["value"])


Rule = dict[str, Any]


def expand(targeted: Sequence[tuple[Alternative, Rule]], tail: list[Rule],
           default: Callable[[tuple[Cond, ...]], Rule]) -> list[Rule]:
    """Rules in order. `targeted` pairs an alternative with the rule it serves (`conditions` unset);
    `tail` (the rollout) follows; `default(conditions)` is a rule serving the default variant.

    An alternative with `unless` Z becomes: Z's copies of every later rule and of the default, then the
    alternative itself. A value for which Z holds reaches the copies and is served what the rules after
    this one serve; any other value is served by the alternative (or passes on, as before)."""
    out = list(tail)
    for alt, rule in reversed(targeted):
        copies: list[Rule] = []
        for z in alt.unless:
            prefix = [*alt.conditions, *z]
            copies += [{**r, "conditions": prefix + list(r["conditions"])} for r in out]
            copies.append(default(tuple(prefix)))
        out = [*copies, {**rule, "conditions": list(alt.conditions)}, *out]
    return out


def _plain(version: Any) -> str:
    text = str(version).lstrip("vV")
    parts = text.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))
