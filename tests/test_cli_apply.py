"""`gitops-flags apply` and `audit` end to end: real git repositories in tmp_path, a file store, and a fake
`MergedPullSource` standing in for GitHub (which PR merged a commit, and how its approvals evaluate)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from gitops_flags import changes, cli, notify, validate
from gitops_flags.actions_env import ActionsEnv
from gitops_flags.commands import apply as apply_cmd
from gitops_flags.flagd import served_state
from gitops_flags.git import GitTree
from gitops_flags.problems import GitopsFlagsError
from gitops_flags.reconcile import MergedPull
from gitops_flags.result import ChangeResult, Evaluation, StepResult, Verdict
from gitops_flags.store import StoreError
from gitops_flags.store.base import StoreSnapshot
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import StoreState

NOW1 = "2026-12-01T09:00:00Z"
NOW2 = "2026-12-01T10:00:00Z"
T1 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

POLICY = """\
version: 1
flags_dir: flags
environments: [staging, production]
roles:
  owners: ["@alice", "@bob"]
rules:
  - {match: {kind: governance}, workflow: review}
  - {match: {kind: schema}, workflow: review}
  - {match: {kind: flag}, workflow: review}
workflows:
  review:
    steps: [{id: owner, role: owners}]
options:
  on_unapproved: %s
  webhook_env: FLAGS_WEBHOOK
store: {type: file, path: .flag-store}
"""


def flag(key: str, *, staging: str = "enabled: true", production: str = "enabled: true") -> str:
    return (
        f"key: {key}\ntype: boolean\nvariants: {{\"on\": true, \"off\": false}}\ndefault_variant: \"off\"\n"
        f"environments:\n  staging: {{{staging}}}\n  production: {{{production}}}\n"
    )


# --- a repository, a store, a fake GitHub --------------------------------------------------------------


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        cmd = ["git", "-C", str(self.path), *args]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, files: Mapping[str, str | None], message: str = "change") -> str:
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


class FakeSource:
    """Which PR merged each commit, and a real diff of the PR judged `verdict` by alice."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.pulls: dict[str, MergedPull] = {}
        self.verdicts: dict[int, Verdict] = {}
        self.heads: dict[int, str] = {}
        self.looked_up: list[str] = []
        self.evaluated: list[tuple[int, str | None]] = []
        self.strict: dict[int, Verdict] = {}  # verdicts under a policy other than the base's

    def read(self, sha: str, path: str) -> bytes | None:
        return GitTree(self.repo.path, sha).read(path)

    def merged(
        self, sha: str, number: int, *, head: str | None = None, verdict: Verdict = "approved"
    ) -> None:
        parent = self.repo.git("rev-parse", f"{sha}^1")
        self.pulls[sha] = MergedPull(number, f"https://github.com/acme/flags/pull/{number}", "carol",
                                     head or sha, parent, sha)
        self.verdicts[number] = verdict

    def pull_for_commit(self, sha: str) -> MergedPull | None:
        self.looked_up.append(sha)
        return self.pulls.get(sha)

    def evaluate(self, pull: MergedPull, policy_at: str | None = None) -> Evaluation:
        assert pull.base_sha is not None
        base, head = GitTree(self.repo.path, pull.base_sha), GitTree(self.repo.path, pull.head_sha)
        policy, _ = validate.read_policy(GitTree(self.repo.path, policy_at or pull.base_sha))
        assert policy is not None
        self.evaluated.append((pull.number, policy_at))
        verdict = self.strict.get(pull.number, "pending") if policy_at else self.verdicts[pull.number]
        ok = verdict == "approved"
        step = StepResult("owner", "owners", "satisfied" if ok else "pending",
                          approved_by=("alice",) if ok else ())
        found = changes.diff(base, head, policy).changes
        return Evaluation(verdict, tuple(ChangeResult(c, "review", verdict, (step,)) for c in found))


class FlakyStore:
    """A file store whose n-th writes raise, as a full disk or a network failure would."""

    def __init__(self, inner: FileStore, fail: set[int]) -> None:
        self.inner, self.fail, self.writes = inner, fail, 0
        self.where = inner.where

    def read(self) -> StoreSnapshot:
        return self.inner.read()

    def write(self, *args: Any, **kwargs: Any) -> str:
        self.writes += 1
        if self.writes in self.fail:
            raise StoreError("injected failure: no space left on device")
        return self.inner.write(*args, **kwargs)

    def append_audit(self, *args: Any, **kwargs: Any) -> str:
        return self.inner.append_audit(*args, **kwargs)

    def read_audit(self) -> list[dict[str, Any]]:
        return self.inner.read_audit()


class Crash(BaseException):
    """The process dies (SIGKILL, a lost runner): nothing in the tool catches it."""


class FakeNotifier:
    """A PR's comments as GitHub keeps them; `fail` holds what the next posts raise, in order."""

    def __init__(self) -> None:
        self.comments: list[tuple[int, str]] = []
        self.fail: list[BaseException] = []
        self.lookups: list[int] = []

    def comment(self, number: int, body: str) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.comments.append((number, body))

    def has_comment(self, number: int, marker: str) -> bool:
        self.lookups.append(number)
        return any(n == number and marker in body for n, body in self.comments)


