"""Approval evaluation, table-driven over in-memory snapshots (in the manner of policy-bot's approve_test.go).

One base PR context; each case changes what it needs (reviews, labels, options, the change) and states
the step states, the people assigned, and the change's verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import github_fixtures as gh
import pytest

from gitops_flags.approvals import Decisions, decisions, evaluate, teams_needed
from gitops_flags.changes import Change
from gitops_flags.codeowners import parse
from gitops_flags.model import Policy
from gitops_flags.problems import Problem
from gitops_flags.result import ChangeResult, Evaluation
from gitops_flags.snapshot import PullSnapshot, Review, TeamLookup

HEAD, OLD = "c2" * 20, "c1" * 20

POLICY_DATA: dict[str, Any] = {
    "environments": ["staging", "production"],
    "roles": {
        "manager": ["@acme/managers"],
        "qa": ["@acme/qa", "quinn"],
        "reviewer": ["rita", "@rob", "sam"],
        "senior": ["sam", "@acme/staff"],
        "compliance": ["@acme/compliance", "carl"],
        "bots": ["release-bot[bot]"],
    },
    "rules": [
        {"match": {"kind": "governance"}, "workflow": "governance"},
        {"match": {"kind": "schema"}, "workflow": "schema_approval"},
        {"match": {"kind": "flag", "path": "flags/owned/**"}, "workflow": "owner"},
        {"match": {"kind": "flag", "key": "mgr_*"}, "workflow": "owned_manager"},
        {"match": {"kind": "flag", "key": "pair_*"}, "workflow": "pair"},
        {"match": {"kind": "flag", "key": "bot_*"}, "workflow": "bot"},
        {"match": {"kind": "flag", "key": "ghost_*"}, "workflow": "ghost"},
        {"match": {"kind": "flag", "key": "duo_*"}, "workflow": "duo"},
        {"match": {"kind": "flag", "environment": "production"}, "workflow": "flag_approval"},
    ],
    "workflows": {
        "flag_approval": {
            "steps": [
                {"id": "manager", "role": "manager"},
                {"id": "qa", "role": "qa", "after": ["manager"],
                 "when": {"change_type": ["create", "update", "rollout"]}},
            ]
        },
        "schema_approval": {
            "steps": [
                {"id": "review1", "role": "reviewer", "approvals": 2},
                {"id": "review2", "role": "senior", "after": ["review1"]},
                {"id": "review3", "role": "compliance", "after": ["review2"],
                 "when": {"any": [{"breaking": True}, {"label": "requires-additional-review"}]}},
            ]
        },
        "governance": {
            "steps": [{"id": "senior", "role": "senior"}, {"id": "compliance", "role": "compliance"}]
        },
        "owner": {"steps": [{"id": "owner", "role": "codeowner"}]},
        "owned_manager": {"steps": [{"id": "manager", "role": "manager", "codeowner": True}]},
        "pair": {"steps": [{"id": "qa", "role": "qa"}, {"id": "manager", "role": "manager"}]},
        "bot": {"steps": [{"id": "bot", "role": "bots"}]},
        "duo": {
            "steps": [
                {"id": "review", "role": "reviewer", "approvals": 2},
                {"id": "senior", "role": "senior"},
            ]
        },
    },
}
POLICY = Policy.model_validate(POLICY_DATA)

CODEOWNERS = parse(
    "flags/owned/ @oscar @acme/owners\n"
    "flags/mgr_* @mia\n"
    "flags/owned/email/ owner@example.com\n"
    "flags/owned/none/\n"
)

TEAMS = {
    "acme/managers": TeamLookup(frozenset({"mia", "Max"})),
    "acme/qa": TeamLookup(frozenset({"quentin", "mia"})),
    "acme/staff": TeamLookup(frozenset({"stella"})),
    "acme/owners": TeamLookup(frozenset({"olga"})),
    "acme/compliance": TeamLookup(None, "needs a token with members:read on the organization acme"),
}

# File contents per commit, for stale approvals: prod_flag.yaml is unchanged since OLD, other.yaml is not.
CONTENTS = {
    (OLD, "flags/prod_flag.yaml"): b"v1",
    (HEAD, "flags/prod_flag.yaml"): b"v1",
    (OLD, "flags/other.yaml"): b"v1",
    (HEAD, "flags/other.yaml"): b"v2",
}


def flag(key: str = "prod_flag", change_type: str = "rollout", path: str | None = None, **kw: Any) -> Change:
    path = path or f"flags/{key}.yaml"
    fields: dict[str, Any] = {"environment": "production", "files": (path,), **kw}
    return Change(kind="flag", key=key, path=path, change_type=change_type, summary="...", **fields)  # type: ignore[arg-type]


def schema(breaking: bool = False) -> Change:
    path = "flags/schemas/cfg.yaml"
    return Change("schema", "cfg", path, "schema_update", "version 1 → 2", breaking=breaking, files=(path,))


GOVERNANCE = Change("governance", ".github/CODEOWNERS", ".github/CODEOWNERS", "governance", "edited",
                    files=(".github/CODEOWNERS",))

_ids = iter(range(1, 1_000_000))


def rv(user: str, state: str = "APPROVED", commit: str | None = HEAD, bot: bool = False, **kw: Any) -> Review:
    """A review; ids grow in the order reviews are written, as GitHub's do."""
    return Review(id=next(_ids), user=user, state=state, commit_id=commit, is_bot=bot, **kw)


