"""The end-to-end harness: the GitHub double, jobs run as GitHub Actions runs them, and the lifecycle.

`Actions.run` starts a real `gitops-flags` process the way the action's last step does
(`$VENV/bin/gitops-flags <command> ...`), with the environment a runner sets: `GITHUB_*` variables, an
event payload file, a token, the API URL of the double, a job summary and an output file, and a fresh
checkout of the repository as `GITHUB_WORKSPACE`. Health gates and webhooks name stable hosts
(`status.acme.example`, `hooks.acme.example`); the job's `HTTP_PROXY` sends them to the double.

`Lifecycle` holds the scenario of tests/e2e/test_lifecycle.py step by step, so that the fault test can
run the same steps with faults armed in between. Assertions live in the tests, not here.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .github_double import GitHubDouble, Pull, QueueEntry

MAIN = Path(__file__).resolve().parents[2]
STATUS_HOST = "status.acme.example"
HOOK_URL = "http://hooks.acme.example/flags"
STORE_BRANCH = "flag-store"

# The lifecycle's clock: apply after the merge, two advances two hours apart, the direct push later.
T_APPLY = "2026-11-24T10:00:00Z"
T_ADVANCE = ("2026-11-24T12:00:00Z", "2026-11-24T14:00:00Z")
T_DIRECT = "2026-11-24T15:00:00Z"


# --- jobs ------------------------------------------------------------------------------------------


@dataclass
class Job:
    """A finished step: its exit code, the files Actions reads back, and its output (for failure messages
    only: tests assert on the double's requests and the store, never on what the tool printed)."""

    args: list[str]
    code: int
    stdout: str
    stderr: str
    summary: str
    outputs: dict[str, str]
    seconds: float

    def __str__(self) -> str:
        return (f"gitops-flags {' '.join(self.args)} → {self.code} in {self.seconds:.1f}s\n--- stdout\n"
                f"{self.stdout}\n--- stderr\n{self.stderr}")


def read_outputs(path: Path) -> dict[str, str]:
    """`$GITHUB_OUTPUT` as the runner parses it: `name=value` and `name<<DELIM` blocks."""
    values: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            values[name] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, _, value = line.partition("=")
            values[name] = value
            i += 1
    return values


def tool_command() -> list[str]:
    """The console script next to this interpreter (what the action execs), else `python -m`."""
    script = Path(sys.executable).with_name("gitops-flags")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gitops_flags"]


@dataclass
class Running:
    """A started job (for tests that kill it)."""

    process: subprocess.Popen[str]
    args: list[str]
    summary: Path
    output: Path
    started: float

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def wait(self, timeout: float = 120) -> Job:
        stdout, stderr = self.process.communicate(timeout=timeout)
        summary = self.summary.read_text(encoding="utf-8") if self.summary.exists() else ""
        return Job(self.args, self.process.returncode, stdout, stderr, summary, read_outputs(self.output),
                   time.monotonic() - self.started)


class Actions:
    """Starts jobs against one double. Each job gets a fresh workspace, summary and output file."""

    def __init__(self, double: GitHubDouble, root: Path) -> None:
        self.double = double
        self.root = root
        self.jobs = 0
        self.extra_env: dict[str, str] = {}

    def checkout(self, ref: str, fetch_pulls: bool = False) -> tuple[Path, str]:
        """actions/checkout with fetch-depth 0: a clone with full history, `ref` checked out."""
        self.jobs += 1
        workspace = self.root / f"job{self.jobs}" / "workspace"
        env = {**self.double.git.env}
        origin = str(self.double.git.path)
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", origin, str(workspace)], check=True,
                       env=env)
        if fetch_pulls:
            subprocess.run(["git", "-C", str(workspace), "fetch", "--quiet", "origin",
                            "+refs/pull/*/head:refs/remotes/origin/pull/*"], check=True, env=env)
        sha = subprocess.run(["git", "-C", str(workspace), "rev-parse", ref], check=True, env=env,
                             capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "-C", str(workspace), "checkout", "--quiet", "--detach", sha], check=True,
                       env=env)
        return workspace, sha

    def start(self, args: Sequence[str], *, event: str, payload: Mapping[str, Any], ref: str, run_id: int,
              attempt: int = 1, fetch_pulls: bool = False, github_ref: str = "refs/heads/main") -> Running:
        workspace, sha = self.checkout(ref, fetch_pulls)
        job_dir = workspace.parent
        event_path = job_dir / "event.json"
        event_path.write_text(json.dumps(payload), encoding="utf-8")
        summary, output = job_dir / "step_summary.md", job_dir / "github_output"
        summary.touch()
        output.touch()
        home = job_dir / "home"
        home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "CI": "true", "GITHUB_ACTIONS": "true", "RUNNER_OS": "Linux", "RUNNER_TEMP": str(job_dir),
            "GITHUB_API_URL": self.double.api_url, "GITHUB_SERVER_URL": self.double.server_url,
            "GITHUB_GRAPHQL_URL": self.double.api_url.replace("/v3", "/graphql"),
            "GITHUB_TOKEN": self.double.token, "GITHUB_REPOSITORY": self.double.full_name,
            "GITHUB_REPOSITORY_OWNER": self.double.owner, "GITHUB_EVENT_NAME": event,
            "GITHUB_EVENT_PATH": str(event_path), "GITHUB_SHA": sha, "GITHUB_REF": github_ref,
            "GITHUB_WORKSPACE": str(workspace), "GITHUB_RUN_ID": str(run_id),
            "GITHUB_RUN_ATTEMPT": str(attempt), "GITHUB_JOB": args[0], "GITHUB_WORKFLOW": "gitops-flags",
            "GITHUB_ACTOR": "github-actions[bot]", "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_OUTPUT": str(output),
            # Health gates and webhooks go through the double; the API itself is reached directly.
            "HTTP_PROXY": self.double.base, "http_proxy": self.double.base,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
            **self.extra_env,
        }
        argv = [*tool_command(), *args]
        process = subprocess.Popen(argv, cwd=workspace, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                   start_new_session=True)
        return Running(process, list(args), summary, output, time.monotonic())

    def run(self, args: Sequence[str], **kwargs: Any) -> Job:
        return self.start(args, **kwargs).wait()


