"""One rollout's bad state (or flag file) never stops `advance` or `status` for the others."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_cli_advance import HOUR, T0, FlagRepo, flag_data

from gitops_flags import advance, git
from gitops_flags.cli import main
from gitops_flags.store import StoreSnapshot


@pytest.fixture
def repo(tmp_path: Any) -> FlagRepo:
    return FlagRepo(tmp_path / "flags-repo")


def _with_extra_rollout(repo: FlagRepo, key: str, **changes: Any) -> None:
    """Add a rollout for `key` (no flag file, as if a later PR deleted it) copied from the applied one."""
    snapshot = repo.snapshot()
    current = repo.rollout()
    bad = current.model_copy(update=changes)
    state = snapshot.state.with_rollout(key, "production", bad)
    repo.store().write(state, snapshot.documents, snapshot.version)


def test_a_rollout_that_raises_is_reported_and_the_others_advance(repo: FlagRepo) -> None:
    repo.applied(flag_data())
    _with_extra_rollout(repo, "broken")
    snapshot: StoreSnapshot = repo.snapshot()
    with git.GitTree(repo.root, "HEAD") as tree:
        files = advance.FlagFiles(tree, advance.read_policy(tree))

        def heads(key: str) -> advance.Head:
            if key == "broken":
                raise RuntimeError("the store holds something nobody expected")
            return files.get(key)

        decision = advance.decide(snapshot, heads, {}, T0 + 2 * HOUR)
    by_key = {o.key: o for o in decision.outcomes}
    assert by_key["broken"].problem and "RuntimeError" in by_key["broken"].note
    assert by_key["new_checkout"].event is not None and by_key["new_checkout"].after.percentage == 25
    assert decision.update is not None and "new_checkout@production" in decision.update.message


def test_an_overflowing_delay_in_the_store_crashes_neither_status_nor_advance(
    repo: FlagRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.applied(flag_data())
    # written by a version that did not cap stage_delay (99999999999999999999d)
    _with_extra_rollout(repo, "ancient", stage_delay_seconds=99999999999999999999 * 86400)
    now = (T0 + 2 * HOUR).isoformat()
    assert main(["status", "--repo", str(repo.root), "--now", now]) == 0
    out = capsys.readouterr().out
    assert "ancient" in out and "new_checkout" in out
    assert main(["status", "--repo", str(repo.root), "--now", now, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["flags"]
    assert {r["flag"] for r in rows} == {"ancient", "new_checkout"}
    repo.advance(T0 + 2 * HOUR)
    assert repo.rollout().percentage == 25  # the healthy rollout moved on
