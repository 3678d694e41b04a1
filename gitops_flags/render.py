"""Every report the tool shows, rendered from one `Evaluation`: the sticky PR comment, the job summary, the
commit-status description, GitHub annotations and the plain-text plan.

Pure functions over plain values. Text that comes from the PR (flag names, summaries, paths, review text,
messages quoting YAML) is escaped before it reaches Markdown, so a PR cannot mention people, inject HTML,
links or images, or break a table. The only @mentions in a comment are the users and teams awaited now.

The comment starts with a hidden marker (to find it again) and a hidden digest of the evaluation (to say
what changed since the last run, and to leave the comment alone when nothing did).
"""

import base64
import binascii
import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import quote

from . import mermaid
from .changes import Change
from .model import HttpHealthCheck, RolloutPlan
from .problems import Problem
from .result import ChangeResult, Evaluation, StepResult

MARKER = "<!-- gitops-flags:sticky -->"
COMMENT_LIMIT = 65_536  # GitHub refuses longer comment bodies (422 "Body is too long")
SUMMARY_LIMIT_BYTES = 1024 * 1024  # GitHub drops a step summary above 1 MiB
STATUS_LIMIT = 140  # commit status descriptions
ANNOTATIONS_PER_SEVERITY = 10  # GitHub shows 10 error and 10 warning annotations per step
COMMENT_PROBLEM_ROWS = 50  # the rest go to the job summary
DIGEST_MAX_CHARS = 12_000  # above this the digest keeps only a hash (the comment needs the room)
DELTA_MAX_LINES = 30
MENTIONS_IN_HEADER = 50  # GitHub notifies at most 50 mentions per comment; the tables name everyone

_DIGEST_RE = re.compile(r"<!-- gitops-flags:digest v1\.([A-Za-z0-9+/=]{1,200000}) -->")
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_TEAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
# C0/C1 control characters (ESC included: no terminal escapes in plain text) and bidirectional overrides
# ("trojan source"): dropped from every PR-supplied string.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"[\r\n\t\u2028\u2029]+")
_ZWSP = "&#8203;"  # zero-width space: breaks @mentions, #refs and autolinks without changing the text
_MD_ESCAPED = frozenset("\\`*_[]()!~$")  # inline constructs: code, emphasis, links, images, strike, math
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", '"': "&quot;"}
# what would open a heading, list, setext underline or thematic break at the start of a block
_BLOCK_START = re.compile(r"[#=+-]|\d{1,9}[.)]")

VERDICT_ICON = {"approved": "✅", "pending": "⏳", "rejected": "❌", "invalid": "🚫", "error": "⚠️"}
STEP_ICON = {"satisfied": "✅", "pending": "⏳", "waiting": "🕓", "rejected": "❌", "skipped": "➖"}
SEVERITY_ICON = {"error": "❌", "warning": "⚠️"}


@dataclass(frozen=True)
class Links:
    """Where the report's links point: files at the PR's head commit, and the workflow run."""

    server_url: str = "https://github.com"
    repository: str = ""  # owner/name
    head_sha: str = ""
    run_url: str | None = None

    def blob_url(self, path: str, line: int | None = None) -> str:
        url = f"{self.server_url.rstrip('/')}/{self.repository}/blob/{self.head_sha}/{quote(path, safe='/')}"
        return f"{url}#L{line}" if line else url


# --- escaping ------------------------------------------------------------------------------------------


