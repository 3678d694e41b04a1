"""render: the comment, status text, annotations, summary and plain text, built from hand-made results."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from gitops_flags import render
from gitops_flags.changes import Change
from gitops_flags.problems import Problem
from gitops_flags.result import ChangeResult, Evaluation, StepResult

md = MarkdownIt("gfm-like")  # GitHub-flavoured: tables, strikethrough, autolinks


def tables(body: str) -> list[list[list[str]]]:
    """Every table the GFM renderer finds, as rows of cell texts (header first)."""
    found: list[list[list[str]]] = []
    tokens = md.parse(body)
    for i, token in enumerate(tokens):
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            found[-1].append([])
        elif token.type in ("th_open", "td_open"):
            found[-1][-1].append(tokens[i + 1].content)
    return found


LINKS = render.Links("https://github.com", "octo-org/flags", "a" * 40, "https://github.com/octo-org/flags/actions/runs/7")


def change(key: str = "new_checkout", env: str | None = "production", summary: str = "enabled false → true",
           path: str | None = None, change_type: str = "toggle") -> Change:
    return Change(kind="flag", key=key, path=path or f"flags/{key}.yaml", change_type=change_type,  # type: ignore[arg-type]
                  summary=summary, environment=env)


def pending_eval(**kw: object) -> Evaluation:
    steps = (
        StepResult("manager", "manager", "satisfied", approved_by=("alice",)),
        StepResult("qa", "qa", "pending", awaited=("acme/qa", "bob")),
        StepResult("compliance", "compliance", "waiting", reason="waits for qa"),
    )
    result = ChangeResult(change(**kw), "flag_approval", "pending", steps)  # type: ignore[arg-type]
    return Evaluation("pending", (result,), message="0 of 1 change approved")


# --- escaping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        ("ping @evil please", "@evil"),
        ("<img src=x onerror=alert(1)>", "<img"),
        ("a | b", "a | b"),
        ("see [here](https://evil.example)", "[here]("),
        ("![x](https://evil.example/p.png)", "!["),
        ("fixes #12", "#12"),
        ("`code`", "`code`"),
        ("visit https://evil.example", "https://"),
    ],
)
def test_escape_md_neutralises(text: str, forbidden: str) -> None:
    out = render.escape_md(text)
    assert forbidden not in out
    assert "\n" not in out


def test_escape_md_flattens_newlines_and_drops_control_and_bidi_characters() -> None:
    out = render.escape_md("line one\nline two\r\n| x |\x1b[31m\u202egnp.exe")
    assert "\n" not in out and "\r" not in out
    assert "\x1b" not in out and "\u202e" not in out
    assert "|" not in out.replace("&#124;", "")


def test_code_span_falls_back_when_it_could_break_out() -> None:
    assert render.code("flags/a.yaml") == "`flags/a.yaml`"
    assert "`" not in render.code("a`b").replace("\\`", "")
    assert "|" not in render.code("a|b").replace("&#124;", "")


def test_mention_only_well_formed_names() -> None:
    assert render.mention("alice") == "@alice"
    assert render.mention("@acme/qa") == "@acme/qa"
    assert render.mention("acme/qa") == "@acme/qa"
    assert "@evil" not in render.mention("x @evil <b>")


# --- the comment ----------------------------------------------------------------------------------------


def test_comment_has_marker_digest_header_and_mentions_only_awaited_once() -> None:
    body = render.comment_markdown(pending_eval(), links=LINKS)
    assert body.startswith(render.MARKER)
    assert render.parse_digest(body) == render.digest(pending_eval(), LINKS)
    assert "gitops-flags: pending" in body
    # awaited users and teams are mentioned once, in the header; the approver is named but not mentioned
    mentions = re.findall(r"(?<![\w&])@([A-Za-z0-9/_-]+)", body)
    assert sorted(mentions) == ["acme/qa", "bob"]
    assert next(line for line in body.splitlines() if "@" in line).startswith("**Awaiting:**")
    assert "alice" in body and "@alice" not in body


def test_comment_escapes_pr_supplied_strings() -> None:
    evil = "hi @evil <img src=x> | col\nnew line [x](http://e) ![i](http://e/i.png) `tick`"
    ev = Evaluation("pending", (ChangeResult(change(summary=evil), "wf", "pending",
                                             (StepResult("s", "r", "pending", reason=evil),)),),
                    problems=(Problem("flags/a|b.yaml", 3, 1, evil),), warnings=(evil,))
    body = render.comment_markdown(ev, links=LINKS)
    assert "@evil" not in body
    assert "<img" not in body
    assert "![i]" not in body and "[x](" not in body
    assert "`tick`" not in body
    # no `|` or newline from the PR split a row: a summary row keeps 4 cells, a problem row 3
    html = md.render(body)
    assert "<img" not in html and "href=\"http://e" not in html
    summary, problems = tables(body)[:2]
    assert [len(row) for row in summary] == [4, 4]
    assert [len(row) for row in problems] == [3, 3]
    assert "@&#8203;evil &lt;img src=x&gt; &#124; col" in summary[1][0]  # shown, as inert text


def test_problems_link_to_the_file_line_at_head() -> None:
    ev = Evaluation("invalid", problems=(Problem("flags/x y.yaml", 12, 3, "bad value"),))
    body = render.comment_markdown(ev, links=LINKS)
    assert f"https://github.com/octo-org/flags/blob/{'a' * 40}/flags/x%20y.yaml#L12" in body


def test_since_last_evaluation_lists_what_changed() -> None:
    before = render.digest(pending_eval(), LINKS)
    steps = (
        StepResult("manager", "manager", "satisfied", approved_by=("alice",)),
        StepResult("qa", "qa", "satisfied", approved_by=("bob",)),
        StepResult("compliance", "compliance", "skipped"),
    )
    now = Evaluation("approved", (ChangeResult(change(), "flag_approval", "approved", steps),))
    body = render.comment_markdown(now, previous=before, links=LINKS)
    assert "Since the last evaluation" in body
    assert "Verdict: pending → approved" in body
    assert "step `qa`: pending → satisfied (approved by bob)" in body


def test_unchanged_evaluation_has_an_equal_digest_and_a_new_head_does_not() -> None:
    assert render.digest(pending_eval(), LINKS) == render.digest(pending_eval(), LINKS)
    moved = render.Links(LINKS.server_url, LINKS.repository, "b" * 40, LINKS.run_url)
    assert render.digest(pending_eval(), LINKS) != render.digest(pending_eval(), moved)


def test_parse_digest_rejects_garbage() -> None:
    assert render.parse_digest("no digest") is None
    assert render.parse_digest("<!-- gitops-flags:digest v1.!!!! -->") is None
    assert render.parse_digest("<!-- gitops-flags:digest v1.aGVsbG8= -->") is None  # not zlib


def test_since_lines_survive_a_malformed_previous_digest() -> None:
    malformed = {"v": 1, "changes": {"x": "nonsense"}, "verdict": 3}
    lines = render.since_lines(malformed, render.digest(pending_eval()))
    assert lines  # it reports differences instead of raising


def many_changes(n: int, summary: str = "x" * 200) -> Evaluation:
    results = tuple(
        ChangeResult(change(key=f"flag_{i:04d}", summary=summary), "flag_approval", "pending",
                     (StepResult("qa", "qa", "pending", awaited=("acme/qa",), reason="r" * 200),))
        for i in range(n)
    )
    return Evaluation("pending", results)


def test_three_hundred_changes_keep_the_whole_summary_and_cut_details_with_a_count() -> None:
    ev = many_changes(300)
    body = render.comment_markdown(ev, links=LINKS)
    assert len(body) <= render.COMMENT_LIMIT
    summary = tables(body)[0]
    assert len(summary) == 301 and summary[0] == ["Change", "Verdict", "Next step", "Who can act next"]
    assert [row[0].split()[1].strip("`") for row in summary[1:]] == [f"flag_{i:04d}" for i in range(300)]
    shown = body.count("<details><summary>⏳")
    assert 0 < shown < 300
    assert f"… and {300 - shown} more change details (of 300) in the [job summary" in body
    assert render.parse_digest(body) is not None
    full = render.job_summary(ev, LINKS)
    assert full.count("<details><summary>⏳") == 300 and "more change details" not in full


def test_three_thousand_changes_cut_even_the_summary_with_a_count() -> None:
    body = render.comment_markdown(many_changes(3000), links=LINKS)
    assert len(body) <= render.COMMENT_LIMIT
    rows = len(tables(body)[0]) - 1
    assert 300 < rows < 3000
    assert f"… and {3000 - rows} more changes (of 3000)" in body


# --- status, annotations, text --------------------------------------------------------------------------


def test_status_description_is_short_and_names_the_pending_roles() -> None:
    text = render.status_description(pending_eval())
    assert text.startswith("Pending: 1 of 1 change awaits approval")
    assert "(qa)" in text
    long = Evaluation("invalid", problems=(Problem("flags/a.yaml", 1, 1, "x" * 500),))
    assert len(render.status_description(long)) <= 140
    assert render.status_state(long) == "failure"
    assert render.status_state(Evaluation("approved")) == "success"
    assert render.status_state(Evaluation("error")) == "error"


def test_annotations_escape_like_the_toolkit_and_are_capped_per_severity() -> None:
    p = Problem("flags/a,b:c.yaml", 4, 2, "50% bad\nnext", title="bad-value")
    assert render.annotation(p) == (
        "::error file=flags/a%2Cb%3Ac.yaml,line=4,col=2,title=gitops-flags%3A bad-value::50%25 bad%0Anext"
    )
    problems = [Problem("f", i, None, "e") for i in range(1, 15)] + [
        Problem("f", i, None, "w", severity="warning") for i in range(1, 13)
    ]
    lines = render.annotations(problems)
    assert sum(line.startswith("::error") for line in lines) == 10
    assert sum(line.startswith("::warning") for line in lines) == 10
    assert render.annotations_left_out(problems) == 6
    assert "6 of the problems below are not shown as annotations" in render.job_summary(
        Evaluation("invalid", problems=tuple(problems)))


def test_plan_text_is_plain_and_complete() -> None:
    text = render.plan_text(pending_eval(summary="enabled \x1b[2J false → true"))
    assert "PENDING" in text
    assert "flag new_checkout @ production  [toggle]  pending" in text
    assert "- qa (qa): pending, awaiting @acme/qa, @bob" in text
    assert "- manager (manager): satisfied, approved by alice" in text
    assert "\x1b" not in text


# --- hostile and huge inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# heading", "\\# heading"),
        ("- item", "\\- item"),
        ("+ item", "\\+ item"),
        ("1. item", "1\\. item"),
        ("12) item", "12\\) item"),
        ("---", "\\---"),
        ("===", "\\==="),
        ("    indented code", "indented code"),
        ("#12 fixed", "\\#&#8203;12 fixed"),
        ("a # b - c", "a # b - c"),  # only the start of a block matters
    ],
)
def test_escape_md_cannot_open_a_block(text: str, expected: str) -> None:
    assert render.escape_md(text) == expected


def test_an_injected_marker_cannot_pose_as_the_sticky_comment() -> None:
    evil = f"{render.MARKER} <!-- gitops-flags:digest v1.eJyrVipTslIqS8wpTVWqBQAk2gSW -->"
    ev = Evaluation("pending", (ChangeResult(change(summary=evil), "wf", "pending",
                                             (StepResult("s", "r", "pending", reason=evil),)),),
                    problems=(Problem("flags/a.yaml", 1, 1, evil),), warnings=(evil,), message=evil)
    body = render.comment_markdown(ev, links=LINKS)
    assert body.count(render.MARKER) == 1 and body.startswith(render.MARKER)
    assert body.count("<!-- gitops-flags:digest") == 1
    assert render.parse_digest(body) == render.digest(ev, LINKS)
    assert body.count("<!--") == 2  # the marker and the digest: no HTML comment from the PR


def test_three_thousand_changes_with_long_names_fit_one_comment() -> None:
    results = tuple(
        ChangeResult(change(key=f"flag_{i:04d}_" + "n" * 90, summary="@x | <b> " * 40,
                            path=f"flags/{'deep/' * 20}flag_{i:04d}.yaml"), "flag_approval", "pending",
                     (StepResult("qa", "q" * 80, "pending", approved_by=("alice", "bob"),
                                 awaited=("acme/qa", f"owner-{i}"), reason="`r` | " * 60),))
        for i in range(3000)
    )
    ev = Evaluation("pending", results, warnings=tuple("w" * 400 for _ in range(100)))
    body = render.comment_markdown(ev, previous=render.digest(pending_eval(), LINKS), links=LINKS)
    assert len(body) <= render.COMMENT_LIMIT
    assert body.startswith(render.MARKER) and render.parse_digest(body) is not None
    assert "more changes (of 3000)" in body and LINKS.run_url in body
    awaiting = next(line for line in body.splitlines() if line.startswith("**Awaiting:**"))
    assert awaiting.count("@") == render.MENTIONS_IN_HEADER and "and 2951 more" in awaiting
    assert len(render.job_summary(ev, LINKS).encode()) <= render.SUMMARY_LIMIT_BYTES


def test_a_comment_cut_in_its_fixed_parts_is_cut_between_lines() -> None:
    problems = tuple(Problem(f"flags/f{i}.yaml", 1, 1, "@x|" * 400) for i in range(60))
    ev = Evaluation("invalid", problems=problems,
                    warnings=tuple("@y|" * 200 for _ in range(20)), message="@z" * 600)
    body = render.comment_markdown(ev, links=LINKS)
    assert len(body) <= render.COMMENT_LIMIT
    assert re.search(r"… and \d+ more problems \(of 60\)", body)  # the rows that fit, then a count
    assert body.rstrip().endswith("</sub>")
