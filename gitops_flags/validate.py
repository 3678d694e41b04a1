"""Validation of flag files, schema files and the policy: structure (the models) plus the semantic checks
that a schema cannot express, every finding a `Problem` with file, line and column.

Everything here is pure over a `Tree`. pydantic errors are translated into readable messages: the error's
location (which may hold union tags such as `condition`/`all` or `constrained-int`) is walked alongside the
model's annotations, so we know which parts are data keys (for the message and the line) and which model
sits at a location (for "unknown field 'colour'; did you mean 'color'?").
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import math
import posixpath
import re
import sys
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import (
    Annotated,
    Any,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
    runtime_checkable,
)

from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
)
from jsonschema.exceptions import ValidationError as SchemaValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails
from referencing import Registry
from referencing.exceptions import Unresolvable

from . import egress, model, safe_schema, semantics
from .loader import Document, load_bytes, load_path
from .model import Condition, Flag, Match, Policy, SchemaDoc
from .problems import Problem, ProblemError, Severity
from .tree import DirTree, Tree

Key = str | int
Path = tuple[Key, ...]
M = TypeVar("M", bound=BaseModel)

YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_FLAGS_DIR = "flags"


@dataclass(frozen=True)
class FlagEntry:
    path: str
    flag: Flag


@dataclass(frozen=True)
class SchemaEntry:
    path: str
    schema: SchemaDoc


@dataclass(frozen=True)
class Validation:
    problems: tuple[Problem, ...]
    flags: dict[str, FlagEntry]  # by key; the first file wins when two share a key (that is an error)
    schemas: dict[str, SchemaEntry]  # by name (the file's stem)
    policy: Policy | None
    checked: tuple[str, ...] = ()  # the flag and schema files whose problems are reported


# --- which file is what -----------------------------------------------------------------------------


def _flags_dir(policy: Policy | None) -> str:
    return (policy.flags_dir if policy is not None else DEFAULT_FLAGS_DIR).strip("/")


def _schemas_dir(policy: Policy | None) -> str:
    return f"{_flags_dir(policy)}/schemas"


def is_flag_path(path: str, policy: Policy | None) -> bool:
    """A YAML file anywhere under the flags folder, except under its `schemas/` folder."""
    return (
        path.endswith(YAML_SUFFIXES)
        and path.startswith(_flags_dir(policy) + "/")
        and not path.startswith(_schemas_dir(policy) + "/")
    )


def is_schema_path(path: str, policy: Policy | None) -> bool:
    """A YAML file directly in `<flags_dir>/schemas/` (flags refer to schemas by file name)."""
    return path.endswith(YAML_SUFFIXES) and posixpath.dirname(path) == _schemas_dir(policy)


def _stem(path: str) -> str:
    name = path.rpartition("/")[2]
    return name.rpartition(".")[0] or name


# --- reading one file -------------------------------------------------------------------------------


def _load(tree: Tree, path: str) -> tuple[Document | None, list[Problem]]:
    if isinstance(tree, DirTree):
        # The loader's own file reading checks symlinks and the size before reading, with a third of the
        # system calls of DirTree.read (which matters at 10,000 files).
        try:
            doc = load_path(tree.root, path)
        except ProblemError as e:
            return None, [e.problem]
        return doc, list(doc.warnings)
    try:
        raw = tree.read(path)
    except ProblemError as e:  # GitTree: a symlink in the commit
        return None, [e.problem]
    except PermissionError as e:  # DirTree: a symlink that leads outside the repository
        return None, [Problem(path, None, None, str(e).removeprefix(f"{path}: "), "error", "symlink-outside")]
    except OSError as e:
        message = f"cannot read the file: {e.strerror or e}"
        return None, [Problem(path, None, None, message, "error", "read-error")]
    if raw is None:
        return None, [Problem(path, None, None, "no such file", "error", "not-found")]
    try:
        doc = load_bytes(raw, path)
    except ProblemError as e:
        return None, [e.problem]
    return doc, list(doc.warnings)


def _parse(tree: Tree, path: str, cls: type[M]) -> tuple[M | None, Document | None, list[Problem]]:
    doc, problems = _load(tree, path)
    if doc is None:
        return None, None, problems
    try:
        return cls.model_validate(doc.data), doc, problems
    except ValidationError as e:
        # Where the loader already explained a YAML 1.1 surprise (`on:` read as true, 0755 as 493) that
        # made the value invalid, its message with the fix becomes the error instead of "expected text".
        found = model_problems(e, cls, doc)
        spots = {(p.line, p.col) for p in found}
        loader = [replace(p, severity="error") if (p.line, p.col) in spots else p for p in problems]
        taken = {(p.line, p.col) for p in loader}
        return None, doc, loader + [p for p in found if (p.line, p.col) not in taken]


def read_flag(tree: Tree, path: str) -> tuple[Flag | None, list[Problem]]:
    """Load and check the structure of one flag file (no checks that need other files)."""
    flag, _, problems = _parse(tree, path, Flag)
    return flag, problems


def read_schema(tree: Tree, path: str) -> tuple[SchemaDoc | None, list[Problem]]:
    """Load one schema file, check its structure, its name and that it holds a valid JSON Schema."""
    schema, doc, problems = _parse(tree, path, SchemaDoc)
    if schema is not None:
        problems += check_schema_doc(schema, path, doc)
    return schema, problems


def read_policy(tree: Tree, path: str = model.POLICY_PATH) -> tuple[Policy | None, list[Problem]]:
    """Load the policy file and run its semantic checks. None when it is missing or structurally invalid."""
    policy, doc, problems = _parse(tree, path, Policy)
    if doc is None and [p.title for p in problems] == ["not-found"]:
        return None, [Problem(path, None, None, "the policy file is missing; every flag repository needs one "
                              "(`gitops-flags init` writes a starter)", "error", "policy-missing")]
    if policy is not None:
        problems += check_policy(policy, path, doc)
    elif doc is not None:  # still exit 2, but with every independent problem at once
        problems += salvaged_problems(doc, path, None, {}, Policy)
    return policy, sorted(problems, key=_sort_key)


# --- pydantic errors → problems ---------------------------------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip `Annotated` and `Optional`, keeping a string discriminator (`Field(discriminator="type")`)."""
    discriminator = None
    while True:
        if get_origin(tp) is Annotated:
            tp, *meta = get_args(tp)
            for m in meta:
                if isinstance(getattr(m, "discriminator", None), str):
                    discriminator = m.discriminator
        elif _is_union(tp) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007 - built from a tuple
        else:
            return tp, discriminator


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _field_annotation(cls: type[BaseModel], part: Key) -> Any | None:
    for name, info in cls.model_fields.items():
        if part == name or part == info.alias:
            return info.annotation
    return None


