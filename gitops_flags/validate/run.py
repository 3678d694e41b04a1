"""Validating a tree: which files a run reads (all, or for a partial run the requested files, the schemas
they use and the flags using a requested schema), in what order, and the cross-file checks (duplicate
keys, unportable paths, the size of the flagd document), into one `Validation`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..loader import Document
from ..model import Flag, Policy, SchemaDoc
from ..problems import Problem
from ..tree import DirTree, Tree
from .files import parse_file, salvaged_problems
from .flag_files import FlagRun, check_flag_files
from .flags import document_size_problem
from .paths import (
    YAML_SUFFIXES,
    duplicate_keys,
    file_stem,
    flags_folder,
    is_flag_path,
    is_schema_path,
    path_problems,
    schemas_folder,
)
from .report import sort_key
from .schemas import check_schema_doc


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
    flags_dir = flags_folder(policy)
    if wanted is None or not isinstance(tree, IndexedTree):
        return list(tree.paths(flags_dir + "/"))
    names = {file_stem(p) + suffix for p in wanted if is_flag_path(p, policy) for suffix in YAML_SUFFIXES}
    found = tree.files_named(names, flags_dir + "/") | set(tree.paths(schemas_folder(policy) + "/"))
    return sorted(found)


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
    flags_dir, schemas_dir = flags_folder(policy), schemas_folder(policy)
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

    changed_schemas = {file_stem(p) for p in schema_paths if wanted is None or p in wanted}

    # Schemas first (few), each parsed once. Those reported whatever the flags say (all of them, or the
    # requested ones) are checked as JSON Schemas now, before any worker forks, so that the workers inherit
    # the examined validators. The others are reported only if a reported flag uses them, known once the
    # flags are read, and checked then (below): a plan that touches no object flag or schema loads no
    # jsonschema. `sdoc` is kept (for the lines) only for those.
    loaded: list[tuple[str, SchemaDoc | None, Document | None, list[Problem]]] = []
    for path in schema_paths:
        schema, sdoc, found = parse_file(tree, path, SchemaDoc)
        reported = wanted is None or path in wanted
        if schema is not None and reported:
            found += check_schema_doc(schema, path, sdoc)
        elif schema is None and sdoc is not None:
            found += salvaged_problems(sdoc, path, policy, {}, SchemaDoc)
        loaded.append((path, schema, None if reported else sdoc, found))
    every_schema: dict[str, SchemaDoc] = {}
    for path, schema, _, _ in loaded:
        if schema is not None:
            every_schema.setdefault(file_stem(path), schema)

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
    for path, schema, sdoc, found in loaded:
        name = file_stem(path)
        if name not in needed:
            continue
        if schema is not None:
            schemas.setdefault(name, SchemaEntry(path, schema))
            if wanted is not None and path not in wanted:  # not checked above
                found += check_schema_doc(schema, path, sdoc)
        problems += found
        checked.append(path)
    del loaded
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
    return Validation(tuple(sorted(problems, key=sort_key)), flags, schemas, policy, tuple(sorted(checked)))
