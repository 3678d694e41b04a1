"""Semantic checks of the policy: its cross-references (workflows, roles, step ids and their order) and
the values its match conditions name."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, get_args

from .. import model
from ..loader import Document
from ..model import Match, Policy
from ..problems import Problem
from .report import Path, Report, choices_hint

if TYPE_CHECKING:
    from .salvage import Salvage


def _match_values(match: Match, path: Path) -> Iterable[tuple[str, Any, Path]]:
    """(field, value, path) for every set `kind`/`change_type`/`environment` in a condition tree."""
    for field in ("kind", "change_type", "environment"):
        raw = getattr(match, field)
        if isinstance(raw, str):
            yield field, raw, (*path, field)
        elif raw is not None:
            yield from ((field, v, (*path, field, i)) for i, v in enumerate(raw))
    for combinator in ("any", "all"):
        for i, sub in enumerate(getattr(match, combinator) or []):
            yield from _match_values(sub, (*path, combinator, i))
    if match.not_ is not None:
        yield from _match_values(match.not_, (*path, "not"))


def check_policy(policy: Policy, path: str = model.POLICY_PATH, doc: Document | None = None,
                 salvage: Salvage | None = None) -> list[Problem]:
    """Cross-references inside the policy: workflows, roles, step ids and order, known match values."""
    report = Report(path, doc, salvage)
    flags_dir = policy.flags_dir.strip("/")
    if flags_dir in ("", ".") or posixpath.isabs(policy.flags_dir) or ".." in flags_dir.split("/"):
        report.add(("flags_dir",), f"{policy.flags_dir!r} must name a folder inside the repository, e.g. "
                   "flags", "invalid-value")
    seen_envs: set[str] = set()
    for i, env in enumerate(policy.environments):
        if env in seen_envs:
            report.add(("environments", i), f"environment {env!r} is listed twice", "duplicate-environment")
        seen_envs.add(env)
    for role, members in policy.roles.items():
        if not members:
            report.add(("roles", role), "the role has no members, so steps that use it can never be approved",
                       "empty-role", "warning")
    known = {
        "kind": list(get_args(model.ChangeKind)),
        "change_type": list(get_args(model.ChangeType)),
        "environment": list(policy.environments),
    }

    def check_match(match: Match, where: Path) -> None:
        for field, value, at in _match_values(match, where):
            if value not in known[field]:
                report.add(at, f"unknown {field} {value!r}" + choices_hint(value, known[field], "known"),
                           "unknown-value")

    workflows = list(policy.workflows)
    for i, rule in enumerate(policy.rules):
        if rule.workflow not in policy.workflows:
            report.add(("rules", i, "workflow"), f"no workflow {rule.workflow!r}"
                       + choices_hint(rule.workflow, workflows, "workflows"), "unknown-workflow")
        check_match(rule.match, ("rules", i, "match"))
    roles = [*policy.roles, model.BUILTIN_ROLE_CODEOWNER]
    for name, workflow in policy.workflows.items():
        base: Path = ("workflows", name, "steps")
        index: dict[str, int] = {}
        for j, step in enumerate(workflow.steps):
            if step.id in index:
                report.add((*base, j, "id"), f"step id {step.id!r} is already used by step "
                           f"{index[step.id] + 1}", "duplicate-step")
            index.setdefault(step.id, j)
            if step.role not in roles:
                hint = choices_hint(step.role, roles, "roles")
                report.add((*base, j, "role"), f"no role {step.role!r}{hint}", "unknown-role")
            if step.when is not None:
                check_match(step.when, (*base, j, "when"))
        for j, step in enumerate(workflow.steps):
            for k, after in enumerate(step.after):
                if after == step.id:
                    report.add((*base, j, "after", k), "a step cannot come after itself", "step-cycle")
                elif after not in index:
                    report.add((*base, j, "after", k), f"no step {after!r} in this workflow"
                               + choices_hint(after, list(index), "steps"), "unknown-step")
        graph: dict[str, list[str]] = {}
        for step in workflow.steps:
            graph.setdefault(step.id, []).extend(a for a in step.after if a in index and a != step.id)
        cycle = _find_cycle(graph)
        if cycle:
            report.add((*base, index[cycle[0]], "after"), "steps wait for each other in a cycle: "
                       + " → ".join([*cycle, cycle[0]]), "step-cycle")
    return report.problems


def _find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """One cycle of the `after` graph (as step ids in order), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None
