"""What `gitops-flags validate` and `--help` import, pinned: a new import on the start-up path is a
decision, not an accident (each costs every pre-commit run and every workflow step)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gitops_flags.commands import init

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from gitops_flags.cli import main
code = main(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""

# Modules only other commands need; the validator must not load them.
HEAVY = ("github", "requests", "urllib3", "httpx", "litestar", "litestar_flags", "redis", "sqlalchemy",
         "rich", "multiprocessing.pool", "gitops_flags.render", "gitops_flags.changes",
         "gitops_flags.schema_compat", "gitops_flags.result", "gitops_flags.approvals")


# jsonschema and what it brings (~45-75 ms of start-up): loaded only when there is a schema to evaluate.
SCHEMA_LIBRARIES = ("jsonschema", "jsonschema_specifications", "referencing", "attrs", "rpds",
                    "gitops_flags.safe_schema", "gitops_flags.schema_compat")


def imported(*args: str, cwd: Path = REPO, codes: tuple[int, ...] = (0,)) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True,
                         cwd=cwd)
    code, modules = json.loads(out.stdout.splitlines()[-1])
    assert code in codes, out.stderr
    return list(modules)


SCHEMA = "name: limits\nversion: 1\nschema:\n  type: object\n  properties: {limit: {type: integer}}\n"
OBJECT_FLAG = ("key: limits_flag\ndescription: An object flag\nowner: '@your-org/flag-owners'\ntype: object\n"
               "schema: limits\nvariants:\n  small: {limit: 10}\ndefault_variant: small\n"
               "environments:\n  staging: {enabled: true}\n  production: {enabled: true}\n")


def schema_less_repository(root: Path, schema_beside: bool = False) -> Path:
    """`gitops-flags init`'s files (one boolean flag; with `schema_beside` also a schema and an object flag
    using it), committed, then a commit turning the boolean flag off in production."""
    files = dict(init.plan_files())
    if schema_beside:
        files |= {"flags/schemas/limits.yaml": SCHEMA, "flags/limits_flag.yaml": OBJECT_FLAG}
    for dest, content in files.items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        (root / dest).write_text(content)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=root, check=True)
    flag = root / "flags" / "example_flag.yaml"
    text = flag.read_text()
    assert text.endswith("  production:\n    enabled: true\n")
    flag.write_text(text.replace("  production:\n    enabled: true\n", "  production:\n    enabled: false\n"))
    subprocess.run([*git, "commit", "-qam", "production off"], cwd=root, check=True)
    return root


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in names or m.split(".")[0] in names)


def ours(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "gitops_flags" or m.startswith("gitops_flags.")]


def test_validate_imports_only_what_validating_needs() -> None:
    modules = imported("validate", "-C", str(REPO))
    assert ours(modules) == [
        "gitops_flags", "gitops_flags.cli", "gitops_flags.commands",
        "gitops_flags.commands.options",  # -C DIR, shared by the commands (click only)
        "gitops_flags.commands.validate",
        "gitops_flags.egress",  # the gate rules: stdlib only (ipaddress, socket, urllib.parse)
        "gitops_flags.inert",  # the one printer: no line of repository text is a workflow command
        "gitops_flags.loader", "gitops_flags.model", "gitops_flags.problems",
        "gitops_flags.safe_schema",  # schemas from PRs evaluated safely: RE2 (loaded lazily), step budget
        "gitops_flags.semantics",  # one meaning of a condition and the kill switch on every engine
        "gitops_flags.tree", "gitops_flags.validate",
        *(f"gitops_flags.validate.{m}" for m in (
            "files", "flag_files", "flags", "json_values", "model_errors", "parallel", "paths", "policy",
            "report", "run", "salvage", "schemas")),
    ]
    assert [m for m in HEAVY if m in modules] == []


def test_help_imports_no_command() -> None:
    modules = imported("--help")
    assert ours(modules) == ["gitops_flags", "gitops_flags.cli", "gitops_flags.problems"]
    assert [m for m in ("pydantic", "yaml", "jsonschema", *HEAVY) if m in modules] == []


def test_github_format_loads_the_annotation_renderer() -> None:
    assert "gitops_flags.render" in imported("validate", "--repo", str(REPO), "--format", "github")


def test_validate_of_a_repository_without_schemas_loads_no_jsonschema(tmp_path: Path) -> None:
    root = schema_less_repository(tmp_path)
    assert loaded(imported("validate", "-C", str(root), cwd=root), SCHEMA_LIBRARIES) == []
    # ...which the bundled example, with schemas and object flags, does load: the probe can tell.
    assert "jsonschema" in loaded(imported("validate", "-C", str(REPO)), SCHEMA_LIBRARIES)


@pytest.mark.parametrize("schema_beside", [False, True], ids=["no-schema", "schema-unused-by-the-change"])
def test_plan_of_a_change_without_schemas_loads_no_jsonschema(tmp_path: Path, schema_beside: bool) -> None:
    root = schema_less_repository(tmp_path, schema_beside)
    modules = imported("plan", "-C", str(root), "--base", "HEAD~1", "--head", "HEAD", cwd=root, codes=(0, 1))
    assert "gitops_flags.changes" in modules
    assert loaded(modules, SCHEMA_LIBRARIES) == []


def test_validate_of_the_repository_with_a_schema_loads_it(tmp_path: Path) -> None:
    root = schema_less_repository(tmp_path, schema_beside=True)
    assert "jsonschema" in loaded(imported("validate", "-C", str(root), cwd=root), SCHEMA_LIBRARIES)
