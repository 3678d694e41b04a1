"""git: GitTree, resolve, changed_files, merge_base and commits_between over real temporary repositories."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitops_flags import git
from gitops_flags.git import (
    FileChange,
    GitTree,
    changed_files,
    commits_between,
    merge_base,
    parse_name_status,
    resolve,
)
from gitops_flags.problems import GitopsFlagsError, ProblemError


def run(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def write(repo: Path, files: dict[str, bytes | str | None]) -> None:
    for rel, content in files.items():
        target = repo / rel
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def commit(repo: Path, files: dict[str, bytes | str | None], message: str = "change") -> str:
    write(repo, files)
    run(repo, "add", "-A")
    run(repo, "commit", "-q", "--allow-empty", "-m", message)
    return run(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    run(path, "init", "-q", "-b", "main")
    return path


# --- resolve ------------------------------------------------------------------------------------------------


def test_resolve_gives_the_full_sha(repo: Path) -> None:
    sha = commit(repo, {"a.txt": "a"})
    assert resolve(repo, "HEAD") == sha
    assert resolve(repo, "main") == sha
    assert resolve(repo, sha[:7]) == sha
    assert len(sha) == 40


@pytest.mark.parametrize("rev", ["nope", "HEAD~5", "--output=x", ""])
def test_resolve_rejects_unreadable_revisions(repo: Path, rev: str) -> None:
    commit(repo, {"a.txt": "a"})
    with pytest.raises(GitopsFlagsError, match=r"cannot read revision"):
        resolve(repo, rev)


def test_resolve_rejects_a_tree_object(repo: Path) -> None:
    commit(repo, {"a.txt": "a"})
    tree = run(repo, "rev-parse", "HEAD^{tree}")
    with pytest.raises(GitopsFlagsError, match="cannot read revision"):
        resolve(repo, tree)


def test_resolve_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitopsFlagsError, match=r"cannot read revision 'HEAD': .*not a git repository"):
        resolve(tmp_path, "HEAD")


def test_resolve_in_a_shallow_clone_says_so(repo: Path, tmp_path: Path) -> None:
    first = commit(repo, {"a.txt": "1"})
    commit(repo, {"a.txt": "2"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    with pytest.raises(GitopsFlagsError, match="shallow"):
        resolve(clone, first)


def test_merge_base_missing_from_a_shallow_clone_says_so(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.txt": "1"})
    run(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"b.txt": "1"})
    run(repo, "checkout", "-q", "main")
    commit(repo, {"a.txt": "2"})
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{repo}", str(clone)],
                   check=True)
    with pytest.raises(GitopsFlagsError, match="no common ancestor in this shallow clone"):
        merge_base(clone, "origin/main", "origin/feature")


# --- GitTree ------------------------------------------------------------------------------------------------


def test_tree_reads_the_commit_not_the_work_tree(repo: Path) -> None:
    sha = commit(repo, {"flags/a.yaml": "key: a\n", "flags/b.yaml": "key: b\n"})
    write(repo, {"flags/a.yaml": "edited on disk\n", "flags/untracked.yaml": "x", "flags/b.yaml": None})
    with GitTree(repo, "HEAD") as tree:
        assert tree.sha == sha
        assert tree.read("flags/a.yaml") == b"key: a\n"
        assert tree.read("flags/b.yaml") == b"key: b\n"
        assert tree.read("flags/untracked.yaml") is None
        assert list(tree.paths()) == ["flags/a.yaml", "flags/b.yaml"]


def test_tree_at_an_older_revision(repo: Path) -> None:
    old = commit(repo, {"a.txt": "old"})
    commit(repo, {"a.txt": "new", "b.txt": "b"})
    tree = GitTree(repo, old)
    assert tree.read("a.txt") == b"old"
    assert tree.read("b.txt") is None
    tree.close()


def test_paths_are_sorted_and_filtered_by_prefix(repo: Path) -> None:
    names = ["flags/z.yaml", "flags/sub/a.yaml", "flags-other/x", "README.md", "flags/a.yaml"]
    commit(repo, dict.fromkeys(names, ""))
    tree = GitTree(repo, "HEAD")
    assert list(tree.paths()) == sorted(names)
    assert list(tree.paths("flags/")) == ["flags/a.yaml", "flags/sub/a.yaml", "flags/z.yaml"]
    assert list(tree.paths("flags/sub/")) == ["flags/sub/a.yaml"]
    assert list(tree.paths("nothing/")) == []
    assert tree.read("flags") is None  # a directory is not a file
    tree.close()


def test_many_reads_share_one_process_and_keep_bytes_exact(repo: Path) -> None:
    files: dict[str, bytes | str | None] = {f"f/{i:03}.bin": bytes([i]) * i + b"\n\n" for i in range(60)}
    files["f/empty"] = b""
    files["f/crlf"] = b"a\r\nb\r\n"
    commit(repo, files)
    tree = GitTree(repo, "HEAD")
    for path, content in files.items():
        assert tree.read(path) == content
    process = tree._batch
    assert process is not None and process.poll() is None
    tree.read("f/001.bin")
    assert tree._batch is process  # no new process per read
    tree.close()
    assert process.poll() is not None  # closing ended it
    assert tree.read("f/crlf") == b"a\r\nb\r\n"  # and a later read starts a new one
    tree.close()


def test_unusual_file_names(repo: Path) -> None:
    names = ["flags/with space.yaml", "flags/tab\tname.yaml", "flags/new\nline.yaml", "flags/ünïcode.yaml"]
    commit(repo, dict.fromkeys(names, "x"))
    tree = GitTree(repo, "HEAD")
    assert list(tree.paths("flags/")) == sorted(names)
    assert all(tree.read(n) == b"x" for n in names)
    tree.close()


def test_symlinks_are_listed_but_not_followed(repo: Path) -> None:
    write(repo, {"secret.yaml": "key: secret\n"})
    (repo / "flags").mkdir()
    os.symlink("../secret.yaml", repo / "flags" / "link.yaml")
    commit(repo, {})
    tree = GitTree(repo, "HEAD")
    assert "flags/link.yaml" in list(tree.paths())
    with pytest.raises(ProblemError) as caught:
        tree.read("flags/link.yaml")
    assert caught.value.problem.file == "flags/link.yaml"
    assert caught.value.problem.title == "symlink"
    assert "symbolic link" in caught.value.problem.message
    assert tree.read("secret.yaml") == b"key: secret\n"  # the process is still usable
    tree.close()


def test_submodules_are_not_files(repo: Path) -> None:
    sha = commit(repo, {"a.txt": "a"})
    run(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/lib")
    run(repo, "commit", "-q", "-m", "submodule")
    tree = GitTree(repo, "HEAD")
    assert list(tree.paths()) == ["a.txt"]
    assert tree.read("vendor/lib") is None
    tree.close()


def test_too_large_blob_is_a_problem_and_the_stream_stays_in_step(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(repo, {"big.yaml": b"x" * 5000, "small.yaml": "ok"})
    monkeypatch.setattr(git, "MAX_BLOB_BYTES", 1000)
    tree = GitTree(repo, "HEAD")
    with pytest.raises(ProblemError, match="too large"):
        tree.read("big.yaml")
    assert tree.read("small.yaml") == b"ok"
    tree.close()


def test_unknown_revision_for_a_tree(repo: Path) -> None:
    commit(repo, {"a": "a"})
    with pytest.raises(GitopsFlagsError, match="cannot read revision 'no-such-branch'"):
        GitTree(repo, "no-such-branch")


# --- changed_files ------------------------------------------------------------------------------------------


MOVED = "key: moved\nname: a body long enough for rename detection to see content\n"


def test_changed_files_names_every_kind_of_change(repo: Path) -> None:
    base = commit(repo, {
        "flags/keep.yaml": "keep\n",
        "flags/edit.yaml": "before\n",
        "flags/gone.yaml": "gone\n",
        "flags/team-a/moved.yaml": MOVED,
    })  # fmt: skip
    write(repo, {"flags/team-a/moved.yaml": None})
    head = commit(repo, {
        "flags/edit.yaml": "after\n",
        "flags/gone.yaml": None,
        "flags/new.yaml": "new\n",
        "flags/team-b/moved.yaml": MOVED,
    })  # fmt: skip
    assert sorted(changed_files(repo, base, head), key=lambda c: c.path) == [
        FileChange("M", "flags/edit.yaml"),
        FileChange("D", "flags/gone.yaml"),
        FileChange("A", "flags/new.yaml"),
        FileChange("R", "flags/team-b/moved.yaml", "flags/team-a/moved.yaml"),
    ]
    assert changed_files(repo, head, head) == []


def test_changed_files_paths_are_from_the_root_even_from_a_subdirectory(repo: Path) -> None:
    base = commit(repo, {"flags/a.yaml": "1", "docs/x.md": "x"})
    head = commit(repo, {"flags/a.yaml": "2"})
    run(repo, "config", "diff.relative", "true")  # a user setting that would otherwise shorten the paths
    assert changed_files(repo / "docs", base, head) == [FileChange("M", "flags/a.yaml")]


def test_changed_files_with_a_bad_revision(repo: Path) -> None:
    sha = commit(repo, {"a": "a"})
    with pytest.raises(GitopsFlagsError, match="cannot read revision 'missing'"):
        changed_files(repo, "missing", sha)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", []),
        (b"M\0a.yaml\0", [FileChange("M", "a.yaml")]),
        (b"A\0x y\0D\0z\0", [FileChange("A", "x y"), FileChange("D", "z")]),
        (b"R087\0old/a\0new/a\0M\0b\0", [FileChange("R", "new/a", "old/a"), FileChange("M", "b")]),
        (b"C100\0src\0copy\0", [FileChange("C", "copy", "src")]),
        (b"T\0link\0", [FileChange("T", "link")]),
        (b"M\0new\nline\0", [FileChange("M", "new\nline")]),
    ],
)
def test_parse_name_status(raw: bytes, expected: list[FileChange]) -> None:
    assert parse_name_status(raw) == expected


def test_parse_name_status_rejects_garbage() -> None:
    with pytest.raises(GitopsFlagsError, match="unexpected git diff output"):
        parse_name_status(b"?\0x\0")


# --- merge_base, commits_between ----------------------------------------------------------------------------


def test_merge_base_and_commits_between(repo: Path) -> None:
    root = commit(repo, {"a": "1"})
    run(repo, "checkout", "-q", "-b", "feature")
    one = commit(repo, {"b": "1"})
    two = commit(repo, {"b": "2"})
    run(repo, "checkout", "-q", "main")
    main_tip = commit(repo, {"a": "2"})
    assert merge_base(repo, "main", "feature") == root
    assert commits_between(repo, "main", "feature") == [one, two]
    assert commits_between(repo, "feature", "main") == [main_tip]
    assert commits_between(repo, "feature", "feature") == []


def test_merge_base_of_unrelated_histories(repo: Path) -> None:
    commit(repo, {"a": "1"})
    run(repo, "checkout", "-q", "--orphan", "other")
    commit(repo, {"b": "1"})
    with pytest.raises(GitopsFlagsError, match="no common ancestor"):
        merge_base(repo, "main", "other")


def test_paths_containing_searches_the_commit(repo: Path) -> None:
    commit(repo, {
        "flags/a.yaml": "schema: limits\n",
        "flags/sub/b.yaml": "x: [limits_v2]\n",
        "flags/c.yaml": "schema: other\n",
        "docs/limits.md": "limits\n",
    })  # fmt: skip
    write(repo, {"flags/c.yaml": "schema: limits\n"})  # the work tree is not searched
    tree = GitTree(repo, "HEAD")
    assert tree.paths_containing(["limits"], "flags/") == {"flags/a.yaml", "flags/sub/b.yaml"}
    assert tree.paths_containing(["other", "-e"], "flags/") == {"flags/c.yaml"}
    assert tree.paths_containing(["nowhere"], "flags/") == set()
    assert tree.paths_containing([], "flags/") == set()
    tree.close()
