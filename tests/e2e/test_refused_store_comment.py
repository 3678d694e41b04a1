"""A refused store tells the PR whose merge it did not apply (issue 12, part 1: "a notification goes out
(webhook or PR comment)"), as real processes against the GitHub double.

The store branch is edited by hand after a sealed apply; then a PR merges. The apply job for that push
refuses the store, writes nothing, and comments on the merged PR besides telling the webhook. A direct push
has no PR: only the webhook, the annotation and the job summary say it (docs/security.md).
"""

from __future__ import annotations

from gitops_flags.notify import REFUSED_MARKER
from gitops_flags.store.base import manifest

from .conftest import T_APPLY, Actions, Lifecycle
from .github_double import GitHubDouble

KEY = "e2e-store-key-" + "1" * 32


def refusals(double: GitHubDouble, number: int) -> list[str]:
    return [c.body for c in double.issue_comments(number) if REFUSED_MARKER in c.body]


def test_the_merged_pr_is_told_that_a_refused_store_did_not_apply_it(double: GitHubDouble,
                                                                      actions: Actions) -> None:
    lc = Lifecycle(double, actions, "github-branch:flag-store")
    lc.setup()
    actions.extra_env["GITOPS_FLAGS_STORE_KEY"] = KEY
    assert lc.apply(T_APPLY).code == 0
    files = lc.read_store().files
    state = files["state.json"].replace(b'"applied_commit"', b'"applied_commit" ', 1)  # any hand edit
    data = {**{n: b for n, b in files.items() if n.endswith((".json", ".jsonl"))}, "state.json": state}
    tampered = double.commit("flag-store", {"state.json": state, "store.sha256": manifest(data)}, "edit",
                             "pat")

    lc.open_pr1()
    lc.merge_pr1()
    refused = lc.apply(T_APPLY)
    assert refused.code == 1, refused
    assert double.branch_sha("flag-store") == tampered  # never built on
    assert refusals(double, 1), str(refused)
    [body] = refusals(double, 1)
    assert "### gitops-flags apply: the flag store was NOT used" in body
    assert "does not match its seal" in body and "Nothing of this merge was applied" in body
    assert "note: PR #1 was told that its merge was not applied" in refused.stdout

    lc.direct_push()  # no PR merged this head: nobody to comment on, the run still refuses
    again = lc.apply(T_APPLY)
    assert again.code == 1, again
    assert len(refusals(double, 1)) == 1 and "was told" not in again.stdout
