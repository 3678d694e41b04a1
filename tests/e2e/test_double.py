"""The GitHub double itself: shapes, pagination, errors, git-backed state, faults, recording.

If the double drifted from GitHub, the lifecycle tests would prove nothing; these tests pin what it
promises, through plain HTTP and through the product's own PyGithub-based client.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gitops_flags import github
from gitops_flags.store import open_store
from gitops_flags.store.github_branch import git_blob_sha
from gitops_flags.store.state import StoreState

from .github_double import ApiError, GitHubDouble, load_example, observed_error

REPO = "/repos/acme/flags"


@pytest.fixture
def http(double: GitHubDouble) -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # never a proxy from the environment
    session.headers["Authorization"] = f"token {double.token}"
    yield session
    session.close()


def get(http: requests.Session, double: GitHubDouble, path: str, **params: Any) -> requests.Response:
    return http.get(double.api_url + path, params=params, timeout=10)


def client(double: GitHubDouble) -> github.GitHubClient:
    return github.GitHubClient(github.connect(double.api_url, double.token, pauses=False), double.full_name)


def seeded(double: GitHubDouble) -> None:
    double.team("web", ["mira", "wendy"])
    double.commit("main", {"README.md": "hello\n", "flags/a.yaml": "key: a\n", "flags/old.yaml": "key: old\n",
                           "flags/gone.yaml": "key: gone\n"}, "init", "pat")


def test_a_pull_request_is_computed_from_git(double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {
        "flags/a.yaml": "key: a\nname: A\n", "flags/new.yaml": "key: n\n", "flags/gone.yaml": None,
        "flags/old.yaml": None, "flags/moved.yaml": "key: old\n"}, "Change flags")
    body = get(http, double, f"{REPO}/pulls/1").json()
    assert set(load_example("examples", "pulls--get")) <= set(body)  # every documented field is there
    assert (body["head"]["sha"], body["base"]["sha"]) == (pr.head_sha, double.branch_sha("main"))
    assert body["user"]["login"] == "alice" and body["changed_files"] == 4
    assert body["url"] == f"{double.api_url}{REPO}/pulls/1"
    files = {f["filename"]: f for f in get(http, double, f"{REPO}/pulls/1/files").json()}
    assert {name: f["status"] for name, f in files.items()} == {
        "flags/a.yaml": "modified", "flags/new.yaml": "added", "flags/gone.yaml": "removed",
        "flags/moved.yaml": "renamed"}
    assert files["flags/moved.yaml"]["previous_filename"] == "flags/old.yaml"
    assert files["flags/a.yaml"]["additions"] == 1

    # contents at any commit: the file at the head, absent at the base, a directory listing
    at_head = get(http, double, f"{REPO}/contents/flags/new.yaml", ref=pr.head_sha).json()
    assert base64.b64decode(at_head["content"]) == b"key: n\n" and at_head["encoding"] == "base64"
    assert get(http, double, f"{REPO}/contents/flags/new.yaml", ref=pr.base_sha).status_code == 404
    listing = get(http, double, f"{REPO}/contents/flags", ref=pr.head_sha).json()
    assert sorted(e["path"] for e in listing) == ["flags/a.yaml", "flags/moved.yaml", "flags/new.yaml"]
    assert {e["type"] for e in listing} == {"file"}

    # the same through the product's client
    c = client(double)
    info = c.pull(1)
    assert [f.path for f in c.files(info)] == sorted(files)
    assert c.contents(pr.head_sha, "flags/a.yaml") == b"key: a\nname: A\n"


def test_lists_page_with_link_headers(double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")
    for i in range(65):
        double.review(1, f"user{i}", "COMMENTED")
    first = get(http, double, f"{REPO}/pulls/1/reviews", per_page=30)
    assert len(first.json()) == 30
    assert first.links["next"]["url"].endswith("per_page=30&page=2")
    assert first.links["last"]["url"].endswith("page=3")
    assert "prev" not in first.links
    last = http.get(first.links["last"]["url"], timeout=10)
    assert len(last.json()) == 5 and set(last.links) == {"prev", "first"}
    assert "link" not in get(http, double, f"{REPO}/pulls/1/reviews", per_page=100).headers
    assert len(get(http, double, f"{REPO}/pulls/1/reviews", per_page=500).json()) == 65  # capped at 100
    assert len(client(double).reviews(1)) == 65  # the product follows the links


def test_errors_have_githubs_bodies(double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")
    missing = get(http, double, f"{REPO}/pulls/9")
    assert missing.status_code == 404
    assert set(missing.json()) == {"message", "documentation_url", "status"}
    assert missing.json()["message"] == "Not Found" and missing.json()["status"] == "404"
    bad = requests.get(double.api_url + f"{REPO}/pulls/1", headers={"Authorization": "token nope"},
                       timeout=10)
    assert (bad.status_code, bad.json()["message"]) == (401, "Bad credentials")
    too_long = http.post(double.api_url + f"{REPO}/issues/1/comments", json={"body": "x" * 65537}, timeout=10)
    expected = observed_error("issues/create-comment with body longer")["body"]
    assert too_long.status_code == 422
    assert too_long.json()["errors"] == expected["errors"]
    own = http.post(double.api_url + f"{REPO}/pulls/1/requested_reviewers", json={"reviewers": ["alice"]},
                    timeout=10)
    assert own.status_code == 422
    assert own.json()["message"] == "Review cannot be requested from pull request author."
    assert double.unhandled == [] and get(http, double, "/nowhere").status_code == 404
    assert [r.path for r in double.unhandled] == ["/nowhere"]


def test_team_members_and_teams_the_token_cannot_read(double: GitHubDouble) -> None:
    double.team("web", ["mira", "wendy"])
    double.team("compliance", ["cora"], hidden=404)
    double.team("security", ["sec"], hidden=403)
    found = client(double).team_members(["acme/web", "acme/compliance", "acme/security", "acme/nope"])
    assert found["acme/web"].members == frozenset({"mira", "wendy"})
    assert [found[t].members for t in ("acme/compliance", "acme/security", "acme/nope")] == [None, None, None]
    assert [r.status for r in double.requests("GET", r"/orgs/.*")] == [404, 404, 403, 200]


def test_comments_statuses_and_review_requests_change_state(double: GitHubDouble) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")
    c = client(double)
    comment = c.create_comment(1, "first")
    c.edit_comment(comment, "edited")
    c.create_status(pr.head_sha, "pending", "waiting", "gitops-flags: main", None)
    assert c.request_reviewers(1, ["wendy"], ["web"]) is None
    assert [(x.id, x.body, x.user) for x in double.issue_comments(1)] == [
        (comment, "edited", "github-actions[bot]")]
    assert [(s.sha, s.state) for s in double.statuses] == [(pr.head_sha, "pending")]
    info = c.pull(1)
    assert (info.requested_users, info.requested_teams) == (frozenset({"wendy"}), frozenset({"web"}))
    double.review(1, "wendy", "APPROVED")
    assert c.pull(1).requested_users == frozenset()  # a reviewer who reviewed is no longer requested
    assert double.requests("PATCH")[0].body == {"body": "edited"}  # every request is recorded with its body


def test_commits_lead_to_their_pull_requests(double: GitHubDouble) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")
    c = client(double)
    assert [p["number"] for p in c.commit_pulls(pr.head_sha)] == [1]  # open, not on main yet
    merge = double.merge(1, "mira")
    assert double.git.run("rev-list", "--parents", "-n1", merge).split()[1:] == [pr.base_sha, pr.head_sha]
    [found] = c.commit_pulls(merge)
    assert (found["number"], found["merge_commit_sha"], found["merged_at"] is not None) == (1, merge, True)
    assert [p["number"] for p in c.commit_pulls(pr.head_sha)] == [1]
    direct = double.commit("main", {"flags/a.yaml": "key: a\n# direct\n"}, "direct", "pat")
    assert c.commit_pulls(direct) == []


def test_the_git_data_api_refuses_updates_that_do_not_fast_forward(double: GitHubDouble) -> None:
    seeded(double)
    repo = github.connect(double.api_url, double.token, pauses=False).get_repo(double.full_name)
    store = open_store(f"github-branch:{'flag-store'}", repo=repo)
    first = store.write(StoreState(), {"staging": {"flags": {}}}, None, [{"event": "one"}])
    assert double.git.rev("refs/heads/flag-store") == first
    assert double.git.run("rev-list", "--count", first).strip() == "1"  # an orphan commit
    snapshot = store.read()
    assert snapshot.version == first and snapshot.documents == {"staging": {"flags": {}}}

    http = requests.Session()
    http.trust_env = False
    http.headers["Authorization"] = f"Bearer {double.token}"
    main = double.branch_sha("main")
    refused = http.patch(f"{double.repo_url}/git/refs/heads/flag-store", json={"sha": main, "force": False},
                         timeout=10)
    assert (refused.status_code, refused.json()["message"]) == (422, "Update is not a fast forward")
    exists = http.post(f"{double.repo_url}/git/refs", json={"ref": "refs/heads/flag-store", "sha": main},
                       timeout=10)
    assert (exists.status_code, exists.json()["message"]) == (422, "Reference already exists")
    forced = http.patch(f"{double.repo_url}/git/refs/heads/flag-store", json={"sha": main, "force": True},
                        timeout=10)
    assert forced.status_code == 200 and double.git.rev("refs/heads/flag-store") == main


def test_trees_take_file_text_inline(double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    base = double.git.run("rev-parse", "main^{tree}").strip()
    text = "Zoë ✓\r\nno newline at the end"
    made = http.post(f"{double.repo_url}/git/trees", timeout=10, json={"base_tree": base, "tree": [
        {"path": "notes.txt", "mode": "100644", "type": "blob", "content": text},
        {"path": "README.md", "mode": "100644", "type": "blob", "sha": None}]})
    assert made.status_code == 201
    entries = {e["path"]: e for e in made.json()["tree"]}
    assert set(entries) == {"flags", "notes.txt"}  # README.md deleted, flags/ kept from the base tree
    blob = entries["notes.txt"]["sha"]
    assert blob == git_blob_sha(text.encode()) and entries["notes.txt"]["size"] == len(text.encode())
    assert double.git.blob(blob) == text.encode()  # written in the real git repository, bytes unchanged
    both = http.post(f"{double.repo_url}/git/trees", timeout=10, json={"tree": [
        {"path": "x", "mode": "100644", "type": "blob", "sha": blob, "content": "x"}]})
    assert both.status_code == 422

    # the store writes its files inline: a tree, a commit and the ref, no blob uploads
    repo = github.connect(double.api_url, double.token, pauses=False).get_repo(double.full_name)
    store = open_store("github-branch:flag-store", repo=repo)
    mark = len(double.log)
    version = store.write(StoreState(), {"staging": {"flags": {}}}, None, [{"who": "José"}])
    assert [(r.method, r.path) for r in double.log[mark:]] == [
        ("GET", f"{REPO}/git/ref/heads/flag-store"), ("POST", f"{REPO}/git/trees"),
        ("POST", f"{REPO}/git/commits"), ("POST", f"{REPO}/git/refs")]
    assert double.read(version, "audit.jsonl") == '{"who":"José"}\n'.encode()
    assert open_store("github-branch:flag-store", repo=repo).read().documents == {"staging": {"flags": {}}}


def test_faults(double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")

    double.inject("GET", rf"{REPO}/pulls/1", "502")
    assert get(http, double, f"{REPO}/pulls/1").status_code == 502
    assert get(http, double, f"{REPO}/pulls/1").status_code == 200  # once only

    double.inject("POST", rf"{REPO}/statuses/.*", "rate_limit", retry_after="0")
    limited = http.post(f"{double.repo_url}/statuses/{pr.head_sha}", json={"state": "pending"}, timeout=10)
    assert limited.status_code == 403 and limited.headers["retry-after"] == "0"
    assert "secondary rate limit" in limited.json()["message"]
    assert double.statuses == []  # refused, not carried out

    double.inject("GET", rf"{REPO}/pulls/1/reviews", "rate_limit", retry_after="0")
    assert client(double).reviews(1) == []  # PyGithub's retry honours retry-after, then succeeds
    assert [r.status for r in double.requests("GET", rf"{REPO}/pulls/1/reviews")] == [403, 200]

    double.inject("POST", rf"{REPO}/issues/1/comments", "lost")
    lost = http.post(f"{double.repo_url}/issues/1/comments", json={"body": "hi"}, timeout=10)
    assert lost.status_code == 502 and [c.body for c in double.issue_comments(1)] == ["hi"]  # done anyway

    hold = double.inject("GET", rf"{REPO}/pulls/1/files", "hold")
    answers: list[int] = []
    def fetch() -> None:
        answers.append(get(http, double, f"{REPO}/pulls/1/files").status_code)

    waiter = threading.Thread(target=fetch)
    waiter.start()
    assert hold.arrived.wait(10) and answers == []
    hold.release.set()
    waiter.join(10)
    assert answers == [200]


def test_absolute_form_requests_are_proxied_to_served_answers(double: GitHubDouble) -> None:
    double.serve("http://status.acme.example/api/checkout", 200, {"data": {"error_rate": 0.01}})
    proxies = {"http": double.base}
    answer = requests.get("http://status.acme.example/api/checkout", proxies=proxies, timeout=10)
    assert answer.json() == {"data": {"error_rate": 0.01}}
    assert requests.get("http://status.acme.example/other", proxies=proxies, timeout=10).status_code == 404
    assert [(r.host, r.path) for r in double.log] == [("status.acme.example", "/api/checkout"),
                                                      ("status.acme.example", "/other")]


def test_event_payloads_follow_the_captured_ones(double: GitHubDouble) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\n# edit\n"}, "Edit")
    first = pr.head_sha
    second = double.push(1, {"flags/a.yaml": "key: a\n# again\n"}, "again")
    payload = double.event("pull_request.synchronize", 1)
    assert set(load_example("events", "pull_request.synchronize")) <= set(payload)
    assert (payload["action"], payload["number"], payload["before"], payload["after"]) == (
        "synchronize", 1, first, second)
    assert payload["pull_request"]["head"]["sha"] == second
    assert payload["repository"]["full_name"] == "acme/flags"
    double.review(1, "mira", "APPROVED")
    review = double.event("pull_request_review.submitted", 1)
    assert (review["review"]["state"], review["review"]["user"]["login"]) == ("approved", "mira")


def test_commits_are_deterministic(tmp_path: Path) -> None:
    shas = []
    for name in ("one", "two"):
        with GitHubDouble(tmp_path / name) as double:
            seeded(double)
            shas.append(double.open_pull("alice", "feature", {"flags/b.yaml": "key: b\n"}, "B").head_sha)
    assert shas[0] == shas[1]


def test_a_merge_queue_builds_groups_on_temporary_branches_and_lands_by_fast_forward(
        double: GitHubDouble) -> None:
    seeded(double)
    base = double.branch_sha("main")
    double.open_pull("alice", "one", {"flags/a.yaml": "key: a\n# one\n"}, "One")
    double.open_pull("alice", "two", {"flags/new.yaml": "key: n\n"}, "Two")
    first, second = double.enqueue(1, 2, by="mira")
    assert (first.ref, second.ref) == (f"refs/heads/gh-readonly-queue/main/pr-1-{base}",
                                       f"refs/heads/gh-readonly-queue/main/pr-2-{base}")
    # each entry's head: the base, the PRs ahead, then this PR (a merge commit with the PR's head)
    pulls = double.pulls
    assert double.git.run("rev-list", "--parents", "-n1", second.head_sha).split()[1:] == [
        first.head_sha, pulls[2].head_sha]
    assert double.read(second.head_sha, "flags/a.yaml") == b"key: a\n# one\n"
    c = client(double)
    assert c.matching_refs("heads/gh-readonly-queue/main/") == [(first.ref, first.head_sha),
                                                                (second.ref, second.head_sha)]
    assert c.matching_refs("heads/gh-readonly-queue/release/") == []

    payload = double.merge_group_event(second)
    assert set(load_example("events", "merge_group.checks_requested")) <= set(payload)
    group = payload["merge_group"]
    assert set(group) == {"head_sha", "head_ref", "base_sha", "base_ref", "head_commit"}  # no PR number
    assert (group["head_sha"], group["head_ref"], group["base_sha"], group["base_ref"]) == (
        second.head_sha, second.ref, base, "refs/heads/main")
    assert group["head_commit"]["id"] == second.head_sha
    assert group["head_commit"]["message"].startswith("Merge pull request #2 from acme/two")

    with pytest.raises(ApiError):  # the required status has not succeeded on the group's head
        double.land(second, "mira")
    c.create_status(second.head_sha, "success", "ok", "gitops-flags: main", None)
    assert double.land(second, "mira") == double.branch_sha("main") == second.head_sha
    assert (pulls[1].merged, pulls[1].merge_commit_sha, pulls[2].merge_commit_sha) == (
        True, first.head_sha, second.head_sha)
    assert [p["number"] for p in c.commit_pulls(first.head_sha)] == [1]
    assert c.matching_refs("heads/gh-readonly-queue/") == [] and double.queue == []


def test_a_dismissal_changes_the_review_and_a_force_push_rewrites_the_commits(
        double: GitHubDouble, http: requests.Session) -> None:
    seeded(double)
    pr = double.open_pull("alice", "feature", {"flags/a.yaml": "key: a\nname: A\n"}, "A")
    first = pr.head_sha
    approved = double.review(1, "mira", "APPROVED")
    commented = double.review(1, "wendy", "COMMENTED")
    url = f"{double.api_url}{REPO}/pulls/1/reviews/{approved.id}/dismissals"
    assert http.put(url, json={"event": "DISMISS"}, timeout=10).status_code == 422  # a message is required
    answer = http.put(url, json={"message": "Outdated", "event": "DISMISS"}, timeout=10)
    assert answer.status_code == 200 and (answer.json()["id"], answer.json()["state"]) == (approved.id,
                                                                                          "DISMISSED")
    with pytest.raises(ApiError) as refused:  # GitHub dismisses only approvals and requests for changes
        double.dismiss(1, commented.id, "pat")
    assert refused.value.status == 422
    reviews = get(http, double, f"{REPO}/pulls/1/reviews").json()
    assert [(r["id"], r["state"], r["commit_id"]) for r in reviews] == [
        (approved.id, "DISMISSED", first), (commented.id, "COMMENTED", first)]  # changed in place, none added

    second = double.push(1, {"flags/a.yaml": "key: a\nname: B\n"}, "B")
    third = double.force_push(1, {"flags/a.yaml": "key: a\nname: C\n"}, "alice")
    commits = get(http, double, f"{REPO}/pulls/1/commits").json()
    assert [c["sha"] for c in commits] == [third]  # the old commits are no longer the PR's
    assert double.git.run("rev-parse", "refs/pull/1/head", "refs/heads/feature").split() == [third, third]
    assert not double.git.is_ancestor(second, third)
    events = get(http, double, f"{REPO}/issues/1/events").json()
    assert [(e["event"], e["actor"]["login"]) for e in events] == [("head_ref_force_pushed", "alice")]
    assert double.force_push(1, first, "alice") == first  # back to an existing commit
    assert [c["sha"] for c in get(http, double, f"{REPO}/pulls/1/commits").json()] == [first]
    assert get(http, double, f"{REPO}/pulls/1").json()["head"]["sha"] == first