def field_names(cls: type[BaseModel]) -> list[str]:
    """The names a file may use for the model's fields (aliases where they exist: `schema`, `not`)."""
    return [info.alias or name for name, info in cls.model_fields.items()]


def _tagged_branch(tp: Any, part: Key, discriminator: str | None) -> Any | None:
    """The union member that pydantic names `part` in an error location, if `part` is such a tag."""
    for arg in get_args(tp):
        inner, meta = (get_args(arg)[0], get_args(arg)[1:]) if get_origin(arg) is Annotated else (arg, ())
        if any(isinstance(m, Tag) and m.tag == part for m in meta):
            return inner
        if _is_model(inner):
            if inner.__name__ == part:
                return inner
            if discriminator is not None and part in get_args(_field_annotation(inner, discriminator)):
                return inner
    return None


def _accepts(tp: Any, part: Key) -> bool:
    tp, _ = _unwrap(tp)
    if _is_model(tp):
        return _field_annotation(tp, part) is not None
    origin = get_origin(tp)
    if origin is dict:
        return True
    return origin is list and isinstance(part, int)


@dataclass(frozen=True)
class _Resolved:
    path: Path  # the location's data keys and indexes (union tags removed)
    annotation: Any  # the annotation reached at the end of the location
    tagged_at: int | None  # length of `path` when the first smart-union tag (str, list[str], ...) appeared
    tag: str | None  # that tag
    key_error: bool = False  # the error is about the mapping key at `path[-1]`, not its value


def resolve_loc(cls: type[BaseModel], loc: Sequence[Key]) -> _Resolved:
    """Walk a pydantic error location along `cls`'s annotations, telling data keys from union tags."""
    path: list[Key] = []
    tp: Any = cls
    tagged_at: int | None = None
    tag: str | None = None
    for part in loc:
        if part == "[key]":
            return _Resolved(tuple(path), tp, tagged_at, tag, key_error=True)
        tp, discriminator = _unwrap(tp)
        if _is_union(tp):
            branch = _tagged_branch(tp, part, discriminator)
            if branch is not None:  # a discriminated union's tag: says which member, is not data
                tp = branch
                continue
            takers = [a for a in get_args(tp) if _accepts(a, part)]
            if not takers:  # a smart union's member name ('str', 'list[str]', 'constrained-int', ...)
                if tagged_at is None:
                    tagged_at, tag = len(path), str(part)
                continue
            tp, _ = _unwrap(takers[0])
        origin = get_origin(tp)
        if _is_model(tp):
            path.append(part)
            found = _field_annotation(tp, part)
            tp = Any if found is None else found
        elif origin is dict:
            path.append(part)
            tp = get_args(tp)[1] if get_args(tp) else Any
        elif origin is list and isinstance(part, int):
            path.append(part)
            tp = get_args(tp)[0] if get_args(tp) else Any
        elif tp is Any:
            path.append(part)
    return _Resolved(tuple(path), tp, tagged_at, tag)


def dotted(path: Sequence[Key]) -> str:
    """`environments.production.rules[0].when.operator`"""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def show(value: Any, limit: int = 60) -> str:
    """A short, YAML-flavoured rendering of a value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(word: Any, choices: Iterable[Any]) -> str | None:
    """The closest choice, or the only one that `word` abbreviates (prod → production)."""
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    text = str(word).lower()
    starts = [n for n in names if text and n.lower().startswith(text)]
    return starts[0] if len(starts) == 1 else None


def _choices_hint(word: Any, choices: Sequence[Any], what: str) -> str:
    """"; did you mean 'x'? (known operators: a, b, c)" """
    close = did_you_mean(word, choices)
    listed = ", ".join(str(c) for c in choices)
    return (f"; did you mean '{close}'?" if close else "") + f" ({what}: {listed})"


_PATTERN_HINTS = {
    model.KEY_PATTERN: "use 1 to 64 lower-case letters, digits, '_', '.' or '-', starting with a letter or "
    "digit",
    model.DURATION_PATTERN: "use a duration such as 90m, 2h, 1d or 1h30m",
    r"^https?://": "use an http:// or https:// URL",
    model.URL_WITHOUT_PASSWORD: "use an http:// or https:// URL without a password in it; put credentials in "
    "environment variables (headers_from_env, token_env)",
    model.ENV_NAME_PATTERN: "name an environment variable (letters, digits and '_'): the value itself must "
    "never be in the repository",
    r"^[A-Za-z0-9_.-]+$": "use letters, digits, '_', '.' or '-'",
}

_SECRET_PATTERNS = frozenset({model.URL_WITHOUT_PASSWORD, model.ENV_NAME_PATTERN})

_EXPECTED = {
    "model_type": "a mapping (`key: value` lines)",
    "model_attributes_type": "a mapping (`key: value` lines)",
    "dict_type": "a mapping (`key: value` lines)",
    "list_type": "a list",
    "string_type": "text",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "datetime_type": "a date and time such as 2026-12-01T09:00:00Z",
    "datetime_parsing": "a date and time such as 2026-12-01T09:00:00Z",
    "datetime_from_date_parsing": "a date and time such as 2026-12-01T09:00:00Z",
}


def _data_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _describe_member(tag: str, path: Path) -> str:
    if tag.startswith("literal["):
        names = re.findall(r"'([^']*)'", tag)
        return f"one of {', '.join(names)}" if names else tag
    if tag == "constrained-int" and len(path) >= 2 and path[-2] == "stages":
        return "a percentage in (0, 100]"
    return {"str": "text", "list[str]": "a list of text", "int": "a whole number",
            "constrained-int": "a whole number"}.get(tag, tag)


def _message(err: ErrorDetails, where: _Resolved) -> tuple[str, str]:
    """(message without the path prefix, title) for one pydantic error."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    path = where.path
    if kind == "missing":
        return f"missing required field '{path[-1]}'", "missing-field"
    if kind == "literal_error":
        allowed = list(get_args(_unwrap(where.annotation)[0]))
        allowed = allowed or re.findall(r"'([^']*)'", ctx.get("expected", ""))
        if path and path[-1] == "operator":
            hint = _choices_hint(value, allowed, "known operators")
            return f"unknown operator {show(value)}{hint}", "unknown-operator"
        return f"{show(value)} is not allowed" + _choices_hint(value, allowed, "allowed"), "invalid-value"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", ctx.get("expected_tags", ""))
        field = ctx.get("discriminator", "").strip("'")
        hint = _choices_hint(ctx.get("tag"), tags, "known")
        return f"unknown {field} {show(ctx.get('tag'))}{hint}", "invalid-value"
    if kind == "union_tag_not_found":
        return f"missing required field {ctx.get('discriminator', '')}", "missing-field"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        hint = _PATTERN_HINTS.get(pattern, f"it must match {pattern}")
        if pattern in _SECRET_PATTERNS:  # the value may be a secret: never echo it into logs or PR comments
            return f"not valid: {hint}", "inline-credential"
        return f"{show(value)} is not valid: {hint}", "invalid-value"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])), "invalid-value"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return "must not be empty", "invalid-value"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {show(value)}", "wrong-type"
    return f"{err['msg']}, got {show(value)}", "invalid-value"


