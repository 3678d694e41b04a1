"""`gitops-flags check` end to end: a local git repository (base + head commits) with the example policy,
GitHub answered by `responses` with bodies built from GitHub's examples; plus the event parsing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import responses
from github_fixtures import (
    NOT_ACCESSIBLE,
    MockGitHub,
    body_of,
    client_factory,
    comment,
    content_dir,
    content_file,
    error_body,
    event,
    example,
    file_entry,
    observed_error,
    pull,
    requests_sent,
    review,
    wire,
)
from runner_commands import commands, foreign

from gitops_flags import actions_env, cli, render
from gitops_flags.actions_env import PullTarget, Skip
from gitops_flags.commands import check
from gitops_flags.problems import GitopsFlagsError

Mock = responses.RequestsMock
Capsys = pytest.CaptureFixture[str]
MP = pytest.MonkeyPatch
ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/flags"
API = "https://api.github.com"
RUN_URL = f"https://github.com/{REPO}/actions/runs/42"

FLAG = """\
key: dark_mode
description: Offers the dark colour theme.
owner: "@acme/web"
type: boolean
variants: {"on": true, "off": false}
default_variant: "on"
environments:
  staging: {enabled: true}
  production: {enabled: %s}
"""


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A checkout whose base commit has the example policy, CODEOWNERS and one flag; the head turns the flag
    off in production (a `toggle`: manager who owns the file, QA skipped)."""
    root = tmp_path / "checkout"
    (root / ".github").mkdir(parents=True)
    shutil.copy(ROOT / ".github" / "gitops-flags.yml", root / ".github" / "gitops-flags.yml")
    shutil.copy(ROOT / ".github" / "CODEOWNERS", root / ".github" / "CODEOWNERS")
    (root / "flags").mkdir()
    (root / "flags" / "dark_mode.yaml").write_text(FLAG % "true")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    (root / "flags" / "dark_mode.yaml").write_text(FLAG % "false")
    git(root, "commit", "-q", "-am", "head")
    head = git(root, "rev-parse", "HEAD")
    return root, base, head


