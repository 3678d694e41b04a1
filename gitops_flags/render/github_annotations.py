"""Problems as GitHub workflow commands (`::error file=…,line=…::message`), escaped as actions/toolkit
escapes them, at most as many per severity as GitHub shows."""

from collections.abc import Iterable, Sequence

from ..problems import Problem

ANNOTATIONS_PER_SEVERITY = 10  # GitHub shows 10 error and 10 warning annotations per step


def _escape_data(text: str) -> str:
    # actions/toolkit command.ts escapeData
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    # actions/toolkit command.ts escapeProperty
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(problem: Problem) -> str:
    props = [f"file={_escape_property(problem.file)}"] if problem.file else []
    if problem.line is not None:
        props.append(f"line={problem.line}")
        if problem.col is not None:
            props.append(f"col={problem.col}")
    props.append(f"title={_escape_property('gitops-flags: ' + problem.title)}")
    return f"::{problem.severity} {','.join(props)}::{_escape_data(problem.message)}"


def annotations(problems: Iterable[Problem], per_severity: int = ANNOTATIONS_PER_SEVERITY) -> list[str]:
    """Workflow commands for the first `per_severity` errors and warnings (GitHub shows no more per step)."""
    shown = {"error": 0, "warning": 0}
    lines = []
    for p in problems:
        if shown.get(p.severity, per_severity) < per_severity:
            shown[p.severity] += 1
            lines.append(annotation(p))
    return lines


def annotations_left_out(problems: Sequence[Problem], per_severity: int = ANNOTATIONS_PER_SEVERITY) -> int:
    return len(problems) - len(annotations(problems, per_severity))


def left_out_note(problems: Sequence[Problem]) -> str | None:
    """For a job summary: how many of its problems the annotations left out, or None when none were."""
    left_out = annotations_left_out(problems)
    if not left_out:
        return None
    return (f"{left_out} of the problems below are not shown as annotations: GitHub shows at most "
            f"{ANNOTATIONS_PER_SEVERITY} errors and {ANNOTATIONS_PER_SEVERITY} warnings a step.")
