"""`-C DIR` everywhere a command reads a directory; `--repo DIR` kept as a deprecated alias that says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gitops_flags.cli import COMMANDS, cli

DIRECTORY_COMMANDS = ["validate", "plan", "apply", "advance", "status", "audit"]


@pytest.mark.parametrize("name", DIRECTORY_COMMANDS)
def test_help_names_minus_c_and_hides_the_old_spelling(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "-C, --directory DIR" in result.output
    assert "--repo" not in result.output


def test_check_keeps_repo_for_owner_name() -> None:
    result = CliRunner().invoke(cli, ["check", "--help"])
    assert "--repo OWNER/NAME" in result.output and "--directory" not in result.output
    assert set(DIRECTORY_COMMANDS) <= set(COMMANDS)


def test_the_old_spelling_still_works_and_warns(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    runner = CliRunner()
    new = runner.invoke(cli, ["validate", "-C", str(tmp_path)])
    old = runner.invoke(cli, ["validate", "--repo", str(tmp_path)])
    assert old.exit_code == new.exit_code
    assert "deprecated: use `-C DIR`" in old.stderr and "deprecated" not in new.stderr
    assert old.stdout == new.stdout
