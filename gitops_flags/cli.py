"""The `gitops-flags` command line: a click group that loads each command's module on first use.

Each command lives in `gitops_flags/commands/<name>.py` as a `command` object whose callback returns an
exit code; this module only wires them up and turns the tool's errors into exit code 2. Loading lazily
keeps `gitops-flags --help` and the action's cold start fast (PyGithub is imported only by commands
that talk to GitHub).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import click

from .problems import GitopsFlagsError

# name -> one-line help (shown by `gitops-flags --help` without importing the module)
COMMANDS: dict[str, str] = {
    "validate": "Validate flag files, schema files and the policy.",
    "schema": "Print the JSON Schema of a file kind (flag, schema, policy).",
    "init": "Write a starter policy, CODEOWNERS and workflows into a repository.",
    "plan": "Show what a change between two revisions needs, and evaluate approvals offline.",
    "check": "Evaluate a pull request on GitHub and report a status, a comment and review requests.",
    "apply": "Reconcile the flag store to the default branch's head (approved changes only).",
    "advance": "Advance running staged rollouts by one stage when due and healthy.",
    "status": "Show what is served per environment: rules, split, rollout stage, applied commit, drift.",
    "audit": "Show the audit log of applied changes.",
    "store": "Check the flag store's seal, or re-seal it after an intended hand edit.",
    "doctor": "Audit the GitHub settings the governance depends on (branch rules, environment, secrets).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"gitops_flags.commands.{cmd_name}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gitops-flags")
def cli() -> None:
    """Govern feature-flag and schema changes made as YAML edits in pull requests.

    Exit codes: 0 success, 1 problems found or not approved, 2 usage or configuration error.
    """


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result: Any = cli.main(
            args=list(argv) if argv is not None else None, prog_name="gitops-flags", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 2
    except GitopsFlagsError as exc:
        from .inert import echo  # its text may quote repository content

        echo(f"error: {exc}", err=True)
        return int(getattr(exc, "exit_code", 2))  # a refused store says 1: found a problem, not misconfigured
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
