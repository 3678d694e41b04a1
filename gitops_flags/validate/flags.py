"""Semantic checks of one flag: its key, variant types and references, values against its schema,
conditions whose value suits the operator, stages, declared environments, gates, and its size in a flagd
document."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .. import egress, model, semantics
from ..loader import Document
from ..model import Condition, Flag, Policy, SchemaDoc
from ..problems import Problem
from .json_values import beyond_double, json_problem, type_name
from .paths import file_stem, schemas_folder
from .report import Path, Report, choices_hint, show
from .schemas import schema_validator, value_errors

if TYPE_CHECKING:
    from .salvage import Salvage


# What flagd's sem_ver accepts (it pads `1.2` to 1.2.0 and strips a leading `v`).
_SEMVER = re.compile(r"^[vV]?\d+(\.\d+){0,2}([-+][0-9A-Za-z.+-]+)?$")
_NUMERIC_OPERATORS = frozenset({"greater_than", "greater_or_equal", "less_than", "less_or_equal"})
_TEXT_OPERATORS = frozenset({"contains", "starts_with", "ends_with"})
_LIST_OPERATORS = frozenset({"in", "not_in"})
_MAX_SAFE_INTEGER = 2**53  # the largest integer that a 64-bit float (JavaScript, Go's float64) holds exactly


def _has_type(value: Any, flag_type: str) -> bool:
    if flag_type == "boolean":
        return isinstance(value, bool)
    if flag_type == "string":
        return isinstance(value, str)
    if flag_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, dict)


def check_flag(flag: Flag, path: str, policy: Policy | None, schemas: Mapping[str, SchemaDoc],
               doc: Document | None = None, salvage: Salvage | None = None) -> list[Problem]:
    """Semantic checks of one flag: key, variant types and references, schema values, stages, environments.

    `schemas` maps schema names to documents; a schema that is not a valid JSON Schema is reported on its
    own file (`read_schema`), so values are not checked against it here. `salvage`: `flag` is a repaired
    copy of a file with structural errors (see `salvaged_problems`).
    """
    report = Report(path, doc, salvage)
    stem = file_stem(path)
    if flag.key != stem:
        report.add(("key",), f"the key {flag.key!r} differs from the file name; rename the file to "
                   f"{flag.key}{posixpath.splitext(path)[1]} or set key: {stem}", "key-mismatch")
    _check_variants(report, flag, policy, schemas)
    variants = list(flag.variants)

    def known(variant: str, where: Path) -> None:
        if variant not in flag.variants:
            hint = choices_hint(variant, variants, "variants")
            report.add(where, f"variant {variant!r} is not defined{hint}", "unknown-variant")

    size = flag_json_size(flag, doc)
    if size > MAX_FLAG_JSON:
        report.add(("variants",), f"this flag would take about {size:,} bytes in each flagd document; the "
                   f"limit is {MAX_FLAG_JSON:,} (1 MiB) per flag", "flag-too-large")
    known(flag.default_variant, ("default_variant",))
    declared = policy.environments if policy is not None else None
    for env, state in flag.environments.items():
        base: Path = ("environments", env)
        if declared is not None and env not in declared:
            hint = choices_hint(env, declared, f"declared in {model.POLICY_PATH}")
            report.add(base, f"environment not declared in the policy{hint}", "unknown-environment")
        if state.default_variant is not None:
            known(state.default_variant, (*base, "default_variant"))
        for i, rule in enumerate(state.rules):
            known(rule.variant, (*base, "rules", i, "variant"))
            _check_when(report, rule.when, (*base, "rules", i, "when"))
        for where, message, title, severity in semantics.engine_problems(flag, env):  # one meaning everywhere
            report.add((*base, *where), message, title, severity)  # type: ignore[arg-type]
        if state.rollout is not None:
            known(state.rollout.variant, (*base, "rollout", "variant"))
            _check_stages(report, state.rollout.percentages(), (*base, "rollout", "stages"))
            gate = state.rollout.health_check
            if gate is not None:  # the base policy's gate rules (docs/rollouts.md, "Gate rules")
                rules = policy.health_checks.rules() if policy is not None else egress.Rules()
                for where, why in egress.gate_refusals(gate, rules):
                    report.add((*base, "rollout", "health_check", *where), why, "gate-refused")
    return report.problems


MAX_FLAG_JSON = 1024 * 1024  # bytes one flag may take in a flagd document
MAX_DOCUMENT_JSON = 64 * 1024 * 1024  # bytes of one environment's flagd document
_SMALL = 64 * 1024  # below this (after alias expansion) a file's JSON is far under MAX_FLAG_JSON


def flag_json_size(flag: Flag, doc: Document | None) -> int:
    """About how many bytes the flag takes in each flagd document (its variants and rules are most of it):
    the file's size after alias expansion, or, for large files, the JSON of the flag itself."""
    if doc is not None and doc.size < _SMALL:
        return doc.size
    dumped = flag.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return len(json.dumps(dumped, ensure_ascii=False, separators=(",", ":")))


