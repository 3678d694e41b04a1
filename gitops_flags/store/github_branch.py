"""`github-branch:BRANCH`: the store's files on a branch, written through the Git data API.

The branch's head commit is the version. A write creates a tree on top of the head's tree with the
changed files' text inline (`content`: GitHub writes the blobs itself), a commit whose parent is the
expected head, then moves the branch with `force: false`: three content-creating requests (GitHub asks
for a second between them), not one more per changed file. If another run moved the branch in between,
GitHub refuses the update as "not a fast forward" (422) and the write raises ConflictError: the parent
commit is the compare-and-swap token. A missing branch is created with an orphan commit, so the store
never shares history with the code.

This is the default inside GitHub Actions: state survives between runs without any other service.

With a seal key, each commit also carries `store.seal`, an HMAC over the manifest bound to the commit's
parent: a commit that copies an older sealed tree onto the branch does not verify (its parent differs), and
`repair` finds the newest commit in the branch's history whose seal does, and commits its files again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from github import GithubException, InputGitTreeElement, UnknownObjectException

from .base import (
    AUDIT_FILE,
    MANIFEST_FILE,
    STATE_FILE,
    ConflictError,
    Repaired,
    StoreCorrupt,
    StoreError,
    StoreSnapshot,
    audit_lines,
    check_file,
    check_listing,
    decode,
    encode,
    is_data_file,
    manifest,
    parse_audit,
    parse_manifest,
    sha256,
)
from .seal import SEAL_FILE, SealKey, check, refuse_unkeyed_write, require_key, seal_bytes
from .state import StoreState

if TYPE_CHECKING:
    from github.GitCommit import GitCommit
    from github.GitRef import GitRef
    from github.GitTree import GitTree
    from github.Repository import Repository

DEFAULT_MESSAGE = "gitops-flags: update the flag store"
SCOPE = "github-branch"
REPAIR_DEPTH = 100  # commits `repair` looks back through for a sealed version


@dataclass(frozen=True)
class _Head:
    commit: GitCommit
    tree: GitTree
    blobs: dict[str, str]  # file name → blob sha, top level of the tree


def git_blob_sha(data: bytes) -> str:
    """The sha git gives a blob with these bytes, to skip uploading files that did not change."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class GitHubBranchStore:
    def __init__(self, repo: Repository, branch: str, key: SealKey | None = None, where: str = "") -> None:
        self.repo = repo
        self.branch = branch
        self.where = where or f"github-branch:{branch}"
        self.key = key
        self._heads: dict[str, _Head] = {}  # commit sha → head; commits never change, so caching is safe
        self._blob_data: dict[str, bytes] = {}  # blob sha → bytes, likewise

    # --- the Store protocol ------------------------------------------------------------------------

    def read(self) -> StoreSnapshot:
        sha = self._branch_sha()
        if sha is None:
            return StoreSnapshot(StoreState(), {}, None)
        snapshot, _ = self._load(sha)
        return snapshot

    def write(
        self,
        state: StoreState,
        documents: Mapping[str, Mapping[str, Any]],
        expected_version: str | None,
        audit: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> str:
        new_files = encode(state, documents)
        ref = self._ref()
        current = None if ref is None else str(ref.object.sha)
        if current != expected_version:
            raise ConflictError(
                f"the store on branch {self.branch!r} moved (expected {expected_version}, found {current}); "
                "read it again"
            )
        head: _Head | None = None
        old_audit = b""
        if ref is not None and expected_version is not None:
            snapshot, entries = self._load(expected_version)
            refuse_unkeyed_write(snapshot.seal, self.where)
            head = self._heads[expected_version]
            if AUDIT_FILE in entries:
                old_audit = self._blob(head.blobs[AUDIT_FILE])
                check_file(entries, AUDIT_FILE, old_audit, self.where)
            if audit or AUDIT_FILE in entries:
                new_files[AUDIT_FILE] = old_audit + audit_lines(audit)
        elif audit:
            new_files[AUDIT_FILE] = audit_lines(audit)
        return self._put(new_files, ref, head, message or DEFAULT_MESSAGE)

    def _put(self, new_files: dict[str, bytes], ref: GitRef | None, head: _Head | None, message: str) -> str:
        """Commit `new_files` (every data file) on top of `head` with a new manifest (and a seal bound to
        `head` when there is a key), then move the branch from `head` to it: the compare-and-swap."""
        new_files = {**new_files, MANIFEST_FILE: manifest(new_files)}
        old_blobs = head.blobs if head else {}
        changed = sorted(n for n, data in new_files.items() if old_blobs.get(n) != git_blob_sha(data))
        deleted = sorted(n for n in old_blobs if is_data_file(n) and n not in new_files)
        if head is not None and not changed and not deleted:
            return head.commit.sha  # nothing changed: no empty commit
        if self.key is not None:
            parent = head.commit.sha if head else ""
            new_files[SEAL_FILE] = seal_bytes(self.key, SCOPE, parent, new_files[MANIFEST_FILE])
            changed.append(SEAL_FILE)

        try:
            elements = [self._element(name, new_files[name]) for name in changed]
            elements += [InputGitTreeElement(name, "100644", "blob", sha=None) for name in deleted]
            if head is None:
                tree = self.repo.create_git_tree(elements)
            else:
                tree = self.repo.create_git_tree(elements, base_tree=head.tree)
            self._check_tree(tree, {name: new_files[name] for name in changed})
            parents = [] if head is None else [head.commit]
            commit = self.repo.create_git_commit(message, tree, parents)
        except GithubException as exc:
            raise _failed(exc, f"write the store to branch {self.branch!r}", write=True) from None
        try:  # the compare-and-swap: only this step can lose a race
            if ref is None:
                self.repo.create_git_ref(f"refs/heads/{self.branch}", commit.sha)
            else:
                ref.edit(commit.sha, force=False)
        except GithubException as exc:
            if exc.status == 422 and "protected" in _message(exc).lower():
                raise StoreError(
                    f"cannot move branch {self.branch!r} of the store: it is protected ({_message(exc)}); "
                    "the store branch must accept pushes from the workflow's token"
                ) from None
            if exc.status in (409, 422):
                raise ConflictError(
                    f"the store on branch {self.branch!r} moved while writing ({exc.status}: "
                    f"{_message(exc)}); read it again"
                ) from None
            raise _failed(exc, f"move branch {self.branch!r} of the store", write=True) from None
        # The created tree lists every entry, so the next write needs no reads of its own.
        self._heads[commit.sha] = _Head(commit, tree, {e.path: e.sha for e in tree.tree if e.type == "blob"})
        return str(commit.sha)

    # --- repair ------------------------------------------------------------------------------------

    def reseal(self, audit: Sequence[Mapping[str, Any]] = ()) -> str:
        """Accept the files at the branch's head as they are (an intended hand edit pushed to the branch):
        check that they parse, append `audit`, and commit them with a new manifest and seal."""
        ref = self._ref()
        if ref is None:
            raise StoreError(f"{self.where} does not exist; there is nothing to re-seal")
        head = self._head(str(ref.object.sha))
        files = {n: self._blob(sha) for n, sha in head.blobs.items() if is_data_file(n)}
        if STATE_FILE not in files:
            raise StoreError(f"{self.where} has no {STATE_FILE}; there is nothing to re-seal")
        decode({n: sha256(b) for n, b in files.items()}, {n: b for n, b in files.items() if n != AUDIT_FILE},
               self.where)
        parse_audit(files.get(AUDIT_FILE, b""), self.where)
        if audit:
            files[AUDIT_FILE] = files.get(AUDIT_FILE, b"") + audit_lines(audit)
        return self._put(files, ref, head, "gitops-flags: re-seal the store (hand edit accepted)")

    def repair(self, audit: Sequence[Mapping[str, Any]] = ()) -> Repaired:
        """When the head does not verify: commit again, on top of it, the files of the newest commit in the
        branch's first-parent history whose seal does (needs the key), with `audit` appended."""
        require_key(self.key, self.where)
        ref = self._ref()
        if ref is None:
            return Repaired(None)
        sha: str | None = str(ref.object.sha)
        try:
            self._load(str(sha))
            return Repaired(None)
        except StoreCorrupt as exc:
            problem = str(exc)
        head = self._heads[str(sha)]
        for _ in range(REPAIR_DEPTH):
            parents = self._heads[str(sha)].commit.parents
            if not parents:
                break
            sha = str(parents[0].sha)
            try:
                self._load(sha)
            except StoreCorrupt:
                continue
            good = self._heads[sha]
            files = {n: self._blob(b) for n, b in good.blobs.items() if is_data_file(n)}
            if audit:
                files[AUDIT_FILE] = files.get(AUDIT_FILE, b"") + audit_lines(audit)
            message = f"gitops-flags: repair the store (restore {sha[:12]})"
            version = self._put(files, ref, head, message)
            return Repaired(version, f"commit {sha[:12]} of {self.where}", problem)
        raise StoreError(
            f"{self.where} fails its seal ({problem}), and none of the {REPAIR_DEPTH} commits before it "
            "verifies either; restore the branch from a known good commit by hand (then re-seal)"
        )

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        snap = self.read()
        return self.write(snap.state, snap.documents, expected_version, records, "gitops-flags: audit log")

    def read_audit(self) -> list[dict[str, Any]]:
        sha = self._branch_sha()
        if sha is None:
            return []
        _, entries = self._load(sha)
        if AUDIT_FILE not in entries:
            return []
        data = self._blob(self._heads[sha].blobs[AUDIT_FILE])
        check_file(entries, AUDIT_FILE, data, self.where)
        return parse_audit(data, self.where)

    # --- reading -----------------------------------------------------------------------------------

    def _branch_sha(self) -> str | None:
        ref = self._ref()
        return None if ref is None else str(ref.object.sha)

    def _ref(self) -> GitRef | None:
        """The branch's ref, fetched (so that its `url` is the one GitHub gives for updates)."""
        ref = self.repo.get_git_ref(f"heads/{self.branch}")
        try:
            ref.object  # noqa: B018 - fetches the ref; a missing branch raises here
        except UnknownObjectException:
            return None
        except GithubException as exc:
            if exc.status == 409:  # "Git Repository is empty."
                raise StoreError(
                    f"the repository has no commits yet, so branch {self.branch!r} cannot hold the store; "
                    "push a first commit"
                ) from None
            raise _failed(exc, f"read branch {self.branch!r} of the store", write=False) from None
        return ref

    def _head(self, sha: str) -> _Head:
        head = self._heads.get(sha)
        if head is None:
            try:
                commit = self.repo.get_git_commit(sha)
                tree = self.repo.get_git_tree(commit.tree.sha)
            except GithubException as exc:
                raise _failed(exc, f"read commit {sha[:12]} of the store", write=False) from None
            blobs = {e.path: e.sha for e in tree.tree if e.type == "blob"}
            head = self._heads[sha] = _Head(commit, tree, blobs)
        return head

    def _load(self, sha: str) -> tuple[StoreSnapshot, dict[str, str]]:
        head = self._head(sha)
        present = sorted(head.blobs)
        if MANIFEST_FILE not in head.blobs:
            strays = [n for n in present if is_data_file(n)]
            if strays:
                raise StoreCorrupt(
                    f"{self.where} holds {', '.join(strays)} but no {MANIFEST_FILE}: it was not written by "
                    "gitops-flags; point the store at another branch, or restore the manifest"
                )
            return StoreSnapshot(StoreState(), {}, sha), {}  # a branch with no store files yet
        raw = self._blob(head.blobs[MANIFEST_FILE])
        entries = parse_manifest(raw, self.where)
        check_listing(entries, present, self.where)
        files = {n: self._blob(head.blobs[n]) for n in entries if n != AUDIT_FILE}
        seal_raw = self._blob(head.blobs[SEAL_FILE]) if SEAL_FILE in head.blobs else None
        parents = head.commit.parents
        status = check(self.key, seal_raw, SCOPE, str(parents[0].sha) if parents else "", raw, self.where)
        state, documents = decode(entries, files, self.where)
        return StoreSnapshot(state, documents, sha, status), entries

    def _blob(self, sha: str) -> bytes:
        if sha not in self._blob_data:
            try:
                blob = self.repo.get_git_blob(sha)
            except GithubException as exc:
                raise _failed(exc, f"read blob {sha[:12]} of the store", write=False) from None
            raw = blob.content or ""
            data = base64.b64decode(raw) if blob.encoding == "base64" else raw.encode()
            self._blob_data[sha] = data
        return self._blob_data[sha]

    def _element(self, name: str, data: bytes) -> InputGitTreeElement:
        """A tree entry carrying the file's text inline; only bytes that are not UTF-8 need a blob upload."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            blob = self.repo.create_git_blob(base64.b64encode(data).decode("ascii"), "base64")
            self._blob_data[blob.sha] = data
            return InputGitTreeElement(name, "100644", "blob", sha=blob.sha)
        self._blob_data[git_blob_sha(data)] = data  # the sha GitHub will give the blob it writes
        return InputGitTreeElement(name, "100644", "blob", content=text)

    def _check_tree(self, tree: GitTree, files: Mapping[str, bytes]) -> None:
        """Refuse, before committing, a tree whose blobs are not the bytes sent (the cache would lie)."""
        got = {e.path: e.sha for e in tree.tree if e.type == "blob"}
        wrong = sorted(n for n, data in files.items() if got.get(n) != git_blob_sha(data))
        if wrong:
            raise StoreError(
                f"cannot write the store to branch {self.branch!r}: GitHub stored {', '.join(wrong)} with "
                "other bytes than were sent; nothing was committed"
            )


def _failed(exc: GithubException, what: str, *, write: bool) -> StoreError:
    """A GitHub error that is not a race, as a StoreError saying what the token needs."""
    status, message = exc.status, _message(exc)
    headers = {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}
    # GitHub answers a primary limit with 403 or 429 and `x-ratelimit-remaining: 0`, a secondary one with
    # 403 or 429 and a message saying so.
    primary = headers.get("x-ratelimit-remaining") == "0"
    if status == 429 or (status == 403 and (primary or "rate limit" in message.lower())):
        when = _when(headers, primary)
        return StoreError(f"cannot {what}: GitHub's rate limit was exceeded ({message}); {when}")
    if status in (401, 403, 404):
        need = "contents: write" if write else "contents: read"
        return StoreError(
            f"cannot {what}: GitHub answered {status} ({message}); the token needs `{need}` on the "
            "repository (`permissions:` in the workflow)"
        )
    return StoreError(f"cannot {what}: GitHub answered {status} ({message})")


def _when(headers: Mapping[str, str], primary: bool) -> str:
    """When to run again, by GitHub's rules: `retry-after` seconds, else the reset time once the primary
    limit is used up (the reset of a limit not yet reached says nothing), else later."""
    retry_after = headers.get("retry-after", "")
    if retry_after.isdigit():
        return f"run again in {retry_after} s"
    reset = headers.get("x-ratelimit-reset", "")
    if primary and reset.isdigit():
        return f"run again after {datetime.fromtimestamp(int(reset), UTC):%Y-%m-%d %H:%M:%S} UTC"
    return "run again later"


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(exc)