class DyingStore(FlakyStore):
    """The process dies during the n-th write (before it lands)."""

    def __init__(self, inner: FileStore, die_at: int) -> None:
        super().__init__(inner, set())
        self.die_at = die_at

    def write(self, *args: Any, **kwargs: Any) -> str:
        if self.writes + 1 == self.die_at:
            raise Crash()
        return super().write(*args, **kwargs)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    (tmp_path / "repo").mkdir()
    return Repo(tmp_path / "repo")


@pytest.fixture
def source(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> FakeSource:
    fake = FakeSource(repo)
    monkeypatch.setattr(apply_cmd, "source_factory", lambda env, checkout: fake)
    return fake


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> FakeNotifier:
    fake = FakeNotifier()
    monkeypatch.setattr(apply_cmd, "notifier_factory", lambda env: fake)
    return fake


@pytest.fixture(autouse=True)
def _no_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FLAGS_WEBHOOK", raising=False)
    yield


def adopt(repo: Repo, on_unapproved: str = "block") -> str:
    """The commit that adopts the policy, with one flag: the baseline."""
    files = {".github/gitops-flags.yml": POLICY % on_unapproved, "flags/dark_mode.yaml": flag("dark_mode")}
    return repo.commit(files, "adopt gitops-flags")


def apply(repo: Repo, store: Path, *extra: str, now: str = NOW1) -> int:
    """apply with --init: these tests start their store in a new directory (see the test of --init)."""
    return cli.main(["apply", "--repo", str(repo.path), "--store", f"file:{store}", "--now", now, "--init",
                     *extra])


def store_files(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.iterdir()) if not p.name.startswith(".")}


def served(store: Path, env: str) -> dict[str, Any]:
    flags: dict[str, Any] = FileStore(store).read().documents[env]["flags"]
    return flags


def state(store: Path) -> StoreState:
    return FileStore(store).read().state


def audit(store: Path) -> list[dict[str, Any]]:
    return FileStore(store).read_audit()


# --- catching up ---------------------------------------------------------------------------------------


