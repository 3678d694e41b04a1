"""Approval evaluation: changes + base policy + base CODEOWNERS + a PR's reviews → an `Evaluation`.

Pure over plain values: the `PullSnapshot` carries the reviews, labels, team memberships and a reader
for file contents at any commit (for stale approvals). The rules, in the order they apply:

1. Which reviews count. Each user's latest decisive review (APPROVED, CHANGES_REQUESTED, DISMISSED;
   ordered by submission time, then review id) decides; a later COMMENTED or PENDING review changes
   nothing. The PR author counts only with `allow_author`, bots only with `count_bots`, deleted users
   never. Logins compare case-insensitively.
2. Staleness (`stale_approvals`), per change: `content` keeps an approval while every file of the change
   is byte-identical at the review's commit and at the head (no commit, or a file that cannot be read,
   voids it); `commit` voids approvals given on any other commit; `keep` never voids. Requests for
   changes never go stale: they hold until the reviewer approves or the review is dismissed.
3. Eligibility. A step's role lists logins and `@org/team` teams; the built-in role `codeowner` is the
   owners of the change's file (its head path; for a delete, its last path) per the base CODEOWNERS, and
   `codeowner: true` requires the approver to hold the role and own that file. A team whose members
   could not be read makes its members neither eligible nor ineligible: the step says so, never guesses.
   Email owners cannot be mapped to logins and never count (a warning says so).
4. Assignment. `approvals: N` needs N different eligible people. With `distinct_approvers` a person fills
   at most one step of a change, assigned by maximum bipartite matching (`matching.assign`).
5. States, per step: `skipped` when its `when` is false (whatever its predecessors); `rejected` while an
   eligible reviewer's request for changes is open; `waiting` while a step in `after` is neither
   satisfied nor skipped; `satisfied` with N assigned approvers; `pending` otherwise.
6. Verdicts. A change is `invalid` when its files have validation errors, `error` when no rule or no
   usable workflow applies, `rejected` when a step is, `approved` when every step is satisfied or
   skipped, `pending` otherwise. The PR's verdict is the worst (`result.worst`); no changes at all is
   `approved` ("no flag changes").

One module on purpose (~620 lines): the rules run as one pass over each change, sharing one `_Run` (its
cache of file reads and merge bases, its warnings), and the file follows the order above, so a rule is
read where it applies. Judging a change under two policies is `two_policies` (re-exported here for
`apply`); which PR facts are read, and when, is `check`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import matching
from .changes import Change
from .codeowners import CodeOwners
from .model import BUILTIN_ROLE_CODEOWNER, Policy, Step, Workflow
from .policy import (
    Principal,
    condition_holds,
    parse_principal,
    possible_workflows,
    role_principals,
    rule_for,
    uses_codeowners,
)
from .problems import Problem
from .result import ChangeResult, Evaluation, StepResult, StepState, Verdict, worst
from .snapshot import DECISIVE_STATES, PullSnapshot, Review, normalize_login
from .two_policies import combine, same_rules

NO_CHANGES = "no flag changes"
__all__ = ["NO_CHANGES", "Decisions", "change_files", "combine", "decisions", "evaluate", "same_rules",
           "teams_needed"]


def evaluate(
    changes: Sequence[Change],
    policy: Policy,
    codeowners: CodeOwners,
    pull: PullSnapshot | None,
    problems: Sequence[Problem] = (),
) -> Evaluation:
    """Evaluate every change. With `pull=None`, report what each change needs (nobody has approved)."""
    run = _Run(policy, codeowners, pull)
    results = tuple(_evaluate_change(run, change, problems) for change in changes)
    all_problems = list(problems)
    if changes:
        all_problems += [p for p in codeowners.problems if p not in all_problems]
    verdicts = [r.verdict for r in results]
    stray = _stray_errors(problems, changes, policy)
    if stray:
        verdicts.append("invalid")  # an invalid flag file no change accounts for still fails the PR
    verdict = worst(verdicts)
    return Evaluation(
        verdict=verdict,
        changes=results,
        problems=tuple(all_problems),
        message=_message(results, stray, run.rejected_by),
        warnings=tuple(run.warnings),
    )


def teams_needed(
    policy: Policy,
    changes: Sequence[Change],
    codeowners: CodeOwners,
    labels: frozenset[str] | None = None,
) -> set[str]:
    """The "org/slug" teams (lower case) whose members the evaluation may need: those named by the roles
    of every workflow the changes can get (all label-dependent candidates when `labels` is None), and the
    code owners of the changed files when such a workflow uses them."""
    teams: set[str] = set()
    for change in changes:
        if labels is None:
            names = possible_workflows(policy, change)
        else:
            found = rule_for(policy, change, labels)
            names = [found[1].workflow] if found else []
        for name in names:
            workflow = policy.workflows.get(name)
            if workflow is None:
                continue
            for step in workflow.steps:
                teams.update(p.name for p in role_principals(policy, step.role) or () if p.kind == "team")
            if uses_codeowners(workflow):
                owners = (parse_principal(o) for o in codeowners.owners_for(change.path))
                teams.update(p.name for p in owners if p is not None and p.kind == "team")
    return teams


# --- reviews ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    """Each counted user's standing: their latest decisive review, keyed by lower-case login."""

    approved: dict[str, Review]
    changes_requested: dict[str, Review]