@pytest.fixture(autouse=True)
def env(monkeypatch: MP, tmp_path: Path) -> dict[str, Path]:
    for name in list(__import__("os").environ):
        if name.startswith(("GITHUB_", "INPUT_")) or name in ("GH_TOKEN", "RUNNER_TEMP"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setattr(check, "client_factory", client_factory)
    files = {"output": tmp_path / "output.txt", "summary": tmp_path / "summary.md"}
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    return files


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def run(repo: Path, *extra: str) -> int:
    return cli.main(["check", "--repo", REPO, "--pr", "5", "--checkout", str(repo), *extra])


def mock_pr(rsps: Mock, base: str, head: str, *, reviews: list[Any] | None = None,
            comments: list[Any] | None = None, files: tuple[str, ...] = ("flags/dark_mode.yaml",),
            comment_count: int | None = None, base_tip: str | None = None, **pull_kw: Any) -> MockGitHub:
    gh = MockGitHub(rsps, repo=REPO)
    pull_kw.setdefault("requested_teams", ["eng-managers"])
    if comment_count is not None:
        pull_kw["comments"] = comment_count
    gh.pull(pull(5, base_sha=base, head_sha=head, **pull_kw), files=[file_entry(f) for f in files],
            reviews=reviews or [], comments=comments or [], events=[])
    data = pull(5, base_sha=base, head_sha=head, **pull_kw)
    tip = example("git--get-ref", object={"sha": base_tip or base, "type": "commit"})
    gh.get(f"/git/ref/heads/{data['base']['ref']}", tip)
    gh.writes(5, head, comment_id=900)
    return gh


def status_sent(rsps: Mock) -> Any:
    return next(body_of(c) for c in rsps.calls if "/statuses/" in (c.request.url or ""))


def comment_posted(rsps: Mock) -> str:
    return str(next(body_of(c)["body"] for c in rsps.calls
                    if c.request.method == "POST" and (c.request.url or "").endswith("/issues/5/comments")))


def outputs(path: Path) -> dict[str, str]:
    text = path.read_text()
    values = dict(re.findall(r"^([\w-]+)=(.*)$", text, flags=re.M))
    for name, _delim, value in re.findall(r"^([\w-]+)<<(\S+)\n(.*?)\n\2$", text, flags=re.M | re.S):
        values[name] = value
    return values


# --- end to end -----------------------------------------------------------------------------------------


def test_pending_pr_costs_six_requests_and_reports_everything(rsps: Mock, repo: Any,
                                                              env: dict[str, Path],
                                                              capsys: Capsys) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root) == 0  # pending: the status carries it, the job stays green
    assert requests_sent(rsps) == [
        ("GET", f"/repos/{REPO}/pulls/5"),
        ("GET", f"/repos/{REPO}/pulls/5/reviews"),
        ("GET", f"/repos/{REPO}/pulls/5/files"),
        ("GET", f"/repos/{REPO}/issues/5/comments"),
        ("POST", f"/repos/{REPO}/statuses/{head}"),
        ("POST", f"/repos/{REPO}/issues/5/comments"),
    ]
    status = body_of(rsps.calls[4])
    assert status["state"] == "pending"
    assert status["context"] == "gitops-flags: main"
    assert status["target_url"] == RUN_URL
    assert status["description"].startswith("Pending: 1 of 1 change awaits approval")
    assert len(status["description"]) <= 140
    posted = body_of(rsps.calls[5])["body"]
    assert posted.startswith(render.MARKER)
    assert "@acme/eng-managers" in posted  # the awaited team is mentioned
    assert "`dark_mode`" in posted and "`production`" in posted
    out = outputs(env["output"])
    assert out["verdict"] == "pending"
    assert json.loads(out["changes"])[0]["key"] == "dark_mode"
    assert json.loads(out["pending-steps"]) == [
        {"change": "flag:dark_mode@production", "step": "manager", "role": "manager",
         "awaited": ["acme/eng-managers"]}
    ]
    assert "gitops-flags: pending" in env["summary"].read_text()


def test_review_requests_go_only_to_the_newly_awaited(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head, requested_teams=[])
    assert run(root) == 0
    assert requests_sent(rsps)[-1] == ("POST", f"/repos/{REPO}/pulls/5/requested_reviewers")
    assert body_of(rsps.calls[-1]) == {"reviewers": [], "team_reviewers": ["eng-managers"]}


