"""One run shows every problem: a file that fails its model is repaired (every rejected value removed,
a stand-in for a missing key) so that the semantic checks of the rest still run, and `Salvage` maps
their findings back to the file, dropping those that looked at or depend on a removed value."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ..loader import Document
from ..model import Flag, SchemaDoc
from .model_errors import data_at, real_path, resolve_loc
from .paths import file_stem
from .report import Key, Path

M = TypeVar("M", bound=BaseModel)


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
        return file_stem(path)
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
            at = real_path(data, where.path if where.tagged_at is None else where.path[: where.tagged_at])
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
            parent = data_at(data, at[:-1]) if len(at) > 1 else data
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
