"""The repository settings `doctor` judges, read from the API as `doctor.Facts`.

Every request is a GET. An answer GitHub refuses for lack of permission (401/403) makes its items
"unknown", never "ok"; 404 means "not configured" (GitHub answers 404 "Branch not protected", or for a
missing environment). What the answers mean is decided in `gitops_flags.doctor`. The required status's
source (`app_id` / `integration_id`) comes with the protection and the branch's rules already read.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from github import GithubException

from ..codeowners import LOCATIONS
from ..doctor import GITHUB_ACTIONS_APP_ID, Answer, BranchRules, Facts
from ..model import StoreConfig
from ..problems import GitopsFlagsError
from .connection import connect


class Reader:
    """GETs through PyGithub's requester (its base URL, retries and authentication), as `Answer`s."""

    def __init__(self, api_url: str, token: str) -> None:
        self.requester = connect(api_url, token or None, pauses=False).requester

    def get(self, path: str, **params: Any) -> Answer:
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


def gather(
    reader: Reader,
    repository: str,
    store: StoreConfig,
    environment: str,
    expected_app_id: int = GITHUB_ACTIONS_APP_ID,
) -> Facts:
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
        expected_app_id=expected_app_id,
    )


def _names(answer: Answer) -> Answer:
    if not answer.ok:
        return answer
    return Answer(
        "ok", [s.get("name") for s in (answer.data or {}).get("secrets", []) if isinstance(s, dict)]
    )