def _real_path(data: Any, path: Path) -> Path:
    """pydantic writes the key `true` (YAML `on:`) as 1 in locations; put back the key the data holds."""
    out: list[Key] = []
    for part in path:
        if isinstance(data, dict) and part not in data.keys() - {True, False} and any(
            k == part and k is not part for k in data if isinstance(k, bool)
        ):
            part = next(k for k in data if isinstance(k, bool) and k == part)
        out.append(part)
        data = _data_at(data, (part,))
    return tuple(out)


def model_problems(error: ValidationError, cls: type[BaseModel], doc: Document) -> list[Problem]:
    """Readable problems, one per distinct place, from a pydantic error of `cls` over `doc.data`."""
    grouped: dict[Path, list[tuple[ErrorDetails, _Resolved]]] = {}
    for err in error.errors(include_url=False):
        where = resolve_loc(cls, err["loc"])
        where = _Resolved(_real_path(doc.data, where.path), where.annotation, where.tagged_at, where.tag,
                          where.key_error)
        key = where.path[: where.tagged_at] if where.tagged_at is not None else where.path
        grouped.setdefault(key, []).append((err, where))
    # A misspelt required field (`defualt_variant`) is one mistake: its "did you mean" says it all, so the
    # "missing required field" of the field it names is not reported as well.
    meant: set[Path] = set()
    for errs in grouped.values():
        err, where = errs[0]
        if err["type"] == "extra_forbidden" and where.path:
            parent, _ = _unwrap(resolve_loc(cls, err["loc"][:-1]).annotation)
            close = did_you_mean(where.path[-1], field_names(parent)) if _is_model(parent) else None
            if close is not None:
                meant.add((*where.path[:-1], close))
    problems: list[Problem] = []
    misplaced: dict[Path, str] = {}  # `rollout:` written at the level of environment names, ...
    for key in grouped:
        for depth in range(1, len(key) + 1):
            hint = _misplaced(cls, key[:depth])
            if hint is not None:
                misplaced.setdefault(key[:depth], hint)
                break
    for at, hint in misplaced.items():
        line, col = doc.position(at)
        problems.append(Problem(doc.file, line, col, f"{dotted(at)}: {hint}", "error", "misplaced-field"))
    for key, errs in grouped.items():
        err, where = errs[0]
        path, prefix = where.path, where.path
        if err["type"] == "missing" and path in meant:
            continue
        if any(key[: len(at)] == at for at in misplaced):
            continue
        if where.tagged_at is not None and len(errs) > 1:  # every member of a smart union failed
            members = dict.fromkeys(_describe_member(w.tag or "", key) for _, w in errs)
            got = show(_data_at(doc.data, key))
            message, title = f"expected {' or '.join(members)}, got {got}", "wrong-type"
            path = prefix = key
        elif where.key_error or err["type"] == "invalid_key":  # `True:` or `1:` as a name, in a dict or model
            message, title = f"the key {show(err.get('input'))} must be text; quote it", "wrong-type"
            prefix = path[:-1]
        elif err["type"] == "extra_forbidden":
            parent, _ = _unwrap(resolve_loc(cls, err["loc"][:-1]).annotation)
            message, title = _unknown_field(path[-1], parent if _is_model(parent) else None)
            prefix = path[:-1]
        else:
            message, title = _message(err, where)
            if err["type"] == "missing":
                prefix = path[:-1]
        line, col = doc.position(path)
        text = f"{dotted(prefix)}: {message}" if prefix else message
        problems.append(Problem(doc.file, line, col, text, "error", title))
    return problems


# --- one run shows every problem: semantic checks of a file with structural errors --------------------

# Checks whose verdict depends on a top-level field beyond the value they point at.
_DEPENDS: dict[str, tuple[str, ...]] = {
    "unknown-variant": ("variants",), "variant-type": ("type", "variants"), "schema-not-object": ("type",),
    "schema-violation": ("schema", "variants", "type"), "unknown-schema": ("schema",),
    "key-mismatch": ("key",), "name-mismatch": ("name",),
    "unknown-workflow": ("workflows",), "unknown-role": ("roles", "workflows"),
    "unknown-step": ("workflows",), "step-cycle": ("workflows",), "duplicate-step": ("workflows",),
    "unknown-value": ("environments",),
}
_MAX_REPAIRS = 12  # rounds of pruning; each round removes every value pydantic rejected


class Salvage:
    """What was removed from a file's data to make it pass its model, in the file's own coordinates, so
    that the semantic checks of the repaired copy are reported where they belong, and only when sound."""

    def __init__(self) -> None:
        self.pruned: list[Path] = []  # removed or replaced values (original paths)
        self.removed: dict[Path, list[int]] = {}  # list (original path) → removed indexes, ascending

    def original(self, path: Path) -> Path:
        out: list[Key] = []
        for part in path:
            gone = self.removed.get(tuple(out))
            if gone and isinstance(part, int) and not isinstance(part, bool):
                for index in gone:
                    if index <= part:
                        part += 1
            out.append(part)
        return tuple(out)

    def sound(self, path: Path, title: str) -> bool:
        """A check at `path` (original) neither looked at a removed value nor depends on one."""
        needs = _DEPENDS.get(title, ())
        return not any(path[: len(p)] == p or (p[:1] and p[0] in needs) for p in self.pruned)


def _thaw(value: Any) -> Any:
    """A private copy in which aliases are separate objects (removing from one must not remove from all)."""
    if isinstance(value, dict):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_thaw(v) for v in value]
    return value


