"""Hostile schemas: catastrophic regexes, $ref cycles, combinatorial blow-ups, pairwise uniqueItems."""

from __future__ import annotations

import time
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from gitops_flags import safe_schema
from gitops_flags.model import Flag, SchemaDoc
from gitops_flags.schema_compat import is_breaking
from gitops_flags.validate import check_flag, check_schema_doc

EVIL = "^(a+)+$"
SLOW_TEXT = "a" * 5000 + "!"  # Python's re would take longer than the universe has left


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    cls = safe_schema.safe_class(Draft202012Validator)
    return [e.message for e in safe_schema.errors(cls(schema), value)]


def _doc(schema: dict[str, Any], name: str = "s") -> SchemaDoc:
    return SchemaDoc.model_validate({"name": name, "version": 1, "schema": schema})


def _flag(value: dict[str, Any], schema: str = "s") -> Flag:
    return Flag.model_validate({"key": "x", "type": "object", "schema": schema, "variants": {"a": value},
                                "default_variant": "a"})


@pytest.mark.parametrize("schema,value", [
    ({"pattern": EVIL}, SLOW_TEXT),
    ({"patternProperties": {EVIL: {"type": "integer"}}}, {SLOW_TEXT: 1, "aa": "x"}),
    ({"patternProperties": {EVIL: True}, "additionalProperties": False}, {SLOW_TEXT: 1}),
    ({"propertyNames": {"pattern": EVIL}}, {SLOW_TEXT: 1}),
    # a subschema naming its dialect gets jsonschema's own class (Python's re) but for safe_schema._evolve
    ({"properties": {"a": {"$schema": "https://json-schema.org/draft/2020-12/schema", "pattern": EVIL}}},
     {"a": SLOW_TEXT}),
])
def test_catastrophic_patterns_run_in_linear_time(schema: dict[str, Any], value: Any) -> None:
    start = time.perf_counter()
    found = _errors(schema, value)
    assert time.perf_counter() - start < 30  # a hang guard: Python's re would not finish at all
    assert found  # and they still reject what does not match


def test_patterns_keep_their_meaning() -> None:
    schema = {"type": "object", "patternProperties": {"^x-": {"type": "string"}},
              "additionalProperties": False, "properties": {"code": {"pattern": "^[A-Z]{2}$"}}}
    assert _errors(schema, {"x-a": "ok", "code": "DE"}) == []
    assert _errors(schema, {"x-a": 1}) == ["1 is not of type 'string'"]
    assert _errors(schema, {"code": "DEU"}) == ["'DEU' does not match '^[A-Z]{2}$'"]
    assert _errors(schema, {"y": 1}) == ["'y' does not match any of the regexes: '^x-'"]


def test_patterns_re2_refuses_are_problems_on_the_schema_file() -> None:
    for pattern, why in [("(a)\\1", "invalid escape sequence"), ("(?=a)b", "invalid perl operator"),
                         ("a{2000}", "invalid repetition size")]:
        found = check_schema_doc(_doc({"properties": {"p": {"pattern": pattern}}}), "flags/schemas/s.yaml")
        assert [p.title for p in found] == ["invalid-schema"]
        assert why in found[0].message and "RE2" in found[0].message
    found = check_schema_doc(_doc({"patternProperties": {"(?<=a)b": {}}}), "flags/schemas/s.yaml")
    assert [p.title for p in found] == ["invalid-schema"]


def test_a_ref_cycle_is_a_problem_on_the_schema_not_a_recursion_error() -> None:
    schema = {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}},
              "$ref": "#/$defs/a"}
    found = check_schema_doc(_doc(schema), "flags/schemas/s.yaml")
    assert [p.title for p in found] == ["schema-ref-cycle"]
    assert "(#/$defs/a → #/$defs/b → #/$defs/b/allOf/0 → #/$defs/a)" in found[0].message
    assert check_flag(_flag({}), "flags/x.yaml", None, {"s": _doc(schema)}) == []  # not evaluated
    # recursion that descends into the value is fine
    kids = {"type": "array", "items": {"$ref": "#/$defs/node"}}
    tree = {"$defs": {"node": {"type": "object", "properties": {"kids": kids}}}, "$ref": "#/$defs/node"}
    assert check_schema_doc(_doc(tree), "flags/schemas/s.yaml") == []
    assert _errors(tree, {"kids": [{"kids": [{"kids": 1}]}]}) == ["1 is not of type 'array'"]


