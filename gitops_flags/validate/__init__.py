"""Validation of flag files, schema files and the policy: structure (the models) plus the semantic checks
that a schema cannot express, every finding a `Problem` with file, line and column. Everything here is pure
over a `Tree` (`parallel` forks workers over a directory, nothing more).

- `run`: `validate_tree`, which files a run reads and the cross-file checks, into one `Validation`;
  `flag_files` checks a batch of flag files, the unit that `parallel` spreads over the cores.
- `files`: reading one file (`read_flag`, `read_schema`, `read_policy`).
- `flags`, `schemas`, `policy`: the semantic checks of each kind of file; `json_values`: what JSON holds.
- `model_errors`: pydantic errors → readable problems; `salvage`: the semantic checks of a file that
  failed its model still run, on a repaired copy.
- `paths`: which file is what, and paths that some checkouts cannot hold; `report`: wording and placing.
"""

from .files import read_flag, read_policy, read_schema, salvaged_problems
from .flag_files import FlagChunk, FlagRun, check_flag_files
from .flags import MAX_DOCUMENT_JSON, MAX_FLAG_JSON, check_flag, document_size_problem, flag_json_size
from .model_errors import field_names, model_problems, resolve_loc
from .paths import (
    DEFAULT_FLAGS_DIR,
    YAML_SUFFIXES,
    duplicate_keys,
    is_flag_path,
    is_schema_path,
    path_problems,
)
from .policy import check_policy
from .report import did_you_mean, dotted, show
from .run import FlagEntry, IndexedTree, SchemaEntry, Validation, schema_needles, validate_tree
from .salvage import Salvage, salvage
from .schemas import check_schema_doc, schema_validator

__all__ = [
    "DEFAULT_FLAGS_DIR", "MAX_DOCUMENT_JSON", "MAX_FLAG_JSON", "YAML_SUFFIXES", "FlagChunk", "FlagEntry",
    "FlagRun", "IndexedTree", "Salvage", "SchemaEntry", "Validation", "check_flag", "check_flag_files",
    "check_policy", "check_schema_doc", "did_you_mean", "document_size_problem", "dotted", "duplicate_keys",
    "field_names", "flag_json_size", "is_flag_path", "is_schema_path", "model_problems", "path_problems",
    "read_flag", "read_policy", "read_schema", "resolve_loc", "salvage", "salvaged_problems",
    "schema_needles", "schema_validator", "show", "validate_tree",
]
