"""Checking a batch of flag files, one at a time, dropping each document before the next: the unit of
work `validate_tree` runs in this process and `parallel`'s workers run on slices."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field

from ..model import Flag, Policy, SchemaDoc
from ..problems import Problem
from ..tree import Tree
from .files import parse_file, salvaged_problems
from .flags import check_flag, flag_json_size


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
            flag, doc, found = parse_file(tree, path, Flag)
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