def test_an_approval_by_a_member_who_owns_the_file_approves(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    gh = mock_pr(rsps, base, head, reviews=[review(1, "mia", "APPROVED", head)])
    gh.team("acme", "eng-managers", ["mia"])
    gh.team("acme", "web", ["mia", "wes"])
    gh.team("acme", "qa", ["quinn"])
    assert run(root) == 0
    sent = requests_sent(rsps)
    assert sorted(p for m, p in sent if "/orgs/" in p) == [
        "/orgs/acme/teams/eng-managers/members",
        "/orgs/acme/teams/qa/members",
        "/orgs/acme/teams/web/members",
    ]
    status = status_sent(rsps)
    assert status["state"] == "success"
    posted = comment_posted(rsps)
    assert "mia" in posted and "@mia" not in posted  # approvers are named, never mentioned


def test_a_policy_tightened_on_the_base_branch_since_the_pr_was_opened_binds_it(
        rsps: Mock, repo: Any, env: dict[str, Path]) -> None:
    """Route 4 in check: the PR's base is behind main, where CODEOWNERS changed since. mia owns the file
    under the PR's base, not under main's current CODEOWNERS: pending, and the report says why."""
    root, base, head = repo
    git(root, "checkout", "-q", "-b", "tip", base)
    (root / ".github" / "CODEOWNERS").write_text("* @zed\n")
    git(root, "commit", "-q", "-am", "tighten CODEOWNERS")
    tip = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", head)
    gh = mock_pr(rsps, base, head, reviews=[review(1, "mia", "APPROVED", head)], base_tip=tip)
    gh.team("acme", "eng-managers", ["mia"])
    gh.team("acme", "web", ["mia", "wes"])
    gh.team("acme", "qa", ["quinn"])
    assert run(root) == 0
    status = status_sent(rsps)
    assert status["state"] == "pending"
    data = json.loads(outputs(env["output"])["changes"])
    assert f"current policy (at {tip[:7]}; the PR's base is behind)" in data[0]["reason"]
    posted = comment_posted(rsps)
    assert "is behind main" in posted and tip[:7] in posted


def test_an_unreadable_team_is_reported_with_the_missing_permission(rsps: Mock,
                                                                    repo: Any) -> None:
    root, base, head = repo
    gh = mock_pr(rsps, base, head, reviews=[review(1, "mia", "APPROVED", head)])
    gh.team("acme", "eng-managers", status=403)
    gh.team("acme", "web", ["mia"])
    gh.team("acme", "qa", ["quinn"])
    assert run(root) == 0
    status = status_sent(rsps)
    assert status["state"] == "pending"  # never guessed as approved
    posted = comment_posted(rsps).replace("&#8203;", "")  # notes are escaped: no mention from a note
    assert "cannot read members of @acme/eng-managers" in posted
    assert "Members: read" in posted


def test_unchanged_evaluation_leaves_the_comment_alone(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root) == 0
    first = body_of(rsps.calls[5])["body"]
    rsps.reset()
    mock_pr(rsps, base, head, comments=[comment(900, first)])
    assert run(root) == 0
    assert [m for m, _ in requests_sent(rsps)] == ["GET", "GET", "GET", "GET", "POST"]  # status only


def test_changed_evaluation_edits_the_sticky_comment_in_place(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root) == 0
    first = body_of(rsps.calls[5])["body"]
    rsps.reset()
    gh = mock_pr(rsps, base, head, reviews=[review(1, "mia", "APPROVED", head)],
                 comments=[comment(7, "unrelated", login="someone", kind="User"), comment(900, first)])
    gh.team("acme", "eng-managers", ["mia"])
    gh.team("acme", "web", ["mia"])
    gh.team("acme", "qa", [])
    assert run(root) == 0
    patch = [c for c in rsps.calls if c.request.method == "PATCH"]
    assert len(patch) == 1
    assert urlsplit(patch[0].request.url or "").path == f"/repos/{REPO}/issues/comments/900"
    edited = body_of(patch[0])["body"]
    assert "Since the last evaluation" in edited and "Verdict: pending → approved" in edited
    assert ("POST", f"/repos/{REPO}/issues/5/comments") not in requests_sent(rsps)


def test_fork_pr_with_a_read_only_token_writes_the_summary_and_explains(rsps: Mock, repo: Any,
                                                                       env: dict[str, Path], tmp_path: Path,
                                                                       monkeypatch: MP,
                                                                       capsys: Capsys) -> None:
    root, base, head = repo
    gh = MockGitHub(rsps, repo=REPO)
    data = pull(5, base_sha=base, head_sha=head, head_repo="stranger/flags", requested_teams=["eng-managers"])
    gh.pull(data, files=[file_entry("flags/dark_mode.yaml")])
    rsps.add(responses.POST, wire(f"{API}/repos/{REPO}/statuses/{head}"), json=error_body(NOT_ACCESSIBLE),
             status=403)
    payload = event("pull_request.synchronize", number=5, pull_request={"number": 5})
    (tmp_path / "event.json").write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    assert cli.main(["check", "--checkout", str(root)]) == 2
    err = capsys.readouterr().err
    assert "statuses: write" in err and "fork" in err and "pull_request_target" in err
    summary = env["summary"].read_text()
    assert "pull\\_request\\_target" in summary  # the instructions, escaped as Markdown
    assert "gitops-flags: pending" in summary and "`dark_mode`" in summary
    assert [m for m, _ in requests_sent(rsps)][-1] == "POST"  # nothing written after the refused write


def test_invalid_flag_fails_with_annotations(rsps: Mock, repo: Any, monkeypatch: MP,
                                             capsys: Capsys) -> None:
    root, base, _ = repo
    (root / "flags" / "dark_mode.yaml").write_text(FLAG % "maybe")
    git(root, "commit", "-q", "-am", "broken")
    head = git(root, "rev-parse", "HEAD")
    mock_pr(rsps, base, head)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run(root) == 1
    out = capsys.readouterr().out
    assert re.search(r"^::error file=flags/dark_mode\.yaml,line=\d+", out, flags=re.M)
    status = status_sent(rsps)
    assert status["state"] == "failure"
    posted = comment_posted(rsps)
    assert f"/{REPO}/blob/{head}/flags/dark_mode.yaml#L" in posted  # problems link to the line at head


def test_fail_on_pending(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root, "--fail-on-pending") == 1


def test_fail_on_pending_from_the_action_input(rsps: Mock, repo: Any, monkeypatch: MP) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    monkeypatch.setenv("INPUT_FAIL-ON-PENDING", "true")
    assert run(root) == 1


def test_a_pr_without_flag_changes_gets_a_success_status_and_no_comment(rsps: Mock, repo: Any) -> None:
    root, base, _ = repo
    git(root, "checkout", "-q", "-b", "docs", base)
    (root / "README.md").write_text("docs\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "docs")
    head = git(root, "rev-parse", "HEAD")
    mock_pr(rsps, base, head, files=("README.md",))
    assert run(root) == 0
    assert status_sent(rsps)["state"] == "success"
    assert status_sent(rsps)["description"] == "Approved: No flag, schema or governance changes."
    assert ("POST", f"/repos/{REPO}/issues/5/comments") not in requests_sent(rsps)


def test_rejected_exits_1(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    gh = mock_pr(rsps, base, head, reviews=[review(1, "mia", "CHANGES_REQUESTED", head)])
    gh.team("acme", "eng-managers", ["mia"])
    gh.team("acme", "web", ["mia"])
    gh.team("acme", "qa", [])
    assert run(root) == 1
    status = status_sent(rsps)
    assert status["state"] == "failure"


def test_dry_run_posts_nothing_and_prints_comment_and_status(rsps: Mock, repo: Any,
                                                             capsys: Capsys) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root, "--dry-run") == 0
    assert all(m == "GET" for m, _ in requests_sent(rsps))
    out = capsys.readouterr().out
    assert "commit status (gitops-flags: main)" in out and "pending" in out
    assert render.MARKER in out


def test_too_many_files_posts_an_error_status(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head, changed_files=4000, files=tuple(f"flags/f{i}.yaml" for i in range(3000)))
    assert run(root) == 1
    status = status_sent(rsps)
    assert status["state"] == "error"
    assert status["description"].startswith("Error: pull request #5 changes 4000 files but GitHub lists only")
    assert "Split the pull request" in comment_posted(rsps)


def test_without_local_objects_files_come_from_the_contents_api_at_base_and_head(
        rsps: Mock, repo: Any, tmp_path: Path) -> None:
    root, base, head = repo
    trees = {sha: {p: git(root, "show", f"{sha}:{p}").encode() + b"\n" for p in
                   git(root, "ls-tree", "-r", "--name-only", sha).splitlines()} for sha in (base, head)}
    mock_pr(rsps, base, head)
    reads: list[tuple[str, str]] = []

    def contents(request: Any) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        path = unquote(url.path.split("/contents/", 1)[1]).rstrip("/")
        ref = parse_qs(url.query)["ref"][0]
        reads.append((path, ref))
        files = trees[ref]
        if path in files:
            return 200, {}, json.dumps(content_file(path, files[path]))
        below = sorted({(f"{path}/" if path else "") + f[len(path):].lstrip("/").split("/")[0] for f in files
                        if f.startswith(f"{path}/" if path else "")})
        if below:
            return 200, {}, json.dumps(content_dir([(p, "file" if p in files else "dir") for p in below]))
        return 404, {}, json.dumps(error_body("Not Found", 404))

    rsps.add_callback(responses.GET, re.compile(re.escape(wire(f"{API}/repos/{REPO}/contents/")) + ".*"),
                      callback=contents)
    empty = tmp_path / "not-a-clone"
    empty.mkdir()
    assert run(empty) == 0
    assert (".github/gitops-flags.yml", base) in reads
    assert ("flags/dark_mode.yaml", head) in reads and ("flags/dark_mode.yaml", base) in reads
    # the policy and CODEOWNERS are never read at the head
    assert not [r for r in reads if r[1] == head and r[0].startswith(".github/")]
    status = status_sent(rsps)
    assert status["state"] == "pending"


def test_workflow_dispatch_input_selects_the_pr(rsps: Mock, repo: Any, tmp_path: Path,
                                                monkeypatch: MP) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    (tmp_path / "event.json").write_text(json.dumps(event("workflow_dispatch", inputs={"pr": "5"})))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "workflow_dispatch")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    assert cli.main(["check", "--checkout", str(root)]) == 0
    assert requests_sent(rsps)[0] == ("GET", f"/repos/{REPO}/pulls/5")


def test_comment_on_a_plain_issue_does_nothing(rsps: Mock, tmp_path: Path,
                                               monkeypatch: MP) -> None:
    (tmp_path / "event.json").write_text(json.dumps(event("issue_comment.created.on-issue")))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    assert cli.main(["check"]) == 0
    assert len(rsps.calls) == 0


def test_push_event_cannot_run(tmp_path: Path, monkeypatch: MP) -> None:
    (tmp_path / "event.json").write_text(json.dumps(event("push")))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    assert cli.main(["check"]) == 2


def test_bad_token_cannot_run(rsps: Mock, repo: Any, capsys: Capsys) -> None:
    root, _, _ = repo
    rsps.add(responses.GET, wire(f"{API}/repos/{REPO}/pulls/5"), json=error_body("Bad credentials", 401),
             status=401)
    assert run(root) == 2
    assert "rejected the token" in capsys.readouterr().err


# --- events (pure) --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_name", "overrides", "expected"),
    [
        ("pull_request.opened", "pull_request", {}, PullTarget(2, "pull_request.opened")),
        ("pull_request.synchronize", "pull_request", {}, PullTarget(2, "pull_request.synchronize")),
        ("pull_request.opened", "pull_request_target", {"action": "reopened"},
         PullTarget(2, "pull_request_target.reopened")),
        ("pull_request.opened", "pull_request", {"action": "labeled"}, PullTarget(2, "pull_request.labeled")),
        ("pull_request.opened", "pull_request", {"action": "edited", "changes": {"base": {"ref": {}}}},
         PullTarget(2, "pull_request.edited")),
        ("pull_request.opened", "pull_request", {"action": "edited", "changes": {"title": {"from": "x"}}},
         Skip("pull_request.edited: only the title or body changed")),
        ("pull_request.closed.merged", "pull_request", {}, Skip("pull_request.closed: nothing to evaluate")),
        ("pull_request_review.submitted", "pull_request_review", {},
         PullTarget(2, "pull_request_review.submitted")),
        ("pull_request_review.dismissed", "pull_request_review", {},
         PullTarget(2, "pull_request_review.dismissed")),
        ("issue_comment.created", "issue_comment", {}, PullTarget(7, "issue_comment.created")),
        ("issue_comment.created.on-issue", "issue_comment", {},
         Skip("issue_comment.created: a comment on an issue, not on a pull request")),
        ("workflow_dispatch", "workflow_dispatch", {"inputs": {"pull_request": "#12"}},
         PullTarget(12, "workflow_dispatch")),
    ],
)
def test_target_from_event(name: str, event_name: str, overrides: dict[str, Any], expected: object) -> None:
    payload = event(name)
    payload.update(overrides)
    assert actions_env.target_from_event(event_name, payload) == expected