def _read(sha: str, path: str) -> bytes | None:
    if sha == "broken":
        raise OSError("object not found")
    return CONTENTS.get((sha, path))


def _merge_base(commit: str) -> str | None:
    return "MB"  # the PR's base has not moved: every reviewed commit shares the head's merge base


def snapshot(*reviews: Review, **kw: Any) -> PullSnapshot:
    base: dict[str, Any] = {"author": "alice", "head_sha": HEAD, "teams": TEAMS, "read": _read,
                            "merge_base": _merge_base}
    return PullSnapshot(reviews=tuple(reviews), **{**base, **kw})


def policy(**options: Any) -> Policy:
    return POLICY.model_copy(update={"options": POLICY.options.model_copy(update=options)})


@dataclass
class Case:
    name: str
    reviews: tuple[Review, ...] = ()
    steps: dict[str, str] = field(default_factory=dict)  # step id → state
    verdict: str = "pending"
    approved_by: dict[str, tuple[str, ...]] = field(default_factory=dict)
    change: Change = field(default_factory=flag)
    options: dict[str, Any] = field(default_factory=dict)
    pull: dict[str, Any] = field(default_factory=dict)
    reason: dict[str, str] = field(default_factory=dict)  # step id → text its reason contains


CASES = [
    # --- workflow order, `after` and `when` ---
    Case("nothing approved yet", steps={"manager": "pending", "qa": "waiting"}),
    Case("manager approved, qa next", (rv("max"),), {"manager": "satisfied", "qa": "pending"},
         approved_by={"manager": ("max",)}),
    Case("manager then qa: approved", (rv("max"), rv("quentin")), {"manager": "satisfied", "qa": "satisfied"},
         "approved", {"manager": ("max",), "qa": ("quentin",)}),
    Case("qa before manager waits", (rv("quentin"),), {"manager": "pending", "qa": "waiting"},
         approved_by={"qa": ("quentin",)}, reason={"qa": "waits for manager"}),
    Case("when false skips qa", (rv("max"),), {"manager": "satisfied", "qa": "skipped"}, "approved",
         change=flag(change_type="toggle")),
    Case("skipped whatever its predecessors", (), {"manager": "pending", "qa": "skipped"},
         change=flag(change_type="toggle")),
    Case("a skipped step cannot be rejected", (rv("max"), rv("quentin", "CHANGES_REQUESTED")),
         {"manager": "satisfied", "qa": "skipped"}, "approved", change=flag(change_type="toggle")),
    # --- which reviews count ---
    Case("later COMMENTED keeps the approval", (rv("max"), rv("max", "COMMENTED")), {"manager": "satisfied"}),
    Case("later PENDING keeps the approval", (rv("max"), rv("max", "PENDING")), {"manager": "satisfied"}),
    Case("DISMISSED approval no longer counts", (rv("max"), rv("max", "DISMISSED")), {"manager": "pending"}),
    Case("approval then changes requested: rejected", (rv("max"), rv("max", "CHANGES_REQUESTED")),
         {"manager": "rejected"}, "rejected", reason={"manager": "changes requested by max"}),
    Case("changes requested then approved", (rv("max", "CHANGES_REQUESTED"), rv("max")),
         {"manager": "satisfied"}),
    Case("changes requested then dismissed", (rv("max", "CHANGES_REQUESTED"), rv("max", "DISMISSED")),
         {"manager": "pending"}),
    Case("changes requested survives a comment", (rv("max", "CHANGES_REQUESTED"), rv("max", "COMMENTED")),
         {"manager": "rejected"}, "rejected"),
    Case("rejected even while waiting", (rv("quentin", "CHANGES_REQUESTED"),),
         {"manager": "pending", "qa": "rejected"}, "rejected"),
    Case("changes requested by someone not eligible is ignored", (rv("max"), rv("zed", "CHANGES_REQUESTED")),
         {"manager": "satisfied"}),
    Case("changes requested stays across pushes", (rv("max", "CHANGES_REQUESTED", commit=OLD),),
         {"manager": "rejected"}, "rejected", change=flag(path="flags/other.yaml")),
    Case("submission time orders reviews, not list order",
         (rv("max", "CHANGES_REQUESTED", submitted_at="2026-01-02T10:00:00Z"),
          rv("max", submitted_at="2026-01-01T10:00:00Z")),
         {"manager": "rejected"}, "rejected"),
    Case("author never counts", (rv("max"),), {"manager": "pending"}, pull={"author": "MAX"}),
    Case("author counts with allow_author", (rv("max"),), {"manager": "satisfied"},
         options={"allow_author": True}, pull={"author": "max"}),
    Case("bots never count", (rv("release-bot[bot]", bot=True),), {"bot": "pending"}, change=flag("bot_x")),
    Case("bots count with count_bots", (rv("release-bot[bot]", bot=True),), {"bot": "satisfied"}, "approved",
         change=flag("bot_x"), options={"count_bots": True}),
    Case("logins compare case-insensitively", (rv("MAX"), rv("Quinn")),
         {"manager": "satisfied", "qa": "satisfied"}, "approved", {"manager": ("MAX",), "qa": ("Quinn",)}),
    Case("someone outside the role does not count", (rv("zed"),), {"manager": "pending"}),
    Case("the author in an eligible team does not count", (rv("Mia"),), {"manager": "pending"},
         pull={"author": "mia"}),
    Case("two approvals by one person count once", (rv("rita"), rv("rita")),
         {"review1": "pending"}, approved_by={"review1": ("rita",)}, change=schema(),
         reason={"review1": "has 1"}),
    Case("team slugs compare case-insensitively", (rv("max"),), {"manager": "satisfied"},
         pull={"teams": {"ACME/Managers": TEAMS["acme/managers"]}}),
    # --- staleness ---
    Case("content: unchanged file keeps an old approval", (rv("max", commit=OLD),), {"manager": "satisfied"}),
    Case("content: changed file voids an old approval", (rv("max", commit=OLD),), {"manager": "pending"},
         change=flag(path="flags/other.yaml"), reason={"manager": "approval by max is stale"}),
    Case("content: no commit is stale", (rv("max", commit=None),), {"manager": "pending"}),
    Case("content: unreadable commit is stale", (rv("max", commit="broken"),), {"manager": "pending"}),
    Case("commit: any other commit voids", (rv("max", commit=OLD),), {"manager": "pending"},
         options={"stale_approvals": "commit"}),
    Case("keep: never voided", (rv("max", commit=OLD),), {"manager": "satisfied"},
         change=flag(path="flags/other.yaml"), options={"stale_approvals": "keep"}),
    Case("keep: a review naming no commit still counts", (rv("max", commit=None),), {"manager": "satisfied"},
         options={"stale_approvals": "keep"}),
    Case("commit: an approval of the head holds", (rv("max", commit=HEAD),), {"manager": "satisfied"},
         change=flag(path="flags/other.yaml"), options={"stale_approvals": "commit"}),
    # --- assignment ---
    Case("one person, two roles, fills one step", (rv("mia"),), {"manager": "satisfied", "qa": "pending"},
         approved_by={"manager": ("mia",), "qa": ()}),
    Case("matching moves the two-role person where needed", (rv("mia"), rv("quentin")),
         {"qa": "satisfied", "manager": "satisfied"}, "approved", {"qa": ("quentin",), "manager": ("mia",)},
         change=flag("pair_x")),
    Case("without distinct_approvers one person fills both", (rv("mia"),),
         {"qa": "satisfied", "manager": "satisfied"}, "approved", {"qa": ("mia",), "manager": ("mia",)},
         change=flag("pair_x"), options={"distinct_approvers": False}),
    # A rejected step keeps its approvers: otherwise rob approving (lifting his rejection) would take sam
    # away from senior, and a new approval would unsatisfy a step.
    Case("a rejected step keeps its approvers", (rv("rob", "CHANGES_REQUESTED"), rv("sam")),
         {"review": "rejected", "senior": "pending"}, "rejected", {"review": ("sam",)}, change=flag("duo_x")),
    Case("... so lifting the rejection unsatisfies nothing",
         (rv("rob", "CHANGES_REQUESTED"), rv("sam"), rv("rob")), {"review": "satisfied", "senior": "pending"},
         approved_by={"review": ("rob", "sam")}, change=flag("duo_x")),
    Case("approvals: 2 needs two people", (rv("rita"),), {"review1": "pending", "review2": "waiting"},
         change=schema(), reason={"review1": "has 1"}),
    Case("approvals: 2 with two people", (rv("rita"), rv("rob")),
         {"review1": "satisfied", "review2": "pending", "review3": "skipped"}, change=schema()),
    Case("a reviewer who is also senior is not counted twice", (rv("rita"), rv("sam")),
         {"review1": "satisfied", "review2": "pending"}, approved_by={"review1": ("rita", "sam")},
         change=schema()),
    Case("schema review complete", (rv("rita"), rv("sam"), rv("stella")),
         {"review1": "satisfied", "review2": "satisfied", "review3": "skipped"}, "approved",
         {"review1": ("rita", "sam"), "review2": ("stella",)}, change=schema()),
    Case("breaking schema needs compliance", (rv("rita"), rv("rob"), rv("sam"), rv("carl")),
         {"review1": "satisfied", "review2": "satisfied", "review3": "satisfied"}, "approved",
         change=schema(breaking=True)),
    Case("label requires compliance", (rv("rita"), rv("rob"), rv("sam")),
         {"review3": "pending"}, change=schema(), pull={"labels": frozenset({"Requires-Additional-Review"})}),
    # --- teams ---
    Case("unknown team is reported, never guessed", (rv("cora"),),
         {"senior": "pending", "compliance": "pending"}, change=GOVERNANCE,
         reason={"compliance": "members of @acme/compliance unknown (needs a token with members:read"}),
    Case("approvals by people of unknown membership are not counted", (rv("cora"), rv("dan")),
         {"compliance": "pending"}, change=GOVERNANCE,
         reason={"compliance": "cannot tell whether cora, dan may approve this step"}),
    Case("known members still satisfy a step with an unknown team", (rv("sam"), rv("carl")),
         {"senior": "satisfied", "compliance": "satisfied"}, "approved", change=GOVERNANCE),
    Case("changes requested by someone of unknown membership blocks",
         (rv("sam"), rv("carl"), rv("cora", "CHANGES_REQUESTED")),
         {"compliance": "pending"}, change=GOVERNANCE,
         reason={"compliance": "changes requested by cora, whose team membership is unknown"}),
    Case("a team not looked up is unknown", (rv("max"),), {"manager": "pending"},
         pull={"teams": {}}, reason={"manager": "team @acme/managers was not looked up"}),
    # --- code owners ---
    Case("codeowner: a user owner", (rv("oscar"),), {"owner": "satisfied"}, "approved",
         change=flag("x", path="flags/owned/x.yaml")),
    Case("codeowner: a team owner's member", (rv("olga"),), {"owner": "satisfied"}, "approved",
         change=flag("x", path="flags/owned/x.yaml")),
    Case("codeowner: others do not count", (rv("max"),), {"owner": "pending"},
         change=flag("x", path="flags/owned/x.yaml")),
    Case("codeowner: a moved file is owned at its new path", (rv("oscar"),), {"owner": "satisfied"},
         "approved",
         change=flag("x", path="flags/owned/x.yaml", old_path="flags/elsewhere/x.yaml")),
    Case("codeowner: email owners never count", (rv("oscar"),), {"owner": "pending"},
         change=flag("x", path="flags/owned/email/x.yaml"), reason={"owner": "only by email addresses"}),
    Case("codeowner: an un-owned file cannot be approved", (rv("oscar"),), {"owner": "pending"},
         change=flag("x", path="flags/owned/none/x.yaml"), reason={"owner": "has no code owner"}),
    Case("codeowner: true needs role and ownership", (rv("max"),), {"manager": "pending"},
         change=flag("mgr_x"), reason={"manager": "approvers must also own flags/mgr_x.yaml (mia)"}),
    Case("codeowner: true, owner with the role", (rv("mia"),), {"manager": "satisfied"}, "approved",
         change=flag("mgr_x")),
    # --- routing ---
    Case("no matching rule is an error", change=flag(environment="staging"), verdict="error"),
    Case("unknown workflow is an error", change=flag("ghost_x"), verdict="error"),
]


