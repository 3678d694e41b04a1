"""A local double of the part of GitHub's REST API that gitops-flags uses, for end-to-end tests.

`GitHubDouble` is an HTTP server on 127.0.0.1 (stdlib `ThreadingHTTPServer`, a free port) with state:
one repository backed by a real bare git repository on disk, its pull requests, reviews, issue comments,
commit statuses, requested reviewers, organization teams, and the Git data API. The tool reaches it only
through `GITHUB_API_URL` (`http://127.0.0.1:PORT/api/v3`, the GitHub Enterprise Server form).

- Bodies start as copies of GitHub's documented examples (`shared/github-api/examples/`) with their URLs
  pointed at the double and the fields that matter overridden; the Git data API bodies (no example
  exists) follow GitHub's documented shapes. Lists page with `per_page`/`page` and a `link` header.
  Errors carry GitHub's `message`, `documentation_url` and `status`.
- Everything a test does (pushes, merges, reviews) and everything the double creates on request (merge
  commits, store commits) is a real git object: PR files are `git diff` of the merge base and the head,
  contents are read at any commit, ref updates are refused unless they fast-forward.
- Every request is recorded (method, path, query, JSON body, status) so tests assert on what the tool
  sent. Requests nobody routes are kept in `unhandled`.
- Faults are armed per request pattern: `502`, `rate_limit` (a secondary rate limit: 403 with GitHub's
  body and `retry-after`), `conflict` (another writer moves the ref just before a ref update is handled),
  `race` (a callback runs, e.g. a concurrent job, before the request is answered), `lost` (the request
  is carried out, then answered 502), and `hold` (the request waits until released, so a test can kill
  the client at a known point).
- Requests in absolute form (`GET http://host/path`) are answered as an HTTP proxy for other hosts: a
  job's `HTTP_PROXY` sends health-gate and webhook calls here, so flag files can name stable hosts.

Commits made by the test side (pushes, merges, reviews) take their times from a deterministic clock, so
the same scenario gives the same commit shas in every run.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

SHARED = Path(__file__).resolve().parents[1] / "fixtures" / "github-api"  # vendored copy of shared/github-api
EXAMPLE_API = "https://api.github.com"
EXAMPLE_SERVER = "https://github.com"
DOCS = "https://docs.github.com/rest"
EPOCH = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ZERO_SHA = "0" * 40
BOT = "github-actions[bot]"

Json = Any
Reply = tuple[int, dict[str, str], bytes]
FaultKind = Literal["502", "rate_limit", "conflict", "race", "lost", "hold"]


# --- GitHub's shapes ---------------------------------------------------------------------------------


@cache
def _load(kind: str, name: str) -> str:
    return (SHARED / kind / f"{name}.json").read_text(encoding="utf-8")


def load_example(kind: str, name: str) -> Any:
    return json.loads(_load(kind, name))


def observed_error(case_prefix: str) -> dict[str, Any]:
    """An entry of errors/observed-error-responses.json, by the start of its `case`."""
    for entry in load_example("errors", "observed-error-responses")["observations"]:
        if str(entry["case"]).startswith(case_prefix):
            return dict(entry)
    raise KeyError(case_prefix)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answer: GitHub's basic-error (or validation-error when `errors` is given) body."""

    def __init__(self, status: int, message: str, doc: str = DOCS, errors: list[dict[str, Any]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message, self.doc, self.errors = status, message, doc, errors
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "documentation_url": self.doc,
                               "status": str(self.status)}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


# --- requests, faults ----------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str  # the API path without the /api/v3 prefix, unquoted; for proxied requests "//host/path"
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    status: int = 0
    fault: str | None = None
    host: str = ""  # set for proxied (non-API) requests

    def json_body(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


@dataclass
class Fault:
    method: str
    path: str  # a regular expression matched in full: the unquoted API path, or "//host/path" when proxied
    kind: FaultKind
    times: int = 1
    retry_after: str = "1"
    before: Callable[[], object] | None = None  # runs first (`conflict` default: an identical commit)
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and method == self.method and re.fullmatch(self.path, path) is not None


# --- the repository: plumbing over a bare git repository ----------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class Clock:
    """Deterministic time: each tick is one minute after the previous one."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.now = start

    def tick(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


class Git:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                    "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        for name in list(self.env):
            if name.startswith("GIT_") and name not in ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL",
                                                        "GIT_TERMINAL_PROMPT"):
                del self.env[name]
        if not path.exists():
            subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
                           check=True, env=self.env)

    def run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None,
            ok: tuple[int, ...] = (0,)) -> str:
        done = subprocess.run(["git", f"--git-dir={self.path}", *args], input=input, capture_output=True,
                              env={**self.env, **(env or {})}, check=False)
        if done.returncode not in ok:
            raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout.decode()

    def code(self, *args: str) -> int:
        return subprocess.run(["git", f"--git-dir={self.path}", *args], capture_output=True, env=self.env,
                              check=False).returncode

    def rev(self, ref: str) -> str | None:
        out = self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", ok=(0, 1)).strip()
        return out or None

    def object_type(self, sha: str) -> str | None:
        if not re.fullmatch(r"[0-9a-f]{4,40}", sha):
            return None
        out = self.run("cat-file", "-t", sha, ok=(0, 1, 128)).strip()
        return out or None

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.code("merge-base", "--is-ancestor", a, b) == 0

    def merge_base(self, a: str, b: str) -> str:
        return self.run("merge-base", a, b).strip()

    def blob(self, sha: str) -> bytes:
        done = subprocess.run(["git", f"--git-dir={self.path}", "cat-file", "blob", sha], capture_output=True,
                              env=self.env, check=True)
        return done.stdout

    def hash_objects(self, datas: Sequence[bytes]) -> list[str]:
        """Write blobs in one `git hash-object` process."""
        if not datas:
            return []
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, data in enumerate(datas):
                p = Path(tmp) / str(i)
                p.write_bytes(data)
                paths.append(str(p))
            listing = "\n".join(paths).encode()
            out = self.run("hash-object", "-w", "--no-filters", "--stdin-paths", input=listing)
        return out.split()

    def write_tree(self, base: str | None, entries: Mapping[str, tuple[str, str] | None]) -> str:
        """A tree: `base` (a tree-ish, or None for empty) with entries set to (mode, blob sha) or removed."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base:
                self.run("read-tree", base, env=env)
            else:
                self.run("read-tree", "--empty", env=env)
            lines = [f"{e[0]} {e[1]}\t{p}" if e else f"0 {ZERO_SHA}\t{p}" for p, e in entries.items()]
            if lines:
                self.run("update-index", "--index-info", input=("\n".join(lines) + "\n").encode(), env=env)
            return self.run("write-tree", env=env).strip()

    def commit_tree(self, tree: str, parents: Sequence[str], message: str, author: Identity,
                    committer: Identity, when: datetime) -> str:
        date = f"@{int(when.timestamp())} +0000"
        env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email, "GIT_AUTHOR_DATE": date,
               "GIT_COMMITTER_NAME": committer.name, "GIT_COMMITTER_EMAIL": committer.email,
               "GIT_COMMITTER_DATE": date}
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.run(*args, input=message.encode(), env=env).strip()

    def ls_tree(self, treeish: str, path: str = "", recursive: bool = False
                ) -> list[tuple[str, str, str, str, str]]:
        """(mode, type, sha, size, path) entries."""
        args = ["ls-tree", "-l", "-z"]
        if recursive:
            args.append("-r")
        args.append(treeish)
        if path:
            args += ["--", path]
        out = self.run(*args, ok=(0, 128))
        rows = []
        for item in out.split("\0"):
            if item:
                meta, _, name = item.partition("\t")
                mode, kind, sha, size = meta.split()
                rows.append((mode, kind, sha, size, name))
        return rows


# --- state ---------------------------------------------------------------------------------------------


@dataclass
class User:
    login: str
    id: int
    type: str = "User"
    association: str = "MEMBER"

    @property
    def identity(self) -> Identity:
        return Identity(self.login, f"{self.id}+{self.login}@users.noreply.github.com")


@dataclass
class ReviewRec:
    id: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str
    submitted_at: str
    body: str = ""


@dataclass
class CommentRec:
    id: int
    issue: int
    user: str
    body: str
    created_at: str
    updated_at: str


@dataclass
class StatusRec:
    id: int
    sha: str
    state: str
    description: str
    context: str
    target_url: str | None
    created_at: str


@dataclass
class IssueEventRec:
    id: int
    event: str  # base_ref_changed, head_ref_force_pushed
    actor: str
    created_at: str


@dataclass
class Pull:
    number: int
    title: str
    author: str
    head_ref: str
    base_ref: str
    head_sha: str
    base_sha: str
    created_at: str
    updated_at: str
    body: str = ""
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_at: str | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: str | None = None
    labels: list[str] = field(default_factory=list)
    requested_reviewers: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    reviews: list[ReviewRec] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)  # the PR's own commits, oldest first
    landed: list[str] = field(default_factory=list)  # the commits a merge put on the base branch
    events: list[IssueEventRec] = field(default_factory=list)  # issues/{n}/events: retargets, force pushes