def _clean(text: object, limit: int | None = None) -> str:
    """One line of visible text: invisible characters dropped, line breaks and tabs become spaces."""
    s = _NEWLINES.sub(" ", _INVISIBLE.sub("", str(text)))
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def escape_md(text: object, limit: int | None = 500) -> str:
    """PR-supplied text made inert in GitHub Markdown, inside or outside a table cell.

    HTML is entity-escaped, link/image/emphasis/code/math punctuation is backslash-escaped, `|` cannot split
    a cell, and a zero-width space after `@`, before a digit after `#`, and inside `://` / `www.` keeps
    GitHub from creating mentions, issue references and autolinks. Leading blanks are dropped and a leading
    `#`, `-`, `+`, `=` or `1.` is escaped, so text that starts a line cannot open a heading, a list or a code
    block. Long text is cut at `limit`.
    """
    s = _clean(text, limit).lstrip()
    lead = _BLOCK_START.match(s)
    block_mark = lead.end() - 1 if lead else -1
    out: list[str] = []
    n = len(s)
    for i, ch in enumerate(s):
        nxt = s[i + 1] if i + 1 < n else ""
        if i == block_mark:
            out.append("\\" + ch + (_ZWSP if ch == "#" and nxt.isdigit() else ""))
        elif ch in _HTML:
            out.append(_HTML[ch])
        elif ch in _MD_ESCAPED:
            out.append("\\" + ch)
        elif ch == "@":
            out.append("@" + _ZWSP)
        elif ch == "#" and nxt.isdigit():
            out.append("#" + _ZWSP)
        elif ch == ":" and s.startswith("//", i + 1):
            out.append(":" + _ZWSP)
        elif ch == "." and s[max(i - 3, 0) : i].lower() == "www":
            out.append(_ZWSP + ".")
        else:
            out.append(ch)
    return "".join(out)


def code(text: object, limit: int = 200) -> str:
    """Text as an inline code span when that is safe (no backtick, no `|`), else escaped plain text.

    Inside a code span GitHub renders nothing (no HTML, mentions or links); only a backtick could end it
    and only a `|` could split a table cell, so those fall back to `escape_md`.
    """
    s = _clean(text, limit)
    if not s.strip() or "`" in s or "|" in s:
        return escape_md(s, limit)
    return f"`{s}`"


def mention(who: str) -> str:
    """`@login` or `@org/team` for a well-formed name (from the base policy or CODEOWNERS); else inert."""
    name = who.strip().lstrip("@")
    if _LOGIN.fullmatch(name) or _TEAM.fullmatch(name):
        return "@" + name
    return escape_md(who, 100)


def plain(text: object, limit: int | None = None) -> str:
    """PR-supplied text for a terminal or a status line: one line, no control characters."""
    return _clean(text, limit)


def _link(text: str, url: str | None) -> str:
    label = escape_md(text)
    return f"[{label}]({url})" if url else label


def _file_link(path: str, line: int | None, links: Links | None, label: str | None = None) -> str:
    url = links.blob_url(path, line) if links and links.head_sha and links.repository else None
    return _link(label if label is not None else path, url)


# --- shared facts ---------------------------------------------------------------------------------------


def awaited(evaluation: Evaluation) -> list[str]:
    """Everyone awaited by a pending step, in first-seen order, without a leading `@`."""
    seen: dict[str, None] = {}
    for change in evaluation.changes:
        for step in change.steps:
            if step.state == "pending":
                for who in step.awaited:
                    seen.setdefault(who.strip().lstrip("@"), None)
    return [w for w in seen if w]


def _count(evaluation: Evaluation, verdict: str) -> int:
    return sum(1 for c in evaluation.changes if c.verdict == verdict)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def headline(evaluation: Evaluation) -> str:
    """One sentence on the verdict, e.g. `2 of 5 changes await approval.` (plain text, not escaped)."""
    n = len(evaluation.changes)
    errors = sum(1 for p in evaluation.problems if p.severity == "error")
    v = evaluation.verdict
    if v == "approved":
        return f"All {_plural(n, 'change')} approved." if n else "No flag, schema or governance changes."
    if v == "pending":
        return f"{_count(evaluation, 'pending')} of {_plural(n, 'change')} await approval."
    if v == "rejected":
        return f"{_count(evaluation, 'rejected')} of {_plural(n, 'change')} rejected."
    if v == "invalid":
        if errors:
            return f"{_plural(errors, 'problem')} to fix before approval."
        return f"{_count(evaluation, 'invalid')} of {_plural(n, 'change')} cannot be approved."
    return "The evaluation failed."


# --- commit status --------------------------------------------------------------------------------------

STATUS_STATE = {"approved": "success", "pending": "pending", "rejected": "failure", "invalid": "failure",
                "error": "error"}


def status_state(evaluation: Evaluation) -> str:
    return STATUS_STATE[evaluation.verdict]