def _fill(cls: type[BaseModel], field: Key, data: dict[Any, Any], path: str) -> Any:
    """A stand-in for a missing required top-level field, when the other checks can run without it."""
    variants = data.get("variants")
    names = [k for k in variants if isinstance(k, str)] if isinstance(variants, dict) else []
    if (cls is Flag and field == "key") or (cls is SchemaDoc and field == "name"):
        return _stem(path)
    if cls is Flag and field == "default_variant" and names:
        return names[0]
    if cls is Flag and field == "type" and names:
        first = variants[names[0]]  # type: ignore[index]
        return ("boolean" if isinstance(first, bool) else "string" if isinstance(first, str)
                else "object" if isinstance(first, dict) else "number")
    if cls is SchemaDoc and field == "version":
        return 1
    return None


def salvage(cls: type[M], doc: Document, error: ValidationError, path: str) -> tuple[M, Salvage] | None:
    """Remove from a copy of `doc.data` every value the model rejects (the enclosing list or optional
    field when that is what it takes) until the rest passes; None when nothing useful is left."""
    data = _thaw(doc.data)
    if not isinstance(data, dict):
        return None
    fix = Salvage()
    for _ in range(_MAX_REPAIRS):
        targets: dict[Path, Path] = {}  # current path → original path
        for err in error.errors(include_url=False):
            where = resolve_loc(cls, err["loc"])
            at = _real_path(data, where.path if where.tagged_at is None else where.path[: where.tagged_at])
            if err["type"] == "missing":
                if len(at) == 1:  # a required top-level field: a stand-in, or nothing can be checked
                    stand_in = _fill(cls, at[0], data, path)
                    if stand_in is None:
                        return None
                    data[at[0]] = stand_in
                    fix.pruned.append(at)
                    continue
                at = at[:-1]  # the object that lacks it goes
            if "stages" in at:  # one stage out of a list changes the others' meaning: drop the list
                at = at[: at.index("stages") + 1]
            if not at:
                return None
            targets[at] = fix.original(at)
        cut: list[tuple[Any, Key]] = []
        for at in targets:
            if any(other != at and at[: len(other)] == other for other in targets):
                continue  # inside another value that goes
            parent = _data_at(data, at[:-1]) if len(at) > 1 else data
            if isinstance(parent, dict | list):
                cut.append((parent, at[-1]))
            original = targets[at]
            fix.pruned.append(original)
            if isinstance(parent, list):
                fix.removed.setdefault(original[:-1], []).append(original[-1])  # type: ignore[arg-type]
        for parent, key in sorted(cut, key=lambda c: -c[1] if isinstance(c[1], int) else 0):
            if isinstance(parent, dict):
                parent.pop(key, None)
            elif isinstance(key, int) and 0 <= key < len(parent):
                del parent[key]
        for indexes in fix.removed.values():
            indexes.sort()
        try:
            return cls.model_validate(data), fix
        except ValidationError as e:
            error = e
    return None


def salvaged_problems(doc: Document, path: str, policy: Policy | None, schemas: Mapping[str, SchemaDoc],
                      cls: type[BaseModel] = Flag) -> list[Problem]:
    """The semantic problems of a flag (schema, policy) file that failed its model, found on a repaired copy:
    a typo in `stage_delay` must not hide stages that decrease (one run shows every independent problem)."""
    try:
        cls.model_validate(doc.data)
        return []
    except ValidationError as e:
        repaired = salvage(cls, doc, e, path)
    if repaired is None:
        return []
    model, fix = repaired
    if isinstance(model, Flag):
        return check_flag(model, path, policy, schemas, doc, fix)
    if isinstance(model, SchemaDoc):
        return check_schema_doc(model, path, doc, fix)
    if isinstance(model, Policy):
        return check_policy(model, path, doc, fix)
    return []


def _misplaced(cls: type[BaseModel], path: Path) -> str | None:
    """A hint when the key at `path` is a field name one level off: `rollout:` among the environments
    (indented too little), or `rollout:` among a flag's own fields (not under an environment)."""
    if not path or not isinstance(path[-1], str):
        return None
    name = path[-1]
    holder, _ = _unwrap(resolve_loc(cls, path[:-1]).annotation) if path[:-1] else (cls, None)
    if get_origin(holder) is dict and len(path) >= 2:
        inner, _ = _unwrap(get_args(holder)[1])
        if _is_model(inner) and name in field_names(inner):
            noun = str(path[-2]).rstrip("s")
            article = "an" if noun[:1] in "aeiou" else "a"
            return f"`{name}` is not {article} {noun}: indent it under one (it is a field of each {noun})"
    if _is_model(holder) and name not in field_names(holder):
        for field, info in holder.model_fields.items():
            tp, _ = _unwrap(info.annotation)
            entry = _unwrap(get_args(tp)[1])[0] if get_origin(tp) is dict else None
            if entry is not None and _is_model(entry) and name in field_names(entry):
                where = info.alias or field
                return f"`{name}` belongs to each entry of `{where}`: indent it under one of them"
    return None


def _unknown_field(name: Key, parent: type[BaseModel] | None) -> tuple[str, str]:
    allowed = field_names(parent) if parent is not None else []
    close = did_you_mean(name, allowed) if allowed else None
    listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
    hint = f"; did you mean '{close}'?" if close else listed
    return f"unknown field '{name}'{hint}", "unknown-field"


# --- semantic checks: flags -------------------------------------------------------------------------


_MAX_MESSAGE = 500


class _Report:
    """Collects problems for one file, placing each by its data path when the document is known."""

    def __init__(self, file: str, doc: Document | None, salvage: Salvage | None = None) -> None:
        self.file, self.doc, self.salvage = file, doc, salvage
        self.problems: list[Problem] = []

    def add(self, path: Path, message: str, title: str, severity: Severity = "error") -> None:
        if self.salvage is not None:  # checks of a repaired copy: only what the repair did not touch
            path = self.salvage.original(path)
            if not self.salvage.sound(path, title):
                return
        line, col = self.doc.position(path) if self.doc is not None else (None, None)
        if len(message) > _MAX_MESSAGE:  # jsonschema's messages quote the value, which may be megabytes
            message = message[: _MAX_MESSAGE - 1] + "…"
        prefix = dotted(path)
        self.problems.append(Problem(self.file, line, col, f"{prefix}: {message}" if prefix else message,
                                     severity, title))