@dataclass
class QueueEntry:
    """One PR's entry in a merge queue: the temporary branch `gh-readonly-queue/<base>/pr-<N>-<base sha>`
    whose head is the group's commit (the base, every PR ahead in the queue, then this PR)."""

    number: int
    ref: str  # refs/heads/gh-readonly-queue/<base>/pr-<N>-<base_sha>
    base_ref: str  # the branch, without refs/heads/
    base_sha: str  # the group's parent commit: the base branch's head the queue was built on
    head_sha: str  # the group's head: where the required checks run
    queued_by: str
    commits: list[str] = field(default_factory=list)  # what this entry adds (a rebase: several)


Handler = Callable[..., tuple[int, Any] | tuple[int, Any, dict[str, str]]]


class GitHubDouble:
    """One organization (`owner`), one repository (`owner/name`), and the test-side controls."""

    def __init__(self, root: Path, owner: str = "acme", name: str = "flags", token: str = "ghs_e2e_token",
                 prefix: str = "/api/v3", server_url: str = "https://github.acme.test") -> None:
        self.root = root
        self.owner, self.name, self.full_name = owner, name, f"{owner}/{name}"
        self.token, self.prefix, self.server_url = token, prefix, server_url
        self.git = Git(root / f"{owner}/{name}.git")
        self.clock = Clock()  # the test side: commits, reviews, pull requests
        self.api_clock = Clock(EPOCH + timedelta(days=30))  # what the tool creates
        self.users: dict[str, User] = {}
        self.teams: dict[str, list[str]] = {}  # "org/slug" → logins
        self.hidden_teams: dict[str, int] = {}  # "org/slug" → 403 or 404 for the token
        self.pulls: dict[int, Pull] = {}
        self.comments: dict[int, CommentRec] = {}
        self.statuses: list[StatusRec] = []
        self.queue: list[QueueEntry] = []  # the merge queue, oldest entry first
        self.external: dict[tuple[str, str], tuple[int, Any]] = {}  # (host, path) → answer
        self.log: list[Recorded] = []
        self.unhandled: list[Recorded] = []
        self.faults: list[Fault] = []
        self._ids = 1000
        self._diffs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._remaining = 5000
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.user(owner, "Organization")
        self.user(BOT, "Bot", association="NONE")
        self._routes = self._route_table()

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> GitHubDouble:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.double = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="github-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for fault in self.faults:
            fault.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitHubDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the double first"
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base + self.prefix

    @property
    def repo_url(self) -> str:
        return f"{self.api_url}/repos/{self.full_name}"

    @property
    def html_url(self) -> str:
        return f"{self.server_url}/{self.full_name}"

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # --- test-side controls: people ------------------------------------------------------------------

    def user(self, login: str, kind: str = "User", association: str = "MEMBER") -> User:
        if login not in self.users:
            self.users[login] = User(login, self._next_id(), kind, association)
        return self.users[login]

    def team(self, slug: str, members: Sequence[str], hidden: int | None = None) -> None:
        """A team of `owner`. `hidden=404|403`: the token cannot read its members (as GitHub answers a token
        without the organization's Members permission)."""
        key = f"{self.owner}/{slug}".lower()
        for login in members:
            self.user(login)
        self.teams[key] = list(members)
        if hidden:
            self.hidden_teams[key] = hidden

    # --- test-side controls: the repository ----------------------------------------------------------

    def commit(self, branch: str, files: Mapping[str, bytes | str | None], message: str, author: str,
               parent: str | None = None) -> str:
        """A commit on `branch` (created from `parent` when given) changing `files` (None deletes)."""
        with self._lock:
            tip = self.git.rev(f"refs/heads/{branch}")
            base = parent or tip
            datas = {p: (d.encode() if isinstance(d, str) else d) for p, d in files.items()}
            present = [p for p, d in datas.items() if d is not None]
            shas = self.git.hash_objects([datas[p] for p in present])  # type: ignore[misc]
            entries: dict[str, tuple[str, str] | None] = dict.fromkeys(datas)
            for p, sha in zip(present, shas, strict=True):
                entries[p] = ("100644", sha)
            tree = self.git.write_tree(base, entries)
            who = self.user(author).identity
            sha = self.git.commit_tree(tree, [base] if base else [], message, who, who, self.clock.tick())
            self.git.run("update-ref", f"refs/heads/{branch}", sha, tip or ZERO_SHA)
            return sha

    def branch_sha(self, branch: str) -> str:
        sha = self.git.rev(f"refs/heads/{branch}")
        assert sha is not None, f"no branch {branch}"
        return sha

    def read(self, ref: str, path: str) -> bytes | None:
        rows = self.git.ls_tree(ref, path)
        return self.git.blob(rows[0][2]) if rows and rows[0][1] == "blob" else None

    def open_pull(self, author: str, head_ref: str, files: Mapping[str, bytes | str | None], title: str,
                  base_ref: str = "main", body: str = "", labels: Sequence[str] = ()) -> Pull:
        with self._lock:
            base_sha = self.branch_sha(base_ref)
            head = self.commit(head_ref, files, title, author, parent=base_sha)
            now = iso(self.clock.tick())
            number = max([0, *self.pulls]) + 1
            pull = Pull(number, title, author, head_ref, base_ref, head, base_sha, now, now, body=body,
                        labels=list(labels), commits=[head])
            self.pulls[number] = pull
            self.git.run("update-ref", f"refs/pull/{number}/head", head)
            return pull

    def push(self, number: int, files: Mapping[str, bytes | str | None], message: str) -> str:
        """A new commit on the PR's branch (a `synchronize`)."""
        with self._lock:
            pull = self.pulls[number]
            before = pull.head_sha
            sha = self.commit(pull.head_ref, files, message, pull.author)
            pull.head_sha, pull.updated_at = sha, iso(self.clock.tick())
            pull.base_sha = self.branch_sha(pull.base_ref)
            pull.commits.append(sha)
            self.git.run("update-ref", f"refs/pull/{number}/head", sha, before)
            return sha

    def review(self, number: int, login: str, state: str, body: str = "", commit_id: str | None = None
               ) -> ReviewRec:
        with self._lock:
            pull = self.pulls[number]
            self.user(login)
            when = iso(self.clock.tick())
            rec = ReviewRec(self._next_id(), login, state, commit_id or pull.head_sha, when, body)
            pull.reviews.append(rec)
            # A reviewer who has reviewed is no longer listed as requested.
            pull.requested_reviewers = [u for u in pull.requested_reviewers if u.lower() != login.lower()]
            return rec

    def merge(self, number: int, by: str, method: str = "merge") -> str:
        """Merge as the merge button does: `merge` (a merge commit: `git merge-tree` + `commit-tree`),
        `squash` (one commit with the merged tree, the PR as its only change) or `rebase` (each PR commit
        replayed on the base, GitHub associating every one with the PR; `merge_commit_sha` is the last)."""
        with self._lock:
            pull = self.pulls[number]
            assert pull.state == "open", f"#{number} is {pull.state}"
            tip = self.branch_sha(pull.base_ref)
            when = self.clock.tick()
            who = self.user(by).identity
            if method == "rebase":
                landed = self._replay(pull, tip, who, when)
                sha = landed[-1]
            else:
                out = self.git.run("merge-tree", "--write-tree", tip, pull.head_sha, ok=(0, 1))
                tree = out.split()[0]
                if "CONFLICT" in out:
                    raise ApiError(405, "Pull Request is not mergeable")
                if method == "squash":
                    author = self.user(pull.author).identity
                    sha = self.git.commit_tree(tree, [tip], f"{pull.title} (#{number})\n", author, who, when)
                else:
                    message = (f"Merge pull request #{number} from {self.owner}/{pull.head_ref}\n\n"
                               f"{pull.title}\n")
                    sha = self.git.commit_tree(tree, [tip, pull.head_sha], message, who, who, when)
                landed = [sha]
            self.git.run("update-ref", f"refs/heads/{pull.base_ref}", sha, tip)
            pull.merged, pull.state, pull.merged_by = True, "closed", by
            pull.merged_at = pull.closed_at = pull.updated_at = iso(when)
            pull.merge_commit_sha = sha
            pull.landed = landed
            return sha

    def _replay(self, pull: Pull, tip: str, who: Identity, when: datetime) -> list[str]:
        """Each of the PR's commits since its merge base, cherry-picked onto `tip` in order."""
        base = self.git.merge_base(tip, pull.head_sha)
        own = self.git.run("rev-list", "--reverse", "--first-parent", f"{base}..{pull.head_sha}").split()
        landed: list[str] = []
        parent = tip
        for commit in own:
            # The commit's own changes (its diff against its parent) written over the new parent's tree.
            entries: dict[str, tuple[str, str] | None] = {}
            listing = self.git.run("diff-tree", "-r", "--no-renames", "-z", f"{commit}^", commit)
            for row in listing.split("\0:"):
                meta, _, path = row.lstrip(":").partition("\0")
                if not path:
                    continue
                _, mode, _, blob, status = meta.split()
                entries[path.rstrip("\0")] = None if status == "D" else (mode, blob)
            tree = self.git.write_tree(parent, entries)
            message = self.git.run("log", "-1", "--format=%B", commit)
            author = self.user(pull.author).identity
            parent = self.git.commit_tree(tree, [parent], message, author, who, when)
            landed.append(parent)
        return landed

    def merge_edited(self, number: int, by: str, files: Mapping[str, bytes | str | None]) -> str:
        """An admin's hand-made merge commit: the PR's merge with `files` changed too, pushed to the base
        (GitHub then marks the PR merged by that commit)."""
        with self._lock:
            pull = self.pulls[number]
            tip = self.branch_sha(pull.base_ref)
            out = self.git.run("merge-tree", "--write-tree", tip, pull.head_sha, ok=(0, 1))
            datas = {p: (d.encode() if isinstance(d, str) else d) for p, d in files.items()}
            present = [p for p, d in datas.items() if d is not None]
            shas = self.git.hash_objects([datas[p] for p in present])  # type: ignore[misc]
            entries: dict[str, tuple[str, str] | None] = dict.fromkeys(datas)
            for path, sha in zip(present, shas, strict=True):
                entries[path] = ("100644", sha)
            tree = self.git.write_tree(out.split()[0], entries)
            when = self.clock.tick()
            who = self.user(by).identity
            message = f"Merge pull request #{number} from {self.owner}/{pull.head_ref}\n"
            sha = self.git.commit_tree(tree, [tip, pull.head_sha], message, who, who, when)
            self.git.run("update-ref", f"refs/heads/{pull.base_ref}", sha, tip)
            pull.merged, pull.state, pull.merged_by = True, "closed", by
            pull.merged_at = pull.closed_at = pull.updated_at = iso(when)
            pull.merge_commit_sha, pull.landed = sha, [sha]
            return sha

    def retarget(self, number: int, base_ref: str, by: str) -> None:
        """PATCH pulls/{n} with `base`: the PR now merges into `base_ref` (a `base_ref_changed` event)."""
        with self._lock:
            pull = self.pulls[number]
            pull.base_ref, pull.base_sha = base_ref, self.branch_sha(base_ref)
            when = iso(self.clock.tick())
            pull.updated_at = when
            pull.events.append(IssueEventRec(self._next_id(), "base_ref_changed", by, when))

    def dismiss(self, number: int, review_id: int, by: str) -> ReviewRec:
        """PUT pulls/{n}/reviews/{id}/dismissals: the existing review's state becomes DISMISSED; no new
        review is added, its `submitted_at` and `commit_id` stay. Only an APPROVED or CHANGES_REQUESTED
        review can be dismissed (422 otherwise). See
        https://docs.github.com/rest/pulls/reviews#dismiss-a-review-for-a-pull-request"""
        with self._lock:
            pull = self.pulls[number]
            rec = next((r for r in pull.reviews if r.id == review_id), None)
            doc = "https://docs.github.com/rest/pulls/reviews#dismiss-a-review-for-a-pull-request"
            if rec is None:
                raise ApiError(404, "Not Found", doc)
            if rec.state not in ("APPROVED", "CHANGES_REQUESTED"):
                raise ApiError(422, f"Can not dismiss a {rec.state.lower()} pull request review", doc)
            self.user(by)
            rec.state = "DISMISSED"
            pull.updated_at = iso(self.clock.tick())
            return rec

    def force_push(self, number: int, to: str | Mapping[str, bytes | str | None], by: str) -> str:
        """`git push --force` to the PR's branch: its head becomes `to` (an existing commit's sha, or a new
        commit changing those files on the PR's merge base with its base branch, so the earlier PR commits
        are gone). As on GitHub: a `head_ref_force_pushed` issue event by `by` (github/docs
        issue-event-types.md), refs/pull/N/head moved, and pulls/{n}/commits lists only the commits between
        the merge base and the new head (https://docs.github.com/rest/pulls/pulls#list-commits-on-a-pull-
        request). Reviews keep the commit they were given on."""
        with self._lock:
            pull = self.pulls[number]
            before = pull.head_sha
            base_tip = self.branch_sha(pull.base_ref)
            if isinstance(to, str):
                assert self.git.object_type(to) == "commit", f"no commit {to}"
                sha = to
            else:
                fork = self.git.merge_base(base_tip, before)
                sha = self.commit(f"force-push-{number}", to, "Force-pushed", by, parent=fork)
                self.git.run("update-ref", "-d", f"refs/heads/force-push-{number}")
            self.git.run("update-ref", f"refs/heads/{pull.head_ref}", sha)
            self.git.run("update-ref", f"refs/pull/{number}/head", sha, before)
            when = iso(self.clock.tick())
            pull.head_sha, pull.updated_at, pull.base_sha = sha, when, base_tip
            fork = self.git.merge_base(base_tip, sha)
            pull.commits = self.git.run("rev-list", "--reverse", f"{fork}..{sha}").split()
            pull.events.append(IssueEventRec(self._next_id(), "head_ref_force_pushed", by, when))
            return sha

    # --- test-side controls: the merge queue ------------------------------------------------------------
    #
    # What GitHub's merge queue does (docs.github.com, "Managing a merge queue"; the `merge_group` event in
    # "Webhook events and payloads" and events/merge_group.checks_requested.json): each queued PR gets an
    # entry, a temporary branch `gh-readonly-queue/<base>/pr-<N>-<sha>` whose head is the base branch with
    # every PR ahead of it and then this PR, merged with the queue's method; a `merge_group` event
    # (`checks_requested`) asks for the required checks on that head; once they pass GitHub fast-forwards
    # the base branch to it, closes the PRs of the group as merged (`merge_commit_sha`: the entry's commit)
    # and deletes the temporary branches. The `<sha>` of the name is the group's parent commit
    # (`merge_group.base_sha`, "the SHA of the merge group's parent commit").

    def enqueue(self, *numbers: int, by: str, method: str = "merge") -> list[QueueEntry]:
        """Add PRs to the queue of their base branch, in order, behind the entries already there. Like an
        admin, the double does not ask for the PRs' required statuses first."""
        with self._lock:
            entries: list[QueueEntry] = []
            for number in numbers:
                pull = self.pulls[number]
                assert pull.state == "open", f"#{number} is {pull.state}"
                ahead = [e for e in self.queue if e.base_ref == pull.base_ref]
                base_sha = ahead[0].base_sha if ahead else self.branch_sha(pull.base_ref)
                parent = ahead[-1].head_sha if ahead else base_sha
                commits = self._queue_commits(pull, parent, self.user(by).identity, method)
                ref = f"refs/heads/gh-readonly-queue/{pull.base_ref}/pr-{number}-{base_sha}"
                self.git.run("update-ref", ref, commits[-1], ZERO_SHA)
                entry = QueueEntry(number, ref, pull.base_ref, base_sha, commits[-1], by, commits)
                self.queue.append(entry)
                entries.append(entry)
            return entries

    def _queue_commits(self, pull: Pull, parent: str, who: Identity, method: str) -> list[str]:
        """The commits an entry adds on `parent` with the queue's merge method."""
        when = self.clock.tick()
        if method == "rebase":
            return self._replay(pull, parent, who, when)
        out = self.git.run("merge-tree", "--write-tree", parent, pull.head_sha, ok=(0, 1))
        if "CONFLICT" in out:  # GitHub removes the PR from the queue
            raise ApiError(422, f"#{pull.number} conflicts with the pull requests ahead of it in the queue")
        tree = out.split()[0]
        if method == "squash":
            author = self.user(pull.author).identity
            return [self.git.commit_tree(tree, [parent], f"{pull.title} (#{pull.number})\n", author, who,
                                         when)]
        message = f"Merge pull request #{pull.number} from {self.owner}/{pull.head_ref}\n\n{pull.title}\n"
        return [self.git.commit_tree(tree, [parent, pull.head_sha], message, who, who, when)]

    def land(self, entry: QueueEntry, by: str, admin: bool = False) -> str:
        """The group's required check passed (or an admin bypasses it): the base branch is fast-forwarded
        to the entry's head, and its PR and every PR ahead of it are merged by their entry's commits."""
        with self._lock:
            context = f"gitops-flags: {entry.base_ref}"
            last = [s for s in self.statuses if s.sha == entry.head_sha and s.context == context]
            if not admin and (not last or last[-1].state != "success"):
                raise ApiError(405, f"Required status check \"{context}\" has not succeeded on the group")
            tip = self.branch_sha(entry.base_ref)
            assert self.git.is_ancestor(tip, entry.head_sha), "the base moved: GitHub rebuilds the queue"
            self.git.run("update-ref", f"refs/heads/{entry.base_ref}", entry.head_sha, tip)
            when = iso(self.clock.tick())
            group = self.queue[: self.queue.index(entry) + 1]
            for landed in group:
                pull = self.pulls[landed.number]
                pull.merged, pull.state, pull.merged_by = True, "closed", by
                pull.merged_at = pull.closed_at = pull.updated_at = when
                pull.merge_commit_sha, pull.landed = landed.commits[-1], list(landed.commits)
                self.git.run("update-ref", "-d", landed.ref)
                self.queue.remove(landed)
            return entry.head_sha

    def queue_branch(self, entry: QueueEntry) -> str:
        return entry.ref.removeprefix("refs/heads/")

    # --- test-side controls: faults, other hosts ------------------------------------------------------

    def inject(self, method: str, path: str, kind: FaultKind, times: int = 1, retry_after: str = "1",
               before: Callable[[], object] | None = None) -> Fault:
        fault = Fault(method, path, kind, times, retry_after, before)
        with self._lock:
            self.faults.append(fault)
        return fault

    def serve(self, url: str, status: int, body: Any) -> None:
        """An answer for `url` on another host, reached through the double as an HTTP proxy."""
        parts = urlsplit(url)
        self.external[(parts.netloc, parts.path)] = (status, body)

    # --- assertions helpers ---------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method)
                    and (path is None or re.fullmatch(path, r.path))]

    def issue_comments(self, number: int) -> list[CommentRec]:
        return sorted((c for c in self.comments.values() if c.issue == number), key=lambda c: c.id)

    def statuses_for(self, sha: str) -> list[StatusRec]:
        return [s for s in self.statuses if s.sha == sha]

    # --- Actions event payloads (events/*.json with the double's values) ------------------------------

    def event(self, name: str, number: int | None = None, **overrides: Any) -> dict[str, Any]:
        """`pull_request.opened`, `pull_request.synchronize`, `pull_request_review.submitted`, `push`,
        `schedule`, `workflow_dispatch`: the captured payload with this repository, PR and sender."""
        payload: dict[str, Any] = self._rebase(load_example("events", name))
        payload["repository"] = self._repo_body()
        if "organization" in payload:
            payload["organization"] = self._user_body(self.owner)
        if number is not None:
            pull = self.pulls[number]
            body = self._pull_body(pull)
            payload["pull_request"] = body
            if "number" in payload or name.startswith("pull_request."):
                payload["number"] = number
            payload["sender"] = self._user_body(pull.author)
            if name == "pull_request.synchronize":
                payload["before"], payload["after"] = (pull.commits[-2] if len(pull.commits) > 1 else
                                                       pull.base_sha), pull.head_sha
            if name.startswith("pull_request_review."):
                review = pull.reviews[-1]
                payload["review"] = {**self._review_body(pull, review), "state": review.state.lower()}
                payload["sender"] = self._user_body(review.user)
        payload.update(overrides)
        return payload

    def merge_group_event(self, entry: QueueEntry) -> dict[str, Any]:
        """`merge_group` (`checks_requested`): the captured payload (events/merge_group.checks_requested.json,
        octokit/webhooks' example) with this repository and the entry's group. Its `merge_group` holds only
        `head_sha`, `head_ref`, `base_sha`, `base_ref` and `head_commit` (GitHub's `merge-group` schema):
        no PR number but the one in `head_ref`."""
        payload: dict[str, Any] = self._rebase(load_example("events", "merge_group.checks_requested"))
        payload["repository"] = self._repo_body()
        payload["organization"] = self._user_body(self.owner)
        raw = self.git.run("log", "-1", "--format=%T%x00%an%x00%ae%x00%cn%x00%ce%x00%cI%x00%B",
                           entry.head_sha)
        tree, an, ae, cn, ce, date, message = raw.split("\0", 6)
        group = payload["merge_group"]
        group.update(head_sha=entry.head_sha, head_ref=entry.ref, base_sha=entry.base_sha,
                     base_ref=f"refs/heads/{entry.base_ref}")
        group["head_commit"].update(id=entry.head_sha, tree_id=tree, message=message.rstrip("\n"),
                                    timestamp=iso(datetime.fromisoformat(date)),
                                    author={"name": an, "email": ae}, committer={"name": cn, "email": ce})
        payload["sender"] = self._user_body(entry.queued_by)
        return payload

    # --- HTTP ----------------------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        parts = urlsplit(target)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = unquote(parts.path)
        if parts.scheme:  # absolute form: we are the proxy for another host
            rec = Recorded(method, path, query, body, host=parts.netloc)
            key = f"//{parts.netloc}{path}"
        else:
            if path.startswith(self.prefix):
                path = path[len(self.prefix):] or "/"
            rec = Recorded(method, path, query, body)
            key = path
        with self._lock:
            self.log.append(rec)
            fault = next((f for f in self.faults if f.matches(method, key)), None)
            if fault is not None:
                fault.hits += 1
                rec.fault = fault.kind
        reply = self._faulted(fault, rec) if fault is not None else None
        if reply is None and rec.host:
            with self._lock:
                answer = self.external.get((rec.host, parts.path))
            status, data = answer if answer else (404, {"message": "Not Found"})
            reply = status, {"content-type": "application/json"}, json.dumps(data).encode()
        elif reply is None:
            reply = self._answer(method, path, query, body, headers, rec)
            if fault is not None and fault.kind == "lost":  # done, but the answer never arrives
                reply = self._error_reply(ApiError(502, "Server Error"))
        rec.status = reply[0]
        return reply

    def _faulted(self, fault: Fault, rec: Recorded) -> Reply | None:
        """The fault's answer, or None to answer normally (after its side effect)."""
        if fault.before is not None:  # outside the lock: it may send requests of its own
            fault.before()
        if fault.kind == "hold":
            fault.arrived.set()
            fault.release.wait(timeout=60)
            return None
        if fault.kind == "502":
            return 502, {"content-type": "application/json"}, json.dumps({"message": "Server Error"}).encode()
        if fault.kind == "rate_limit":
            if rec.method == "GET":
                body = observed_error("secondary rate limit (403), older wording")["body"]
            else:  # content creation has its own wording
                text = observed_error("secondary rate limit on content creation")["message"]
                body = {"message": text, "documentation_url": "https://docs.github.com/rest/overview/rate-limits-"
                        "for-the-rest-api#about-secondary-rate-limits"}
            return 403, {"content-type": "application/json", "retry-after": fault.retry_after,
                         **self._rate_headers()}, json.dumps(body).encode()
        if fault.kind == "conflict" and fault.before is None:
            self._another_writer(rec.path)
        return None

    def _another_writer(self, path: str) -> None:
        """Move the ref of `.../git/refs/heads/B` to a new commit with the same tree."""
        match = re.search(r"/git/refs/(.+)$", path)
        assert match, path
        ref = f"refs/{match[1]}"
        with self._lock:
            tip = self.git.rev(ref)
            assert tip is not None
            tree = self.git.run("rev-parse", f"{tip}^{{tree}}").strip()
            who = self.user(BOT, "Bot").identity
            sha = self.git.commit_tree(tree, [tip], "another writer", who, who, self.api_clock.tick())
            self.git.run("update-ref", ref, sha, tip)

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any, headers: Mapping[str, str],
                rec: Recorded) -> Reply:
        auth = headers.get("authorization") or headers.get("Authorization") or ""
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return self._error_reply(ApiError(401, "Bad credentials"))
        for verb, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and verb == method:
                try:
                    with self._lock:
                        out = handler(_Req(method, path, query, body), *match.groups())
                except ApiError as exc:
                    return self._error_reply(exc)
                status, data = out[0], out[1]
                extra = out[2] if len(out) > 2 else {}
                return status, {"content-type": "application/json; charset=utf-8", **self._rate_headers(),
                                **extra}, json.dumps(data).encode()
        with self._lock:
            self.unhandled.append(rec)
        return self._error_reply(ApiError(404, "Not Found"))

    def _rate_headers(self) -> dict[str, str]:
        self._remaining = max(self._remaining - 1, 0)
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self._remaining),
                "x-ratelimit-used": str(5000 - self._remaining), "x-ratelimit-resource": "core",
                "x-ratelimit-reset": str(int(datetime.now(UTC).timestamp()) + 3600),
                "x-github-request-id": f"E2E:{self._next_id()}"}

    def _error_reply(self, exc: ApiError) -> Reply:
        headers = {"content-type": "application/json; charset=utf-8", **exc.headers}
        return exc.status, headers, json.dumps(exc.body()).encode()

    # --- routes --------------------------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        repo = re.escape(f"/repos/{self.full_name}")
        table: list[tuple[str, str, Handler]] = [
            ("GET", repo, self._get_repo),
            ("GET", repo + r"/pulls/(\d+)", self._get_pull),
            ("GET", repo + r"/pulls/(\d+)/files", self._list_files),
            ("GET", repo + r"/pulls/(\d+)/reviews", self._list_reviews),
            ("POST", repo + r"/pulls/(\d+)/requested_reviewers", self._request_reviewers),
            ("PUT", repo + r"/pulls/(\d+)/reviews/(\d+)/dismissals", self._dismiss_review),
            ("GET", repo + r"/issues/(\d+)/comments", self._list_comments),
            ("GET", repo + r"/issues/(\d+)/events", self._list_events),
            ("GET", repo + r"/pulls/(\d+)/commits", self._list_commits),
            ("GET", repo + r"/compare/([0-9a-f]{40})\.\.\.([0-9a-f]{40})", self._compare),
            ("POST", repo + r"/issues/(\d+)/comments", self._create_comment),
            ("PATCH", repo + r"/issues/comments/(\d+)", self._update_comment),
            ("POST", repo + r"/statuses/([0-9a-f]{40})", self._create_status),
            ("GET", repo + r"/commits/([^/]+)/pulls", self._commit_pulls),
            ("GET", repo + r"/contents(?:/(.*))?", self._contents),
            ("GET", r"/orgs/([^/]+)/teams/([^/]+)/members", self._team_members),
            ("GET", repo + r"/git/ref/(.+)", self._get_ref),
            ("GET", repo + r"/git/matching-refs/(.+)", self._matching_refs),
            ("PATCH", repo + r"/git/refs/(.+)", self._update_ref),
            ("POST", repo + r"/git/refs", self._create_ref),
            ("GET", repo + r"/git/commits/([0-9a-f]{40})", self._get_commit),
            ("POST", repo + r"/git/commits", self._create_commit),
            ("GET", repo + r"/git/trees/([0-9a-f]{40})", self._get_tree),
            ("POST", repo + r"/git/trees", self._create_tree),
            ("GET", repo + r"/git/blobs/([0-9a-f]{40})", self._get_blob),
            ("POST", repo + r"/git/blobs", self._create_blob),
        ]
        return [(verb, re.compile(pattern), handler) for verb, pattern, handler in table]

    def _pull(self, number: str) -> Pull:
        pull = self.pulls.get(int(number))
        if pull is None:
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
        return pull

    def _get_repo(self, req: _Req) -> tuple[int, Any]:
        return 200, self._repo_body()

    def _get_pull(self, req: _Req, number: str) -> tuple[int, Any]:
        return 200, self._pull_body(self._pull(number))

    def _list_files(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        pull = self._pull(number)
        return self._paged(req, self._files(pull)[:3000])

    def _list_reviews(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        pull = self._pull(number)
        return self._paged(req, [self._review_body(pull, r) for r in pull.reviews])

    def _request_reviewers(self, req: _Req, number: str) -> tuple[int, Any]:
        pull = self._pull(number)
        data = req.json()
        users, teams = list(data.get("reviewers") or []), list(data.get("team_reviewers") or [])
        doc = "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request"
        if any(u.lower() == pull.author.lower() for u in users):
            raise ApiError(422, "Review cannot be requested from pull request author.", doc)
        unknown = [u for u in users if u not in self.users or self.users[u].association == "NONE"]
        unknown += [t for t in teams if f"{self.owner}/{t}".lower() not in self.teams]
        if unknown:
            raise ApiError(422, "Reviews may only be requested from collaborators. One or more of the users "
                           f"or teams you specified is not a collaborator of the {self.full_name} "
                           "repository.", doc)
        pull.requested_reviewers += [u for u in users if u not in pull.requested_reviewers]
        pull.requested_teams += [t for t in teams if t not in pull.requested_teams]
        return 201, self._simple(self._pull_body(pull), "pulls--request-reviewers")

    def _dismiss_review(self, req: _Req, number: str, review_id: str) -> tuple[int, Any]:
        """pulls/dismiss-review, https://docs.github.com/rest/pulls/reviews#dismiss-a-review-for-a-pull-request:
        `message` is required; the answer is the review (a list-reviews item's shape), now DISMISSED."""
        pull = self._pull(number)
        if not str(req.json().get("message") or ""):
            raise ApiError(422, "Validation Failed",
                           "https://docs.github.com/rest/pulls/reviews#dismiss-a-review-for-a-pull-request",
                           [{"resource": "PullRequestReview", "code": "missing_field", "field": "message"}])
        return 200, self._review_body(pull, self.dismiss(pull.number, int(review_id), BOT))

    def _list_comments(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        self._pull(number)
        return self._paged(req, [self._comment_body(c) for c in self.issue_comments(int(number))])

    def _create_comment(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        self._pull(number)
        text = str(req.json().get("body") or "")
        self._check_comment(text, "https://docs.github.com/rest/issues/comments#create-an-issue-comment")
        now = iso(self.api_clock.tick())
        rec = CommentRec(self._next_id(), int(number), BOT, text, now, now)
        self.comments[rec.id] = rec
        body = self._comment_body(rec)
        return 201, body, {"location": body["url"]}

    def _update_comment(self, req: _Req, comment_id: str) -> tuple[int, Any]:
        rec = self.comments.get(int(comment_id))
        if rec is None:
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/issues/comments#update-an-issue-comment")
        text = str(req.json().get("body") or "")
        self._check_comment(text, "https://docs.github.com/rest/issues/comments#update-an-issue-comment")
        rec.body, rec.updated_at = text, iso(self.api_clock.tick())
        return 200, self._comment_body(rec)

    @staticmethod
    def _check_comment(text: str, doc: str) -> None:
        if not text:
            raise ApiError(422, "Validation Failed", doc,
                           [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        if len(text) > 65536:
            raise ApiError(422, "Validation Failed", doc,
                           [{"resource": "IssueComment", "code": "unprocessable", "field": "data",
                             "message": "Body is too long (maximum is 65536 characters)"}])

    def _create_status(self, req: _Req, sha: str) -> tuple[int, Any]:
        data = req.json()
        doc = "https://docs.github.com/rest/commits/statuses#create-a-commit-status"
        if self.git.object_type(sha) != "commit":
            raise ApiError(422, f"No commit found for SHA: {sha}", doc)
        if data.get("state") not in ("error", "failure", "pending", "success"):
            raise ApiError(422, "Validation Failed", doc,
                           [{"resource": "Status", "code": "custom", "field": "state",
                             "message": "state is not included in the list"}])
        rec = StatusRec(self._next_id(), sha, str(data["state"]), str(data.get("description") or ""),
                        str(data.get("context") or "default"), data.get("target_url"),
                        iso(self.api_clock.tick()))
        self.statuses.append(rec)
        body = self._rebase(load_example("examples", "repos--create-commit-status"))
        body.update(url=f"{self.repo_url}/statuses/{sha}", id=rec.id, node_id=f"SC_{rec.id}", state=rec.state,
                    description=rec.description, target_url=rec.target_url, context=rec.context,
                    created_at=rec.created_at, updated_at=rec.created_at, creator=self._user_body(BOT))
        return 201, body

    def _list_events(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        """issues/list-events. GitHub publishes no example of `base_ref_changed` or `head_ref_force_pushed`:
        the `issues--list-events` example's common fields are kept (github/docs issue-event-types.md lists
        only those for both), its `label` dropped."""
        pull = self._pull(number)
        items = []
        for rec in pull.events:
            item = self._rebase(load_example("examples", "issues--list-events")[0])
            item.pop("label", None)
            item.update(id=rec.id, node_id=f"E_{rec.id}", url=f"{self.repo_url}/issues/events/{rec.id}",
                        actor=self._user_body(rec.actor), event=rec.event, commit_id=None, commit_url=None,
                        created_at=rec.created_at)
            items.append(item)
        return self._paged(req, items)

    def _list_commits(self, req: _Req, number: str) -> tuple[int, Any, dict[str, str]]:
        """pulls/list-commits: `author`/`committer` are the GitHub accounts of the git identities."""
        pull = self._pull(number)
        by_email = {u.identity.email: u.login for u in self.users.values()}
        items = []
        for sha in pull.commits[:250]:
            fields = self.git.run("log", "-1", "--format=%ae%x00%ce%x00%cI%x00%P", sha).strip().split("\0")
            author, committer, date, parents = fields
            item = self._rebase(load_example("examples", "pulls--list-commits")[0])
            item.update(sha=sha, node_id=f"C_{sha[:12]}", url=f"{self.repo_url}/commits/{sha}",
                        html_url=f"{self.html_url}/commit/{sha}",
                        author=self._user_body(by_email[author]) if author in by_email else None,
                        committer=self._user_body(by_email[committer]) if committer in by_email else None,
                        parents=[{"sha": p, "url": f"{self.repo_url}/commits/{p}"} for p in parents.split()])
            item["commit"]["committer"]["date"] = date
            items.append(item)
        return self._paged(req, items)

    def _compare(self, req: _Req, base: str, head: str) -> tuple[int, Any]:
        """repos/compare-commits, the fields the tool reads: `merge_base_commit.sha` and `status`."""
        if self.git.object_type(base) != "commit" or self.git.object_type(head) != "commit":
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/commits/commits#compare-two-commits")
        body: dict[str, Any] = self._rebase(load_example("examples", "repos--compare-commits"))
        merge_base = self.git.merge_base(base, head)
        body["merge_base_commit"]["sha"] = merge_base
        body["base_commit"]["sha"] = base
        body.update(commits=[], files=[], total_commits=0)
        return 200, body

    def _commit_pulls(self, req: _Req, sha: str) -> tuple[int, Any, dict[str, str]]:
        if self.git.object_type(sha) != "commit":
            raise ApiError(422, f"No commit found for SHA: {sha}",
                           "https://docs.github.com/rest/commits/commits#list-pull-requests-associated-with-a-commit")
        found = [p for p in self.pulls.values()
                 if p.merge_commit_sha == sha or sha in p.commits or sha in p.landed]
        default = self.branch_sha("main")
        if self.git.is_ancestor(sha, default):  # on the default branch: only the merged PR that brought it
            found = [p for p in found if p.merged]
        shape = "repos--list-pull-requests-associated-with-commit"
        items = [self._simple(self._pull_body(p), shape) for p in found]
        return self._paged(req, items)

    def _contents(self, req: _Req, path: str | None) -> tuple[int, Any]:
        path = (path or "").strip("/")
        ref = req.query.get("ref") or "main"
        doc = "https://docs.github.com/rest/repos/contents#get-repository-content"
        sha = self.git.rev(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}", doc)
        if path == "":
            rows = self.git.ls_tree(sha)
        else:
            found = self.git.ls_tree(sha, path)
            if not found:
                raise ApiError(404, "Not Found", doc)
            if found[0][1] == "blob":
                mode, _, blob, size, name = found[0]
                return 200, self._content_file(name, blob, int(size), sha)
            rows = self.git.ls_tree(sha, path + "/")
        item = self._rebase(load_example("examples",
                                         "repos--get-content.content-file-response-if-content-is-a-directory")[0])
        out = []
        for mode, kind, blob, size, name in rows:
            entry = copy.deepcopy(item)
            typ = {"blob": "file", "tree": "dir", "commit": "submodule"}[kind]
            if mode == "120000":
                typ = "symlink"
            entry.update(type=typ, size=int(size) if size != "-" else 0, name=name.rsplit("/", 1)[-1],
                         path=name,
                         sha=blob, url=f"{self.repo_url}/contents/{name}?ref={ref}",
                         git_url=f"{self.repo_url}/git/{'blobs' if kind == 'blob' else 'trees'}/{blob}",
                         html_url=f"{self.html_url}/{'blob' if kind == 'blob' else 'tree'}/{ref}/{name}",
                         download_url=f"{self.html_url}/raw/{ref}/{name}" if kind == "blob" else None)
            entry["_links"] = {"self": entry["url"], "git": entry["git_url"], "html": entry["html_url"]}
            out.append(entry)
        return 200, out

    def _content_file(self, path: str, blob: str, size: int, ref: str) -> dict[str, Any]:
        body: dict[str, Any] = self._rebase(load_example("examples", "repos--get-content"))
        body.update(type="file", encoding="base64", size=size, name=path.rsplit("/", 1)[-1], path=path,
                    content=base64.encodebytes(self.git.blob(blob)).decode(), sha=blob,
                    url=f"{self.repo_url}/contents/{path}?ref={ref}",
                    git_url=f"{self.repo_url}/git/blobs/{blob}",
                    html_url=f"{self.html_url}/blob/{ref}/{path}",
                    download_url=f"{self.html_url}/raw/{ref}/{path}")
        body["_links"] = {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
        return body

    def _team_members(self, req: _Req, org: str, slug: str) -> tuple[int, Any, dict[str, str]]:
        key = f"{org}/{slug}".lower()
        doc = "https://docs.github.com/rest/teams/members#list-team-members"
        hidden = self.hidden_teams.get(key)
        if hidden == 403:
            raise ApiError(403, "Resource not accessible by integration", doc)
        if hidden or key not in self.teams:
            raise ApiError(404, "Not Found", doc)
        item = self._rebase(load_example("examples", "teams--list-members-in-org")[0])
        members = []
        for login in self.teams[key]:
            entry = {**copy.deepcopy(item), **self._user_body(login)}
            entry.update(role="member", inherited=False)
            members.append(entry)
        return self._paged(req, members)

    # --- the Git data API ----------------------------------------------------------------------------

    def _ref_body(self, ref: str, sha: str) -> dict[str, Any]:
        body: dict[str, Any] = self._rebase(load_example("examples", "git--get-ref"))
        body.update(ref=ref, node_id="REF_" + base64.b64encode(ref.encode()).decode(),
                    url=f"{self.repo_url}/git/{ref}")
        body["object"] = {"type": "commit", "sha": sha, "url": f"{self.repo_url}/git/commits/{sha}"}
        return body

    def _get_ref(self, req: _Req, ref: str) -> tuple[int, Any]:
        if not self.git.run("for-each-ref", "--count=1").strip():
            raise ApiError(409, "Git Repository is empty.", "https://docs.github.com/rest/git/refs#get-a-reference")
        sha = self.git.rev(f"refs/{ref}")
        if sha is None:
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/git/refs#get-a-reference")
        return 200, self._ref_body(f"refs/{ref}", sha)

    def _matching_refs(self, req: _Req, prefix: str) -> tuple[int, Any, dict[str, str]]:
        """git/list-matching-refs: the refs whose full name starts with `refs/<prefix>` (a plain prefix, not
        whole path components), `[]` when none; each in the `git-ref` shape."""
        listing = self.git.run("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/")
        rows = [line.split("\0") for line in listing.splitlines() if line]
        found = [self._ref_body(ref, sha) for ref, sha in sorted(rows) if ref.startswith(f"refs/{prefix}")]
        return self._paged(req, found)

    def _update_ref(self, req: _Req, ref: str) -> tuple[int, Any]:
        data = req.json()
        doc = "https://docs.github.com/rest/git/refs#update-a-reference"
        full = f"refs/{ref}"
        old = self.git.rev(full)
        new = str(data.get("sha") or "")
        if old is None:
            raise ApiError(422, "Reference does not exist", doc)
        if self.git.object_type(new) != "commit":
            raise ApiError(422, "Object does not exist", doc)
        if not data.get("force") and not self.git.is_ancestor(old, new):
            raise ApiError(422, "Update is not a fast forward", doc)
        self.git.run("update-ref", full, new, old)
        return 200, self._ref_body(full, new)

    def _create_ref(self, req: _Req) -> tuple[int, Any]:
        data = req.json()
        doc = "https://docs.github.com/rest/git/refs#create-a-reference"
        ref, sha = str(data.get("ref") or ""), str(data.get("sha") or "")
        if not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name must start with 'refs/' and have at least two slashes.", doc)
        if self.git.object_type(sha) != "commit":
            raise ApiError(422, "Object does not exist", doc)
        if self.git.rev(ref) is not None:
            raise ApiError(422, "Reference already exists", doc)
        self.git.run("update-ref", ref, sha, ZERO_SHA)
        return 201, self._ref_body(ref, sha)

    def _commit_body(self, sha: str) -> dict[str, Any]:
        raw = self.git.run("cat-file", "commit", sha)
        head, _, message = raw.partition("\n\n")
        tree, parents, people = "", [], {}
        for line in head.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key in ("author", "committer"):
                m = re.fullmatch(r"(.*) <(.*)> (\d+) ([+-]\d{4})", value)
                assert m
                people[key] = {"name": m[1], "email": m[2],
                               "date": iso(datetime.fromtimestamp(int(m[3]), UTC))}
        return {
            "sha": sha, "node_id": f"C_{sha[:16]}", "url": f"{self.repo_url}/git/commits/{sha}",
            "html_url": f"{self.html_url}/commit/{sha}", "author": people["author"],
            "committer": people["committer"], "message": message,
            "tree": {"sha": tree, "url": f"{self.repo_url}/git/trees/{tree}"},
            "parents": [{"sha": p, "url": f"{self.repo_url}/git/commits/{p}",
                         "html_url": f"{self.html_url}/commit/{p}"} for p in parents],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
        }

    def _get_commit(self, req: _Req, sha: str) -> tuple[int, Any]:
        if self.git.object_type(sha) != "commit":
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/git/commits#get-a-commit-object")
        return 200, self._commit_body(sha)

    def _create_commit(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        data = req.json()
        doc = "https://docs.github.com/rest/git/commits#create-a-commit"
        tree, parents = str(data.get("tree") or ""), [str(p) for p in data.get("parents") or []]
        if self.git.object_type(tree) != "tree" or any(self.git.object_type(p) != "commit" for p in parents):
            raise ApiError(422, "Tree SHA does not exist" if self.git.object_type(tree) != "tree"
                           else "Parent SHA does not exist or is not a commit object", doc)
        bot = self.user(BOT, "Bot").identity

        def who(key: str) -> Identity:
            value = data.get(key) or {}
            return Identity(str(value.get("name") or bot.name), str(value.get("email") or bot.email))

        sha = self.git.commit_tree(tree, parents, str(data.get("message") or ""), who("author"),
                                   who("committer"), self.api_clock.tick())
        body = self._commit_body(sha)
        return 201, body, {"location": body["url"]}

    def _tree_body(self, sha: str, recursive: bool) -> dict[str, Any]:
        entries = []
        for mode, kind, obj, size, path in self.git.ls_tree(sha, recursive=recursive):
            entry: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": obj,
                                     "url": f"{self.repo_url}/git/{kind}s/{obj}"}
            if kind == "blob":
                entry["size"] = int(size)
            entries.append(entry)
        return {"sha": sha, "url": f"{self.repo_url}/git/trees/{sha}", "tree": entries, "truncated": False}

    def _get_tree(self, req: _Req, sha: str) -> tuple[int, Any]:
        kind = self.git.object_type(sha)
        if kind not in ("tree", "commit"):
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/git/trees#get-a-tree")
        tree = self.git.run("rev-parse", f"{sha}^{{tree}}").strip()
        return 200, self._tree_body(tree, req.query.get("recursive") not in (None, "", "0", "false"))

    def _create_tree(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        data = req.json()
        doc = "https://docs.github.com/rest/git/trees#create-a-tree"
        base = data.get("base_tree")
        if base is not None and self.git.object_type(str(base)) not in ("tree", "commit"):
            raise ApiError(422, "base_tree is not a valid tree oid", doc)
        entries: dict[str, tuple[str, str] | None] = {}
        for item in data.get("tree") or []:
            path, mode = str(item.get("path") or ""), str(item.get("mode") or "100644")
            if "content" in item and item["content"] is not None:
                if item.get("sha") is not None:  # documented: "Use either tree.sha or content"
                    raise ApiError(422, "Use either tree.sha or content, not both", doc)
                # GitHub writes the UTF-8 text as a blob and uses its sha for the entry
                entries[path] = (mode, self.git.hash_objects([str(item["content"]).encode()])[0])
            elif item.get("sha") is None:
                entries[path] = None
            elif self.git.object_type(str(item["sha"])) is None:
                raise ApiError(422, f"GitRPC::BadObjectState: {item['sha']}", doc)
            else:
                entries[path] = (mode, str(item["sha"]))
        sha = self.git.write_tree(str(base) if base else None, entries)
        body = self._tree_body(sha, recursive=False)
        return 201, body, {"location": body["url"]}

    def _get_blob(self, req: _Req, sha: str) -> tuple[int, Any]:
        if self.git.object_type(sha) != "blob":
            raise ApiError(404, "Not Found", "https://docs.github.com/rest/git/blobs#get-a-blob")
        data = self.git.blob(sha)
        return 200, {"content": base64.encodebytes(data).decode(), "encoding": "base64",
                     "url": f"{self.repo_url}/git/blobs/{sha}", "sha": sha, "size": len(data),
                     "node_id": f"B_{sha[:16]}"}

    def _create_blob(self, req: _Req) -> tuple[int, Any, dict[str, str]]:
        data = req.json()
        content, encoding = str(data.get("content") or ""), str(data.get("encoding") or "utf-8")
        if encoding not in ("utf-8", "base64"):
            raise ApiError(422, f"encoding must be utf-8 or base64, got {encoding}",
                           "https://docs.github.com/rest/git/blobs#create-a-blob")
        raw = base64.b64decode(content) if encoding == "base64" else content.encode()
        sha = self.git.hash_objects([raw])[0]
        url = f"{self.repo_url}/git/blobs/{sha}"
        return 201, {"url": url, "sha": sha}, {"location": url}

    # --- bodies ----------------------------------------------------------------------------------------

    def _rebase(self, value: Any) -> Any:
        """An example with its URLs pointed at the double and its repository renamed."""
        text = json.dumps(value)
        text = text.replace(EXAMPLE_API, self.api_url).replace(EXAMPLE_SERVER, self.server_url)
        text = text.replace("octocat/Hello-World", self.full_name)
        return json.loads(text)

    def _user_body(self, login: str) -> dict[str, Any]:
        user = self.users.get(login) or self.user(login)
        body: dict[str, Any] = self._rebase(load_example("examples", "pulls--get")["user"])
        text = json.dumps(body).replace("/octocat", "/" + quote_login(login))
        body = json.loads(text)
        body.update(login=login, id=user.id, node_id=f"U_{user.id}", type=user.type, site_admin=False,
                    avatar_url=f"{self.server_url}/avatars/{quote_login(login)}")
        return body

    def _repo_body(self) -> dict[str, Any]:
        repo: dict[str, Any] = self._rebase(load_example("examples", "pulls--get")["base"]["repo"])
        text = json.dumps(repo).replace("Hello-World", self.name)
        repo = json.loads(text)
        repo.update(id=4242, node_id="R_e2e", name=self.name, full_name=self.full_name,
                    owner=self._user_body(self.owner), private=True, default_branch="main",
                    html_url=self.html_url, url=self.repo_url)
        return repo

    def _simple(self, full: dict[str, Any], example: str) -> dict[str, Any]:
        data = load_example("examples", example)
        keys = (data[0] if isinstance(data, list) else data).keys()
        return {k: full[k] for k in keys if k in full}

    def _pull_body(self, pull: Pull) -> dict[str, Any]:
        n = pull.number
        body: dict[str, Any] = self._rebase(load_example("examples", "pulls--get"))
        body = json.loads(json.dumps(body).replace("/1347", f"/{n}"))
        label = body["labels"][0]
        team = body["requested_teams"][0]
        files = self._files(pull)
        repo = self._repo_body()

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{self.owner}:{ref}", "ref": ref, "sha": sha,
                    "user": self._user_body(self.owner), "repo": repo}

        body.update(
            id=900000 + n, node_id=f"PR_{n}", number=n, state=pull.state, title=pull.title, body=pull.body,
            user=self._user_body(pull.author), created_at=pull.created_at, updated_at=pull.updated_at,
            closed_at=pull.closed_at, merged_at=pull.merged_at,
            merge_commit_sha=pull.merge_commit_sha, assignee=None, assignees=[], milestone=None,
            labels=[{**label, "id": 5000 + i, "node_id": f"LA_{i}", "name": name,
                     "url": f"{self.repo_url}/labels/{name}"} for i, name in enumerate(pull.labels)],
            requested_reviewers=[self._user_body(u) for u in pull.requested_reviewers],
            requested_teams=[{**team, "slug": t, "name": t, "id": 7000 + i,
                              "url": f"{self.api_url}/organizations/1/team/{7000 + i}",
                              "html_url": f"{self.server_url}/orgs/{self.owner}/teams/{t}"}
                             for i, t in enumerate(pull.requested_teams)],
            head=side(pull.head_ref, pull.head_sha), base=side(pull.base_ref, pull.base_sha),
            author_association=self.users[pull.author].association, auto_merge=None, draft=pull.draft,
            merged=pull.merged, mergeable=None if pull.merged else True, rebaseable=not pull.merged,
            mergeable_state="unknown" if pull.merged else "clean",
            merged_by=self._user_body(pull.merged_by) if pull.merged_by else None,
            comments=len(self.issue_comments(n)), review_comments=0, maintainer_can_modify=False,
            commits=len(pull.commits), additions=sum(f["additions"] for f in files),
            deletions=sum(f["deletions"] for f in files), changed_files=len(files),
        )
        return body

    def _files(self, pull: Pull) -> list[dict[str, Any]]:
        """pulls/list-files: the three-dot diff (merge base → head), renames detected as GitHub does."""
        key = (pull.base_sha, pull.head_sha)
        if key not in self._diffs:
            self._diffs[key] = self._diff_entries(*key)
        return copy.deepcopy(self._diffs[key])

    def _diff_entries(self, base_sha: str, head: str) -> list[dict[str, Any]]:
        base = self.git.merge_base(base_sha, head)
        listing = self.git.run("diff", "-z", "--raw", "--numstat", "--no-abbrev", "-M", base, head)
        tokens = iter(listing.split("\0"))
        raw: list[tuple[str, str, str | None]] = []  # (status letter, path, previous path)
        blobs: dict[str, str] = {}
        stats: dict[str, tuple[int, int]] = {}
        for token in tokens:
            if not token:
                continue
            if token.startswith(":"):
                _, _, src, dst, status = token[1:].split()
                first = next(tokens)
                if status[0] in "RC":
                    path, previous = next(tokens), first
                else:
                    path, previous = first, None
                raw.append((status[0], path, previous))
                blobs[path] = src if status[0] == "D" else dst
            else:
                plus, minus, path = token.split("\t")
                if not path:  # a rename: the two paths follow
                    next(tokens)
                    path = next(tokens)
                stats[path] = (int(plus) if plus != "-" else 0, int(minus) if minus != "-" else 0)
        item = self._rebase(load_example("examples", "pulls--list-files")[0])
        item.pop("patch", None)  # GitHub leaves it out for large or binary diffs; the tool never reads it
        names = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied",
                 "T": "changed"}
        out = []
        for letter, path, previous in raw:
            status = names[letter]
            ref = base if status == "removed" else head
            added, deleted = stats.get(path, (0, 0))
            entry = copy.deepcopy(item)
            entry.update(sha=blobs[path], filename=path, status=status, additions=added, deletions=deleted,
                         changes=added + deleted, blob_url=f"{self.html_url}/blob/{ref}/{path}",
                         raw_url=f"{self.html_url}/raw/{ref}/{path}",
                         contents_url=f"{self.repo_url}/contents/{path}?ref={ref}")
            if previous:
                entry["previous_filename"] = previous
            out.append(entry)
        return out

    def _review_body(self, pull: Pull, review: ReviewRec) -> dict[str, Any]:
        item: dict[str, Any] = self._rebase(load_example("examples", "pulls--list-reviews")[0])
        html = f"{self.html_url}/pull/{pull.number}#pullrequestreview-{review.id}"
        item.update(id=review.id, node_id=f"PRR_{review.id}", user=self._user_body(review.user),
                    body=review.body, state=review.state, html_url=html,
                    pull_request_url=f"{self.repo_url}/pulls/{pull.number}",
                    submitted_at=review.submitted_at, commit_id=review.commit_id,
                    author_association=self.users[review.user].association)
        item["_links"] = {"html": {"href": html}, "pull_request": {"href": item["pull_request_url"]}}
        return item

    def _comment_body(self, rec: CommentRec) -> dict[str, Any]:
        item: dict[str, Any] = self._rebase(load_example("examples", "issues--list-comments")[0])
        item.update(id=rec.id, node_id=f"IC_{rec.id}", url=f"{self.repo_url}/issues/comments/{rec.id}",
                    html_url=f"{self.html_url}/pull/{rec.issue}#issuecomment-{rec.id}", body=rec.body,
                    user=self._user_body(rec.user), created_at=rec.created_at, updated_at=rec.updated_at,
                    issue_url=f"{self.repo_url}/issues/{rec.issue}",
                    author_association=self.users[rec.user].association)
        return item

    def _paged(self, req: _Req, items: list[Any]) -> tuple[int, Any, dict[str, str]]:
        """`per_page` (default 30, at most 100) and `page`, with GitHub's `link` header."""
        try:
            per_page = min(max(int(req.query.get("per_page", "30")), 1), 100)
            page = max(int(req.query.get("page", "1")), 1)
        except ValueError:
            per_page, page = 30, 1
        last = max(math.ceil(len(items) / per_page), 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        rels = []

        def link(n: int) -> str:
            query = {**req.query, "per_page": str(per_page), "page": str(n)}
            return f"<{self.api_url}{req.path}?{urlencode(query)}>"

        if page < last:
            rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
        if page > 1:
            rels += [f'{link(page - 1)}; rel="prev"', f'{link(1)}; rel="first"']
        return 200, chunk, ({"link": ", ".join(rels)} if rels else {})


def quote_login(login: str) -> str:
    return login.replace("[", "%5B").replace("]", "%5D")


@dataclass(frozen=True)
class _Req:
    method: str
    path: str
    query: dict[str, str]
    body: Any

    def json(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return self.body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        double: GitHubDouble = self.server.double  # type: ignore[attr-defined]
        status, headers, body = double.dispatch(self.command, self.path, dict(self.headers.items()), raw)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed while we held its request
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the double keeps its own log
        pass
