"""The sticky PR comment and the job summary, the same sections at two sizes.

Layout, top to bottom: the verdict and whom it waits for (the only @mentions), what changed since the last
run, one summary table (a row per change still open: change, verdict, next step, who can act next), the
approved changes folded, problems, notes, a Mermaid picture per distinct workflow state, each rollout plan
in words and as a gantt chart, then per-change details. Everything after the summary table degrades: when
the comment would pass GitHub's limit, later items are left out with a count and a pointer to the job
summary, which holds the whole report. The comment starts with a hidden marker (to find it again) and a
hidden digest (`digest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..problems import Problem
from ..result import Evaluation
from .changes import detail_item, summary_row
from .digest import digest, encode, since_lines
from .escaping import Links, code, escape_md, file_link, mention
from .github_annotations import left_out_note
from .pictures import rollout_items, workflow_items
from .status import SEVERITY_ICON, VERDICT_ICON, awaited, headline, plural

MARKER = "<!-- gitops-flags:sticky -->"
COMMENT_LIMIT = 65_536  # GitHub refuses longer comment bodies (422 "Body is too long")
SUMMARY_LIMIT_BYTES = 1024 * 1024  # GitHub drops a step summary above 1 MiB
COMMENT_PROBLEM_ROWS = 50  # the rest go to the job summary
MENTIONS_IN_HEADER = 50  # GitHub notifies at most 50 mentions per comment; the tables name everyone
_SUMMARY_HEAD = "| Change | Verdict | Next step | Who can act next |\n|---|---|---|---|"
_VERDICT_RANK = {v: i for i, v in enumerate(("invalid", "error", "rejected", "pending", "approved"))}


def problem_rows(problems: Sequence[Problem], links: Links | None) -> list[str]:
    rows = []
    for p in problems:
        where = file_link(p.file, p.line, links, p.location()) if p.file else ""
        rows.append(f"| {SEVERITY_ICON.get(p.severity, '')} | {where} | {escape_md(p.message, 1000)} "
                    f"({escape_md(p.title, 60)}) |")
    return rows


@dataclass(frozen=True)
class _Section:
    """Items shown while they fit; the rest counted in one line."""

    prefix: str
    items: Sequence[str]
    noun: str  # "changes", "problems", ... for the count of what was left out
    joiner: str = "\n\n"
    suffix: str = ""
    cap: int | None = None  # at most this many items, even when more fit


def _head(evaluation: Evaluation) -> list[str]:
    v = evaluation.verdict
    parts = [f"## {VERDICT_ICON[v]} gitops-flags: {v}", f"**{headline(evaluation)}**"]
    if evaluation.message:
        parts.append(escape_md(evaluation.message, 1000))
    who = awaited(evaluation)
    if who:
        more = len(who) - MENTIONS_IN_HEADER
        parts.append("**Awaiting:** " + ", ".join(mention(w) for w in who[:MENTIONS_IN_HEADER])
                     + (f" and {more} more (named in the table)" if more > 0 else ""))
    return parts


def _sections(evaluation: Evaluation, links: Links | None, full: bool) -> list[_Section]:
    ordered = sorted(evaluation.changes, key=lambda r: _VERDICT_RANK.get(r.verdict, 0))
    open_ = [r for r in ordered if r.verdict != "approved"]
    done = [r for r in ordered if r.verdict == "approved"]
    sections = []
    if open_:
        sections.append(_Section(_SUMMARY_HEAD + "\n", [summary_row(r) for r in open_], "changes", "\n"))
    if done:
        fold = (f"<details><summary>✅ {plural(len(done), 'approved change')}</summary>\n\n"
                + _SUMMARY_HEAD + "\n")
        sections.append(_Section(fold, [summary_row(r) for r in done], "approved changes", "\n",
                                 "\n\n</details>"))
    if evaluation.problems:
        table = f"### Problems ({len(evaluation.problems)})\n\n| | Location | Problem |\n|---|---|---|\n"
        sections.append(_Section(table,
                                 problem_rows(evaluation.problems, links), "problems", "\n",
                                 cap=None if full else COMMENT_PROBLEM_ROWS))
    if evaluation.warnings:
        sections.append(_Section("### Notes\n\n", [f"- {escape_md(w, 500)}" for w in evaluation.warnings],
                                 "notes", "\n", cap=None if full else 20))
    workflows = workflow_items(open_)
    if workflows:
        sections.append(_Section("### Approval workflows\n\n", workflows, "workflow pictures"))
    rollouts = rollout_items(ordered)
    if rollouts:
        sections.append(_Section("### Rollouts\n\n", rollouts, "rollout plans"))
    sections.append(_Section("### Details\n\n", [detail_item(r, links) for r in ordered], "change details"))
    return [s for s in sections if s.items]


def _compose(head: list[str], sections: list[_Section], footer: str, limit: int | None, where: str) -> str:
    """Head, then each section's items while they fit under `limit`, a count of the rest, the footer."""
    parts = list(head)
    reserve = 300 * (len(sections) + 1)  # the count lines and a margin
    used = sum(len(p) + 2 for p in parts) + len(footer) + 2
    full = False
    for section in sections:
        items = section.items if section.cap is None else section.items[: section.cap]
        shown: list[str] = []
        cost = len(section.prefix) + len(section.suffix) + 2
        for item in items if not full else ():
            if limit is not None and used + cost + len(item) + len(section.joiner) + reserve > limit:
                full = True
                break
            shown.append(item)
            cost += len(item) + len(section.joiner)
        left = len(section.items) - len(shown)
        if shown:
            parts.append(section.prefix + section.joiner.join(shown) + section.suffix)
            used += cost
        if left:
            note = f"… and {left} more {section.noun} (of {len(section.items)}) in {where}"
            parts.append(note + (": GitHub limits a comment to 65,536 characters." if full else "."))
    parts.append(footer)
    return "\n\n".join(parts) + "\n"