_TYPE_NAMES: dict[type, str] = {bool: "a boolean", str: "text", int: "a number", float: "a number",
                                dict: "a mapping", list: "a list", type(None): "null"}
# What flagd's sem_ver accepts (it pads `1.2` to 1.2.0 and strips a leading `v`).
_SEMVER = re.compile(r"^[vV]?\d+(\.\d+){0,2}([-+][0-9A-Za-z.+-]+)?$")
_NUMERIC_OPERATORS = frozenset({"greater_than", "greater_or_equal", "less_than", "less_or_equal"})
_TEXT_OPERATORS = frozenset({"contains", "starts_with", "ends_with"})
_LIST_OPERATORS = frozenset({"in", "not_in"})
_MAX_SAFE_INTEGER = 2**53  # the largest integer that a 64-bit float (JavaScript, Go's float64) holds exactly


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _has_type(value: Any, flag_type: str) -> bool:
    if flag_type == "boolean":
        return isinstance(value, bool)
    if flag_type == "string":
        return isinstance(value, str)
    if flag_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, dict)


def _non_json(value: Any, path: Path) -> tuple[Path, Any] | None:
    """The first value inside `value` that JSON (and so flagd) cannot hold: dates, NaN, non-text keys."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return (*path, k), k
            found = _non_json(v, (*path, k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_json(v, (*path, i))
            if found:
                return found
    elif _beyond_double(value) or not isinstance(value, str | int | float | bool | None):
        return path, value
    return None


def _beyond_double(value: Any) -> bool:
    """NaN, infinity, or an integer outside what an IEEE double holds (compared exactly, never converted)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max


def _json_problem(report: _Report, value: Any, path: Path) -> None:
    found = _non_json(value, path)
    if found is not None:
        where, bad = found
        if isinstance(bad, float):
            report.add(where, f"{bad} is not a finite number, which JSON cannot hold", "not-json")
        elif isinstance(bad, int) and not isinstance(bad, bool):
            report.add(where, f"{show(bad)} is too large for a 64-bit float, which flagd and JSON readers "
                       "use", "number-too-large")
        else:
            what = {"datetime": "a date and time", "date": "a date"}.get(type(bad).__name__, _type_name(bad))
            report.add(where, f"{bad} is read as {what} (YAML), which JSON cannot hold; quote it to keep it "
                       "as text", "not-json")


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


def check_flag(flag: Flag, path: str, policy: Policy | None, schemas: Mapping[str, SchemaDoc],
               doc: Document | None = None, salvage: Salvage | None = None) -> list[Problem]:
    """Semantic checks of one flag: key, variant types and references, schema values, stages, environments.

    `schemas` maps schema names to documents; a schema that is not a valid JSON Schema is reported on its
    own file (`read_schema`), so values are not checked against it here. `salvage`: `flag` is a repaired
    copy of a file with structural errors (see `salvaged_problems`).
    """
    report = _Report(path, doc, salvage)
    stem = _stem(path)
    if flag.key != stem:
        report.add(("key",), f"the key {flag.key!r} differs from the file name; rename the file to "
                   f"{flag.key}{posixpath.splitext(path)[1]} or set key: {stem}", "key-mismatch")
    _check_variants(report, flag, policy, schemas)
    variants = list(flag.variants)

    def known(variant: str, where: Path) -> None:
        if variant not in flag.variants:
            hint = _choices_hint(variant, variants, "variants")
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
            hint = _choices_hint(env, declared, f"declared in {model.POLICY_PATH}")
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
    report: _Report, flag: Flag, policy: Policy | None, schemas: Mapping[str, SchemaDoc]
) -> None:
    for name, value in flag.variants.items():
        where: Path = ("variants", name)
        if not _has_type(value, flag.type):
            quote = flag.type == "string" and not isinstance(value, dict | list)
            hint = "; quote it to make it text" if quote else ""
            report.add(where, f"{show(value)} is {_type_name(value)}, but the flag's type is {flag.type}"
                       f"{hint}", "variant-type")
        elif flag.type == "number" and _beyond_double(value):
            report.add(where, f"{show(value)} is not a number a 64-bit float can hold (flagd and JSON "
                       "readers use those)", "number-too-large")
        elif flag.type == "number" and isinstance(value, int) and abs(value) > _MAX_SAFE_INTEGER:
            report.add(where, f"{show(value)} is beyond ±2^53: flagd and most SDKs hold numbers as 64-bit "
                       "floats, so applications would get a rounded value", "unsafe-number", "warning")
        elif flag.type == "object":
            _json_problem(report, value, where)
    if flag.schema_ref is None:
        return
    if flag.type != "object":
        report.add(("schema",), f"only object flags take a schema; this flag's type is {flag.type}",
                   "schema-not-object")
        return
    schema = schemas.get(flag.schema_ref)
    if schema is None:
        folder = _schemas_dir(policy)
        report.add(("schema",), f"no schema {flag.schema_ref!r}: expected {folder}/{flag.schema_ref}.yaml"
                   + (_choices_hint(flag.schema_ref, sorted(schemas), "schemas") if schemas else ""),
                   "unknown-schema")
        return
    validator = schema_validator(schema)
    if validator is None:
        return
    for name, value in flag.variants.items():
        if not isinstance(value, dict):
            continue
        try:
            if id(schema) in _costly:
                raise safe_schema.SchemaTooCostly
            errors = safe_schema.errors(validator, value)
        except Unresolvable as e:
            report.add(("schema",), f"cannot check values against schema {schema.name!r}: unresolvable "
                       f"reference {e}", "schema-ref")
            return
        except safe_schema.SchemaTooCostly:
            _costly.add(id(schema))
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


def _check_when(report: _Report, when: Any, path: Path) -> None:
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
                _json_problem(report, v, at)


def _check_stages(report: _Report, stages: list[int], path: Path) -> None:
    for i in range(1, len(stages)):
        if stages[i] <= stages[i - 1]:
            report.add((*path, i), f"stages must strictly increase: {stages[i]}% comes after "
                       f"{stages[i - 1]}%", "rollout-stages")
    if stages and stages[-1] != 100:
        report.add((*path, len(stages) - 1), f"the last stage must be 100 (full); it is {stages[-1]}",
                   "rollout-stages")


# --- semantic checks: schemas and the policy --------------------------------------------------------