def test_self_reference_at_the_root_is_a_cycle() -> None:
    found = check_schema_doc(_doc({"not": {"$ref": "#"}}), "flags/schemas/s.yaml")
    assert [p.title for p in found] == ["schema-ref-cycle"]


def test_combinatorial_schemas_run_out_of_steps_and_say_so() -> None:
    defs: dict[str, Any] = {"d30": {"type": "integer"}}
    for i in range(29, -1, -1):  # 2^30 paths, each failing at the end
        defs[f"d{i}"] = {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
    schema = {"$defs": defs, "properties": {"v": {"$ref": "#/$defs/d0"}}}
    assert check_schema_doc(_doc(schema), "flags/schemas/s.yaml") == []
    start = time.perf_counter()
    found = check_flag(_flag({"v": "text"}), "flags/x.yaml", None, {"s": _doc(schema)})
    assert time.perf_counter() - start < 30  # a hang guard: 2^30 paths would not finish at all
    assert [p.title for p in found] == ["schema-too-costly"]


def test_unique_items_is_linear_and_exact() -> None:
    items = [{"a": i} for i in range(30_000)]  # pairwise: 450 million comparisons
    start = time.perf_counter()
    assert _errors({"uniqueItems": True}, items) == []
    assert time.perf_counter() - start < 30  # a hang guard
    assert _errors({"uniqueItems": True}, [1, 1.0]) != []  # equal numbers
    assert _errors({"uniqueItems": True}, [1, True, 0, False, [1], [True], {"a": 1}, {"a": True}]) == []
    assert _errors({"uniqueItems": True}, [{"a": [1, {"b": 2}]}, {"a": [1, {"b": 2.0}]}]) != []


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    found = check_schema_doc(_doc(schema), "flags/schemas/s.yaml")
    assert [p.title for p in found] == ["unsupported-keyword"]
    assert check_schema_doc(_doc({"unevaluatedProperties": False}), "flags/schemas/s.yaml") == []


def test_schema_compat_uses_re2_and_the_budget() -> None:
    old = {"properties": {SLOW_TEXT[:60]: {"type": "string"}}}
    new = {"properties": {SLOW_TEXT[:60]: {"type": "string"}},
           "patternProperties": {EVIL: {"type": "integer"}}}
    start = time.perf_counter()
    breaking, _ = is_breaking(old, new)
    assert breaking and time.perf_counter() - start < 30  # a hang guard
    finite_old = {"enum": [SLOW_TEXT]}
    breaking, reasons = is_breaking(finite_old, {"pattern": EVIL})
    assert breaking and reasons[0].startswith('no longer accepts "aaaa')


def test_a_dialect_change_is_breaking() -> None:
    d7 = "http://json-schema.org/draft-07/schema#"
    breaking, reasons = is_breaking({"type": "object"}, {"$schema": d7, "type": "object"})
    assert breaking and "$schema changed" in reasons[0]
    breaking, reasons = is_breaking({"$schema": d7, "type": "object"},
                                    {"$schema": d7, "type": ["object", "null"]})
    assert breaking and "compared under draft 2020-12 only" in reasons[0]
    # naming the default dialect explicitly changes nothing
    d2020 = "https://json-schema.org/draft/2020-12/schema"
    assert is_breaking({"type": "object"}, {"$schema": d2020, "type": ["object", "null"]}) == (False, [])


def test_draft7_schemas_get_the_same_protection() -> None:
    cls = safe_schema.safe_class(Draft7Validator)
    start = time.perf_counter()
    assert [e.message for e in safe_schema.errors(cls({"pattern": EVIL}), SLOW_TEXT)]
    assert time.perf_counter() - start < 30  # a hang guard: Python's re would not finish at all
