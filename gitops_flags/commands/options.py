"""Options several commands share. One name per meaning: `-C DIR` is a directory (as in git), and
`--repo OWNER/NAME` is a GitHub repository (`check`, `doctor`).

`--repo DIR` meant a directory in every command but `check`; it still works there, as a deprecated alias of
`-C` that says so on stderr, so scripts keep running while they are updated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..inert import echo

F = TypeVar("F", bound=Callable[..., Any])
_META = "gitops_flags.deprecated_repo"
DEPRECATED = ("warning: `--repo DIR` is deprecated: use `-C DIR` (`--repo` is kept for OWNER/NAME, as in "
              "`check`)")


def directory_option(help: str, *, default: str | None = None, exists: bool = False,
                     as_path: bool = True) -> Callable[[F], F]:
    """`-C DIR` / `--directory DIR` (parameter `repo`), and the deprecated `--repo DIR` alias."""
    kind = click.Path(file_okay=False, exists=exists, path_type=Path if as_path else None)

    def deprecated(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value is not None:
            echo(DEPRECATED, err=True)
            ctx.meta[_META] = value

    def directory(ctx: click.Context, _: click.Parameter, value: Any) -> Any:
        if value is None:
            value = ctx.meta.get(_META)
        if value is None and default is not None:
            value = Path(default) if as_path else default
        return value

    def decorate(f: F) -> F:
        f = click.option("-C", "--directory", "repo", type=kind, callback=directory, metavar="DIR",
                         help=help + (f" Default: {default}." if default else ""))(f)
        f = click.option("--repo", "deprecated_repo", type=kind, hidden=True, expose_value=False,
                         is_eager=True, callback=deprecated)(f)
        return f

    return decorate
