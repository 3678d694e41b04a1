"""Is a JSON Schema change breaking? It is when some value the old schema accepted is rejected by the new.

`is_breaking(old, new)` is sound for "not breaking": it answers False only when it can show that every
value accepted by `old` is accepted by `new`; whatever it cannot reason about counts as breaking, with a
reason that says so. It is a pure function over the two schema dicts (draft 2020-12).

How: `new` is a conjunction of keywords, so `old ⊆ new` holds when `old` implies each keyword of `new`.
Each keyword is compared with the matching keyword of `old` (a bound that did not tighten, a type set that
did not shrink, a subschema that recursively did not narrow...). Type-specific keywords are skipped when
`old` accepts no value of that type. When `old` is a finite set (`enum` / `const`) the answer is exact: each
of its values is validated against `new`.

Libraries judged and refused: `jsoncompat` (Rust, alpha, documents missed incompatibilities, returns a bare
bool), `jsonsubschema` and forks (draft-4 only, heavy regex-automata dependencies, no reasons), `subschema`
(not installable from our package index). None gives the reasons a reviewer needs to see.

One module (~460 lines): one short comparison per keyword, all dispatching through the same recursion;
split by keyword family they would import each other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from . import safe_schema

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})

# Keywords that never reject a value.
_ANNOTATIONS = frozenset(
    {
        "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$vocabulary", "$defs", "definitions",
        "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
        "contentEncoding", "contentMediaType", "contentSchema",
    }
)  # fmt: skip
# Keywords `_own` compares with dedicated rules; any other keyword in `new` must be unchanged.
_HANDLED = frozenset(
    {
        "type", "enum", "const", "format", "anyOf",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
        "minLength", "maxLength", "pattern",
        "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
        "required", "properties", "patternProperties", "additionalProperties", "propertyNames",
        "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
    }
)  # fmt: skip
_CONTEXTUAL = frozenset({"unevaluatedProperties", "unevaluatedItems"})
_MAX_DEPTH = 100  # far beyond real schemas (the loader caps YAML nesting at 64), well within the stack
_MAX_STEPS = 20_000

Schema = Mapping[str, Any] | bool


def is_breaking(old: Schema, new: Schema) -> tuple[bool, list[str]]:
    """(breaking, reasons). Reasons name the place (a dotted path into the value) and the narrowing."""
    if _json(old) == _json(new):  # the same document accepts the same values, whatever its refs
        return False, []
    old_dialect, new_dialect = _dialect(old), _dialect(new)
    if old_dialect != new_dialect:
        return True, [f"$schema changed from {old_dialect} to {new_dialect}: another dialect can reject "
                      "values the old one accepted, so the change counts as breaking"]
    if new_dialect != DRAFT_2020_12:
        return True, [f"the schema declares {new_dialect}; changes are compared under draft 2020-12 only, so "
                      "any change to it counts as breaking"]
    reasons = _Compare(old, new).check(old, new, "")
    unique = list(dict.fromkeys(reasons))
    return bool(unique), unique


class _Compare:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.depth = 0
        self.steps = 0
        self.texts: dict[int, tuple[Any, str]] = {}  # id → (subschema, its JSON): see `_text`
        # An unchanged keyword holding a `$ref` means the same only if what the refs point at is unchanged.
        self.refs_stable = _json(_defs(old_root)) == _json(_defs(new_root)) and all(
            r.startswith(("#/$defs/", "#/definitions/")) for r in [*_refs(old_root), *_refs(new_root)]
        )

    # --- entry point: trivial cases, finite old, conjunctions and disjunctions -------------------------

    def check(self, old: Schema, new: Schema, where: str) -> list[str]:
        if old is False or _accepts_all(new) or self._same(old, new):
            return []
        if new is False:
            return [_at(where, "no value is accepted any more")]
        if not isinstance(new, Mapping) or not isinstance(old, Mapping | bool):
            return [_at(where, "not a schema; cannot compare")]
        old_map: Mapping[str, Any] = old if isinstance(old, Mapping) else {}
        self.depth += 1
        self.steps += 1
        try:
            if self.depth > _MAX_DEPTH or self.steps > _MAX_STEPS:
                return ["schema too deep or recursive to compare"]
            return self._check(old_map, new, where)
        finally:
            self.depth -= 1

    def _check(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
        finite = _finite_values(old)
        if finite is not None:
            return self._check_values(old, finite, new, where)
        if _CONTEXTUAL & (set(old) | set(new)):
            # unevaluated* see every sibling and in-place applicator: splitting the schema would be unsound.
            if self._same(old, new):
                return []
            return [_at(where, "schema with unevaluatedProperties/unevaluatedItems changed; cannot compare")]
        new_parts = self._parts(new, self.new_root, where)
        if isinstance(new_parts, str):
            return [new_parts]
        if len(new_parts) > 1:  # allOf / $ref: every part of new must hold
            return [r for part in new_parts for r in self.check(old, part, where)]
        old_parts = self._parts(old, self.old_root, where)
        if isinstance(old_parts, str):
            return [old_parts]
        if len(old_parts) > 1:  # one part of old that implies new is enough
            return self._any_implies(old_parts, new, where)
        reasons = self._own(old, new, where)
        for key in ("anyOf", "oneOf"):  # old is a union: each branch implying new is enough
            branches = old.get(key)
            if reasons and isinstance(branches, list) and all(
                not self.check(b, new, where) for b in branches
            ):
                return []
        return reasons

    def _parts(self, schema: Mapping[str, Any], root: Schema, where: str) -> list[Schema] | str:
        """The schema as a conjunction: its own keywords, its allOf branches, its $ref target."""
        if "allOf" not in schema and "$ref" not in schema:
            return [schema]
        own = {k: v for k, v in schema.items() if k not in ("allOf", "$ref")}
        parts: list[Schema] = [own]
        branches = schema.get("allOf", [])
        if not isinstance(branches, list):
            return _at(where, "allOf is not a list; cannot compare")
        parts.extend(branches)
        if "$ref" in schema:
            target = _resolve(root, schema["$ref"])
            if target is None:
                return _at(where, f"cannot follow $ref {schema['$ref']!r}")
            parts.append(target)
        return parts

    def _check_values(
        self, old: Mapping[str, Any], values: list[Any], new: Mapping[str, Any], where: str
    ) -> list[str]:
        """Old accepts at most these values: validate each against new (exact)."""
        try:
            # RE2 patterns and a step budget: both schemas come from pull requests (safe_schema).
            cls = safe_schema.safe_class(Draft202012Validator)
            old_v = cls(self.old_root).evolve(schema=old)
            # Formats are asserted on the new side only: when unsure, breaking.
            new_v = cls(self.new_root, format_checker=cls.FORMAT_CHECKER).evolve(schema=new)
            rejected = [v for v in values
                        if safe_schema.is_valid(old_v, v) and not safe_schema.is_valid(new_v, v)]
        except (SchemaError, LookupError, ValueError, TypeError, safe_schema.SchemaTooCostly) as exc:
            return [_at(where, f"cannot compare ({type(exc).__name__})")]  # an unresolvable $ref, a bad regex
        if not rejected:
            return []
        return [_at(where, f"no longer accepts {', '.join(_show(v) for v in rejected)}")]

    # --- the keywords of one schema ----------------------------------------------------------------------

    def _own(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
        reasons: list[str] = []
        old_types = _types(old.get("type"))
        if old_types is None:
            return [_at(where, "old `type` is not understood")]
        if "type" in new:
            lost = old_types - (_types(new["type"]) or frozenset())
            if "type" not in old:
                reasons.append(_at(where, f"type {_show(new['type'])} added (any type was accepted)"))
            elif lost:
                shown = sorted(lost - {"integer"} if "number" in lost else lost)
                reasons.append(_at(where, f"type narrowed: {', '.join(shown)} no longer accepted"))
        if "enum" in new or "const" in new:  # old is not a finite set here (see `_check`)
            reasons.append(_at(where, "values restricted by a new `enum` / `const`"))
        if "format" in new and old.get("format") != new["format"]:
            reasons.append(_at(where, f"format {new['format']!r} added"))
        if old_types & {"number", "integer"}:
            reasons += self._numbers(old, new, where)
        if "string" in old_types:
            reasons += _bounds(old, new, where, "minLength", "maxLength")
            if "pattern" in new and old.get("pattern") != new["pattern"]:
                reasons.append(_at(where, f"pattern {new['pattern']!r} added"))
        if "array" in old_types:
            reasons += self._arrays(old, new, where)
        if "object" in old_types:
            reasons += self._objects(old, new, where)
        if "anyOf" in new and not self._same(old.get("anyOf"), new["anyOf"]):
            branches = new["anyOf"] if isinstance(new["anyOf"], list) else []
            if not any(not self.check(old, b, where) for b in branches):
                reasons.append(_at(where, "anyOf narrowed (no single branch accepts every old value)"))
        for key in sorted(set(new) - _HANDLED - _ANNOTATIONS):
            # Compared with its keyword, so that an unchanged `$dynamicRef` counts as a ref to check.
            if not self._same({key: old.get(key)}, {key: new[key]}):
                reasons.append(_at(where, f"`{key}` changed; cannot tell whether it accepts every old value"))
        return reasons

    def _numbers(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
        reasons: list[str] = []
        for lower, name in ((True, "minimum"), (False, "maximum")):
            try:
                new_b, old_b = _bound(new, lower), _bound(old, lower)
            except (TypeError, ValueError):
                reasons.append(_at(where, f"{name} is not a number; cannot compare"))
                continue
            if new_b is None:
                continue
            if old_b is None:
                reasons.append(_at(where, f"{name} {_show_bound(new_b)} added"))
            elif _tighter(new_b, old_b, lower):
                reasons.append(_at(where, f"{name} {_show_bound(old_b)} → {_show_bound(new_b)}"))
        if "multipleOf" in new and old.get("multipleOf") != new["multipleOf"]:
            try:  # every multiple of the old step is a multiple of the new one
                ok = (_fraction(old["multipleOf"]) / _fraction(new["multipleOf"])).denominator == 1
            except (KeyError, ValueError, TypeError, ZeroDivisionError):
                ok = False
            if not ok:
                reasons.append(_at(where, f"multipleOf {_show(new['multipleOf'])} added"))
        return reasons

    def _arrays(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
        reasons = _bounds(old, new, where, "minItems", "maxItems")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            reasons.append(_at(where, "uniqueItems added"))
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        if not isinstance(old_prefix, list) or not isinstance(new_prefix, list):
            return [*reasons, _at(where, "prefixItems is not a list; cannot compare")]
        old_rest, new_rest = old.get("items", True), new.get("items", True)
        for i in range(max(len(old_prefix), len(new_prefix))):
            o = old_prefix[i] if i < len(old_prefix) else old_rest
            n = new_prefix[i] if i < len(new_prefix) else new_rest
            reasons += self.check(o, n, f"{where}[{i}]")
        reasons += self.check(old_rest, new_rest, f"{where}[]")
        return reasons

    def _objects(self, old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
        reasons = _bounds(old, new, where, "minProperties", "maxProperties")
        added = sorted(set(_strings(new.get("required"))) - set(_strings(old.get("required"))))
        if added:
            noun = "property" if len(added) == 1 else "properties"
            reasons.append(_at(where, f"required {noun} added: {', '.join(added)}"))
        old_props, new_props = _mapping(old.get("properties")), _mapping(new.get("properties"))
        old_pats, new_pats = _mapping(old.get("patternProperties")), _mapping(new.get("patternProperties"))
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        try:
            # Properties named in either schema: what constrains the name on each side.
            for name in sorted(set(old_props) | set(new_props)):
                old_subs = _applying(name, old_props, old_pats, old_extra)
                for new_sub in _applying(name, new_props, new_pats, new_extra):
                    if new_sub is False and old_subs != [False]:
                        reasons.append(_at(where, f"property {name} no longer allowed"))
                    else:
                        reasons += self._any_implies(old_subs, new_sub, _join(where, name))
        except safe_schema.PatternError as exc:
            return [*reasons, _at(where, f"patternProperties pattern is not understood ({exc})")]
        # Names matching a pattern of new (and named nowhere).
        for pattern, sub in new_pats.items():
            if pattern in old_pats:
                reasons += self.check(old_pats[pattern], sub, _join(where, f"/{pattern}/"))
            else:
                for old_sub in [old_extra, *old_pats.values()]:
                    reasons += self.check(old_sub, sub, _join(where, f"/{pattern}/"))
        # Names that are additional in new: additional in old too, or matched by an old-only pattern.
        for old_sub in [old_extra, *(s for p, s in old_pats.items() if p not in new_pats)]:
            if new_extra is False and old_sub is not False:
                reasons.append(_at(where, "additional properties no longer allowed"))
            else:
                reasons += self.check(old_sub, new_extra, _join(where, "(additional property)"))
        if "propertyNames" in new:
            old_names = old.get("propertyNames", True)
            reasons += self.check(old_names, new["propertyNames"], _join(where, "(property name)"))
        old_dep, new_dep = _mapping(old.get("dependentRequired")), _mapping(new.get("dependentRequired"))
        for key, needs in new_dep.items():
            more = sorted(set(_strings(needs)) - set(_strings(old_dep.get(key))))
            if more:
                reasons.append(_at(where, f"dependentRequired: {key} now needs {', '.join(more)}"))
        old_ds, new_ds = _mapping(old.get("dependentSchemas")), _mapping(new.get("dependentSchemas"))
        for key, sub in new_ds.items():
            reasons += self.check(old_ds.get(key, True), sub, _join(where, f"(when {key} is set)"))
        return reasons

    def _any_implies(self, old_subs: Sequence[Schema], new_sub: Schema, where: str) -> list[str]:
        """Old constrains a value by all of `old_subs`; one of them implying `new_sub` is enough."""
        best: list[str] | None = None
        for old_sub in old_subs:
            reasons = self.check(old_sub, new_sub, where)
            if not reasons:
                return []
            best = reasons if best is None or len(reasons) < len(best) else best
        return best or []

    def _same(self, old: Any, new: Any) -> bool:
        """Equal as JSON (Python's == takes False for 0), and any refs inside point at unchanged defs."""
        return self._text(old) == self._text(new) and (self.refs_stable or not any(True for _ in _refs(new)))

    def _text(self, schema: Any) -> str:
        """`_json`, once per subschema object: refs make the comparison meet the same ones again and again,
        and dumping them each time made a chain of 40 `$ref`s take seconds."""
        if not isinstance(schema, Mapping | list):
            return _json(schema)
        hit = self.texts.get(id(schema))
        if hit is None or hit[0] is not schema:
            hit = self.texts[id(schema)] = (schema, _json(schema))
        return hit[1]


# --- small pure helpers ------------------------------------------------------------------------------------


def _dialect(schema: Schema) -> str:
    """`$schema` without a trailing '#'; a schema that names none is draft 2020-12."""
    declared = schema.get("$schema") if isinstance(schema, Mapping) else None
    return DRAFT_2020_12 if declared is None else str(declared).rstrip("#")


def _at(where: str, text: str) -> str:
    return f"{where}: {text}" if where else text


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _accepts_all(schema: Schema) -> bool:
    return schema is True or (isinstance(schema, Mapping) and set(schema) <= _ANNOTATIONS)


def _finite_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _types(value: Any) -> frozenset[str] | None:
    """The JSON types a `type` keyword admits (None when malformed). "number" includes integers."""
    if value is None:
        return ALL_TYPES
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n in ALL_TYPES for n in names):
        return None
    found = frozenset(names)
    return found | {"integer"} if "number" in found else found


