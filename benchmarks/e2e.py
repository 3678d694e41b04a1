"""End-to-end figures: real `gitops-flags` processes, started as GitHub Actions starts them, against the
GitHub double of tests/e2e (a local HTTP server backed by real git repositories).

1. GitHub requests per `check` for PRs that toggle 1, 50 and 300 flags in production (example policy):
   just opened, and after one decisive review (the policy's teams are then read); with the check
   workflow's full-history checkout, and without a checkout (every file through the contents API).
2. Wall time of `check`, `apply` and `advance` on a 10,000-flag repository (file store): the first apply
   (the whole repository as the baseline, plus a merged PR), a later apply of one merged PR, and an
   advance with 100 rollouts due.
3. Cold install of the action: a fresh virtual environment and `pip install` of the action's directory,
   as action.yml does on a cache miss (pip's cache off).

Every process runs with PyGithub's production pacing (0.25 s between requests, 1 s between writes): the
wall times are what a workflow run would see against a fast API.

Run: python benchmarks/e2e.py [--skip-install] [--skip-api-only]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.conftest import PEOPLE, Actions, Job  # noqa: E402
from e2e.github_double import GitHubDouble, Recorded  # noqa: E402

FLAG = """\
key: {key}
description: Benchmark flag {key}.
owner: "@acme/web"
type: boolean
variants: {{"on": true, "off": false}}
default_variant: "off"
environments:
  staging: {{enabled: true}}
  production:
    enabled: {enabled}
{rollout}"""
ROLLOUT = """\
    rollout:
      variant: "on"
      stages: [10, 50, 100]
      stage_delay: 1h