def check_schema_doc(schema: SchemaDoc, path: str, doc: Document | None = None,
                     salvage: Salvage | None = None) -> list[Problem]:
    """The name equals the file's stem and `schema` is a valid JSON Schema (every error, with its line)."""
    report = _Report(path, doc, salvage)
    if schema.name != _stem(path):
        report.add(("name",), f"the name {schema.name!r} differs from the file name; rename the file to "
                   f"{schema.name}{posixpath.splitext(path)[1]} or set name: {_stem(path)}", "name-mismatch")
    declared = schema.json_schema.get("$schema")
    if declared is not None and str(declared).rstrip("#") not in _DRAFTS:
        report.add(("schema", "$schema"), f"unknown JSON Schema dialect {show(declared)}; it is checked as "
                   f"draft 2020-12 ({_DRAFT_2020_12})", "unknown-dialect", "warning")
    examined = _examine(schema)
    for where, message, title in examined.problems:
        report.add(("schema", *where), message, title)
    if not examined.problems:
        _json_problem(report, schema.json_schema, ("schema",))
    return report.problems


_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_DRAFTS = {str(cls.META_SCHEMA.get("$id") or cls.META_SCHEMA.get("id")).rstrip("#")
           for cls in (Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator,
                       Draft202012Validator)}


def _validator_class(schema: Mapping[str, Any]) -> type[Validator]:
    """The validator of the draft that `$schema` names, or draft 2020-12 (also for dialects we do not know,
    which `validator_for` would accept with a DeprecationWarning)."""
    declared = schema.get("$schema")
    if declared is None or str(declared).rstrip("#") not in _DRAFTS:
        return Draft202012Validator
    return validator_for(schema, default=Draft202012Validator)


def _first_cause(err: SchemaValidationError) -> SchemaValidationError:
    """For `anyOf` failures, the first alternative's reason ("'objekt' is not one of [...]") says more than
    "is not valid under any of the given schemas"."""
    while err.context:
        err = min(err.context, key=lambda e: -len(e.absolute_path))
    return err


def _match_values(match: Match, path: Path) -> Iterable[tuple[str, Any, Path]]:
    """(field, value, path) for every set `kind`/`change_type`/`environment` in a condition tree."""
    for field in ("kind", "change_type", "environment"):
        raw = getattr(match, field)
        if isinstance(raw, str):
            yield field, raw, (*path, field)
        elif raw is not None:
            yield from ((field, v, (*path, field, i)) for i, v in enumerate(raw))
    for combinator in ("any", "all"):
        for i, sub in enumerate(getattr(match, combinator) or []):
            yield from _match_values(sub, (*path, combinator, i))
    if match.not_ is not None:
        yield from _match_values(match.not_, (*path, "not"))


def check_policy(policy: Policy, path: str = model.POLICY_PATH, doc: Document | None = None,
                 salvage: Salvage | None = None) -> list[Problem]:
    """Cross-references inside the policy: workflows, roles, step ids and order, known match values."""
    report = _Report(path, doc, salvage)
    flags_dir = policy.flags_dir.strip("/")
    if flags_dir in ("", ".") or posixpath.isabs(policy.flags_dir) or ".." in flags_dir.split("/"):
        report.add(("flags_dir",), f"{policy.flags_dir!r} must name a folder inside the repository, e.g. "
                   "flags", "invalid-value")
    seen_envs: set[str] = set()
    for i, env in enumerate(policy.environments):
        if env in seen_envs:
            report.add(("environments", i), f"environment {env!r} is listed twice", "duplicate-environment")
        seen_envs.add(env)
    for role, members in policy.roles.items():
        if not members:
            report.add(("roles", role), "the role has no members, so steps that use it can never be approved",
                       "empty-role", "warning")
    known = {
        "kind": list(get_args(model.ChangeKind)),
        "change_type": list(get_args(model.ChangeType)),
        "environment": list(policy.environments),
    }

    def check_match(match: Match, where: Path) -> None:
        for field, value, at in _match_values(match, where):
            if value not in known[field]:
                report.add(at, f"unknown {field} {value!r}" + _choices_hint(value, known[field], "known"),
                           "unknown-value")

    workflows = list(policy.workflows)
    for i, rule in enumerate(policy.rules):
        if rule.workflow not in policy.workflows:
            report.add(("rules", i, "workflow"), f"no workflow {rule.workflow!r}"
                       + _choices_hint(rule.workflow, workflows, "workflows"), "unknown-workflow")
        check_match(rule.match, ("rules", i, "match"))
    roles = [*policy.roles, model.BUILTIN_ROLE_CODEOWNER]
    for name, workflow in policy.workflows.items():
        base: Path = ("workflows", name, "steps")
        index: dict[str, int] = {}
        for j, step in enumerate(workflow.steps):
            if step.id in index:
                report.add((*base, j, "id"), f"step id {step.id!r} is already used by step "
                           f"{index[step.id] + 1}", "duplicate-step")
            index.setdefault(step.id, j)
            if step.role not in roles:
                hint = _choices_hint(step.role, roles, "roles")
                report.add((*base, j, "role"), f"no role {step.role!r}{hint}", "unknown-role")
            if step.when is not None:
                check_match(step.when, (*base, j, "when"))
        for j, step in enumerate(workflow.steps):
            for k, after in enumerate(step.after):
                if after == step.id:
                    report.add((*base, j, "after", k), "a step cannot come after itself", "step-cycle")
                elif after not in index:
                    report.add((*base, j, "after", k), f"no step {after!r} in this workflow"
                               + _choices_hint(after, list(index), "steps"), "unknown-step")
        graph: dict[str, list[str]] = {}
        for step in workflow.steps:
            graph.setdefault(step.id, []).extend(a for a in step.after if a in index and a != step.id)
        cycle = _find_cycle(graph)
        if cycle:
            report.add((*base, index[cycle[0]], "after"), "steps wait for each other in a cycle: "
                       + " → ".join([*cycle, cycle[0]]), "step-cycle")
    return report.problems


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle of the `after` graph (as step ids in order), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


# --- the whole tree ---------------------------------------------------------------------------------


def duplicate_keys(paths: Iterable[str]) -> list[Problem]:
    """Flag keys equal file stems, so two flag files with the same stem in different folders clash."""
    by_stem: dict[str, list[str]] = {}
    for path in paths:
        by_stem.setdefault(_stem(path), []).append(path)
    problems = []
    for stem, files in by_stem.items():
        if len(files) < 2:
            continue
        for path in files:
            others = ", ".join(f for f in files if f != path)
            problems.append(Problem(path, None, None, f"the flag key {stem!r} is also used by {others}; keys "
                                    "must be unique across the flags folder", "error", "duplicate-flag-key"))
    return problems


