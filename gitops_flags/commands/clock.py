"""The `--now` option of apply, advance and status: the clock is an input, so runs can be replayed."""

from __future__ import annotations

from datetime import UTC, datetime

from ..problems import GitopsFlagsError


def parse_now(text: str | None) -> datetime | None:
    """`--now` as an aware UTC datetime; None when not given (the commands then read the real clock)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-12-01T09:00:00Z"
        raise GitopsFlagsError(f"--now {text!r} is not an ISO 8601 time such as {example}") from None
    if value.tzinfo is None:
        raise GitopsFlagsError(f"--now {text!r} needs a time zone, e.g. 2026-12-01T09:00:00Z")
    return value.astimezone(UTC)
