"""Property (issue 11): for random PR histories — pushes, approvals or not, merges by merge/squash/rebase, and
merges edited by hand — `apply` never serves a flag state that no approved PR head had.

Real git repositories and the real `apply` command; GitHub is test_cli_apply's FakeSource.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_apply import FakeSource, MergedPull, Repo, adopt, apply, audit, flag, served

from gitops_flags.commands import apply as apply_cmd
from gitops_flags.flagd import served_state

STATES = ("enabled: true", "enabled: false")
pr_strategy = st.fixed_dictionaries({
    "pushes": st.lists(st.sampled_from(STATES), min_size=1, max_size=3),  # production, commit by commit
    "approved": st.booleans(),
    "method": st.sampled_from(["merge", "squash", "rebase", "edited"]),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prs=st.lists(pr_strategy, min_size=1, max_size=3))
def test_the_store_never_serves_a_state_no_approved_head_had(
        prs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "repo").mkdir()
        repo = Repo(root / "repo")
        source = FakeSource(repo)
        monkeypatch.setattr(apply_cmd, "source_factory", lambda env, checkout: source)
        adopt(repo)
        store = root / "store"
        apply(repo, store)
        allowed = {served_state(served(store, "production")["dark_mode"])}  # the baseline
        for number, pr in enumerate(prs, start=1):
            final = pr["pushes"][-1]
            text = flag("dark_mode", production=final)
            base = repo.git("rev-parse", "HEAD")
            head = repo.commit({"flags/dark_mode.yaml": text}, "the PR's head")
            repo.git("reset", "-q", "--hard", base)
            if pr["method"] == "rebase":
                landed = [repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=state)},
                                      "replayed") for state in pr["pushes"]]
            elif pr["method"] == "edited":  # a merge that serves something else than the head
                other = STATES[1 - STATES.index(final)]
                landed = [repo.commit({"flags/dark_mode.yaml": flag("dark_mode", production=other,
                                                                    staging="enabled: false")}, "edited")]
            else:
                landed = [repo.commit({"flags/dark_mode.yaml": text}, "merged")]
            for sha in landed:
                url = f"https://github.com/acme/flags/pull/{number}"
                source.pulls[sha] = MergedPull(number, url, "carol", head, base, landed[-1])
            source.verdicts[number] = "approved" if pr["approved"] else "pending"
            if pr["approved"]:
                allowed.add("ENABLED" if final == "enabled: true" else "DISABLED")
            apply(repo, store)
            assert served_state(served(store, "production")["dark_mode"]) in allowed
            # Not even for a moment inside a run: every state written to production was an approved head's.
            for line in audit(store):
                if line["outcome"] in ("applied", "warned") and line["environment"] == "production":
                    assert ("ENABLED" if line["after"]["enabled"] else "DISABLED") in allowed, line
