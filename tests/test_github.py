"""The GitHub adapter against `responses`: the requests it sends, retries, error messages, pure parsers."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from github import GithubRetry
from github_fixtures import (
    NOT_ACCESSIBLE,
    REPO,
    SECONDARY,
    WIRE,
    MockGitHub,
    body_of,
    client,
    comment,
    content_dir,
    error_body,
    example,
    file_entry,
    issue_event,
    observed_error,
    pull,
    pull_commit,
    requests_sent,
    review,
)
from responses.registries import OrderedRegistry

from gitops_flags import check, check_report, github, render
from gitops_flags.github import parse as github_parse
from gitops_flags.problems import GitopsFlagsError
from gitops_flags.reconcile import MergedPull
from gitops_flags.snapshot import Review


@pytest.fixture
def rsps() -> responses.RequestsMock:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# --- reads ----------------------------------------------------------------------------------------------


def test_pull_files_and_reviews_are_three_requests_with_per_page_100(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    data = pull(7, author="carol", labels=["requires-additional-review"], requested_reviewers=["Dave"],
                requested_teams=["QA"], changed_files=2)
    gh.pull(data, files=[file_entry("flags/a.yaml"), file_entry("flags/b.yaml", "renamed", "flags/old.yaml")],
            reviews=[review(1, "dave", "APPROVED", "1" * 40)])
    c = client()
    info = c.pull(7)
    files = c.files(info)
    reviews = c.reviews(7)
    assert requests_sent(rsps) == [
        ("GET", f"/repos/{REPO}/pulls/7"),
        ("GET", f"/repos/{REPO}/pulls/7/files"),
        ("GET", f"/repos/{REPO}/pulls/7/reviews"),
    ]
    assert "per_page=100" in (rsps.calls[1].request.url or "")
    assert info.author == "carol" and info.base_ref == "main" and info.head_sha == "1" * 40
    assert info.labels == {"requires-additional-review"}
    assert info.requested_users == {"dave"} and info.requested_teams == {"qa"}
    assert github.changed_paths(files) == ["flags/a.yaml", "flags/b.yaml", "flags/old.yaml"]
    assert reviews == [Review(1, "dave", "APPROVED", "1" * 40, "2026-11-20T10:00:00Z", False, "")]


def test_pagination_follows_the_link_header(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    paths = [f"flags/f{i:03d}.yaml" for i in range(250)]
    gh.get("/pulls/1", pull(1, changed_files=250))
    gh.pages("/pulls/1/files", [file_entry(p) for p in paths])
    c = client()
    files = c.files(c.pull(1))
    assert [f.path for f in files] == paths
    assert len(rsps.calls) == 4  # the pull + 3 pages of 100


def test_more_files_than_the_api_lists_fails_safely(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    gh.get("/pulls/1", pull(1, changed_files=3500))
    gh.pages("/pulls/1/files", [file_entry(f"flags/f{i}.yaml") for i in range(github.FILES_LIMIT)])
    c = client()
    with pytest.raises(github.TooManyFiles, match="changes 3500 files but GitHub lists only 3000"):
        c.files(c.pull(1))


def test_a_files_list_shorter_than_the_pr_fails_safely(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    gh.get("/pulls/1", pull(1, changed_files=3))
    gh.pages("/pulls/1/files", [file_entry("flags/a.yaml")])
    c = client()
    with pytest.raises(github.TooManyFiles, match="listed 1 of the 3 files"):
        c.files(c.pull(1))


def test_team_members_paginated_and_unreadable_teams_explained(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    gh.team("acme", "qa", [f"user{i}" for i in range(120)])
    gh.team("acme", "secret", status=404)
    gh.team("acme", "compliance", status=403)
    found = client().team_members(["@acme/qa", "acme/secret", "ACME/compliance"])
    assert found["acme/qa"].members is not None and len(found["acme/qa"].members) == 120
    for team in ("acme/secret", "acme/compliance"):
        assert found[team].members is None
        assert found[team].error == (
            f"cannot read members of @{team}: the token needs the 'Members: read' organization permission "
            "(GITHUB_TOKEN cannot; use a GitHub App or PAT)"
        )
    assert sorted(p for _, p in requests_sent(rsps)) == [
        "/orgs/acme/teams/compliance/members", "/orgs/acme/teams/qa/members", "/orgs/acme/teams/qa/members",
        "/orgs/acme/teams/secret/members",
    ]


def test_contents_api_tree_reads_files_lists_dirs_and_caches(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    sha = "c" * 40
    gh.content(sha, "flags/a.yaml", b"key: a\n")
    gh.content(sha, "flags/missing.yaml", None)
    listing = content_dir([("flags/a.yaml", "file"), ("flags/sub", "dir")])
    gh.get("/contents/flags", listing, query={"ref": sha})
    gh.get("/contents/flags/sub", content_dir([("flags/sub/b.yaml", "file")]), query={"ref": sha})
    tree = github.ApiTree(client(), sha)
    assert tree.read("flags/a.yaml") == b"key: a\n"
    assert tree.read("flags/a.yaml") == b"key: a\n"  # cached
    assert tree.read("flags/missing.yaml") is None
    assert list(tree.paths("flags/")) == ["flags/a.yaml", "flags/sub/b.yaml"]
    assert list(tree.paths("flags/")) == ["flags/a.yaml", "flags/sub/b.yaml"]  # cached
    assert len(rsps.calls) == 4


def test_parse_content_refuses_what_is_not_a_small_file() -> None:
    assert github.parse_content(content_dir([("flags/a.yaml", "file")]), "flags") is None
    symlink = example("repos--get-content.content-file-response-if-content-is-a-symlink")
    assert github.parse_content(symlink, "x") is None
    big = example("repos--get-content.vnd.github.object.content-file-response-if-content-is-a-file",
                  encoding="none", content="", size=5_000_000)
    with pytest.raises(github.GitHubError, match="too large"):
        github.parse_content(big, "flags/big.yaml")


def test_enterprise_server_base_url_is_used() -> None:
    with responses.RequestsMock() as rsps:
        gh = MockGitHub(rsps, api="https://ghe.example.com/api/v3")
        gh.get("/pulls/3", pull(3))
        info = client(api="https://ghe.example.com/api/v3").pull(3)
        assert rsps.calls[0].request.url == f"https://ghe.example.com:443/api/v3/repos/{REPO}/pulls/3"
    assert info.number == 3


# --- retries --------------------------------------------------------------------------------------------


def test_retries_a_502_then_succeeds() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/pulls/1"
        rsps.add(responses.GET, url, json=error_body("Server Error", 502), status=502)
        rsps.add(responses.GET, url, json=error_body("Server Error", 502), status=502)
        rsps.add(responses.GET, url, json=pull(1))
        info = client().pull(1)
        assert len(rsps.calls) == 3
    assert info.number == 1


def test_retries_a_secondary_rate_limit_with_retry_after() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/statuses/{'1' * 40}"
        rsps.add(responses.POST, url, json=error_body(SECONDARY), status=403, headers={"Retry-After": "1"})
        rsps.add(responses.POST, url, json=example("repos--create-commit-status"), status=201)
        client().create_status("1" * 40, "pending", "Pending", "gitops-flags: main", None)
        assert len(rsps.calls) == 2
        assert body_of(rsps.calls[1]) == {"state": "pending", "description": "Pending",
                                          "context": "gitops-flags: main"}


def test_retries_a_secondary_rate_limit_message_without_header() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/pulls/1"
        rsps.add(responses.GET, url, json=error_body(SECONDARY), status=403)
        rsps.add(responses.GET, url, json=pull(1))
        client().pull(1)
        assert len(rsps.calls) == 2


def test_gives_up_after_the_retry_total() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/pulls/1"
        for _ in range(4):
            rsps.add(responses.GET, url, json=error_body("Bad Gateway", 502), status=502)
        with pytest.raises(github.GitHubError, match="cannot read pull request #1"):
            client(retry=GithubRetry(total=3, backoff_factor=0)).pull(1)
        assert len(rsps.calls) == 4


# --- errors ---------------------------------------------------------------------------------------------


def test_401_names_the_token(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{WIRE}/repos/{REPO}/pulls/1", json=error_body("Bad credentials", 401),
             status=401)
    with pytest.raises(github.GitHubError, match=r"rejected the token.*github-token input or GITHUB_TOKEN"):
        client().pull(1)


def test_404_names_the_read_permission(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.GET, f"{WIRE}/repos/{REPO}/pulls/1", json=error_body("Not Found", 404), status=404)
    with pytest.raises(github.GitHubError, match=r"404 Not Found.*'pull-requests: read'"):
        client().pull(1)


@pytest.mark.parametrize(
    ("call", "method", "path", "permission"),
    [
        (lambda c: c.create_status("1" * 40, "success", "ok", "ctx", None), "POST", f"/statuses/{'1' * 40}",
         "statuses: write"),
        (lambda c: c.create_comment(1, "hi"), "POST", "/issues/1/comments", "pull-requests: write"),
        (lambda c: c.edit_comment(5, "hi"), "PATCH", "/issues/comments/5", "pull-requests: write"),
    ],
)
def test_403_on_a_write_names_the_missing_permission(rsps: responses.RequestsMock, call, method, path,  # type: ignore[no-untyped-def]
                                                      permission) -> None:
    rsps.add(method, f"{WIRE}/repos/{REPO}{path}", json=error_body(NOT_ACCESSIBLE), status=403)
    with pytest.raises(github.WriteForbidden, match=f"403 \\({NOT_ACCESSIBLE}\\).*'{permission}'"):
        call(client())
    assert len(rsps.calls) == 1  # a permission 403 is not retried


def test_review_request_422_is_a_warning_not_a_failure(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, f"{WIRE}/repos/{REPO}/pulls/1/requested_reviewers", status=422,
             json={"message": "Reviews may only be requested from collaborators.", "documentation_url": "x"})
    warning = client().request_reviewers(1, ["stranger"], [])
    assert warning is not None and "collaborators" in warning
    assert body_of(rsps.calls[0]) == {"reviewers": ["stranger"], "team_reviewers": []}


# --- writes ---------------------------------------------------------------------------------------------


def test_write_bodies(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    gh.writes(1, "1" * 40, comment_id=55)
    c = client()
    assert c.create_comment(1, "body one") == 1001
    c.edit_comment(55, "body two")
    c.create_status("1" * 40, "failure", "Rejected", "gitops-flags: main", "https://github.com/run/1")
    c.request_reviewers(1, ["alice"], ["qa"])
    assert [(m, p) for m, p in requests_sent(rsps)] == [
        ("POST", f"/repos/{REPO}/issues/1/comments"),
        ("PATCH", f"/repos/{REPO}/issues/comments/55"),
        ("POST", f"/repos/{REPO}/statuses/{'1' * 40}"),
        ("POST", f"/repos/{REPO}/pulls/1/requested_reviewers"),
    ]
    assert [body_of(call) for call in rsps.calls] == [
        {"body": "body one"},
        {"body": "body two"},
        {"state": "failure", "description": "Rejected", "context": "gitops-flags: main",
         "target_url": "https://github.com/run/1"},
        {"reviewers": ["alice"], "team_reviewers": ["qa"]},
    ]


# --- pure helpers ---------------------------------------------------------------------------------------


def test_find_sticky_trusts_bots_and_members_but_not_the_author_or_strangers() -> None:
    marker = render.MARKER + "\nx"
    comments = [github.parse_comment(c) for c in (
        comment(1, "plain", login="alice", kind="User", association="MEMBER"),
        comment(2, marker, login="author", kind="User", association="MEMBER"),  # the PR author: spoofable
        comment(3, marker, login="drive-by", kind="User", association="NONE"),
        comment(4, marker),  # github-actions[bot]
        comment(5, marker),
    )]
    assert check_report.find_sticky(comments, "author") == comments[3]
    pat = [github.parse_comment(comment(9, marker, login="ops", kind="User", association="COLLABORATOR"))]
    assert check_report.find_sticky(pat, "author") == pat[0]
    assert check_report.find_sticky(comments[:3], "author") is None


def test_review_requests_skip_requested_reviewed_author_and_foreign_teams() -> None:
    info = github.parse_pull(pull(1, author="carol", requested_reviewers=["dave"], requested_teams=["qa"]))
    reviews = [Review(1, "Erin", "COMMENTED", "x")]
    users, teams = check_report.review_requests(
        ["carol", "dave", "erin", "frank", "octo-org/qa", "octo-org/compliance", "other-org/sec", "frank"],
        info, reviews, "octo-org")
    assert users == ["frank"]
    assert teams == ["compliance"]


def test_next_link() -> None:
    assert github_parse.next_link({"link": '<https://api.github.com/x?page=2>; rel="next", '
                                     '<https://api.github.com/x?page=5>; rel="last"'}) == (
        "https://api.github.com/x?page=2")
    assert github_parse.next_link({"link": '<https://api.github.com/x?page=1>; rel="prev"'}) is None
    assert github_parse.next_link({}) is None


def test_fork_detection() -> None:
    assert github.parse_pull(pull(1, head_repo="someone/flags")).from_fork
    assert not github.parse_pull(pull(1)).from_fork


def test_teams_are_only_read_once_someone_reviewed() -> None:
    needed = {"acme/qa"}
    assert check.teams_to_read(needed, [], "carol", False) == set()
    assert check.teams_to_read(needed, [Review(1, "carol", "APPROVED", "x")], "carol", False) == set()
    assert check.teams_to_read(needed, [Review(1, "carol", "APPROVED", "x")], "carol", True) == needed
    assert check.teams_to_read(needed, [Review(1, "dan", "COMMENTED", "x")], "carol", False) == set()
    requested = [Review(1, "dan", "CHANGES_REQUESTED", "x")]
    assert check.teams_to_read(needed, requested, "carol", False) == needed


# --- merged pulls (the `apply` port) --------------------------------------------------------------------


def test_merged_pull_of_prefers_the_pr_whose_merge_commit_it_is() -> None:
    open_pr = example("repos--list-pull-requests-associated-with-commit", number=1, merged_at=None)
    listed = "repos--list-pull-requests-associated-with-commit"
    other = example(listed, number=2, merged_at="2026-11-01T00:00:00Z", merge_commit_sha="b" * 40)
    mine = example(listed, number=3, merged_at="2026-11-02T00:00:00Z", merge_commit_sha="a" * 40)
    assert github.merged_pull_of([open_pr, other, mine], "a" * 40) == mine
    assert github.merged_pull_of([open_pr, other], "a" * 40) == other  # an earlier commit of a rebase merge
    assert github.merged_pull_of([open_pr], "a" * 40) is None  # a direct push


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def test_merged_pulls_finds_and_evaluates_a_merged_pr(rsps: responses.RequestsMock, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / ".github").mkdir(parents=True)
    (root / ".github" / "gitops-flags.yml").write_text(
        "version: 1\nenvironments: [production]\nroles: {boss: [ann]}\n"
        "rules: [{match: {kind: flag}, workflow: w}]\nworkflows: {w: {steps: [{id: ok, role: boss}]}}\n")
    (root / "flags").mkdir()
    flag = ('key: f\ntype: boolean\nvariants: {"on": true, "off": false}\ndefault_variant: "on"\n'
            "environments: {production: {enabled: %s}}\n")
    (root / "flags" / "f.yaml").write_text(flag % "true")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    (root / "flags" / "f.yaml").write_text(flag % "false")
    git(root, "commit", "-q", "-am", "head")
    head = git(root, "rev-parse", "HEAD")
    merge = "d" * 40
    merged = example("repos--list-pull-requests-associated-with-commit", number=9, merge_commit_sha=merge,
                     merged_at="2026-11-02T00:00:00Z", user={"login": "carol"},
                     head={"sha": head}, base={"sha": base, "ref": "master"})
    gh = MockGitHub(rsps)
    gh.get(f"/commits/{merge}/pulls", [merged], query={"per_page": "100"})
    gh.pages("/pulls/9/reviews", [review(1, "ann", "APPROVED", head)])
    gh.pages("/pulls/9/files", [file_entry("flags/f.yaml")])
    gh.pages("/issues/9/events", [])
    source = github.MergedPulls(client(), root)
    found = source.pull_for_commit(merge)
    assert found == MergedPull(9, merged["html_url"], "carol", head, base, merge)
    evaluation = source.evaluate(found)
    assert evaluation.verdict == "approved"
    assert evaluation.changes[0].steps[0].approved_by == ("ann",)
    assert requests_sent(rsps) == [
        ("GET", f"/repos/{REPO}/commits/{merge}/pulls"),
        ("GET", f"/repos/{REPO}/pulls/9/reviews"),
        ("GET", f"/repos/{REPO}/pulls/9/files"),
        ("GET", f"/repos/{REPO}/issues/9/events"),  # a review counts: was the base changed since?
    ]


def test_merged_pull_of_ignores_prs_merged_into_another_branch() -> None:
    listed = "repos--list-pull-requests-associated-with-commit"
    into_main = example(listed, number=4, merged_at="2026-11-02T00:00:00Z", merge_commit_sha="a" * 40)
    into_release = copy.deepcopy(into_main)
    into_release["number"] = 5
    into_release["base"]["ref"] = "release-1"
    into_release["base"]["repo"]["default_branch"] = "main"
    into_main["base"]["ref"] = "main"
    into_main["base"]["repo"]["default_branch"] = "main"
    assert github.merged_pull_of([into_release], "a" * 40) is None
    assert github.merged_pull_of([into_release, into_main], "a" * 40) == into_main


# --- rate limits, with GitHub's real error bodies -------------------------------------------------------


def _reset_in(seconds: int) -> str:
    import time

    return str(int(time.time()) + seconds)


@pytest.mark.parametrize("case", ["secondary rate limit (403), recent wording",
                                  "secondary rate limit (403), older wording",
                                  "secondary rate limit on content creation"])
@pytest.mark.parametrize("retry_after", [None, "1"])
def test_secondary_rate_limits_in_every_observed_wording_are_retried(case: str,
                                                                     retry_after: str | None) -> None:
    status, body = observed_error(case)
    headers = {"Retry-After": retry_after} if retry_after else {}
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/issues/1/comments"
        rsps.add(responses.POST, url, json=body, status=status, headers=headers)
        rsps.add(responses.POST, url, json=example("issues--create-comment", id=77), status=201)
        assert client().create_comment(1, "x") == 77
        assert len(rsps.calls) == 2


def test_primary_rate_limit_with_a_distant_reset_fails_at_once_and_clearly() -> None:
    status, body = observed_error("primary rate limit, GITHUB_TOKEN")
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "1000",
               "x-ratelimit-reset": _reset_in(3600)}
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as rsps:
        for _ in range(5):
            rsps.add(responses.POST, f"{WIRE}/repos/{REPO}/statuses/{'1' * 40}", json=body, status=status,
                     headers=headers)
        with pytest.raises(github.GitHubError) as info:
            client().create_status("1" * 40, "pending", "Pending", "gitops-flags: main", None)
        assert len(rsps.calls) == 1  # no spinning: the wait exceeds the policy's maximum
    assert not isinstance(info.value, github.WriteForbidden)  # not a permission problem: no fork advice
    text = str(info.value)
    assert "primary rate limit was exceeded" in text and "It resets at" in text and "UTC" in text
    assert "longer than this job waits" in text


def test_primary_rate_limit_that_resets_now_is_retried() -> None:
    status, body = observed_error("primary rate limit, unauthenticated")
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/pulls/1"
        rsps.add(responses.GET, url, json=body, status=status,
                 headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": _reset_in(-5)})
        rsps.add(responses.GET, url, json=pull(1))
        assert client().pull(1).number == 1
        assert len(rsps.calls) == 2


def test_a_retry_after_longer_than_the_maximum_wait_is_refused_at_once() -> None:
    status, body = observed_error("secondary rate limit (403), older wording")
    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=False) as rsps:
        for _ in range(5):
            rsps.add(responses.GET, f"{WIRE}/repos/{REPO}/pulls/1", json=body, status=status,
                     headers={"Retry-After": "3600"})
        with pytest.raises(github.GitHubError, match="asks to wait 3600 s, longer than this job waits"):
            client().pull(1)
        assert len(rsps.calls) == 1


def test_429_without_retry_after_fails_clearly_and_with_it_is_retried() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/pulls/1"
        rsps.add(responses.GET, url, json=error_body("API rate limit exceeded for installation.", 429),
                 status=429, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": _reset_in(600)})
        with pytest.raises(github.GitHubError, match=r"primary rate limit was exceeded \(429 .*It resets at"):
            client().pull(1)
        assert len(rsps.calls) == 1
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        rsps.add(responses.GET, url, json=error_body("Too many requests", 429), status=429,
                 headers={"Retry-After": "1"})
        rsps.add(responses.GET, url, json=pull(1))
        assert client().pull(1).number == 1
        assert len(rsps.calls) == 2


def test_editing_the_comment_is_retried_like_the_other_writes() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        url = f"{WIRE}/repos/{REPO}/issues/comments/5"
        rsps.add(responses.PATCH, url, json=error_body("Bad Gateway", 502), status=502)
        status, body = observed_error("secondary rate limit (403), recent wording")
        rsps.add(responses.PATCH, url, json=body, status=status)
        rsps.add(responses.PATCH, url, json=example("issues--update-comment", id=5))
        client().edit_comment(5, "new body")
        assert len(rsps.calls) == 3
        assert body_of(rsps.calls[2]) == {"body": "new body"}


def test_exhausted_retries_say_so() -> None:
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        for _ in range(4):
            rsps.add(responses.GET, f"{WIRE}/repos/{REPO}/pulls/1/reviews", json=error_body("x", 503),
                     status=503)
        expected = (r"cannot list the reviews of #1: GitHub kept failing, and the retries ran out "
                    r"\(too many 503 error responses\)")
        with pytest.raises(github.GitHubError, match=expected):
            client().reviews(1)


# --- pagination -----------------------------------------------------------------------------------------


def test_250_reviews_come_from_three_pages(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    gh.pages("/pulls/1/reviews", [review(i, f"user{i}", "APPROVED", "1" * 40) for i in range(250)])
    reviews = client().reviews(1)
    assert [r.id for r in reviews] == list(range(250))
    assert [p for _, p in requests_sent(rsps)] == [f"/repos/{REPO}/pulls/1/reviews"] * 3
    assert [dict(parse_qsl(urlsplit(c.request.url or "").query)) for c in rsps.calls] == [
        {"per_page": "100"}, {"per_page": "100", "page": "2"}, {"per_page": "100", "page": "3"}]


def test_the_sticky_comment_is_found_on_page_three(rsps: responses.RequestsMock) -> None:
    gh = MockGitHub(rsps)
    chatter = [comment(i, f"comment {i}", login=f"user{i}", kind="User", association="NONE")
               for i in range(1, 231)]
    gh.pages("/issues/1/comments", [*chatter, comment(999, render.MARKER + "\nold report")])
    found = check_report.find_sticky(client().comments(1), "author")
    assert found is not None and found.id == 999
    assert len(rsps.calls) == 3


def test_enterprise_server_pagination_stays_on_the_enterprise_host() -> None:
    api = "https://ghe.example.com/api/v3"
    with responses.RequestsMock() as rsps:
        gh = MockGitHub(rsps, api=api)
        gh.pull(pull(3, changed_files=150), files=[file_entry(f"flags/f{i}.yaml") for i in range(150)],
                reviews=[review(i, f"u{i}", "COMMENTED", "1" * 40) for i in range(101)],
                comments=[comment(i, "hi") for i in range(120)])
        gh.team("octo-org", "qa", [f"m{i}" for i in range(101)])
        c = client(api=api)
        info = c.pull(3)
        assert len(c.files(info)) == 150 and len(c.reviews(3)) == 101 and len(c.comments(3)) == 120
        assert len(c.team_members(["octo-org/qa"])["octo-org/qa"].members or ()) == 101
        urls = [c.request.url or "" for c in rsps.calls]
    assert len(urls) == 9  # the pull, then two pages each of files, reviews, comments and team members
    assert all(u.startswith("https://ghe.example.com:443/api/v3/") for u in urls), urls


# --- review requests ------------------------------------------------------------------------------------


def test_review_requests_are_case_insensitive_and_never_the_author() -> None:
    info = github.parse_pull(pull(1, author="Carol", requested_reviewers=["Dave"]))
    reviews = [Review(1, "ERIN", "APPROVED", "x")]
    users, teams = check_report.review_requests(
        ["carol", "CAROL", "dave", "erin", "Frank", "frank", "@octo-org/QA", "octo-org/qa"], info, reviews,
        "Octo-Org")
    assert users == ["Frank"]
    assert teams == ["QA"]


def test_a_422_for_a_team_still_requests_the_users(rsps: responses.RequestsMock) -> None:
    url = f"{WIRE}/repos/{REPO}/pulls/1/requested_reviewers"
    unresolvable = {"message": "Validation Failed", "errors": [
        "Could not resolve to a node with the global id of 'T_kwDOAGhwUs4BIPhU'."],
        "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request"}
    with responses.RequestsMock(registry=OrderedRegistry) as ordered:
        ordered.add(responses.POST, url, json=unresolvable, status=422)
        ordered.add(responses.POST, url, json=example("pulls--request-reviewers"), status=201)
        warning = client().request_reviewers(1, ["alice"], ["qa"])
        assert [body_of(c) for c in ordered.calls] == [
            {"reviewers": ["alice"], "team_reviewers": ["qa"]},
            {"reviewers": ["alice"], "team_reviewers": []},
        ]
    assert warning is not None and "teams qa not requested" in warning and "Members: read" in warning


def test_write_pause_defaults_to_one_second_and_is_configurable() -> None:
    assert github.write_pause({}) == 1.0
    assert github.write_pause({"GITOPS_FLAGS_WRITE_PAUSE": "0.5"}) == 0.5
    assert github.write_pause({"GITOPS_FLAGS_WRITE_PAUSE": "0"}) is None
    for bad in ("soon", "-1", "nan"):
        with pytest.raises(GitopsFlagsError, match="GITOPS_FLAGS_WRITE_PAUSE"):
            github.write_pause({"GITOPS_FLAGS_WRITE_PAUSE": bad})


def test_the_last_base_change_comes_from_the_issue_events() -> None:
    events = [issue_event(1, "labeled", "ann", "2026-11-20T09:00:00Z"),
              issue_event(2, "base_ref_changed", "eve", "2026-11-20T10:00:00Z"),
              issue_event(3, "automatic_base_change_succeeded", "ghost", "2026-11-20T12:00:00Z"),
              issue_event(4, "head_ref_force_pushed", "eve", "2026-11-20T13:00:00Z")]
    assert github_parse.base_changed_at(events[:2]) == "2026-11-20T10:00:00Z"
    assert github_parse.base_changed_at(events) == "2026-11-20T12:00:00Z"
    assert github_parse.base_changed_at(events[:1]) is None


def test_the_last_pushers_are_the_head_commits_accounts_and_later_force_pushers() -> None:
    head = "a" * 40
    commits = [pull_commit("b" * 40, "ann", "ann"),
               pull_commit(head, " Eve", "web-flow", "2026-11-20T10:00:00Z")]
    assert github_parse.last_pushers(commits, head, []) == {"eve"}
    forced = [issue_event(1, "head_ref_force_pushed", "Mallory", "2026-11-20T11:00:00Z"),
              issue_event(2, "head_ref_force_pushed", "old", "2026-11-20T09:00:00Z")]
    assert github_parse.last_pushers(commits, head, forced) == {"eve", "mallory"}
    assert github_parse.last_pushers(commits[:1], head, forced) is None  # the head is not listed: unknown