# --- reading what the tool left behind ---------------------------------------------------------------


STICKY = "<!-- gitops-flags:sticky -->"
DIGEST = re.compile(r"<!-- gitops-flags:digest v1\.([A-Za-z0-9+/=]+) -->")


def digest(body: str) -> dict[str, Any]:
    """The hidden digest of a sticky comment: {verdict, head, changes: {ident: [verdict, [[step, state,
    approvers]]]}} (zlib-compressed JSON in base64, decoded here without the tool's code)."""
    match = DIGEST.search(body)
    assert match, f"no digest in the comment:\n{body[:500]}"
    value: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(match[1])))
    return value


def steps(body: str) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """{change ident: {step id: (state, approvers)}} from a sticky comment."""
    return {ident: {s[0]: (s[1], s[2]) for s in entry[1]} for ident, entry in digest(body)["changes"].items()}


def section(body: str, heading: str) -> str:
    """The comment's details for one change, e.g. heading "flag dark_mode · production"."""
    start = body.index(heading, body.index("### Details"))
    end = body.find("</details>", start)
    return body[start:] if end < 0 else body[start:end]


@dataclass
class StoreFiles:
    files: dict[str, bytes]

    def json(self, name: str) -> Any:
        return json.loads(self.files[name])

    def audit(self) -> list[dict[str, Any]]:
        raw = self.files.get("audit.jsonl", b"")
        return [json.loads(line) for line in raw.decode().splitlines() if line]

    def rollout(self, key: str, environment: str) -> dict[str, Any]:
        found: dict[str, Any] = self.json("state.json")["rollouts"][key][environment]
        return found

    def flag(self, environment: str, key: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.json(f"{environment}.flagd.json")["flags"].get(key)
        return found


def read_store(double: GitHubDouble, url: str) -> StoreFiles:
    """The store's files, read directly (a directory, or the store branch in the double's git)."""
    if url.startswith("file:"):
        root = Path(url[5:])
        if not root.exists():
            return StoreFiles({})
        return StoreFiles({p.name: p.read_bytes() for p in sorted(root.iterdir())
                           if p.is_file() and not p.name.startswith(".")})
    branch = url.partition(":")[2]
    if double.git.rev(f"refs/heads/{branch}") is None:
        return StoreFiles({})
    rows = double.git.ls_tree(f"refs/heads/{branch}")
    return StoreFiles({name: double.git.blob(sha) for _, kind, sha, _, name in rows if kind == "blob"})


# What legitimately differs between two runs of the same scenario: where the store is and its version
# (backend-specific), and which workflow run wrote a line (a concurrent run may win a race).
VOLATILE_AUDIT_KEYS = ("store", "store_version", "run_url")
RUN_URL = re.compile(r"/actions/runs/\d+")


def comparable(files: StoreFiles) -> dict[str, Any]:
    """Store files with what differs between runs left out (see VOLATILE_AUDIT_KEYS)."""
    out: dict[str, Any] = {}
    for name, raw in files.files.items():
        if name == "audit.jsonl":
            out[name] = [{k: v for k, v in line.items() if k not in VOLATILE_AUDIT_KEYS}
                         for line in files.audit()]
        elif name.endswith(".json"):
            out[name] = json.loads(raw)
        elif name != "store.sha256":  # it covers the files above, and differs only when they do
            out[name] = raw
    return out


def normalized(text: str, store: str) -> str:
    return RUN_URL.sub("/actions/runs/N", text.replace(store.removeprefix("file:"), "<store>"))


@dataclass
class Outcome:
    """What a run of the scenario leaves behind, comparable between runs."""

    store: dict[str, Any]
    comments: dict[int, list[str]]  # per PR, the comments other than the sticky one, normalized
    digests: dict[int, dict[str, Any]]  # per PR, the digest of the sticky comment
    statuses: dict[str, tuple[str, str]]  # per commit, the last (state, description)


def outcome(lc: Lifecycle) -> Outcome:
    comments: dict[int, list[str]] = {}
    digests: dict[int, dict[str, Any]] = {}
    for number in lc.double.pulls:
        for body in pr_comment_bodies(lc.double, number):
            if body.startswith(STICKY):
                digests[number] = digest(body)
            else:
                comments.setdefault(number, []).append(normalized(body, lc.store))
    statuses = {s.sha: (s.state, s.description) for s in lc.double.statuses}
    return Outcome(comparable(lc.read_store()), comments, digests, statuses)


# The fault-free run's outcome, kept for the fault test when both run in one session.
REFERENCE: dict[str, Outcome] = {}


# --- the scenario -------------------------------------------------------------------------------------


PEOPLE = {
    # team slug: members. alice (the PR author) is in the teams that would approve her own changes.
    "eng-managers": ["mira", "alice"],
    "qa": ["quinn"],
    "staff-engineers": ["sam"],
    "compliance": ["cora"],
    "schema-reviewers": ["rita", "rob"],
    "web": ["mira", "wendy", "alice"],
    "checkout": ["carl", "alice"],
    "search": ["mira"],
    "platform": ["pat", "mira"],
    "platform-admins": ["pat"],
}
HIDDEN_TEAMS = {"compliance": 404}  # the token cannot read this team's members (GitHub answers 404)

GIFT_CARDS = """\
# yaml-language-server: $schema=../../gitops_flags/jsonschema/flag.json
key: gift_cards
name: Gift cards
description: Pay with a gift card at checkout.
owner: "@acme/checkout"
tags: [checkout, payments]
type: boolean
variants:
  "on": true
  "off": false
default_variant: "off"
environments:
  staging:
    enabled: true
    default_variant: "on"
"""

ONBOARDING_ROLLOUT = """\
    rollout:
      variant: "on"
      stages: [25, 50, 100]
      stage_delay: 1h
      health_check:
        type: http
        url: http://status.acme.example/api/onboarding
        json_field: data.error_rate
        comparison: "<="
        threshold: 0.02
"""


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected one {old!r}"
    return text.replace(old, new)


def seed_files() -> dict[str, str]:
    """The repository's example: flags/, the policy and CODEOWNERS, the check workflow. Two edits: the
    checkout gate's status page is plain http (the proxy cannot see into TLS), and the policy names the
    webhook variable and lets gates use the job's proxy, so that apply's reports and the gates reach the
    double."""
    files = {str(p.relative_to(MAIN)): p.read_text(encoding="utf-8")
             for p in sorted((MAIN / "flags").rglob("*.yaml"))}
    for name in (".github/gitops-flags.yml", ".github/CODEOWNERS", ".github/workflows/flags-check.yml"):
        files[name] = (MAIN / name).read_text(encoding="utf-8")
    flow = "flags/checkout/new_checkout_flow.yaml"
    files[flow] = replace_once(files[flow], "https://status.acme.example/", "http://status.acme.example/")
    files[".github/gitops-flags.yml"] = replace_once(
        files[".github/gitops-flags.yml"], "  on_unapproved: block\n",
        "  on_unapproved: block\n  webhook_env: FLAGS_WEBHOOK_URL\n")
    # Gates reach status.acme.example through the job's HTTP_PROXY (the double): the policy opts in.
    files[".github/gitops-flags.yml"] = replace_once(
        files[".github/gitops-flags.yml"], "  hosts: [status.acme.example, prometheus.acme.example]\n",
        "  hosts: [status.acme.example, prometheus.acme.example]\n  proxy: true\n")
    return files


@dataclass
class Lifecycle:
    """The scenario's moves. Each returns what the tests assert on; none asserts itself."""

    double: GitHubDouble
    actions: Actions
    store: str  # the store URL passed to apply and advance (as the action's `store` input)
    run_ids: Iterator[int] = field(default_factory=lambda: iter(range(7001, 8000)))
    seed: str = ""
    files: dict[str, str] = field(default_factory=dict)

    def setup(self) -> None:
        for slug, members in PEOPLE.items():
            self.double.team(slug, members, hidden=HIDDEN_TEAMS.get(slug))
        self.double.serve(f"http://{STATUS_HOST}/api/onboarding", 200, {"data": {"error_rate": 0.004}})
        self.double.serve(f"http://{STATUS_HOST}/api/checkout", 200, {"data": {"error_rate": 0.011}})
        self.double.serve(HOOK_URL, 200, {"ok": True})
        self.actions.extra_env["FLAGS_WEBHOOK_URL"] = HOOK_URL
        self.files = seed_files()
        self.seed = self.double.commit("main", self.files, "Adopt gitops-flags", "pat")

    # --- the moves ------------------------------------------------------------------------------------

    def open_pr1(self) -> Pull:
        """Step 1: a create, a rollout, a production toggle and a schema change."""
        f = self.files
        onboarding = f["flags/onboarding_tour.yaml"] + ONBOARDING_ROLLOUT
        dark = replace_once(f["flags/dark_mode.yaml"], "  production:\n    enabled: true",
                            "  production:\n    enabled: false")
        schema = replace_once(f["flags/schemas/rate_limits.yaml"], "version: 1", "version: 2")
        schema += "    window_seconds: {type: integer, minimum: 1, description: The counting window}\n"
        return self.double.open_pull("alice", "alice/checkout-launch", {
            "flags/checkout/gift_cards.yaml": GIFT_CARDS,
            "flags/onboarding_tour.yaml": onboarding,
            "flags/dark_mode.yaml": dark,
            "flags/schemas/rate_limits.yaml": schema,
        }, "Launch gift cards, roll out the onboarding tour, dark mode off in production")

    def push_pr1(self) -> str:
        """Step 4: QA asked for longer stages; only the onboarding tour changes."""
        pull = self.double.pulls[1]
        text = self.double.read(pull.head_sha, "flags/onboarding_tour.yaml")
        assert text is not None
        slower = replace_once(text.decode(), "stage_delay: 1h", "stage_delay: 2h")
        return self.double.push(1, {"flags/onboarding_tour.yaml": slower}, "Slower onboarding rollout")

    def open_pr2(self) -> Pull:
        """Step 8: the policy loosened (production flags would need a code owner only) and, in the same
        PR, dark mode turned back on in production."""
        main = self.double.branch_sha("main")
        policy = self.double.read(main, ".github/gitops-flags.yml")
        dark = self.double.read(main, "flags/dark_mode.yaml")
        assert policy is not None and dark is not None
        loosened = replace_once(policy.decode(), "{match: {kind: flag, environment: production}, workflow: "
                                "flag_approval}", "{match: {kind: flag, environment: production}, workflow: "
                                "codeowner_review}")
        back_on = replace_once(dark.decode(), "  production:\n    enabled: false",
                               "  production:\n    enabled: true")
        return self.double.open_pull("alice", "alice/simpler-policy", {
            ".github/gitops-flags.yml": loosened, "flags/dark_mode.yaml": back_on,
        }, "Production flags need a code owner only")

    def first_reviews(self) -> None:
        """Step 3: a manager approves; the author approves her own PR; QA requests changes."""
        self.double.review(1, "mira", "APPROVED")
        self.double.review(1, "alice", "APPROVED", "LGTM (my own PR)")
        self.double.review(1, "quinn", "CHANGES_REQUESTED", "25% in one hour is too fast for the tour")

    def remaining_reviews(self) -> None:
        """Step 5: everyone else, and the manager again for the pushed flag."""
        for login in ("mira", "quinn", "carl", "rita", "rob", "sam"):
            self.double.review(1, login, "APPROVED")

    def pr2_reviews(self) -> None:
        """Step 8: a code owner of dark_mode (enough under the proposed policy, not under the base one) and
        a compliance officer whose team the token cannot read."""
        self.double.review(2, "wendy", "APPROVED")
        self.double.review(2, "cora", "APPROVED")

    def merge_pr1(self) -> str:
        return self.double.merge(1, "mira")

    def direct_push(self) -> str:
        """Step 9: someone with push rights bypasses review."""
        main = self.double.branch_sha("main")
        text = self.double.read(main, "flags/legacy_export.yaml")
        assert text is not None
        edited = replace_once(text.decode(), "  staging:\n    enabled: false",
                              "  staging:\n    enabled: true")
        return self.double.commit("main", {"flags/legacy_export.yaml": edited}, "Quick fix", "pat")

    # --- the jobs --------------------------------------------------------------------------------------

    def check(self, number: int, event: str, **kwargs: Any) -> Job:
        """flags-check.yml: `check` on a pull_request / pull_request_review event."""
        event_name = event.split(".")[0]
        payload = self.double.event(event, number)
        return self.actions.run(["check"], event=event_name, payload=payload, ref=f"origin/pull/{number}",
                                fetch_pulls=True, github_ref=f"refs/pull/{number}/merge",
                                run_id=next(self.run_ids), **kwargs)

    def check_group(self, entry: QueueEntry, **kwargs: Any) -> Job:
        """flags-check.yml on `merge_group`: actions/checkout checks out the group's head (GITHUB_SHA) from
        its temporary branch (GITHUB_REF), with full history."""
        payload = self.double.merge_group_event(entry)
        return self.actions.run(["check"], event="merge_group", payload=payload,
                                ref=f"origin/{self.double.queue_branch(entry)}", github_ref=entry.ref,
                                run_id=next(self.run_ids), **kwargs)

    def apply_job(self, now: str, *, run_id: int | None = None, attempt: int = 1) -> Running:
        """The apply workflow on a push to main."""
        main = self.double.branch_sha("main")
        payload = self.double.event("push", ref="refs/heads/main", after=main)
        return self.actions.start(["apply", "--store", self.store, "--init", "--now", now], event="push",
                                  payload=payload, ref="origin/main", run_id=run_id or next(self.run_ids),
                                  attempt=attempt)

    def apply(self, now: str, **kwargs: Any) -> Job:
        return self.apply_job(now, **kwargs).wait()

    def advance_job(self, now: str, run_id: int | None = None) -> Running:
        """flags-rollout.yml: `advance` on its schedule."""
        payload = self.double.event("schedule")
        return self.actions.start(["advance", "--store", self.store, "--now", now], event="schedule",
                                  payload=payload, ref="origin/main", run_id=run_id or next(self.run_ids))

    def advance(self, now: str, run_id: int | None = None) -> Job:
        return self.advance_job(now, run_id).wait()

    def read_store(self) -> StoreFiles:
        return read_store(self.double, self.store)


def play_fault_free(lc: Lifecycle) -> Outcome:
    """The whole scenario without assertions (the fault test's reference when it runs on its own)."""
    lc.setup()
    lc.open_pr1()
    lc.check(1, "pull_request.opened")
    lc.first_reviews()
    lc.check(1, "pull_request_review.submitted")
    lc.push_pr1()
    lc.check(1, "pull_request.synchronize")
    lc.remaining_reviews()
    lc.check(1, "pull_request_review.submitted")
    lc.merge_pr1()
    lc.apply(T_APPLY)
    for now in T_ADVANCE:
        lc.advance(now)
    lc.open_pr2()
    lc.pr2_reviews()
    lc.check(2, "pull_request_review.submitted")
    lc.direct_push()
    lc.apply(T_DIRECT)
    return outcome(lc)


def pr_comment_bodies(double: GitHubDouble, number: int) -> list[str]:
    return [c.body for c in double.issue_comments(number)]


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture
def double(tmp_path: Path) -> Iterator[GitHubDouble]:
    with GitHubDouble(tmp_path / "github") as running:
        yield running


@pytest.fixture
def actions(double: GitHubDouble, tmp_path: Path) -> Actions:
    return Actions(double, tmp_path / "runner")