def run(case: Case, problems: tuple[Problem, ...] = ()) -> tuple[Evaluation, ChangeResult]:
    pull = snapshot(*case.reviews, **case.pull)
    evaluation = evaluate([case.change], policy(**case.options), CODEOWNERS, pull, problems)
    return evaluation, evaluation.changes[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_evaluate(case: Case) -> None:
    evaluation, result = run(case)
    steps = {s.id: s for s in result.steps}
    assert {k: steps[k].state for k in case.steps} == case.steps
    assert {k: steps[k].approved_by for k in case.approved_by} == case.approved_by
    for step_id, text in case.reason.items():
        assert text in steps[step_id].reason
    assert result.verdict == case.verdict
    assert evaluation.verdict == case.verdict


def test_no_rule_reason_names_the_change() -> None:
    _, result = run(Case("", change=flag(environment="staging")))
    assert result.workflow is None
    assert "flag:prod_flag@staging" in result.reason and "no policy rule" in result.reason


def test_unknown_workflow_reason() -> None:
    _, result = run(Case("", change=flag("ghost_x")))
    assert "'ghost'" in result.reason and "does not define" in result.reason


def test_unknown_team_goes_to_warnings() -> None:
    evaluation, _ = run(Case("", change=GOVERNANCE))
    assert any("@acme/compliance" in w and "members:read" in w for w in evaluation.warnings)


def test_email_owner_goes_to_warnings() -> None:
    evaluation, _ = run(Case("", change=flag("x", path="flags/owned/email/x.yaml")))
    assert any("owner@example.com" in w and "email" in w for w in evaluation.warnings)


def test_unreadable_content_goes_to_warnings() -> None:
    evaluation, _ = run(Case("", (rv("max", commit="broken"),)))
    assert any("could not read flags/prod_flag.yaml" in w for w in evaluation.warnings)


@pytest.mark.parametrize(
    ("mode", "states"),
    [
        ("content", ["satisfied", "pending"]),
        ("commit", ["pending", "pending"]),
        ("keep", ["satisfied", "satisfied"]),
    ],
)
def test_staleness_is_per_change(mode: str, states: list[str]) -> None:
    """A push touching one of two flags: under `content` an old approval holds for the flag that did not
    move on, not for the one that did; `commit` voids both, `keep` neither."""
    changes = [flag(), flag("other")]
    evaluation = evaluate(changes, policy(stale_approvals=mode), CODEOWNERS, snapshot(rv("max", commit=OLD)))
    assert [r.steps[0].state for r in evaluation.changes] == states


def test_changes_requested_on_an_old_commit_outlives_a_push_that_voids_approvals() -> None:
    reviews = (rv("max", commit=OLD), rv("quentin", "CHANGES_REQUESTED", commit=OLD))
    for mode in ("content", "commit", "keep"):
        result = evaluate([flag("other")], policy(stale_approvals=mode), CODEOWNERS, snapshot(*reviews))
        assert result.changes[0].steps[1].state == "rejected" and result.verdict == "rejected"


def test_staleness_covers_every_file_of_the_change() -> None:
    change = flag(files=("flags/prod_flag.yaml", "flags/other.yaml"))
    evaluation = evaluate([change], POLICY, CODEOWNERS, snapshot(rv("max", commit=OLD)))
    assert evaluation.changes[0].steps[0].state == "pending"


# --- verdicts -----------------------------------------------------------------------------------------


def test_validation_error_in_the_change_files_makes_it_invalid() -> None:
    error = Problem("flags/prod_flag.yaml", 3, 5, "unknown variant", "error")
    warning = Problem("flags/prod_flag.yaml", 4, 1, "no description", "warning")
    evaluation, result = run(Case("", (rv("max"), rv("quentin"))), (error,))
    assert (result.verdict, evaluation.verdict) == ("invalid", "invalid")
    assert "1 validation error in flags/prod_flag.yaml" in result.reason
    evaluation, result = run(Case("", (rv("max"), rv("quentin"))), (warning,))
    assert (result.verdict, evaluation.verdict) == ("approved", "approved")


def test_an_error_no_change_accounts_for_still_fails() -> None:
    error = Problem("flags/uses_deleted_schema.yaml", 1, None, "schema cfg does not exist", "error")
    evaluation = evaluate([], POLICY, CODEOWNERS, snapshot(), [error])
    assert evaluation.verdict == "invalid"


def test_base_policy_errors_do_not_fail_unrelated_changes() -> None:
    error = Problem(".github/gitops-flags.yml", 9, 3, "rule 5 names an undefined workflow", "error")
    evaluation, _ = run(Case("", (rv("max"), rv("quentin"))), (error,))
    assert evaluation.verdict == "approved"
    assert evaluation.problems == (error,)


def test_no_changes_is_approved() -> None:
    evaluation = evaluate([], POLICY, CODEOWNERS, snapshot())
    assert (evaluation.verdict, evaluation.message) == ("approved", "no flag changes")
    assert evaluate([], POLICY, CODEOWNERS, None).verdict == "approved"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([flag(), flag(environment="staging")], "error"),  # pending + error
        ([flag(), flag("x", path="flags/owned/x.yaml")], "pending"),
        ([flag(), schema()], "rejected"),  # rita requested changes on the schema
        ([flag(environment="staging"), flag("x", path="flags/owned/x.yaml")], "error"),
    ],
)
def test_overall_verdict_is_the_worst(changes: list[Change], expected: str) -> None:
    pull = snapshot(rv("max"), rv("quentin"), rv("rita", "CHANGES_REQUESTED"))
    assert evaluate(changes, POLICY, CODEOWNERS, pull).verdict == expected