def test_target_from_event_refuses_events_without_a_pr() -> None:
    with pytest.raises(GitopsFlagsError, match="not about one"):
        actions_env.target_from_event("push", event("push"))
    with pytest.raises(GitopsFlagsError, match="needs an input `pr`"):
        actions_env.target_from_event("workflow_dispatch", event("workflow_dispatch"))


def test_output_text_uses_a_heredoc_for_multiline_values() -> None:
    text = actions_env.output_text({"verdict": "pending", "changes": "[1,\n2]"}, delimiter="EOF_X")
    assert text == "verdict=pending\nchanges<<EOF_X\n[1,\n2]\nEOF_X\n"
    with pytest.raises(ValueError):
        actions_env.output_text({"x": "a\nEOF_X"}, delimiter="EOF_X")


# --- request budget, PR states --------------------------------------------------------------------------


def test_first_run_with_a_review_request_stays_at_six_requests(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head, requested_teams=[], comment_count=0)  # a fresh PR: no comments yet
    assert run(root) == 0
    assert requests_sent(rsps) == [
        ("GET", f"/repos/{REPO}/pulls/5"),
        ("GET", f"/repos/{REPO}/pulls/5/reviews"),
        ("GET", f"/repos/{REPO}/pulls/5/files"),
        ("POST", f"/repos/{REPO}/statuses/{head}"),
        ("POST", f"/repos/{REPO}/issues/5/comments"),
        ("POST", f"/repos/{REPO}/pulls/5/requested_reviewers"),
    ]


