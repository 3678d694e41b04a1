"""The PyGithub client and its retry policy: authentication, GitHub Enterprise Server base URLs,
`GithubRetry` (5xx and rate limits, honouring `retry-after`) with a cap on every wait, and the pause
between writes GitHub asks of clients that create content."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from github import Auth, Github, GithubRetry
from github.GithubException import RateLimitExceededExceedsMaxWait
from urllib3 import Retry
from urllib3.exceptions import InvalidHeader

from ..problems import GitopsFlagsError

PER_PAGE = 100


class CappedRetry(GithubRetry):
    """`GithubRetry` that also retries PATCH (editing the sticky comment is idempotent) and applies
    `max_rate_limit_wait` to a `retry-after` header too: GithubRetry caps only the waits it computes from a
    rate-limit message, so a `retry-after: 3600` would otherwise hold the job for an hour per retry."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allowed_methods", Retry.DEFAULT_ALLOWED_METHODS | {"GET", "POST", "PATCH"})
        super().__init__(**kwargs)

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        if response is not None and self.max_rate_limit_wait is not None:
            try:
                wait = self.get_retry_after(response)
            except InvalidHeader:
                wait = None
            if wait is not None and wait > self.max_rate_limit_wait:
                try:
                    data: Any = json.loads(self.get_content(response, url or ""))
                except ValueError:
                    data = None
                headers = dict(response.headers)
                raise RateLimitExceededExceedsMaxWait(response.status, data, headers, wait=wait)
        return super().increment(method, url, response, error, _pool, _stacktrace)


def production_retry(*, total: int = 5, backoff_factor: float = 1.0, secondary_rate_wait: float = 60,
                     max_rate_limit_wait: float = 300) -> GithubRetry:
    """Retries for real runs: 5xx and rate limits, honouring `retry-after`, at most 5 retries and 5 minutes
    of rate-limit waiting (a job should fail with a clear message rather than hang for an hour). Tests pass
    zero waits; the policy is otherwise the same."""
    return CappedRetry(total=total, backoff_factor=backoff_factor, secondary_rate_wait=secondary_rate_wait,
                       max_rate_limit_wait=max_rate_limit_wait)


def connect(
    api_url: str, token: str | None, *, retry: GithubRetry | None = None, pauses: bool = True
) -> Github:
    """A PyGithub client. Reads are not paced (one evaluation makes about six); writes wait one second
    between each, as GitHub asks of clients that create content, unless GITOPS_FLAGS_WRITE_PAUSE says
    otherwise (seconds; 0 turns it off, e.g. against a GitHub Enterprise Server without secondary limits).
    `pauses=False` drops every pause (tests, benchmarks)."""
    return Github(
        auth=Auth.Token(token) if token else None,
        base_url=api_url.rstrip("/"),
        per_page=PER_PAGE,
        retry=retry if retry is not None else production_retry(),
        seconds_between_requests=None,
        seconds_between_writes=write_pause() if pauses else None,
        user_agent="gitops-flags",
        lazy=True,
    )


def write_pause(environ: Mapping[str, str] | None = None) -> float | None:
    raw = (os.environ if environ is None else environ).get("GITOPS_FLAGS_WRITE_PAUSE", "").strip()
    if not raw:
        return 1.0
    try:
        seconds = float(raw)
    except ValueError:
        raise GitopsFlagsError(f"GITOPS_FLAGS_WRITE_PAUSE={raw!r} is not a number of seconds") from None
    if seconds < 0 or seconds != seconds:
        raise GitopsFlagsError(f"GITOPS_FLAGS_WRITE_PAUSE={raw!r} must be 0 or more seconds")
    return seconds or None
