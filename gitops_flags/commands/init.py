"""`gitops-flags init [DIR]`: write a starter policy, CODEOWNERS, an example flag and the three workflows.

The policy carries the workflows the project was built to replace: a manager then QA for production flag
changes (QA skipped for kill switches and deletes), two schema reviewers then a senior then compliance
(when breaking or labelled `requires-additional-review`), and senior plus compliance for governance files.
The workflows run the PR check, apply merged changes to the store, and advance staged rollouts.

For editors, it writes the three JSON Schemas under `.schemas/` and a `yaml-language-server` modeline at the
top of the example flag and the policy (docs/formats.md, "Editor validation"). It adds `.flag-store/` (where
a `file:` store lives by default, for local runs and demos) to `.gitignore`, so a local store is never
committed by accident.

Existing files are never overwritten without `--force`. A repository that already has a CODEOWNERS (in
any of the places GitHub looks) keeps it: writing `.github/CODEOWNERS` next to a root or `docs/` one would
silently replace it for the whole repository, since GitHub reads only the first it finds.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from ..inert import echo
from ..model import CODEOWNERS_PATHS, POLICY_PATH

# template file (in gitops_flags/templates) → where it goes, relative to the repository root
FILES: dict[str, str] = {
    "gitops-flags.yml": POLICY_PATH,
    "CODEOWNERS": ".github/CODEOWNERS",
    "example_flag.yaml": "flags/example_flag.yaml",
    "gitops-flags-check.yml": ".github/workflows/gitops-flags.yml",
    "gitops-flags-apply.yml": ".github/workflows/gitops-flags-apply.yml",
    "gitops-flags-rollout.yml": ".github/workflows/gitops-flags-rollout.yml",
}
KEEP = "flags/schemas/.gitkeep"  # so git keeps the (empty) schemas folder
CODEOWNERS = FILES["CODEOWNERS"]
SCHEMAS_DIR = ".schemas"
# file → the schema its modeline names, relative to the file (the YAML language server reads it)
MODELINES = {"flags/example_flag.yaml": "../.schemas/flag.json", POLICY_PATH: "../.schemas/policy.json"}
IGNORED = ".flag-store/"


def template(name: str) -> str:
    return resources.files("gitops_flags").joinpath("templates", name).read_text(encoding="utf-8")


def plan_files() -> dict[str, str]:
    """Destination path → content, for every file init writes into an empty repository."""
    files = {dest: template(name) for name, dest in FILES.items()}
    for dest, schema in MODELINES.items():
        files[dest] = f"# yaml-language-server: $schema={schema}\n" + files[dest]
    schemas = resources.files("gitops_flags").joinpath("jsonschema")
    for kind in ("flag", "schema", "policy"):
        files[f"{SCHEMAS_DIR}/{kind}.json"] = schemas.joinpath(f"{kind}.json").read_text(encoding="utf-8")
    files[KEEP] = ""
    return files


def ignore_store(directory: Path) -> bool:
    """Add `.flag-store/` to `.gitignore` unless it is there; True when the file was changed."""
    path = directory / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if any(line.strip() in (IGNORED, IGNORED.rstrip("/"), "/" + IGNORED) for line in text.splitlines()):
        return False
    prefix = "" if not text or text.endswith("\n") else "\n"
    path.write_text(text + prefix + "# the local flag store (gitops-flags, file: store)\n" + IGNORED + "\n",
                    encoding="utf-8")
    return True


@click.command(name="init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def command(directory: Path, force: bool) -> int:
    """Write a starter policy, CODEOWNERS, an example flag and the three workflows into DIRECTORY."""
    files = plan_files()
    owners_at = next((p for p in CODEOWNERS_PATHS if (directory / p).is_file()), None)
    kept = None
    if owners_at is not None:
        content = files.pop(CODEOWNERS)
        if force:
            files[owners_at] = content  # overwrite the file GitHub reads, never shadow it
        else:
            kept = owners_at
    existing = [dest for dest in files if (directory / dest).exists()]
    if existing and not force:
        echo("error: these files exist already (use --force to overwrite them):", err=True)
        for dest in existing:
            echo(f"  {dest}", err=True)
        return 2
    for dest, content in files.items():
        target = directory / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        echo(f"wrote {dest}")
    if ignore_store(directory):
        echo(f"added {IGNORED} to .gitignore")
    if kept:
        rules = [line for line in template("CODEOWNERS").splitlines() if line and not line.startswith("#")]
        echo(f"kept {kept} (GitHub reads only one CODEOWNERS); the `codeowner` role means its owners. "
                   "Make sure it owns the flags, for example:")
        for line in rules:
            echo(f"  {line}")
    echo(
        "\nNext: replace the placeholder teams (@your-org/...) in the policy and CODEOWNERS, and OWNER and "
        "the placeholder commit SHA in the workflows; require the status `gitops-flags: <default branch>`; "
        "then run `gitops-flags validate` and `gitops-flags doctor`."
    )
    return 0