def test_invalid_beats_error() -> None:
    error = Problem("flags/prod_flag.yaml", 1, None, "bad", "error")
    evaluation = evaluate([flag(), flag("y", environment="staging")], POLICY, CODEOWNERS, snapshot(), [error])
    assert [c.verdict for c in evaluation.changes] == ["invalid", "error"]
    assert evaluation.verdict == "invalid"


def test_message_counts_and_names_what_is_awaited() -> None:
    changes = [flag(), flag("x", path="flags/owned/x.yaml"), flag("pair_x")]
    evaluation = evaluate(changes, POLICY, CODEOWNERS, snapshot(rv("max"), rv("quentin")))
    assert evaluation.message == "2 of 3 changes approved; waiting for codeowner (oscar, @acme/owners)"


def test_message_names_who_requested_changes() -> None:
    evaluation = evaluate([flag()], POLICY, CODEOWNERS, snapshot(rv("Max", "CHANGES_REQUESTED")))
    assert evaluation.message == "0 of 1 change approved; changes requested by Max"


# --- what each change needs (no PR) --------------------------------------------------------------------


def test_without_a_pull_every_step_shows_what_it_needs() -> None:
    changes = [flag(), schema(breaking=True), flag(change_type="toggle")]
    evaluation = evaluate(changes, POLICY, CODEOWNERS, None)
    states = [[(s.id, s.state, s.eligible) for s in r.steps] for r in evaluation.changes]
    assert states == [
        [("manager", "pending", ("@acme/managers",)), ("qa", "waiting", ("@acme/qa", "quinn"))],
        [
            ("review1", "pending", ("rita", "rob", "sam")),
            ("review2", "waiting", ("sam", "@acme/staff")),
            ("review3", "waiting", ("@acme/compliance", "carl")),
        ],
        [("manager", "pending", ("@acme/managers",)), ("qa", "skipped", ("@acme/qa", "quinn"))],
    ]
    assert all(not s.approved_by for r in evaluation.changes for s in r.steps)
    assert evaluation.verdict == "pending" and not evaluation.warnings


