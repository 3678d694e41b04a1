"""`apply` and `advance` as the action runs them (real processes, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`
files): their step outputs, their job summaries, and apply's bounded terminal report over many units."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from e2e.conftest import read_outputs
from test_cli_advance import HOUR, T0, FlagRepo, flag_data
from test_cli_apply import NOW1, POLICY, Repo, flag

from gitops_flags import notify
from gitops_flags.apply import ApplyResult
from gitops_flags.changes import Change
from gitops_flags.reconcile import Judgement, Outcome, Unit, UnitResult
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import StoreState


def run_step(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """The tool in its own process with the files a runner gives a step; (process, outputs, summary)."""
    output, summary = tmp_path / "github_output", tmp_path / "step_summary.md"
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(output),
           "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_WORKSPACE": str(tmp_path / "elsewhere")}
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY", "FLAGS_WEBHOOK", "ROLLOUT_WEBHOOK"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "gitops_flags", *args], env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    return done, read_outputs(output), summary.read_text() if summary.exists() else ""


def test_apply_over_many_units_prints_totals_first_then_a_bounded_list(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    repo = Repo(tmp_path / "repo")
    repo.commit({".github/gitops-flags.yml": POLICY % "block", "flags/seed.yaml": flag("seed")}, "adopt")
    count = 40
    files: dict[str, str | None] = {f"flags/f{i:03}.yaml": flag(f"f{i:03}") for i in range(count)}
    head = repo.commit(files, "many flags")
    store = tmp_path / "store"
    done, outputs, summary = run_step(
        ["apply", "-C", str(repo.path), "--store", f"file:{store}", "--init", "--no-verify-approvals",
         "--now", NOW1], tmp_path)
    assert done.returncode == 0, done.stderr
    units = 3 + 2 * count  # the baseline's policy and flag (two environments), then each new flag's two
    lines = done.stdout.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("store ")) + 1:]  # the header
    assert lines[0] == f"{units} applied, 0 applied with a warning, 0 blocked (were written to {store})"
    details = [line for line in lines if line.startswith("applied ")]
    assert len(details) == notify.TERMINAL_LINES
    assert lines[1 + notify.TERMINAL_LINES] == (
        f"… and {units - notify.TERMINAL_LINES} more: every change is in the store's audit log "
        f"(`gitops-flags audit`); the job summary lists up to {notify.SUMMARY_ROWS}")
    snapshot = FileStore(store).read()
    assert outputs == {"applied": str(units), "warned": "0", "blocked": "0", "skipped": "0",
                       "failed": "false", "store-version": snapshot.version, "store-commit": head}
    assert f"{units} applied." in summary and f"Store version `{snapshot.version}`" in summary
    assert summary.count("| ✅ applied |") == units  # under SUMMARY_ROWS: every row


def test_apply_that_has_nothing_to_do_still_sets_its_outputs(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    repo = Repo(tmp_path / "repo")
    head = repo.commit({".github/gitops-flags.yml": POLICY % "block", "flags/seed.yaml": flag("seed")})
    store = tmp_path / "store"
    args = ["apply", "-C", str(repo.path), "--store", f"file:{store}", "--init", "--now", NOW1]
    first, _, _ = run_step(args, tmp_path)
    assert first.returncode == 0, first.stderr
    again, outputs, _ = run_step(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1].startswith("0 applied, 0 applied with a warning, 0 blocked")
    assert outputs["applied"] == "0" and outputs["store-commit"] == head
    assert outputs["store-version"] == FileStore(store).read().version


def test_the_summary_keeps_problems_and_points_at_the_audit_when_cut() -> None:
    results = [result(f"k{i}", "applied") for i in range(5)] + [result("bad", "blocked")]
    shown, left_out = notify.first(results, 3)
    assert [r.unit.change.key for r in shown] == ["bad", "k0", "k1"] and left_out == 3
    assert notify.first(results, 10) == (results, 0)  # nothing cut: commit order kept
    text = notify.job_summary(results, store="file:s", head="a" * 40, verified=True, limit=3)
    assert text.count("| ⛔ blocked |") == 1 and text.count("| ✅ applied |") == 2
    more = "… and 3 more: every change is in the store's audit log (`gitops-flags audit`)"
    assert text.rstrip().endswith(more)


def test_the_outputs_of_a_run_stopped_by_a_failure() -> None:
    base = ApplyResult(where="w", start=None, head="h" * 40, steps=1, dry_run=False, verify=True,
                       results=(result("k", "blocked"),), failures=("writing the store: disk full",),
                       notes=(), errors=(), latest=StoreState(applied_commit="c" * 40), version="v1",
                       recorded=frozenset(), notifications=())
    assert base.outputs("v2") == {"applied": "0", "warned": "0", "blocked": "1", "skipped": "0",
                                  "failed": "true", "store-version": "v2", "store-commit": "c" * 40}
    assert base.exit_code == 1


def test_advance_sets_its_outputs_and_counts_events_in_the_summary(tmp_path: Path) -> None:
    repo = FlagRepo(tmp_path / "flags-repo")
    repo.applied(flag_data())
    done, outputs, summary = run_step(
        ["advance", "-C", str(repo.root), "--now", (T0 + 2 * HOUR).isoformat()], tmp_path)
    assert done.returncode == 0, done.stderr
    assert outputs == {"started": "0", "advanced": "1", "completed": "0", "rolled-back": "0", "paused": "0",
                       "store-version": repo.snapshot().version}
    assert "1 advanced (1 rollout in the store)." in summary
    nothing, outputs, _ = run_step(
        ["advance", "-C", str(repo.root), "--now", (T0 + 2 * HOUR).isoformat()], tmp_path)
    assert nothing.returncode == 0 and outputs["advanced"] == "0"
    assert outputs["store-version"] == repo.snapshot().version  # unchanged, still said


def result(key: str, outcome: Outcome) -> UnitResult:
    change = Change(kind="flag", key=key, environment="production", change_type="create", summary="created",
                    path=f"flags/{key}.yaml")
    judgement = Judgement(outcome, "approved" if outcome == "applied" else "unapproved")
    return UnitResult(Unit(f"c:{key}", "c" * 40, change, judgement), outcome, "")
