"""JSON Schema evaluation that a pull request's schema cannot make hang or crash.

Schemas come from pull requests, so three things that `jsonschema` does as-is are not safe here:

- **Regular expressions.** `pattern`, `patternProperties` (and `additionalProperties`, which matches against
  them) run through Python's backtracking `re`, where `^(a+)+$` takes exponential time. Here they run on RE2
  (Google's linear-time engine, the `google-re2` package): matching is linear in the text, whatever the
  pattern. RE2 syntax is what schemas may use (docs/formats.md): Python/ECMA-262 syntax without
  backreferences, lookaround and possessive quantifiers, which are exactly the constructs that need
  backtracking. `jsonschema` cannot be told to use RE2 for `unevaluatedProperties` (it calls `re` directly),
  so a schema holding both `unevaluatedProperties` and `patternProperties` is refused.
- **Cycles.** A `$ref` that reaches itself without descending into the value (`a → b → a`) loops until
  Python's recursion limit. `schema_problems` finds such cycles (and `$ref`s that lead nowhere) statically.
- **Combinatorial blow-up.** Nested `anyOf`/`oneOf` over `$ref`s, or over a deeply nested value, can take
  exponential time without any regex, and `uniqueItems` compares items pairwise. Every keyword evaluation
  counts against a budget (`MAX_STEPS` per value); running out is a `SchemaTooCostly`, which callers report
  as a problem. `uniqueItems` hashes a canonical form instead (linear).

Refused alternatives: a time budget per match (Python's `re` cannot be interrupted, so it needs a process
per match, and a time limit makes results depend on machine load); refusing "dangerous" patterns by
inspection (nested quantifiers are easy to spot, polynomial blow-ups such as `\\d+\\d+\\d+$` are not).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from jsonschema import FormatChecker
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend, validator_for
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

MAX_STEPS = 50_000  # keyword evaluations per value (0.1-0.3 s); real schemas take tens to a few thousand
META_STEPS = 150_000  # checking a schema against its metaschema: about 130 steps per subschema, ~0.6 s
_REF_COST = 10  # following a reference (lookup, new resolver, new validator) costs about ten keywords
_MAX_PATTERNS = 4096  # compiled patterns kept (each RE2 program holds at most 8 MiB, usually a few KiB)


class SchemaTooCostly(Exception):
    """Checking one value against the schema took more than `MAX_STEPS` keyword evaluations."""


class PatternError(ValueError):
    """A pattern RE2 does not accept; the message says why in RE2's words."""


# --- RE2 --------------------------------------------------------------------------------------------

_compiled: dict[str, Any] = {}


def regex(pattern: str) -> Any:
    """The compiled RE2 program for `pattern`. Raises `PatternError`."""
    found = _compiled.get(pattern)
    if found is not None:
        return found
    import re2  # type: ignore[import-untyped]  # lazily: validate runs without a schema pattern in most repositories

    options = re2.Options()
    options.log_errors = False  # RE2 would print the pattern (PR text) to stderr, unescaped
    try:
        program = re2.compile(pattern, options)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise PatternError(reason) from None
    if len(_compiled) >= _MAX_PATTERNS:
        _compiled.clear()
    _compiled[pattern] = program
    return program


def pattern_error(pattern: str) -> str | None:
    """Why RE2 refuses `pattern`, or None."""
    try:
        regex(pattern)
    except PatternError as e:
        return str(e)
    return None


def _is_regex(instance: object) -> bool:
    return not isinstance(instance, str) or pattern_error(instance) is None


# --- the evaluation budget --------------------------------------------------------------------------


class _Budget:
    steps = 0
    limit = MAX_STEPS


_budget = _Budget()


