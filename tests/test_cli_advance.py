"""`gitops-flags advance` and `status` over a real git repository and a file store in tmp_path.

The store is prepared with `rollout.start` and a store write (as apply would leave it), not with apply
itself; time moves with `--now`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
import yaml

from gitops_flags import flagd, rollout
from gitops_flags.actions_env import ActionsEnv
from gitops_flags.cli import main
from gitops_flags.commands import advance, status
from gitops_flags.flagd import served_state
from gitops_flags.model import Flag, RolloutPlan
from gitops_flags.problems import GitopsFlagsError
from gitops_flags.store import Store, StoreSnapshot
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import RolloutState, StoreState

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
GATE_URL = "https://status.example.com/checkout"
WEBHOOK_URL = "https://hooks.example.com/services/T000/B000/XXX"
POLICY = """\
version: 1
flags_dir: flags
environments: [staging, production]
roles: {owner: ["@acme/owners"]}
rules: [{match: {kind: flag}, workflow: review}]
workflows: {review: {steps: [{id: owner, role: owner}]}}
options: {webhook_env: ROLLOUT_WEBHOOK}
store: {type: file, path: .flag-store}
health_checks: {env: [GATE_TOKEN_FOR_TEST]}
"""


def flag_data(enabled: bool = True, rules: Sequence[Mapping[str, Any]] = (), **plan: Any) -> dict[str, Any]:
    rollout_plan = {"variant": "on", "stages": [5, 25, 50, 75, 100], "stage_delay": "2h", **plan}
    return {
        "key": "new_checkout", "type": "boolean", "variants": {"on": True, "off": False},
        "default_variant": "off",
        "environments": {
            "staging": {"enabled": True, "default_variant": "on"},
            "production": {"enabled": enabled, "rules": list(rules), "rollout": rollout_plan},
        },
    }


class FlagRepo:
    """A flag repository (git) with a file store that holds what apply would have written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store_dir = root / ".flag-store"
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, data: Mapping[str, Any], policy: str = POLICY) -> str:
        (self.root / ".github").mkdir(exist_ok=True)
        (self.root / ".github" / "gitops-flags.yml").write_text(policy)
        (self.root / "flags").mkdir(exist_ok=True)
        # JSON is YAML, and quotes the keys "on" and "off" unambiguously
        (self.root / "flags" / "new_checkout.yaml").write_text(json.dumps(data, indent=2) + "\n")
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", "change")
        return self.git("rev-parse", "HEAD")

    def applied(self, data: Mapping[str, Any], at: datetime = T0, pr: int | None = 42,
                state: RolloutState | None = None) -> RolloutState:
        """Commit the flag and write the store as apply would after merging it."""
        sha = self.commit(data)
        flag = Flag.model_validate(data)
        plan = flag.environments["production"].rollout
        assert plan is not None
        started = state or rollout.start(plan, at, pr)
        store_state = StoreState(applied_commit=sha, rollouts={"new_checkout": {"production": started}})
        documents = {
            env: flagd.compile_environment({"new_checkout": flag}, env, store_state.rollouts_for(env), sha)
            for env in ("staging", "production")
        }
        self.store().write(store_state, documents, self.store().read().version)
        return started

    def store(self) -> FileStore:
        return FileStore(self.store_dir)

    def snapshot(self) -> StoreSnapshot:
        return self.store().read()

    def rollout(self) -> RolloutState:
        state = self.snapshot().state.rollout("new_checkout", "production")
        assert state is not None
        return state

    def targeting(self) -> Any:
        return self.snapshot().documents["production"]["flags"]["new_checkout"].get("targeting")

    def advance(self, now: datetime, *extra: str) -> int:
        return main(["advance", "--repo", str(self.root), "--now", now.isoformat(), *extra])

    def audit(self) -> list[dict[str, Any]]:
        return self.store().read_audit()


@pytest.fixture
def repo(tmp_path: Path) -> FlagRepo:
    return FlagRepo(tmp_path / "flags-repo")


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def fractional(percentage: int) -> Any:
    return {"fractional": [["on", percentage], ["off", 100 - percentage]]}


HTTP_GATE = {"type": "http", "url": GATE_URL, "expect_status": 200}


# --- time travel -------------------------------------------------------------------------------------


