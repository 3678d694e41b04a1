"""schema_compat.is_breaking: one row per rule, plus a soundness property checked against a real validator."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from gitops_flags.schema_compat import is_breaking

# (old, new, breaking, a fragment of one reason when breaking)
OBJ = {"type": "object"}
CASES = [
    # unchanged and annotations
    pytest.param({"type": "string"}, {"type": "string"}, False, "", id="identical"),
    pytest.param(
        {"type": "string"},
        {"type": "string", "description": "x", "title": "t"},
        False, "", id="description only",
    ),
    pytest.param({"type": "string"}, True, False, "", id="new accepts all"),
    pytest.param(False, {"type": "string"}, False, "", id="old accepts nothing"),
    pytest.param({"type": "string"}, False, True, "no value", id="new rejects all"),
    # required
    pytest.param(
        {"type": "object", "properties": {"a": {}}},
        {"type": "object", "properties": {"a": {}}, "required": ["a"]},
        True, "required property added: a", id="new required field",
    ),
    pytest.param(
        {"type": "object", "required": ["a", "b"]},
        {"type": "object", "required": ["a"]},
        False, "", id="required removed",
    ),
    # properties
    pytest.param(
        {"type": "object", "properties": {"a": {}, "b": {}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
        True, "property b no longer allowed", id="property removed from closed object",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}},
        False, "", id="property removed from open object",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {}}},
        {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
        True, "additional properties no longer allowed", id="object closed",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "additionalProperties": {"type": "integer"}},
        True, "type", id="additionalProperties true -> schema",
    ),
    pytest.param(
        {"type": "object", "additionalProperties": False},
        {"type": "object"},
        False, "", id="object opened",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {}, "b": {"type": "integer"}}, "additionalProperties": False},
        False, "", id="new optional property of closed object",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "properties": {"b": {"description": "b"}}},
        False, "", id="new untyped optional property of open object",
    ),
    # Formally breaking: the old open object accepted any value under the new name.
    pytest.param(
        {"type": "object"},
        {"type": "object", "properties": {"b": {"type": "integer"}}},
        True, "b: type", id="new typed optional property of open object",
    ),
    pytest.param(
        {"type": "object", "properties": {"db": {"properties": {"port": {"type": "integer"}}}}},
        {"type": "object", "properties": {"db": {"properties": {"port": {"type": "integer", "maximum": 9}}}}},
        True, "db.port: maximum 9 added", id="nested property narrowed",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
        True, "/^x-/", id="pattern property added",
    ),
    pytest.param(
        {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
        {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "description": "d"},
        False, "", id="pattern property unchanged",
    ),
    pytest.param(
        {"type": "object", "properties": {"x-a": {}}},
        {"type": "object", "patternProperties": {"^x-": {"type": "string"}}},
        True, "x-a", id="property now matched by a narrower pattern",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "propertyNames": {"maxLength": 3}},
        True, "maxLength 3 added", id="propertyNames added",
    ),
    pytest.param(
        {"type": "object", "maxProperties": 5},
        {"type": "object", "maxProperties": 4},
        True, "maxProperties 5 → 4", id="min/maxProperties tightened",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "dependentRequired": {"a": ["b"]}},
        True, "a now needs b", id="dependentRequired added",
    ),
    pytest.param(
        {"type": "object", "dependentRequired": {"a": ["b", "c"]}},
        {"type": "object", "dependentRequired": {"a": ["b"]}},
        False, "", id="dependentRequired relaxed",
    ),
    # type
    pytest.param(
        {"type": ["string", "integer"]},
        {"type": "string"},
        True, "type narrowed: integer", id="type narrowed",
    ),
    pytest.param({"type": "string"}, {"type": ["string", "null"]}, False, "", id="type widened"),
    pytest.param({"type": "integer"}, {"type": "number"}, False, "", id="integer -> number widens"),
    pytest.param(
        {"type": "number"},
        {"type": "integer"},
        True, "type narrowed: number", id="number -> integer narrows",
    ),
    pytest.param({}, {"type": "string"}, True, 'type "string" added', id="type added"),
    # enum / const
    pytest.param(
        {"enum": ["stripe", "adyen"]},
        {"enum": ["stripe"]},
        True, 'no longer accepts "adyen"', id="enum value removed",
    ),
    pytest.param({"enum": ["stripe"]}, {"enum": ["stripe", "adyen"]}, False, "", id="enum value added"),
    pytest.param({"enum": ["a", "b"]}, {"type": "string"}, False, "", id="enum -> type that covers it"),
    pytest.param({"type": "string"}, {"type": "string", "enum": ["a"]}, True, "enum", id="enum added"),
    pytest.param({"type": "string"}, {"const": "a"}, True, "const", id="const added"),
    pytest.param({"const": "a"}, {"const": "a", "type": "string"}, False, "", id="const kept"),
    pytest.param({"const": False}, {"const": 0}, True, "no longer accepts false", id="false is not 0"),
    # numbers
    pytest.param(
        {"type": "integer", "minimum": 0},
        {"type": "integer", "minimum": 1},
        True, "minimum 0 → 1", id="minimum raised",
    ),
    pytest.param(
        {"type": "integer", "minimum": 1},
        {"type": "integer", "minimum": 0},
        False, "", id="minimum lowered",
    ),
    pytest.param(
        {"type": "number"},
        {"type": "number", "maximum": 10},
        True, "maximum 10 added", id="maximum added",
    ),
    pytest.param(
        {"type": "number", "maximum": 10},
        {"type": "number", "exclusiveMaximum": 10},
        True, "maximum 10 → exclusive 10", id="maximum -> exclusiveMaximum same value",
    ),
    pytest.param(
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "number", "minimum": 0},
        False, "", id="exclusiveMinimum -> minimum same value",
    ),
    pytest.param(
        {"type": "number", "multipleOf": 2},
        {"type": "number", "multipleOf": 4},
        True, "multipleOf 4", id="multipleOf coarser",
    ),
    pytest.param(
        {"type": "number", "multipleOf": 0.5},
        {"type": "number", "multipleOf": 0.1},
        False, "", id="multipleOf finer",
    ),
    pytest.param(
        {"type": "string"},
        {"type": "string", "minimum": 3},
        False, "", id="numeric keyword on a string-only schema",
    ),
    # strings
    pytest.param(
        {"type": "string", "minLength": 1},
        {"type": "string", "minLength": 2},
        True, "minLength 1 → 2", id="minLength raised",
    ),
    pytest.param(
        {"type": "string", "maxLength": 5},
        {"type": "string", "maxLength": 6},
        False, "", id="maxLength raised",
    ),
    pytest.param(
        {"type": "string"},
        {"type": "string", "pattern": "^a"},
        True, "pattern", id="pattern added",
    ),
    pytest.param(
        {"type": "string", "pattern": "^a"},
        {"type": "string", "pattern": "^b"},
        True, "pattern", id="pattern changed",
    ),
    pytest.param(
        {"type": "string"},
        {"type": "string", "format": "email"},
        True, "format", id="format added",
    ),
    # arrays
    pytest.param(
        {"type": "array", "items": {"type": ["string", "integer"]}},
        {"type": "array", "items": {"type": "string"}},
        True, "[]: type narrowed", id="items narrowed",
    ),
    pytest.param(
        {"type": "array", "items": {"type": "string"}},
        {"type": "array"},
        False, "", id="items widened",
    ),
    pytest.param(
        {"type": "array"},
        {"type": "array", "minItems": 1},
        True, "minItems 1 added", id="minItems raised",
    ),
    pytest.param(
        {"type": "array", "maxItems": 3},
        {"type": "array", "maxItems": 2},
        True, "maxItems 3 → 2", id="maxItems lowered",
    ),
    pytest.param(
        {"type": "array"},
        {"type": "array", "uniqueItems": True},
        True, "uniqueItems", id="uniqueItems added",
    ),
    pytest.param(
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
        True, "[1]: type", id="prefixItems narrowed",
    ),
    pytest.param(
        {"type": "array", "items": {"type": "object"}},
        {"type": "array", "items": {"type": "object", "required": ["id"]}},
        True, "[]: required property added: id", id="array of objects gains a required field",
    ),
    # composition and references
    pytest.param(
        {"type": "object"},
        {"allOf": [{"type": "object"}, {"required": ["a"]}]},
        True, "required", id="allOf branch narrows",
    ),
    pytest.param(
        {"allOf": [{"type": "string"}]},
        {"type": "string"},
        False, "", id="allOf unchanged in meaning",
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}]},
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
        False, "", id="anyOf gains a branch",
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
        {"anyOf": [{"type": "string"}]},
        True, "anyOf", id="anyOf loses a branch",
    ),
    pytest.param(
        {"oneOf": [{"type": "string"}]},
        {"oneOf": [{"type": "string"}, {"minLength": 2}]},
        True, "oneOf", id="oneOf changed",
    ),
    pytest.param({"type": "string"}, {"type": "string", "not": {"const": "x"}}, True, "not", id="not added"),
    pytest.param(
        {"type": "object"},
        {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}},
        True, "if", id="if/then added",
    ),
    pytest.param(
        {"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}}},
        {"$defs": {"p": {"type": "integer", "minimum": 1}}, "properties": {"a": {"$ref": "#/$defs/p"}}},
        True, "a: minimum 1 added", id="$ref target narrowed",
    ),
    pytest.param(
        {"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}}},
        {"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}}, "title": "t"},
        False, "", id="$ref unchanged",
    ),
    pytest.param(
        {"type": "object"},
        {"$ref": "https://example.com/s.json"},
        True, "cannot follow $ref", id="remote $ref",
    ),
    pytest.param(
        {"$defs": {"n": {"properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"},
        {"$defs": {"n": {"properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"},
        False, "", id="recursive $ref unchanged",
    ),
    pytest.param(
        {"properties": {"a": {"$dynamicRef": "#v"}},
         "$defs": {"v": {"$dynamicAnchor": "v", "type": "string"}}},
        {"properties": {"a": {"$dynamicRef": "#v"}},
         "$defs": {"v": {"$dynamicAnchor": "v", "type": "integer"}}},
        True, "$dynamicRef", id="unchanged $dynamicRef to a narrowed target",
    ),
    pytest.param(
        {"properties": {"a": {"$dynamicRef": "#v"}}, "$defs": {"v": {"$dynamicAnchor": "v"}}},
        {"properties": {"a": {"$dynamicRef": "#v"}}, "$defs": {"v": {"$dynamicAnchor": "v"}}},
        False, "", id="identical documents with a $dynamicRef",
    ),
    pytest.param(
        {"properties": {"a": {}}, "unevaluatedProperties": False},
        {"unevaluatedProperties": False},
        True, "unevaluated", id="unevaluatedProperties with a removed property",
    ),
    pytest.param(
        {"type": "object"},
        {"type": "object", "x-custom": 1, "dependencies": {"a": ["b"]}},
        True, "dependencies", id="unknown keyword added",
    ),
]

@pytest.mark.parametrize(("old", "new", "breaking", "reason"), CASES)
def test_rules(old: Any, new: Any, breaking: bool, reason: str) -> None:
    got, reasons = is_breaking(old, new)
    assert got is breaking, reasons
    if breaking:
        assert any(reason in r for r in reasons), reasons
    else:
        assert reasons == []


def test_reasons_are_unique_and_located() -> None:
    old = {**OBJ, "properties": {"a": {**OBJ, "properties": {"b": {"type": "integer"}}}}}
    new = {**OBJ, "properties": {"a": {**OBJ, "properties": {"b": {"type": "integer", "minimum": 0}}}}}
    assert is_breaking(old, new) == (True, ["a.b: minimum 0 added"])


def test_is_pure() -> None:
    old = {"$defs": {"p": {"type": "integer"}}, "$ref": "#/$defs/p"}
    new = {"$defs": {"p": {"type": "integer"}}, "$ref": "#/$defs/p", "minimum": 0}
    before = (repr(old), repr(new))
    assert is_breaking(old, new) == is_breaking(old, new)
    assert (repr(old), repr(new)) == before


def test_pathological_depth_counts_as_breaking() -> None:
    old: dict[str, Any] = {"type": "string"}
    new: dict[str, Any] = {"type": "string", "maxLength": 3}
    for _ in range(300):
        old = {"type": "array", "items": old}
        new = {"type": "array", "items": new}
    breaking, reasons = is_breaking(old, new)
    assert breaking
    assert "too deep" in reasons[0]


# --- soundness: a value accepted by old and rejected by new means is_breaking says True -------------------

NAMES = ("a", "b", "x-c")
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, 2.5]),
    st.sampled_from(["", "a", "bb", "x-"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)
    ),
    max_leaves=6,
)


NAME_LISTS = st.lists(st.sampled_from(NAMES), max_size=2, unique=True)
TYPES = st.sampled_from(["null", "boolean", "integer", "number", "string", "array", "object"])
KEYWORDS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "type": st.builds(lambda t: {"type": t}, TYPES | st.lists(TYPES, min_size=1, max_size=3, unique=True)),
    "minimum": st.builds(lambda n: {"minimum": n}, st.integers(-2, 2)),
    "exclusiveMaximum": st.builds(lambda n: {"exclusiveMaximum": n}, st.integers(-2, 2)),
    "multipleOf": st.builds(lambda n: {"multipleOf": n}, st.sampled_from([0.5, 1, 2])),
    "maxLength": st.builds(lambda n: {"maxLength": n}, st.integers(0, 2)),
    "minItems": st.builds(lambda n: {"minItems": n}, st.integers(0, 2)),
    "pattern": st.builds(lambda p: {"pattern": p}, st.sampled_from(["^a", "b"])),
    "enum": st.builds(lambda v: {"enum": v}, st.lists(scalars, min_size=1, max_size=3)),
    "const": st.builds(lambda v: {"const": v}, scalars),
    "required": st.builds(lambda r: {"required": r}, NAME_LISTS),
    "uniqueItems": st.just({"uniqueItems": True}),
}
ANY_KEYWORD = st.one_of(*KEYWORDS.values())


def _leaf_schemas(max_size: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    return st.lists(ANY_KEYWORD, max_size=max_size).map(lambda ks: {k: v for d in ks for k, v in d.items()})


schemas = st.recursive(
    _leaf_schemas() | st.booleans(),
    lambda inner: st.one_of(
        st.builds(
            lambda base, props, extra: {
                **base, "properties": props, **({} if extra is None else {"additionalProperties": extra})
            },
            _leaf_schemas(),
            st.dictionaries(st.sampled_from(NAMES), inner, max_size=2),
            st.none() | inner,
        ),
        st.builds(lambda base, pats: {**base, "patternProperties": pats}, _leaf_schemas(),
                  st.dictionaries(st.sampled_from(["^x-", "a"]), inner, max_size=1)),
        st.builds(lambda base, items: {**base, "items": items}, _leaf_schemas(), inner),
        st.builds(
            lambda base, items: {**base, "prefixItems": items}, _leaf_schemas(), st.lists(inner, max_size=2)
        ),
        st.builds(lambda bs: {"anyOf": bs}, st.lists(inner, min_size=1, max_size=2)),
        st.builds(lambda bs: {"allOf": bs}, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=4,
)


def _accepts(schema: Any, value: Any) -> bool:
    checker = Draft202012Validator.FORMAT_CHECKER
    return bool(Draft202012Validator(schema, format_checker=checker).is_valid(value))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=schemas, new=schemas, value=values)
def test_not_breaking_is_sound(old: Any, new: Any, value: Any) -> None:
    if _accepts(old, value) and not _accepts(new, value):
        breaking, reasons = is_breaking(old, new)
        assert breaking, f"{value!r} is accepted by old and rejected by new, yet not breaking"
        assert reasons


@pytest.mark.parametrize("keyword", sorted(KEYWORDS))
@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_not_breaking_is_sound_for_keyword_edits(keyword: str, data: st.DataObject) -> None:
    """old plus one edited keyword: reaches each keyword's comparison far more often than random pairs."""
    same_keyword: dict[str, Any] = data.draw(st.just({}) | KEYWORDS[keyword], label="old keyword")
    old = {**data.draw(_leaf_schemas(1), label="old"), **same_keyword}
    new = {**old, **data.draw(KEYWORDS[keyword], label="edit")}
    value = data.draw(scalars | values, label="value")
    if _accepts(old, value) and not _accepts(new, value):
        assert is_breaking(old, new)[0]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=_leaf_schemas(2),
    edit=_leaf_schemas(1),
    extras=st.tuples(*[st.none() | st.booleans() | _leaf_schemas(1)] * 2),
    instance=st.dictionaries(st.sampled_from(["a", "c"]), scalars, max_size=2),
    in_array=st.booleans(),
    drop=st.booleans(),
)
def test_not_breaking_is_sound_for_nested_edits(
    old: dict[str, Any],
    edit: dict[str, Any],
    extras: tuple[Any, Any],
    instance: Any,
    in_array: bool,
    drop: bool,
) -> None:
    def wrap(sub: dict[str, Any] | None, extra: Any) -> dict[str, Any]:
        closed = {} if extra is None else {"additionalProperties": extra}
        obj = {"type": "object", "properties": {} if sub is None else {"a": sub}, **closed}
        return {"type": "array", "items": obj} if in_array else obj

    old_s, new_s = wrap(old, extras[0]), wrap(None if drop else {**old, **edit}, extras[1])
    value = [instance] if in_array else instance
    if _accepts(old_s, value) and not _accepts(new_s, value):
        assert is_breaking(old_s, new_s)[0]


def test_property_precondition_is_reachable() -> None:
    """Guards against a vacuous property: some generated pair has a value that old accepts and new rejects."""

    def old_only(t: tuple[Any, Any, Any]) -> bool:
        old, new, value = t
        return isinstance(old, dict) and len(old) > 1 and _accepts(old, value) and not _accepts(new, value)

    pairs = st.tuples(schemas, schemas, values)
    assert find(pairs, old_only, settings=settings(max_examples=5000, database=None))