def test_awaited_lists_who_to_ask_but_not_the_author_or_approvers() -> None:
    _, result = run(Case("", (rv("rita"),), change=schema(), pull={"author": "rob"}))
    review1 = result.steps[0]
    assert review1.state == "pending"
    assert review1.awaited == ("sam",)
    _, result = run(Case("", change=GOVERNANCE))
    assert [s.awaited for s in result.steps] == [("sam", "acme/staff"), ("acme/compliance", "carl")]
    _, result = run(Case("", change=flag()))
    assert result.steps[1].awaited == ()  # waiting steps are not asked yet


def test_approved_by_spelled_as_the_reviewer_spelled_it() -> None:
    _, result = run(Case("", (rv("Max"),)))
    assert result.steps[0].approved_by == ("Max",)


def test_broken_workflow_is_an_error_not_a_pass() -> None:
    cycle = [{"id": "a", "role": "manager", "after": ["b"]}, {"id": "b", "role": "qa", "after": ["a"]}]
    data = {**POLICY_DATA, "workflows": {**POLICY_DATA["workflows"], "flag_approval": {"steps": cycle}}}
    evaluation = evaluate([flag()], Policy.model_validate(data), CODEOWNERS, snapshot(rv("max"), rv("quinn")))
    assert evaluation.verdict == "error"
    assert "cycle" in evaluation.changes[0].reason
    data["workflows"]["flag_approval"] = {"steps": [{"id": "a", "role": "nobody"}]}
    evaluation = evaluate([flag()], Policy.model_validate(data), CODEOWNERS, snapshot())
    assert "undefined role 'nobody'" in evaluation.changes[0].reason


