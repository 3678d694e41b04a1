"""What `gitops-flags validate` and `--help` import, pinned: a new import on the start-up path is a
decision, not an accident (each costs every pre-commit run and every workflow step)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def imported(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True,
                         cwd=REPO)
    code, modules = json.loads(out.stdout.splitlines()[-1])
    assert code == 0, out.stderr
    return list(modules)


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
