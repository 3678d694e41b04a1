"""Read-only views of a repository's files at one revision.

The core never touches the filesystem or git itself: it reads through a `Tree`. `DictTree` is the
in-memory fake the tests use; `DirTree` reads a working directory; `git.GitTree` reads a commit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol


class Tree(Protocol):
    def paths(self, prefix: str = "") -> Iterator[str]:
        """Every file path (POSIX, relative to the repository root) starting with `prefix`, sorted."""
        ...

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is no such file at this revision."""
        ...


class DictTree:
    def __init__(self, files: Mapping[str, bytes | str]) -> None:
        self._files = {p: (v.encode() if isinstance(v, str) else v) for p, v in files.items()}

    def paths(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(p for p in self._files if p.startswith(prefix)))

    def read(self, path: str) -> bytes | None:
        return self._files.get(path)


class DirTree:
    """A directory on disk. Symlinks that lead outside `root` are not followed (`read` raises); `paths`
    lists the files of a linked folder that stays inside, and records in `outside_links` the linked
    folders it did not enter because they lead outside."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.outside_links: list[str] = []  # linked folders (relative paths) seen by the last `paths`

    def paths(self, prefix: str = "") -> Iterator[str]:
        base = self.root
        inside = str(base).rstrip(os.sep) + os.sep
        found: list[str] = []
        outside: list[str] = []
        entered: set[str] = set()  # targets of the linked folders entered: each once, so links cannot loop
        # Start at the prefix's folder, so that `paths("flags/")` does not walk a virtualenv or node_modules
        # beside it; the folders on the way there get the same symlink checks as the walk's own.
        start = base
        for name in [part for part in prefix.rpartition("/")[0].split("/") if part]:
            start = start / name
            if os.path.islink(start):
                target = os.path.realpath(start)
                if not (target + os.sep).startswith(inside):
                    self.outside_links = [start.relative_to(base).as_posix()]
                    return iter(())
                entered.add(target)
        if not start.is_dir():
            self.outside_links = []
            return iter(())
        for dirpath, dirnames, filenames in os.walk(start, followlinks=True):
            rel_dir = Path(dirpath).relative_to(base).as_posix()
            keep = []
            for name in sorted(d for d in dirnames if d != ".git"):
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    target = os.path.realpath(full)
                    here = os.path.realpath(dirpath)
                    if not (target + os.sep).startswith(inside):
                        outside.append(name if rel_dir == "." else f"{rel_dir}/{name}")
                        continue
                    if target in entered or (here + os.sep).startswith(target + os.sep):  # a loop
                        continue
                    entered.add(target)
                keep.append(name)
            dirnames[:] = keep
            for name in filenames:
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if rel.startswith(prefix):
                    found.append(rel)
        self.outside_links = sorted(outside)
        return iter(sorted(found))

    def read(self, path: str) -> bytes | None:
        full = self.root / path
        if not full.exists() and not full.is_symlink():
            return None
        resolved = full.resolve()
        if self.root != resolved and self.root not in resolved.parents:
            raise PermissionError(f"{path}: symlink leads outside the repository")
        if not resolved.is_file():
            return None
        return resolved.read_bytes()
