"""The github-branch backend against a fake GitHub Git data API served through `responses`.

The fake keeps blobs, trees, commits and refs in memory and answers with GitHub's documented bodies:
the ref from `shared/github-api/examples/git--get-ref.json` (values swapped), and the blob, tree and
commit bodies shaped as GitHub's `blob`, `short-blob`, `git-tree` and `git-commit` responses (the
shared schema subset has no example for those endpoints). Errors use GitHub's real messages:
422 "Update is not a fast forward", 422 "Reference already exists", 404 "Not Found".
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from github import Auth, Github

from gitops_flags.store import ConflictError, StoreCorrupt, StoreError, Update, open_store, update
from gitops_flags.store.base import StoreSnapshot, manifest
from gitops_flags.store.github_branch import GitHubBranchStore, git_blob_sha
from gitops_flags.store.state import StoreState, UnitOfWork

API = "https://api.github.com"
REPO = "octocat/Hello-World"
BASE = f"{API}/repos/{REPO}"
BASE_RE = r"https://api\.github\.com(?::443)?/repos/octocat/Hello-World"  # PyGithub sends the :443
EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "github-api" / "examples"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
GIT_USER = {"name": "github-actions[bot]", "email": "41898282+github-actions[bot]@users.noreply.github.com",
            "date": "2026-12-01T09:00:00Z"}


def _sha1(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()


class FakeGitHub:
    """Just enough of the Git data API, with a hook to simulate another run racing us."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, dict[str, str]] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.refs: dict[str, str] = {}
        self.before_update: Callable[[], object] | None = None
        self.stored_text: Callable[[str], str] = lambda text: text  # what GitHub makes of inline `content`
        self.empty_repository = False
        self.failures: dict[tuple[str, str], tuple[int, str]] = {}  # (method, path regex) → error to answer
        self.failure_headers: dict[str, str] = {}  # sent with every failure
        self.rsps = rsps
        self.ref_example = json.loads((EXAMPLES / "git--get-ref.json").read_text())
        routes = [
            (responses.GET, r"/git/ref/heads/.+", self.get_ref),
            (responses.PATCH, r"/git/refs/heads/.+", self.update_ref),
            (responses.POST, r"/git/refs", self.create_ref),
            (responses.GET, r"/git/commits/\w+", self.get_commit),
            (responses.POST, r"/git/commits", self.create_commit),
            (responses.GET, r"/git/trees/\w+(\?.*)?", self.get_tree),
            (responses.POST, r"/git/trees", self.create_tree),
            (responses.GET, r"/git/blobs/\w+", self.get_blob),
            (responses.POST, r"/git/blobs", self.create_blob),
        ]
        for method, path, handler in routes:
            rsps.add_callback(method, re.compile(f"^{BASE_RE}{path}$"), self._failing(method, handler))

    def _failing(self, method: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def answer(request: Any) -> Any:
            for (m, path), (status, message) in self.failures.items():
                if m == method and re.search(path, _path(str(request.url))):
                    code, headers, text = _error(status, message)
                    return code, {**headers, **self.failure_headers}, text
            return handler(request)

        return answer

    # --- bodies ------------------------------------------------------------------------------------

    def ref_body(self, branch: str) -> dict[str, Any]:
        body: dict[str, Any] = copy.deepcopy(self.ref_example)
        sha = self.refs[branch]
        body["ref"] = f"refs/heads/{branch}"
        body["url"] = f"{BASE}/git/refs/heads/{branch}"
        body["object"].update(sha=sha, url=f"{BASE}/git/commits/{sha}")
        return body

    def commit_body(self, sha: str) -> dict[str, Any]:
        c = self.commits[sha]
        return {
            "sha": sha, "node_id": "C_" + sha[:8], "url": f"{BASE}/git/commits/{sha}",
            "html_url": f"https://github.com/{REPO}/commit/{sha}", "author": GIT_USER, "committer": GIT_USER,
            "message": c["message"], "tree": {"sha": c["tree"], "url": f"{BASE}/git/trees/{c['tree']}"},
            "parents": [{"sha": p, "url": f"{BASE}/git/commits/{p}", "html_url": f"https://github.com/{REPO}/commit/{p}"}
                        for p in c["parents"]],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
        }

    def tree_body(self, sha: str) -> dict[str, Any]:
        entries = [
            {"path": path, "mode": "100644", "type": "blob", "sha": blob, "size": len(self.blobs[blob]),
             "url": f"{BASE}/git/blobs/{blob}"}
            for path, blob in sorted(self.trees[sha].items())
        ]
        return {"sha": sha, "url": f"{BASE}/git/trees/{sha}", "tree": entries, "truncated": False}

    # --- endpoints ---------------------------------------------------------------------------------

    def get_ref(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.empty_repository:
            return _error(409, "Git Repository is empty.")
        branch = request.url.rsplit("/git/ref/heads/", 1)[1]
        if branch not in self.refs:
            return _error(404, "Not Found")
        return 200, {}, json.dumps(self.ref_body(branch))

    def update_ref(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.before_update:
            hook, self.before_update = self.before_update, None
            hook()
        branch = request.url.rsplit("/git/refs/heads/", 1)[1]
        body = json.loads(request.body)
        if branch not in self.refs:
            return _error(422, "Reference does not exist")
        if not body.get("force") and self.refs[branch] not in self.ancestors(body["sha"]):
            return _error(422, "Update is not a fast forward")
        self.refs[branch] = body["sha"]
        return 200, {}, json.dumps(self.ref_body(branch))

    def create_ref(self, request: Any) -> tuple[int, dict[str, str], str]:
        if self.before_update:
            hook, self.before_update = self.before_update, None
            hook()
        body = json.loads(request.body)
        branch = body["ref"].removeprefix("refs/heads/")
        if branch in self.refs:
            return _error(422, "Reference already exists")
        self.refs[branch] = body["sha"]
        return 201, {}, json.dumps(self.ref_body(branch))

    def get_commit(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(self.commit_body(request.url.rsplit("/", 1)[1]))

    def create_commit(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        sha = _sha1(body)
        self.commits[sha] = body
        return 201, {}, json.dumps(self.commit_body(sha))

    def get_tree(self, request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(self.tree_body(request.url.split("?")[0].rsplit("/", 1)[1]))

    def create_tree(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        entries = dict(self.trees[body["base_tree"]]) if "base_tree" in body else {}
        for e in body["tree"]:
            if "content" in e:  # GitHub writes the blob itself and uses its sha
                assert "sha" not in e, e  # the documentation: "use either tree.sha or content"
                data = self.stored_text(e["content"]).encode()
                self.blobs[git_blob_sha(data)] = data
                entries[e["path"]] = git_blob_sha(data)
            elif e["sha"] is None:
                entries.pop(e["path"], None)
            else:
                entries[e["path"]] = e["sha"]
        sha = _sha1(entries)
        self.trees[sha] = entries
        return 201, {}, json.dumps(self.tree_body(sha))

    def get_blob(self, request: Any) -> tuple[int, dict[str, str], str]:
        sha = request.url.rsplit("/", 1)[1]
        data = self.blobs[sha]
        body = {"content": base64.encodebytes(data).decode(), "encoding": "base64", "sha": sha,
                "url": f"{BASE}/git/blobs/{sha}", "size": len(data), "node_id": "B_" + sha[:8]}
        return 200, {}, json.dumps(body)

    def create_blob(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        assert body["encoding"] == "base64"
        data = base64.b64decode(body["content"])
        sha = git_blob_sha(data)
        self.blobs[sha] = data
        return 201, {}, json.dumps({"url": f"{BASE}/git/blobs/{sha}", "sha": sha})

    # --- helpers for the tests ---------------------------------------------------------------------

    def ancestors(self, sha: str) -> set[str]:
        seen, todo = set(), [sha]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.commits[current]["parents"])
        return seen

    def files(self, branch: str) -> dict[str, bytes]:
        tree = self.trees[self.commits[self.refs[branch]]["tree"]]
        return {path: self.blobs[sha] for path, sha in tree.items()}

    def push(self, branch: str, files: dict[str, bytes], message: str = "someone else") -> str:
        """A commit made behind the store's back (another run, or a person)."""
        for data in files.values():
            self.blobs[git_blob_sha(data)] = data
        tree = {path: git_blob_sha(data) for path, data in files.items()}
        tree_sha = _sha1(tree)
        self.trees[tree_sha] = tree
        parents = [self.refs[branch]] if branch in self.refs else []
        body = {"message": message, "tree": tree_sha, "parents": parents}
        sha = _sha1(body)
        self.commits[sha] = body
        self.refs[branch] = sha
        return sha


def _error(status: int, message: str) -> tuple[int, dict[str, str], str]:
    return status, {}, json.dumps({"message": message, "documentation_url": "https://docs.github.com/rest/git/refs"})


@pytest.fixture
def fake() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeGitHub(rsps)


def make_store() -> GitHubBranchStore:
    gh = Github(auth=Auth.Token("test-token"), seconds_between_requests=None, seconds_between_writes=None,
                retry=None, lazy=True)
    return GitHubBranchStore(gh.get_repo(REPO), "flag-store")


def doc(value: str) -> dict[str, Any]:
    return {"flags": {"f": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": value}}}


def calls(rsps: responses.RequestsMock, start: int = 0) -> list[tuple[str, str]]:
    return [(str(c.request.method), _path(str(c.request.url))) for c in rsps.calls[start:]]


def _path(url: str) -> str:
    return re.sub(f"^{BASE_RE}", "", url).split("?")[0]


def body(rsps: responses.RequestsMock, index: int) -> Any:
    return json.loads(rsps.calls[index].request.body or "null")


def test_missing_branch_is_an_empty_store(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    assert store.read() == StoreSnapshot(StoreState(), {}, None)
    assert store.read_audit() == []
    assert calls(rsps) == [("GET", "/git/ref/heads/flag-store")] * 2


def test_first_write_creates_the_branch_with_an_orphan_commit(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    version = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, None,
                          audit=[{"n": 1}], message="gitops-flags: apply c1")
    sent = calls(rsps)
    assert sent == [  # three writes: the files travel inline in the tree, no POST /git/blobs
        ("GET", "/git/ref/heads/flag-store"),
        ("POST", "/git/trees"),
        ("POST", "/git/commits"),
        ("POST", "/git/refs"),
    ]
    tree_request = body(rsps, 1)
    assert "base_tree" not in tree_request
    files = fake.files("flag-store")
    assert tree_request["tree"] == [
        {"path": name, "mode": "100644", "type": "blob", "content": files[name].decode()}
        for name in ["audit.jsonl", "production.flagd.json", "state.json", "store.sha256"]]
    commit_request = body(rsps, 2)
    assert commit_request["parents"] == [] and commit_request["message"] == "gitops-flags: apply c1"
    assert commit_request["tree"] == fake.commits[version]["tree"]
    assert body(rsps, 3) == {"ref": "refs/heads/flag-store", "sha": version}
    assert fake.refs["flag-store"] == version
    assert json.loads(files["production.flagd.json"]) == doc("a")
    assert files["store.sha256"] == manifest({k: v for k, v in files.items() if k != "store.sha256"})


def test_read_after_write_round_trips(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    state = StoreState(applied_commit="c1")
    version = make_store().write(state, {"production": doc("a")}, None, audit=[{"n": 1}])
    snap = make_store().read()
    assert snap.version == version
    assert snap.state.applied_commit == "c1" and snap.documents == {"production": doc("a")}
    start = len(rsps.calls)
    assert make_store().read_audit() == [{"n": 1}]
    assert ("GET", "/git/ref/heads/flag-store") in calls(rsps, start)


def test_write_sends_only_changed_files_inline_on_top_of_the_head(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("a"), "staging": doc("a")}, None)
    head_tree = fake.commits[v1]["tree"]
    snap = store.read()
    start = len(rsps.calls)
    v2 = store.write(StoreState(applied_commit="c2"), {"production": doc("b")}, snap.version)
    assert calls(rsps, start) == [
        ("GET", "/git/ref/heads/flag-store"),
        ("POST", "/git/trees"),
        ("POST", "/git/commits"),
        ("PATCH", "/git/refs/heads/flag-store"),
    ]
    tree_request = body(rsps, start + 1)
    assert tree_request["base_tree"] == head_tree
    files = fake.files("flag-store")
    assert tree_request["tree"] == [
        {"path": "production.flagd.json", "mode": "100644", "type": "blob",
         "content": files["production.flagd.json"].decode()},
        {"path": "state.json", "mode": "100644", "type": "blob", "content": files["state.json"].decode()},
        {"path": "store.sha256", "mode": "100644", "type": "blob", "content": files["store.sha256"].decode()},
        {"path": "staging.flagd.json", "mode": "100644", "type": "blob", "sha": None},  # env removed
    ]
    assert json.loads(files["production.flagd.json"]) == doc("b")
    assert body(rsps, start + 2)["parents"] == [v1]
    assert body(rsps, start + 3) == {"sha": v2, "force": False}
    assert set(fake.files("flag-store")) == {"production.flagd.json", "state.json", "store.sha256"}


def test_inline_files_are_cached_under_the_sha_github_gives_them(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("Zoë ✓")}, None,
                     audit=[{"who": "José"}])
    assert fake.files("flag-store")["audit.jsonl"] == '{"who":"José"}\n'.encode()  # non-ASCII text survives
    start = len(rsps.calls)
    snap = store.read()  # the bytes it sent are the blobs GitHub wrote: nothing to fetch back
    assert snap.version == v1 and snap.documents == {"production": doc("Zoë ✓")}
    assert store.read_audit() == [{"who": "José"}]
    store.write(StoreState(applied_commit="c2"), snap.documents, v1, audit=[{"who": "Ana"}])  # appends
    assert calls(rsps, start) == [("GET", "/git/ref/heads/flag-store")] * 3 + [
        ("POST", "/git/trees"), ("POST", "/git/commits"), ("PATCH", "/git/refs/heads/flag-store")]
    assert make_store().read_audit() == [{"who": "José"}, {"who": "Ana"}]


def test_a_file_that_is_not_utf8_is_uploaded_as_a_blob(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    v1 = make_store().write(StoreState(applied_commit="c1"), {"production": doc("a")}, None, audit=[{"n": 1}])
    files = fake.files("flag-store")
    files["audit.jsonl"] += b'{"who":"Jos\xe9"}\n'  # Latin-1 from another tool, the manifest kept right
    files["store.sha256"] = manifest({k: v for k, v in files.items() if k != "store.sha256"})
    v2 = fake.push("flag-store", files, "someone else's audit line")
    store = make_store()
    snap = store.read()
    start = len(rsps.calls)
    v3 = store.write(StoreState(applied_commit="c2"), snap.documents, v2, audit=[{"n": 2}])
    assert calls(rsps, start) == [
        ("GET", "/git/ref/heads/flag-store"), ("GET", f"/git/blobs/{git_blob_sha(files['audit.jsonl'])}"),
        ("POST", "/git/blobs"), ("POST", "/git/trees"), ("POST", "/git/commits"),
        ("PATCH", "/git/refs/heads/flag-store")]
    audit = files["audit.jsonl"] + b'{"n":2}\n'
    assert base64.b64decode(body(rsps, start + 2)["content"]) == audit
    entries = {e["path"]: e for e in body(rsps, start + 3)["tree"]}
    assert entries["audit.jsonl"] == {"path": "audit.jsonl", "mode": "100644", "type": "blob",
                                      "sha": git_blob_sha(audit)}
    assert "content" in entries["state.json"] and "content" in entries["store.sha256"]  # the rest inline
    assert fake.refs["flag-store"] == v3 and fake.files("flag-store")["audit.jsonl"] == audit
    assert v1 in fake.ancestors(v3)


def test_a_tree_github_stored_differently_is_never_committed(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    fake.stored_text = lambda text: text.replace("\n", "\r\n")  # say, a line-ending conversion
    start = len(rsps.calls)
    with pytest.raises(StoreError, match=r"GitHub stored production\.flagd\.json, state\.json, store\.sha256 "
                       r"with other bytes than were sent; nothing was committed") as raised:
        store.write(StoreState(applied_commit="c2"), {"production": doc("b")}, v1)
    assert not isinstance(raised.value, ConflictError)
    assert calls(rsps, start) == [("GET", "/git/ref/heads/flag-store"), ("POST", "/git/trees")]
    assert fake.refs["flag-store"] == v1


def test_unchanged_write_makes_no_commit(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    start = len(rsps.calls)
    assert store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, v1) == v1
    assert [m for m, _ in calls(rsps, start)] == ["GET"]


def test_stale_version_conflicts_before_writing_anything(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {}, None)
    store.write(StoreState(applied_commit="c2"), {}, v1)
    start = len(rsps.calls)
    with pytest.raises(ConflictError, match="moved"):
        store.write(StoreState(applied_commit="c3"), {}, v1)
    assert calls(rsps, start) == [("GET", "/git/ref/heads/flag-store")]
    with pytest.raises(ConflictError):
        store.write(StoreState(applied_commit="c3"), {}, None)  # expects no branch


def test_race_lost_at_the_ref_update_then_won_on_retry(fake: FakeGitHub) -> None:
    rsps = fake.rsps
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, None, audit=[{"n": 1}])
    other = make_store()
    # Another run commits between our ref check and our ref update.
    fake.before_update = lambda: other.write(
        StoreState(applied_commit="c2"), {"production": doc("b")}, v1, audit=[{"n": 2}])

    attempts: list[str | None] = []

    def decide(snap: StoreSnapshot) -> Update:
        attempts.append(snap.version)
        unit = UnitOfWork(id=f"unit-{len(attempts)}", succeeded_at=T0)
        return Update(snap.state.with_unit(unit), snap.documents, audit=[{"n": 3}], message="advance")

    start = len(rsps.calls)
    version = update(store, decide)
    assert version is not None
    v2 = fake.commits[version]["parents"][0]
    names = {v1: "v1", v2: "v2", fake.commits[v1]["tree"]: "tree1", fake.commits[v2]["tree"]: "tree2"}
    names |= {blob: path for tree in fake.trees.values() for path, blob in tree.items()}
    sent = [(m, re.sub(r"[0-9a-f]{40}", lambda s: names[s[0]], path)) for m, path in calls(rsps, start)]
    ref, tree, commit, patch = ("GET", "/git/ref/heads/flag-store"), ("POST", "/git/trees"), \
        ("POST", "/git/commits"), ("PATCH", "/git/refs/heads/flag-store")
    assert sent == [
        ref, ref, tree, commit,  # our read and first attempt, up to the ref update
        # the other run, inside our ref update: it reads v1 afresh, then writes v2 (3 writes)
        ref, ("GET", "/git/commits/v1"), ("GET", "/git/trees/tree1"),
        *[("GET", f"/git/blobs/{n}") for n in ["store.sha256", "production.flagd.json", "state.json",
                                                "audit.jsonl"]],
        tree, commit, patch,
        patch,  # ours, refused: the compare-and-swap
        # the retry reads v2, fetching only the blobs it has not seen (its own writes are cached) ...
        ref, ("GET", "/git/commits/v2"), ("GET", "/git/trees/tree2"),
        *[("GET", f"/git/blobs/{n}") for n in ["store.sha256", "production.flagd.json", "state.json"]],
        ref, ("GET", "/git/blobs/audit.jsonl"),
        tree, commit, patch,  # ... and writes on top of it
    ]
    patches = [i for i, c in enumerate(rsps.calls) if c.request.method == "PATCH" and i >= start]
    answers: list[Any] = [rsps.calls[i].response for i in patches]
    assert [a.status_code for a in answers] == [200, 422, 200]  # theirs, our lost race, our retry
    assert answers[1].json()["message"] == "Update is not a fast forward"
    assert attempts == [v1, v2]  # the retry read the other run's commit and built on it
    files = fake.files("flag-store")
    assert body(rsps, patches[2] - 2) == {"base_tree": fake.commits[v2]["tree"], "tree": [
        {"path": n, "mode": "100644", "type": "blob", "content": files[n].decode()}
        for n in ["audit.jsonl", "state.json", "store.sha256"]]}  # production.flagd.json is unchanged
    assert body(rsps, patches[2] - 1)["parents"] == [v2]
    assert body(rsps, patches[2]) == {"sha": version, "force": False}
    snap = make_store().read()
    assert snap.state.applied_commit == "c2" and snap.documents == {"production": doc("b")}
    assert [u.id for u in snap.state.units] == ["unit-2"]
    assert [r["n"] for r in make_store().read_audit()] == [1, 2, 3]


def test_branch_created_by_someone_else_first_is_a_conflict(fake: FakeGitHub) -> None:
    store = make_store()
    fake.before_update = lambda: fake.push("flag-store", {"README.md": b"hi\n"})  # wins the race
    with pytest.raises(ConflictError, match="Reference already exists"):
        store.write(StoreState(), {}, None)


def test_branch_without_store_files_is_empty_but_has_a_version(fake: FakeGitHub) -> None:
    sha = fake.push("flag-store", {"README.md": b"the flag store\n"})
    store = make_store()
    snap = store.read()
    assert snap.version == sha and snap.state == StoreState() and snap.documents == {}
    version = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, sha)
    assert fake.commits[version]["parents"] == [sha]
    assert "README.md" in fake.files("flag-store")


def test_hand_edited_branch_is_refused(fake: FakeGitHub) -> None:
    make_store().write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    files = fake.files("flag-store")
    files["production.flagd.json"] = json.dumps(doc("b")).encode()
    fake.push("flag-store", files, "edit on github.com")
    with pytest.raises(StoreCorrupt, match=r"github-branch:flag-store/production\.flagd\.json was modified"):
        make_store().read()


def test_empty_repository_is_a_clear_error(fake: FakeGitHub) -> None:
    fake.empty_repository = True
    with pytest.raises(StoreError, match="no commits yet"):
        make_store().read()


def test_open_store_github_branch(fake: FakeGitHub) -> None:
    gh = Github(auth=Auth.Token("t"), seconds_between_requests=None, seconds_between_writes=None, retry=None,
                lazy=True)
    store = open_store("github-branch:flag-store", repo=gh.get_repo(REPO))
    assert isinstance(store, GitHubBranchStore) and store.branch == "flag-store"


@pytest.mark.parametrize(
    ("method", "path", "status", "message", "expected"),
    [
        ("POST", "/git/trees", 403, "Resource not accessible by integration", "needs `contents: write`"),
        ("POST", "/git/commits", 500, "Server Error", "answered 500"),
        ("PATCH", "/git/refs", 422, "Protected branch update failed for refs/heads/flag-store.", "protected"),
        ("PATCH", "/git/refs", 403, "API rate limit exceeded for installation ID 1.", "rate limit"),
    ],
)
def test_a_failing_write_is_a_store_error_not_a_race(
    fake: FakeGitHub, method: str, path: str, status: int, message: str, expected: str
) -> None:
    store = make_store()
    v1 = store.write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    fake.failures[method, path] = (status, message)
    with pytest.raises(StoreError, match=re.escape(expected)) as raised:
        store.write(StoreState(applied_commit="c2"), {"production": doc("b")}, v1)
    assert not isinstance(raised.value, ConflictError)  # update() must not retry it
    assert fake.refs["flag-store"] == v1


OBSERVED = {o["case"]: o for o in json.loads(
    (EXAMPLES.parent / "errors" / "observed-error-responses.json").read_text())["observations"]}
PRIMARY_UNAUTHENTICATED = OBSERVED["primary rate limit, unauthenticated (403)"]
PRIMARY_INSTALLATION = OBSERVED["primary rate limit, GITHUB_TOKEN / installation token (403)"]["message"]
SECONDARY = OBSERVED["secondary rate limit (403), older wording"]["body"]["message"]
HEADERS_SPENT = PRIMARY_UNAUTHENTICATED["observed_headers"]  # x-ratelimit-remaining: 0, reset 1728335386
HEADERS_LEFT = {**HEADERS_SPENT, "x-ratelimit-remaining": "42", "x-ratelimit-used": "18"}


@pytest.mark.parametrize(
    ("status", "message", "headers", "expected"),
    [
        (403, PRIMARY_UNAUTHENTICATED["body"]["message"], HEADERS_SPENT, "after 2024-10-07 21:09:46 UTC"),
        # GitHub documents 429 as well for both limits; PyGithub raises a plain GithubException for it
        (429, PRIMARY_INSTALLATION, HEADERS_SPENT, "after 2024-10-07 21:09:46 UTC"),
        (429, SECONDARY, {**HEADERS_LEFT, "retry-after": "60"}, "run again in 60 s"),
        # a secondary limit: the primary limit's reset time is not when to come back
        (403, SECONDARY, HEADERS_LEFT, "run again later"),
        # the spent primary limit is recognised by its header, whatever the message says
        (403, "Forbidden", HEADERS_SPENT, "after 2024-10-07 21:09:46 UTC"),
    ],
)
def test_a_rate_limit_is_a_clear_error_saying_when_to_run_again(
    fake: FakeGitHub, status: int, message: str, headers: dict[str, str], expected: str
) -> None:
    make_store().write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    fake.failures["GET", "/git/ref/"] = (status, message)
    fake.failure_headers = headers
    with pytest.raises(StoreError, match="GitHub's rate limit was exceeded") as raised:
        make_store().read()
    assert str(raised.value).endswith(expected)
    assert "contents: read" not in str(raised.value)  # not mistaken for a missing permission


def test_a_failing_read_is_a_store_error_naming_what_the_token_needs(fake: FakeGitHub) -> None:
    make_store().write(StoreState(applied_commit="c1"), {"production": doc("a")}, None)
    fake.failures["GET", "/git/ref/"] = (401, "Bad credentials")
    with pytest.raises(StoreError, match=r"answered 401 \(Bad credentials\).*contents: read"):
        make_store().read()
    fake.failures.clear()
    fake.failures["GET", "/git/blobs/"] = (502, "Bad Gateway")
    with pytest.raises(StoreError, match=r"cannot read blob .* answered 502"):
        make_store().read()
