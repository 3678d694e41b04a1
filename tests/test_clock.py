from datetime import UTC, datetime

import pytest

from gitops_flags.cli import main
from gitops_flags.commands.clock import parse_now
from gitops_flags.problems import GitopsFlagsError


def test_now_is_an_aware_utc_time() -> None:
    assert parse_now(None) is None
    assert parse_now("2026-12-01T09:00:00Z") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert parse_now("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    with pytest.raises(GitopsFlagsError, match="needs a time zone"):
        parse_now("2026-12-01T09:00:00")
    with pytest.raises(GitopsFlagsError, match="not an ISO 8601 time"):
        parse_now("tomorrow")


@pytest.mark.parametrize("command", ["apply", "advance", "status"])
def test_every_command_refuses_a_bad_now_with_exit_2(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--store", "file:/nonexistent/store", "--now", "2026-12-01T09:00:00"]) == 2
    assert "needs a time zone" in capsys.readouterr().err