def _counted(keyword: Callable[..., Any], cost: int) -> Callable[..., Any]:
    def run(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        _budget.steps += cost
        if _budget.steps > _budget.limit:
            raise SchemaTooCostly(f"more than {_budget.limit} steps")
        return keyword(validator, value, instance, schema)

    return run


def errors(validator: Validator, instance: Any, limit: int = MAX_STEPS) -> list[ValidationError]:
    """Every error of `instance`, within `limit` steps. Raises `SchemaTooCostly`."""
    _budget.steps, _budget.limit = 0, limit
    try:
        return list(validator.iter_errors(instance))
    except RecursionError:
        raise SchemaTooCostly("nested too deeply") from None


def is_valid(validator: Validator, instance: Any) -> bool:
    """Within the budget. Raises `SchemaTooCostly`."""
    _budget.steps, _budget.limit = 0, MAX_STEPS
    try:
        return validator.is_valid(instance)
    except RecursionError:
        raise SchemaTooCostly("nested too deeply") from None


# --- keywords that use regexes or compare pairwise --------------------------------------------------


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _search(pattern: str, text: str) -> bool:
    try:
        return regex(pattern).search(text) is not None
    except PatternError as e:  # reported on the schema file; here the value simply cannot pass
        raise ValidationError(f"the schema's pattern {pattern!r} is not valid RE2: {e}") from None


def _pattern_properties(
    validator: Any, patterns: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    # jsonschema's own, with RE2 for patternProperties
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        shown = ", ".join(repr(e) for e in sorted(extras))
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = ", ".join(repr(p) for p in sorted(schema["patternProperties"]))
            yield ValidationError(f"{shown} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({shown} {verb} unexpected)")


def _canonical(value: Any) -> Any:
    """A hashable form in which equal JSON values (1 and 1.0, but not 1 and true) are equal."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # Python's 1 == 1.0, and their hashes agree
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("d", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("o", json.dumps(value, default=str))


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


_REPLACED = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
_safe_classes: dict[type, type] = {}


def safe_class(cls: type[Validator]) -> type[Validator]:
    """`cls` (a jsonschema draft's validator) with RE2 patterns, linear `uniqueItems` and the step budget."""
    found = _safe_classes.get(cls)
    if found is not None:
        return found
    keywords = {name: _counted(_REPLACED.get(name) or fn, _REF_COST if "Ref" in name or name == "$ref" else 1)
                for name, fn in cls.VALIDATORS.items()}
    checker = FormatChecker()
    checker.checkers = dict(cls.FORMAT_CHECKER.checkers)
    checker.checks("regex")(_is_regex)
    safe: type[Validator] = extend(cls, keywords, format_checker=checker)  # type: ignore[no-untyped-call]
    safe.evolve = _evolve  # type: ignore[method-assign]
    _safe_classes[cls] = _safe_classes[safe] = safe
    return safe


def _evolve(self: Any, **changes: Any) -> Any:
    """jsonschema's `evolve`, except that a subschema naming a `$schema` gets the safe class of that
    draft: jsonschema's would switch to its own class there, without RE2 and without the budget."""
    cls = type(self)
    schema = changes.setdefault("schema", self.schema)
    new = cls if isinstance(schema, bool) or "$schema" not in schema else safe_class(validator_for(schema))
    fields = _init_fields.get(cls)
    if fields is None:
        fields = _init_fields[cls] = [(f.name, f.alias) for f in attrs.fields(cls) if f.init]
    for name, alias in fields:
        if alias not in changes:
            changes[alias] = getattr(self, name)
    return new(**changes)


_init_fields: dict[type, list[tuple[str, str]]] = {}


# --- static checks of a schema document -------------------------------------------------------------

Path = tuple[str | int, ...]
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MANY = ("allOf", "anyOf", "oneOf")
_DESCEND_ONE = ("additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems",
                "contains", "propertyNames")
_DESCEND_MAP = ("properties", "patternProperties")
_DEFS = ("$defs", "definitions")


def schema_problems(schema: Mapping[str, Any], dialect: str | None) -> list[tuple[Path, str, str]]:
    """(path in the schema, message, title) for what would make evaluation loop or fail: `$ref`s that
    lead nowhere, `$ref` cycles that never descend into the value, `unevaluatedProperties` next to
    `patternProperties`."""
    spec = specification_with(dialect, default=DRAFT202012) if dialect else DRAFT202012
    root: Resource[Any] = spec.create_resource(schema)
    resolver = Registry().resolver_with_root(root)
    problems: list[tuple[Path, str, str]] = []
    where: dict[int, Path] = {}  # id(subschema) -> where it was first seen
    edges: dict[int, list[int]] = {}  # in-place applicators: same value, no progress
    nodes: dict[int, Any] = {}
    kinds: set[str] = set()
    stack: list[tuple[Any, Path, Any]] = [(schema, (), resolver)]
    while stack:
        node, path, res = stack.pop()
        if not isinstance(node, dict) or id(node) in where:
            continue
        where[id(node)] = path
        nodes[id(node)] = node
        if "$id" in node and isinstance(node["$id"], str) and path:
            res = res.in_subresource(spec.create_resource(node))
        out = edges.setdefault(id(node), [])
        kinds.update(k for k in ("unevaluatedProperties", "patternProperties") if k in node)

        def visit(sub: Any, at: Path, in_place: bool, res: Any = res, out: list[int] = out) -> None:
            if isinstance(sub, dict):
                if in_place:
                    out.append(id(sub))
                stack.append((sub, at, res))

        for key in ("$ref", "$recursiveRef", "$dynamicRef"):
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            try:
                target = res.lookup(ref)
            except Unresolvable:
                if key == "$ref":
                    problems.append(((*path, key), f"$ref {ref!r} leads nowhere: only references inside the "
                                     "schema ($defs, #/…, anchors) are followed, never remote ones",
                                     "schema-ref"))
                continue
            if isinstance(target.contents, dict):  # inside this document: the walk reaches it by its path
                out.append(id(target.contents))
        for key in _IN_PLACE_ONE:
            visit(node.get(key), (*path, key), True)
        for key in _IN_PLACE_MANY:
            subs = node.get(key)
            if isinstance(subs, list):
                for i, sub in enumerate(subs):
                    visit(sub, (*path, key, i), True)
        for key in ("dependentSchemas", "dependencies"):
            subs = node.get(key)
            if isinstance(subs, dict):
                for name, sub in subs.items():
                    visit(sub, (*path, key, name), True)
        for key in _DESCEND_ONE:
            visit(node.get(key), (*path, key), False)
        for key in (*_DESCEND_MAP, *_DEFS):
            subs = node.get(key)
            if isinstance(subs, dict):
                for name, sub in subs.items():
                    visit(sub, (*path, key, name), False)
        for key in ("items", "prefixItems"):
            subs = node.get(key)
            if isinstance(subs, list):
                for i, sub in enumerate(subs):
                    visit(sub, (*path, key, i), False)
            else:
                visit(subs, (*path, key), False)
    cycle = _cycle(edges)
    if cycle:
        shown = " → ".join(_pointer(where[n]) for n in [*cycle, cycle[0]])
        problems.append((where[cycle[0]], f"$ref cycle that never descends into the value ({shown}): "
                         "checking any value would loop forever", "schema-ref-cycle"))
    if kinds == {"unevaluatedProperties", "patternProperties"}:
        path = next(where[i] for i, n in nodes.items() if "unevaluatedProperties" in n)
        problems.append(((*path, "unevaluatedProperties"), "unevaluatedProperties cannot be combined with "
                         "patternProperties here (the checker would run those patterns without RE2's time "
                         "bound); list the properties, or use additionalProperties", "unsupported-keyword"))
    return problems


def _cycle(edges: Mapping[int, list[int]]) -> list[int] | None:
    """One cycle of the graph, iteratively (schemas may chain thousands of `$ref`s)."""
    state: dict[int, int] = {}  # 1: on the path, 2: done
    for start in edges:
        if start in state:
            continue
        path: list[int] = [start]
        iters = [iter(edges.get(start, ()))]
        state[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(edges.get(nxt, ())))
    return None


def _pointer(path: Path) -> str:
    return "#" + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)
