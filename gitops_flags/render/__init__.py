"""Every report the tool shows. From one `Evaluation`: the sticky PR comment and the job summary (`comment`,
built from `changes`, `pictures` and `digest`), the commit-status description (`status`) and the plain-text
plan (`text`). From problems: GitHub annotations (`github_annotations`) and `validate`'s job summary
(`validation`).

Pure functions over plain values. Text that comes from the PR is made inert before it reaches Markdown
(`escaping`); Mermaid diagrams take only a safe alphabet from it (`mermaid`). The only @mentions in a
comment are the users and teams awaited now.
"""

from .changes import next_step, target, toggle_direction
from .comment import (
    COMMENT_LIMIT,
    COMMENT_PROBLEM_ROWS,
    MARKER,
    MENTIONS_IN_HEADER,
    SUMMARY_LIMIT_BYTES,
    comment_markdown,
    job_summary,
)
from .digest import DELTA_MAX_LINES, DIGEST_MAX_CHARS, digest, parse_digest, since_lines
from .escaping import Links, code, escape_md, mention, plain
from .github_annotations import ANNOTATIONS_PER_SEVERITY, annotation, annotations, annotations_left_out
from .pictures import rollout_lines
from .status import (
    SEVERITY_ICON,
    STATUS_LIMIT,
    STATUS_STATE,
    STEP_ICON,
    VERDICT_ICON,
    awaited,
    headline,
    status_description,
    status_state,
)
from .text import plan_text
from .validation import validation_summary

__all__ = [
    "ANNOTATIONS_PER_SEVERITY", "COMMENT_LIMIT", "COMMENT_PROBLEM_ROWS", "DELTA_MAX_LINES",
    "DIGEST_MAX_CHARS", "MARKER", "MENTIONS_IN_HEADER", "SEVERITY_ICON", "STATUS_LIMIT", "STATUS_STATE",
    "STEP_ICON", "SUMMARY_LIMIT_BYTES", "VERDICT_ICON", "Links", "annotation", "annotations",
    "annotations_left_out", "awaited", "code", "comment_markdown", "digest", "escape_md", "headline",
    "job_summary", "mention", "next_step", "parse_digest", "plain", "plan_text", "rollout_lines",
    "since_lines", "status_description", "status_state", "target", "toggle_direction", "validation_summary",
]
