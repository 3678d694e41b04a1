"""What a failed request means, in words: each `GitHubError` names what was attempted and the token
permission it needs; rate limits say which limit, when it resets and what to do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import requests
from github import GithubException
from github.GithubException import RateLimitExceededExceedsMaxWait

from ..problems import GitopsFlagsError

TEAM_PERMISSION_HELP = (
    "the token needs the 'Members: read' organization permission (GITHUB_TOKEN cannot; use a GitHub App "
    "or PAT)"
)


class GitHubError(GitopsFlagsError):
    """A request failed; the message says what was attempted and what the token needs."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WriteForbidden(GitHubError):
    """A write refused with 403: a read-only token (fork PRs on `pull_request`) or a missing permission."""


class TooManyFiles(GitHubError):
    """The PR changes more files than the API lists: evaluating a partial list would be unsafe."""


def retries_ran_out(exc: requests.exceptions.RetryError, what: str) -> GitHubError:
    """urllib3 gave up: every answer was a 5xx or a 403."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    text = str(getattr(reason, "args", [None])[0] or reason or exc)
    return GitHubError(f"cannot {what}: GitHub kept failing, and the retries ran out ({text}). "
                       "Re-run the job later.")


def error_for(exc: GithubException, what: str, permission: str, *, write: bool) -> GitHubError:
    status = exc.status
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or exc.data or "")
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    if isinstance(exc, RateLimitExceededExceedsMaxWait) or status == 429 or (
        status == 403 and ("rate limit" in message.lower() or headers.get("x-ratelimit-remaining") == "0")
    ):
        return GitHubError(f"cannot {what}: {_rate_limit_text(exc, message, headers)}", status)
    if status == 401:
        return GitHubError(
            f"cannot {what}: GitHub rejected the token (401 {message}). Check the github-token input or "
            "GITHUB_TOKEN.", status)
    if status == 403:
        text = (f"cannot {what}: GitHub answered 403 ({message}). The token needs the '{permission}' "
                "permission (set it under `permissions:` in the workflow).")
        return WriteForbidden(text, status) if write else GitHubError(text, status)
    if status == 404:
        return GitHubError(
            f"cannot {what}: GitHub answered 404 Not Found. Either it does not exist, or the token cannot "
            f"see it (it needs '{permission}').", status)
    return GitHubError(f"cannot {what}: GitHub answered {status} ({message}).", status)


def _rate_limit_text(exc: GithubException, message: str, headers: Mapping[str, str]) -> str:
    """Which limit, when it resets, and what to do (the retries, if any, already waited what they could)."""
    primary = headers.get("x-ratelimit-remaining") == "0" or message.lower().startswith("api rate limit")
    text = f"GitHub's {'primary' if primary else 'secondary'} rate limit was exceeded ({exc.status} " + (
        f"{message or 'Too Many Requests'}).")
    wait = getattr(exc, "wait", None)
    if isinstance(exc, RateLimitExceededExceedsMaxWait) and wait is not None:
        text += (f" GitHub asks to wait {wait:.0f} s, longer than this job waits for a rate limit, so it "
                 "stops here instead of holding the runner.")
    reset = headers.get("x-ratelimit-reset", "")
    if primary and reset.isdigit():
        text += f" It resets at {datetime.fromtimestamp(int(reset), UTC):%Y-%m-%d %H:%M:%S} UTC."
    return text + (" Re-run the job after the reset (GITHUB_TOKEN allows 1,000 requests per hour per "
                   "repository)." if primary else " Re-run the job in a few minutes.")
