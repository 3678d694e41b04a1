"""`gitops-flags doctor`: read the GitHub settings the governance depends on and print a checklist.

Every request is a GET. An answer GitHub refuses for lack of permission (401/403) makes its items
"unknown", never "ok"; 404 means "not configured" (GitHub answers 404 "Branch not protected", or for a
missing environment). The decisions are in `gitops_flags.doctor`; this module only fetches.

Exit codes: 0 every required item ok (or unknown), 1 a required item is missing (with --strict, also
unknown), 2 the repository itself cannot be read.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from .. import actions_env, doctor, validate
from ..actions_env import ActionsEnv
from ..codeowners import LOCATIONS
from ..doctor import Answer, BranchRules, Facts
from ..inert import echo
from ..model import StoreConfig
from ..problems import GitopsFlagsError
from ..tree import DirTree

DEFAULT_ENVIRONMENT = "flag-store"


class Reader:
    """GETs through PyGithub's requester (its base URL, retries and authentication), as `Answer`s."""

    def __init__(self, api_url: str, token: str) -> None:
        from .. import github

        self.requester = github.connect(api_url, token or None, pauses=False).requester

    def get(self, path: str, **params: Any) -> Answer:
        from github import GithubException

        try:
            _, data = self.requester.requestJsonAndCheck("GET", path, parameters=params or None)
        except GithubException as exc:
            message = exc.data.get("message", "") if isinstance(exc.data, dict) else ""
            detail = f"{exc.status} {message}".strip()
            if exc.status == 404:
                return Answer("missing", detail=detail)
            return Answer("unknown", detail=f"{path}: {detail}")
        return Answer("ok", data)


def branch_rules(reader: Reader, repository: str, branch: str) -> BranchRules:
    quoted = quote(branch, safe="")
    protection = reader.get(f"/repos/{repository}/branches/{quoted}/protection")
    rules = reader.get(f"/repos/{repository}/rules/branches/{quoted}", per_page=100)
    if rules.status == "missing":  # GitHub Enterprise Server without rulesets: no rules
        rules = Answer("ok", [])
    ids = (
        sorted({int(r["ruleset_id"]) for r in rules.data or [] if isinstance(r, dict) and "ruleset_id" in r})
        if rules.ok
        else []
    )
    rulesets = {i: reader.get(f"/repos/{repository}/rulesets/{i}", includes_parents="true") for i in ids}
    return BranchRules(protection, rules, rulesets)


def read_codeowners(reader: Reader, repository: str, branch: str) -> Answer:
    unknown: Answer | None = None
    for location in LOCATIONS:
        answer = reader.get(f"/repos/{repository}/contents/{location}", ref=branch)
        if answer.ok and isinstance(answer.data, dict) and answer.data.get("encoding") == "base64":
            text = base64.b64decode(answer.data.get("content") or "").decode("utf-8", "replace")
            return Answer("ok", (location, text))
        if answer.status == "unknown":
            unknown = answer
    return unknown or Answer("missing")


def gather(reader: Reader, repository: str, store: StoreConfig, environment: str) -> Facts:
    repo = reader.get(f"/repos/{repository}")
    if not repo.ok:
        raise GitopsFlagsError(
            f"cannot read the repository {repository}: {repo.detail or repo.status}; "
            "check --repo and the token (GITHUB_TOKEN)"
        )
    default_branch = str(repo.data.get("default_branch") or "main")
    owner_type = str((repo.data.get("owner") or {}).get("type") or "User")
    env_path = f"/repos/{repository}/environments/{quote(environment, safe='')}"
    env = reader.get(env_path)
    policies = Answer("ok", [])
    if env.ok and ((env.data or {}).get("deployment_branch_policy") or {}).get("custom_branch_policies"):
        listed = reader.get(f"{env_path}/deployment-branch-policies", per_page=100)
        policies = (
            Answer("ok", [p.get("name") for p in listed.data.get("branch_policies", [])])
            if listed.ok
            else listed
        )
    store_rules = None
    store_repository = ""
    if store.type == "github-branch":
        store_repository = store.repository or repository
        store_rules = branch_rules(reader, store_repository, store.branch)
    return Facts(
        repository=repository,
        owner_type=owner_type,
        default_branch=default_branch,
        default=branch_rules(reader, repository, default_branch),
        codeowners=read_codeowners(reader, repository, default_branch),
        environment_name=environment,
        environment=env,
        branch_policies=policies,
        environment_secrets=_names(reader.get(f"{env_path}/secrets", per_page=100)),
        repository_secrets=_names(reader.get(f"/repos/{repository}/actions/secrets", per_page=100)),
        workflow_permissions=reader.get(f"/repos/{repository}/actions/permissions/workflow"),
        store_kind=store.type,
        store_repository=store_repository,
        store_branch=store.branch,
        store=store_rules,
    )


def _names(answer: Answer) -> Answer:
    if not answer.ok:
        return answer
    return Answer(
        "ok", [s.get("name") for s in (answer.data or {}).get("secrets", []) if isinstance(s, dict)]
    )


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
@click.option("--strict", is_flag=True, help="Also exit 1 when a required item cannot be read (unknown).")
def command(repository: str | None, directory: Path, environment: str, format_: str, strict: bool) -> int:
    """Audit the GitHub settings that only GitHub can enforce (branch rules, CODEOWNERS, environment,
    secrets, Actions permissions). Needs a token that may read them: GITHUB_TOKEN cannot read branch
    protection or secrets, so use one with repository Administration, Environments and Secrets read."""
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
    facts = gather(Reader(env.api_url, env.token), repository, store, environment)
    found = doctor.checks(facts)
    rendered = {"text": doctor.text, "json": doctor.as_json, "markdown": doctor.markdown}[format_](
        facts, found
    )
    echo(rendered)
    if env.in_actions and format_ != "markdown":
        actions_env.append_summary(env.summary_path, doctor.markdown(facts, found))
    return 1 if doctor.failed(found, strict) else 0
