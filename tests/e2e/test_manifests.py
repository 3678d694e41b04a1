"""FeatureFlag manifests on a cluster-config branch, as real processes against the GitHub double.

The attack: someone who can push to the branch Argo CD or Flux syncs from (but cannot get a PR approved)
switches the new checkout on for everyone in the production manifest. Every cluster would serve it within
a sync interval. The next `apply` must report the edit as drift (exit 1, an audit line) and put the
approved manifest back; a scheduled `advance` then publishes the next rollout stage to the same branch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import STATUS_HOST, Actions, read_store, seed_files
from .github_double import GitHubDouble

BRANCH = "cluster-config"
PRODUCTION = "apps/flags/production.yaml"
MANIFESTS = f"""\
  manifests:
    branch: {BRANCH}
    path: apps/flags/{{environment}}.yaml
    environments:
      production: {{namespace: prod}}
"""


def manifest(double: GitHubDouble, path: str = PRODUCTION) -> Any:
    raw = double.read(double.branch_sha(BRANCH), path)
    assert raw is not None, f"{path} is not on {BRANCH}"
    return yaml.safe_load(raw)


def test_a_hand_edit_on_the_cluster_config_branch_is_reported_and_reverted(
    double: GitHubDouble, actions: Actions, tmp_path: Path
) -> None:
    double.serve(f"http://{STATUS_HOST}/api/checkout", 200, {"data": {"error_rate": 0.004}})
    files = seed_files()
    files[".github/gitops-flags.yml"] = files[".github/gitops-flags.yml"].replace(
        "  branch: flag-store\n", "  branch: flag-store\n" + MANIFESTS)
    double.commit("main", files, "Adopt gitops-flags", "pat")
    actions.extra_env["GITOPS_FLAGS_WRITE_PAUSE"] = "0"
    store = f"file:{tmp_path / 'flag-store'}"

    def job(*args: str) -> Any:
        if args[0] == "advance":
            event, payload = "schedule", double.event("schedule")
        else:
            head = double.branch_sha("main")
            event, payload = "push", double.event("push", ref="refs/heads/main", after=head)
        return actions.run([*args, "--store", store], event=event, payload=payload, ref="origin/main",
                           run_id=7100 + actions.jobs)

    first = job("apply", "--init", "--now", "2026-11-24T10:00:00Z")
    assert first.code == 0, first.stderr
    approved = double.read(double.branch_sha(BRANCH), PRODUCTION)
    production = manifest(double)
    assert (production["kind"], production["metadata"]["namespace"]) == ("FeatureFlag", "prod")
    assert manifest(double, "apps/flags/staging.yaml")["metadata"]["name"] == "gitops-flags-staging"
    flags = production["spec"]["flagSpec"]["flags"]
    assert flags["new_checkout_flow"]["defaultVariant"] == "off"

    # The attack: a direct push to the branch the clusters sync from, the new checkout for everyone.
    flags["new_checkout_flow"]["defaultVariant"] = "on"
    double.commit(BRANCH, {PRODUCTION: yaml.safe_dump(production)}, "hotfix: banner on", "pat")

    second = job("apply", "--now", "2026-11-24T10:05:00Z")
    assert second.code == 1, second
    assert double.read(double.branch_sha(BRANCH), PRODUCTION) == approved
    drift = [r for r in read_store(double, store).audit() if r.get("event") == "manifest_drift"]
    assert [r["environment"] for r in drift] == ["production"]
    assert "new_checkout_flow edited" in drift[0]["summary"]

    third = job("advance", "--now", "2026-11-24T12:05:00Z")
    assert third.code == 0, third.stderr
    checkout = manifest(double)["spec"]["flagSpec"]["flags"]["new_checkout_flow"]
    assert checkout["metadata"]["gitopsRolloutPercentage"] == 25
    assert len([r for r in read_store(double, store).audit() if r.get("event") == "manifest_drift"]) == 1
    assert double.unhandled == []
