"""The GitHub Actions side of a run: the `GITHUB_*` environment, the event payload, and the files a step
writes its outputs and summary to.

The parsing functions are pure (a mapping in, a value out); the three small I/O functions beside them only
read or append files.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .problems import GitopsFlagsError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"

# pull_request / pull_request_target actions that can change what a PR needs or has
PULL_ACTIONS = frozenset(
    {"opened", "synchronize", "reopened", "ready_for_review", "labeled", "unlabeled", "edited"}
)
REVIEW_ACTIONS = frozenset({"submitted", "dismissed", "edited"})


@dataclass(frozen=True)
class ActionsEnv:
    in_actions: bool = False
    event_name: str = ""
    event_path: str = ""
    repository: str = ""
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    run_id: str = ""
    token: str = ""
    output_path: str = ""
    summary_path: str = ""
    workspace: str = ""

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> ActionsEnv:
        return cls(
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            event_path=env.get("GITHUB_EVENT_PATH", ""),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL,
            server_url=env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL,
            run_id=env.get("GITHUB_RUN_ID", ""),
            token=env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or "",
            output_path=env.get("GITHUB_OUTPUT", ""),
            summary_path=env.get("GITHUB_STEP_SUMMARY", ""),
            workspace=env.get("GITHUB_WORKSPACE", ""),
        )

    def run_url(self, repository: str | None = None) -> str | None:
        repo = repository or self.repository
        if not (self.run_id and repo):
            return None
        return f"{self.server_url.rstrip('/')}/{repo}/actions/runs/{self.run_id}"


@dataclass(frozen=True)
class PullTarget:
    number: int
    why: str  # e.g. "pull_request.synchronize"


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class GroupTarget:
    """A merge queue's group (`merge_group`): its commits base_sha..head_sha are judged as apply would."""

    base_ref: str  # the branch, without refs/heads/
    base_sha: str
    head_sha: str
    head_ref: str


def target_from_event(event_name: str, payload: Mapping[str, Any]) -> PullTarget | GroupTarget | Skip:
    """Which PR an Actions event is about, or why there is nothing to evaluate.

    Raises GitopsFlagsError for events that never concern a PR (push, schedule, ...): that is a workflow
    configuration mistake, not something to skip silently.
    """
    action = str(payload.get("action") or "")
    why = f"{event_name}.{action}" if action else event_name
    if event_name in ("pull_request", "pull_request_target"):
        if action and action not in PULL_ACTIONS:
            return Skip(f"{why}: nothing to evaluate")
        if action == "edited" and "base" not in (payload.get("changes") or {}):
            return Skip(f"{why}: only the title or body changed")
        number = payload.get("number") or (payload.get("pull_request") or {}).get("number")
        return PullTarget(_number(number), why)
    if event_name == "pull_request_review":
        if action and action not in REVIEW_ACTIONS:
            return Skip(f"{why}: nothing to evaluate")
        return PullTarget(_number((payload.get("pull_request") or {}).get("number")), why)
    if event_name == "issue_comment":
        issue = payload.get("issue") or {}
        if not issue.get("pull_request"):
            return Skip(f"{why}: a comment on an issue, not on a pull request")
        body = str((payload.get("comment") or {}).get("body") or "")
        if body.startswith("<!-- gitops-flags:sticky -->"):
            return Skip(f"{why}: the tool's own comment")
        return PullTarget(_number(issue.get("number")), why)
    if event_name == "merge_group":
        if action and action != "checks_requested":
            return Skip(f"{why}: nothing to evaluate")
        group = payload.get("merge_group") or {}
        fields = [str(group.get(k) or "") for k in ("base_ref", "base_sha", "head_sha", "head_ref")]
        if not all(fields):
            raise GitopsFlagsError("the merge_group event has no base_ref, base_sha, head_sha or head_ref")
        base_ref, base_sha, head_sha, head_ref = fields
        return GroupTarget(base_ref.removeprefix("refs/heads/"), base_sha, head_sha,
                           head_ref.removeprefix("refs/heads/"))
    if event_name == "workflow_dispatch":
        inputs = payload.get("inputs") or {}
        raw = inputs.get("pr") or inputs.get("pull_request")
        if raw in (None, ""):
            raise GitopsFlagsError("workflow_dispatch needs an input `pr` (or `pull_request`): the PR number")
        return PullTarget(_number(raw), why)
    raise GitopsFlagsError(
        f"`check` evaluates pull requests; the event {event_name or '(none)'!r} is not about one. Run it on "
        "pull_request, pull_request_review, pull_request_target, issue_comment, merge_group or "
        "workflow_dispatch, "
        "or pass --repo OWNER/NAME --pr N."
    )


def _number(value: Any) -> int:
    try:
        number = int(str(value).strip().lstrip("#"))
    except ValueError:
        raise GitopsFlagsError(f"not a pull request number: {value!r}") from None
    if number <= 0:
        raise GitopsFlagsError(f"not a pull request number: {value!r}")
    return number


def output_text(values: Mapping[str, str], delimiter: str | None = None) -> str:
    """`$GITHUB_OUTPUT` lines; a multi-line value uses the `name<<DELIM` form, DELIM not in the value."""
    lines = []
    for name, value in values.items():
        if "\n" not in value and "\r" not in value:
            lines.append(f"{name}={value}\n")
            continue
        delim = delimiter or f"ghadelimiter_{secrets.token_hex(8)}"
        if delim in value:
            raise ValueError(f"delimiter {delim!r} occurs in the value of {name}")
        lines.append(f"{name}<<{delim}\n{value}\n{delim}\n")
    return "".join(lines)


def read_event(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GitopsFlagsError(f"cannot read the event payload {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise GitopsFlagsError(f"the event payload {path} is not a JSON object")
    return data


def write_outputs(path: str, values: Mapping[str, str]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(output_text(values))


def append_summary(path: str, markdown: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown if markdown.endswith("\n") else markdown + "\n")
