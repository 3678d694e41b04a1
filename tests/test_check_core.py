"""The check and plan use cases over plain values: trees in memory, a hand-written `PullPort` that records
what it was asked. No HTTP, no git."""

from __future__ import annotations

from collections.abc import Iterable

from gitops_flags import check, check_report, plan, render
from gitops_flags.check import PullHistory
from gitops_flags.reconcile import MergedPull
from gitops_flags.snapshot import PullInfo, Review, TeamLookup
from gitops_flags.tree import DictTree, Tree

POLICY = ("version: 1\nenvironments: [production]\nroles: {boss: ['@acme/bosses']}\n"
          "rules: [{match: {kind: flag}, workflow: w}]\nworkflows: {w: {steps: [{id: ok, role: boss}]}}\n")
FLAG = ('key: f\ntype: boolean\nvariants: {"on": true, "off": false}\ndefault_variant: "on"\n'
        "environments: {production: {enabled: %s}}\n")
BASE, HEAD, TIP = "b" * 40, "h" * 40, "t" * 40


class FakePort:
    """`check.PullPort` over trees in memory; `asked` records every question beyond the trees."""

    def __init__(self, trees: dict[str, Tree], members: dict[str, frozenset[str]], tip: str | None = None,
                 pushers: frozenset[str] | None = frozenset()) -> None:
        self.trees, self.members, self.tip, self.pushers = trees, members, tip, pushers
        self.asked: list[str] = []

    def tree(self, sha: str) -> Tree:
        return self.trees[sha]

    def read(self, sha: str, path: str) -> bytes | None:
        return self.trees[sha].read(path) if sha in self.trees else None

    def merge_base(self, base: str, commit: str) -> str | None:
        return base

    def team_members(self, teams: Iterable[str]) -> dict[str, TeamLookup]:
        wanted = sorted(teams)
        self.asked.append(f"teams {','.join(wanted)}")
        return {t: TeamLookup(self.members.get(t, frozenset())) for t in wanted}

    def history(self, number: int, head_sha: str, pushers: bool) -> PullHistory:
        self.asked.append(f"history pushers={pushers}")
        return PullHistory(None, self.pushers if pushers else frozenset())

    def branch_head(self, branch: str) -> str | None:
        self.asked.append(f"head {branch}")
        return self.tip


def info(**overrides: object) -> PullInfo:
    fields: dict[str, object] = dict(
        number=7, author="carol", head_sha=HEAD, base_sha=BASE, base_ref="main", head_repo="acme/flags",
        base_repo="acme/flags", labels=frozenset(), requested_users=frozenset(), requested_teams=frozenset(),
        changed_files=1, state="open", draft=False, html_url="https://github.com/acme/flags/pull/7")
    fields.update(overrides)
    return PullInfo(**fields)  # type: ignore[arg-type]


def trees(policy_at_tip: str = POLICY) -> dict[str, Tree]:
    return {
        BASE: DictTree({".github/gitops-flags.yml": POLICY, "flags/f.yaml": FLAG % "true"}),
        HEAD: DictTree({".github/gitops-flags.yml": POLICY, "flags/f.yaml": FLAG % "false"}),
        TIP: DictTree({".github/gitops-flags.yml": policy_at_tip, "flags/f.yaml": FLAG % "true"}),
    }


def test_with_no_review_that_counts_nothing_about_people_is_asked() -> None:
    port = FakePort(trees(), {"acme/bosses": frozenset({"ann"})})
    own = [Review(1, "carol", "APPROVED", HEAD)]  # the author's own approval never counts
    evaluation = check.evaluate_current(info(), ["flags/f.yaml"], own, port)
    assert evaluation.verdict == "pending"
    assert port.asked == []


def test_an_approval_is_checked_against_the_team_and_the_history() -> None:
    port = FakePort(trees(), {"acme/bosses": frozenset({"ann"})}, tip=BASE)
    evaluation = check.evaluate_current(info(), ["flags/f.yaml"], [Review(1, "ann", "APPROVED", HEAD)], port)
    assert evaluation.verdict == "approved"
    assert evaluation.changes[0].steps[0].approved_by == ("ann",)
    assert port.asked == ["teams acme/bosses", "history pushers=False", "head main"]


