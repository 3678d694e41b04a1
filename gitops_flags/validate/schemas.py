"""Schema files: the name matches the file, `schema` is a valid JSON Schema that can be evaluated safely
(RE2 patterns, no remote `$ref`s, within a step budget), and the validators flags' values are checked
with, examined once per schema.

jsonschema (with referencing, attrs and every metaschema) is imported on the first schema examined, not
with this module: a repository without schemas validates without it (~50 ms of a ~250 ms start-up)."""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..loader import Document
from ..model import SchemaDoc
from ..problems import Problem
from .json_values import json_problem
from .paths import file_stem
from .report import Path, Report, show

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaValidationError
    from jsonschema.protocols import Validator

    from .salvage import Salvage


@dataclass(frozen=True)
class _Examined:
    schema: SchemaDoc
    validator: Validator | None  # None: not a schema we can check values against
    problems: tuple[tuple[Path, str, str], ...]  # (path under `schema`, message, title)


_examined: dict[int, _Examined] = {}
_costly: set[int] = set()  # ids of schemas that ran out of steps on some value: the others are not tried


def _examine(schema: SchemaDoc) -> _Examined:
    """Is the schema a valid JSON Schema that can be evaluated safely (RE2 patterns, no `$ref` cycles, no
    remote `$ref`s, within the step budget)? Cached per SchemaDoc object: every flag using it asks."""
    hit = _examined.get(id(schema))
    if hit is not None and hit.schema is schema:
        return hit
    from referencing import Registry

    from .. import safe_schema

    cls = safe_schema.safe_class(_validator_class(schema.json_schema))
    found: list[tuple[Path, str, str]] = []
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)  # as `check_schema` does: bad regexes
    try:
        errors = safe_schema.errors(meta, schema.json_schema, safe_schema.META_STEPS)
    except safe_schema.SchemaTooCostly:
        errors = []
        found.append(((), "the schema is too large to check (more than about 1,000 subschemas); split it "
                      "into smaller schemas", "schema-too-costly"))
    for err in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        found.append((tuple(err.absolute_path), *_meta_message(_first_cause(err))))
    if not found:
        dialect = str(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id"))
        found += safe_schema.schema_problems(schema.json_schema, dialect)
    validator = None if found else cls(schema.json_schema, registry=Registry())
    if len(_examined) > 512:
        _examined.clear()
    result = _Examined(schema, validator, tuple(found))
    _examined[id(schema)] = result
    _costly.discard(id(schema))
    return result


def _meta_message(err: SchemaValidationError) -> tuple[str, str]:
    from .. import safe_schema

    if err.validator == "format" and err.validator_value == "regex" and isinstance(err.instance, str):
        why = safe_schema.pattern_error(err.instance) or "not a regular expression"
        return (f"not a valid JSON Schema: {show(err.instance)} is not a pattern RE2 accepts ({why}); "
                "schemas use RE2 syntax: no backreferences, lookaround or possessive quantifiers",
                "invalid-schema")
    return f"not a valid JSON Schema: {err.message}", "invalid-schema"


def schema_validator(schema: SchemaDoc) -> Validator | None:
    """A validator for the schema's JSON Schema (draft 2020-12 unless it names another `$schema`), or None
    when it is not a schema that can be checked safely. Remote `$ref`s are never fetched."""
    return _examine(schema).validator


def check_schema_doc(schema: SchemaDoc, path: str, doc: Document | None = None,
                     salvage: Salvage | None = None) -> list[Problem]:
    """The name equals the file's stem and `schema` is a valid JSON Schema (every error, with its line)."""
    report = Report(path, doc, salvage)
    stem = file_stem(path)
    if schema.name != stem:
        report.add(("name",), f"the name {schema.name!r} differs from the file name; rename the file to "
                   f"{schema.name}{posixpath.splitext(path)[1]} or set name: {stem}", "name-mismatch")
    declared = schema.json_schema.get("$schema")
    if declared is not None and str(declared).rstrip("#") not in _drafts():
        report.add(("schema", "$schema"), f"unknown JSON Schema dialect {show(declared)}; it is checked as "
                   f"draft 2020-12 ({_DRAFT_2020_12})", "unknown-dialect", "warning")
    examined = _examine(schema)
    for where, message, title in examined.problems:
        report.add(("schema", *where), message, title)
    if not examined.problems:
        json_problem(report, schema.json_schema, ("schema",))
    return report.problems


_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


@functools.cache
def _drafts() -> frozenset[str]:
    """The `$schema` URIs of the drafts jsonschema implements (without a trailing `#`)."""
    from jsonschema import (
        Draft4Validator,
        Draft6Validator,
        Draft7Validator,
        Draft201909Validator,
        Draft202012Validator,
    )

    return frozenset(str(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id")).rstrip("#")
                     for cls in (Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator,
                                 Draft202012Validator))


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    """The validator of the draft that `$schema` names, or draft 2020-12 (also for dialects we do not know,
    which `validator_for` would accept with a DeprecationWarning)."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    declared = schema.get("$schema")
    if declared is None or str(declared).rstrip("#") not in _drafts():
        return Draft202012Validator
    return validator_for(schema, default=Draft202012Validator)


def _first_cause(err: SchemaValidationError) -> SchemaValidationError:
    """For `anyOf` failures, the first alternative's reason ("'objekt' is not one of [...]") says more than
    "is not valid under any of the given schemas"."""
    while err.context:
        err = min(err.context, key=lambda e: -len(e.absolute_path))
    return err


def value_errors(schema: SchemaDoc, validator: Validator, value: Any) -> list[SchemaValidationError]:
    """Every error of one value against `schema`. Raises `safe_schema.SchemaTooCostly`, at once for a
    schema that already ran out of steps on another value."""
    from .. import safe_schema

    if id(schema) in _costly:
        raise safe_schema.SchemaTooCostly
    try:
        return safe_schema.errors(validator, value)
    except safe_schema.SchemaTooCostly:
        _costly.add(id(schema))
        raise