def test_first_apply_takes_the_adoption_commit_as_baseline(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    c0 = adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    assert state(store).applied_commit == c0
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"
    lines = audit(store)
    assert {(r["key"], r["environment"], r["change_type"], r["approval"]) for r in lines} == {
        ("dark_mode", "staging", "create", "baseline"), ("dark_mode", "production", "create", "baseline"),
        (".github/gitops-flags.yml", None, "governance", "baseline"),
    }
    assert source.looked_up == []  # nothing to verify before the policy existed


def test_a_missed_run_is_caught_up_by_the_next(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    c1 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", staging="enabled: false")}, "PR 1")
    source.merged(c1, 1)
    c2 = repo.commit({"flags/search.yaml": flag("search")}, "PR 2")  # the run for PR 1 never happened
    source.merged(c2, 2)

    assert apply(repo, store, now=NOW2) == 0

    assert source.looked_up == [c1, c2]
    assert state(store).applied_commit == c2
    assert served_state(served(store, "staging")["dark_mode"]) == "DISABLED"
    assert served_state(served(store, "production")["search"]) == "ENABLED"
    new = [r for r in audit(store) if r["merge_commit"] in (c1, c2)]
    assert [(r["pr"], r["key"], r["environment"], r["outcome"]) for r in new] == [
        (1, "dark_mode", "staging", "applied"),
        (2, "search", "staging", "applied"),
        (2, "search", "production", "applied"),
    ]
    assert all(r["approval"] == "verified" and r["approvers"] == {"owner": ["alice"]} for r in new)
    assert new[0]["author"] == "carol" and new[0]["pr_url"].endswith("/pull/1")
    assert new[0]["flag"] == "dark_mode" and new[0]["store_version"] is not None
    assert new[0]["summary"] == "enabled true → false" and new[0]["before"]["enabled"] is True
    assert [n for n, _ in notifier.comments] == [1, 2]
    assert "search" in notifier.comments[1][1] and "✅ applied" in notifier.comments[1][1]
    assert "3 applied, 0 applied with a warning, 0 blocked" in capsys.readouterr().out


def test_only_first_parent_commits_are_steps(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    repo.git("checkout", "-q", "-b", "feature")
    work = repo.commit({"flags/search.yaml": flag("search", production="enabled: false")}, "wip")
    repo.commit({"flags/search.yaml": flag("search")}, "done")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #7")
    merge = repo.git("rev-parse", "HEAD")
    source.merged(merge, 7, head=repo.git("rev-parse", "feature"))

    assert apply(repo, store) == 0
    assert source.looked_up == [merge]  # the feature branch's own commits are not walked
    assert work not in {r["merge_commit"] for r in audit(store)}
    assert served_state(served(store, "production")["search"]) == "ENABLED"


# --- failures and resuming -----------------------------------------------------------------------------


def test_a_failed_write_is_resumed_and_nothing_is_applied_twice(
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    adopt(repo)
    c1 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", staging="enabled: false")}, "PR 1")
    c2 = repo.commit({"flags/search.yaml": flag("search")}, "PR 2")
    c3 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false",
                                                   staging="enabled: false")}, "PR 3")
    for number, sha in enumerate((c1, c2, c3), start=1):
        source.merged(sha, number)
    store = tmp_path / "store"
    flaky = FlakyStore(FileStore(store), fail={3})  # writes: baseline, c1, c2 (fails), the failure record
    monkeypatch.setattr(apply_cmd, "store_opener", lambda url, env: flaky)

    assert apply(repo, store) == 1

    first = state(store)
    assert first.applied_commit == c1
    failed = [u for u in first.units if not u.succeeded]
    assert [u.id for u in failed] == [f"{c2}/flag:search@staging", f"{c2}/flag:search@production"]
    assert all("no space left on device" in (u.error or "") and u.failed_at == T1 for u in failed)
    assert "search" not in served(store, "staging")
    lines_before = audit(store)

    monkeypatch.setattr(apply_cmd, "store_opener", apply_cmd.default_store_opener)
    assert apply(repo, store, now=NOW2) == 0

    final = state(store)
    assert final.applied_commit == c3
    assert all(u.succeeded for u in final.units)
    lines = audit(store)
    assert lines[: len(lines_before)] == lines_before  # the log only grew
    ids = [r["unit"] for r in lines]
    assert len(ids) == len(set(ids))  # no change was recorded (or applied) twice
    assert {r["merge_commit"] for r in lines[len(lines_before):]} == {c2, c3}  # resumed at the failed one
    c1_unit = final.unit(f"{c1}/flag:dark_mode@staging")
    assert c1_unit is not None and c1_unit.succeeded_at == T1  # applied by the first run, not again
    assert served_state(served(store, "production")["dark_mode"]) == "DISABLED"
    assert served_state(served(store, "staging")["search"]) == "ENABLED"


def test_a_failed_pr_lookup_records_the_units_and_stops(
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)

    def down(sha: str) -> MergedPull | None:
        raise GitopsFlagsError("GitHub answered 502")

    monkeypatch.setattr(source, "pull_for_commit", down)
    assert apply(repo, store) == 1
    assert [u.error for u in state(store).units if not u.succeeded] == [
        f"looking up the PR of {c1[:12]}: GitHub answered 502"] * 2
    monkeypatch.undo()
    monkeypatch.setattr(apply_cmd, "source_factory", lambda env, checkout: source)
    assert apply(repo, store) == 0
    assert state(store).applied_commit == c1


# --- approvals -----------------------------------------------------------------------------------------


def test_a_direct_push_is_blocked_loudly_and_only_once(
    repo: Repo, tmp_path: Path, source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    before = served(store, "production")["dark_mode"]
    pushed = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "hotfix")
    c2 = repo.commit({"flags/search.yaml": flag("search")}, "PR 2")
    source.merged(c2, 2)
    capsys.readouterr()

    assert apply(repo, store) == 1

    err = capsys.readouterr().err
    assert "blocked" in err and "direct push" in err
    assert served(store, "production")["dark_mode"] == before  # not applied
    assert "search" in served(store, "production")  # later approved commits still apply
    assert state(store).applied_commit == c2
    blocked = [r for r in audit(store) if r["merge_commit"] == pushed]
    assert [(r["outcome"], r["approval"], r["pr"]) for r in blocked] == [("blocked", "missing", None)]
    assert "no merged pull request" in blocked[0]["reason"]

    files = store_files(store)
    assert apply(repo, store) == 0  # reported once; the next run has nothing to do
    assert store_files(store) == files


def test_a_change_the_pr_did_not_get_approved_is_blocked(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1, verdict="pending")
    assert apply(repo, store) == 1
    assert "search" not in served(store, "staging")
    reasons = {r["reason"] for r in audit(store) if r["merge_commit"] == c1}
    assert reasons == {"PR #1 is pending for this change"}


def test_merged_content_other_than_the_approved_head_is_blocked(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    approved_head = repo.commit({"flags/search.yaml": flag("search")}, "what was reviewed")
    repo.git("reset", "-q", "--hard", "HEAD~1")
    merged = repo.commit({"flags/search.yaml": flag("search", production="enabled: false")}, "edited merge")
    source.merged(merged, 5, head=approved_head)
    assert apply(repo, store) == 1
    # The whole file is compared: an edit to one environment makes every environment of the file unapproved.
    outcomes = {(r["environment"], r["outcome"]) for r in audit(store) if r["merge_commit"] == merged}
    assert outcomes == {("staging", "blocked"), ("production", "blocked")}
    assert "search" not in served(store, "staging") and "search" not in served(store, "production")


def test_warn_mode_applies_an_unapproved_change_with_a_warning(
    repo: Repo, tmp_path: Path, source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo, on_unapproved="warn")
    store = tmp_path / "store"
    apply(repo, store)
    pushed = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "hotfix")
    capsys.readouterr()

    assert apply(repo, store) == 0

    assert served_state(served(store, "production")["dark_mode"]) == "DISABLED"
    (line,) = [r for r in audit(store) if r["merge_commit"] == pushed]
    assert (line["outcome"], line["approval"]) == ("warned", "missing")
    assert "warned" in capsys.readouterr().err


def test_an_unapproved_policy_edit_cannot_switch_to_warn(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    repo.commit({".github/gitops-flags.yml": POLICY % "warn"}, "direct push: relax the policy")
    pushed = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "push")
    assert apply(repo, store) == 1
    outcomes = [r["outcome"] for r in audit(store) if r["merge_commit"] == pushed]
    assert outcomes == ["blocked"]
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"


def test_no_verify_approvals_is_said_and_audited(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_github(env: ActionsEnv, checkout: Path) -> None:
        raise AssertionError("no approvals are looked up")

    monkeypatch.setattr(apply_cmd, "source_factory", no_github)
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store, "--no-verify-approvals")
    pushed = repo.commit({"flags/search.yaml": flag("search")}, "local")
    capsys.readouterr()

    assert apply(repo, store, "--no-verify-approvals") == 0

    assert "approvals are NOT verified" in capsys.readouterr().err
    lines = [r for r in audit(store) if r["merge_commit"] == pushed]
    assert {(r["outcome"], r["approval"]) for r in lines} == {("applied", "unverified")}


def test_verifying_without_github_is_a_usage_error(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply_cmd, "source_factory", lambda env, checkout: None)
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0  # the baseline needs no GitHub
    repo.commit({"flags/search.yaml": flag("search")}, "PR")
    assert apply(repo, store) == 2
    assert state(store).applied_commit != repo.git("rev-parse", "HEAD")


# --- re-runs and dry runs ------------------------------------------------------------------------------


def test_a_rerun_changes_nothing(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    adopt(repo)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    files = store_files(store)
    source.looked_up.clear()
    assert apply(repo, store, now=NOW2) == 0
    assert store_files(store) == files  # byte-identical, no new audit line
    assert source.looked_up == []


def test_commits_without_flag_changes_only_move_the_applied_commit(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    lines = audit(store)
    readme = repo.commit({"README.md": "hello"}, "docs")
    assert apply(repo, store) == 0
    assert state(store).applied_commit == readme
    assert audit(store) == lines and source.looked_up == []


def test_dry_run_writes_nothing(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    files = store_files(store)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    capsys.readouterr()
    assert apply(repo, store, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "search@production" in out and "would be written" in out
    assert store_files(store) == files
    assert notifier.comments == []


# --- what a change does to the store -------------------------------------------------------------------


def test_a_rollout_starts_at_its_first_stage_when_applied(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    plan = 'enabled: true, rollout: {variant: "on", stages: [10, 50, 100], stage_delay: 1h}'
    c1 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=plan)}, "PR 1")
    source.merged(c1, 1)
    assert apply(repo, store, now=NOW2) == 0

    rollout = state(store).rollout("dark_mode", "production")
    assert rollout is not None
    assert (rollout.status, rollout.stage_index, rollout.percentage, rollout.pr) == ("running", 0, 10, 1)
    assert rollout.entered_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert [h.event for h in rollout.history] == ["started"]
    entry = served(store, "production")["dark_mode"]
    assert entry["targeting"] == {"if": [True, {"fractional": [["on", 10], ["off", 90]]}, None]} or \
        entry["targeting"] == {"fractional": [["on", 10], ["off", 90]]}
    (line,) = [r for r in audit(store) if r["merge_commit"] == c1]
    assert line["rollout"]["percentage"] == 10 and line["rollout"]["stage"] == 1


def test_a_rollout_with_a_future_start_waits(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    plan = 'enabled: true, rollout: {variant: "on", stages: [10, 100], start_at: "2026-12-05T09:00:00Z"}'
    c1 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=plan)}, "PR 1")
    source.merged(c1, 1)
    assert apply(repo, store) == 0
    rollout = state(store).rollout("dark_mode", "production")
    assert rollout is not None and (rollout.status, rollout.percentage) == ("scheduled", 0)
    assert "targeting" not in served(store, "production")["dark_mode"]


def test_the_kill_switch_disables_the_flag_and_freezes_its_rollout(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    plan = 'rollout: {variant: "on", stages: [10, 50, 100], stage_delay: 1h}'
    c1 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=f"enabled: true, {plan}")}, "PR 1")
    c2 = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=f"enabled: false, {plan}")}, "PR")
    source.merged(c1, 1)
    source.merged(c2, 2)
    assert apply(repo, store) == 0
    assert served_state(served(store, "production")["dark_mode"]) == "DISABLED"
    assert served_state(served(store, "staging")["dark_mode"]) == "ENABLED"  # other environments untouched
    rollout = state(store).rollout("dark_mode", "production")
    assert rollout is not None and rollout.status == "paused" and "kill switch" in rollout.reason
    kill = [r for r in audit(store) if r["merge_commit"] == c2]
    assert [(r["change_type"], r["outcome"]) for r in kill] == [("toggle", "applied")]