def test_a_closed_pr_is_left_alone(rsps: Mock, repo: Any, capsys: Capsys) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head, state="closed")
    assert run(root) == 0
    assert requests_sent(rsps) == [("GET", f"/repos/{REPO}/pulls/5")]
    assert "pull request #5 is closed" in capsys.readouterr().out


def test_a_draft_pr_is_evaluated_but_nobody_is_asked_yet(rsps: Mock, repo: Any, capsys: Capsys) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head, requested_teams=[], draft=True)
    assert run(root) == 0
    methods = [(m, p) for m, p in requests_sent(rsps) if m != "GET"]
    assert methods == [("POST", f"/repos/{REPO}/statuses/{head}"),
                       ("POST", f"/repos/{REPO}/issues/5/comments")]
    assert status_sent(rsps)["state"] == "pending"
    assert "requested once it is ready for review" in capsys.readouterr().out


# --- the sticky comment ---------------------------------------------------------------------------------


def test_the_sticky_comment_on_page_three_is_found_and_left_alone_when_unchanged(rsps: Mock,
                                                                                 repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root) == 0
    first = comment_posted(rsps)
    rsps.reset()
    chatter = [comment(i, f"+1 number {i}", login=f"user{i}", kind="User") for i in range(1, 231)]
    mock_pr(rsps, base, head, comments=[*chatter, comment(900, first)])
    assert run(root) == 0
    listed = [p for m, p in requests_sent(rsps) if p.endswith("/comments")]
    assert listed == [f"/repos/{REPO}/issues/5/comments"] * 3
    assert [m for m, _ in requests_sent(rsps)][-1] == "POST" and "/statuses/" in requests_sent(rsps)[-1][1]


