"""Where a store is, and whether one exists there: a typo in `--store` must not look like an empty store.

A `file:` store is a directory. When it does not exist, `status` and `advance` stop with an error (never
"nothing applied yet"), and `apply` writes a new store there only when told to (`apply --init`, or the
first apply with `--baseline`). Other backends say for themselves whether they hold anything.
"""

from __future__ import annotations

from pathlib import Path

from ..problems import GitopsFlagsError

INIT_HINT = "to start a new store there, run `gitops-flags apply --init` (docs/apply.md)"


def missing_file_store(url: str) -> Path | None:
    """The directory of a `file:` store URL when it does not exist, else None."""
    scheme, _, rest = url.partition(":")
    if scheme != "file" or not rest:
        return None
    path = Path(rest)
    return None if path.is_dir() else path


def require_existing(url: str) -> None:
    """Stop with a clear error when `url` is a `file:` store whose directory does not exist."""
    path = missing_file_store(url)
    if path is not None:
        what = "is a file, not a store directory" if path.exists() else "does not exist"
        raise GitopsFlagsError(
            f"no flag store at {url}: {path} {what}. Check --store (or the policy's store.path); {INIT_HINT}"
        )
