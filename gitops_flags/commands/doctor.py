"""`gitops-flags doctor`: read the GitHub settings the governance depends on and print a checklist.

Wiring only: `github.settings` reads the settings as `doctor.Facts` (GETs only), `doctor.checks` decides,
and the `doctor.Checklist` renders text, JSON or Markdown (and the job summary).

Exit codes: 0 every required item ok (or unknown), 1 a required item is missing (with --strict, also
unknown), 2 the repository itself cannot be read.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .. import actions_env, doctor, validate
from ..actions_env import ActionsEnv
from ..inert import echo
from ..model import StoreConfig
from ..problems import GitopsFlagsError
from ..tree import DirTree

DEFAULT_ENVIRONMENT = "flag-store"


@click.command(name="doctor")
@click.option(
    "--repo",
    "repository",
    metavar="OWNER/NAME",
    envvar="GITHUB_REPOSITORY",
    help="The repository to audit (default: GITHUB_REPOSITORY).",
)
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The checkout whose policy names the store.",
)
@click.option(
    "--environment",
    default=DEFAULT_ENVIRONMENT,
    show_default=True,
    help="The deployment environment holding the seal key and the store's write credential.",
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown suits a job summary ($GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--expected-app-id",
    type=click.IntRange(min=1),
    default=doctor.GITHUB_ACTIONS_APP_ID,
    show_default=True,
    help="The app the required status must come from: GitHub Actions (GITHUB_TOKEN), or the GitHub App "
    "whose token the action's github-token input is given.",
)
@click.option("--strict", is_flag=True, help="Also exit 1 when a required item cannot be read (unknown).")
def command(
    repository: str | None,
    directory: Path,
    environment: str,
    format_: str,
    expected_app_id: int,
    strict: bool,
) -> int:
    """Audit the GitHub settings that only GitHub can enforce (branch rules and the required status's
    source, CODEOWNERS, environment, secrets, Actions permissions). Needs a token that may read them:
    GITHUB_TOKEN cannot read branch protection or secrets, so use one with repository Administration,
    Environments and Secrets read."""
    env = ActionsEnv.from_environ(os.environ)
    if not repository:
        raise GitopsFlagsError(
            "which repository? pass --repo OWNER/NAME (in Actions GITHUB_REPOSITORY is set)"
        )
    policy, _ = validate.read_policy(DirTree(directory))
    store = (
        policy.store
        if policy is not None and "store" in policy.model_fields_set
        else StoreConfig(type="github-branch")
    )
    from ..github import settings  # PyGithub only when the command runs

    facts = settings.gather(
        settings.Reader(env.api_url, env.token), repository, store, environment, expected_app_id
    )
    result = doctor.checklist(facts)
    echo(result.render(format_))
    if env.in_actions and format_ != "markdown":
        actions_env.append_summary(env.summary_path, result.render("markdown"))
    return 1 if result.failed(strict) else 0
