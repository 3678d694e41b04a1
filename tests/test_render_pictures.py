"""The PR comment's summary, folds and pictures: rendered with a GFM renderer, Mermaid checked by Mermaid.

The Mermaid tests run Mermaid's own parser (the `mermaid` npm package under tests/mermaid, with jsdom for
the DOM its sanitiser needs). They are skipped, with the reason, when node or the package is missing;
`.ci/run` installs both.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from gitops_flags import render
from gitops_flags.changes import Change
from gitops_flags.model import RolloutPlan
from gitops_flags.render import mermaid
from gitops_flags.result import ChangeResult, Evaluation, StepResult

MERMAID_DIR = Path(__file__).parent / "mermaid"
md = MarkdownIt("gfm-like")
LINKS = render.Links("https://github.com", "octo-org/flags", "a" * 40, "https://github.com/octo-org/flags/actions/runs/7")

GATE = {"type": "http", "url": "https://status.example.com/checkout", "json_field": "data.error_rate",
        "comparison": "<=", "threshold": 0.02}
PLAN = {"variant": "on", "stages": [5, 25, 50, 75, 100], "stage_delay": "2h", "health_check": GATE}


def flag_change(key: str, change_type: str, before: Any, after: Any, summary: str = "") -> Change:
    return Change("flag", key, f"flags/{key}.yaml", change_type, summary, "production", before, after)  # type: ignore[arg-type]


def two_steps(first: str, second: str, **kw: Any) -> tuple[StepResult, ...]:
    approved = ("alice",) if first == "satisfied" else ()
    managers = ("acme/eng-managers",) if first == "pending" else ()
    qa = ("acme/qa", "bob") if second == "pending" else ()
    return (StepResult("manager", "manager", first, approved_by=approved, awaited=managers),  # type: ignore[arg-type]
            StepResult("qa", "qa", second, after=("manager",), awaited=qa, **kw))  # type: ignore[arg-type]


def example() -> Evaluation:
    return Evaluation("pending", (
        ChangeResult(flag_change("new_checkout_flow", "rollout", {"enabled": True},
                                 {"enabled": True, "rollout": PLAN}, "rollout started"),
                     "flag_approval", "pending", two_steps("pending", "waiting")),
        ChangeResult(flag_change("dark_mode", "toggle", {"enabled": False}, {"enabled": True}),
                     "flag_approval", "pending", two_steps("satisfied", "pending")),
        ChangeResult(flag_change("legacy_export", "toggle", {"enabled": True}, {"enabled": False}),
                     "flag_approval", "approved", two_steps("satisfied", "skipped")),
    ))


def mermaid_blocks(body: str) -> list[str]:
    return [t.content for t in md.parse(body) if t.type == "fence" and t.info.strip() == "mermaid"]


def mermaid_parse(sources: list[str]) -> list[dict[str, Any]]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (.ci/run installs it)")
    if not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        pytest.skip("the mermaid npm package is not installed: run `npm ci` in tests/mermaid (.ci/run does)")
    done = subprocess.run(["node", str(MERMAID_DIR / "parse.mjs")], input=json.dumps(sources), text=True,
                          capture_output=True, timeout=120, check=True)
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


# --- structure, through a GitHub-flavoured renderer -------------------------------------------------------


def test_one_summary_table_for_open_changes_and_the_approved_folded() -> None:
    body = render.comment_markdown(example(), links=LINKS)
    tokens = md.parse(body)
    assert sum(t.type == "table_open" for t in tokens) == 2  # open changes, and approved ones in the fold
    html = md.render(body)
    fold_at = html.index("<details><summary>✅ 1 approved change</summary>")
    first_table, second_table = html.index("<table>"), html.index("<table>", fold_at)
    assert first_table < fold_at < second_table
    open_rows = html[first_table:fold_at]
    assert "new_checkout_flow" in open_rows and "dark_mode" in open_rows and "legacy_export" not in open_rows
    assert "legacy_export" in html[second_table:]
    for heading in ("Change", "Verdict", "Next step", "Who can act next"):
        assert f"<th>{heading}</th>" in open_rows


def test_next_step_and_who_can_act_per_change() -> None:
    body = render.comment_markdown(example(), links=LINKS)
    rows = {line.split("`")[1]: line for line in body.splitlines() if line.startswith("| flag `")}
    assert "approval: `manager`; then `qa`" in rows["new_checkout_flow"]
    assert rows["new_checkout_flow"].endswith("| acme/eng-managers |")
    assert rows["dark_mode"].endswith("| approval: `qa` | acme/qa, bob |")
    assert "merge; `apply` ships it | PR author |" in rows["legacy_export"]


def test_a_toggle_says_which_way_it_goes() -> None:
    html = md.render(render.comment_markdown(example(), links=LINKS))
    assert "dark_mode</code> · <code>production</code> — turns <strong>on</strong>" in html
    assert "legacy_export</code> · <code>production</code> — turns <strong>off</strong> (kill switch)" in html


def test_awaited_people_are_mentioned_once_in_the_header_only() -> None:
    body = render.comment_markdown(example(), links=LINKS)
    mentions = re.findall(r"(?<![\w&])@([A-Za-z0-9/_-]+)", body)
    assert sorted(mentions) == ["acme/eng-managers", "acme/qa", "bob"]
    header = next(line for line in body.splitlines() if line.startswith("**Awaiting:**"))
    assert header.count("@") == 3


def test_rollout_summary_shows_every_stage_the_delay_the_start_and_the_gate() -> None:
    body = render.comment_markdown(example(), links=LINKS)
    rollouts = body[body.index("### Rollouts"):body.index("### Details")]
    assert "5% → 25% → 50% → 75% → 100%" in rollouts
    assert "At least 2h at each stage: the last stage no sooner than 8h after the start." in rollouts
    assert "Starts when `apply` runs after the merge." in rollouts
    assert ("Gate before every stage after the first: HTTP GET `https://status.example.com/checkout` must "
            "answer 200 with `data.error_rate` &lt;= 0.02. A failed gate rolls back to 0%.") in rollouts
    [gantt] = [b for b in mermaid_blocks(body) if b.startswith("gantt")]
    names = [line.split(":")[0].strip() for line in gantt.splitlines() if re.match(r"\s+(at )?\d+%", line)]
    assert names == ["at 5%", "at 25%", "at 50%", "at 75%", "100% reached"]
    assert gantt.count("gate :milestone") == 4
    assert "  tickInterval 2hour" in gantt.splitlines()  # 10h over 5 stages: a label every 2h


@pytest.mark.parametrize("stages", [[1, 5, 9, 100], [5, 25, 50, 75, 100], [1, 2, 3]])
def test_no_gantt_line_is_one_mermaid_reads_as_a_comment(stages: list[int]) -> None:
    """Mermaid's gantt lexer takes a line whose second character is `%` (after leading blanks) for a
    comment (`[^}]%%*[^\n]*`): a task named "5%" would be parsed, accepted and never drawn."""
    plan = RolloutPlan.model_validate({**PLAN, "stages": stages})
    gantt = mermaid.rollout_gantt(plan, "flag", "production")
    assert not [line for line in gantt.splitlines() if re.match(r"\s*[^}\s]%", line)]
    tasks = [line for line in gantt.splitlines() if re.search(r":(milestone, )?s\d+,", line)]
    assert len(tasks) == len(stages)


@pytest.mark.parametrize(("span", "interval"), [(60, "15minute"), (480, "2hour"), (960, "3hour"),
                                                (7200, "1day"), (30_000, "1week"), (200_000, "3week")])
def test_gantt_ticks_are_at_most_about_seven(span: int, interval: str) -> None:
    assert mermaid.tick_interval(span) == interval


def test_a_changed_plan_says_what_it_replaces() -> None:
    old = {"variant": "on", "stages": [10, 100], "stage_delay": "1d"}
    lines = render.rollout_lines(RolloutPlan.model_validate(PLAN), RolloutPlan.model_validate(old))
    assert lines[-1] == "- Replaces: `on` to 10% → 100%, 1d between stages."


def test_flowcharts_one_per_distinct_workflow_state_coloured_by_state() -> None:
    same = tuple(ChangeResult(flag_change(f"f{i}", "update", {}, {}, "x"), "flag_approval", "pending",
                              two_steps("satisfied", "pending")) for i in range(12))
    body = render.comment_markdown(Evaluation("pending", same), links=LINKS)
    [chart] = [b for b in mermaid_blocks(body) if b.startswith("flowchart")]
    assert "s0 --> s1" in chart
    assert "class s0 satisfied" in chart and "class s1 pending" in chart
    assert "and 7 more" in body  # the group names five changes, then counts
    states = ("satisfied", "pending", "waiting", "rejected", "skipped")
    steps = tuple(StepResult(s, "r", s, after=(states[i - 1],) if i else ()) for i, s in enumerate(states))  # type: ignore[arg-type]
    chart = mermaid.workflow_flowchart(steps)
    for state in states:
        assert f"classDef {state} " in chart and f"class s{states.index(state)} {state}" in chart


def test_single_step_and_approved_changes_draw_no_flowchart() -> None:
    one = ChangeResult(flag_change("solo", "update", {}, {}, "x"), "codeowner_review", "pending",
                       (StepResult("owner", "codeowner", "pending", awaited=("bob",)),))
    body = render.comment_markdown(Evaluation("pending", (one,)), links=LINKS)
    assert not mermaid_blocks(body)


# --- hostile text in pictures ---------------------------------------------------------------------------

HOSTILE = ('x"] --> evil["pwned"]\n```\n%%{init: {"securityLevel": "loose"}}%%\n'
           'click s0 "javascript:alert(1)"; @evil #1 <b>')


def test_hostile_labels_cannot_leave_the_label_the_diagram_or_the_fence() -> None:
    steps = (StepResult(HOSTILE[:30], HOSTILE, "satisfied", approved_by=(HOSTILE,)),
             StepResult("qa", HOSTILE, "pending", after=(HOSTILE[:30],), awaited=("acme/qa",)))
    chart = mermaid.workflow_flowchart(steps)
    assert "`" not in chart and "%%" not in chart
    statement = r'  (s\d+\["[^"]*"\]|s\d+ --> s\d+|classDef \w+ [-\w:#,. ]+|class [s\d,]+ \w+)'
    for line in chart.splitlines()[1:]:  # every line one statement we wrote; labels stay in their quotes
        assert re.fullmatch(statement, line)
    gantt = mermaid.rollout_gantt(RolloutPlan.model_validate(PLAN), HOSTILE, HOSTILE)
    assert all(not set(line) & set('`:#%;"<>') for line in gantt.splitlines() if line.startswith("  title"))
    ev = Evaluation("pending", (ChangeResult(flag_change("k", "update", {}, {}, HOSTILE), HOSTILE, "pending",
                                             steps),))
    body = render.comment_markdown(ev, links=LINKS)
    assert len(mermaid_blocks(body)) == 1  # the one flowchart, whole
    assert "@evil" not in body


# --- Mermaid's own parser -------------------------------------------------------------------------------


def test_every_picture_in_the_comment_parses_with_mermaid() -> None:
    rejected = ChangeResult(flag_change("r", "update", {}, {}, "x"), "flag_approval", "rejected",
                            two_steps("rejected", "skipped"))
    dated = dict(PLAN, start_at="2026-12-01T09:00:00Z", stage_delay="1d",
                 health_check={"type": "prometheus", "server": "https://p", "query": "up", "threshold": 1})
    later = ChangeResult(flag_change("d", "rollout", {}, {"enabled": True, "rollout": dated}, "x"),
                         "flag_approval", "pending", two_steps("satisfied", "pending"))
    ev = Evaluation("rejected", (*example().changes, rejected, later))
    sources = mermaid_blocks(render.comment_markdown(ev, links=LINKS))
    assert len(sources) == 5  # three distinct workflow states among the open changes, two rollout plans
    results = mermaid_parse(sources)
    assert all(r["ok"] for r in results), results
    assert sorted(r["type"] for r in results) == ["flowchart-v2"] * 3 + ["gantt"] * 2


def test_hostile_pictures_parse_as_the_diagram_we_wrote() -> None:
    steps = (StepResult(HOSTILE, HOSTILE, "satisfied", approved_by=(HOSTILE,)),
             StepResult("qa", HOSTILE, "rejected", after=(HOSTILE,)))
    sources = [mermaid.workflow_flowchart(steps),
               mermaid.rollout_gantt(RolloutPlan.model_validate(PLAN), HOSTILE, HOSTILE)]
    assert [r.get("type") for r in mermaid_parse(sources)] == ["flowchart-v2", "gantt"]


def test_the_parser_check_can_fail() -> None:
    [result] = mermaid_parse(['flowchart LR\n  a["x"]] --> b'])
    assert not result["ok"] and "Parse error" in result["error"]


@pytest.mark.parametrize(("stages", "gated"), [([1, 5, 25, 50, 100], True), ([5, 25, 50, 75, 100], False),
                                               ([2, 3, 9], True)])
def test_mermaid_draws_every_stage_and_gate(stages: list[int], gated: bool) -> None:
    plan = RolloutPlan.model_validate({**PLAN, "stages": stages} if gated else
                                      {"variant": "on", "stages": stages, "stage_delay": "2h"})
    [result] = mermaid_parse([mermaid.rollout_gantt(plan, "flag", "production")])
    expected = []
    for i, pct in enumerate(stages):
        expected += ["gate"] * (gated and i > 0)
        expected.append("100% reached" if pct == 100 and i == len(stages) - 1 else f"at {pct}%")
    assert result["tasks"] == expected
