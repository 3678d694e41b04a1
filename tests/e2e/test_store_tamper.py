"""The sealed store under attack, as real processes against the GitHub double (issue 12, part 1).

Someone with push rights edits `production.flagd.json` on the `flag-store` branch and runs `sha256sum`
again, the way the security review did. Before the seal, the next apply built on it. Now: the apply job
(with the key, as the `flag-store` environment gives it) refuses the store, writes nothing, exits 1 and
tells the webhook; a job without the key (a workflow pushed on another branch) cannot write the sealed
store either; `apply --repair` puts the last sealed version back and reconciles.
"""

from __future__ import annotations

import json

from gitops_flags.store.base import manifest

from .conftest import T_APPLY, Actions, Lifecycle
from .github_double import GitHubDouble

KEY = "e2e-store-key-" + "0" * 32
STORE = "github-branch:flag-store"


def hooks(double: GitHubDouble, since: int) -> list[dict[str, object]]:
    return [r.json_body() for r in double.log[since:]
            if r.host == "hooks.acme.example" and r.method == "POST"]


def test_a_hand_edited_store_branch_is_refused_then_repaired(double: GitHubDouble, actions: Actions) -> None:
    lc = Lifecycle(double, actions, STORE)
    lc.setup()
    actions.extra_env["GITOPS_FLAGS_STORE_KEY"] = KEY
    first = lc.apply(T_APPLY)
    assert first.code == 0, first
    sealed = lc.read_store().files
    assert "store.seal" in sealed

    # The attack: serve dark_mode DISABLED in production, with a manifest that matches.
    doc = json.loads(sealed["production.flagd.json"])
    assert doc["flags"]["dark_mode"]["state"] == "ENABLED"
    doc["flags"]["dark_mode"]["state"] = "DISABLED"
    edited = {**sealed, "production.flagd.json": (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()}
    data = {n: b for n, b in edited.items() if n.endswith((".json", ".jsonl"))}
    tampered = double.commit("flag-store", {"production.flagd.json": edited["production.flagd.json"],
                                            "store.sha256": manifest(data)}, "hotfix", "pat")

    mark = len(double.log)
    refused = lc.apply(T_APPLY)
    assert refused.code == 1, refused
    assert "does not match its seal" in refused.stderr and "Traceback" not in refused.stderr
    assert "::error title=gitops-flags apply::" in refused.stdout
    assert "flag store refused" in refused.summary
    assert double.branch_sha("flag-store") == tampered  # never built on
    assert [h["gitops_flags"]["event"] for h in hooks(double, mark)] == ["store_refused"]  # type: ignore[index]

    # A job without the key (any workflow a writer pushes elsewhere) cannot write the sealed store.
    del actions.extra_env["GITOPS_FLAGS_STORE_KEY"]
    keyless = lc.apply(T_APPLY)
    assert keyless.code == 2 and double.branch_sha("flag-store") == tampered, keyless
    assert "is sealed; writing it needs the seal key in GITOPS_FLAGS_STORE_KEY" in keyless.stderr

    actions.extra_env["GITOPS_FLAGS_STORE_KEY"] = KEY
    repaired = actions.run(["apply", "--store", STORE, "--repair", "--now", T_APPLY],
                           event="workflow_dispatch", payload=double.event("workflow_dispatch"),
                           ref="origin/main", run_id=7999)
    assert repaired.code == 0, repaired
    assert "restored commit" in repaired.stdout
    now = lc.read_store()
    assert now.flag("production", "dark_mode")["state"] == "ENABLED"
    assert now.files["production.flagd.json"] == sealed["production.flagd.json"]
    assert now.audit()[-1]["event"] == "store_repaired"
    assert lc.apply(T_APPLY).code == 0  # verified again: the next run builds on it