Bound = tuple[Fraction, bool]  # (limit, exclusive)


def _bound(schema: Mapping[str, Any], lower: bool) -> Bound | None:
    """The tighter of the inclusive and the exclusive bound on one side; raises on a non-number."""
    keys = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    found = [(_fraction(schema[k]), k.startswith("exclusive")) for k in keys if k in schema]
    best: Bound | None = None
    for b in found:
        if best is None or _tighter(b, best, lower):
            best = b
    return best


def _tighter(a: Bound, b: Bound, lower: bool) -> bool:
    """Does bound `a` reject something that bound `b` accepts?"""
    if a[0] != b[0]:
        return a[0] > b[0] if lower else a[0] < b[0]
    return a[1] and not b[1]


def _show_bound(b: Bound) -> str:
    number = int(b[0]) if b[0].denominator == 1 else float(b[0])
    return f"{'exclusive ' if b[1] else ''}{number}"


def _fraction(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _bounds(old: Mapping[str, Any], new: Mapping[str, Any], where: str, low: str, high: str) -> list[str]:
    """Integer count bounds such as minLength / maxLength."""
    reasons = []
    for key, lower in ((low, True), (high, False)):
        if key not in new or old.get(key) == new[key]:
            continue
        n, o = new[key], old.get(key)
        if not isinstance(n, int) or (o is not None and not isinstance(o, int)):
            reasons.append(_at(where, f"{key} is not an integer; cannot compare"))
        elif o is None:
            reasons.append(_at(where, f"{key} {n} added"))
        elif (n > o) if lower else (n < o):
            reasons.append(_at(where, f"{key} {o} → {n}"))
    return reasons


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _applying(
    name: str, props: Mapping[str, Any], patterns: Mapping[str, Any], extra: Schema
) -> list[Schema]:
    """Every subschema that constrains property `name` (all must hold)."""
    found: list[Schema] = [props[name]] if name in props else []
    found += [sub for pattern, sub in patterns.items() if safe_schema.regex(pattern).search(name)]
    return found or [extra]


def _defs(schema: Schema) -> tuple[Any, Any]:
    if not isinstance(schema, Mapping):
        return None, None
    return schema.get("$defs"), schema.get("definitions")


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _resolve(root: Schema, ref: Any) -> Schema | None:
    """A local JSON-pointer `$ref` ("#", "#/$defs/x"); None for anything else."""
    if not isinstance(ref, str) or not ref.startswith("#") or (len(ref) > 1 and not ref.startswith("#/")):
        return None
    node: Any = root
    for raw in ref[2:].split("/") if len(ref) > 1 else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node if isinstance(node, Mapping | bool) else None
