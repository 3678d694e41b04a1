"""GitHub API bodies and Actions event payloads for tests, built from GitHub's own examples.

Every body starts as a copy of a file in `../shared/github-api/examples/` (REST) or `events/` (webhooks)
and only the fields a test cares about are overridden, so the shapes stay real.
`MockGitHub` registers them on a `responses.RequestsMock` for one repository.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import responses
from github import GithubRetry
from responses import matchers

from gitops_flags import github

SHARED = Path(__file__).resolve().parent / "fixtures" / "github-api"
API = "https://api.github.com"
WIRE = "https://api.github.com:443"  # PyGithub's requests name the port: register mocks under this prefix
REPO = "octo-org/flags"


def wire(url: str) -> str:
    """`url` as PyGithub sends it (an https URL without a port gets `:443`)."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if scheme == "https" and ":" not in host:
        host += ":443"
    return f"{scheme}://{host}{slash}{path}"


@cache
def _load(kind: str, name: str) -> Any:
    return json.loads((SHARED / kind / f"{name}.json").read_text(encoding="utf-8"))


def merge(base: Any, overrides: Mapping[str, Any]) -> Any:
    """`base` with `overrides` applied: nested dicts merge, any other value replaces."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def example(name: str, /, **overrides: Any) -> Any:
    """A REST example (`pulls--get`, ...); for a list example, its first item with the overrides applied."""
    data = _load("examples", name)
    if isinstance(data, list):
        data = data[0]
    return merge(data, overrides)


def event(name: str, /, **overrides: Any) -> dict[str, Any]:
    """A webhook payload (`pull_request.opened`, ...) with overrides."""
    result: dict[str, Any] = merge(_load("events", name), overrides)
    return result


def user(login: str, kind: str = "User") -> dict[str, Any]:
    owner = _load("examples", "pulls--get")["user"]
    return merge(owner, {"login": login, "type": kind, "url": f"{API}/users/{login}",
                         "html_url": f"https://github.com/{login}"})


def repo_obj(full_name: str) -> dict[str, Any]:
    base = _load("examples", "pulls--get")["base"]["repo"]
    owner, name = full_name.split("/")
    return merge(base, {"full_name": full_name, "name": name, "owner": user(owner, "Organization")})


def pull(
    number: int = 1,
    *,
    author: str = "author",
    head_sha: str = "1" * 40,
    base_sha: str = "0" * 40,
    base_ref: str = "main",
    labels: Sequence[str] = (),
    requested_reviewers: Sequence[str] = (),
    requested_teams: Sequence[str] = (),
    changed_files: int = 1,
    repo: str = REPO,
    head_repo: str | None = None,
    comments: int = 10,
    state: str = "open",
    draft: bool = False,
) -> dict[str, Any]:
    data = _load("examples", "pulls--get")
    label = data["labels"][0]
    team = data["requested_teams"][0]
    result: dict[str, Any] = merge(data, {
        "number": number,
        "url": f"{API}/repos/{repo}/pulls/{number}",
        "html_url": f"https://github.com/{repo}/pull/{number}",
        "user": user(author),
        "labels": [merge(label, {"name": name, "id": i}) for i, name in enumerate(labels)],
        "requested_reviewers": [user(login) for login in requested_reviewers],
        "requested_teams": [merge(team, {"slug": slug, "name": slug}) for slug in requested_teams],
        "head": {"sha": head_sha, "ref": "feature", "repo": repo_obj(head_repo or repo)},
        "base": {"sha": base_sha, "ref": base_ref, "repo": repo_obj(repo)},
        "changed_files": changed_files,
        "comments": comments,  # the example's 10: the sticky comment is looked for unless a test says 0
        "state": state,
        "draft": draft,
    })
    return result


def file_entry(path: str, status: str = "modified", previous: str | None = None) -> dict[str, Any]:
    entry = example("pulls--list-files", filename=path, status=status)
    if previous:
        entry["previous_filename"] = previous
    return entry  # type: ignore[no-any-return]


def review(review_id: int, login: str, state: str, commit_id: str,
           submitted_at: str = "2026-11-20T10:00:00Z") -> dict[str, Any]:
    return example("pulls--list-reviews", id=review_id, user=user(login), state=state, commit_id=commit_id,  # type: ignore[no-any-return]
                   submitted_at=submitted_at, body="")


def issue_event(event_id: int, name: str, actor: str, created_at: str) -> dict[str, Any]:
    """An issue event (`base_ref_changed`, `head_ref_force_pushed`): GitHub publishes no example of these
    two, so the `issues--list-events` example's common fields are kept and the label dropped (github/docs
    issue-event-types.md lists only the common properties for both)."""
    item: dict[str, Any] = example("issues--list-events", id=event_id, event=name, actor=user(actor),
                                   created_at=created_at, commit_id=None, commit_url=None)
    item.pop("label", None)
    return item


def pull_commit(sha: str, author: str | None, committer: str | None,
                date: str = "2026-11-20T09:00:00Z") -> dict[str, Any]:
    """An item of pulls/list-commits: `author`/`committer` are the GitHub accounts (null when unknown)."""
    item: dict[str, Any] = example("pulls--list-commits", sha=sha,
                                   author=user(author) if author else None,
                                   committer=user(committer) if committer else None)
    item["commit"]["committer"]["date"] = date
    return item


def comment(comment_id: int, body: str, *, login: str = "github-actions[bot]", kind: str = "Bot",
            association: str = "NONE") -> dict[str, Any]:
    return example("issues--list-comments", id=comment_id, body=body, user=user(login, kind),  # type: ignore[no-any-return]
                   author_association=association,
                   url=f"{API}/repos/{REPO}/issues/comments/{comment_id}")


def team_member(login: str) -> dict[str, Any]:
    return example("teams--list-members-in-org", login=login)  # type: ignore[no-any-return]


def content_file(path: str, data: bytes) -> dict[str, Any]:
    encoded = base64.encodebytes(data).decode()  # GitHub wraps base64 lines, as encodebytes does
    return example("repos--get-content", path=path, name=path.rsplit("/", 1)[-1], content=encoded,  # type: ignore[no-any-return]
                   size=len(data), encoding="base64", type="file")


def content_dir(entries: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    item = _load("examples", "repos--get-content.content-file-response-if-content-is-a-directory")[0]
    return [merge(item, {"path": p, "name": p.rsplit("/", 1)[-1], "type": t}) for p, t in entries]


def error_body(message: str, status: int = 403) -> dict[str, Any]:
    return {"message": message, "documentation_url": "https://docs.github.com/rest", "status": str(status)}


def observed_error(case: str) -> tuple[int, dict[str, Any]]:
    """(status, body) of a real GitHub error from `errors/observed-error-responses.json`, by the start of
    its `case`; a body quoted only in part, or only as a message, is completed with a documentation_url."""
    for item in _load("errors", "observed-error-responses")["observations"]:
        if item["case"].startswith(case):
            body = item.get("body") or item.get("body_partial") or {"message": item["message"]}
            body = {"documentation_url": "https://docs.github.com/rest", **body}
            return int(item["status"]), body
    raise KeyError(case)


NOT_ACCESSIBLE = "Resource not accessible by integration"
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


def retry_policy(max_rate_limit_wait: float = 300) -> GithubRetry:
    """The production policy with the waits the tests control: 3 retries, no backoff, no secondary-limit
    wait. (`responses` never sleeps; `max_rate_limit_wait` still decides whether a long wait is refused.)"""
    return github.production_retry(total=3, backoff_factor=0, secondary_rate_wait=0,
                                   max_rate_limit_wait=max_rate_limit_wait)


def client(repo: str = REPO, api: str = API, retry: GithubRetry | None = None) -> github.GitHubClient:
    gh = github.connect(api, "test-token", retry=retry if retry is not None else retry_policy(), pauses=False)
    return github.GitHubClient(gh, repo)


def client_factory(api_url: str, token: str | None, repository: str) -> github.GitHubClient:
    return client(repository, api_url)


class MockGitHub:
    """Registers example-based answers for one repository on a RequestsMock."""

    def __init__(self, rsps: responses.RequestsMock, repo: str = REPO, api: str = API) -> None:
        self.rsps = rsps
        self.api = wire(api)
        self.base = f"{self.api}/repos/{repo}"

    def get(self, path: str, body: Any, *, status: int = 200, query: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> None:
        match = [matchers.query_param_matcher(dict(query))] if query is not None else []
        url = path if path.startswith("http") else self.base + path
        self.rsps.add(responses.GET, url, json=body, status=status, match=match, headers=dict(headers or {}))

    def pages(self, path: str, items: Sequence[Any], size: int = github.PER_PAGE) -> None:
        """A paginated list: page 1 answers `per_page=100`, later pages follow the `link` header."""
        chunks = [list(items[i:i + size]) for i in range(0, len(items), size)] or [[]]
        url = self.base + path if not path.startswith("http") else path
        public = url.replace(":443/", "/", 1)  # GitHub's link headers name no port
        for n, chunk in enumerate(chunks, start=1):
            query = {"per_page": str(github.PER_PAGE)} if n == 1 else {"per_page": str(github.PER_PAGE),
                                                                        "page": str(n)}
            headers = {}
            if n < len(chunks):
                headers["Link"] = (f'<{public}?per_page={github.PER_PAGE}&page={n + 1}>; rel="next", '
                                   f'<{public}?per_page={github.PER_PAGE}&page={len(chunks)}>; rel="last"')
            self.rsps.add(responses.GET, url, json=chunk, match=[matchers.query_param_matcher(query)],
                          headers=headers)

    def pull(self, data: Mapping[str, Any], *, files: Sequence[Any] = (), reviews: Sequence[Any] = (),
             comments: Sequence[Any] = (), events: Sequence[Any] | None = None,
             commits: Sequence[Any] | None = None) -> None:
        """The PR's reads; `events` and `commits` only when given (a check reads them only when someone's
        review can count, and the commits only under `last_pusher_can_approve: false`)."""
        n = data["number"]
        self.get(f"/pulls/{n}", data)
        self.pages(f"/pulls/{n}/files", files)
        self.pages(f"/pulls/{n}/reviews", reviews)
        self.pages(f"/issues/{n}/comments", comments)
        if events is not None:
            self.pages(f"/issues/{n}/events", events)
        if commits is not None:
            self.pages(f"/pulls/{n}/commits", commits)

    def writes(self, number: int, head_sha: str, *, comment_id: int | None = None) -> None:
        """Answers to every write the check may make."""
        self.rsps.add(responses.POST, f"{self.base}/statuses/{head_sha}",
                      json=example("repos--create-commit-status"), status=201)
        self.rsps.add(responses.POST, f"{self.base}/issues/{number}/comments",
                      json=example("issues--create-comment", id=1001), status=201)
        if comment_id is not None:
            self.rsps.add(responses.PATCH, f"{self.base}/issues/comments/{comment_id}",
                          json=example("issues--update-comment", id=comment_id))
        self.rsps.add(responses.POST, f"{self.base}/pulls/{number}/requested_reviewers",
                      json=example("pulls--request-reviewers"), status=201)

    def team(self, org: str, slug: str, members: Sequence[str] = (), status: int = 200) -> None:
        url = f"{self.api}/orgs/{org}/teams/{slug}/members"
        if status != 200:
            self.rsps.add(responses.GET, url, json=error_body("Not Found", status), status=status)
        else:
            self.pages(url, [team_member(m) for m in members])

    def content(self, sha: str, path: str, data: bytes | None) -> None:
        url = f"{self.base}/contents/{quote(path)}"
        if data is None:
            self.rsps.add(responses.GET, url, json=error_body("Not Found", 404), status=404,
                          match=[matchers.query_param_matcher({"ref": sha})])
        else:
            self.rsps.add(responses.GET, url, json=content_file(path, data),
                          match=[matchers.query_param_matcher({"ref": sha})])


def requests_sent(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    """(method, path) of every request sent, in order."""
    from urllib.parse import urlsplit

    return [(c.request.method or "", urlsplit(c.request.url or "").path) for c in rsps.calls]


def body_of(call: Any) -> Any:
    raw = call.request.body
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
