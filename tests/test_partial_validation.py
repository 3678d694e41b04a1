"""A partial validation on a git commit (what `plan` and `check` run) finds files by name and by content
instead of listing the repository, and gives the result the same validation over a plain listing gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_validate import POLICY
from test_git import commit, repo  # noqa: F401 - the fixture
from test_parallel import SCHEMA, flag

from gitops_flags.git import GitTree
from gitops_flags.tree import DictTree
from gitops_flags.validate import IndexedTree, read_policy, validate_tree

FILES: dict[str, str] = {
    ".github/gitops-flags.yml": POLICY,
    "flags/schemas/limits.yaml": SCHEMA,
    "flags/schemas/other.yaml": SCHEMA.replace("name: limits", "name: other"),
    "flags/schemas/deeper/stray.yaml": SCHEMA,
    # uses `limits` with its name spelled by escapes: only a backslash in the bytes gives it away
    "flags/escaped.yaml": 'key: escaped\ntype: object\nschema: "\\x6cimits"\nvariants: {a: {limit: -1}}\n'
                          "default_variant: a\n",
    "flags/a/dup.yaml": flag("dup", 1),
    "flags/b/dup.yml": flag("dup", 0),
    "flags/c/flag\tname.yaml": flag("flag\tname", 0),  # a tab in a path
    **{f"flags/team{i % 3}/flag_{i:03d}.yaml": flag(f"flag_{i:03d}", i) for i in range(60)},
}

ONLY = [
    ["flags/a/dup.yaml"],
    ["flags/team0/flag_000.yaml", "flags/team1/flag_004.yaml", "flags/missing.yaml"],
    ["flags/schemas/limits.yaml"],
    ["flags/schemas/limits.yaml", "flags/team2/flag_005.yaml"],
    ["flags/schemas/other.yaml", "flags/schemas/deeper/stray.yaml"],
    ["flags/c/flag\tname.yaml", "flags/team1/flag_001.yaml"],
]


@pytest.mark.parametrize("only", ONLY)
def test_partial_validation_on_a_commit_is_the_listing_one(repo: Path, only: list[str]) -> None:  # noqa: F811
    sha = commit(repo, dict(FILES))
    listed = DictTree(FILES)
    policy, _ = read_policy(listed)
    with GitTree(repo, sha) as tree:
        assert isinstance(tree, IndexedTree)
        expected = validate_tree(listed, policy, only)
        got = validate_tree(tree, policy, only)
    assert got.problems == expected.problems
    assert got.checked == expected.checked
    assert got.schemas == expected.schemas
    # Models of files that are not reported may be skipped (never read); those reported are all there.
    reported = {e.path: e.flag for e in expected.flags.values() if e.path in expected.checked}
    assert reported.items() <= {e.path: e.flag for e in got.flags.values()}.items()


def test_a_schema_change_reaches_a_flag_that_spells_its_name_with_escapes(repo: Path) -> None:  # noqa: F811
    sha = commit(repo, dict(FILES))
    with GitTree(repo, sha) as tree:
        policy, _ = read_policy(tree)
        result = validate_tree(tree, policy, ["flags/schemas/limits.yaml"])
    assert "flags/escaped.yaml" in result.checked
    assert any(p.file == "flags/escaped.yaml" and "-1 is less than the minimum" in p.message
               for p in result.problems)


def test_files_named_and_prefix_listing_do_not_decode_the_whole_tree(repo: Path) -> None:  # noqa: F811
    sha = commit(repo, dict(FILES))
    with GitTree(repo, sha) as tree:
        assert tree.files_named(["dup.yaml", "dup.yml", "nothing.yaml"], "flags/") == {
            "flags/a/dup.yaml", "flags/b/dup.yml"}
        assert list(tree.paths("flags/schemas/")) == [
            "flags/schemas/deeper/stray.yaml", "flags/schemas/limits.yaml", "flags/schemas/other.yaml"]
        assert tree.read("flags/c/flag\tname.yaml") == FILES["flags/c/flag\tname.yaml"].encode()
        assert tree.read("name.yaml") is None  # the tail of a path holding a tab is not a file
        assert tree._entries is None  # nothing above needed every record as a Python object
        assert list(tree.paths("flags/c/")) == ["flags/c/flag\tname.yaml"]


def test_reads_list_only_the_folder_of_the_file(repo: Path) -> None:  # noqa: F811
    files = {"flags/t*/a.yaml": "star", "flags/tx/a.yaml": "x", "flags/t?/a.yaml": "q", "CODEOWNERS": "* @o",
             "flags/deep/er/b.yaml": "b"}
    sha = commit(repo, files)
    with GitTree(repo, sha) as tree:
        assert [tree.read(p) for p in files] == [v.encode() for v in files.values()]  # wildcards are literal
        assert tree.read("flags/t*/b.yaml") is None and tree.read("flags/deep/b.yaml") is None
        assert tree._listings == {}  # no listing of the whole commit, nor of flags/
        assert sorted(tree._folders) == ["", "flags/deep", "flags/deep/er", "flags/t*", "flags/t?",
                                         "flags/tx"]