def test_time_travel_over_a_whole_five_stage_plan(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    assert repo.targeting() == fractional(5)
    now = T0
    for expected in (25, 50, 75):
        version = repo.snapshot().version
        assert repo.advance(now + HOUR) == 0  # half-way through the wait: nothing due
        assert repo.snapshot().version == version
        now += 2 * HOUR
        assert repo.advance(now) == 0
        assert repo.rollout().percentage == expected
        assert repo.targeting() == fractional(expected)
        assert repo.rollout().entered_at == now
    now += 2 * HOUR
    assert repo.advance(now) == 0
    done = repo.rollout()
    assert (done.status, done.percentage) == ("completed", 100)
    assert repo.targeting() == {"if": [True, "on", None]}
    metadata = repo.snapshot().documents["production"]["flags"]["new_checkout"]["metadata"]
    assert metadata["gitopsRolloutStatus"] == "completed" and metadata["gitopsRolloutPercentage"] == 100
    assert [a["event"] for a in repo.audit()] == ["advanced", "advanced", "advanced", "completed"]
    assert [a["after"]["percentage"] for a in repo.audit()] == [25, 50, 75, 100]
    assert repo.audit()[0]["pr"] == 42
    assert repo.advance(now + 48 * HOUR) == 0  # nothing left to do
    assert len(repo.audit()) == 4
    out = capsys.readouterr().out
    assert "new_checkout@production (on): 5% → 25% (stage 2/5)" in out
    assert "completed, 75% → 100% (stage 5/5)" in out
    # staging's document was written back untouched
    assert repo.snapshot().documents["staging"]["flags"]["new_checkout"]["defaultVariant"] == "on"


def test_gaps_in_the_cron_schedule_move_one_stage_per_run(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    week_later = T0 + timedelta(days=7)
    assert repo.advance(week_later) == 0
    assert repo.rollout().percentage == 25
    assert repo.advance(week_later + timedelta(minutes=15)) == 0
    assert repo.advance(week_later + timedelta(minutes=30)) == 0
    assert repo.rollout().percentage == 25  # the new stage waits its full two hours
    assert repo.advance(week_later + 2 * HOUR) == 0
    assert repo.rollout().percentage == 50


def test_a_scheduled_rollout_starts_on_the_first_run_after_start_at(repo: FlagRepo) -> None:
    start_at = T0 + 10 * HOUR
    repo.applied(flag_data(start_at=start_at.isoformat()))
    assert repo.rollout().status == "scheduled" and repo.targeting() is None
    assert repo.advance(start_at - timedelta(minutes=1)) == 0
    assert repo.rollout().status == "scheduled"
    first_run = start_at + timedelta(minutes=9)
    assert repo.advance(first_run) == 0
    state = repo.rollout()
    assert (state.status, state.percentage, state.entered_at) == ("running", 5, first_run)
    assert repo.targeting() == fractional(5)
    assert repo.audit()[-1]["event"] == "started"


# --- gates ---------------------------------------------------------------------------------------------


def test_gate_failing_at_50_rolls_back_and_later_runs_do_not_roll_forward(
    repo: FlagRepo, rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.applied(flag_data(health_check=HTTP_GATE))
    rsps.get(GATE_URL, status=200)
    assert repo.advance(T0 + 2 * HOUR) == 0
    assert repo.advance(T0 + 4 * HOUR) == 0
    assert repo.rollout().percentage == 50
    rsps.replace(responses.GET, GATE_URL, status=500)
    assert repo.advance(T0 + 6 * HOUR) == 1
    state = repo.rollout()
    assert (state.status, state.percentage) == ("rolled_back", 0)
    assert "answered 500, expected 200" in state.reason
    assert repo.targeting() is None  # everyone gets the default variant again
    assert "ROLLED BACK 50% → 0%" in capsys.readouterr().out
    rsps.replace(responses.GET, GATE_URL, status=200)
    calls = len(rsps.calls)
    for hours in (8, 10, 30, 24 * 7):
        assert repo.advance(T0 + hours * HOUR) == 0
        assert repo.rollout() == state
    assert len(rsps.calls) == calls  # a rolled-back rollout is not even gated any more
    assert [a["event"] for a in repo.audit()] == ["advanced", "advanced", "rolled_back"]
    assert repo.audit()[-1]["gate"]["outcome"] == "failed"


def test_gate_failing_with_on_failure_pause_keeps_the_share(
    repo: FlagRepo, rsps: responses.RequestsMock
) -> None:
    repo.applied(flag_data(health_check=HTTP_GATE, on_failure="pause"))
    rsps.get(GATE_URL, status=500)
    assert repo.advance(T0 + 2 * HOUR) == 1
    assert (repo.rollout().status, repo.rollout().percentage) == ("paused", 5)
    assert repo.targeting() == fractional(5)


def test_inconclusive_gate_pauses_then_retries(repo: FlagRepo, rsps: responses.RequestsMock) -> None:
    gate = {"type": "http", "url": GATE_URL, "headers_from_env": {"Authorization": "GATE_TOKEN_FOR_TEST"}}
    repo.applied(flag_data(health_check=gate))
    assert repo.advance(T0 + 2 * HOUR) == 1  # the variable is not set: inconclusive, nothing sent
    state = repo.rollout()
    assert (state.status, state.percentage) == ("paused", 5)
    assert "GATE_TOKEN_FOR_TEST" in state.reason and len(rsps.calls) == 0
    version = repo.snapshot().version
    assert repo.advance(T0 + 3 * HOUR) == 1  # still inconclusive: no new write
    assert repo.snapshot().version == version
    rsps.get(GATE_URL, status=200)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GATE_TOKEN_FOR_TEST", "Bearer t0ken")
        assert repo.advance(T0 + 4 * HOUR) == 0
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer t0ken"
    assert (repo.rollout().status, repo.rollout().percentage) == ("running", 25)
    assert "t0ken" not in json.dumps(repo.audit())


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        ({"body": requests.Timeout("read timed out")}, "no answer within"),
        ({"body": requests.ConnectionError("connection refused")}, "unreachable (ConnectionError)"),
        ({"body": "{not json"}, "not JSON"),
        ({"json": {"data": {}}}, "no field data.error_rate"),
        ({"json": {"data": {"error_rate": "n/a"}}}, "not a number"),
        ({"status": 503, "body": "Service Unavailable"}, "answered 503"),
    ],
)
def test_an_inconclusive_gate_pauses_and_never_advances_or_rolls_back(
    repo: FlagRepo, rsps: responses.RequestsMock, answer: dict[str, Any], detail: str
) -> None:
    gate = {**HTTP_GATE, "json_field": "data.error_rate", "threshold": 0.01}
    repo.applied(flag_data(health_check=gate))
    rsps.get(GATE_URL, **answer)
    assert repo.advance(T0 + 2 * HOUR) == 1
    state = repo.rollout()
    assert (state.status, state.percentage) == ("paused", 5)
    assert state.last_gate is not None and state.last_gate.outcome == "inconclusive"
    assert detail in state.reason
    assert repo.targeting() == fractional(5)  # still served to the same 5%
    for hours in (4, 6, 48):
        assert repo.advance(T0 + hours * HOUR) == 1
        assert repo.rollout() == state  # retried, still unknown: nothing written
    assert [a["event"] for a in repo.audit()] == ["paused"]


# --- what advance leaves alone -------------------------------------------------------------------------


def test_a_plan_at_head_that_apply_has_not_applied_is_left_alone(
    repo: FlagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.applied(flag_data())
    repo.commit(flag_data(stages=[5, 100]))  # merged (or pushed) but not applied
    assert repo.advance(T0 + 2 * HOUR) == 0
    assert repo.rollout().percentage == 5
    assert "waiting for apply" in capsys.readouterr().out


def test_an_unapplied_rule_change_at_head_does_not_leak_into_the_store(
    repo: FlagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.applied(flag_data())
    when = {"attribute": "email", "operator": "ends_with", "value": "@evil.example"}
    rule = {"when": when, "variant": "on"}
    repo.commit(flag_data(rules=[rule]))  # e.g. a direct push that apply refused
    assert repo.advance(T0 + 2 * HOUR) == 0
    assert repo.targeting() == fractional(5)
    assert "differs from what the store serves" in capsys.readouterr().out


def test_a_disabled_flag_is_frozen(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data(enabled=False))
    assert repo.advance(T0 + 2 * HOUR) == 0
    assert repo.rollout().percentage == 5
    assert "kill switch" in capsys.readouterr().out


def test_an_unreadable_flag_file_is_a_configuration_error(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    (repo.root / "flags" / "new_checkout.yaml").write_text("key: new_checkout\ntype: [\n")
    repo.git("commit", "-qam", "break it")
    assert repo.advance(T0 + 2 * HOUR) == 2
    assert repo.rollout().percentage == 5


def test_dry_run_writes_nothing(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    version = repo.snapshot().version
    assert repo.advance(T0 + 2 * HOUR, "--dry-run") == 0
    assert repo.snapshot().version == version
    assert "(dry run) new_checkout@production (on): 5% → 25%" in capsys.readouterr().out


def test_now_needs_a_time_zone(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    assert main(["advance", "--repo", str(repo.root), "--now", "2026-12-01T09:00:00"]) == 2


# --- two runs at once ----------------------------------------------------------------------------------


class RacingStore:
    """Both runs read the same version before either writes: the race compare-and-swap must settle."""

    def __init__(self, inner: Store, barrier: threading.Barrier) -> None:
        self.inner = inner
        self.where = inner.where
        self.barrier = barrier
        self.reads = 0

    def read(self) -> StoreSnapshot:
        snapshot = self.inner.read()
        self.reads += 1
        if self.reads == 1:
            self.barrier.wait(timeout=30)
        return snapshot

    def write(self, *args: Any, **kwargs: Any) -> str:
        return self.inner.write(*args, **kwargs)

    def append_audit(self, *args: Any, **kwargs: Any) -> str:
        return self.inner.append_audit(*args, **kwargs)

    def read_audit(self) -> list[dict[str, Any]]:
        return self.inner.read_audit()


def test_two_concurrent_runs_make_exactly_one_advance(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    barrier = threading.Barrier(2)
    stores: list[RacingStore] = []
    codes: list[int] = []

    def open_racing(url: str, env: ActionsEnv) -> Store:
        store = RacingStore(FileStore(url.removeprefix("file:")), barrier)
        stores.append(store)
        return store

    def one_run() -> None:
        services = advance.Services(environ={}, open_store=open_racing)
        codes.append(advance.run(advance.Options(repo=repo.root, now=T0 + 2 * HOUR), services))

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert codes == [0, 0]
    assert sorted(s.reads for s in stores) == [1, 2]  # the loser read again after its conflict
    assert repo.rollout().percentage == 25
    assert [a["event"] for a in repo.audit()] == ["advanced"]


def test_two_concurrent_processes_make_exactly_one_advance(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    command = [sys.executable, "-m", "gitops_flags", "advance", "--repo", str(repo.root),
               "--now", (T0 + 2 * HOUR).isoformat()]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert repo.rollout().percentage == 25
    assert [a["event"] for a in repo.audit()] == ["advanced"]


# --- reporting -----------------------------------------------------------------------------------------


class Crash(BaseException):
    """The process dies (SIGKILL, a lost runner): nothing in the tool catches it."""


class FakeCommenter:
    """A PR's comments as GitHub keeps them; `fail` holds what the next posts raise, in order."""

    def __init__(self) -> None:
        self.comments: list[tuple[int, str]] = []
        self.fail: list[BaseException] = []
        self.lookups: list[int] = []

    def comment(self, pr: int, body: str) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.comments.append((pr, body))

    def has_comment(self, pr: int, marker: str) -> bool:
        self.lookups.append(pr)
        return any(n == pr and marker in body for n, body in self.comments)


def store_bytes(repo: FlagRepo) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(repo.store_dir.iterdir()) if not p.name.startswith(".")}


def test_reports_go_to_the_summary_the_pr_and_the_webhook(
    repo: FlagRepo, tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    repo.applied(flag_data(health_check=HTTP_GATE))
    rsps.get(GATE_URL, status=200)
    rsps.post(WEBHOOK_URL, status=200)
    summary = tmp_path / "summary.md"
    commenter = FakeCommenter()
    environ = {"GITHUB_STEP_SUMMARY": str(summary), "ROLLOUT_WEBHOOK": WEBHOOK_URL,
               "GITHUB_REPOSITORY": "acme/flags", "GITHUB_RUN_ID": "77"}
    services = advance.Services(environ=environ, commenter=lambda env: commenter)
    assert advance.run(advance.Options(repo=repo.root, now=T0 + 2 * HOUR), services) == 0
    text = summary.read_text()
    assert text.startswith("### gitops-flags advance")
    assert "5% → 25%" in text
    [(pr, body)] = commenter.comments
    assert pr == 42
    assert "advanced **5% → 25%**" in body and "stage 2/5" in body
    assert "https://github.com/acme/flags/actions/runs/77" in body
    assert "Next stage due: 2026-12-01 13:00 UTC" in body
    payload = json.loads(rsps.calls[-1].request.body or b"{}")
    assert payload["text"].splitlines()[:2] == [
        "gitops-flags advance on acme/flags:",
        f"new_checkout@production (on): 5% → 25% (stage 2/5); gate passed: GET {GATE_URL} answered 200; "
        "next stage due 2026-12-01 13:00 UTC",
    ]
    [moved] = payload["gitops_flags"]["rollouts"]
    assert (moved["event"], moved["before"], moved["after"], moved["pr"]) == ("advanced", 5, 25, 42)


def test_a_rollback_is_reported_with_its_reason_and_a_failing_webhook_does_not_fail_the_run(
    repo: FlagRepo, rsps: responses.RequestsMock
) -> None:
    repo.applied(flag_data(health_check={**HTTP_GATE, "json_field": "error_rate", "threshold": 0.01}))
    rsps.get(GATE_URL, json={"error_rate": 0.3})
    rsps.post(WEBHOOK_URL, status=500)
    commenter = FakeCommenter()
    services = advance.Services(environ={"ROLLOUT_WEBHOOK": WEBHOOK_URL}, commenter=lambda env: commenter)
    assert advance.run(advance.Options(repo=repo.root, now=T0 + 2 * HOUR), services) == 1
    [(_, body)] = commenter.comments
    assert "**rolled back** 5% → 0%" in body
    assert "error\\_rate 0.3 not &lt;= 0.01" in body  # gate text (a remote answer) is escaped Markdown
    assert "not &lt;= 0.01" in json.loads(rsps.calls[-1].request.body or b"{}")["text"]  # Slack's escapes
    assert repo.rollout().status == "rolled_back"


def test_nothing_due_sends_nothing(repo: FlagRepo, tmp_path: Path) -> None:
    repo.applied(flag_data())
    commenter = FakeCommenter()
    summary = tmp_path / "summary.md"
    environ = {"GITHUB_STEP_SUMMARY": str(summary)}
    services = advance.Services(environ=environ, commenter=lambda env: commenter)
    before = store_bytes(repo)
    assert advance.run(advance.Options(repo=repo.root, now=T0 + HOUR), services) == 0
    assert commenter.comments == []
    assert "Nothing due (1 rollout in the store)" in summary.read_text()
    assert store_bytes(repo) == before  # nothing pending: nothing written


def test_a_comment_that_fails_waits_in_the_outbox_and_the_next_run_sends_it(
    repo: FlagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.applied(flag_data())
    commenter = FakeCommenter()
    commenter.fail.append(GitopsFlagsError("GitHub answered 502"))
    services = advance.Services(environ={}, commenter=lambda env: commenter)
    assert advance.run(advance.Options(repo=repo.root, now=T0 + 2 * HOUR), services) == 0
    assert "comment on PR #42 could not be delivered (GitHub answered 502)" in capsys.readouterr().err
    [waiting] = repo.snapshot().state.outbox
    assert waiting.id == "advance:new_checkout@production:advanced:2026-12-01T11:00:00Z:pr-42"
    assert waiting.attempts == 1 and commenter.comments == []

    assert advance.run(advance.Options(repo=repo.root, now=T0 + 3 * HOUR), services) == 0  # nothing due

    [(pr, body)] = commenter.comments
    assert pr == 42 and "advanced **5% → 25%**" in body and commenter.lookups == [42]
    assert repo.snapshot().state.outbox == [] and repo.rollout().percentage == 25


def test_a_run_that_dies_after_its_write_leaves_its_notifications_to_the_next(
    repo: FlagRepo, rsps: responses.RequestsMock
) -> None:
    repo.applied(flag_data())
    rsps.post(WEBHOOK_URL, status=200)
    commenter = FakeCommenter()
    commenter.fail.append(Crash())
    environ = {"ROLLOUT_WEBHOOK": WEBHOOK_URL, "GITHUB_RUN_ID": "9"}
    services = advance.Services(environ=environ, commenter=lambda env: commenter)
    with pytest.raises(Crash):
        advance.run(advance.Options(repo=repo.root, now=T0 + 2 * HOUR), services)
    assert repo.rollout().percentage == 25  # the advance landed, its notifications are pending
    assert [e.kind for e in repo.snapshot().state.outbox] == ["pr_comment", "webhook"]
    assert not rsps.calls

    environ["GITHUB_RUN_ID"] = "10"
    assert advance.run(advance.Options(repo=repo.root, now=T0 + 3 * HOUR), services) == 0  # nothing due

    [(pr, body)] = commenter.comments  # exactly the missing comment, and the webhook once
    assert pr == 42 and "advanced **5% → 25%**" in body
    [call] = rsps.calls
    payload = json.loads(call.request.body or b"{}")
    assert payload["gitops_flags"]["id"] == "advance:run-9.1:webhook"
    assert [r["after"] for r in payload["gitops_flags"]["rollouts"]] == [25]
    assert repo.snapshot().state.outbox == [] and repo.rollout().percentage == 25
    assert [a["event"] for a in repo.audit()] == ["advanced"]


# --- status --------------------------------------------------------------------------------------------


def test_status_text(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    repo.advance(T0 + 2 * HOUR)
    capsys.readouterr()
    assert main(["status", "--repo", str(repo.root), "--now", (T0 + 3 * HOUR).isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"applied commit {repo.snapshot().state.applied_commit[:12]}" in out
    assert "new_checkout\n  production   ENABLED  serves on to 25%, off to 75% of everyone" in out
    assert "rollout of on: stage 2/5 (5% → 25% → 50% → 75% → 100%), 25%, running" in out
    assert "next: 2026-12-01 13:00 UTC (in 1h)" in out
    assert "  staging      ENABLED  serves on to everyone" in out
    assert "DRIFT" not in out


def test_status_json_and_key_filter(repo: FlagRepo, rsps: responses.RequestsMock,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data(health_check=HTTP_GATE))
    rsps.get(GATE_URL, status=200)
    repo.advance(T0 + 2 * HOUR)
    capsys.readouterr()
    now = (T0 + 4 * HOUR).isoformat()
    assert main(["status", "new_checkout", "--repo", str(repo.root), "--now", now, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    production = next(f for f in data["flags"] if f["environment"] == "production")
    assert served_state(production) == "ENABLED" and production["default_variant"] == "off"
    assert production["rollout"]["stage"] == 2 and production["rollout"]["stages"] == 5
    assert production["rollout"]["percentage"] == 25 and production["rollout"]["due_now"] is True
    assert production["rollout"]["next_stage_due"] == "2026-12-01T13:00:00+00:00"
    assert production["rollout"]["last_gate"]["outcome"] == "passed"
    assert (production["rollout"]["paused_by"], production["rollout"]["on_failure"]) == (None, "rollback")
    assert production["served"]["split"] == [{"variant": "on", "percentage": 25},
                                             {"variant": "off", "percentage": 75}]
    assert production["drift"] is None
    capsys.readouterr()
    assert main(["status", "new_checkuot", "--store", f"file:{repo.store_dir}"]) == 1
    assert "no flag 'new_checkuot' in the store" in capsys.readouterr().err


def test_status_unknown_key_suggests_the_near_one(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    capsys.readouterr()
    assert main(["status", "new_checkuot", "--repo", str(repo.root)]) == 1
    assert "error: no flag 'new_checkuot' in the store file:" in (err := capsys.readouterr().err)
    assert "did you mean new_checkout?" in err


def test_a_completed_rollout_serves_its_variant_to_everyone(repo: FlagRepo,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    for stage in range(1, 5):
        repo.advance(T0 + 2 * stage * HOUR)
    capsys.readouterr()
    assert main(["status", "new_checkout", "--repo", str(repo.root), "--format", "json"]) == 0
    flags = json.loads(capsys.readouterr().out)["flags"]
    production = next(f for f in flags if f["environment"] == "production")
    assert production["rollout"]["status"] == "completed" and production["default_variant"] == "off"
    assert production["served"]["everyone_else"] == "on"
    assert production["served"]["summary"] == "on to everyone"


def test_status_names_rules_and_finds_a_hand_edit(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    staff = {"name": "staff", "when": {"attribute": "email", "operator": "ends_with", "value": "@acme.com"},
             "variant": "on"}
    repo.applied(flag_data(rules=[staff]))
    capsys.readouterr()
    assert main(["status", "new_checkout", "--repo", str(repo.root)]) == 0
    out = capsys.readouterr().out
    assert 'production   ENABLED  serves staff (email ends_with "@acme.com") → on; on to 5%, off to 95% of ' \
           "everyone else" in out
    snapshot = repo.snapshot()  # a store written by something else than what the applied commit says
    snapshot.documents["production"]["flags"]["new_checkout"]["defaultVariant"] = "on"
    repo.store().write(snapshot.state, snapshot.documents, snapshot.version)
    capsys.readouterr()
    main(["status", "new_checkout", "--repo", str(repo.root)])
    out = capsys.readouterr().out
    assert "DRIFT: the store serves something other than flags/new_checkout.yaml" in out
    assert "compiles to (defaultVariant): a hand edit?" in out


def test_a_store_that_does_not_exist_is_an_error_not_an_empty_store(
        repo: FlagRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--store", f"file:{tmp_path / 'typo'}"]) == 2
    err = capsys.readouterr().err
    assert f"no flag store at file:{tmp_path / 'typo'}" in err and "does not exist" in err
    assert "apply --init" in err
    assert not (tmp_path / "typo").exists()
    (tmp_path / "empty").mkdir()
    assert main(["status", "--store", f"file:{tmp_path / 'empty'}"]) == 2
    assert "nothing was ever written there" in capsys.readouterr().err


def test_status_of_paused_and_rolled_back(repo: FlagRepo, rsps: responses.RequestsMock) -> None:
    repo.applied(flag_data(health_check=HTTP_GATE))
    rsps.get(GATE_URL, status=500)
    repo.advance(T0 + 2 * HOUR)
    [row] = [r for r in status.rows(repo.snapshot()) if r.rollout is not None]
    assert row.rollout is not None
    assert status.next_text(row.rollout, T0 + 3 * HOUR) == "waits for a pull request that changes the plan"
    paused = rollout.start(RolloutPlan(variant="on", paused=True), T0, 1)
    assert status.next_text(paused, T0) == "when a pull request sets paused: false"


# --- the workflow users copy ---------------------------------------------------------------------------


def test_rollout_workflow_schedule_concurrency_and_permissions() -> None:
    path = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "flags-rollout.yml"
    wf = yaml.safe_load(path.read_text().replace("\non:", '\n"on":'))
    assert wf["on"]["schedule"] == [{"cron": "*/15 * * * *"}]
    assert "workflow_dispatch" in wf["on"]
    # its own group: sharing the apply workflow's would let a scheduled run displace a pending apply
    group = "gitops-flags-rollout-${{ github.ref }}"
    assert wf["concurrency"] == {"group": group, "cancel-in-progress": False}
    assert wf["permissions"] == {}
    [job] = wf["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert job["environment"] == "flag-store"
    action = next(s for s in job["steps"] if s.get("uses") == "./")
    assert action["with"]["command"] == "advance"
    assert "github.event_name == 'schedule'" in job["if"]


def test_nothing_due_says_when_the_next_stage_is(repo: FlagRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    capsys.readouterr()
    assert repo.advance(T0 + HOUR) == 0
    assert ("nothing due (1 rollout in" in (out := capsys.readouterr().out)
            and "the next stage is due 2026-12-01 11:00 UTC (new_checkout in production, in 1h)" in out)


def test_advance_refuses_a_store_directory_that_does_not_exist(repo: FlagRepo, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo.applied(flag_data())
    assert repo.advance(T0 + 3 * HOUR, "--store", f"file:{tmp_path / 'typo'}") == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo").exists()
