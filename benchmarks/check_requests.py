"""Requests per evaluation and wall time of `gitops-flags check` against a mocked GitHub API.

For PRs that change 1, 50 and 300 flags (each flag toggled in production under the repository's example
policy), with a local checkout holding the base and head commits:
  - "opened": a fresh PR (no comments yet, nobody requested): status, comment and a review request;
  - "no reviews": a later run, the sticky comment exists and is unchanged (no team lookups);
  - "1 approval": a manager approved (the policy's teams, the PR's issue events and the base branch's head
    are read, the comment is edited).
Wall time covers the whole command: API calls (mocked, PyGithub's pauses off), reading git objects,
diff, evaluation, rendering. The last line measures one run with PyGithub's production pauses on.

Run: python benchmarks/check_requests.py
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import responses

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import github_fixtures as fx  # noqa: E402

from gitops_flags import github  # noqa: E402
from gitops_flags.actions_env import ActionsEnv  # noqa: E402
from gitops_flags.commands import check  # noqa: E402

REPO = "acme/flags"
FLAG = """\
key: {key}
description: Benchmark flag {key}.
type: boolean
variants: {{"on": true, "off": false}}
default_variant: "on"
environments:
  staging: {{enabled: true}}
  production: {{enabled: {enabled}}}
"""


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def make_repo(where: Path, n: int) -> tuple[Path, str, str, list[str]]:
    root = where / f"repo{n}"
    (root / ".github").mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "gitops-flags.yml", root / ".github" / "gitops-flags.yml")
    shutil.copy(ROOT / ".github" / "CODEOWNERS", root / ".github" / "CODEOWNERS")
    (root / "flags").mkdir()
    paths = [f"flags/bench_{i:04d}.yaml" for i in range(n)]
    for i, path in enumerate(paths):
        (root / path).write_text(FLAG.format(key=f"bench_{i:04d}", enabled="true"))
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com"}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    for i, path in enumerate(paths):
        (root / path).write_text(FLAG.format(key=f"bench_{i:04d}", enabled="false"))
    git(root, "commit", "-q", "-am", "head")
    return root, base, git(root, "rev-parse", "HEAD"), paths


def one_run(root: Path, base: str, head: str, paths: list[str], approved: bool, pauses: bool = False,
            fresh: bool = False) -> tuple[int, float, int]:
    def factory(api_url: str, token: str | None, repository: str) -> github.GitHubClient:
        gh = github.connect(api_url, token, retry=fx.retry_policy(), pauses=pauses)
        return github.GitHubClient(gh, repository)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = fx.MockGitHub(rsps, repo=REPO)
        reviews = [fx.review(1, "mia", "APPROVED", head)] if approved else []
        data = fx.pull(5, base_sha=base, head_sha=head, changed_files=len(paths),
                       requested_teams=[] if fresh else ["eng-managers"], comments=0 if fresh else 1)
        gh.pull(data, files=[fx.file_entry(p) for p in paths], reviews=reviews,
                comments=[] if fresh else [fx.comment(900, sticky(root, base, head, paths))], events=[])
        # read once a review counts: the base branch's head (has its policy moved since the PR's base?)
        gh.get("/git/ref/heads/main", fx.example("git--get-ref", object={"sha": base, "type": "commit"}))
        gh.writes(5, head, comment_id=900)
        gh.team("acme", "eng-managers", ["mia"])
        gh.team("acme", "web", ["mia"])
        gh.team("acme", "qa", ["quinn"])
        options = check.Options(repo=REPO, pr=5, checkout=root)
        env = ActionsEnv(repository=REPO, token="t", run_id="1")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = check.run(options, env, factory)
        elapsed = time.perf_counter() - start
        return len(rsps.calls), elapsed, code


def sticky(root: Path, base: str, head: str, paths: list[str]) -> str:
    """The comment an earlier run (no reviews) posted: captured from a dry run's output."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        gh = fx.MockGitHub(rsps, repo=REPO)
        data = fx.pull(5, base_sha=base, head_sha=head, changed_files=len(paths), comments=0,
                       requested_teams=["eng-managers"])
        gh.pull(data, files=[fx.file_entry(p) for p in paths])
        gh.writes(5, head)

        def factory(api_url: str, token: str | None, repository: str) -> github.GitHubClient:
            return github.GitHubClient(github.connect(api_url, token, retry=fx.retry_policy(), pauses=False),
                                       repository)

        with contextlib.redirect_stdout(io.StringIO()):
            check.run(check.Options(repo=REPO, pr=5, checkout=root), ActionsEnv(repository=REPO, run_id="1"),
                      factory)
        return str(next(fx.body_of(c)["body"] for c in rsps.calls if c.request.method == "POST"
                        and (c.request.url or "").endswith("/issues/5/comments")))


def main() -> None:
    print(f"{'changed flags':>13} | {'reviews':>10} | {'requests':>8} | {'wall time (median of 3)':>24} "
          "| exit")
    print("-" * 72)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 50, 300):
            root, base, head, paths = make_repo(Path(tmp), n)
            for label, approved, fresh in (("opened", False, True), ("no reviews", False, False),
                                           ("1 approval", True, False)):
                runs = [one_run(root, base, head, paths, approved, fresh=fresh) for _ in range(3)]
                requests = runs[0][0]
                wall = statistics.median(r[1] for r in runs)
                print(f"{n:>13} | {label:>10} | {requests:>8} | {wall * 1000:>21.0f} ms | {runs[0][2]}")
        requests, wall, _ = one_run(*make_repo(Path(tmp) / "paused", 1), approved=False, pauses=True,
                                    fresh=True)
        print(f"\nwith PyGithub's production pauses (0.25 s between requests, 1 s between writes), 1 flag: "
              f"{requests} requests, {wall:.2f} s")


if __name__ == "__main__":
    main()