def test_a_copied_marker_from_the_author_is_not_taken_for_the_tools_comment(rsps: Mock, repo: Any) -> None:
    root, base, head = repo
    mock_pr(rsps, base, head)
    assert run(root) == 0
    first = comment_posted(rsps)
    rsps.reset()
    spoof = comment(5, first.replace("gitops-flags: pending", "gitops-flags: approved"), login="author",
                    kind="User", association="OWNER")  # the PR's author, even as an owner, is not trusted
    mock_pr(rsps, base, head, reviews=[review(1, "mia", "APPROVED", head)],
            comments=[spoof, comment(900, first)])
    gh = MockGitHub(rsps, repo=REPO)
    gh.team("acme", "eng-managers", ["mia"])
    gh.team("acme", "web", ["mia"])
    gh.team("acme", "qa", [])
    assert run(root) == 0
    patched = [urlsplit(c.request.url or "").path for c in rsps.calls if c.request.method == "PATCH"]
    assert patched == [f"/repos/{REPO}/issues/comments/900"]


HOSTILE = ('@everyone <script>alert(1)</script> <!-- gitops-flags:sticky --> [x](http://e.example) '
           '![i](http://e.example/i.png) | `tick` #12')


def test_hostile_text_from_the_pr_is_inert_in_every_report(rsps: Mock, repo: Any, env: dict[str, Path],
                                                           monkeypatch: MP, capsys: Capsys) -> None:
    root, base, _ = repo
    text = (FLAG % "false").replace('default_variant: "on"', f"default_variant: '::add-mask::x {HOSTILE}'")
    text = text.replace("Offers the dark colour theme.", f"'::add-mask::x {HOSTILE}'")
    (root / "flags" / "dark_mode.yaml").write_text(text)
    git(root, "commit", "-q", "-am", "hostile")
    head = git(root, "rev-parse", "HEAD")
    mock_pr(rsps, base, head)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run(root) == 1
    posted = comment_posted(rsps)
    assert posted.count(render.MARKER) == 1 and posted.startswith(render.MARKER)
    for raw in ("@everyone", "<script", "[x](", "![i]", "`tick`", "http://e.example"):
        assert raw not in posted, raw
    assert not re.search(r"(?<![&\w])#12", posted)  # no issue reference (`&#124;` is the escaped `|`)
    mentions = set(re.findall(r"(?<![\w&])@([A-Za-z0-9/_-]+)", posted))
    assert mentions <= {"acme/eng-managers", "acme/web", "acme/qa"}
    rows = [line for line in posted.splitlines() if line.startswith("| ❌")]
    assert rows and all(line.count("|") == 4 for line in rows)  # `|` from the PR split no cell
    status = status_sent(rsps)
    assert len(status["description"]) <= 140 and "\n" not in status["description"]
    out = capsys.readouterr().out
    # PR text reaches the log inert (gitops_flags.inert): the only commands are the tool's own annotations
    assert "add-mask" in out and foreign(out, "add-mask") == []
    annotations = [c for c in commands(out) if c.head.startswith("error ")]
    assert annotations and all("\n" not in a.line for a in annotations)


