"""Where `FeatureFlagStore` publishes manifests (its `Target`s): a directory, or a branch of a GitHub
repository through the Git data API."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import featureflag
from ..featureflag import ManifestError
from .base import ConflictError

if TYPE_CHECKING:
    from github.Repository import Repository


class DirectoryTarget:
    """Manifests as files under a directory. Each file is replaced atomically (write, fsync, rename);
    a path leading through a symbolic link out of the directory is refused."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def read(self, paths: Sequence[str]) -> tuple[str | None, dict[str, bytes | None]]:
        out: dict[str, bytes | None] = {}
        for path in paths:
            full = self._inside(path)
            try:
                with open(full, "rb") as fh:
                    out[path] = fh.read(featureflag.READ_LIMITS.max_bytes + 1)
            except FileNotFoundError:
                out[path] = None
        return None, out

    def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None:
        for path, data in files.items():
            full = self._inside(path)
            full.parent.mkdir(parents=True, exist_ok=True)
            self._inside(path)  # again: a directory just created must not be a link either
            tmp = full.with_name(f".{full.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, full)

    def _inside(self, path: str) -> Path:
        root = self.root.resolve()
        full = root / path
        parent = full.parent.resolve() if full.parent.exists() else None
        if parent is not None and parent != root and root not in parent.parents:
            raise ManifestError(f"{self.where}/{path} leads outside the directory (a symbolic link)")
        return full


class GitHubTarget:
    """Manifests on a branch of a GitHub repository, next to whatever else the branch holds: one commit
    per publish on top of the branch's head, moved with `force: false` (the head is the compare-and-swap
    token, as in the github-branch store). A missing branch is created with an orphan commit."""

    def __init__(self, repo: Repository, branch: str, label: str) -> None:
        self.repo = repo
        self.branch = branch
        self.where = f"{label}@{branch}"
        self._known: dict[str, bytes] = {}  # blob sha → bytes: blobs never change, so fetch each once

    def read(self, paths: Sequence[str]) -> tuple[str | None, dict[str, bytes | None]]:
        from github import GithubException, UnknownObjectException

        from .github_branch import _failed, git_blob_sha

        ref = self._ref()
        if ref is None:
            return None, dict.fromkeys(paths)
        head = str(ref.object.sha)
        out: dict[str, bytes | None] = {}
        for path in paths:
            try:
                content = self.repo.get_contents(path, ref=head)
            except UnknownObjectException:
                out[path] = None
                continue
            except GithubException as exc:
                raise _failed(exc, f"read {path} on {self.where}", write=False) from None
            if isinstance(content, list):
                raise ManifestError(f"{self.where}:{path} is a directory, not a manifest")
            cached = self._known.get(content.sha)
            if cached is None:
                blob = self.repo.get_git_blob(content.sha)
                raw = blob.content or ""
                cached = base64.b64decode(raw) if blob.encoding == "base64" else raw.encode()
                if git_blob_sha(cached) == content.sha:
                    self._known[content.sha] = cached
            out[path] = cached
        return head, out

    def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None:
        from github import GithubException, InputGitTreeElement

        from .github_branch import _failed, _message, git_blob_sha

        try:
            elements = [
                InputGitTreeElement(path, "100644", "blob", content=data.decode())
                for path, data in files.items()
            ]
            if expected is None:
                tree = self.repo.create_git_tree(elements)
                parents = []
            else:
                head = self.repo.get_git_commit(expected)
                tree = self.repo.create_git_tree(elements, base_tree=self.repo.get_git_tree(head.tree.sha))
                parents = [head]
            commit = self.repo.create_git_commit(message, tree, parents)
        except GithubException as exc:
            raise _failed(exc, f"write manifests to {self.where}", write=True) from None
        try:
            if expected is None:
                self.repo.create_git_ref(f"refs/heads/{self.branch}", commit.sha)
            else:
                ref = self._ref()  # fetched: its `url` is the one GitHub gives for updates
                if ref is None or str(ref.object.sha) != expected:
                    raise ConflictError(f"{self.where} moved while writing manifests; read it again")
                ref.edit(commit.sha, force=False)
        except GithubException as exc:
            if exc.status in (409, 422) and "protected" not in _message(exc).lower():
                raise ConflictError(f"{self.where} moved while writing manifests; read it again") from None
            raise _failed(exc, f"move {self.where}", write=True) from None
        for data in files.values():
            self._known[git_blob_sha(data)] = data

    def _ref(self) -> Any:
        from github import GithubException, UnknownObjectException

        from .github_branch import _failed

        ref = self.repo.get_git_ref(f"heads/{self.branch}")
        try:
            ref.object  # noqa: B018 - fetches the ref; a missing branch raises here
        except UnknownObjectException:
            return None
        except GithubException as exc:
            raise _failed(exc, f"read {self.where}", write=False) from None
        return ref