def test_codeowners_warnings_are_reported_with_the_problems() -> None:
    owners = parse("flags/[ab].yaml @x\nflags/ @oscar\n")
    evaluation = evaluate([flag()], POLICY, owners, snapshot())
    assert [p.title for p in evaluation.problems] == ["codeowners-invalid-pattern"]


# --- reviews ------------------------------------------------------------------------------------------


def test_decisions_keep_each_users_latest_decisive_review() -> None:
    pull = snapshot(
        rv("a"), rv("a", "COMMENTED"),
        rv("b", "CHANGES_REQUESTED"), rv("b"),
        rv("c"), rv("c", "CHANGES_REQUESTED"),
        rv("d"), rv("d", "DISMISSED"),
        rv(""), rv("alice"), rv("bot[bot]", bot=True),
    )
    found = decisions(pull, allow_author=False, count_bots=False)
    assert (sorted(found.approved), sorted(found.changes_requested)) == (["a", "b"], ["c"])
    found = decisions(pull, allow_author=True, count_bots=True)
    assert sorted(found.approved) == ["a", "alice", "b", "bot[bot]"]
    assert isinstance(found, Decisions)


# --- teams to look up ---------------------------------------------------------------------------------


def test_teams_needed_names_only_teams_the_changes_can_use() -> None:
    assert teams_needed(POLICY, [flag()], CODEOWNERS) == {"acme/managers", "acme/qa"}
    assert teams_needed(POLICY, [GOVERNANCE], CODEOWNERS) == {"acme/staff", "acme/compliance"}
    assert teams_needed(POLICY, [flag("x", path="flags/owned/x.yaml")], CODEOWNERS) == {"acme/owners"}
    assert teams_needed(POLICY, [flag(environment="staging")], CODEOWNERS) == set()
    assert teams_needed(POLICY, [], CODEOWNERS) == set()


