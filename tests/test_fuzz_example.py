"""Random mutations of the bundled example's files (deleted and duplicated lines, changed indents, huge and
odd scalars, anchors and aliases, unicode) through the real CLI: never a traceback, never a hang, always
exit 0, or 1 with an error naming a file of the repository."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_flags.cli import cli

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "flags").rglob("*.yaml"))
ODD = [
    "1" + "0" * 400, "-" + "9" * 5000, ".inf", "-.nan", "1e999", "0x1F", "0755", "1_000", "1:30", "~", "null",
    "yes", "on", "off", "2026-01-01", "2026-13-45T99:00:00Z", "9999-12-31T23:59:59-05:00",
    "!!python/object:os.system", "!!binary aGVsbG8=", "!!set {a, b}", "!!str", "'unterminated", '"\\u0000"',
    '"\\ud800"', "{", "[", "]", "}",
    "x" * 100_000, "é" * 2000, "\u202egnp.exe", "\ufeff", "\u2028", "\x85", "|", ">-", "? x", "- -", "::",
    "*undefined", "&a", "<<: *a", "{<<: []}", "[*a, *a]", "99999999999999999999d", "0s", "366d", "[5, 5, 5]",
    "{type: http, url: 'https://a.example', threshold: 1}", "[" * 200 + "]" * 200, "\t", "%YAML 1.1", "---",
]

line_index = st.integers(0, 60)
mutation = st.one_of(
    st.tuples(st.just("delete"), line_index),
    st.tuples(st.just("duplicate"), line_index),
    st.tuples(st.just("indent"), line_index, st.integers(-6, 6)),
    st.tuples(st.just("scalar"), line_index, st.sampled_from(ODD)),
    st.tuples(st.just("anchor"), line_index, line_index),
    st.tuples(st.just("unicode"), line_index, st.text(min_size=1, max_size=8)),
)


def mutate(text: str, steps: list[tuple[object, ...]]) -> str:
    lines = text.split("\n")
    for step in steps:
        kind, at = step[0], int(step[1]) % max(len(lines), 1)  # type: ignore[call-overload]
        line = lines[at] if lines else ""
        if kind == "delete" and lines:
            del lines[at]
        elif kind == "duplicate":
            lines.insert(at, line)
        elif kind == "indent":
            shift = int(step[2])  # type: ignore[call-overload]
            lines[at] = " " * max(0, shift) + (line[-shift:] if shift < 0 and -shift <= len(line) else line)
        elif kind == "scalar":
            head, sep, _ = line.partition(": ")
            lines[at] = f"{head}{sep or ': '}{step[2]}"
        elif kind == "anchor":
            other = int(step[2]) % len(lines)  # type: ignore[call-overload]
            head, sep, tail = line.partition(": ")
            lines[at] = f"{head}{sep or ': '}&fz {tail}"
            head, sep, _ = lines[other].partition(": ")
            lines[other] = f"{head}{sep or ': '}*fz"
        elif kind == "unicode":
            cut = len(line) // 2
            lines[at] = line[:cut] + str(step[2]) + line[cut:]
    return "\n".join(lines)


@settings(max_examples=80, deadline=timedelta(seconds=30),  # a hang guard, not a speed target
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(path=st.sampled_from(FILES), steps=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_example_is_validated_cleanly(path: str, steps: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory(prefix="gitops-flags-fuzz-") as tmp:
        root = Path(tmp)
        shutil.copytree(ROOT / "flags", root / "flags")
        (root / ".github").mkdir()
        shutil.copy(ROOT / ".github" / "gitops-flags.yml", root / ".github" / "gitops-flags.yml")
        original = (ROOT / path).read_text()
        (root / path).write_bytes(mutate(original, steps).encode("utf-8", "surrogatepass"))
        # as `gitops-flags` runs it (cli.main): the command's return value is the exit status
        result = CliRunner().invoke(cli, ["validate", "--repo", str(root), "--format", "json"],
                                    standalone_mode=False)
    assert result.exception is None, result.exc_info  # no traceback
    assert result.return_value in (0, 1), result.output
    problems = json.loads(result.stdout)
    if result.return_value == 1:
        files = {p["file"] for p in problems if p["severity"] == "error"}
        assert files and all(f.startswith("flags/") for f in files), problems
    else:
        assert all(p["severity"] == "warning" for p in problems)