def status_description(evaluation: Evaluation) -> str:
    """At most 140 characters for the commit status, e.g. `Pending: 2 of 5 changes await approval (qa)`."""
    text = f"{evaluation.verdict.capitalize()}: {headline(evaluation)}"
    if evaluation.verdict == "pending":
        roles = dict.fromkeys(s.role for c in evaluation.changes for s in c.steps if s.state == "pending")
        if roles:
            text = text.rstrip(".") + f" ({', '.join(roles)})"
    elif evaluation.verdict == "invalid":
        first = next((p for p in evaluation.problems if p.severity == "error"), None)
        if first is not None:
            text += f" {first.location()}: {first.message}"
    elif evaluation.verdict == "error" and evaluation.message:
        text = f"Error: {evaluation.message}"
    return plain(text, STATUS_LIMIT)


# --- annotations ----------------------------------------------------------------------------------------


def _escape_data(text: str) -> str:
    # actions/toolkit command.ts escapeData
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    # actions/toolkit command.ts escapeProperty
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(problem: Problem) -> str:
    props = [f"file={_escape_property(problem.file)}"] if problem.file else []
    if problem.line is not None:
        props.append(f"line={problem.line}")
        if problem.col is not None:
            props.append(f"col={problem.col}")
    props.append(f"title={_escape_property('gitops-flags: ' + problem.title)}")
    return f"::{problem.severity} {','.join(props)}::{_escape_data(problem.message)}"


def annotations(problems: Iterable[Problem], per_severity: int = ANNOTATIONS_PER_SEVERITY) -> list[str]:
    """Workflow commands for the first `per_severity` errors and warnings (GitHub shows no more per step)."""
    shown = {"error": 0, "warning": 0}
    lines = []
    for p in problems:
        if shown.get(p.severity, per_severity) < per_severity:
            shown[p.severity] += 1
            lines.append(annotation(p))
    return lines


def annotations_left_out(problems: Sequence[Problem], per_severity: int = ANNOTATIONS_PER_SEVERITY) -> int:
    return len(problems) - len(annotations(problems, per_severity))


# --- digest: what the last comment showed ---------------------------------------------------------------


def digest(evaluation: Evaluation, links: Links | None = None) -> dict[str, Any]:
    """A plain, JSON-able summary of the evaluation that decides whether the comment needs an edit."""
    changes: dict[str, Any] = {}
    for c in evaluation.changes:
        ident = c.change.ident()
        key, n = ident, 2
        while key in changes:
            key, n = f"{ident}#{n}", n + 1
        changes[key] = [c.verdict, [[s.id, s.state, sorted(s.approved_by)] for s in c.steps]]
    problems = sorted(f"{p.location()} {p.severity} {p.message}" for p in evaluation.problems)
    full: dict[str, Any] = {
        "v": 1,
        "verdict": evaluation.verdict,
        "head": links.head_sha if links else "",
        "changes": changes,
        "problems": len(problems),
        "details": _hash([
            problems, sorted(evaluation.warnings), evaluation.message,
            [[c.change.summary, c.reason, [s.reason for s in c.steps]] for c in evaluation.changes],
        ]),
    }
    if len(_encode(full)) > DIGEST_MAX_CHARS:
        return {"v": 1, "verdict": evaluation.verdict, "head": full["head"], "changes": None,
                "problems": len(problems), "details": _hash(full)}
    return full


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _encode(d: dict[str, Any]) -> str:
    raw = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode()


def parse_digest(body: str) -> dict[str, Any] | None:
    """The digest hidden in an earlier comment, or None when absent or unreadable (never raises)."""
    m = _DIGEST_RE.search(body)
    if not m:
        return None
    try:
        raw = zlib.decompressobj().decompress(base64.b64decode(m.group(1), validate=True), 4 * 1024 * 1024)
        value = json.loads(raw)
    except (binascii.Error, zlib.error, ValueError):
        return None
    return value if isinstance(value, dict) and value.get("v") == 1 else None


def _steps_of(entry: Any) -> tuple[str, dict[str, tuple[str, list[str]]]]:
    """(verdict, {step id: (state, approvers)}) from one digest entry, tolerating any malformed shape."""
    verdict, steps = "", {}
    if isinstance(entry, list) and len(entry) == 2:
        verdict = str(entry[0])
        for step in entry[1] if isinstance(entry[1], list) else []:
            if isinstance(step, list) and len(step) == 3 and isinstance(step[2], list):
                steps[str(step[0])] = (str(step[1]), [str(x) for x in step[2]])
    return verdict, steps