"""


def flag_path(i: int) -> str:
    return f"flags/gen/g{i // 1000:02d}/gen_{i:05d}.yaml"


def flag_text(i: int, enabled: bool = True, rollout: bool = False) -> str:
    return FLAG.format(key=f"gen_{i:05d}", enabled=str(enabled).lower(), rollout=ROLLOUT if rollout else "")


def world(root: Path, flags: int, rollouts_every: int = 0) -> tuple[GitHubDouble, Actions]:
    double = GitHubDouble(root / "github").start()
    for slug, members in PEOPLE.items():
        double.team(slug, members)
    files = {name: (ROOT / name).read_text() for name in (".github/gitops-flags.yml", ".github/CODEOWNERS")}
    for i in range(flags):
        files[flag_path(i)] = flag_text(i, rollout=bool(rollouts_every) and i % rollouts_every == 0)
    double.commit("main", files, "Adopt gitops-flags", "pat")
    return double, Actions(double, root / "runner")


def toggle_pr(double: GitHubDouble, n: int, branch: str, offset: int = 1) -> int:
    """A PR turning flags off in production (flags without a rollout: i % 100 != 0)."""
    picked = [i for i in range(offset, offset + 2 * n) if i % 100][:n]
    pull = double.open_pull("alice", branch, {flag_path(i): flag_text(i, enabled=False) for i in picked},
                            f"Turn off {n} flags")
    number: int = pull.number
    return number


def check(double: GitHubDouble, actions: Actions, number: int, run_id: int, checkout: bool = True
          ) -> tuple[Job, list[Recorded]]:
    mark = len(double.log)
    payload = double.event("pull_request.opened", number)
    extra = {} if checkout else {"GITHUB_WORKSPACE": str(actions.root / "empty")}
    (actions.root / "empty").mkdir(parents=True, exist_ok=True)
    actions.extra_env = extra
    job = actions.run(["check"], event="pull_request", payload=payload, ref=f"origin/pull/{number}",
                      fetch_pulls=True, run_id=run_id)
    actions.extra_env = {}
    return job, double.log[mark:]


def kinds(requests: list[Recorded]) -> str:
    """e.g. `GET pull 1, GET files 3, POST statuses 1`."""
    counted: Counter[str] = Counter()
    for r in requests:
        parts = r.path.strip("/").split("/")
        words = ("contents", "members", "files", "reviews", "comments", "statuses", "requested_reviewers")
        word = next((w for w in words if w in parts), "pull" if parts[-2:-1] == ["pulls"] else r.path)
        counted[f"{r.method} {word}"] += 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counted.items()))


def requests_per_check(tmp: Path, api_only: bool) -> None:
    print("== GitHub requests per `check` (PyGithub pacing on)")
    double, actions = world(tmp / "requests", 300)
    try:
        run_id = 100
        for n in (1, 50, 300):
            modes = [("checkout", True)] + ([("no checkout", False)] if api_only and n <= 50 else [])
            for label, local in modes:
                number = toggle_pr(double, n, f"bench/{n}/{label.replace(' ', '-')}")
                run_id += 1
                job, sent = check(double, actions, number, run_id, local)
                assert job.code == 0, job
                print(f"  {n:>3} flags, opened, {label:<11}: {len(sent):>4} requests in "
                      f"{job.seconds:5.1f} s  ({kinds(sent)})")
                if not local:
                    continue
                double.review(number, "mira", "APPROVED")
                run_id += 1
                job, sent = check(double, actions, number, run_id)
                assert job.code == 0, job
                print(f"  {n:>3} flags, 1 approval, {label:<7}: {len(sent):>4} requests in "
                      f"{job.seconds:5.1f} s  ({kinds(sent)})")
    finally:
        double.stop()


def big_repository(tmp: Path) -> None:
    print("== 10,000-flag repository, file store (PyGithub pacing on)")
    started = time.monotonic()
    double, actions = world(tmp / "big", 10_000, rollouts_every=100)
    print(f"  (repository generated in {time.monotonic() - started:.1f} s)")
    store = f"file:{tmp / 'big' / 'flag-store'}"
    try:
        number = toggle_pr(double, 3, "bench/three")
        job, sent = check(double, actions, number, 1)
        assert job.code == 0, job
        print(f"  check, PR of 3 flags          : {job.seconds:5.1f} s, {len(sent)} requests")
        for who in ("mira", "quinn"):
            double.review(number, who, "APPROVED")
        double.merge(number, "mira")
        payload = double.event("push")
        first = ["apply", "--store", store, "--init", "--now", "2026-11-24T10:00:00Z"]
        job = actions.run(first, event="push", payload=payload, ref="origin/main", run_id=2)
        assert job.code == 0, job
        print(f"  apply, first (baseline of 20,000 flag×env units + 1 PR): {job.seconds:5.1f} s")
        number = toggle_pr(double, 3, "bench/three-more", offset=5000)
        for who in ("mira", "quinn"):
            double.review(number, who, "APPROVED")
        double.merge(number, "mira")
        job = actions.run(["apply", "--store", store, "--now", "2026-11-24T10:30:00Z"], event="push",
                          payload=payload, ref="origin/main", run_id=3)
        assert job.code == 0, job
        print(f"  apply, one merged PR of 3 flags: {job.seconds:5.1f} s")
        job = actions.run(["advance", "--store", store, "--now", "2026-11-24T11:00:00Z"], event="schedule",
                          payload=double.event("schedule"), ref="origin/main", run_id=4)
        assert job.code == 0, job
        moved = job.stdout.count("% → ")
        print(f"  advance, 100 rollouts due     : {job.seconds:5.1f} s ({moved} advanced)")
        size = sum(p.stat().st_size for p in (tmp / "big" / "flag-store").iterdir() if p.is_file())
        print(f"  (store size {size / 1e6:.1f} MB)")
    finally:
        double.stop()


def cold_install(tmp: Path) -> None:
    print("== cold install of the action (fresh venv, pip cache off)")
    source = tmp / "action"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "gitops_flags", source / "gitops_flags",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    made = time.monotonic()
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                          "--no-input", "--quiet", "--no-cache-dir", str(source)],
                         capture_output=True, text=True)
    if pip.returncode:
        sys.exit(f"pip install failed:\n{pip.stderr}")
    done = time.monotonic()
    subprocess.run([str(venv / "bin" / "gitops-flags"), "--help"], check=True, capture_output=True)
    first = time.monotonic() - done
    print(f"  venv {made - started:.1f} s + pip install {done - made:.1f} s = {done - started:.1f} s; "
          f"first `gitops-flags --help` {first:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--skip-api-only", action="store_true", help="skip the runs without a checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gitops-flags-e2e-bench-") as tmp:
        requests_per_check(Path(tmp), api_only=not args.skip_api_only)
        big_repository(Path(tmp))
        if not args.skip_install:
            cold_install(Path(tmp))


if __name__ == "__main__":
    main()
