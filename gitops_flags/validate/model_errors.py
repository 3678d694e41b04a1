"""pydantic errors → problems. An error's location (which may hold union tags such as `condition`/`all`
or `constrained-int`) is walked alongside the model's annotations, so we know which parts are data keys
(for the message and the line) and which model sits at a location (for "unknown field 'colour'; did you
mean 'color'?")."""

from __future__ import annotations

import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from .. import model
from ..loader import Document
from ..problems import Problem
from .report import Key, Path, choices_hint, did_you_mean, dotted, show


def unwrap(tp: Any) -> tuple[Any, str | None]:
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


def is_model(tp: Any) -> bool:
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
        if is_model(inner):
            if inner.__name__ == part:
                return inner
            if discriminator is not None and part in get_args(_field_annotation(inner, discriminator)):
                return inner
    return None


def _accepts(tp: Any, part: Key) -> bool:
    tp, _ = unwrap(tp)
    if is_model(tp):
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
        tp, discriminator = unwrap(tp)
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
            tp, _ = unwrap(takers[0])
        origin = get_origin(tp)
        if is_model(tp):
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


def data_at(data: Any, path: Path) -> Any:
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
        allowed = list(get_args(unwrap(where.annotation)[0]))
        allowed = allowed or re.findall(r"'([^']*)'", ctx.get("expected", ""))
        if path and path[-1] == "operator":
            hint = choices_hint(value, allowed, "known operators")
            return f"unknown operator {show(value)}{hint}", "unknown-operator"
        return f"{show(value)} is not allowed" + choices_hint(value, allowed, "allowed"), "invalid-value"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']*)'", ctx.get("expected_tags", ""))
        field = ctx.get("discriminator", "").strip("'")
        hint = choices_hint(ctx.get("tag"), tags, "known")
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


def real_path(data: Any, path: Path) -> Path:
    """pydantic writes the key `true` (YAML `on:`) as 1 in locations; put back the key the data holds."""
    out: list[Key] = []
    for part in path:
        if isinstance(data, dict) and part not in data.keys() - {True, False} and any(
            k == part and k is not part for k in data if isinstance(k, bool)
        ):
            part = next(k for k in data if isinstance(k, bool) and k == part)
        out.append(part)
        data = data_at(data, (part,))
    return tuple(out)


def model_problems(error: ValidationError, cls: type[BaseModel], doc: Document) -> list[Problem]:
    """Readable problems, one per distinct place, from a pydantic error of `cls` over `doc.data`."""
    grouped: dict[Path, list[tuple[ErrorDetails, _Resolved]]] = {}
    for err in error.errors(include_url=False):
        where = resolve_loc(cls, err["loc"])
        where = _Resolved(real_path(doc.data, where.path), where.annotation, where.tagged_at, where.tag,
                          where.key_error)
        key = where.path[: where.tagged_at] if where.tagged_at is not None else where.path
        grouped.setdefault(key, []).append((err, where))
    # A misspelt required field (`defualt_variant`) is one mistake: its "did you mean" says it all, so the
    # "missing required field" of the field it names is not reported as well.
    meant: set[Path] = set()
    for errs in grouped.values():
        err, where = errs[0]
        if err["type"] == "extra_forbidden" and where.path:
            parent, _ = unwrap(resolve_loc(cls, err["loc"][:-1]).annotation)
            close = did_you_mean(where.path[-1], field_names(parent)) if is_model(parent) else None
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
            got = show(data_at(doc.data, key))
            message, title = f"expected {' or '.join(members)}, got {got}", "wrong-type"
            path = prefix = key
        elif where.key_error or err["type"] == "invalid_key":  # `True:` or `1:` as a name, in a dict or model
            message, title = f"the key {show(err.get('input'))} must be text; quote it", "wrong-type"
            prefix = path[:-1]
        elif err["type"] == "extra_forbidden":
            parent, _ = unwrap(resolve_loc(cls, err["loc"][:-1]).annotation)
            message, title = _unknown_field(path[-1], parent if is_model(parent) else None)
            prefix = path[:-1]
        else:
            message, title = _message(err, where)
            if err["type"] == "missing":
                prefix = path[:-1]
        line, col = doc.position(path)
        text = f"{dotted(prefix)}: {message}" if prefix else message
        problems.append(Problem(doc.file, line, col, text, "error", title))
    return problems


def _misplaced(cls: type[BaseModel], path: Path) -> str | None:
    """A hint when the key at `path` is a field name one level off: `rollout:` among the environments
    (indented too little), or `rollout:` among a flag's own fields (not under an environment)."""
    if not path or not isinstance(path[-1], str):
        return None
    name = path[-1]
    holder, _ = unwrap(resolve_loc(cls, path[:-1]).annotation) if path[:-1] else (cls, None)
    if get_origin(holder) is dict and len(path) >= 2:
        inner, _ = unwrap(get_args(holder)[1])
        if is_model(inner) and name in field_names(inner):
            noun = str(path[-2]).rstrip("s")
            article = "an" if noun[:1] in "aeiou" else "a"
            return f"`{name}` is not {article} {noun}: indent it under one (it is a field of each {noun})"
    if is_model(holder) and name not in field_names(holder):
        for field, info in holder.model_fields.items():
            tp, _ = unwrap(info.annotation)
            entry = unwrap(get_args(tp)[1])[0] if get_origin(tp) is dict else None
            if entry is not None and is_model(entry) and name in field_names(entry):
                where = info.alias or field
                return f"`{name}` belongs to each entry of `{where}`: indent it under one of them"
    return None


def _unknown_field(name: Key, parent: type[BaseModel] | None) -> tuple[str, str]:
    allowed = field_names(parent) if parent is not None else []
    close = did_you_mean(name, allowed) if allowed else None
    listed = f" (allowed: {', '.join(allowed)})" if allowed else ""
    hint = f"; did you mean '{close}'?" if close else listed
    return f"unknown field '{name}'{hint}", "unknown-field"
