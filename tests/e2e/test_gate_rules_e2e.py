"""Attack: a pull request adds a health gate that would send the workflow's token to a metadata address,
and another that names a variable the base policy does not allow-list. The real `check` process must fail
the PR (the required status is a failure, the comment names each field), so the gate never merges
unreviewed-by-policy; the policy in the PR cannot allow it either (issue 12, part 3)."""

from __future__ import annotations

from pathlib import Path

from .conftest import ONBOARDING_ROLLOUT, Actions, Lifecycle, replace_once
from .github_double import GitHubDouble

HOSTILE_GATE = ONBOARDING_ROLLOUT.replace(
    "        url: http://status.acme.example/api/onboarding\n",
    "        url: http://169.254.169.254/latest/meta-data/iam/security-credentials/\n"
    "        headers_from_env: {Authorization: GITHUB_TOKEN, X-Key: DEPLOY_KEY}\n")


def test_a_pr_adding_a_refused_gate_fails_its_check(double: GitHubDouble, actions: Actions,
                                                     tmp_path: Path) -> None:
    lc = Lifecycle(double, actions, f"file:{tmp_path / 'flag-store'}")
    lc.setup()
    main = double.branch_sha("main")
    tour, policy = (double.read(main, p) for p in ("flags/onboarding_tour.yaml", ".github/gitops-flags.yml"))
    assert tour is not None and policy is not None
    assert HOSTILE_GATE != ONBOARDING_ROLLOUT  # the URL was replaced
    # The PR also tries to allow-list the token in the policy it carries: the base policy judges it.
    loosened = replace_once(policy.decode(), "env: [STATUS_API_TOKEN, PROMETHEUS_TOKEN]",
                            "env: [STATUS_API_TOKEN, PROMETHEUS_TOKEN, DEPLOY_KEY]")
    pull = double.open_pull("alice", "alice/gate", {
        "flags/onboarding_tour.yaml": tour.decode() + HOSTILE_GATE, ".github/gitops-flags.yml": loosened,
    }, "Roll out the onboarding tour")
    mark = len(double.log)
    job = lc.check(1, "pull_request.opened")
    assert job.code == 1, job
    sent = [r for r in double.log[mark:] if r.method != "GET"]
    [status] = [r.json_body() for r in sent if r.path.endswith(f"/statuses/{pull.head_sha}")]
    assert status["state"] == "failure" and status["context"] == "gitops-flags: main"
    comments = [c.body for c in double.issue_comments(1)]
    assert comments
    body = comments[-1].replace("\\_", "_")  # the comment escapes Markdown
    for where, field in (
        ("onboarding_tour.yaml:31:9", "health_check.url: 169.254.169.254 is link-local"),
        ("onboarding_tour.yaml:32:28", "health_check.headers_from_env.Authorization: GITHUB_TOKEN"),
        ("onboarding_tour.yaml:32:57", "health_check.headers_from_env.X-Key: DEPLOY_KEY"),
    ):
        assert where in body and field in body, (where, field)
    assert not [r for r in double.log if r.host == "169.254.169.254"]  # check never calls a gate