def document_size_problem(sizes: Mapping[str, int]) -> Problem | None:
    """Flags (path → `flag_json_size`) whose flagd documents would together pass MAX_DOCUMENT_JSON."""
    total = sum(sizes.values())
    if total <= MAX_DOCUMENT_JSON:
        return None
    largest = sorted(sizes, key=lambda p: -sizes[p])[:3]
    message = (f"the flagd document of each environment would take about {total // 2**20} MiB, over the "
               f"{MAX_DOCUMENT_JSON // 2**20} MiB limit; the largest flag files: {', '.join(largest)}")
    return Problem(largest[0], None, None, message, "error", "document-too-large")


def _check_variants(
    report: Report, flag: Flag, policy: Policy | None, schemas: Mapping[str, SchemaDoc]
) -> None:
    for name, value in flag.variants.items():
        where: Path = ("variants", name)
        if not _has_type(value, flag.type):
            quote = flag.type == "string" and not isinstance(value, dict | list)
            hint = "; quote it to make it text" if quote else ""
            report.add(where, f"{show(value)} is {type_name(value)}, but the flag's type is {flag.type}"
                       f"{hint}", "variant-type")
        elif flag.type == "number" and beyond_double(value):
            report.add(where, f"{show(value)} is not a number a 64-bit float can hold (flagd and JSON "
                       "readers use those)", "number-too-large")
        elif flag.type == "number" and isinstance(value, int) and abs(value) > _MAX_SAFE_INTEGER:
            report.add(where, f"{show(value)} is beyond ±2^53: flagd and most SDKs hold numbers as 64-bit "
                       "floats, so applications would get a rounded value", "unsafe-number", "warning")
        elif flag.type == "object":
            json_problem(report, value, where)
    if flag.schema_ref is None:
        return
    if flag.type != "object":
        report.add(("schema",), f"only object flags take a schema; this flag's type is {flag.type}",
                   "schema-not-object")
        return
    schema = schemas.get(flag.schema_ref)
    if schema is None:
        folder = schemas_folder(policy)
        report.add(("schema",), f"no schema {flag.schema_ref!r}: expected {folder}/{flag.schema_ref}.yaml"
                   + (choices_hint(flag.schema_ref, sorted(schemas), "schemas") if schemas else ""),
                   "unknown-schema")
        return
    validator = schema_validator(schema)
    if validator is None:
        return
    from referencing.exceptions import Unresolvable  # loaded with jsonschema by `schema_validator`

    from .. import safe_schema

    for name, value in flag.variants.items():
        if not isinstance(value, dict):
            continue
        try:
            errors = value_errors(schema, validator, value)
        except Unresolvable as e:
            report.add(("schema",), f"cannot check values against schema {schema.name!r}: unresolvable "
                       f"reference {e}", "schema-ref")
            return
        except safe_schema.SchemaTooCostly:
            report.add(("schema",), f"checking values against schema {schema.name!r} takes more than "
                       f"{safe_schema.MAX_STEPS} steps; simplify the schema (nested anyOf/oneOf over $refs?)",
                       "schema-too-costly")
            return
        for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
            report.add(("variants", name, *err.absolute_path),
                       f"{err.message} (schema {schema.name} v{schema.version})", "schema-violation")


def _conditions(when: Any, path: Path) -> Iterable[tuple[Condition, Path]]:
    if isinstance(when, Condition):
        yield when, path
    elif isinstance(when, model.AllOf):
        yield from ((c, (*path, "all", i)) for i, c in enumerate(when.all))
    else:
        yield from ((c, (*path, "any", i)) for i, c in enumerate(when.any))


def _check_when(report: Report, when: Any, path: Path) -> None:
    """The value must suit the operator (flagd compares with JSONLogic and its sem_ver operator)."""
    for cond, where in _conditions(when, path):
        op, value, at = cond.operator, cond.value, (*where, "value")
        if op in _LIST_OPERATORS:
            if not isinstance(value, list) or not value:
                report.add(at, f"`{op}` takes a non-empty list of values, e.g. [a, b]; got {show(value)}",
                           "operator-value")
                continue
            values = value
        elif isinstance(value, list | dict) or value is None:
            report.add(at, f"`{op}` takes a single value; got {show(value)}", "operator-value")
            continue
        else:
            values = [value]
        for v in values:
            if op in _NUMERIC_OPERATORS and (not isinstance(v, int | float) or isinstance(v, bool)):
                report.add(at, f"`{op}` compares numbers; got {show(v)}", "operator-value")
            elif op in _TEXT_OPERATORS and not isinstance(v, str):
                report.add(at, f"`{op}` compares text; got {show(v)} (quote it)", "operator-value")
            elif op.startswith("semver_") and not (isinstance(v, str) and _SEMVER.match(v)):
                report.add(at, f"`{op}` needs a version in quotes, such as \"1.2.3\"; got {show(v)}",
                           "operator-value")
            else:
                json_problem(report, v, at)


def _check_stages(report: Report, stages: list[int], path: Path) -> None:
    for i in range(1, len(stages)):
        if stages[i] <= stages[i - 1]:
            report.add((*path, i), f"stages must strictly increase: {stages[i]}% comes after "
                       f"{stages[i - 1]}%", "rollout-stages")
    if stages and stages[-1] != 100:
        report.add((*path, len(stages) - 1), f"the last stage must be 100 (full); it is {stages[-1]}",
                   "rollout-stages")
