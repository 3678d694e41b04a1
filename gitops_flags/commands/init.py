"""`gitops-flags init [DIR]`: write a starter policy, CODEOWNERS, an example flag and the PR-check workflow.

The policy carries the workflows the project was built to replace: a manager then QA for production flag
changes (QA skipped for kill switches and deletes), two schema reviewers then a senior then compliance
(when breaking or labelled `requires-additional-review`), and senior plus compliance for governance files.
Existing files are never overwritten without `--force`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from ..model import POLICY_PATH

# template file (in gitops_flags/templates) → where it goes, relative to the repository root
FILES: dict[str, str] = {
    "gitops-flags.yml": POLICY_PATH,
    "CODEOWNERS": ".github/CODEOWNERS",
    "example_flag.yaml": "flags/example_flag.yaml",
    "gitops-flags-check.yml": ".github/workflows/gitops-flags.yml",
}
KEEP = "flags/schemas/.gitkeep"  # so git keeps the (empty) schemas folder


def template(name: str) -> str:
    return resources.files("gitops_flags").joinpath("templates", name).read_text(encoding="utf-8")


def plan_files() -> dict[str, str]:
    """Destination path → content, for every file init writes."""
    files = {dest: template(name) for name, dest in FILES.items()}
    files[KEEP] = ""
    return files


@click.command(name="init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def command(directory: Path, force: bool) -> int:
    """Write a starter policy, CODEOWNERS, an example flag and the pull-request workflow into DIRECTORY."""
    files = plan_files()
    existing = [dest for dest in files if (directory / dest).exists()]
    if existing and not force:
        click.echo("error: these files exist already (use --force to overwrite them):", err=True)
        for dest in existing:
            click.echo(f"  {dest}", err=True)
        return 2
    for dest, content in files.items():
        target = directory / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        click.echo(f"wrote {dest}")
    click.echo(
        "\nNext: replace the placeholder teams (@your-org/...) in the policy and CODEOWNERS and OWNER in "
        "the workflow, then run `gitops-flags validate`."
    )
    return 0