_RESERVED = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                       *(f"{d}{n}" for d in ("com", "lpt") for n in "123456789¹²³")})
_UNPORTABLE = re.compile(r'[<>:"\\|?*\x00-\x1f]')


def _name_problem(name: str) -> str | None:
    """Why Windows (or macOS's default file system) cannot hold a file or folder called `name`."""
    if name.split(".", 1)[0].rstrip(" ").lower() in _RESERVED:
        return f"{name!r} is a reserved device name on Windows (with any extension)"
    if name.endswith((".", " ")):
        return f"{name!r} ends in a {'dot' if name.endswith('.') else 'space'}, which Windows drops"
    bad = _UNPORTABLE.search(name)
    if bad is not None:
        return f"{name!r} holds {bad.group()!r}, which Windows does not allow in a file name"
    return None


# One pass over a whole path finds any part `_name_problem` would refuse (the hot path: 10,000 clean paths).
_SUSPECT = re.compile(r'(?:^|/)(?:con|prn|aux|nul|conin\$|conout\$|(?:com|lpt)[1-9¹²³]) *(?:\.[^/]*)?(?:/|$)'
                      r'|[. ](?:/|$)|[<>:"\\|?*\x00-\x1f]', re.IGNORECASE)


def path_problems(paths: Iterable[str], wanted: set[str] | None = None) -> list[Problem]:
    """Paths some checkouts cannot hold: reserved or unportable names, and two paths that differ only by
    case (a case-insensitive checkout keeps one of them). Reported on the files in `wanted` (all: None)."""
    problems: list[Problem] = []
    listed = list(paths)
    folders: set[str] = set()
    for path in listed:
        if (wanted is None or path in wanted) and _SUSPECT.search(path):
            reasons = (w for w in map(_name_problem, path.split("/")) if w)
            why = next(reasons, f"{path!r} holds a reserved name")
            problems.append(Problem(path, None, None, f"{why}: some checkouts cannot hold this path", "error",
                                    "unportable-path"))
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    by_folded: dict[str, list[str]] = {}
    for name in (*listed, *folders):
        by_folded.setdefault(name.casefold(), []).append(name)
    clashes = {folded: sorted(spelt) for folded, spelt in by_folded.items() if len(spelt) > 1}
    for path in listed if clashes else ():
        if wanted is not None and path not in wanted:
            continue
        parts = path.split("/")
        for i in range(len(parts)):
            mine = "/".join(parts[: i + 1])
            spelt = clashes.get(mine.casefold())
            if spelt:
                others = ", ".join(s for s in spelt if s != mine)
                message = (f"{mine} differs from {others} only by case; a case-insensitive checkout "
                           "(Windows, macOS) keeps only one of them")
                problems.append(Problem(path, None, None, message, "error", "case-clash"))
                break
    return problems


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of files are loaded. Loading makes no reference
    cycles, but it allocates millions of short-lived objects while the flags already read stay alive, and
    the collector's passes over those took half the run time (benchmarks/validate.py)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _sort_key(p: Problem) -> tuple[str, int, int, str]:
    return (p.file, p.line or 0, p.col or 0, p.message)


@runtime_checkable
class IndexedTree(Protocol):
    """A tree that finds files by name or by content without listing every file in Python (`git.GitTree`),
    so that validating a few files of a large repository costs in proportion to those files."""

    def paths(self, prefix: str = "") -> Iterator[str]: ...

    def read(self, path: str) -> bytes | None: ...

    def files_named(self, names: Iterable[str], prefix: str) -> set[str]: ...

    def paths_containing(self, needles: Sequence[str], prefix: str) -> set[str]: ...


def schema_needles(names: Iterable[str]) -> list[str]:
    """Texts of which a flag file using one of the schemas `names` holds at least one: the name itself, or
    a backslash (a double-quoted YAML escape can spell a name without its letters)."""
    return sorted({*names, "\\"})


def _listing(tree: Tree, policy: Policy | None, wanted: set[str] | None) -> list[str]:
    """The paths under the flags folder that a run needs: all of them, or, for a partial run on an
    `IndexedTree`, the schemas folder's files and the flag files sharing a requested file's name (its key)."""
    flags_dir = _flags_dir(policy)
    if wanted is None or not isinstance(tree, IndexedTree):
        return list(tree.paths(flags_dir + "/"))
    names = {_stem(p) + suffix for p in wanted if is_flag_path(p, policy) for suffix in YAML_SUFFIXES}
    found = tree.files_named(names, flags_dir + "/") | set(tree.paths(_schemas_dir(policy) + "/"))
    return sorted(found)


@dataclass(frozen=True)
class FlagRun:
    """What checking any one flag file needs besides the file: the same for every file of a run, so that
    worker processes (`parallel`) get it once."""

    policy: Policy | None
    schemas: Mapping[str, SchemaDoc]  # every valid schema of the tree, by name
    wanted: frozenset[str] | None  # the files asked for (None: every file)
    changed_schemas: frozenset[str]  # a flag using one of these is reported even when not asked for
    clashing: frozenset[str]  # files whose key another file shares: their `key:` position is wanted
    keep_flags: bool = False  # return the parsed models (the diff needs them; the CLI does not)


@dataclass
class FlagChunk:
    """What checking some flag files found: their problems and the few facts that cross-file checks need
    (never the documents, and the models only when asked for)."""

    problems: list[Problem] = dc_field(default_factory=list)
    unreported: list[str] = dc_field(default_factory=list)  # visited only to learn their schema
    refs: set[str] = dc_field(default_factory=set)  # schemas that reported flags use
    key_positions: dict[str, tuple[int, int]] = dc_field(default_factory=dict)
    recheck: list[str] = dc_field(default_factory=list)  # unknown schema: checked again with the final set
    flags: list[tuple[str, Flag]] = dc_field(default_factory=list)  # (path, model) when `keep_flags`
    sizes: dict[str, int] = dc_field(default_factory=dict)  # bytes each flag takes in a flagd document