def test_who_pushed_the_head_is_asked_only_when_the_policy_bars_the_last_pusher() -> None:
    barred = POLICY + "options: {last_pusher_can_approve: false}\n"
    files = trees()
    files[BASE] = DictTree({".github/gitops-flags.yml": barred, "flags/f.yaml": FLAG % "true"})
    port = FakePort(files, {"acme/bosses": frozenset({"ann"})}, pushers=frozenset({"ann"}))
    evaluation = check.evaluate_pull(info(), ["flags/f.yaml"], [Review(1, "ann", "APPROVED", HEAD)], port)
    assert port.asked == ["teams acme/bosses", "history pushers=True"]
    assert evaluation.verdict == "pending"  # ann pushed the head: her approval does not count


def test_a_policy_tightened_on_the_base_branch_binds_the_pr() -> None:
    stricter = POLICY.replace("{id: ok, role: boss}", "{id: ok, role: boss, approvals: 2}")
    port = FakePort(trees(stricter), {"acme/bosses": frozenset({"ann"})}, tip=TIP)
    evaluation = check.evaluate_current(info(), ["flags/f.yaml"], [Review(1, "ann", "APPROVED", HEAD)], port)
    assert evaluation.verdict == "pending"
    assert any("behind main" in w for w in evaluation.warnings)


def test_a_landed_pr_is_judged_at_the_head_that_merged() -> None:
    port = FakePort(trees(), {"acme/bosses": frozenset({"ann"})})
    landed = MergedPull(7, "", "carol", HEAD, BASE, "m" * 40)
    moved_on = info(head_sha="x" * 40, base_sha="y" * 40)  # what the PR shows now is not what merged
    approval = [Review(1, "ann", "APPROVED", HEAD)]
    evaluation = check.evaluate_landed(landed, moved_on, ["flags/f.yaml"], approval, port)
    assert evaluation.verdict == "approved"


def test_the_report_decides_the_status_the_comment_and_the_requests() -> None:
    port = FakePort(trees(), {})
    evaluation = check.evaluate_current(info(), ["flags/f.yaml"], [], port)
    links = render.Links("https://github.com", "acme/flags", HEAD, None)
    first = check_report.report(evaluation, info(), [], "acme", links, None)
    assert (first.state, first.comment_action, first.teams, first.exit_code) == ("pending", "create",
                                                                                 ("bosses",), 0)
    sticky = check_report.Comment(5, first.comment, "github-actions[bot]", "Bot", "NONE")
    again = check_report.report(evaluation, info(draft=True), [], "acme", links, sticky, fail_on_pending=True)
    assert (again.comment_action, again.comment_id, again.exit_code) == ("unchanged", 5, 1)
    assert (again.teams, again.deferred) == ((), ("bosses",))  # a draft is asked once it is ready
    assert again.outputs()["verdict"] == "pending"


def test_a_plan_without_a_usable_base_policy_explains_itself_and_reads_no_changes() -> None:
    asked: list[str] = []

    def changed() -> list[str]:
        asked.append("changed")
        return ["flags/f.yaml"]

    base = DictTree({".github/gitops-flags.yml": "version: 1\nenvironments: [production\n"})
    result = plan.plan(BASE, base, trees()[HEAD], changed, None)
    assert (result.evaluation, result.exit_code, asked) == (None, 2, [])
    assert result.errors()[0] == f"error: cannot evaluate: the base commit {BASE[:12]} has no usable policy"
    assert result.document() is None and result.render("text") == ""


def test_a_plan_renders_every_format_from_one_result() -> None:
    result = plan.plan(BASE, trees()[BASE], trees()[HEAD], lambda: ["flags/f.yaml"], None)
    assert result.evaluation is not None and result.exit_code == 1
    assert result.document() == result.evaluation.to_json()
    assert result.render("text") == render.plan_text(result.evaluation)
    assert result.render("markdown").startswith(render.MARKER)
    assert result.errors() == []