def test_teams_needed_follows_labels_when_known() -> None:
    hotfix = {"match": {"label": "hotfix"}, "workflow": "governance"}
    data = {**POLICY_DATA, "rules": [hotfix, *POLICY_DATA["rules"]]}
    labelled = Policy.model_validate(data)
    assert teams_needed(labelled, [flag()], CODEOWNERS) == {
        "acme/managers", "acme/qa", "acme/staff", "acme/compliance"}
    assert teams_needed(labelled, [flag()], CODEOWNERS, labels=frozenset()) == {"acme/managers", "acme/qa"}


def test_determinism_across_runs() -> None:
    pull = snapshot(rv("mia"), rv("quentin"), rv("sam"), rv("rita"))
    changes = [flag(), flag("pair_x"), schema(True), GOVERNANCE]
    assert evaluate(changes, POLICY, CODEOWNERS, pull) == evaluate(changes, POLICY, CODEOWNERS, pull)
    assert replace(pull) == pull


# --- GitHub's review objects --------------------------------------------------------------------------


def test_reviews_from_rest_and_webhooks() -> None:
    rest = Review.from_github(gh.review(7, "Max", "APPROVED", HEAD))
    assert (rest.id, rest.user, rest.state, rest.commit_id) == (7, "Max", "APPROVED", HEAD)
    assert not rest.is_bot
    dismissed = Review.from_github(gh.event("pull_request_review.dismissed")["review"])
    submitted = Review.from_github(gh.event("pull_request_review.submitted")["review"])
    assert (dismissed.state, submitted.state) == ("DISMISSED", "COMMENTED")  # webhooks: lower case
    assert dismissed.user == "Codertocat" and dismissed.submitted_at == "2019-05-15T15:20:38Z"
    ghost = Review.from_github(gh.example("pulls--list-reviews", user=None))
    assert ghost.user == "" and not ghost.is_bot
    assert Review.from_github(gh.review(1, "renovate[bot]", "APPROVED", HEAD)).is_bot
    assert Review.from_github(gh.example("pulls--list-reviews", user=gh.user("ci-robot", "Bot"))).is_bot


@pytest.mark.parametrize(
    ("objects", "state"),
    [
        ([("max", "approved")], "satisfied"),
        ([("max", "APPROVED"), ("max", "commented")], "satisfied"),
        ([("max", "approved"), ("max", "dismissed")], "pending"),
        ([("max", "changes_requested")], "rejected"),
        ([("max", "CHANGES_REQUESTED"), ("max", "approved")], "satisfied"),
        ([("max", "approved"), ("max", "PENDING")], "satisfied"),
        ([(None, "APPROVED")], "pending"),  # a deleted account
        ([("max", "PENDING")], "pending"),  # a draft review never counts
    ],
)
def test_github_review_objects_decide_like_github(objects: list[tuple[str | None, str]], state: str) -> None:
    reviews = []
    for number, (login, review_state) in enumerate(objects, 1):
        obj = gh.review(number, login or "x", review_state, HEAD, submitted_at=f"2026-11-20T10:00:0{number}Z")
        if login is None:
            obj["user"] = None
        if review_state.upper() == "PENDING":
            obj["submitted_at"] = None  # drafts have no submission time
        reviews.append(Review.from_github(obj))
    result = evaluate([flag()], POLICY, CODEOWNERS, snapshot(*reviews))
    assert result.changes[0].steps[0].state == state


def test_a_bot_in_a_role_never_counts_by_login_alone() -> None:
    bot = Review.from_github(gh.review(1, "release-bot[bot]", "APPROVED", HEAD))  # type "User", but [bot]
    assert evaluate([flag("bot_x")], POLICY, CODEOWNERS, snapshot(bot)).verdict == "pending"



