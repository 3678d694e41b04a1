"""Which workflow a change needs, and the conditions of rules (`match`) and steps (`when`).

A `Match` holds when every field it sets holds (AND); `any`, `all` and `not` combine conditions. Lists
mean "any of": `environment: [staging, production]`, `tags: [payments, billing]`, `label: [hotfix]`.
`key` and `path` are globs in which `*` and `?` stay within one path segment and `**` spans segments.
`path` holds when the change's file or, for a moved file, its former path matches. Labels compare
case-insensitively, as GitHub's do; everything else is case-sensitive.

Rules are tried in order and the first whose `match` holds decides the workflow. A change that no rule
matches is an error for the caller to report, never a pass.

Roles list approvers as `login`, `@login` or `@org/team`; `codeowner` is a built-in role meaning the
owners of the changed file per the base CODEOWNERS.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .changes import Change
from .model import BUILTIN_ROLE_CODEOWNER, Match, Policy, PolicyRule, Workflow, as_list

# Three-valued truth: None means "cannot tell yet" (the PR's labels are not known).
Truth = bool | None


def condition_holds(cond: Match, change: Change, labels: frozenset[str]) -> bool:
    """Whether `cond` holds for `change` in a PR carrying `labels`."""
    return _holds(cond, change, _lower(labels)) is True


def condition_may_hold(cond: Match, change: Change) -> bool:
    """Whether `cond` could hold for `change` under some set of PR labels."""
    return _holds(cond, change, None) is not False


def rule_for(policy: Policy, change: Change, labels: frozenset[str]) -> tuple[int, PolicyRule] | None:
    """The first rule (0-based index, rule) whose `match` holds, or None."""
    lowered = _lower(labels)
    for index, rule in enumerate(policy.rules):
        if _holds(rule.match, change, lowered) is True:
            return index, rule
    return None


def workflow_for(policy: Policy, change: Change, labels: frozenset[str]) -> tuple[str, Workflow] | None:
    """The workflow of the first matching rule; None when no rule matches or the rule names a workflow
    the policy does not define (the policy's validation reports the latter)."""
    found = rule_for(policy, change, labels)
    if found is None or found[1].workflow not in policy.workflows:
        return None
    name = found[1].workflow
    return name, policy.workflows[name]


def possible_workflows(policy: Policy, change: Change) -> list[str]:
    """Every workflow `change` could get under some set of labels, in rule order (for prefetching team
    memberships before the labels are known). Stops at the first rule that holds whatever the labels."""
    names: list[str] = []
    for rule in policy.rules:
        truth = _holds(rule.match, change, None)
        if truth is False:
            continue
        if rule.workflow not in names:
            names.append(rule.workflow)
        if truth is True:
            break
    return names


# --- approvers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """One approver entry: a user, an `org/slug` team, or (CODEOWNERS only) an email address."""

    kind: Literal["user", "team", "email"]
    name: str  # lower-case login, lower-case "org/slug", or the address as written
    text: str  # for display: "login", "@org/team" or the address, in the case it was written

    @property
    def request(self) -> str:
        """How a review request names it: a login, or "org/slug" for a team."""
        return self.text.removeprefix("@")


def parse_principal(entry: str) -> Principal | None:
    """`login`, `@login`, `@org/team` (or `org/team`), or an email address; None for an empty entry."""
    text = entry.strip()
    if not text:
        return None
    if "@" in text.lstrip("@"):
        return Principal("email", text, text)
    bare = text.lstrip("@")
    if not bare:
        return None
    if "/" in bare:
        return Principal("team", bare.lower(), "@" + bare)
    return Principal("user", bare.lower(), bare)


def role_principals(policy: Policy, role: str) -> list[Principal] | None:
    """The members of a role defined in the policy, or None when the policy does not define it."""
    if role not in policy.roles:
        return None
    return _principals(policy.roles[role])


def uses_codeowners(workflow: Workflow) -> bool:
    return any(step.codeowner or step.role == BUILTIN_ROLE_CODEOWNER for step in workflow.steps)


def _principals(entries: Iterable[str]) -> list[Principal]:
    found: dict[tuple[str, str], Principal] = {}  # `max`, `@max` and `MAX` are one person: keep the first
    for entry in entries:
        principal = parse_principal(entry)
        if principal is not None:
            found.setdefault((principal.kind, principal.name), principal)
    return list(found.values())


# --- conditions ---------------------------------------------------------------------------------------


def _holds(cond: Match, change: Change, labels: frozenset[str] | None) -> Truth:
    parts: list[Truth] = []
    if cond.kind is not None:
        parts.append(change.kind in as_list(cond.kind))
    if cond.environment is not None:
        parts.append(change.environment is not None and change.environment in as_list(cond.environment))
    if cond.change_type is not None:
        parts.append(change.change_type in as_list(cond.change_type))
    if cond.key is not None:
        parts.append(any(glob_match(p, change.key) for p in as_list(cond.key)))
    if cond.path is not None:
        paths = [change.path] + ([change.old_path] if change.old_path else [])
        parts.append(any(glob_match(p, path) for p in as_list(cond.path) for path in paths))
    if cond.tags is not None:
        parts.append(bool(set(as_list(cond.tags)) & set(change.tags)))
    if cond.breaking is not None:
        parts.append(change.breaking == cond.breaking)
    if cond.enabled is not None:
        parts.append(change.kind == "flag" and _enabled_after(change) == cond.enabled)
    if cond.label is not None:
        parts.append(None if labels is None else bool(_lower(as_list(cond.label)) & labels))
    if cond.any is not None:
        parts.append(_any([_holds(c, change, labels) for c in cond.any]))
    if cond.all is not None:
        parts.append(_all([_holds(c, change, labels) for c in cond.all]))
    if cond.not_ is not None:
        inner = _holds(cond.not_, change, labels)
        parts.append(None if inner is None else not inner)
    return _all(parts)


def _enabled_after(change: Change) -> bool:
    """Whether the flag is on in the environment after the change (a removed environment is off)."""
    after = change.after if isinstance(change.after, dict) else None
    return bool(after.get("enabled")) if after is not None else False


def _all(values: list[Truth]) -> Truth:
    if False in values:
        return False
    return None if None in values else True


def _any(values: list[Truth]) -> Truth:
    if True in values:
        return True
    return None if None in values else False


def _lower(names: Iterable[str]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def glob_match(pattern: str, text: str) -> bool:
    """Path glob: `*` and `?` within one segment, `**` across segments (`a/**` is everything below a,
    `**/x.yaml` is x.yaml at any depth), `[abc]` a character class."""
    return _glob_regex(pattern).fullmatch(text) is not None


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)