def test_deleting_a_flag_removes_it_from_every_document(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    plan = 'enabled: true, rollout: {variant: "on", stages: [10, 100]}'
    c1 = repo.commit({"flags/search.yaml": flag("search", production=plan)}, "PR 1")
    source.merged(c1, 1)
    store = tmp_path / "store"
    apply(repo, store)
    assert "search" in served(store, "production") and state(store).rollout("search", "production")
    c2 = repo.commit({"flags/search.yaml": None}, "PR 2: retire search")
    source.merged(c2, 2)
    assert apply(repo, store) == 0
    assert "search" not in served(store, "production") and "search" not in served(store, "staging")
    assert "dark_mode" in served(store, "production")  # the others stay
    assert state(store).rollout("search", "production") is None
    assert {r["change_type"] for r in audit(store) if r["merge_commit"] == c2} == {"delete"}


def test_a_blocked_change_stays_unserved_when_another_flag_changes(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "direct push")
    c2 = repo.commit({"flags/search.yaml": flag("search")}, "PR 2")
    source.merged(c2, 2)
    apply(repo, store)
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"  # only search was recompiled


def test_an_invalid_flag_file_is_blocked_not_retried(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    bad = flag("search").replace('default_variant: "off"', 'default_variant: "maybe"')
    c1 = repo.commit({"flags/search.yaml": bad}, "PR 1")
    source.merged(c1, 1)
    assert apply(repo, store, "--no-verify-approvals") == 1
    lines = [r for r in audit(store) if r["merge_commit"] == c1]
    assert lines and all(r["outcome"] == "blocked" and "does not validate" in r["reason"] for r in lines)
    assert state(store).applied_commit == c1  # decided, not failed: the next run does not retry it


# --- reporting -----------------------------------------------------------------------------------------


def test_job_summary_and_workflow_commands_in_actions(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    repo.commit({"flags/search.yaml": flag("search")}, "direct push")
    capsys.readouterr()
    assert apply(repo, store) == 1
    text = summary.read_text()
    assert "## gitops-flags apply" in text and "⛔ blocked" in text
    assert "::error title=gitops-flags apply::search@staging" in capsys.readouterr().out


@responses.activate
def test_the_webhook_gets_a_slack_compatible_text(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = "https://hooks.example.com/services/T000/B000/secret"
    responses.post(hook, json={"ok": True})
    monkeypatch.setenv("FLAGS_WEBHOOK", hook)
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    assert apply(repo, store) == 0
    body = json.loads(responses.calls[-1].request.body or b"{}")
    assert body["text"].startswith("gitops-flags apply")
    assert "search@production" in body["text"] and "PR #1" in body["text"]
    assert [c["key"] for c in body["gitops_flags"]["changes"]] == ["search", "search"]


@responses.activate
def test_a_failing_webhook_is_a_warning_not_a_failure(
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook = "https://hooks.example.com/services/T000/B000/secret"
    responses.post(hook, status=500, body="boom")
    monkeypatch.setenv("FLAGS_WEBHOOK", hook)
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    err = capsys.readouterr().err
    assert "webhook answered 500" in err and "secret" not in err
    [waiting] = state(store).outbox  # kept for the next run, without the URL
    assert (waiting.kind, waiting.attempts) == ("webhook", 1)
    assert waiting.last_error == "the webhook answered 500 boom"
    assert "secret" not in (store / "state.json").read_text()

    responses.replace(responses.POST, hook, json={"ok": True})
    assert apply(repo, store, now=NOW2) == 0  # nothing new to apply; the message goes out now
    sent = json.loads(responses.calls[-1].request.body or b"{}")
    assert sent["gitops_flags"]["id"] == waiting.id and "dark_mode@production" in sent["text"]
    assert state(store).outbox == []
    assert len(responses.calls) == 2


# --- the outbox: notifications survive a run that dies or fails to send -------------------------------


def merged_pr(repo: Repo, source: FakeSource, number: int, key: str) -> str:
    sha = repo.commit({f"flags/{key}.yaml": flag(key)}, f"PR {number}")
    source.merged(sha, number)
    return sha


def test_a_comment_that_fails_waits_in_the_outbox_and_the_next_run_sends_it(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    c1 = merged_pr(repo, source, 1, "search")
    notifier.fail.append(GitopsFlagsError("GitHub answered 502"))
    capsys.readouterr()

    assert apply(repo, store) == 0  # a notification failure does not fail the run

    assert "comment on PR #1 could not be delivered (GitHub answered 502)" in capsys.readouterr().err
    [waiting] = state(store).outbox
    assert (waiting.id, waiting.pr, waiting.attempts) == (f"apply:{c1}:pr-1", 1, 1)
    assert notifier.comments == []

    assert apply(repo, store, now=NOW2) == 0  # nothing new to apply

    assert notifier.lookups == [1]  # left by an earlier run: was it posted after all? no
    [(number, body)] = notifier.comments
    assert number == 1 and body == waiting.body and "`search@production`" in body
    assert state(store).outbox == []
    files = store_files(store)
    assert apply(repo, store, now=NOW2) == 0  # nothing pending: nothing sent, nothing written
    assert store_files(store) == files and len(notifier.comments) == 1


@responses.activate
def test_a_run_that_dies_after_its_write_leaves_its_notifications_to_the_next(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = "https://hooks.example.com/services/T000/B000/secret"
    responses.post(hook, json={"ok": True})
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    monkeypatch.setenv("FLAGS_WEBHOOK", hook)
    c1 = merged_pr(repo, source, 1, "search")
    c2 = merged_pr(repo, source, 2, "checkout")
    notifier.fail.append(Crash())  # dies on its first comment, after both store writes

    with pytest.raises(Crash):
        apply(repo, store)

    crashed = state(store)
    assert crashed.applied_commit == c2
    assert [e.id for e in crashed.outbox][:2] == [f"apply:{c1}:pr-1", f"apply:{c2}:pr-2"]
    assert [e.kind for e in crashed.outbox] == ["pr_comment", "pr_comment", "webhook"]
    lines = audit(store)
    source.looked_up.clear()

    assert apply(repo, store, now=NOW2) == 0

    assert source.looked_up == [] and audit(store) == lines  # nothing applied again
    assert [n for n, _ in notifier.comments] == [1, 2]  # exactly the missing comments
    [call] = responses.calls
    sent = json.loads(call.request.body or b"{}")
    assert [c["key"] for c in sent["gitops_flags"]["changes"]] == ["search", "search", "checkout", "checkout"]
    assert state(store).outbox == []


def test_a_run_that_dies_after_sending_does_not_comment_twice(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    merged_pr(repo, source, 1, "search")
    dying = DyingStore(FileStore(store), die_at=2)  # write 1: the commit and its outbox; 2: the clearing
    monkeypatch.setattr(apply_cmd, "store_opener", lambda url, env: dying)
    with pytest.raises(Crash):
        apply(repo, store)
    assert len(notifier.comments) == 1 and len(state(store).outbox) == 1  # sent, not yet cleared

    monkeypatch.setattr(apply_cmd, "store_opener", apply_cmd.default_store_opener)
    assert apply(repo, store, now=NOW2) == 0

    assert len(notifier.comments) == 1 and notifier.lookups == [1]  # its marker was found: not re-sent
    assert state(store).outbox == []


def test_a_pr_merged_as_several_commits_gets_one_comment(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    first = merged_pr(repo, source, 5, "search")  # a rebase merge: two commits of PR #5
    merged_pr(repo, source, 5, "checkout")
    assert apply(repo, store) == 0
    [(number, body)] = notifier.comments
    assert number == 5 and "`search@staging`" in body and "`checkout@staging`" in body
    assert notify.outbox_marker(f"apply:{first}:pr-5") in body
    assert state(store).outbox == []


def test_a_dry_run_delivers_nothing_pending_and_writes_nothing(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    merged_pr(repo, source, 1, "search")
    notifier.fail.append(GitopsFlagsError("GitHub answered 502"))
    apply(repo, store)
    files = store_files(store)
    capsys.readouterr()
    assert apply(repo, store, "--dry-run", now=NOW2) == 0
    assert "1 notification pending in the store's outbox" in capsys.readouterr().out
    assert store_files(store) == files and notifier.comments == [] and notifier.lookups == []


# --- store selection and history -----------------------------------------------------------------------


def test_the_policy_names_the_store(repo: Repo, source: FakeSource) -> None:
    adopt(repo)
    assert cli.main(["apply", "--repo", str(repo.path), "--now", NOW1]) == 2  # no store there yet
    assert cli.main(["apply", "--repo", str(repo.path), "--now", NOW1, "--init"]) == 0
    assert (repo.path / ".flag-store" / "production.flagd.json").exists()


def test_a_store_from_another_history_is_refused(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    repo.git("checkout", "-q", "--orphan", "other")
    repo.commit({".github/gitops-flags.yml": POLICY % "block"}, "unrelated root")
    assert apply(repo, store) == 2


def test_baseline_option_seeds_an_empty_store_from_a_chosen_commit(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "old PR, long ago")
    c2 = repo.commit({"flags/legacy.yaml": flag("legacy")}, "PR 2")
    source.merged(c2, 2)
    store = tmp_path / "store"
    assert apply(repo, store, "--baseline", c1) == 0
    assert source.looked_up == [c2]
    approvals = {(r["key"], r["approval"]) for r in audit(store) if r["kind"] == "flag"}
    assert ("search", "baseline") in approvals and ("legacy", "verified") in approvals


# --- audit ---------------------------------------------------------------------------------------------


def test_audit_lists_and_filters(
    repo: Repo, tmp_path: Path, source: FakeSource, capsys: pytest.CaptureFixture[str]
) -> None:
    adopt(repo)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    store = tmp_path / "store"
    apply(repo, store)
    capsys.readouterr()

    assert cli.main(["audit", "search", "--env", "production", "--store", f"file:{store}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert "applied" in out[0] and "search@production" in out[0] and "PR #1 by carol" in out[0]
    assert "owner=alice" in out[0] and c1[:7] in out[0]

    assert cli.main(["audit", "--store", f"file:{store}", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in records} == {"dark_mode", "search", ".github/gitops-flags.yml"}

    assert cli.main(["audit", "--repo", str(repo.path), "--store", f"file:{store}", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


# --- the workflow users copy ---------------------------------------------------------------------------


def test_the_apply_workflow_is_least_privilege_and_never_displaced() -> None:
    path = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "flags-apply.yml"
    wf = yaml.safe_load(path.read_text())
    triggers = wf[True]  # YAML 1.1 reads the key `on` as True
    assert "flags/**" in triggers["push"]["paths"] and ".github/gitops-flags.yml" in triggers["push"]["paths"]
    assert "workflow_dispatch" in triggers and "pull_request" not in triggers
    # its own group (a pending apply is only replaced by a newer apply); writes are compare-and-swap
    assert wf["concurrency"] == {"group": "gitops-flags-apply-${{ github.ref }}", "cancel-in-progress": False}
    assert wf["permissions"] == {}
    job = wf["jobs"]["apply"]
    assert job["permissions"] == {"contents": "write", "pull-requests": "write", "statuses": "read"}
    assert job["environment"] == "flag-store"
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@") and steps[0]["with"]["fetch-depth"] == 0
    assert steps[1]["uses"] == "./" and steps[1]["with"]["command"] == "apply"


def test_a_file_store_in_the_checkout_is_warned_about_in_actions(
    repo: Repo, source: FakeSource, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(repo.path))
    adopt(repo)
    assert cli.main(["apply", "--repo", str(repo.path), "--now", NOW1, "--init"]) == 0
    assert "is inside the checkout and is lost" in capsys.readouterr().out


# --- schema and policy changes -------------------------------------------------------------------------

SCHEMA = """\
name: limits
version: 1
schema: {type: object, properties: {max: {type: integer}}}
"""


def test_a_schema_change_is_audited_and_serves_nothing_new(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    documents = {n: b for n, b in store_files(store).items() if n.endswith(".flagd.json")}
    c1 = repo.commit({"flags/schemas/limits.yaml": SCHEMA}, "PR 1: a schema")
    source.merged(c1, 1)
    assert apply(repo, store, now=NOW2) == 0
    assert {n: b for n, b in store_files(store).items() if n.endswith(".flagd.json")} == documents
    (line,) = [r for r in audit(store) if r["merge_commit"] == c1]
    assert (line["kind"], line["key"], line["change_type"], line["outcome"], line["pr"]) == (
        "schema", "limits", "schema_create", "applied", 1)
    assert line["environment"] is None and line["before"] is None and line["after"] is None
    assert line["flag"] is None
    assert state(store).applied_commit == c1


def test_an_approved_policy_change_judges_the_commits_after_it(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    c1 = repo.commit({".github/gitops-flags.yml": POLICY % "warn"}, "PR 1: warn instead of block")
    source.merged(c1, 1)
    pushed = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "push")
    assert apply(repo, store) == 0
    (policy_line,) = [r for r in audit(store) if r["merge_commit"] == c1]
    assert (policy_line["kind"], policy_line["change_type"], policy_line["outcome"]) == (
        "governance", "governance", "applied")
    (line,) = [r for r in audit(store) if r["merge_commit"] == pushed]
    assert (line["outcome"], line["approval"]) == ("warned", "missing")  # the parent's policy says warn
    assert served_state(served(store, "production")["dark_mode"]) == "DISABLED"


def test_without_a_store_section_actions_default_to_the_store_branch(
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = POLICY.replace("store: {type: file, path: .flag-store}\n", "") % "block"
    repo.commit({".github/gitops-flags.yml": policy, "flags/dark_mode.yaml": flag("dark_mode")}, "adopt")
    opened: list[str] = []

    def opener(url: str, env: ActionsEnv) -> FileStore:
        opened.append(url)
        return FileStore(tmp_path / "store")

    monkeypatch.setattr(apply_cmd, "store_opener", opener)
    assert cli.main(["apply", "--repo", str(repo.path), "--now", NOW1, "--init"]) == 0
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert cli.main(["apply", "--repo", str(repo.path), "--now", NOW1]) == 0
    assert opened == [f"file:{repo.path.resolve() / '.flag-store'}", "github-branch:flag-store"]
    assert apply_cmd.default_store_url(None, Path("/r"), in_actions=True) == "github-branch:flag-store"


# --- a PR lands as one unit (issue 11) -----------------------------------------------------------------


def rebased(repo: Repo, source: FakeSource, number: int, commits: list[dict[str, str | None]],
            head: str) -> list[str]:
    """A "Rebase and merge": the PR's commits replayed on main, each associated with the PR; GitHub
    records the last as the merge commit. `head` is the PR's own head (not on main)."""
    base = repo.git("rev-parse", "HEAD")
    shas = [repo.commit(files, f"PR {number} commit {i + 1}") for i, files in enumerate(commits)]
    for sha in shas:
        source.pulls[sha] = MergedPull(number, f"https://github.com/acme/flags/pull/{number}", "carol", head,
                                       base, shas[-1])
    source.verdicts[number] = "approved"
    return shas


def pr_head(repo: Repo, files: Mapping[str, str]) -> str:
    """The PR's approved head, committed off the branch (as a PR branch is)."""
    sha = repo.commit(files, "the PR's head")
    repo.git("reset", "-q", "--hard", "HEAD~1")
    return sha


def test_a_rebase_merge_serves_only_the_approved_end_state(
    repo: Repo, tmp_path: Path, source: FakeSource, notifier: FakeNotifier
) -> None:
    """Route 1: commit 1 turns production off, commit 2 restores the approved text. Only the end state is
    served; the intermediate one is audited as never served."""
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    approved_text = flag("dark_mode", staging="enabled: false")
    head = pr_head(repo, {"flags/dark_mode.yaml": approved_text})
    c1, c2 = rebased(repo, source, 7, [
        {"flags/dark_mode.yaml": flag("dark_mode", staging="enabled: false", production="enabled: false")},
        {"flags/dark_mode.yaml": approved_text},
    ], head)
    assert apply(repo, store) == 0
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"  # never turned off
    assert served_state(served(store, "staging")["dark_mode"]) == "DISABLED"
    lines = [(r["merge_commit"], r["environment"], r["outcome"]) for r in audit(store) if r["pr"] == 7]
    assert lines == [(c1, "production", "skipped"), (c2, "staging", "applied")]
    skipped = next(r for r in audit(store) if r["outcome"] == "skipped")
    assert "intermediate state of PR #7" in skipped["reason"] and skipped["after"]["enabled"] is False
    assert state(store).applied_commit == c2
    [(number, body)] = notifier.comments
    assert number == 7 and "never served" in body and "skipped" in body
    assert apply(repo, store) == 0 and len(audit(store)) == 5  # nothing twice


def test_a_rebase_merge_whose_end_is_not_the_approved_head_is_blocked(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    head = pr_head(repo, {"flags/dark_mode.yaml": flag("dark_mode", staging="enabled: false")})
    c1, c2 = rebased(repo, source, 8, [
        {"flags/dark_mode.yaml": flag("dark_mode", staging="enabled: false", production="enabled: false")},
        {"flags/search.yaml": flag("search")},
    ], head)
    assert apply(repo, store) == 1
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"
    assert "search" not in served(store, "staging")
    outcomes = {(r["merge_commit"], r["key"], r["outcome"]) for r in audit(store) if r["pr"] == 8}
    assert (c2, "dark_mode", "blocked") in outcomes and (c2, "search", "blocked") in outcomes
    assert not any(sha == c1 for sha, _, _ in outcomes)  # c1's state is the end's: judged (blocked) there
    assert not any(o == "applied" for _, _, o in outcomes)


def test_a_foreign_commit_ends_a_landed_range(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    """A direct push between two commits GitHub associates with one PR is never judged as part of it."""
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    text = flag("search")
    head = pr_head(repo, {"flags/search.yaml": text})
    base = repo.git("rev-parse", "HEAD")
    c1 = repo.commit({"flags/search.yaml": text}, "PR 9 commit 1")
    pushed = repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production="enabled: false")}, "push")
    c3 = repo.commit({"README.md": "x"}, "PR 9 commit 2")
    for sha in (c1, c3):
        source.pulls[sha] = MergedPull(9, "https://github.com/acme/flags/pull/9", "carol", head, base, c3)
    source.verdicts[9] = "approved"
    assert apply(repo, store) == 1
    assert served_state(served(store, "production")["dark_mode"]) == "ENABLED"
    assert "search" in served(store, "production")
    blocked = [r for r in audit(store) if r["outcome"] == "blocked"]
    assert [(r["merge_commit"], r["pr"]) for r in blocked] == [(pushed, None)]


def test_a_policy_tightened_after_the_pr_was_opened_binds_it(
    repo: Repo, tmp_path: Path, source: FakeSource
) -> None:
    """Route 4: the PR's base policy approves; the policy where it landed (tightened since) does not."""
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    opened_on = repo.git("rev-parse", "HEAD")
    tightened = (POLICY % "block").replace('owners: ["@alice", "@bob"]', 'owners: ["@bob"]')
    governance = repo.commit({".github/gitops-flags.yml": tightened}, "tighten")
    source.merged(governance, 1)
    apply(repo, store)
    merged = repo.commit({"flags/search.yaml": flag("search")}, "PR 2")
    source.pulls[merged] = MergedPull(2, "https://github.com/acme/flags/pull/2", "carol", merged, opened_on,
                                      merged)
    source.verdicts[2] = "approved"  # under the base policy
    assert apply(repo, store) == 1
    assert (2, governance) in source.evaluated
    reasons = {r["reason"] for r in audit(store) if r["merge_commit"] == merged}
    assert len(reasons) == 1
    assert reasons.pop().startswith(f"PR #2 is pending for this change: under the policy where it landed "
                                    f"(at {governance[:12]}")
    assert "search" not in served(store, "staging")


def test_the_same_policy_is_evaluated_once(repo: Repo, tmp_path: Path, source: FakeSource) -> None:
    adopt(repo)
    store = tmp_path / "store"
    apply(repo, store)
    merged_pr(repo, source, 3, "search")
    assert apply(repo, store) == 0
    assert source.evaluated == [(3, None)]


def test_a_missing_store_directory_is_started_only_with_init(repo: Repo, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    adopt(repo)
    typo = tmp_path / "typo"
    assert cli.main(["apply", "--repo", str(repo.path), "--store", f"file:{typo}", "--now", NOW1]) == 2
    err = capsys.readouterr().err
    assert f"no flag store at file:{typo}" in err and "apply --init" in err
    assert not typo.exists()
    assert cli.main(["apply", "--repo", str(repo.path), "--store", f"file:{typo}", "--now", NOW1,
                     "--dry-run", "--init"]) == 0
    assert not typo.exists()  # a dry run writes nothing, not even the directory
    assert cli.main(["apply", "--repo", str(repo.path), "--store", f"file:{typo}", "--now", NOW1,
                     "--init"]) == 0
    assert f"started a new flag store at file:{typo}" in capsys.readouterr().out
    assert (typo / "production.flagd.json").is_file()
