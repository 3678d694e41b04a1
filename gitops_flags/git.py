"""The one git adapter: every git process the tool starts is started here, and every failure is a `GitError`.

It reads files at a revision (`GitTree`), what changed between two revisions, and the first-parent history
apply walks (`Repository`, the `walk.History` port). Only plumbing that reads objects runs
(`rev-parse`, `ls-tree`, `cat-file`, `diff --name-status`, `merge-base`, `rev-list`, `grep` of a commit):
no hooks, filters, textconv or external diff, and the work tree is never read, so what a PR's checkout has
on disk cannot differ from what its commit holds. The one writer is `worktree_commit` (plan's view of
uncommitted edits), which writes objects through a private index and never touches a ref.

One module rather than a package: its parts share `_run` and the resolved-commit cache, and at ~450
lines it still reads in one sitting.

Symlinks (mode 120000) are listed by `paths()` but never followed: `read()` of one raises a `ProblemError`
("symbolic links are not allowed"), since a link's target could pull in a file the diff does not show.
Submodules are not files and are not listed.
"""

from __future__ import annotations

import bisect
import os
import subprocess
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from .problems import GitopsFlagsError, Problem, ProblemError

MAX_BLOB_BYTES = 64 * 1024 * 1024  # far above any flag file (the loader caps those at 1 MiB); bounds memory
_SYMLINK_MODE = b"120000"

Status = Literal["A", "C", "D", "M", "R", "T", "U", "X"]


class GitError(GitopsFlagsError):
    """A git process failed, or git is missing: the one error type of this adapter."""


@dataclass(frozen=True)
class FileChange:
    status: Status  # git's letter: Added, Copied, Deleted, Modified, Renamed, Type changed, ...
    path: str  # the path at head (at base for a delete)
    old_path: str | None = None  # renames and copies: the path at base


@dataclass(frozen=True)
class _Entry:
    mode: bytes
    oid: str


