"""The flag store: flagd documents per environment, rollout state and the audit log.

`open_store(url)` picks a backend from a URL:

    file:PATH              a directory (the default outside GitHub Actions)
    github-branch:BRANCH   the same files on a branch of the repository, through the Git data API
    github-branch:OWNER/NAME:BRANCH   … on a branch of another repository (git refuses `:` in branch names)
    litestar-flags:URL     litestar-flags' own storage (redis://…, sqlite+aiosqlite:///…, memory:), one
                           store per environment; needs the `gitops-flags[litestar]` extra

PyGithub is imported only when a github-branch store is opened. With a seal key (`seal.key_from_env`),
every backend seals what it writes and refuses what does not verify.
"""

from __future__ import annotations

from typing import Any

from ..model import StoreConfig
from .base import ConflictError, Store, StoreCorrupt, StoreError, StoreSnapshot, Update, update
from .seal import SealKey, StoreTampered
from .state import RolloutState, StoreState, UnitOfWork

__all__ = [
    "ConflictError",
    "RolloutState",
    "Store",
    "StoreCorrupt",
    "StoreError",
    "StoreSnapshot",
    "StoreState",
    "StoreTampered",
    "UnitOfWork",
    "Update",
    "branch_location",
    "open_store",
    "store_url",
    "update",
]

SCHEMES = ("file", "github-branch", "litestar-flags")


def branch_location(rest: str) -> tuple[str | None, str]:
    """`OWNER/NAME:BRANCH` → (OWNER/NAME, BRANCH); `BRANCH` → (None, BRANCH): this repository."""
    repository, sep, branch = rest.rpartition(":")
    if not sep:
        return None, rest
    if not repository.count("/") == 1 or not all(repository.split("/")) or not branch:
        raise StoreError(f"github-branch:{rest} is neither BRANCH nor OWNER/NAME:BRANCH")
    return repository, branch


def open_store(url: str, *, repo: Any = None, key: SealKey | None = None) -> Store:
    """A store from its URL. `github-branch:` needs `repo`, a PyGithub Repository (the one the URL names)
    with a token that may write contents. `key` seals every write and checks every read."""
    scheme, sep, rest = url.partition(":")
    if not sep or not rest:
        raise StoreError(f"store URL {url!r} is not SCHEME:LOCATION; allowed schemes: {', '.join(SCHEMES)}")
    if scheme == "file":
        from .file import FileStore

        return FileStore(rest, key)
    if scheme == "github-branch":
        if repo is None:
            raise StoreError(
                f"store {url!r} needs a GitHub repository and a token (GITHUB_TOKEN with contents: write); "
                "use file:PATH to work locally"
            )
        from .github_branch import GitHubBranchStore

        repository, branch = branch_location(rest)
        return GitHubBranchStore(repo, branch, key, url if repository else "")
    if scheme == "litestar-flags":
        from .litestar import open_litestar_store

        return open_litestar_store(rest, key)
    raise StoreError(f"store URL {url!r} has an unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")


def store_url(config: StoreConfig) -> str:
    """The URL the policy's `store:` section names (`--store` overrides it)."""
    if config.type == "file":
        return f"file:{config.path}"
    if config.type == "github-branch":
        if config.repository:
            return f"github-branch:{config.repository}:{config.branch}"
        return f"github-branch:{config.branch}"
    if config.type == "litestar-flags" and config.url:
        return f"litestar-flags:{config.url}"
    raise StoreError(
        f"store type {config.type!r} needs `url` (litestar-flags) or is unknown; "
        "use file, github-branch or litestar-flags"
    )
