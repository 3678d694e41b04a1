"""The seal through the commands: a tampered store stops apply, advance and status with exit 1 and tells
the webhook and the job summary; `apply --repair` restores and reconciles; `store reseal` accepts an
intended hand edit (key required, audited); without a key, the warning says what the seal would add."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import responses
from test_cli_apply import NOW2, FakeSource, Repo, adopt, apply, flag
from test_cli_apply import repo as repo
from test_cli_apply import source as source
from test_store_seal import regenerate_manifest

from gitops_flags import cli
from gitops_flags.flagd import served_state
from gitops_flags.store.file import FileStore
from gitops_flags.store.seal import KEY_ENV, SealKey

KEY_TEXT = "0123456789abcdef" * 4
KEY = SealKey(KEY_TEXT.encode())
HOOK = "https://hooks.example.com/services/T0/B0/secret"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)


def tamper(store: Path) -> None:
    """Switch production's flags off behind the tool's back, and `sha256sum` the files again."""
    path = store / "production.flagd.json"
    text = path.read_text()
    assert '"state": "ENABLED"' in text
    path.write_text(text.replace('"state": "ENABLED"', '"state": "DISABLED"'))
    regenerate_manifest(store)


@responses.activate
def test_a_tampered_store_stops_apply_advance_and_status_and_is_reported(
    repo: Repo, tmp_path: Path, source: FakeSource, keyed: None, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    assert FileStore(store, KEY).read().seal == "verified"
    tamper(store)
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    responses.post(HOOK, json={"ok": True})
    monkeypatch.setenv("FLAGS_WEBHOOK", HOOK)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    capsys.readouterr()

    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    assert apply(repo, store, now=NOW2) == 1
    out, err = capsys.readouterr()
    assert "does not match its seal" in err and "Traceback" not in err
    assert "::error title=gitops-flags apply::gitops-flags apply: the flag store was NOT used" in out
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == before  # never built on
    payload = json.loads(responses.calls[-1].request.body or b"{}")
    facts = payload["gitops_flags"]
    assert (facts["event"], facts["command"]) == ("store_refused", "apply")
    assert HOOK not in json.dumps(payload)
    assert "flag store refused" in summary.read_text() and "[!CAUTION]" in summary.read_text()

    for command in (["status"], ["advance", "--repo", str(repo.path)]):
        assert cli.main([*command, "--store", f"file:{store}"]) == 1, command
        assert "does not match its seal" in capsys.readouterr().err
    # apply and advance told the webhook; status with --store reads no policy, so knows no webhook
    assert [json.loads(c.request.body or b"{}")["gitops_flags"]["command"] for c in responses.calls] == [
        "apply", "advance"]


def test_apply_repair_restores_the_last_sealed_version_then_reconciles(
    repo: Repo, tmp_path: Path, source: FakeSource, keyed: None, capsys: pytest.CaptureFixture[str],
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    tamper(store)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    capsys.readouterr()
    assert apply(repo, store, "--repair", now=NOW2) == 0
    out = capsys.readouterr().out
    assert re.search(r"repaired .*does not match its seal", out)
    assert re.search(r"restored generation \d{8} \(", out)
    snap = FileStore(store, KEY).read()
    assert snap.seal == "verified" and snap.state.applied_commit == c1
    assert served_state(snap.documents["production"]["flags"]["dark_mode"]) == "ENABLED"
    assert "search" in snap.documents["production"]["flags"]  # reconciled after the repair
    events = [r.get("event") for r in FileStore(store, KEY).read_audit()]
    assert "store_repaired" in events
    assert apply(repo, store, "--repair", now=NOW2) == 0
    assert "verifies: nothing to repair" in capsys.readouterr().out


def test_store_reseal_needs_the_key_and_is_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "store"
    FileStore(store, KEY).write(FileStore(store).read().state, {"production": {"flags": {}}}, None)
    (store / "production.flagd.json").write_text('{"flags": {}, "metadata": {"note": "hand edit"}}\n')
    args = ["store", "reseal", "--store", f"file:{store}", "--reason", "incident 42", "--now", NOW2]
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert cli.main(args) == 2
    assert "re-sealing needs the seal key: set GITOPS_FLAGS_STORE_KEY" in capsys.readouterr().err
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    monkeypatch.setenv("GITHUB_ACTOR", "oncall")
    assert cli.main(["store", "verify", "--store", f"file:{store}"]) == 1
    assert "was modified outside gitops-flags" in capsys.readouterr().err
    assert cli.main(args) == 0
    assert f"re-sealed {store} with key {KEY.key_id}" in capsys.readouterr().out
    record = FileStore(store, KEY).read_audit()[-1]
    assert (record["event"], record["reason"], record["actor"], record["time"]) == (
        "store_resealed", "incident 42", "oncall", NOW2)
    assert cli.main(["store", "verify", "--store", f"file:{store}"]) == 0
    assert "verifies: version" in capsys.readouterr().out


def test_a_broken_store_is_resealed_without_a_traceback(
    tmp_path: Path, keyed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    FileStore(store, KEY).write(FileStore(store).read().state, {"production": {"flags": {}}}, None)
    (store / "state.json").write_text('{"rollouts": 3}')
    assert cli.main(["store", "reseal", "--store", f"file:{store}", "--reason", "x"]) == 2
    err = capsys.readouterr().err
    assert "state.json is not a valid store state" in err and "Traceback" not in err


def test_without_a_key_the_warning_says_what_the_seal_adds(
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    err = capsys.readouterr().err
    assert "is not sealed (GITOPS_FLAGS_STORE_KEY is not set)" in err
    assert "a store changed outside gitops-flags is refused" in err
    assert not (store / "store.seal").exists()


def test_a_sealed_store_stops_a_run_without_the_key_before_it_decides(  # a workflow pushed elsewhere
    repo: Repo, tmp_path: Path, source: FakeSource, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    monkeypatch.setenv(KEY_ENV, KEY_TEXT)
    assert apply(repo, store) == 0
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()}
    monkeypatch.delenv(KEY_ENV)
    c1 = repo.commit({"flags/search.yaml": flag("search")}, "PR 1")
    source.merged(c1, 1)
    capsys.readouterr()
    assert apply(repo, store, now=NOW2) == 2
    assert "is sealed; writing it needs the seal key in GITOPS_FLAGS_STORE_KEY" in capsys.readouterr().err
    assert cli.main(["advance", "--repo", str(repo.path), "--store", f"file:{store}"]) == 2
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.is_file()} == before
    assert apply(repo, store, "--dry-run", now=NOW2) == 0  # reading is allowed, with a warning
    assert "is sealed, but GITOPS_FLAGS_STORE_KEY is not set" in capsys.readouterr().err
    assert cli.main(["status", "--store", f"file:{store}"]) == 0


def test_a_full_disk_is_a_message_not_a_traceback(
    tmp_path: Path, keyed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    store = tmp_path / "store"
    FileStore(store, KEY).write(FileStore(store).read().state, {"production": {"flags": {}}}, None)

    def full(*args: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileStore, "_write_temp", full)
    assert cli.main(["store", "reseal", "--store", f"file:{store}", "--reason", "x"]) == 2
    err = capsys.readouterr().err
    assert f"cannot re-seal {store}: No space left on device" in err and "Traceback" not in err


def test_status_json_and_audit_on_a_tampered_store(
    repo: Repo, tmp_path: Path, source: FakeSource, keyed: None, capsys: pytest.CaptureFixture[str],
) -> None:
    adopt(repo)
    store = tmp_path / "store"
    assert apply(repo, store) == 0
    capsys.readouterr()
    assert cli.main(["status", "--store", f"file:{store}", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["seal"] == "verified"

    tamper(store)
    assert cli.main(["status", "--store", f"file:{store}", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert (shown["store"], shown["seal"], shown["version"]) == (f"file:{store}", "tampered", None)
    assert "does not match its seal" in shown["refused"] and "does not match its seal" in err

    # The audit log of a store that fails its seal is not shown as if it could be trusted: exit 1, as
    # status, apply and advance do.
    assert cli.main(["audit", "--store", f"file:{store}"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "does not match its seal" in err and "Traceback" not in err