def _run(repo_dir: Path, *args: str, ok: tuple[int, ...] = (0,), env: Mapping[str, str] | None = None
         ) -> tuple[int, bytes]:
    """(exit code, stdout) of `git -C repo_dir ARGS`; GitError unless the code is in `ok`."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args], capture_output=True, check=False, stdin=subprocess.DEVNULL,
            env={**os.environ, **env} if env else None,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed (or not on PATH)") from exc
    if done.returncode not in ok:
        message = done.stderr.decode(errors="replace").strip().removeprefix("fatal: ")
        raise GitError(f"git {args[0]} failed: {message or f'exit {done.returncode}'}")
    return done.returncode, done.stdout


def _git(repo_dir: Path, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
    return _run(repo_dir, *args, ok=ok)[1]


_COMMITS: set[tuple[str, str]] = set()  # (repository, full sha) pairs resolved in this process


def resolve(repo_dir: Path | str, rev: str) -> str:
    """The full sha of the commit `rev` names; GitopsFlagsError("cannot read revision ...") otherwise."""
    repo = Path(repo_dir)
    if not rev or rev.startswith("-"):
        raise GitError(f"cannot read revision {rev!r}: not a revision name")
    known = (str(repo), rev)
    if known in _COMMITS:  # a full sha already found to be a commit here: it cannot change
        return rev
    try:
        sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except GitError as exc:
        reason = str(exc).removeprefix("git rev-parse failed: ")
        if reason == "exit 1":  # --quiet: the repository is fine, the name is not
            reason = f"no such commit in {repo}"
            if _is_shallow(repo):
                reason += " (the clone is shallow: fetch more history, e.g. checkout with fetch-depth: 0)"
        raise GitError(f"cannot read revision {rev!r}: {reason}") from None
    _COMMITS.add((str(repo), sha))
    return sha


def _is_shallow(repo: Path) -> bool:
    try:
        return _git(repo, "rev-parse", "--is-shallow-repository").strip() == b"true"
    except GitError:
        return False


def merge_base(repo_dir: Path | str, a: str, b: str) -> str:
    """The best common ancestor of two revisions (what a PR's diff on GitHub is taken against)."""
    repo = Path(repo_dir)
    sha_a, sha_b = resolve(repo, a), resolve(repo, b)
    try:
        return _git(repo, "merge-base", sha_a, sha_b).decode().strip()
    except GitError:
        reason = f"revisions {a!r} and {b!r} have no common ancestor"
        if _is_shallow(repo):  # the usual cause in CI: the ancestor was not fetched
            reason += " in this shallow clone (fetch more history, e.g. checkout with fetch-depth: 0)"
        raise GitError(reason) from None


def commits_between(repo_dir: Path | str, base: str, head: str) -> list[str]:
    """Shas reachable from head and not from base, oldest first."""
    repo = Path(repo_dir)
    out = _git(repo, "rev-list", "--reverse", f"{resolve(repo, base)}..{resolve(repo, head)}")
    return out.decode().split()


def is_ancestor(repo_dir: Path | str, a: str, b: str) -> bool:
    """Whether commit `a` is in the history of `b` (or is `b`)."""
    code, _ = _run(Path(repo_dir), "merge-base", "--is-ancestor", a, b, ok=(0, 1))
    return code == 0


def first_parent_chain(
    repo_dir: Path | str, base: str | None, head: str, path: str | None = None
) -> list[tuple[str, str | None]]:
    """(commit, first parent) after `base` up to `head` along first parents, oldest first; with `path`,
    only the commits that change it (compared with their first parent)."""
    args = ["rev-list", "--first-parent", "--reverse", "--parents", head]
    if base:
        args.append(f"^{base}")
    if path:
        args += ["--", path]
    out = _git(Path(repo_dir), *args).decode()
    return parse_parents(out)


def parse_parents(out: str) -> list[tuple[str, str | None]]:
    """`git rev-list --parents` rows (`sha parent1 parent2 ...`) → (commit, first parent or None)."""
    chain: list[tuple[str, str | None]] = []
    for row in out.splitlines():
        shas = row.split()
        if shas:
            chain.append((shas[0], shas[1] if len(shas) > 1 else None))
    return chain


def worktree_commit(repo_dir: Path | str, head_sha: str) -> tuple[str, int] | None:
    """(a commit of the working tree on top of `head_sha`, how many paths differ), or None when the working
    tree is clean. The commit is written to the object database only: no ref, the index untouched."""
    repo = Path(repo_dir)
    status = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = [e for e in status.split(b"\0") if e]
    # a rename record is followed by its old path as its own NUL-terminated entry
    count = sum(1 for e in entries if len(e) > 3 and e[2:3] == b" ")
    if not count:
        return None
    with tempfile.TemporaryDirectory(prefix="gitops-flags-plan-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_AUTHOR_NAME": "gitops-flags",
               "GIT_AUTHOR_EMAIL": "plan@gitops-flags.invalid", "GIT_COMMITTER_NAME": "gitops-flags",
               "GIT_COMMITTER_EMAIL": "plan@gitops-flags.invalid"}
        _run(repo, "read-tree", head_sha, env=env)
        _run(repo, "add", "-A", env=env)
        tree = _run(repo, "write-tree", env=env)[1].decode().strip()
        message = "gitops-flags plan: the working tree"
        commit = _run(repo, "commit-tree", tree, "-p", head_sha, "-m", message, env=env)[1]
    return commit.decode().strip(), count


def changed_files(repo_dir: Path | str, base: str, head: str) -> list[FileChange]:
    """Files that differ between two commits (two-dot: pass `merge_base(...)` as base for a PR's view)."""
    repo = Path(repo_dir)
    out = _git(
        repo, "diff", "--name-status", "-z", "-M", "--no-ext-diff", "--no-relative",
        resolve(repo, base), resolve(repo, head), "--",
    )  # fmt: skip
    return parse_name_status(out)


def parse_name_status(out: bytes) -> list[FileChange]:
    """Parse `git diff --name-status -z` output: `M\\0path\\0`, `R087\\0old\\0new\\0`, ..."""
    fields = out.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    changes: list[FileChange] = []
    i = 0
    while i < len(fields):
        letter = fields[i][:1].decode()
        if letter not in ("A", "C", "D", "M", "R", "T", "U", "X"):
            raise GitError(f"unexpected git diff output near {fields[i][:40]!r}")
        status: Status = letter  # type: ignore[assignment]
        if status in ("R", "C"):
            old, new = _path(fields[i + 1]), _path(fields[i + 2])
            changes.append(FileChange(status, new, old))
            i += 3
        else:
            changes.append(FileChange(status, _path(fields[i + 1])))
            i += 2
    return changes


def _encode(path: str) -> bytes:
    return path.encode("utf-8", errors="surrogateescape")


def _path(raw: bytes) -> str:
    # surrogateescape keeps a non-UTF-8 name distinct and round-trippable instead of mangling it
    return raw.decode("utf-8", errors="surrogateescape")


class GitTree:
    """`tree.Tree` over one commit. Lists only the folders it is asked about (each once, with `ls-tree`);
    reads blobs through one `git cat-file --batch`."""

    def __init__(self, repo_dir: Path | str, rev: str) -> None:
        self.repo_dir = Path(repo_dir)
        self._sha = resolve(self.repo_dir, rev)
        self._listings: dict[str, bytes] = {}  # folder ("" for all) → `ls-tree -r` of it
        self._folders: dict[str, bytes] = {}  # folder → `ls-tree` of its own entries only
        self._entries: dict[str, _Entry] | None = None
        self._sorted: list[str] = []
        self._batch: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], GitTree] | None = None

    @property
    def sha(self) -> str:
        return self._sha

    def paths(self, prefix: str = "") -> Iterator[str]:
        if self._entries is not None or not prefix:
            self._index()
            start = bisect.bisect_left(self._sorted, prefix)
            for path in self._sorted[start:]:
                if not path.startswith(prefix):
                    break
                yield path
            return
        # Only the folder holding `prefix` is listed, and only the records under `prefix` become Python
        # objects; the search of the listing runs in C.
        needle = b"\t" + _encode(prefix)
        raw = self._listing(prefix.rpartition("/")[0])
        yield from sorted(p for p, _ in _blob_records(raw, needle) if p.startswith(prefix))

    def read(self, path: str) -> bytes | None:
        entry = self._entry(path)
        if entry is None:
            return None
        if entry.mode == _SYMLINK_MODE:
            message = "symbolic links are not allowed here; commit the file itself"
            raise ProblemError(Problem(path, None, None, message, title="symlink"))
        return self._cat(path, entry.oid)

    def files_named(self, names: Iterable[str], prefix: str) -> set[str]:
        """Files under `prefix`, in any folder, whose file name is one of `names`: a byte search of the
        commit's listing, so that a partial validation finds the files sharing a flag's key without
        listing the repository in Python."""
        raw = self._listing(prefix.rpartition("/")[0])
        out: set[str] = set()
        for name in set(names):
            found = _blob_records(raw, b"/" + _encode(name) + b"\0")
            out.update(p for p, _ in found if p.startswith(prefix) and p.endswith("/" + name))
        return out

    def paths_containing(self, needles: Sequence[str], prefix: str) -> set[str]:
        """Files under `prefix` whose bytes contain any of the fixed strings: one `git grep` over the commit
        (C speed, no blob crosses the pipe), used to find the flags that may use a changed schema."""
        if not needles:
            return set()
        patterns = [arg for needle in needles for arg in ("-e", needle)]
        out = _git(
            self.repo_dir, "grep", "-l", "-z", "-F", "--full-name", "--no-color", *patterns,
            self._sha, "--", f":(literal){prefix}", ok=(0, 1),  # 1: nothing found
        )  # fmt: skip
        lead = f"{self._sha}:".encode()
        return {_path(hit.removeprefix(lead)) for hit in out.split(b"\0") if hit}

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._batch = None

    def __enter__(self) -> GitTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _listing(self, folder: str = "") -> bytes:
        """`git ls-tree -r -z` of `folder` ("" for the whole commit), read once: git lists at C speed and
        records become Python objects only where asked for."""
        if folder.startswith(":"):  # would read as pathspec magic
            folder = ""
        if folder not in self._listings:
            self._listings[folder] = self._ls(folder, "-r")
        return self._listings[folder]

    def _ls(self, folder: str, *options: str) -> bytes:
        spec = ["--", f"{folder}/"] if folder else []  # ls-tree reads paths literally (no wildcards)
        return _git(self.repo_dir, "ls-tree", *options, "-z", "--full-tree", self._sha, *spec)

    def _entry(self, path: str) -> _Entry | None:
        """One file's entry: from a listing already read that covers it, else from a listing of its own
        folder's entries (a few files' reads never list the whole commit)."""
        if self._entries is not None:
            return self._entries.get(path)
        folder = path.rpartition("/")[0]
        covering = [raw for name, raw in self._listings.items() if not name or path.startswith(name + "/")]
        if covering:
            raw = covering[0]
        elif folder.startswith(":"):
            raw = self._listing()
        else:
            if folder not in self._folders:
                self._folders[folder] = self._ls(folder)
            raw = self._folders[folder]
        for found, entry in _blob_records(raw, b"\t" + _encode(path) + b"\0"):
            if found == path:
                return entry
        return None

    def _index(self) -> dict[str, _Entry]:
        if self._entries is None:
            entries: dict[str, _Entry] = {}
            for record in self._listing().split(b"\0"):
                if record:
                    path, entry = _parse_record(record)
                    if entry is not None:
                        entries[path] = entry
            self._entries = entries
            self._sorted = sorted(entries)
        return self._entries

    def _cat(self, path: str, oid: str) -> bytes:
        proc = self._batch_process()
        stdin, stdout = _pipes(proc)
        stdin.write(oid.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3 or header[1] != b"blob":
            self.close()
            answer = b" ".join(header).decode(errors="replace")
            raise GitError(f"git cat-file could not read {path} ({oid}): {answer}")
        size = int(header[2])
        if size > MAX_BLOB_BYTES:
            remaining = size + 1
            while remaining > 0:  # drain it, so that the next answer starts at a header
                chunk = stdout.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            too_large = f"file is too large ({size} bytes)"
            raise ProblemError(Problem(path, None, None, too_large, title="too-large"))
        data = stdout.read(size + 1)
        if len(data) != size + 1:
            self.close()
            raise GitError(f"git cat-file ended while reading {path}")
        return data[:size]

    def _batch_process(self) -> subprocess.Popen[bytes]:
        if self._batch is None or self._batch.poll() is not None:
            try:
                self._batch = subprocess.Popen(
                    ["git", "-C", str(self.repo_dir), "cat-file", "--batch"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            except FileNotFoundError as exc:
                raise GitError("git is not installed (or not on PATH)") from exc
            self._finalizer = weakref.finalize(self, _stop, self._batch)
        return self._batch


def _blob_records(raw: bytes, needle: bytes) -> Iterator[tuple[str, _Entry]]:
    """The blob records of `ls-tree -r -z` output (`<mode> <type> <oid>\\t<path>\\0` each) whose path
    holds `needle`: bytes.find runs in C and only the records found are decoded. The needle may also match
    inside a longer path (one holding a tab, say), so callers check the decoded path."""
    at = raw.find(needle)
    while at >= 0:
        start = raw.rfind(b"\0", 0, at) + 1
        end = raw.find(b"\0", at)
        end = len(raw) if end < 0 else end
        path, entry = _parse_record(raw[start:end])
        if entry is not None:
            yield path, entry
        at = raw.find(needle, end)


def _parse_record(record: bytes) -> tuple[str, _Entry | None]:
    meta, _, raw_path = record.partition(b"\t")
    mode, kind, oid = meta.split(b" ")
    return _path(raw_path), (_Entry(mode, oid.decode()) if kind == b"blob" else None)  # not submodules


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert proc.stdin is not None and proc.stdout is not None
    return proc.stdin, proc.stdout


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a `cat-file --batch` process: closing its input makes it exit."""
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Repository:
    """`walk.History` over a clone: the questions the first-parent walk asks, and trees by commit."""

    def __init__(self, repo_dir: Path | str) -> None:
        self.repo_dir = Path(repo_dir)

    def resolve(self, rev: str) -> str:
        return resolve(self.repo_dir, rev)

    def is_ancestor(self, a: str, b: str) -> bool:
        return is_ancestor(self.repo_dir, a, b)

    def first_parent_chain(self, base: str | None, head: str, path: str | None = None
                           ) -> list[tuple[str, str | None]]:
        return first_parent_chain(self.repo_dir, base, head, path)

    def tree(self, sha: str) -> GitTree:
        return GitTree(self.repo_dir, sha)

    def changed_paths(self, base: str, commit: str) -> list[str]:
        """Paths that differ between two commits; a rename names both its paths."""
        paths: dict[str, None] = {}
        for fc in changed_files(self.repo_dir, base, commit):
            paths[fc.path] = None
            if fc.old_path:
                paths[fc.old_path] = None
        return list(paths)