def since_lines(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Markdown bullets: what differs between the last evaluation shown and this one."""
    lines: list[str] = []
    if previous.get("verdict") != current.get("verdict"):
        lines.append(f"Verdict: {escape_md(previous.get('verdict'), 20)} → {current['verdict']}")
    old_head, new_head = str(previous.get("head") or ""), str(current.get("head") or "")
    if old_head and new_head and old_head != new_head:
        lines.append(f"New commits: {code(old_head[:7])} → {code(new_head[:7])}")
    old, new = previous.get("changes"), current.get("changes")
    if isinstance(old, dict) and isinstance(new, dict):
        for ident in new:
            if ident not in old:
                lines.append(f"New change {code(ident)} ({new[ident][0]})")
        for ident in old:
            if ident not in new:
                lines.append(f"No longer changed: {code(ident)}")
        for ident in new:
            if ident in old:
                lines.extend(_change_delta(ident, old[ident], new[ident]))
    elif old != new:
        lines.append("The changes or their approvals differ.")
    if previous.get("problems") != current.get("problems"):
        lines.append(f"Problems: {escape_md(previous.get('problems'), 10)} → {current.get('problems')}")
    if not lines and previous.get("details") != current.get("details"):
        lines.append("Details of the report changed.")
    if len(lines) > DELTA_MAX_LINES:
        lines = [*lines[:DELTA_MAX_LINES], f"… and {len(lines) - DELTA_MAX_LINES} more differences"]
    return lines


def _change_delta(ident: str, old: Any, new: Any) -> list[str]:
    (old_verdict, old_steps), (new_verdict, new_steps) = _steps_of(old), _steps_of(new)
    lines = []
    if old_verdict != new_verdict:
        lines.append(f"{code(ident)}: {escape_md(old_verdict, 20)} → {new_verdict}")
    for step_id, (state, approvers) in new_steps.items():
        before_state, before_by = old_steps.get(step_id, ("", []))
        added = [a for a in approvers if a not in before_by]
        if state != before_state or added:
            text = f"{code(ident)} step {code(step_id)}: "
            text += f"{escape_md(before_state, 20)} → {state}" if before_state != state else state
            if added:
                text += f" (approved by {', '.join(escape_md(a, 60) for a in added)})"
            lines.append(text)
    return lines


# --- the comment and the job summary --------------------------------------------------------------------
#
# Layout, top to bottom: the verdict and whom it waits for (the only @mentions), what changed since the last
# run, one summary table (a row per change still open: change, verdict, next step, who can act next), the
# approved changes folded, problems, notes, a Mermaid picture per distinct workflow state, each rollout plan
# in words and as a gantt chart, then per-change details. Everything after the summary table degrades: when
# the comment would pass GitHub's limit, later items are left out with a count and a pointer to the job
# summary, which holds the whole report.


def target(c: Change) -> str:
    """The change's kind, key and environment as Markdown code spans."""
    text = f"{c.kind} {code(c.key, 80)}"
    return text + f" · {code(c.environment, 40)}" if c.environment else text


def toggle_direction(c: Change) -> str | None:
    """"on" or "off" when the change switches the flag on or off in its environment, else None."""
    before = c.before.get("enabled") if isinstance(c.before, dict) else None
    after = c.after.get("enabled") if isinstance(c.after, dict) else None
    if isinstance(before, bool) and isinstance(after, bool) and before != after:
        return "on" if after else "off"
    return None


def _what(c: Change, limit: int = 90) -> str:
    """What the change does, short (Markdown): the way a toggle goes, else its type and summary."""
    direction = toggle_direction(c)
    turn = ("turns **on**" if direction == "on" else "turns **off** (kill switch)") if direction else ""
    if c.change_type == "toggle" and turn:
        text = turn
    else:
        text = escape_md(c.change_type, 20)
        if c.summary:
            summary = c.summary.removeprefix(f"{c.change_type} ")  # "rollout: rollout started" reads twice
            text += ": " + escape_md(summary, limit)
        if turn and c.change_type != "delete":
            text += f"; {turn}"
    return text + (" · **breaking**" if c.breaking else "")


def _name(who: str) -> str:
    """A login or team named without notifying it (mentions are made once, in the header)."""
    return escape_md(who.strip().lstrip("@"), 60)


def _need(s: StepResult) -> str:
    text = code(s.id, 40) + (f" ({escape_md(s.role, 40)})" if s.role != s.id else "")
    if s.approvals > 1:
        text += f" {len(s.approved_by)} of {s.approvals}"
    return text


def next_step(result: ChangeResult) -> tuple[str, str]:
    """(the next step, who can act next) for one change, as Markdown for table cells."""
    v = result.verdict
    if v == "approved":
        return "merge; `apply` ships it", "PR author"
    if v == "pending":
        pending = [s for s in result.steps if s.state == "pending"]
        waiting = [s for s in result.steps if s.state == "waiting"]
        text = "approval: " + ", ".join(_need(s) for s in pending) if pending else "approval"
        if waiting:
            more = f" +{len(waiting) - 3}" if len(waiting) > 3 else ""
            text += "; then " + ", ".join(code(s.id, 40) for s in waiting[:3]) + more
        names = list(dict.fromkeys(w.strip().lstrip("@") for s in pending for w in s.awaited))
        if names:
            who = ", ".join(_name(w) for w in names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
        else:
            who = ", ".join(dict.fromkeys(escape_md(s.role, 40) for s in pending)) or "nobody eligible"
        return text, who
    if v == "rejected":
        steps = [code(s.id, 40) for s in result.steps if s.state == "rejected"]
        return "answer the changes requested" + (f" ({', '.join(steps)})" if steps else ""), "PR author"
    if v == "invalid":
        return escape_md(result.reason, 120) if result.reason else "fix the problems below", "PR author"
    return escape_md(result.reason, 120) if result.reason else "re-run the check", "repository admins"


_SUMMARY_HEAD = "| Change | Verdict | Next step | Who can act next |\n|---|---|---|---|"
_VERDICT_RANK = {v: i for i, v in enumerate(("invalid", "error", "rejected", "pending", "approved"))}


def _summary_row(result: ChangeResult) -> str:
    step, who = next_step(result)
    cells = [f"{target(result.change)} — {_what(result.change)}",
             f"{VERDICT_ICON[result.verdict]} {result.verdict}", step, who]
    return "| " + " | ".join(cells) + " |"


def _html_text(text: object, limit: int = 200) -> str:
    """PR text inside an HTML block (a `<summary>`): HTML-escaped, mentions and references broken."""
    s = escape_md(text, limit)
    for ch in _MD_ESCAPED:  # Markdown is not parsed in an HTML block: a backslash would show
        s = s.replace("\\" + ch, ch)
    return s.replace("`", "&#96;")


def _plain_target(c: Change) -> str:
    env = f" · {c.environment}" if c.environment else ""
    return _html_text(f"{c.kind} {c.key}{env}", 140)


def _fmt_delay(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return " ".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n) or "0m"


def _plan_of(value: Any) -> RolloutPlan | None:
    raw = value.get("rollout") if isinstance(value, dict) else None
    if not isinstance(raw, dict):
        return None
    try:
        return RolloutPlan.model_validate(raw)
    except ValueError:
        return None


def _gate_text(plan: RolloutPlan) -> str:
    gate = plan.health_check
    if gate is None:
        return "No health gate: each stage follows the last on time alone."
    if isinstance(gate, HttpHealthCheck):
        text = f"HTTP GET {code(gate.url, 200)} must answer {gate.expect_status}"
        if gate.json_field:
            text += f" with {code(gate.json_field, 80)} {escape_md(gate.comparison, 2)} {gate.threshold}"
    else:
        text = f"Prometheus {code(gate.query, 300)} {escape_md(gate.comparison, 2)} {gate.threshold}"
    then = "rolls back to 0%" if plan.on_failure == "rollback" else "pauses the rollout"
    return f"Gate before every stage after the first: {text}. A failed gate {then}."


def rollout_lines(plan: RolloutPlan, previous: RolloutPlan | None = None) -> list[str]:
    """The rollout plan in words (Markdown bullets): every stage, the delay, the start and the gate."""
    stages = " → ".join(f"{p}%" for p in plan.percentages())
    delay = _fmt_delay(plan.delay_seconds())
    total = _fmt_delay(plan.delay_seconds() * (len(plan.percentages()) - 1))
    lines = [
        f"Serves {code(plan.variant, 60)} to {stages} of the users no rule matches.",
        f"At least {delay} at each stage: the last stage no sooner than {total} after the start.",
    ]
    if plan.start_at is not None:
        at = plan.start_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines.append(f"Starts at {at}, or when `apply` runs after the merge if that is later.")
    else:
        lines.append("Starts when `apply` runs after the merge.")
    if plan.paused:
        lines.append("**Paused**: holds where it is until a PR sets `paused: false`.")
    lines.append(_gate_text(plan))
    if previous is not None:
        was = " → ".join(f"{p}%" for p in previous.percentages())
        lines.append(f"Replaces: {code(previous.variant, 60)} to {was}, "
                     f"{_fmt_delay(previous.delay_seconds())} between stages.")
    return [f"- {line}" for line in lines]


def _is_new_plan(c: Change) -> bool:
    plan = _plan_of(c.after)
    return plan is not None and c.change_type != "delete" and (
        _plan_of(c.before) is None or json.dumps(c.before.get("rollout"), sort_keys=True)
        != json.dumps(c.after.get("rollout"), sort_keys=True))


def _listed_targets(changes: Sequence[Change], limit: int = 5) -> str:
    shown = ", ".join(target(c) for c in changes[:limit])
    return shown + (f" and {len(changes) - limit} more" if len(changes) > limit else "")


def _workflow_items(results: Sequence[ChangeResult]) -> list[str]:
    """One Mermaid flowchart per distinct (workflow, step states) among the open multi-step changes."""
    groups: dict[tuple[Any, ...], list[ChangeResult]] = {}
    for r in results:
        if len(r.steps) > 1:
            sig = (r.workflow, tuple((s.id, s.role, s.state, s.approved_by, s.approvals, s.after)
                                     for s in r.steps))
            groups.setdefault(sig, []).append(r)
    items = []
    for members in groups.values():
        first = members[0]
        name = code(first.workflow or "workflow", 60)
        title = f"**{name}** for {_listed_targets([m.change for m in members])}"
        items.append(f"{title}\n\n{mermaid.fence(mermaid.workflow_flowchart(first.steps))}")
    return items


def _rollout_items(results: Sequence[ChangeResult]) -> list[str]:
    """Each new or changed rollout plan in words and as a gantt chart (one per distinct plan)."""
    groups: dict[tuple[str, str], list[Change]] = {}
    for r in results:
        c = r.change
        if c.kind == "flag" and _is_new_plan(c):
            sig = (c.environment or "", json.dumps(c.after.get("rollout"), sort_keys=True))
            groups.setdefault(sig, []).append(c)
    items = []
    for members in groups.values():
        first = members[0]
        plan = _plan_of(first.after)
        assert plan is not None
        lines = "\n".join(rollout_lines(plan, _plan_of(first.before)))
        chart = mermaid.fence(mermaid.rollout_gantt(plan, first.key, first.environment or "-"))
        items.append(f"**{_listed_targets(members)}**\n\n{lines}\n\n{chart}")
    return items


def _step_line(s: StepResult) -> str:
    text = f"- {STEP_ICON.get(s.state, '')} {code(s.id, 60)} ({escape_md(s.role, 60)}): {s.state}"
    if s.approved_by:
        text += " — approved by " + ", ".join(escape_md(a, 60) for a in s.approved_by)
        if s.approvals > 1:
            text += f" ({len(s.approved_by)} of {s.approvals})"
    if s.state == "pending" and s.awaited:
        text += " — can approve: " + ", ".join(_name(w) for w in s.awaited[:10])
        text += f" and {len(s.awaited) - 10} more" if len(s.awaited) > 10 else ""
    if s.reason:
        text += f" — {escape_md(s.reason, 300)}"
    return text


def _detail_item(result: ChangeResult, links: Links | None) -> str:
    c = result.change
    summary = (f"{VERDICT_ICON[result.verdict]} {_plain_target(c)} — {_html_text(c.change_type, 20)}, "
               f"{result.verdict}")
    facts = [escape_md(c.summary, 300)] if c.summary else []
    if result.workflow:
        facts.append(f"workflow {code(result.workflow)}")
    at_head = c.change_type not in ("delete", "schema_delete")
    facts.append(_file_link(c.path, None, links if at_head else None))
    body = [" · ".join(facts)]
    if result.reason:
        body.append(f"> {escape_md(result.reason, 500)}")
    if result.steps:
        body.append("\n".join(_step_line(s) for s in result.steps))
    return f"<details><summary>{summary}</summary>\n\n" + "\n\n".join(body) + "\n\n</details>"


def _problem_rows(problems: Sequence[Problem], links: Links | None) -> list[str]:
    rows = []
    for p in problems:
        where = _file_link(p.file, p.line, links, p.location()) if p.file else ""
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
        sections.append(_Section(_SUMMARY_HEAD + "\n", [_summary_row(r) for r in open_], "changes", "\n"))
    if done:
        fold = (f"<details><summary>✅ {_plural(len(done), 'approved change')}</summary>\n\n"
                + _SUMMARY_HEAD + "\n")
        sections.append(_Section(fold, [_summary_row(r) for r in done], "approved changes", "\n",
                                 "\n\n</details>"))
    if evaluation.problems:
        table = f"### Problems ({len(evaluation.problems)})\n\n| | Location | Problem |\n|---|---|---|\n"
        sections.append(_Section(table,
                                 _problem_rows(evaluation.problems, links), "problems", "\n",
                                 cap=None if full else COMMENT_PROBLEM_ROWS))
    if evaluation.warnings:
        sections.append(_Section("### Notes\n\n", [f"- {escape_md(w, 500)}" for w in evaluation.warnings],
                                 "notes", "\n", cap=None if full else 20))
    workflows = _workflow_items(open_)
    if workflows:
        sections.append(_Section("### Approval workflows\n\n", workflows, "workflow pictures"))
    rollouts = _rollout_items(ordered)
    if rollouts:
        sections.append(_Section("### Rollouts\n\n", rollouts, "rollout plans"))
    sections.append(_Section("### Details\n\n", [_detail_item(r, links) for r in ordered], "change details"))
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
    head = [MARKER, f"<!-- gitops-flags:digest v1.{_encode(state)} -->", *_head(evaluation)]
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
    left_out = annotations_left_out(evaluation.problems)
    if left_out:
        head.append(f"{left_out} of the problems below are not shown as annotations: GitHub shows at most "
                    f"{ANNOTATIONS_PER_SEVERITY} errors and {ANNOTATIONS_PER_SEVERITY} warnings a step.")
    text = _compose(head, _sections(evaluation, links, full=True), _footer(links), None, "the log")
    raw = text.encode()
    if len(raw) > SUMMARY_LIMIT_BYTES:
        note = "\n\n… cut here: the report exceeds GitHub's 1 MiB step-summary limit.\n"
        text = raw[: SUMMARY_LIMIT_BYTES - len(note.encode())].decode(errors="ignore") + note
    return text


# --- plain text -----------------------------------------------------------------------------------------


def plan_text(evaluation: Evaluation) -> str:
    """The evaluation for a terminal (`plan --format text`)."""
    lines = [f"{evaluation.verdict.upper()}: {headline(evaluation)}"]
    if evaluation.message:
        lines.append(plain(evaluation.message))
    for result in evaluation.changes:
        c = result.change
        where = f" @ {plain(c.environment)}" if c.environment else ""
        lines.append("")
        lines.append(f"{c.kind} {plain(c.key)}{where}  [{c.change_type}]  {result.verdict}"
                     + (f"  (workflow {plain(result.workflow)})" if result.workflow else ""))
        if c.summary:
            lines.append(f"  {plain(c.summary)}")
        if result.reason:
            lines.append(f"  {plain(result.reason)}")
        for s in result.steps:
            text = f"  - {s.id} ({plain(s.role)}): {s.state}"
            if s.approved_by:
                text += f", approved by {', '.join(plain(a) for a in s.approved_by)}"
            if s.state == "pending" and s.awaited:
                text += f", awaiting {', '.join('@' + plain(w).lstrip('@') for w in s.awaited)}"
            if s.reason:
                text += f" — {plain(s.reason)}"
            lines.append(text)
    if evaluation.problems:
        lines.append("")
        lines.append("Problems:")
        lines.extend(f"  {plain(p.location())}: {p.severity}: {plain(p.message)}"
                     for p in evaluation.problems)
    if evaluation.warnings:
        lines.append("")
        lines.append("Notes:")
        lines.extend(f"  {plain(w)}" for w in evaluation.warnings)
    return "\n".join(lines) + "\n"
