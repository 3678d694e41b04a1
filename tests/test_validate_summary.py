"""`validate --format github` writes every problem to the job summary ($GITHUB_STEP_SUMMARY): the
annotations show only the first 10 of each severity. Run as GitHub Actions runs it, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_cli_validate import BAD, make_repo

from gitops_flags.problems import Problem
from gitops_flags.render import SUMMARY_LIMIT_BYTES, escape_md, validation_summary

REPO = Path(__file__).resolve().parents[1]


def validate(repo: Path, summary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    return subprocess.run([sys.executable, "-m", "gitops_flags", "validate", "-C", str(repo), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_the_job_summary_lists_every_problem_escaped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {
        **{f"flags/f{i:02}.yaml": BAD.replace("key: bad", f"key: f{i:02}") for i in range(14)},
        "flags/odd.yaml": 'key: odd\ntype: boolean\n"@octocat <b>x</b> | [a](http://e.com)": 1\n'
                          'variants: {"on": true, "off": false}\ndefault_variant: "off"\n',
    })
    summary = tmp_path / "summary.md"
    done = validate(repo, summary, "--format", "github")
    assert done.returncode == 1, done.stderr
    problems = json.loads(validate(repo, tmp_path / "unused.md", "--format", "json").stdout)
    assert len(problems) == 29  # 14 files x 2 errors, and the odd field
    assert sum(line.startswith("::error ") for line in done.stdout.splitlines()) == 10
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## ❌ gitops-flags validate\n\n29 errors, 0 warnings \\(15 flag files")
    assert "19 of the problems below are not shown as annotations" in text
    rows = [line for line in text.splitlines() if line.startswith("| ❌ | ")]
    assert len(rows) == 29
    for row, p in zip(rows, problems, strict=True):
        location = f"{p['file']}:{p['line']}:{p['col']}"
        assert row == f"| ❌ | {escape_md(location)} | {escape_md(p['message'], 1000)} ({p['title']}) |"
    odd = next(row for row in rows if "octocat" in row)
    assert "@&#8203;octocat" in odd and "&lt;b&gt;" in odd and "&#124;" in odd and "http:&#8203;//" in odd
    assert "<b>" not in text and "@octocat" not in text and "](http" not in text
    assert not (tmp_path / "unused.md").exists()  # json (and text) output writes no summary


def test_a_clean_repository_says_so_in_the_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    done = validate(REPO, summary, "--format", "github")
    assert done.returncode == 0, done.stderr
    head, _, tail = summary.read_text(encoding="utf-8").partition("## ✅ gitops-flags validate\n\nok: ")
    assert head == "earlier step\n"  # appended, as every step's summary is
    assert "schema files and the policy checked, no problems\n" in tail and "|" not in tail


def test_the_summary_stays_under_one_mib_and_counts_what_it_left_out() -> None:
    problems = [Problem(f"flags/f{i:05}.yaml", 3, 1, "unknown field '" + "<x>" * 300 + "'", "error",
                        "unknown-field") for i in range(2000)]
    text = validation_summary(problems, "2000 errors, 0 warnings")
    size = len(text.encode())
    assert SUMMARY_LIMIT_BYTES - 8 * 1024 < size <= SUMMARY_LIMIT_BYTES
    rows = [line for line in text.splitlines() if line.startswith("| ❌ | ")]
    assert rows[0].startswith("| ❌ | flags/f00000.yaml:3:1 |") and len(rows) < 2000
    assert rows[-1].startswith(f"| ❌ | flags/f{len(rows) - 1:05}.yaml:3:1 |")
    assert text.endswith(f"\n… and {2000 - len(rows)} more problems (of 2000) in the log: GitHub limits a "
                         "step summary to 1 MiB.\n")
