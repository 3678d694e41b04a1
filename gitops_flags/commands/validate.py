"""`gitops-flags validate`: check flag files, schema files and the policy of a repository's working tree."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import click

from ..inert import echo, echo_command, json_text
from ..model import POLICY_PATH, Policy
from ..problems import GitopsFlagsError, Problem, has_errors
from ..tree import DirTree
from ..validate import is_flag_path, is_schema_path, read_policy, validate_tree
from .options import directory_option

FORMATS = ("text", "json", "github")


def find_root(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding the policy file or a `.git`."""
    for directory in (start, *start.parents):
        if (directory / POLICY_PATH).is_file() or (directory / ".git").exists():
            return directory
    return None


def _relative(root: Path, given: str) -> str:
    """`given` (relative to the current directory) as a POSIX path relative to `root`. Symlinks in the
    folders are resolved, the file itself is not (the loader decides whether a symlinked file may be read)."""
    absolute = Path(os.path.abspath(given))
    # A folder is resolved in full: a linked folder that leads outside the repository is refused here.
    real = Path(os.path.realpath(absolute if absolute.is_dir() else absolute.parent))
    real = real if absolute.is_dir() else real / absolute.name
    try:
        rel = real.relative_to(root)
    except ValueError:
        raise GitopsFlagsError(f"{given} is outside the repository {root}") from None
    return rel.as_posix() if rel.parts else ""


def _order(p: Problem) -> tuple[str, int, int]:
    return (p.file, p.line or 0, p.col or 0)


def text_line(problem: Problem) -> str:
    """One line per problem, even when the message quotes text holding a line break."""
    message = problem.message.replace("\r", "\\r").replace("\n", "\\n")
    return f"{problem.location()}: {problem.severity}: {message}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(problems: Sequence[Problem], flags: int, schemas: int) -> str:
    what = f"{_plural(flags, 'flag file')}, {_plural(schemas, 'schema file')} and the policy"
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    if not problems:
        return f"ok: {what} checked, no problems"
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} ({what} checked)"


def output(problems: Sequence[Problem], fmt: str, flags: int = 0, schemas: int = 0) -> None:
    if fmt == "json":
        echo(json_text([p.to_dict() for p in problems], indent=2, ensure_ascii=False))
        return
    if fmt == "github":
        from .. import actions_env, render  # only this format needs them (render imports the diff)
    shown = {"error": 0, "warning": 0}
    for problem in problems:
        shown[problem.severity] += 1
        # GitHub keeps only the first few annotations of each severity per step; the rest stay in the log.
        annotate = fmt == "github" and shown[problem.severity] <= render.ANNOTATIONS_PER_SEVERITY
        if annotate:
            echo_command(render.annotation(problem))
        else:
            echo(text_line(problem))
    outcome = summary(problems, flags, schemas)
    echo(outcome)
    if fmt == "github":  # every problem in the job summary: the annotations show the first few
        path = actions_env.ActionsEnv.from_environ(os.environ).summary_path
        actions_env.append_summary(path, render.validation_summary(problems, outcome))


def _selection(root: Path, tree: DirTree, paths: Sequence[str], policy: Policy | None) -> tuple[
    list[str] | None, list[Problem]
]:
    """The files to check for the given PATHS (None: everything), and warnings for files skipped."""
    if not paths or any(p in ("", POLICY_PATH) for p in paths):  # a policy edit can affect every flag
        return None, []
    only: list[str] = []
    skipped: list[Problem] = []
    for path in paths:
        if (root / path).is_dir():
            below = list(tree.paths(path.rstrip("/") + "/"))
            if POLICY_PATH in below:
                return None, []
            only += [p for p in below if is_flag_path(p, policy) or is_schema_path(p, policy)]
        elif is_flag_path(path, policy) or is_schema_path(path, policy):
            only.append(path)
        else:
            skipped.append(Problem(path, None, None, "not a flag, schema or policy file; skipped", "warning",
                                   "not-checked"))
    return only, skipped


def run(root: Path, paths: Sequence[str], fmt: str, jobs: int | None = None) -> int:
    """Validate the repository at `root` (or only `paths`, relative to it) and print the problems.
    `jobs`: worker processes (None: one per core when there are enough files to gain)."""
    tree = DirTree(root)
    policy, problems = read_policy(tree)
    only, skipped = _selection(root, tree, paths, policy)
    result = validate_tree(tree, policy, only, keep_flags=False, jobs=jobs)
    problems = sorted([*problems, *skipped, *result.problems], key=_order)
    schemas = sum(1 for p in result.checked if is_schema_path(p, policy))
    output(problems, fmt, len(result.checked) - schemas, schemas)
    if policy is None:
        echo(f"error: cannot validate without a valid policy file ({POLICY_PATH} in {root})", err=True)
        return 2
    return 1 if has_errors(problems) else 0


@click.command(name="validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@directory_option("Repository root. Default: the nearest folder at or above the current one that holds "
                  f"{POLICY_PATH} or .git.", exists=True, as_path=False)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: `file:line:col: error|warning: message` lines and a summary; json: a list of "
              "problem objects; github: workflow commands that GitHub Actions shows as annotations.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes checking flag files. Default: one per core when there are "
              "enough files to gain from it; 1 checks in this process. The output is the same either way.")
def command(paths: tuple[str, ...], repo: str | None, fmt: str, jobs: int | None) -> int:
    """Validate flag files, schema files and the policy.

    Checks the structure of every file (unknown fields, wrong types, YAML traps such as an unquoted `on`),
    and what a schema cannot express: keys that match file names and are unique, variants of the flag's
    type, references to variants and schemas that exist, values that satisfy their schema, rollout stages
    that increase to 100, environments declared in the policy, and a consistent policy.

    PATHS are files or folders to check (default: the whole flags folder). The schemas that the given flags
    use are loaded too, and the flags that use a given schema are checked against it. Passing the policy
    file checks everything.

    Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage or configuration error (such as a
    missing or invalid policy file).
    """
    if repo is not None:
        root = Path(os.path.realpath(repo))
    else:
        cwd = Path(os.path.realpath(os.getcwd()))
        root = find_root(cwd) or cwd
    rel = [_relative(root, p) for p in paths]
    return run(root, rel, fmt, jobs)