def _footer(links: Links | None) -> str:
    bits = []
    if links and links.head_sha:
        bits.append(f"evaluated at {code(links.head_sha[:7])}")
    if links and links.run_url:
        bits.append(f"[workflow run]({links.run_url})")
    bits.append("gitops-flags")
    return "<sub>" + " · ".join(bits) + "</sub>"


def comment_markdown(
    evaluation: Evaluation, *, previous: dict[str, Any] | None = None, links: Links | None = None
) -> str:
    """The sticky PR comment, at most 65,536 characters. The summary table comes first and is kept; what
    does not fit after it is counted and left to the job summary, which holds the full report."""
    state = digest(evaluation, links)
    head = [MARKER, f"<!-- gitops-flags:digest v1.{encode(state)} -->", *_head(evaluation)]
    if previous is not None:
        lines = since_lines(previous, state) or ["Nothing changed."]
        head.append("<details><summary>Since the last evaluation</summary>\n\n"
                    + "\n".join(f"- {line}" for line in lines) + "\n\n</details>")
    where = f"the [job summary of the workflow run]({links.run_url})" if links and links.run_url else (
        "the job summary of the workflow run")
    body = _compose(head, _sections(evaluation, links, full=False), _footer(links), COMMENT_LIMIT, where)
    if len(body) > COMMENT_LIMIT:  # only when the fixed parts alone are huge
        cut = f"\n\n… cut here: the full report is in {where}.\n"
        kept = body[: COMMENT_LIMIT - len(cut)]
        # at a line end: a cut inside a mention or an entity could name someone else or show garbage
        body = kept[: kept.rfind("\n") + 1 or len(kept)].rstrip("\n") + cut
    return body


def job_summary(evaluation: Evaluation, links: Links | None = None) -> str:
    """The full report for `$GITHUB_STEP_SUMMARY` (every change and problem; capped at GitHub's 1 MiB)."""
    head = _head(evaluation)
    note = left_out_note(evaluation.problems)
    if note:
        head.append(note)
    text = _compose(head, _sections(evaluation, links, full=True), _footer(links), None, "the log")
    raw = text.encode()
    if len(raw) > SUMMARY_LIMIT_BYTES:
        note = "\n\n… cut here: the report exceeds GitHub's 1 MiB step-summary limit.\n"
        text = raw[: SUMMARY_LIMIT_BYTES - len(note.encode())].decode(errors="ignore") + note
    return text
