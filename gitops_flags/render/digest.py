"""What the last comment showed: a compact digest of the evaluation hidden in the comment, read back on the
next run to say what changed since, and to leave the comment alone when nothing did."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from typing import Any

from ..result import Evaluation
from .escaping import Links, code, escape_md

DIGEST_MAX_CHARS = 12_000  # above this the digest keeps only a hash (the comment needs the room)
DELTA_MAX_LINES = 30
_DIGEST_RE = re.compile(r"<!-- gitops-flags:digest v1\.([A-Za-z0-9+/=]{1,200000}) -->")


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
    if len(encode(full)) > DIGEST_MAX_CHARS:
        return {"v": 1, "verdict": evaluation.verdict, "head": full["head"], "changes": None,
                "problems": len(problems), "details": _hash(full)}
    return full


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def encode(d: dict[str, Any]) -> str:
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
