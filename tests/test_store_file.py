"""The file backend on the real filesystem: CAS, atomicity across a crash, locking, checksums."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gitops_flags.cli import main
from gitops_flags.model import StoreConfig
from gitops_flags.store import ConflictError, StoreCorrupt, StoreError, Update, open_store, store_url, update
from gitops_flags.store.base import StoreSnapshot
from gitops_flags.store.file import FileStore
from gitops_flags.store.state import (
    OUTBOX_MAX_ATTEMPTS,
    OutboxEntry,
    RolloutState,
    StoreState,
    UnitOfWork,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SCHEMA = "https://flagd.dev/schema/v0/flags.json"


def doc(env: str, value: bool = True) -> dict[str, Any]:
    variants = {"on": True, "off": False}
    flag = {"state": "ENABLED", "variants": variants, "defaultVariant": "on" if value else "off"}
    return {"$schema": SCHEMA, "flags": {"f": flag}, "metadata": {"env": env}}


def state(commit: str) -> StoreState:
    rollout = RolloutState(
        variant="on", stages=[5, 25], stage_index=0, percentage=5, status="running",
        entered_at=T0, stage_delay_seconds=3600, plan_hash="sha256:x",
    )
    return StoreState(applied_commit=commit).with_rollout("f", "production", rollout)


def first_write(store: FileStore) -> str:
    return store.write(state("c1"), {"production": doc("production"), "staging": doc("staging")}, None)


def test_empty_store_reads_as_nothing(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        snap = FileStore(path).read()
        assert snap == StoreSnapshot(StoreState(), {}, None)
        assert FileStore(path).read_audit() == []
    assert not (tmp_path / "missing").exists()  # reading creates nothing


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    version = first_write(store)
    snap = store.read()
    assert snap.version == version
    assert snap.state == state("c1")
    assert snap.documents == {"production": doc("production"), "staging": doc("staging")}
    names = sorted(p.name for p in (tmp_path / "s").iterdir() if not p.name.startswith("."))
    assert names == ["production.flagd.json", "staging.flagd.json", "state.json", "store.sha256"]
    # flagd reads the environment file directly
    assert json.loads((tmp_path / "s" / "production.flagd.json").read_text()) == doc("production")


def test_manifest_is_sha256sum_format_and_version_is_its_hash(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    version = first_write(store)
    raw = (tmp_path / "store.sha256").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == version
    for line in raw.decode().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest


def test_compare_and_swap(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    with pytest.raises(ConflictError):
        store.write(state("c2"), {}, None)  # expects an empty store
    v2 = store.write(state("c2"), {"production": doc("production", False)}, v1)
    with pytest.raises(ConflictError, match="moved"):
        store.write(state("c3"), {}, v1)  # stale version
    snap = store.read()
    assert snap.version == v2 and snap.state.applied_commit == "c2"


def test_environment_left_out_loses_its_document(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    store.write(state("c2"), {"production": doc("production")}, v1)
    assert not (tmp_path / "staging.flagd.json").exists()
    assert set(store.read().documents) == {"production"}


def test_unchanged_write_touches_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    before = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    v2 = store.write(state("c1"), {"production": doc("production"), "staging": doc("staging")}, v1)
    assert v2 == v1
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == before


def test_only_changed_files_are_replaced(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    staging_inode = (tmp_path / "staging.flagd.json").stat().st_ino
    prod_inode = (tmp_path / "production.flagd.json").stat().st_ino
    store.write(state("c2"), {"production": doc("production", False), "staging": doc("staging")}, v1)
    assert (tmp_path / "staging.flagd.json").stat().st_ino == staging_inode
    assert (tmp_path / "production.flagd.json").stat().st_ino != prod_inode


def test_audit_lines_land_with_the_state(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = store.write(state("c1"), {}, None, audit=[{"flag": "f", "n": 1}])
    v2 = store.write(state("c2"), {}, v1, audit=[{"flag": "f", "n": 2}, {"flag": "g", "n": 3}])
    assert [r["n"] for r in store.read_audit()] == [1, 2, 3]
    with pytest.raises(ConflictError):
        store.write(state("c3"), {}, v1, audit=[{"n": 4}])
    assert [r["n"] for r in store.read_audit()] == [1, 2, 3]  # a lost race appends nothing
    v3 = store.append_audit([{"n": 5}], v2)
    assert v3 != v2 and store.read().state.applied_commit == "c2"
    assert [r["n"] for r in store.read_audit()] == [1, 2, 3, 5]
    assert (tmp_path / "audit.jsonl").read_text().count("\n") == 4


def test_bad_environment_name_is_refused_before_writing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    with pytest.raises(StoreError, match="cannot name a store file"):
        store.write(state("c1"), {"../evil": doc("x")}, None)
    assert not (tmp_path / "s").exists()


# --- corruption ------------------------------------------------------------------------------------


def test_hand_edited_document_is_refused_naming_the_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    path = tmp_path / "production.flagd.json"
    path.write_text(path.read_text().replace('"defaultVariant": "on"', '"defaultVariant": "off"'))
    for action in (store.read, lambda: store.write(state("c2"), {}, v1)):
        with pytest.raises(StoreCorrupt, match=r"production\.flagd\.json was modified outside gitops-flags"):
            action()


def test_hand_edited_audit_log_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    v1 = store.write(state("c1"), {}, None, audit=[{"n": 1}])
    (tmp_path / "audit.jsonl").write_text('{"n": 0}\n')
    with pytest.raises(StoreCorrupt, match=r"audit\.jsonl was modified"):
        store.read_audit()
    with pytest.raises(StoreCorrupt, match=r"audit\.jsonl was modified"):
        store.write(state("c2"), {}, v1, audit=[{"n": 2}])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "dev.flagd.json").write_text("{}"), r"dev\.flagd\.json is not in the store's"),
        (lambda d: (d / "staging.flagd.json").unlink(), r"staging\.flagd\.json is missing"),
        (lambda d: (d / "store.sha256").unlink(), r"no store\.sha256"),
        (lambda d: (d / "store.sha256").write_text("junk\n"), r"store\.sha256:1: not a line gitops-flags"),
        (lambda d: (d / "state.json").write_bytes(b"\x00"), r"state\.json was modified"),
    ],
)
def test_damage_is_detected(tmp_path: Path, damage: Any, message: str) -> None:
    store = FileStore(tmp_path)
    first_write(store)
    damage(tmp_path)
    with pytest.raises(StoreCorrupt, match=message):
        store.read()


def test_reseal_accepts_an_intended_edit(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first_write(store)
    path = tmp_path / "production.flagd.json"
    path.write_text(json.dumps(doc("production", False)))
    version = store.reseal()
    snap = store.read()
    assert snap.version == version
    assert snap.documents["production"] == doc("production", False)


def test_reseal_still_refuses_unreadable_state(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first_write(store)
    (tmp_path / "state.json").write_text('{"rollouts": 3}')
    with pytest.raises(StoreCorrupt, match=r"state\.json is not a valid store state"):
        store.reseal()


@pytest.mark.parametrize("text", ["[1, 2]", '{"flags": []}', "not json"])
def test_reseal_refuses_a_document_flagd_cannot_serve(tmp_path: Path, text: str) -> None:
    store = FileStore(tmp_path)
    first_write(store)
    (tmp_path / "production.flagd.json").write_text(text)
    with pytest.raises(StoreCorrupt, match=r"production\.flagd\.json is not (a flagd document|JSON)"):
        store.reseal()


def test_the_cli_refuses_a_hand_edited_store_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    first_write(FileStore(store))
    (store / "production.flagd.json").write_text(json.dumps(doc("production", False)))
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    # A refused store is a finding (1) for every command, `audit` too: its log is not shown as trusted.
    for command in (["status"], ["audit"], ["advance", "--repo", str(repo)]):
        assert main([*command, "--store", f"file:{store}"]) == 1
        err = capsys.readouterr().err
        assert "production.flagd.json was modified outside gitops-flags" in err, command
        assert "Traceback" not in err


def test_state_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first_write(store)
    (tmp_path / "state.json").write_text('{"format_version": 2}')
    raw = (tmp_path / "store.sha256").read_text().splitlines()
    digest = hashlib.sha256((tmp_path / "state.json").read_bytes()).hexdigest()
    fixed = [f"{digest}  state.json" if line.endswith("  state.json") else line for line in raw]
    (tmp_path / "store.sha256").write_text("\n".join(fixed) + "\n")
    with pytest.raises(StoreCorrupt, match="newer gitops-flags"):
        store.read()


# --- crashes ----------------------------------------------------------------------------------------


def test_crash_before_the_commit_point_leaves_the_old_version(tmp_path: Path, monkeypatch: Any) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.startswith(".")}

    def crash(src: Any, dst: Any) -> None:
        raise OSError("simulated crash: power lost before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.write(state("c2"), {"production": doc("production", False)}, v1, audit=[{"n": 1}])
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # the temporaries were written
    monkeypatch.undo()

    snap = store.read()
    assert snap.version == v1 and snap.state.applied_commit == "c1"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.startswith(".")} == before
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # cleaned up under the lock
    assert store.read_audit() == []
    store.write(state("c2"), {}, v1)  # and the store works on


def test_crash_after_the_commit_point_is_finished_by_the_next_reader(
    tmp_path: Path, monkeypatch: Any
) -> None:
    store = FileStore(tmp_path)
    v1 = first_write(store)
    real_replace = os.replace
    calls = []

    def crash_on_second(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("simulated crash after the journal")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    new_docs = {"production": doc("production", False), "staging": doc("staging", False)}
    with pytest.raises(OSError, match="simulated crash"):
        store.write(state("c2"), new_docs, v1, audit=[{"n": 1}])
    monkeypatch.undo()
    assert (tmp_path / ".journal.json").exists()

    snap = FileStore(tmp_path).read()  # a fresh process would do the same
    assert snap.version not in (None, v1)
    assert snap.state.applied_commit == "c2" and snap.documents == new_docs
    assert store.read_audit() == [{"n": 1}]
    assert not (tmp_path / ".journal.json").exists()


# --- two writers -------------------------------------------------------------------------------------

ROUNDS = 8


def _cas_worker(path: str, barrier: Any, results: Any, name: str) -> None:
    store = FileStore(path)
    for round_no in range(ROUNDS):
        barrier.wait()
        snap = store.read()
        barrier.wait()  # both have read the same version before either writes
        new = snap.state.with_unit(UnitOfWork(id=f"{name}-{round_no}", succeeded_at=T0))
        try:
            store.write(new, snap.documents, snap.version, audit=[{"by": name, "round": round_no}])
            results.put((round_no, name, "won"))
        except ConflictError:
            results.put((round_no, name, "conflict"))


def test_two_concurrent_writers_exactly_one_wins_each_round(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    first_write(FileStore(tmp_path))
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_cas_worker, args=(str(tmp_path), barrier, results, n)) for n in ("a", "b")]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in range(2 * ROUNDS)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for round_no in range(ROUNDS):
        kinds = sorted(o[2] for o in outcomes if o[0] == round_no)
        assert kinds == ["conflict", "won"], (round_no, outcomes)
    snap = FileStore(tmp_path).read()
    assert len(snap.state.units) == ROUNDS
    assert len(FileStore(tmp_path).read_audit()) == ROUNDS


def _update_worker(path: str, name: str, count: int) -> None:
    store = FileStore(path)
    for i in range(count):

        def decide(snap: StoreSnapshot, i: int = i) -> Update:
            unit = UnitOfWork(id=f"{name}-{i}", succeeded_at=T0)
            return Update(snap.state.with_unit(unit), snap.documents, audit=[{"unit": unit.id}])

        update(store, decide, attempts=100)


def test_update_retries_so_no_write_is_lost(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_update_worker, args=(str(tmp_path), n, 15)) for n in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = FileStore(tmp_path)
    assert len(store.read().state.units) == 30
    assert sorted(r["unit"] for r in store.read_audit()) == sorted(u.id for u in store.read().state.units)


def test_update_returns_none_when_nothing_to_do(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert update(store, lambda snap: None) is None
    assert store.read().version is None


# --- open_store ----------------------------------------------------------------------------------------


def test_open_store_urls(tmp_path: Path) -> None:
    store = open_store(f"file:{tmp_path}")
    assert isinstance(store, FileStore) and store.root == tmp_path
    with pytest.raises(StoreError, match="allowed schemes: file, github-branch"):
        open_store(str(tmp_path))
    with pytest.raises(StoreError, match="unknown scheme 's3'"):
        open_store("s3:bucket")
    with pytest.raises(StoreError, match="needs a GitHub repository"):
        open_store("github-branch:flag-store")


def test_store_url_from_the_policy() -> None:
    assert store_url(StoreConfig()) == "file:.flag-store"
    assert store_url(StoreConfig(type="github-branch", branch="flags-live")) == "github-branch:flags-live"
    assert store_url(StoreConfig(type="litestar-flags", url="redis://127.0.0.1:6379/0")) == (
        "litestar-flags:redis://127.0.0.1:6379/0"
    )
    with pytest.raises(StoreError, match="needs `url`"):
        store_url(StoreConfig(type="litestar-flags"))


# --- the state model (state.json) ---------------------------------------------------------------------


def test_rollout_state_invariants() -> None:
    base: dict[str, Any] = {"variant": "on", "stages": [5, 25], "stage_delay_seconds": 60, "plan_hash": "h"}
    RolloutState(**base)  # scheduled, not started, 0%
    bad: list[dict[str, Any]] = [
        {"status": "rolled_back", "percentage": 25, "stage_index": 1},
        {"status": "completed", "percentage": 25, "stage_index": 1},
        {"status": "scheduled", "percentage": 5},
        {"status": "running", "percentage": 5, "stage_index": 2},
        {"stages": [0, 50]},
        {"extra": 1},
    ]
    for changes in bad:
        with pytest.raises(ValueError):
            RolloutState(**{**base, **changes})
    with pytest.raises(ValueError, match="timezone"):
        RolloutState(**base, entered_at=datetime(2026, 1, 1))  # naive on purpose


def test_next_stage_due() -> None:
    r = RolloutState(variant="on", stages=[5, 25, 100], stage_index=0, percentage=5, status="running",
                     entered_at=T0, stage_delay_seconds=7200, plan_hash="h")
    assert r.next_stage_due() == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    later_start = datetime(2026, 12, 2, tzinfo=UTC)
    assert r.model_copy(update={"start_at": later_start}).next_stage_due() == later_start
    assert r.model_copy(update={"status": "paused"}).next_stage_due() is None
    last = r.model_copy(update={"stage_index": 2, "percentage": 100, "status": "completed"})
    assert last.next_stage_due() is None
    scheduled = RolloutState(variant="on", stages=[5], start_at=later_start, stage_delay_seconds=0,
                             plan_hash="h")
    assert scheduled.next_stage_due() == later_start


def test_units_are_replaced_by_id_and_bounded() -> None:
    from gitops_flags.store.state import MAX_SUCCEEDED_UNITS, unit_id

    s = StoreState()
    failed = UnitOfWork(id=unit_id("c0", "flag:f@production"), failed_at=T0, error="boom")
    s = s.with_unit(failed)
    for i in range(MAX_SUCCEEDED_UNITS + 20):
        s = s.with_unit(UnitOfWork(id=f"c{i}/flag:g@production", succeeded_at=T0))
    assert len(s.units) == MAX_SUCCEEDED_UNITS + 1
    assert s.units[0] == failed  # never dropped: it must be resumed
    assert s.units[1].id == "c20/flag:g@production"  # the oldest succeeded went first
    retried = failed.model_copy(update={"succeeded_at": T0, "error": None, "output": {"ok": True}})
    s = s.with_unit(retried)
    assert s.unit(failed.id) == retried and sum(u.id == failed.id for u in s.units) == 1
    assert failed.id == "c0/flag:f@production"


def test_rollouts_by_environment() -> None:
    s = state("c1")
    assert s.rollout("f", "production") is not None and s.rollout("f", "staging") is None
    assert list(s.rollouts_for("production")) == ["f"] and s.rollouts_for("staging") == {}
    assert s.with_rollout("f", "production", None).rollouts == {}
    assert StoreState.model_validate_json(s.model_dump_json()) == s


def test_plan_hash_notices_plan_edits() -> None:
    from gitops_flags.model import RolloutPlan
    from gitops_flags.store.state import plan_hash

    plan = RolloutPlan(variant="on", stages=[5, 25, "full"], stage_delay="1d")
    assert plan_hash(plan) == plan_hash(RolloutPlan(variant="on", stages=[5, 25, "full"], stage_delay="1d"))
    for edit in ({"stages": [5, 50, 100]}, {"paused": True}, {"stage_delay": "2h"}):
        assert plan_hash(plan.model_copy(update=edit)) != plan_hash(plan)


# --- the outbox ----------------------------------------------------------------------------------------


def comment_entry(entry_id: str = "apply:c1:pr-1", **extra: Any) -> OutboxEntry:
    data: dict[str, Any] = {"kind": "pr_comment", "pr": 1, "body": "applied", "created_at": T0, **extra}
    return OutboxEntry(id=entry_id, **data)


def test_a_state_written_before_the_outbox_existed_still_reads(tmp_path: Path) -> None:
    old = {"format_version": 1, "applied_commit": "c1", "rollouts": {}, "units": []}
    assert StoreState.model_validate_json(json.dumps(old)).outbox == []
    # ... and an empty outbox is not written, so such a store keeps its bytes and its older readers
    assert StoreState(applied_commit="c1").model_dump(mode="json") == old


def test_the_outbox_round_trips_through_the_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    webhook = OutboxEntry(id="apply:run-7.1:webhook", kind="webhook", payload={"text": "hi"}, attempts=2,
                          last_error="the webhook answered 500", created_at=T0)
    pending = state("c1").with_outbox([comment_entry(), webhook])
    store.write(pending, {}, None)
    assert store.read().state == pending
    assert [e["id"] for e in json.loads((tmp_path / "state.json").read_text())["outbox"]] == [
        "apply:c1:pr-1", "apply:run-7.1:webhook"]


def test_outbox_entries_are_replaced_by_id() -> None:
    first = StoreState().with_outbox([comment_entry(), comment_entry("apply:c2:pr-2")])
    again = first.with_outbox([comment_entry(body="applied, and more")])
    assert [(e.id, e.body) for e in again.outbox] == [("apply:c2:pr-2", "applied"),
                                                      ("apply:c1:pr-1", "applied, and more")]
    assert first.with_outbox([]) is first


def test_an_outbox_entry_says_what_it_needs() -> None:
    with pytest.raises(ValidationError, match="needs `pr` and `body`"):
        OutboxEntry(id="x", kind="pr_comment", body="no PR", created_at=T0)
    with pytest.raises(ValidationError, match="needs `payload`"):
        OutboxEntry(id="x", kind="webhook", created_at=T0)


def test_an_outbox_entry_expires_after_seven_days_or_twenty_failures() -> None:
    entry = comment_entry()
    assert not entry.expired(T0 + timedelta(days=7) - timedelta(seconds=1))
    assert entry.expired(T0 + timedelta(days=7))
    assert comment_entry(attempts=OUTBOX_MAX_ATTEMPTS).expired(T0)
    assert not comment_entry(attempts=OUTBOX_MAX_ATTEMPTS - 1).expired(T0)
