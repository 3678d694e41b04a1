"""Planning a change: what each change between two trees is and which approval steps it needs, under the
policy and CODEOWNERS of the base (a change cannot loosen the rules that judge it); with a `PullSnapshot`,
whether its reviews give them. The result is one `PlanResult`, which every output format renders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import approvals, changes, codeowners, render, validate
from .problems import Problem
from .result import Evaluation
from .snapshot import PullSnapshot, TeamLookup
from .tree import Tree

FORMATS = ("text", "json", "markdown")


@dataclass(frozen=True)
class PlanResult:
    """The plan of one change: its evaluation, or why there is none (the base's policy is unusable)."""

    base_sha: str
    evaluation: Evaluation | None
    policy_problems: tuple[Problem, ...] = ()

    @property
    def exit_code(self) -> int:
        """0 approved; 1 pending, rejected, invalid or error; 2 when nothing could be evaluated."""
        if self.evaluation is None:
            return 2
        return 0 if self.evaluation.verdict == "approved" else 1

    def document(self) -> dict[str, Any] | None:
        """The `--format json` document: the stable contract (`Evaluation.to_json`). The printer writes it
        (`inert.json_text`, so no line of it is a workflow command)."""
        return self.evaluation.to_json() if self.evaluation is not None else None

    def render(self, fmt: str) -> str:
        """The plan as text or Markdown (json: `document`)."""
        evaluation = self.evaluation
        if evaluation is None:
            return ""
        if fmt == "markdown":
            return render.comment_markdown(evaluation).rstrip("\n") + "\n"
        return render.plan_text(evaluation)

    def errors(self) -> list[str]:
        """Why nothing could be evaluated, one line each (for stderr); [] when it was."""
        if self.evaluation is not None:
            return []
        lines = [f"error: cannot evaluate: the base commit {self.base_sha[:12]} has no usable policy"]
        return lines + [f"  {p.location()}: {p.severity}: {p.message}" for p in self.policy_problems]


def plan(base_sha: str, base: Tree, head: Tree, changed: Callable[[], Sequence[str]],
         pull: PullSnapshot | None) -> PlanResult:
    """The plan of the change from `base` to `head`. `changed` lists the paths the change touches (as
    GitHub would: changed since the merge base); each is compared between the two trees, so a base that
    moved on is not mistaken for the change. It is asked only once the base's policy is usable. Teams the
    snapshot does not list are unknown, never guessed."""
    policy, policy_problems = validate.read_policy(base)
    if policy is None:
        return PlanResult(base_sha, None, tuple(policy_problems))
    owners = codeowners.find_codeowners(base)
    diff = changes.diff(base, head, policy, changed())
    if pull is not None:
        missing = approvals.teams_needed(policy, diff.changes, owners, pull.labels) - set(pull.teams)
        unlisted = {t: TeamLookup(None, "not listed under `teams` in the --pull file") for t in missing}
        pull = replace(pull, teams={**pull.teams, **unlisted})
    problems = [*policy_problems, *diff.problems]
    return PlanResult(base_sha, approvals.evaluate(diff.changes, policy, owners, pull, problems=problems),
                      tuple(policy_problems))