def test_a_rate_limited_write_puts_the_report_in_the_summary_and_exits_2(rsps: Mock, repo: Any,
                                                                        env: dict[str, Path],
                                                                        capsys: Capsys) -> None:
    root, base, head = repo
    gh = MockGitHub(rsps, repo=REPO)
    gh.pull(pull(5, base_sha=base, head_sha=head, requested_teams=["eng-managers"]),
            files=[file_entry("flags/dark_mode.yaml")])
    status, body = observed_error("primary rate limit, GITHUB_TOKEN")
    rsps.add(responses.POST, wire(f"{API}/repos/{REPO}/statuses/{head}"), json=body, status=status,
             headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 3000)})
    assert run(root) == 2
    err = capsys.readouterr().err
    assert "primary rate limit was exceeded" in err and "fork" not in err
    summary = env["summary"].read_text()
    assert "rate limit" in summary and "gitops-flags: pending" in summary


def test_enterprise_server_urls_are_used_for_every_request_and_link(rsps: Mock, repo: Any,
                                                                    monkeypatch: MP) -> None:
    root, base, head = repo
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example.com/api/v3")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://ghe.example.com")
    gh = MockGitHub(rsps, repo=REPO, api="https://ghe.example.com/api/v3")
    chatter = [comment(i, "hi", login=f"u{i}", kind="User") for i in range(150)]
    gh.pull(pull(5, base_sha=base, head_sha=head, requested_teams=["eng-managers"]),
            files=[file_entry("flags/dark_mode.yaml")], comments=chatter)
    gh.writes(5, head)
    assert run(root) == 0
    urls = [c.request.url or "" for c in rsps.calls]
    assert len(urls) == 7  # the comment list took two pages
    assert all(u.startswith("https://ghe.example.com:443/api/v3/repos/acme/flags/") for u in urls), urls
    assert status_sent(rsps)["target_url"] == "https://ghe.example.com/acme/flags/actions/runs/42"
    assert f"https://ghe.example.com/acme/flags/blob/{head}/flags/dark_mode.yaml" in comment_posted(rsps)


