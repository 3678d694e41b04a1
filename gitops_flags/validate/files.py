"""Reading one file: load it (symlinks, size and YAML traps checked by the loader), parse it into its
model, and run its semantic checks, or those of a repaired copy when the model rejects it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pydantic import BaseModel, ValidationError

from .. import model
from ..loader import Document, load_bytes, load_path
from ..model import Flag, Policy, SchemaDoc
from ..problems import Problem, ProblemError
from ..tree import DirTree, Tree
from .flags import check_flag
from .model_errors import model_problems
from .policy import check_policy
from .report import sort_key
from .salvage import M, salvage
from .schemas import check_schema_doc


def load_file(tree: Tree, path: str) -> tuple[Document | None, list[Problem]]:
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


def parse_file(tree: Tree, path: str, cls: type[M]) -> tuple[M | None, Document | None, list[Problem]]:
    doc, problems = load_file(tree, path)
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
    flag, _, problems = parse_file(tree, path, Flag)
    return flag, problems


def read_schema(tree: Tree, path: str) -> tuple[SchemaDoc | None, list[Problem]]:
    """Load one schema file, check its structure, its name and that it holds a valid JSON Schema."""
    schema, doc, problems = parse_file(tree, path, SchemaDoc)
    if schema is not None:
        problems += check_schema_doc(schema, path, doc)
    return schema, problems


def read_policy(tree: Tree, path: str = model.POLICY_PATH) -> tuple[Policy | None, list[Problem]]:
    """Load the policy file and run its semantic checks. None when it is missing or structurally invalid."""
    policy, doc, problems = parse_file(tree, path, Policy)
    if doc is None and [p.title for p in problems] == ["not-found"]:
        return None, [Problem(path, None, None, "the policy file is missing; every flag repository needs one "
                              "(`gitops-flags init` writes a starter)", "error", "policy-missing")]
    if policy is not None:
        problems += check_policy(policy, path, doc)
    elif doc is not None:  # still exit 2, but with every independent problem at once
        problems += salvaged_problems(doc, path, None, {}, Policy)
    return policy, sorted(problems, key=sort_key)


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