def check_flag_files(tree: Tree, paths: Iterable[str], run: FlagRun) -> FlagChunk:
    """Parse and check each flag file in turn, dropping its document before the next one is read."""
    out = FlagChunk()
    with _gc_paused():
        for path in paths:
            flag, doc, found = _parse(tree, path, Flag)
            if flag is not None and run.keep_flags:
                out.flags.append((path, flag))
            ref = flag.schema_ref if flag is not None else None
            asked = run.wanted is None or path in run.wanted
            if not (asked or (ref is not None and ref in run.changed_schemas)):
                out.unreported.append(path)
                continue
            if ref is not None:
                out.refs.add(ref)
            if flag is not None and run.wanted is not None and flag.type == "object" and ref is not None \
                    and ref not in run.schemas:
                # "no schema 'x'" lists the schemas of the run, which are known only once every requested
                # flag has named its own: checked again at the end (rare: a reference to a missing schema).
                out.recheck.append(path)
                continue
            out.problems += found
            if flag is not None:
                out.problems += check_flag(flag, path, run.policy, run.schemas, doc)
                out.sizes[path] = flag_json_size(flag, doc)
            elif doc is not None:  # one run shows every problem: the semantic checks of the sound parts
                out.problems += salvaged_problems(doc, path, run.policy, run.schemas)
            if doc is not None and path in run.clashing:
                out.key_positions[path] = doc.position(("key",))
    return out


def validate_tree(
    tree: Tree,
    policy: Policy | None,
    only: Iterable[str] | None = None,
    *,
    keep_flags: bool = True,
    jobs: int | None = 1,
) -> Validation:
    """Check the flags and schemas under the policy's flags folder (or only the files in `only`, plus the
    schemas they use and, for a schema in `only`, the flags that use it). Policy problems come from
    `read_policy`; a missing policy skips the environment checks and assumes the folder `flags`.

    `keep_flags=False` returns no models (`flags` is empty), so memory stays flat however many files there
    are. `jobs` > 1 (or None: one per core, for runs large enough to gain) checks the flag files in worker
    processes (`parallel`) when the tree is a directory and the models are not kept; the result is the
    same as with `jobs=1`."""
    flags_dir, schemas_dir = _flags_dir(policy), _schemas_dir(policy)
    every = _listing(tree, policy, None if only is None else set(only))
    flag_paths = [p for p in every if is_flag_path(p, policy)]
    schema_paths = [p for p in every if is_schema_path(p, policy)]
    problems: list[Problem] = []
    wanted: set[str] | None = None
    if only is not None:
        wanted = set(only)
        present = set(every)
        for path in sorted(wanted - present):
            if is_flag_path(path, policy) or is_schema_path(path, policy):
                problems.append(Problem(path, None, None, "no such file", "error", "not-found"))
    problems += path_problems(every, wanted)
    strays = [p for p in every if p.startswith(schemas_dir + "/") and p.endswith(YAML_SUFFIXES)
              and not is_schema_path(p, policy)]
    del every
    for path in strays:
        if wanted is None or path in wanted:
            message = f"not read: schema files live directly in {schemas_dir}/"
            problems.append(Problem(path, None, None, message, "warning", "misplaced-schema"))

    if wanted is None and isinstance(tree, DirTree):  # linked folders the listing did not enter
        for link in tree.outside_links:
            if link.startswith(flags_dir + "/"):
                message = "a symlink that leads outside the repository; the files in it are not read"
                problems.append(Problem(link, None, None, message, "error", "symlink-outside"))

    changed_schemas = {_stem(p) for p in schema_paths if wanted is None or p in wanted}

    # Schemas first (few), each parsed once; a partial run reports only the requested ones and those its
    # flags use, which are known once the flags are read.
    loaded: list[tuple[str, SchemaDoc | None, list[Problem]]] = []
    for path in schema_paths:
        schema, sdoc, found = _parse(tree, path, SchemaDoc)
        if schema is not None:
            found += check_schema_doc(schema, path, sdoc)
        elif sdoc is not None:
            found += salvaged_problems(sdoc, path, policy, {}, SchemaDoc)
        loaded.append((path, schema, found))
    every_schema: dict[str, SchemaDoc] = {}
    for path, schema, _ in loaded:
        if schema is not None:
            every_schema.setdefault(_stem(path), schema)

    # Then the flags, each parsed, checked and its document dropped at once: holding 10,000 documents with
    # their node graphs costs hundreds of MB. A requested schema may break any flag that uses it, and only
    # reading them all tells which do.
    duplicates = duplicate_keys(flag_paths)
    run = FlagRun(
        policy, every_schema, None if wanted is None else frozenset(wanted), frozenset(changed_schemas),
        frozenset(d.file for d in duplicates), keep_flags,
    )  # fmt: skip
    if wanted is not None and changed_schemas and isinstance(tree, IndexedTree):
        users = tree.paths_containing(schema_needles(changed_schemas), flags_dir + "/")
        visit = sorted(p for p in users | (wanted & set(flag_paths)) if is_flag_path(p, policy))
    else:
        visit = flag_paths if (wanted is None or changed_schemas) else [p for p in flag_paths if p in wanted]
    if not keep_flags and isinstance(tree, DirTree):
        from . import parallel  # only a large run pays for the pool

        chunk = parallel.check_flag_files_parallel(tree, visit, run, jobs)
    else:
        chunk = check_flag_files(tree, visit, run)

    needed = changed_schemas | chunk.refs
    schemas: dict[str, SchemaEntry] = {}
    checked: list[str] = []
    for path, schema, found in loaded:
        name = _stem(path)
        if name not in needed:
            continue
        if schema is not None:
            schemas.setdefault(name, SchemaEntry(path, schema))
        problems += found
        checked.append(path)
    if chunk.recheck:
        final = FlagRun(policy, {n: e.schema for n, e in schemas.items()}, None, run.changed_schemas,
                        run.clashing)
        again = check_flag_files(tree, chunk.recheck, final)
        chunk.problems += again.problems
        chunk.key_positions.update(again.key_positions)
    problems += chunk.problems
    unreported = set(chunk.unreported)
    checked += [p for p in visit if p not in unreported]
    flags: dict[str, FlagEntry] = {}
    for path, flag in chunk.flags:
        flags.setdefault(flag.key, FlagEntry(path, flag))

    too_large = document_size_problem(chunk.sizes) if wanted is None else None
    if too_large is not None:
        problems.append(too_large)
    for dup in duplicates:
        if wanted is None or dup.file in wanted:
            line, col = chunk.key_positions.get(dup.file, (None, None))
            problems.append(Problem(dup.file, line, col, dup.message, dup.severity, dup.title))
    return Validation(tuple(sorted(problems, key=_sort_key)), flags, schemas, policy, tuple(sorted(checked)))
