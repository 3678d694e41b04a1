"""What a flag file's conditions and kill switch mean on every engine, checked before compiling (pure;
imports only the models, so `validate` can use it without the compilers). docs/formats.md, "What a
condition means" and "The kill switch"."""

from __future__ import annotations

import json
import math
import re

from .model import AllOf, AnyOf, Condition, Flag

ORDERED = {"greater_than": ">", "greater_or_equal": ">=", "less_than": "<", "less_or_equal": "<="}
TEXT_OPERATORS = ("contains", "starts_with", "ends_with")
SEMVER = {"semver_equals": "=", "semver_greater_than": ">", "semver_less_than": "<"}
PARTIAL_SEMVER = re.compile(r"^[vV]?(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+].*)?$")
# A version in a flag file: what flagd's sem_ver and litestar-flags' dotted integers both order alike.
PLAIN_VERSION = re.compile(r"^[vV]?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,2}$")


def killed_variant(flag: Flag, environment: str) -> str:
    """What `enabled: false` serves to everyone: for a boolean flag a variant whose value is `false`
    (the environment's default when it is one, else the flag's default, else the first by name); for
    any other type, or a boolean flag without a false variant, the environment's default variant.
    Never the application's code default: that can be "on"."""
    default = flag.env_default(environment)
    if flag.type != "boolean":
        return default
    off = sorted(name for name, value in flag.variants.items() if value is False)
    for candidate in (default, flag.default_variant):
        if candidate in off:
            return candidate
    return off[0] if off else default


def conditions(when: Condition | AllOf | AnyOf) -> list[Condition]:
    if isinstance(when, AllOf):
        return list(when.all)
    if isinstance(when, AnyOf):
        return list(when.any)
    return [when]


def condition_problem(cond: Condition) -> str | None:
    """Why a condition has no single meaning on every engine, or None."""
    if "." in cond.attribute:
        return (f"attribute {cond.attribute!r} contains '.': flagd reads that as a nested path and "
                "litestar-flags as one name; use a name without dots")
    if cond.attribute.startswith("$"):
        return f"attribute {cond.attribute!r} starts with '$', which flagd reserves"
    op, value = cond.operator, cond.value
    values = value if op in ("in", "not_in") and isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, str | bool | int | float) or (isinstance(v, float) and not math.isfinite(v)):
            return f"`{op}` compares text, numbers or booleans; got {v!r}"
    if op in ORDERED and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"`{op}` compares numbers; got {value!r}"
    if op in TEXT_OPERATORS and not isinstance(value, str):
        return f"`{op}` compares text; got {value!r}"
    if op in SEMVER and not (isinstance(value, str) and PLAIN_VERSION.match(value)):
        return (f"`{op}` needs a plain version such as \"1.2.3\" or \"v1.2\" (no pre-release or build: "
                f"litestar-flags cannot order them); got {value!r}")
    return None


def engine_problems(flag: Flag, environment: str) -> list[tuple[tuple[str | int, ...], str, str, str]]:
    """What `validate` reports about one environment beyond the value checks it does itself:
    (path below the environment, message, title, severity). Errors are what `compile_flag` refuses;
    warnings are a kill switch that serves something the file does not seem to say."""
    env = flag.environments[environment]
    out: list[tuple[tuple[str | int, ...], str, str, str]] = []
    for i, rule in enumerate(env.rules):
        when = rule.when
        group = "all" if isinstance(when, AllOf) else "any" if isinstance(when, AnyOf) else None
        for j, cond in enumerate(conditions(when)):
            where: tuple[str | int, ...] = ("rules", i, "when", *((group, j) if group else ()))
            if "." in cond.attribute or cond.attribute.startswith("$"):
                out.append(((*where, "attribute"), str(condition_problem(cond)), "attribute-name", "error"))
            elif _pre_release(cond) or _odd_member(cond):  # the other value checks are validate's own
                out.append(((*where, "value"), str(condition_problem(cond)), "operator-value", "error"))
    if not env.enabled and flag.type == "boolean":
        served, named = killed_variant(flag, environment), flag.env_default(environment)
        if flag.variants.get(served) is not False:
            out.append((("enabled",), f"enabled: false cannot turn this flag off: no variant is false, so "
                        f"everyone gets {served!r} ({json.dumps(flag.variants.get(served))})",
                        "kill-switch", "warning"))
        elif served != named:
            out.append((("enabled",), f"enabled: false serves {served!r} (false) to everyone, not "
                        f"default_variant {named!r}: the kill switch always serves a false variant",
                        "kill-switch", "warning"))
    return out


def _pre_release(cond: Condition) -> bool:
    value = cond.value
    return (cond.operator in SEMVER and isinstance(value, str) and not PLAIN_VERSION.match(value)
            and bool(PARTIAL_SEMVER.match(value)))


def _odd_member(cond: Condition) -> bool:
    return cond.operator in ("in", "not_in") and isinstance(cond.value, list) and any(
        v is None or isinstance(v, list | dict) for v in cond.value)