# --- events and outputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_name", "overrides", "expected"),
    [
        ("pull_request.opened", "pull_request", {"action": "ready_for_review"},
         PullTarget(2, "pull_request.ready_for_review")),
        ("pull_request.opened", "pull_request", {"action": "unlabeled"},
         PullTarget(2, "pull_request.unlabeled")),
        ("pull_request.synchronize", "pull_request_target", {},
         PullTarget(2, "pull_request_target.synchronize")),
        ("pull_request.opened", "pull_request_target",
         {"action": "edited", "changes": {"base": {"ref": {}}}}, PullTarget(2, "pull_request_target.edited")),
        ("pull_request.opened", "pull_request_target",
         {"action": "edited", "changes": {"body": {"from": ""}}},
         Skip("pull_request_target.edited: only the title or body changed")),
        ("pull_request.closed.not-merged", "pull_request", {},
         Skip("pull_request.closed: nothing to evaluate")),
        ("pull_request.opened", "pull_request", {"action": "converted_to_draft"},
         Skip("pull_request.converted_to_draft: nothing to evaluate")),
        ("pull_request_review.submitted", "pull_request_review", {"action": "edited"},
         PullTarget(2, "pull_request_review.edited")),
        ("issue_comment.created", "issue_comment", {"comment": {"body": render.MARKER + "\nreport"}},
         Skip("issue_comment.created: the tool's own comment")),
        ("workflow_dispatch", "workflow_dispatch", {"inputs": {"pr": " 7 "}},
         PullTarget(7, "workflow_dispatch")),
    ],
)
def test_more_events(name: str, event_name: str, overrides: dict[str, Any], expected: object) -> None:
    payload = event(name)
    payload.update(overrides)
    assert actions_env.target_from_event(event_name, payload) == expected


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_workflow_dispatch_refuses_a_bad_pr_number(value: str) -> None:
    with pytest.raises(GitopsFlagsError, match="not a pull request number"):
        actions_env.target_from_event("workflow_dispatch", event("workflow_dispatch", inputs={"pr": value}))


def test_an_unsupported_event_says_which_events_work(tmp_path: Path, monkeypatch: MP, capsys: Capsys) -> None:
    (tmp_path / "event.json").write_text(json.dumps(event("schedule")))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "schedule")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(tmp_path / "event.json"))
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert "'schedule' is not about one" in err and "workflow_dispatch" in err and "--pr N" in err


def test_output_delimiter_is_random_and_absent_from_the_value() -> None:
    first = actions_env.output_text({"changes": "a\nb"})
    second = actions_env.output_text({"changes": "a\nb"})
    pattern = r"changes<<(ghadelimiter_[0-9a-f]{16})\na\nb\n\1\n"
    m1, m2 = re.fullmatch(pattern, first), re.fullmatch(pattern, second)
    assert m1 and m2 and m1.group(1) != m2.group(1)
    assert actions_env.output_text({"verdict": "pending"}) == "verdict=pending\n"