def decisions(pull: PullSnapshot, allow_author: bool, count_bots: bool) -> Decisions:
    author = normalize_login(pull.author)
    latest: dict[str, Review] = {}
    for review in sorted(pull.reviews, key=_review_order):
        login = normalize_login(review.user)
        if not login or review.state not in DECISIVE_STATES:
            continue
        if (login == author and not allow_author) or (review.is_bot and not count_bots):
            continue
        latest[login] = review
    return Decisions(
        approved={k: r for k, r in latest.items() if r.state == "APPROVED"},
        changes_requested={k: r for k, r in latest.items() if r.state == "CHANGES_REQUESTED"},
    )


def _review_order(review: Review) -> tuple[int, float, int]:
    # Submission time, then id (GitHub's ids grow with time); reviews never submitted sort last.
    if review.submitted_at:
        try:
            when = datetime.fromisoformat(review.submitted_at)
        except (TypeError, ValueError):
            pass
        else:
            return (0, (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp(), review.id)
    return (1, 0.0, review.id)


# --- one run ------------------------------------------------------------------------------------------


@dataclass
class _Run:
    policy: Policy
    codeowners: CodeOwners
    pull: PullSnapshot | None
    warnings: list[str] = field(default_factory=list)
    rejected_by: list[str] = field(default_factory=list)  # for the one-line message
    _reads: dict[tuple[str, str], bytes | Exception | None] = field(default_factory=dict)
    _bases: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        options = self.policy.options
        self.labels = self.pull.labels if self.pull else frozenset()
        self.decisions = (
            decisions(self.pull, options.allow_author, options.count_bots)
            if self.pull
            else Decisions({}, {})
        )

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def read(self, sha: str, path: str) -> bytes | Exception | None:
        key = (sha, path)
        if key not in self._reads:
            assert self.pull is not None
            try:
                self._reads[key] = self.pull.read(sha, path)
            except Exception as exc:  # the reader is an adapter (git, GitHub): any failure voids, fail closed
                self._reads[key] = exc
                self.warn(f"could not read {path} at {sha[:12]}: {exc}")
        return self._reads[key]

    def staleness(self, review: Review, change: Change) -> str | None:
        """Why an approval no longer holds for `change`, or None while it does. An approval approves a
        change: a (before, after) pair per file, as the reviewer saw it. It holds while the PR's base is
        the one it was given against (no retarget since) and, per `stale_approvals`, while each file's
        content at the head (after) and at the merge base with the base branch (before) is the same as at
        the reviewed commit."""
        assert self.pull is not None
        changed_at = self.pull.base_changed_at
        if changed_at is not None and not _submitted_after(review, changed_at):
            return f"given before the base branch was changed at {changed_at}: it approved another change"
        mode = self.policy.options.stale_approvals
        head = self.pull.head_sha
        if mode == "keep" or review.commit_id == head:
            return None
        commit = (review.commit_id or "")[:7]
        if mode == "commit":
            return f"given on {commit or 'an unknown commit'}, not the head"
        if not review.commit_id:
            return "the review names no commit"
        then_base, now_base = self.merge_base(review.commit_id), self.merge_base(head)
        for path in change_files(change):
            if not self._same(review.commit_id, head, path):
                return f"files changed since {commit}"
            if then_base is None or now_base is None:
                return f"the change it approved at {commit} cannot be reconstructed (merge base unknown)"
            if not self._same(then_base, now_base, path):
                return (f"{path} changed on the base since {commit} (merge base {then_base[:7]} → "
                        f"{now_base[:7]}): the change is not the one approved")
        return None

    def fresh(self, review: Review, change: Change) -> bool:
        return self.staleness(review, change) is None

    def _same(self, a: str, b: str, path: str) -> bool:
        if a == b:
            return True
        then, now = self.read(a, path), self.read(b, path)
        return not isinstance(then, Exception) and not isinstance(now, Exception) and then == now

    def merge_base(self, commit: str) -> str | None:
        if commit not in self._bases:
            assert self.pull is not None
            try:
                self._bases[commit] = self.pull.merge_base(commit)
            except Exception as exc:  # an adapter (git, GitHub): unknown, so the approval is void
                self._bases[commit] = None
                self.warn(f"could not find the merge base of {commit[:12]}: {exc}")
        return self._bases[commit]

    def pushed_head(self, login: str) -> bool:
        """`last_pusher_can_approve: false` and `login` pushed the head (or who did is unknown)."""
        if self.policy.options.last_pusher_can_approve:
            return False
        assert self.pull is not None
        pushers = self.pull.last_pushers
        return pushers is None or login in pushers

    def member(self, login: str, principal: Principal) -> bool | None:
        """Whether `login` is `principal`; None when a team's members could not be read."""
        if principal.kind == "user":
            return login == normalize_login(principal.name)
        if principal.kind == "email" or self.pull is None:
            return False
        lookup = self.pull.team(principal.name)
        if lookup.members is None:
            return None
        return login in {normalize_login(m) for m in lookup.members}

    def holds(self, login: str, principals: Sequence[Principal]) -> bool | None:
        answers = [self.member(login, p) for p in principals]
        if True in answers:
            return True
        return None if None in answers else False


def change_files(change: Change) -> tuple[str, ...]:
    """Every file a change covers (its path, and the old path of a move)."""
    if change.files:
        return change.files
    return (change.path,) + ((change.old_path,) if change.old_path else ())


# --- one change ---------------------------------------------------------------------------------------


@dataclass
class _StepFacts:
    step: Step
    active: bool  # `when` holds
    eligible: tuple[str, ...]  # display: the role's members as given
    awaited: tuple[str, ...]
    candidates: list[str]  # lower-case logins of fresh approvals by eligible people
    display: dict[str, str]  # lower-case login → login as GitHub spells it
    rejecters: list[str]
    notes: list[str]  # why approvals did not count, unknown teams, ...
    blocked: bool  # cannot be satisfied whatever the approvals (unknown team's request, no owners)


def _evaluate_change(run: _Run, change: Change, problems: Sequence[Problem]) -> ChangeResult:
    errors = _file_errors(change, problems)
    found = rule_for(run.policy, change, run.labels)
    if found is None:
        reason = f"no policy rule matches {_describe(change)}; every change needs a rule"
        return _failed(change, None, errors, reason)
    index, rule = found
    workflow = run.policy.workflows.get(rule.workflow)
    if workflow is None:
        defined = ", ".join(sorted(run.policy.workflows))
        reason = (
            f"rule {index + 1} sends {_describe(change)} to workflow {rule.workflow!r}, "
            f"which the policy does not define (defined: {defined})"
        )
        return _failed(change, rule.workflow, errors, reason)
    broken = _workflow_error(run.policy, rule.workflow, workflow)
    if broken:
        return _failed(change, rule.workflow, errors, broken)

    facts = [_step_facts(run, change, step) for step in workflow.steps]
    assigned = _assign(run, facts)
    steps = _states(run, facts, assigned)
    verdict = _change_verdict(steps)
    reason = _change_reason(steps, verdict)
    if errors:
        verdict, reason = "invalid", _join(errors, reason)
    return ChangeResult(change, rule.workflow, verdict, steps, reason)


def _failed(change: Change, workflow: str | None, errors: str, reason: str) -> ChangeResult:
    """A change the policy cannot route: an error (or invalid, when its files are invalid too)."""
    return ChangeResult(change, workflow, "invalid" if errors else "error", (), _join(errors, reason))


def _step_facts(run: _Run, change: Change, step: Step) -> _StepFacts:
    active = step.when is None or condition_holds(step.when, change, run.labels)
    notes: list[str] = []
    blocked = False
    owners: list[Principal] = []
    if step.codeowner or step.role == BUILTIN_ROLE_CODEOWNER:
        owners = _owners(run, change)
        if not owners:
            where = run.codeowners.file or "CODEOWNERS (none found)"
            if run.codeowners.owners_for(change.path):
                notes.append(f"{change.path} is owned only by email addresses in {where}, which cannot be "
                             "matched to GitHub logins")
            else:
                notes.append(f"{change.path} has no code owner in {where}")
            blocked = True
    if step.role == BUILTIN_ROLE_CODEOWNER:
        role, required = owners, []
    else:
        role, required = role_principals(run.policy, step.role) or [], owners if step.codeowner else []
    if step.codeowner and step.role != BUILTIN_ROLE_CODEOWNER and owners:
        notes.append(f"approvers must also own {change.path} ({', '.join(p.text for p in owners)})")

    def eligible(login: str) -> bool | None:
        answer = run.holds(login, role)
        if answer is not False and required:
            also = run.holds(login, required)
            answer = False if also is False else (answer and also)
        return answer

    candidates: list[str] = []
    rejecters: list[str] = []
    display: dict[str, str] = {}
    if run.pull is not None and active:
        teams = {p.name for p in (*role, *required) if p.kind == "team"}
        unknown = sorted(t for t in teams if not run.pull.team(t).known)
        for slug in unknown:
            error = run.pull.team(slug).error or "members could not be read"
            notes.append(f"members of @{slug} unknown ({error}); their approvals cannot be counted")
            run.warn(f"team @{slug}: {error}")
        uncertain: list[str] = []
        for login, review in sorted(run.decisions.approved.items()):
            display[login] = review.user
            verdict = eligible(login)
            if verdict is None:
                uncertain.append(review.user)
            elif verdict and run.pushed_head(login):
                notes.append(f"approval by {review.user} does not count: they pushed the latest commit "
                             "(last_pusher_can_approve: false)")
            elif verdict and (stale := run.staleness(review, change)):
                notes.append(f"approval by {review.user} is stale ({stale})")
            elif verdict:
                candidates.append(login)
        if uncertain:
            notes.append(f"cannot tell whether {', '.join(uncertain)} may approve this step")
        for login, review in sorted(run.decisions.changes_requested.items()):
            display[login] = review.user
            verdict = eligible(login)
            if verdict:
                rejecters.append(login)
            elif verdict is None:
                # They may be eligible: their open request for changes may block the step. Never guess.
                notes.append(f"changes requested by {review.user}, whose team membership is unknown")
                blocked = True

    author = normalize_login(run.pull.author) if run.pull else ""
    awaited = tuple(
        p.request
        for p in role
        if p.kind == "team" or (p.kind == "user" and p.name != author and p.name not in candidates
                                and (not required or run.holds(p.name, required) is not False))
    )
    return _StepFacts(
        step=step,
        active=active,
        eligible=tuple(p.text for p in role if p.kind != "email"),
        awaited=awaited,
        candidates=candidates,
        display=display,
        rejecters=rejecters,
        notes=notes,
        blocked=blocked,
    )


def _owners(run: _Run, change: Change) -> list[Principal]:
    owners: list[Principal] = []
    for text in run.codeowners.owners_for(change.path):
        principal = parse_principal(text)
        if principal is None:
            continue
        if principal.kind == "email":
            run.warn(
                f"CODEOWNERS owner {text} of {change.path} is an email address; it cannot be matched to a "
                "GitHub login and is not counted"
            )
            continue
        owners.append(principal)
    return owners


def _assign(run: _Run, facts: list[_StepFacts]) -> dict[str, tuple[str, ...]]:
    active = [f for f in facts if f.active]
    if run.policy.options.distinct_approvers:
        # Rejected and waiting steps take part too: leaving them out would let a step's approvers move
        # whenever its state changes, and a new approval could then unsatisfy another step.
        return matching.assign([matching.Demand(f.step.id, f.step.approvals, f.candidates) for f in active])
    return {f.step.id: tuple(f.candidates) for f in active}


def _states(
    run: _Run, facts: list[_StepFacts], assigned: dict[str, tuple[str, ...]]
) -> tuple[StepResult, ...]:
    by_id = {f.step.id: f for f in facts}
    states: dict[str, StepState] = {}
    reasons: dict[str, str] = {}

    def state_of(step_id: str) -> StepState:
        if step_id in states:
            return states[step_id]
        f = by_id[step_id]
        step = f.step
        got = assigned.get(step.id, ())
        before = [a for a in step.after if state_of(a) not in ("satisfied", "skipped")]
        state: StepState
        if not f.active:
            state, reason = "skipped", "not needed: its `when` condition does not hold"
        elif f.rejecters:
            names = ", ".join(f.display[r] for r in f.rejecters)
            run.rejected_by.extend(f.display[r] for r in f.rejecters if f.display[r] not in run.rejected_by)
            state, reason = "rejected", f"changes requested by {names}"
        elif before:
            state, reason = "waiting", f"waits for {', '.join(before)}"
        elif len(got) >= step.approvals and not f.blocked:
            state, reason = "satisfied", ""
        else:
            state, reason = "pending", _pending_reason(f, len(got))
        states[step_id], reasons[step_id] = state, "; ".join(x for x in (reason, *f.notes) if x)
        return state

    results = []
    for f in facts:
        state = state_of(f.step.id)
        got = assigned.get(f.step.id, ())
        approved_by = tuple(f.display[login] for login in got) if state != "skipped" else ()
        results.append(
            StepResult(
                id=f.step.id,
                role=f.step.role,
                state=state,
                approved_by=approved_by,
                eligible=f.eligible,
                reason=reasons[f.step.id],
                awaited=f.awaited if state == "pending" else (),
                approvals=f.step.approvals,
                after=tuple(f.step.after),
            )
        )
    return tuple(results)


def _pending_reason(f: _StepFacts, got: int) -> str:
    need = f.step.approvals
    who = f"{f.step.role} ({', '.join(f.eligible)})" if f.eligible else f.step.role
    noun = "approval" if need == 1 else "approvals"
    text = f"needs {need} {noun} from {who}"
    if got:
        text += f"; has {got}"
    if got < len(f.candidates):
        text += "; other approvers already fill other steps (distinct_approvers)"
    return text


def _change_verdict(steps: Sequence[StepResult]) -> Verdict:
    states = {s.state for s in steps}
    if "rejected" in states:
        return "rejected"
    if states <= {"satisfied", "skipped"}:
        return "approved"
    return "pending"


def _change_reason(steps: Sequence[StepResult], verdict: Verdict) -> str:
    if verdict == "approved":
        return "approved"
    if verdict == "rejected":
        return "; ".join(f"{s.id}: {s.reason}" for s in steps if s.state == "rejected")
    pending = [s for s in steps if s.state == "pending"]
    return "waiting for " + ", ".join(_wanted(s) for s in pending) if pending else "waiting"


def _wanted(step: StepResult) -> str:
    return f"{step.role} ({', '.join(step.eligible)})" if step.eligible else step.role


def _workflow_error(policy: Policy, name: str, workflow: Workflow) -> str:
    """Defects that make a workflow unusable (the policy's validation reports them too)."""
    ids = [s.id for s in workflow.steps]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        return f"workflow {name!r} repeats step ids: {', '.join(dupes)}"
    for step in workflow.steps:
        if step.role != BUILTIN_ROLE_CODEOWNER and step.role not in policy.roles:
            allowed = ", ".join([*sorted(policy.roles), BUILTIN_ROLE_CODEOWNER])
            return f"workflow {name!r} step {step.id!r} uses undefined role {step.role!r} (roles: {allowed})"
        unknown = [a for a in step.after if a not in ids]
        if unknown:
            return f"workflow {name!r} step {step.id!r} comes after unknown steps: {', '.join(unknown)}"
    graph = {s.id: list(s.after) for s in workflow.steps}
    done: set[str] = set()
    for start in ids:
        path: list[str] = []
        if _cycle(start, graph, done, path):
            return f"workflow {name!r} has a cycle in `after`: {' → '.join(path)}"
    return ""


def _cycle(node: str, graph: dict[str, list[str]], done: set[str], path: list[str]) -> bool:
    if node in path:
        path.append(node)
        return True
    if node in done:
        return False
    path.append(node)
    if any(_cycle(nxt, graph, done, path) for nxt in graph[node]):
        return True
    path.pop()
    done.add(node)
    return False


def _file_errors(change: Change, problems: Sequence[Problem]) -> str:
    files = set(change_files(change))
    errors = [p for p in problems if p.severity == "error" and p.file in files]
    if not errors:
        return ""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} in {', '.join(sorted({p.file for p in errors}))}"


