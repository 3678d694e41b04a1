"""A `CheckReport` → its writes on GitHub: the commit status, the sticky comment (created or edited as the
report decided) and the review requests."""

from __future__ import annotations

from ..check_report import CheckReport
from .client import GitHubClient


def post_report(client: GitHubClient, report: CheckReport) -> str | None:
    """Sends the report's writes in that order; returns the review request's warning, if any. A failed
    write raises `GitHubError` (the writes before it stay)."""
    client.create_status(report.head_sha, report.state, report.description, report.context,
                         report.links.run_url)
    if report.comment_action == "create":
        client.create_comment(report.number, report.comment)
    elif report.comment_action == "edit" and report.comment_id is not None:
        client.edit_comment(report.comment_id, report.comment)
    if report.users or report.teams:
        return client.request_reviewers(report.number, list(report.users), list(report.teams))
    return None
