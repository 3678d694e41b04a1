"""The keyed seal, per backend: the attacks the issue names (edit a file and regenerate the unkeyed
manifest; strip the seal; replay an older sealed version; write without the key), each refused, and the
repair and re-seal paths that follow."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_store_github_branch import FakeGitHub, make_store
from test_store_github_branch import fake as fake

from gitops_flags.store import StoreCorrupt, StoreError, StoreTampered
from gitops_flags.store.base import MANIFEST_FILE, manifest
from gitops_flags.store.file import GENERATIONS, GENERATIONS_DIR, FileStore
from gitops_flags.store.github_branch import GitHubBranchStore
from gitops_flags.store.litestar import LitestarFlagsStore, MemoryBackend, open_litestar_store
from gitops_flags.store.seal import KEY_ENV, SEAL_FILE, SealKey, key_from_env
from gitops_flags.store.state import StoreState

KEY = SealKey(b"k" * 40)
OTHER = SealKey(b"o" * 40)
_names = itertools.count()


def doc(variant: str = "on") -> dict[str, Any]:
    flag = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": variant}
    return {"flags": {"f": flag}}


def regenerate_manifest(root: Path) -> None:
    """What an attacker with write access does after editing a file: `sha256sum` again."""
    names = sorted(p.name for p in root.iterdir() if p.name.endswith((".json", ".jsonl")))
    (root / MANIFEST_FILE).write_bytes(manifest({n: (root / n).read_bytes() for n in names}))


def flip(path: Path) -> None:
    path.write_text(path.read_text().replace('"defaultVariant": "on"', '"defaultVariant": "off"'))


# --- the key ------------------------------------------------------------------------------------------


def test_the_key_comes_from_the_environment_and_must_be_long() -> None:
    assert key_from_env({}) is None
    assert key_from_env({KEY_ENV: "  "}) is None
    assert key_from_env({KEY_ENV: "x" * 32}) == SealKey(b"x" * 32)
    with pytest.raises(StoreError, match=r"holds 8 characters; a seal key needs at least 32.*openssl rand"):
        key_from_env({KEY_ENV: "password"})
    assert "k" * 40 not in repr(KEY)  # never printed by accident
    assert KEY.key_id != OTHER.key_id and len(KEY.key_id) == 16


# --- file store ---------------------------------------------------------------------------------------


def test_file_a_keyed_write_is_sealed_and_verifies(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    store.write(StoreState(applied_commit="c1"), {"production": doc()}, None, audit=[{"n": 1}])
    assert json.loads((tmp_path / SEAL_FILE).read_text())["key_id"] == KEY.key_id
    assert store.read().seal == "verified"
    assert FileStore(tmp_path).read().seal == "unverified"  # readable without the key, but not checked
    assert FileStore(tmp_path / "other").read().seal == "unsealed"


def test_file_edit_plus_regenerated_manifest_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc()}, None)
    flip(tmp_path / "production.flagd.json")
    regenerate_manifest(tmp_path)
    FileStore(tmp_path).read()  # the unkeyed checksum is satisfied: that was the hole
    for action in (store.read, lambda: store.write(StoreState(), {}, v1)):
        with pytest.raises(StoreTampered, match=r"does not match its seal: it was changed outside"):
            action()


def test_file_a_stripped_seal_is_refused_with_a_key(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    store.write(StoreState(applied_commit="c1"), {"production": doc()}, None)
    (tmp_path / SEAL_FILE).unlink()
    with pytest.raises(StoreTampered, match=r"has no seal \(store\.seal\), but GITOPS_FLAGS_STORE_KEY is"):
        store.read()


def test_file_another_key_is_named_as_such(tmp_path: Path) -> None:
    FileStore(tmp_path, KEY).write(StoreState(), {"production": doc()}, None)
    with pytest.raises(StoreTampered, match=rf"sealed with another key \(key id {KEY.key_id}.*{OTHER.key_id}"
                       ):
        FileStore(tmp_path, OTHER).read()


def test_file_a_sealed_store_is_never_written_without_the_key(tmp_path: Path) -> None:
    v1 = FileStore(tmp_path, KEY).write(StoreState(), {"production": doc()}, None)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(StoreError, match=r"is sealed; writing it needs the seal key in GITOPS_FLAGS_STORE"):
        FileStore(tmp_path).write(StoreState(applied_commit="x"), {"production": doc("off")}, v1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_file_repair_restores_the_last_sealed_generation(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    v = None
    for n in range(GENERATIONS + 2):
        v = store.write(StoreState(applied_commit=f"c{n}"), {"production": doc()}, v, audit=[{"n": n}])
    assert len(list((tmp_path / GENERATIONS_DIR).iterdir())) == GENERATIONS  # bounded
    good = store.read()
    flip(tmp_path / "production.flagd.json")
    regenerate_manifest(tmp_path)
    (tmp_path / "evil.flagd.json").write_text(json.dumps(doc("off")))  # an added environment goes too
    regenerate_manifest(tmp_path)
    repaired = store.repair([{"event": "store_repaired"}])
    assert repaired.restored_from.startswith("generation 0000000")
    assert "does not match its seal" in repaired.problem
    after = store.read()
    assert after.seal == "verified" and after.documents == good.documents and after.state == good.state
    assert not (tmp_path / "evil.flagd.json").exists()
    assert store.read_audit()[-2:] == [{"n": GENERATIONS + 1}, {"event": "store_repaired"}]
    assert store.repair([{"event": "store_repaired"}]).version is None  # verified now: nothing to do


def test_file_repair_skips_tampered_generations_and_says_when_none_is_left(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc()}, None)
    store.write(StoreState(applied_commit="c2"), {"production": doc()}, v1)
    generations = sorted((tmp_path / GENERATIONS_DIR).iterdir())
    flip(generations[-1] / "production.flagd.json")  # the newest copy is tampered too...
    (tmp_path / "state.json").write_text("{}")
    regenerate_manifest(tmp_path)
    assert store.repair().restored_from == f"generation {generations[0].name} ({tmp_path}/{GENERATIONS_DIR})"
    assert store.read().state.applied_commit == "c1"  # ...so the one before it is restored
    for g in (tmp_path / GENERATIONS_DIR).iterdir():
        (g / SEAL_FILE).write_text("{}")
    (tmp_path / "state.json").write_text("{}")
    regenerate_manifest(tmp_path)
    with pytest.raises(StoreError, match=r"no kept copy under \.generations/ verifies either; restore"):
        store.repair()
    with pytest.raises(StoreError, match=r"needs the seal key"):
        FileStore(tmp_path).repair()


def test_file_reseal_accepts_an_intended_edit_and_audits_it(tmp_path: Path) -> None:
    store = FileStore(tmp_path, KEY)
    store.write(StoreState(), {"production": doc()}, None, audit=[{"n": 1}])
    flip(tmp_path / "production.flagd.json")
    with pytest.raises(StoreCorrupt, match=r"was modified outside gitops-flags"):
        store.read()
    store.reseal([{"event": "store_resealed", "reason": "incident 42"}])
    snap = store.read()
    assert snap.seal == "verified" and snap.documents["production"]["flags"]["f"]["defaultVariant"] == "off"
    assert store.read_audit() == [{"n": 1}, {"event": "store_resealed", "reason": "incident 42"}]


# --- github-branch store --------------------------------------------------------------------------------


def keyed(key: SealKey | None = KEY) -> GitHubBranchStore:
    store = make_store()
    store.key = key
    return store


def test_branch_edit_plus_regenerated_manifest_is_refused(fake: FakeGitHub) -> None:
    store = keyed()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc()}, None, audit=[{"n": 1}])
    assert SEAL_FILE in fake.files("flag-store") and store.read().seal == "verified"
    files = fake.files("flag-store")
    files["production.flagd.json"] = files["production.flagd.json"].replace(b'"on"\n', b'"off"\n')
    files[MANIFEST_FILE] = manifest({n: b for n, b in files.items() if n not in (MANIFEST_FILE, SEAL_FILE)})
    fake.push("flag-store", files, "a writer edits the store by hand")
    for action in (keyed().read, lambda: keyed().write(StoreState(), {}, fake.refs["flag-store"])):
        with pytest.raises(StoreTampered, match=r"github-branch:flag-store does not match its seal"):
            action()
    assert v1 != fake.refs["flag-store"]


def test_branch_replaying_an_older_sealed_tree_is_refused(fake: FakeGitHub) -> None:
    store = keyed()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc()}, None)
    old = fake.files("flag-store")
    store.write(StoreState(applied_commit="c2"), {"production": doc("off")}, v1)
    fake.push("flag-store", old, "put back the older sealed files")  # a fast-forward, seal copied as is
    with pytest.raises(StoreTampered, match=r"does not match its seal"):
        keyed().read()


def test_branch_unchanged_keyed_write_makes_no_commit(fake: FakeGitHub) -> None:
    store = keyed()
    v1 = store.write(StoreState(), {"production": doc()}, None)
    assert store.write(StoreState(), {"production": doc()}, v1) == v1


def test_branch_without_the_key_reads_unverified_and_never_writes(fake: FakeGitHub) -> None:
    v1 = keyed().write(StoreState(), {"production": doc()}, None)
    assert keyed(None).read().seal == "unverified"
    with pytest.raises(StoreError, match=r"is sealed; writing it needs the seal key"):
        keyed(None).write(StoreState(applied_commit="x"), {}, v1)
    assert fake.refs["flag-store"] == v1


def test_branch_repair_commits_the_last_sealed_version_again(fake: FakeGitHub) -> None:
    store = keyed()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc()}, None, audit=[{"n": 1}])
    v2 = store.write(StoreState(applied_commit="c2"), {"production": doc()}, v1, audit=[{"n": 2}])
    good = fake.files("flag-store")
    for n in range(2):  # two tampering commits on top
        files = fake.files("flag-store")
        files["state.json"] = json.dumps({"applied_commit": f"evil{n}"}).encode()
        files[MANIFEST_FILE] = manifest({k: b for k, b in files.items() if k.endswith((".json", ".jsonl"))})
        fake.push("flag-store", files)
    repaired = keyed().repair([{"event": "store_repaired"}])
    assert repaired.restored_from == f"commit {v2[:12]} of github-branch:flag-store"
    message = fake.commits[fake.refs["flag-store"]]["message"]
    assert message == f"gitops-flags: repair the store (restore {v2[:12]})"
    after = keyed()
    assert after.read().state.applied_commit == "c2" and after.read().seal == "verified"
    assert after.read_audit() == [{"n": 1}, {"n": 2}, {"event": "store_repaired"}]
    restored = fake.files("flag-store")
    assert {k: v for k, v in restored.items() if k not in ("audit.jsonl", MANIFEST_FILE, SEAL_FILE)} == {
        k: v for k, v in good.items() if k not in ("audit.jsonl", MANIFEST_FILE, SEAL_FILE)}


def test_branch_reseal_accepts_a_pushed_hand_edit(fake: FakeGitHub) -> None:
    keyed().write(StoreState(), {"production": doc()}, None)
    files = fake.files("flag-store")
    files["production.flagd.json"] = json.dumps(doc("off")).encode()
    fake.push("flag-store", files)
    keyed().reseal([{"event": "store_resealed"}])
    snap = keyed().read()
    assert snap.seal == "verified" and snap.documents["production"] == doc("off")
    assert keyed().read_audit() == [{"event": "store_resealed"}]


# --- litestar-flags store -------------------------------------------------------------------------------


def memory(key: SealKey | None = KEY, name: str = "") -> tuple[LitestarFlagsStore, MemoryBackend]:
    store = open_litestar_store(f"memory:seal-{name or next(_names)}", key)
    assert isinstance(store.backend, MemoryBackend)
    return store, store.backend


def test_litestar_edited_state_is_refused_with_or_without_a_recomputed_version() -> None:
    store, backend = memory()
    store.write(StoreState(applied_commit="c1"), {"production": doc()}, None, audit=[{"n": 1}])
    assert store.read().seal == "verified"
    meta = backend.data.meta
    assert meta is not None and meta.seal
    evil_state = meta.state.replace('"c1"', '"evil"')
    backend.data.meta = type(meta)(**{**meta.__dict__, "state": evil_state})
    with pytest.raises(StoreTampered, match=r"do not match the stored version"):
        store.read()
    from gitops_flags.store.litestar import version_of

    forged = version_of(evil_state, meta.documents, meta.audit_head)  # the attacker recomputes it
    backend.data.meta = type(meta)(**{**meta.__dict__, "state": evil_state, "version": forged,
                                      "applied": forged})
    with pytest.raises(StoreTampered, match=r"does not match its seal"):
        store.read()
    with pytest.raises(StoreError, match=r"keeps no earlier versions.*restore the Redis or database from"):
        store.repair()


def test_litestar_audit_lines_are_checked_against_the_sealed_head() -> None:
    store, backend = memory()
    v1 = store.write(StoreState(), {"production": doc()}, None, audit=[{"n": 1}, {"n": 2}])
    store.write(StoreState(), {"production": doc()}, v1, audit=[{"n": 3}])
    assert [r["n"] for r in store.read_audit()] == [1, 2, 3]
    backend.data.audit.pop(1)  # a line quietly removed
    with pytest.raises(StoreTampered, match=r"audit log does not match its sealed head"):
        store.read_audit()


def test_litestar_without_the_key_never_writes_a_sealed_store() -> None:
    store, backend = memory()
    v1 = store.write(StoreState(), {"production": doc()}, None)
    unkeyed = LitestarFlagsStore(backend, None)
    assert unkeyed.read().seal == "unverified"
    with pytest.raises(StoreError, match=r"is sealed; writing it needs the seal key"):
        unkeyed.write(StoreState(applied_commit="x"), {"production": doc()}, v1)


def test_litestar_repair_puts_back_flags_edited_in_storage() -> None:
    import asyncio

    store, backend = memory()
    store.write(StoreState(), {"production": doc()}, None)
    flag = asyncio.run(backend.storage("production").get_flag("f"))
    flag.default_enabled = False  # someone toggled it in an admin UI
    asyncio.run(backend.storage("production").update_flag(flag))
    repaired = store.repair([{"event": "store_repaired"}])
    assert "flags changed in storage outside gitops-flags: production: f" in repaired.problem
    assert store.drift() == {}
    assert store.read_audit() == [{"event": "store_repaired"}]
    assert store.repair().version is None


def test_litestar_sqlite_keeps_the_seal_and_refuses_an_sql_edit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/{{environment}}.db"
    store = open_litestar_store(url, KEY)
    store.write(StoreState(applied_commit="c1"), {"production": doc()}, None, audit=[{"n": 1}])
    assert open_litestar_store(url, KEY).read().seal == "verified"
    with sqlite3.connect(tmp_path / "_gitops.db") as db:
        state = db.execute("select value from gitops_flags_meta where name = 'state'").fetchone()[0]
        evil = state.replace('"c1"', '"evil"')
        docs, head = (db.execute("select value from gitops_flags_meta where name = ?", (n,)).fetchone()[0]
                      for n in ("documents", "audit_head"))
        version = hashlib.sha256("\n".join((evil, docs, head)).encode()).hexdigest()
        db.execute("update gitops_flags_meta set value = ? where name = 'state'", (evil,))
        db.execute("update gitops_flags_meta set value = ? where name in ('version', 'applied')", (version,))
    with pytest.raises(StoreTampered, match=r"does not match its seal"):
        open_litestar_store(url, KEY).read()
    open_litestar_store(url, KEY).reseal([{"event": "store_resealed"}])  # an intended edit, then
    assert open_litestar_store(url, KEY).read().state.applied_commit == "evil"


# --- a store in a separate repository --------------------------------------------------------------------


def test_branch_location_and_the_policys_repository() -> None:
    from gitops_flags.model import StoreConfig
    from gitops_flags.store import branch_location, store_url

    assert branch_location("flag-store") == (None, "flag-store")
    assert branch_location("acme/flag-store:stores/prod") == ("acme/flag-store", "stores/prod")
    for bad in ("acme:main", "a/b/c:main", "acme/flag-store:", "/x:main"):
        with pytest.raises(StoreError, match=r"is neither BRANCH nor OWNER/NAME:BRANCH"):
            branch_location(bad)
    config = StoreConfig(type="github-branch", repository="acme/flag-store", branch="main")
    assert store_url(config) == "github-branch:acme/flag-store:main"
    with pytest.raises(ValueError, match=r"repository"):
        StoreConfig(type="github-branch", repository="not a repo")


def test_a_store_in_another_repository_is_written_with_the_store_token(
    fake: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from gitops_flags.actions_env import ActionsEnv
    from gitops_flags.commands.apply import default_store_opener

    # The workflow runs in acme/flags; the store lives in octocat/Hello-World (the fake's repository).
    env = ActionsEnv(in_actions=True, repository="acme/flags", token="workflow-token")
    monkeypatch.setenv("GITOPS_FLAGS_STORE_TOKEN", "store-app-token")
    monkeypatch.setenv(KEY_ENV, "s" * 40)
    monkeypatch.setenv("GITOPS_FLAGS_WRITE_PAUSE", "0")
    store = default_store_opener("github-branch:octocat/Hello-World:flag-store", env)
    assert store.where == "github-branch:octocat/Hello-World:flag-store"
    store.write(StoreState(applied_commit="c1"), {"production": doc()}, None)
    assert store.read().seal == "verified" and SEAL_FILE in fake.files("flag-store")
    sent = {c.request.headers.get("Authorization") for c in fake.rsps.calls}
    assert sent == {"token store-app-token"}  # never the workflow's own token
    assert all("/repos/octocat/Hello-World/" in str(c.request.url) for c in fake.rsps.calls)

    monkeypatch.delenv("GITOPS_FLAGS_STORE_TOKEN")  # without it: GITHUB_TOKEN, and a note saying why not
    default_store_opener("github-branch:octocat/Hello-World:flag-store", env)
    assert "in another repository and GITOPS_FLAGS_STORE_TOKEN is not set" in capsys.readouterr().err