# --- an approval approves a change: (before, after) per file (issue 11, route 2) -------------------------


def pair_policy(**options: Any) -> Policy:
    """flag `pair_x` needs QA then a manager (quinn and mia)."""
    return policy(**options)


PAIR = flag("pair_x", path="flags/prod_flag.yaml")


def states(result: Evaluation) -> dict[str, str]:
    return {s.id: s.state for s in result.changes[0].steps}


@pytest.mark.parametrize("mode", ["content", "commit", "keep"])
def test_a_retarget_makes_every_earlier_approval_stale(mode: str) -> None:
    at = "2026-11-20T10:00:00Z"
    reviews = (rv("quinn", submitted_at=at), rv("mia", submitted_at=at))
    before = evaluate([PAIR], policy(stale_approvals=mode), CODEOWNERS, snapshot(*reviews))
    assert before.verdict == "approved"
    moved = snapshot(*reviews, base_changed_at="2026-11-20T11:00:00Z")
    after = evaluate([PAIR], policy(stale_approvals=mode), CODEOWNERS, moved)
    assert after.verdict == "pending"
    reason = after.changes[0].steps[0].reason
    assert "given before the base branch was changed at 2026-11-20T11:00:00Z" in reason
    later = "2026-11-20T12:00:00Z"
    again = (rv("quinn", submitted_at=later), rv("mia", submitted_at=later))
    assert evaluate([PAIR], policy(stale_approvals=mode), CODEOWNERS, snapshot(*reviews, *again,
                    base_changed_at="2026-11-20T11:00:00Z")).verdict == "approved"


def test_new_base_content_under_an_unchanged_head_file_makes_approvals_stale() -> None:
    """The reviewer saw v0 → v1; the head file is still v1, but the PR merged a base where it was v9."""
    contents = {(OLD, "flags/prod_flag.yaml"): b"v1", (HEAD, "flags/prod_flag.yaml"): b"v1",
                ("MB1", "flags/prod_flag.yaml"): b"v0", ("MB2", "flags/prod_flag.yaml"): b"v9"}
    bases = {OLD: "MB1", HEAD: "MB2"}
    reviews = (rv("quinn", commit=OLD), rv("mia", commit=OLD))
    moved = snapshot(*reviews, read=lambda sha, path: contents.get((sha, path)), merge_base=bases.get)
    result = evaluate([PAIR], policy(), CODEOWNERS, moved)
    assert result.verdict == "pending"
    assert "changed on the base since" in result.changes[0].steps[0].reason
    same = snapshot(*reviews, read=lambda sha, path: contents.get((sha, path)), merge_base=lambda c: "MB1")
    assert evaluate([PAIR], policy(), CODEOWNERS, same).verdict == "approved"


def test_an_unknown_merge_base_voids_an_approval_on_another_commit() -> None:
    reviews = (rv("quinn", commit=OLD), rv("mia", commit=OLD))
    result = evaluate([PAIR], policy(), CODEOWNERS, snapshot(*reviews, merge_base=lambda c: None))
    assert result.verdict == "pending" and "merge base unknown" in result.changes[0].steps[0].reason


# --- last pusher, logins ------------------------------------------------------------------------------


def test_the_last_pusher_does_not_count_when_the_policy_says_so() -> None:
    reviews = (rv("quinn"), rv("mia"))
    pushed = snapshot(*reviews, last_pushers=frozenset({"mia"}))
    assert evaluate([PAIR], policy(), CODEOWNERS, pushed).verdict == "approved"  # default: they count
    strict = evaluate([PAIR], policy(last_pusher_can_approve=False), CODEOWNERS, pushed)
    assert strict.verdict == "pending"
    reasons = " ".join(s.reason for s in strict.changes[0].steps)
    assert "mia does not count: they pushed the latest commit" in reasons
    unknown = evaluate([PAIR], policy(last_pusher_can_approve=False), CODEOWNERS, snapshot(*reviews))
    assert unknown.verdict == "pending"  # who pushed is unknown: nobody can be shown not to have
    other = snapshot(*reviews, last_pushers=frozenset({"carl"}))
    assert evaluate([PAIR], policy(last_pusher_can_approve=False), CODEOWNERS, other).verdict == "approved"


@pytest.mark.parametrize("author", [" mia", "mia ", "@mia", "MIA", "\tMia\n", " @Mia"])
def test_the_author_never_approves_however_the_login_is_spelled(author: str) -> None:
    reviews = (rv("quinn"), rv("mia"))
    result = evaluate([PAIR], policy(), CODEOWNERS, snapshot(*reviews, author=author))
    assert result.verdict == "pending"
    assert states(result)["manager"] == "pending"
