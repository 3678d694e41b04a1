"""action.yml and the workflows: valid against SchemaStore's schemas, and the properties we rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "tests" / "fixtures" / "github-api" / "schemas"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> Any:
    # GitHub reads `on:` as a key; PyYAML (YAML 1.1) would read it as True.
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(re.sub(r"^on:", '"on":', text, flags=re.M))
    return data


def errors(schema_name: str, document: Any) -> list[str]:
    schema = json.loads((SCHEMAS / schema_name).read_text(encoding="utf-8"))
    validator = Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_action_yml_is_valid() -> None:
    assert errors("github-action.json", load(ROOT / "action.yml")) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_is_valid(path: Path) -> None:
    assert errors("github-workflow.json", load(path)) == []


def test_schema_catches_a_broken_action() -> None:
    # the validation is real: a composite action without steps is refused
    broken = load(ROOT / "action.yml")
    del broken["runs"]["steps"]
    assert errors("github-action.json", broken)


def test_action_interface() -> None:
    action = load(ROOT / "action.yml")
    inputs = {"command", "github-token", "config", "dry-run", "store", "fail-on-pending"}
    assert set(action["inputs"]) == inputs
    assert action["inputs"]["github-token"]["default"] == "${{ github.token }}"
    check = {"verdict", "changes", "pending-steps"}
    apply = {"applied", "warned", "blocked", "skipped", "failed", "store-version", "store-commit"}
    advance = {"started", "advanced", "completed", "rolled-back", "paused", "store-version"}
    assert set(action["outputs"]) == check | apply | advance
    for name, output in action["outputs"].items():  # each is the run step's output of the same name
        assert output["value"] == "${{ steps.run.outputs." + name + " }}"
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.12"
    scripts = "\n".join(s.get("run", "") for s in action["runs"]["steps"])
    assert '"$GITHUB_ACTION_PATH"' in scripts  # installs the action's own files, not the checked-out repo
    assert "${{" not in scripts  # inputs reach scripts through env only: no script injection


def test_pr_workflow_is_least_privilege_and_one_run_per_pr() -> None:
    wf = load(ROOT / ".github" / "workflows" / "flags-check.yml")
    assert set(wf["on"]) == {"pull_request", "pull_request_review", "merge_group"}  # merge queues too
    # No paths filter: a required status must be posted on every PR, or unrelated PRs wait forever.
    assert "paths" not in wf["on"]["pull_request"]
    assert set(wf["on"]["pull_request_review"]["types"]) == {"submitted", "dismissed", "edited"}
    assert wf["permissions"] == {}  # write permissions belong to the job
    job = wf["jobs"]["check"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write", "statuses": "write"}
    assert "environment" not in wf["jobs"]["check"]  # never the store's secrets
    # per PR for every event that can run the check (issue_comment and workflow_dispatch name it elsewhere)
    group = wf["concurrency"]["group"]
    assert group.startswith("gitops-flags-${{ github.event.pull_request.number || github.event.issue.number")
    assert "github.event.inputs.pr" in group
    assert wf["concurrency"]["cancel-in-progress"] is True
    steps = wf["jobs"]["check"]["steps"]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    action = next(s for s in steps if s.get("uses") == "./")
    assert action["with"]["command"] == "check"


def test_ci_runs_the_ci_script() -> None:
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert wf["permissions"] == {} and wf["jobs"]["test"]["permissions"] == {"contents": "read"}
    assert any(s.get("run") == "bash .ci/run" for s in wf["jobs"]["test"]["steps"])