def _stray_errors(problems: Sequence[Problem], changes: Sequence[Change], policy: Policy) -> list[Problem]:
    """Errors in flag or schema files that no change covers (a flag broken by a schema change, say).
    Errors in the base policy are not among them: they fail only the changes they touch, so that the PR
    fixing them can still be approved."""
    covered = {path for change in changes for path in change_files(change)}
    inside = policy.flags_dir.strip("/") + "/"
    return [
        p for p in problems if p.severity == "error" and p.file not in covered and p.file.startswith(inside)
    ]


def _join(first: str, second: str) -> str:
    return "; ".join(x for x in (first, second) if x)


def _describe(change: Change) -> str:
    return f"{change.ident()} ({change.change_type}, {change.path})"


def _submitted_after(review: Review, moment: str) -> bool:
    """Whether the review was submitted strictly after `moment` (unknown times: no)."""
    try:
        when = datetime.fromisoformat(review.submitted_at or "")
        then = datetime.fromisoformat(moment)
    except (TypeError, ValueError):
        return False
    return _aware(when) > _aware(then)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _message(results: Sequence[ChangeResult], stray: Sequence[Problem], rejected_by: Sequence[str]) -> str:
    """One line for the commit status and the summary."""
    if not results:
        if stray:
            return f"{NO_CHANGES}; {len(stray)} validation error{'s' if len(stray) > 1 else ''}"
        return NO_CHANGES
    approved = sum(r.verdict == "approved" for r in results)
    parts = [f"{approved} of {len(results)} change{'s' if len(results) > 1 else ''} approved"]
    invalid = [r for r in results if r.verdict == "invalid"]
    if invalid or stray:
        parts.append(f"{len(invalid) + len(stray)} invalid")
    errors = [r for r in results if r.verdict == "error"]
    if errors:
        parts.append(f"no usable rule for {_idents(errors)}")
    if rejected_by:
        parts.append(f"changes requested by {', '.join(sorted(rejected_by, key=str.lower))}")
    wanted: list[str] = []
    for r in results:
        for s in r.steps:
            if s.state == "pending" and _wanted(s) not in wanted:
                wanted.append(_wanted(s))
    if wanted:
        shown = ", ".join(wanted[:3]) + (f" and {len(wanted) - 3} more" if len(wanted) > 3 else "")
        parts.append(f"waiting for {shown}")
    return "; ".join(parts)


def _idents(results: Sequence[ChangeResult]) -> str:
    idents = [r.change.ident() for r in results]
    return ", ".join(idents[:3]) + (f" and {len(idents) - 3} more" if len(idents) > 3 else "")
