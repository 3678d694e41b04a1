"""A change judged under two policies: the PR's base policy, and the one in force on the branch it lands on
(when the base is behind and the policy or CODEOWNERS changed since). Each change needs both; `check` and
`apply` use the same two functions, so a PR approved in review is the PR apply accepts.
"""

from __future__ import annotations

from dataclasses import replace

from .model import CODEOWNERS_PATHS, POLICY_PATH
from .result import VERDICT_ORDER, ChangeResult, Evaluation, worst
from .tree import Tree


def same_rules(a: Tree, b: Tree, config: str = POLICY_PATH) -> bool:
    """Whether two commits hold the same policy and CODEOWNERS files (then one evaluation serves both)."""
    return all(a.read(path) == b.read(path) for path in (config, *CODEOWNERS_PATHS))


def combine(first: Evaluation, first_label: str, second: Evaluation, second_label: str) -> Evaluation:
    """The changes as judged under two policies (a PR's base policy, and the one in force where it lands):
    each change needs both. Per change the worse result is kept; where the two disagree its reason names
    the policy that blocked it (`first_label` / `second_label`, e.g. "under the policy at abc1234")."""
    rank = VERDICT_ORDER.index
    theirs = {r.change.ident(): r for r in second.changes}
    results: list[ChangeResult] = []
    for mine in first.changes:
        other = theirs.pop(mine.change.ident(), None)
        if other is None or rank(mine.verdict) <= rank(other.verdict):
            label = first_label if other is not None and other.verdict != mine.verdict else ""
            results.append(_labelled(mine, label))
        else:
            results.append(_labelled(other, second_label))
    results += [_labelled(r, second_label) for r in theirs.values()]
    verdict = worst([first.verdict, second.verdict, *(r.verdict for r in results)])
    if rank(second.verdict) < rank(first.verdict):
        message = f"{second_label}: {second.message}" if second.message else second_label
    elif rank(first.verdict) < rank(second.verdict) and first.verdict != "approved":
        message = f"{first_label}: {first.message}" if first.message else first_label
    else:
        message = first.message
    problems = (*first.problems, *(p for p in second.problems if p not in first.problems))
    warnings = (*first.warnings, *(w for w in second.warnings if w not in first.warnings))
    return Evaluation(verdict, tuple(results), problems, message, warnings)


def _labelled(result: ChangeResult, label: str) -> ChangeResult:
    if not label or result.verdict == "approved":
        return result
    return replace(result, reason=f"{label}: {result.reason}" if result.reason else label)
