from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitops_flags import codeowners
from gitops_flags.codeowners import CodeOwners, OwnerRule, find_codeowners, owner_matches, owners_for, parse
from gitops_flags.problems import Problem, ProblemError
from gitops_flags.tree import DictTree

# GitHub's example CODEOWNERS file, verbatim from "About code owners" (docs.github.com).
GITHUB_EXAMPLE = """\
# This is a comment.
# Each line is a file pattern followed by one or more owners.

# These owners will be the default owners for everything in
# the repo. Unless a later match takes precedence,
# @global-owner1 and @global-owner2 will be requested for
# review when someone opens a pull request.
*       @global-owner1 @global-owner2

# Order is important; the last matching pattern takes the most
# precedence. When someone opens a pull request that only
# modifies JS files, only @js-owner and not the global
# owner(s) will be requested for a review.
*.js    @js-owner #This is an inline comment.

# You can also use email addresses if you prefer. They'll be
# used to look up users just like we do for commit author
# emails.
*.go docs@example.com

# Teams can be specified as code owners as well. Teams should
# be identified in the format @org/team-name. Teams must have
# explicit write access to the repository. In this example,
# the octocats team in the octo-org organization owns all .txt files.
*.txt @octo-org/octocats

# In this example, @doctocat owns any files in the build/logs
# directory at the root of the repository and any of its
# subdirectories.
/build/logs/ @doctocat

# The `docs/*` pattern will match files like
# `docs/getting-started.md` but not further nested files like
# `docs/build-app/troubleshooting.md`.
docs/*  docs@example.com

# In this example, @octocat owns any file in an apps directory
# anywhere in your repository.
apps/ @octocat

# In this example, @doctocat owns any file in the `/docs`
# directory in the root of your repository and any of its
# subdirectories.
/docs/ @doctocat

# In this example, any change inside the `/scripts` directory
# will require approval from @doctocat or @octocat.
/scripts/ @doctocat @octocat

# In this example, @octocat owns any file in a `/logs` directory such as
# `/build/logs`, `/scripts/logs`, and `/deeply/nested/logs`. Any changes
# in a `/logs` directory will require approval from @octocat.
**/logs @octocat

# In this example, @octocat owns any file in the `/apps`
# directory in the root of your repository except for the `/apps/github`
# subdirectory, as its owners are left empty.
/apps/ @octocat
/apps/github

# In this example, @octocat owns any file in the `/apps`
# directory in the root of your repository except for the `/apps/github`
# subdirectory, as this subdirectory has its own owner @doctocat
/apps/ @octocat
/apps/github @doctocat
"""


def test_github_example_parses_without_problems() -> None:
    co = parse(GITHUB_EXAMPLE)
    assert co.problems == ()
    assert [r.pattern for r in co.rules] == [
        "*", "*.js", "*.go", "*.txt", "/build/logs/", "docs/*", "apps/", "/docs/", "/scripts/", "**/logs",
        "/apps/", "/apps/github", "/apps/", "/apps/github",
    ]  # fmt: skip
    js = co.rules[1]
    assert js.owners == ("@js-owner",)  # the inline comment's words are not owners
    assert js.line == 14


# What each line of the example matches on its own, per the docs' comment above it.
@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*", "README.md", True),
        ("*", "deep/ly/nested.py", True),
        ("*.js", "app.js", True),
        ("*.js", "src/lib/app.js", True),
        ("*.js", "app.jsx", False),
        ("*.go", "cmd/main.go", True),
        ("*.txt", "notes/todo.txt", True),
        ("/build/logs/", "build/logs/out.log", True),
        ("/build/logs/", "build/logs/2024/01/out.log", True),  # "and any of its subdirectories"
        ("/build/logs/", "src/build/logs/out.log", False),  # "at the root of the repository"
        ("docs/*", "docs/getting-started.md", True),
        ("docs/*", "docs/build-app/troubleshooting.md", False),
        ("apps/", "apps/web/index.js", True),
        ("apps/", "services/apps/index.js", True),  # "anywhere in your repository"
        ("apps/", "apps", False),  # a file named apps is not an apps directory
        ("/docs/", "docs/getting-started.md", True),
        ("/docs/", "docs/build-app/troubleshooting.md", True),
        ("/docs/", "src/docs/readme.md", False),
        ("/scripts/", "scripts/deploy.sh", True),
        ("**/logs", "build/logs/a.log", True),
        ("**/logs", "scripts/logs/a.log", True),
        ("**/logs", "deeply/nested/logs/a.log", True),
        ("**/logs", "logs/a.log", True),
        ("**/logs", "catalogs/a.log", False),
        ("/apps/github", "apps/github/action.yml", True),
        ("/apps/github", "apps/githubber/x", False),
    ],
)
def test_github_example_lines_match_what_the_docs_say(pattern: str, path: str, expected: bool) -> None:
    assert OwnerRule(pattern, (), 1).matches(path) is expected


# The whole example file: the last matching line wins.
@pytest.mark.parametrize(
    ("path", "owners"),
    [
        ("README.md", ["@global-owner1", "@global-owner2"]),
        ("src/index.js", ["@js-owner"]),
        ("cmd/main.go", ["docs@example.com"]),
        ("notes.txt", ["@octo-org/octocats"]),
        ("docs/getting-started.md", ["@doctocat"]),  # /docs/ comes after docs/*
        ("docs/build-app/troubleshooting.md", ["@doctocat"]),
        ("scripts/deploy.sh", ["@doctocat", "@octocat"]),
        ("build/logs/out.log", ["@octocat"]),  # **/logs comes after /build/logs/
        ("scripts/logs/out.log", ["@octocat"]),
        ("deeply/nested/logs/out.log", ["@octocat"]),
        ("services/apps/main.js", ["@octocat"]),  # apps/ comes after *.js
        ("apps/web/main.js", ["@octocat"]),
        ("apps/github/workflow.yml", ["@doctocat"]),  # the final block overrides the un-owning one
    ],
)
def test_github_example_owners(path: str, owners: list[str]) -> None:
    assert parse(GITHUB_EXAMPLE).owners_for(path) == owners
    assert owners_for(GITHUB_EXAMPLE, path) == owners


def test_github_example_unowning_block_on_its_own() -> None:
    co = parse("/apps/ @octocat\n/apps/github\n")
    assert co.owners_for("apps/web/main.js") == ["@octocat"]
    assert co.owners_for("apps/github/workflow.yml") == []
    rule = co.rule_for("apps/github/workflow.yml")
    assert rule is not None and rule.line == 2 and rule.owners == ()  # matched, deliberately un-owned
    assert co.rule_for("README.md") is None  # not matched at all


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        # anchoring: a leading or middle slash anchors to the root
        ("foo", ["foo", "foo/bar", "bar/foo", "bar/foo/baz"], ["foo.txt", "bar/foo.txt", "xfoo"]),
        ("/foo", ["foo", "foo/bar", "foo/bar/baz"], ["bar/foo", "fool.txt"]),
        ("foo/bar", ["foo/bar", "foo/bar/baz"], ["baz/foo/bar", "foo/bart"]),
        ("/foo/bar", ["foo/bar", "foo/bar/baz"], ["baz/foo/bar"]),
        # trailing slash: a directory, everything beneath it
        ("foo/", ["foo/bar", "bar/foo/baz", "bar/foo/baz/qux"], ["foo", "bar/foo"]),
        ("/foo/", ["foo/bar", "foo/bar/baz"], ["foo", "bar/foo/baz"]),
        ("foo/bar/", ["foo/bar/baz"], ["foo/bar", "baz/foo/bar/qux"]),
        # '*' does not cross '/'
        ("f*", ["foo", "foo/bar", "bar/foo"], ["bar/baz", "xfoo"]),
        ("/*", ["foo", "README.md"], ["foo/bar"]),
        ("/*/", ["foo/bar", "foo/bar/baz"], ["foo"]),
        ("foo/*", ["foo/bar"], ["foo", "foo/bar/baz", "bar/foo/baz"]),
        ("foo/*.txt", ["foo/a.txt"], ["foo/bar/a.txt", "qux/foo/a.txt"]),
        ("foo/*/baz", ["foo/bar/baz", "foo/bar/baz/qux"], ["foo/baz", "foo/a/b/baz"]),
        ("*.md", ["a.md", "x/y/a.md"], ["a.mdx", "md"]),
        ("f?o", ["foo", "a/fxo"], ["fo", "fooo", "f/o"]),
        # '**' leading, trailing, middle
        ("**/foo/bar", ["foo/bar", "qux/foo/bar", "qux/foo/bar/baz"], ["foo/baz/bar"]),
        ("**/*bar*", ["bar", "foo/rebar", "foo/qux/barrio"], ["foo/baz"]),
        ("foo/bar/**", ["foo/bar/baz", "foo/bar/baz/qux"], ["foo/bar", "qux/foo/bar/baz"]),
        ("foo/**/bar", ["foo/bar", "foo/x/bar", "foo/x/y/bar/baz"], ["qux/foo/bar", "foo/xbar"]),
        ("foo/**/", ["foo/bar", "foo/bar/baz"], ["foo"]),
        ("foo/**/bar/b*", ["foo/bar/baz", "foo/q/bar/baz"], ["foo/bar", "foo/bar/qux"]),
        ("**", ["a", "a/b/c"], []),
        # backslash escapes (GitHub supports them, except for a leading '#')
        ("f\\*o", ["f*o"], ["foo"]),
        ("f\\?o", ["f?o"], ["foo"]),
        ("/My\\ Docs/", ["My Docs/a.md"], ["My/a.md", "MyDocs/a.md"]),
        ("page\\[id\\].tsx", ["pages/page[id].tsx"], ["pages/pagei.tsx"]),
        # case-sensitive, like GitHub
        ("/Docs/", ["Docs/a.md"], ["docs/a.md", "DOCS/a.md"]),
    ],
)
def test_pattern_matching(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    rule = OwnerRule(pattern, ("@o",), 1)
    assert [p for p in matching if not rule.matches(p)] == []
    assert [p for p in not_matching if rule.matches(p)] == []


def test_last_match_wins_and_later_empty_rule_unowns() -> None:
    text = "*.py @py\n/src/ @src\n/src/generated/\n/src/generated/keep.py @keeper\n"
    co = parse(text)
    assert co.owners_for("tools/x.py") == ["@py"]
    assert co.owners_for("src/x.py") == ["@src"]
    assert co.owners_for("src/generated/x.py") == []
    assert co.owners_for("src/generated/keep.py") == ["@keeper"]
    assert co.owners_for("README") == []


def test_owners_keep_file_order_and_all_kinds() -> None:
    co = parse("* @zed @Org/Team-1 someone+tag@example.co.uk @al_ice\n")
    assert co.problems == ()
    assert co.owners_for("x") == ["@zed", "@Org/Team-1", "someone+tag@example.co.uk", "@al_ice"]


@pytest.mark.parametrize(
    "line",
    [
        "*.js @js # review by @mallory",
        "*.js @js #@mallory",
        "*.js @js\t# mallory@example.com",
    ],
)
def test_inline_comments_never_become_owners(line: str) -> None:
    co = parse(line)
    assert co.problems == ()
    assert co.owners_for("a.js") == ["@js"]


def test_comment_only_and_blank_lines_are_ignored() -> None:
    co = parse("\n   \n# * @nobody\n   # indented comment @nobody\n\t\n")
    assert co.rules == () and co.problems == ()


def test_pattern_followed_only_by_comment_unowns() -> None:
    co = parse("* @all\n/vendor/ # nobody owns vendored code\n")
    assert co.problems == ()
    assert co.owners_for("vendor/lib.c") == []
    assert co.owners_for("src/lib.c") == ["@all"]


INVALID = """\
* @global
!secret.txt @security
file[12].txt @ranges
\\#notes.md @hash
/legacy/ legacy-team
/bad/ @ok @org/team/nested
/ @root
*** @stars
[Section]
"""


def test_invalid_lines_are_skipped_with_warnings_at_their_line() -> None:
    co = parse(INVALID, "CODEOWNERS")
    assert [r.line for r in co.rules] == [1]
    found = [(p.file, p.line, p.col, p.title, p.severity) for p in co.problems]
    assert found == [
        ("CODEOWNERS", 2, 1, "codeowners-invalid-pattern", "warning"),
        ("CODEOWNERS", 3, 1, "codeowners-invalid-pattern", "warning"),
        ("CODEOWNERS", 4, 1, "codeowners-invalid-pattern", "warning"),
        ("CODEOWNERS", 5, 10, "codeowners-invalid-owner", "warning"),
        ("CODEOWNERS", 6, 11, "codeowners-invalid-owner", "warning"),
        ("CODEOWNERS", 7, 1, "codeowners-invalid-pattern", "warning"),
        ("CODEOWNERS", 8, 1, "codeowners-invalid-pattern", "warning"),
        ("CODEOWNERS", 9, 1, "codeowners-invalid-pattern", "warning"),
    ]
    messages = [p.message for p in co.problems]
    assert "negation" in messages[0] and "'[ ]'" in messages[1] and "'#'" in messages[2]
    assert "'legacy-team'" in messages[3] and "'@org/team/nested'" in messages[4]
    # Skipped lines neither assign owners nor un-own: GitHub ignores them.
    assert co.owners_for("secret.txt") == ["@global"]
    assert co.owners_for("file1.txt") == ["@global"]
    assert co.owners_for("legacy/app.py") == ["@global"]
    assert co.owners_for("bad/x") == ["@global"]


def test_line_numbers_survive_crlf_bom_and_trailing_spaces() -> None:
    text = "\ufeff* @a   \r\n\r\n# c\r\n/docs/ @b \t\r\nbad line\r\n"
    co = parse(text)
    assert [(r.pattern, r.owners, r.line) for r in co.rules] == [("*", ("@a",), 1), ("/docs/", ("@b",), 4)]
    assert [(p.line, p.col) for p in co.problems] == [(5, 5)]
    assert co.owners_for("x") == ["@a"]  # the BOM is not part of the first pattern


def test_escaped_space_is_one_pattern_not_extra_owners() -> None:
    co = parse("/My\\ Documents/ @me\n")
    assert co.problems == ()
    assert co.rules[0].pattern == "/My\\ Documents/"
    assert co.owners_for("My Documents/cv.pdf") == ["@me"]


def test_file_of_3_mb_or_more_loads_no_rules() -> None:
    text = "* @a\n" + "#" * codeowners.MAX_BYTES
    co = parse(text, "CODEOWNERS")
    assert co.rules == ()
    assert [(p.file, p.title, p.severity) for p in co.problems] == [
        ("CODEOWNERS", "codeowners-too-large", "warning")
    ]
    assert co.owners_for("x") == []
    just_under = "* @a\n" + "#" * (codeowners.MAX_BYTES - 10)
    assert parse(just_under).owners_for("x") == ["@a"]


def test_paths_with_a_leading_slash_are_tolerated() -> None:
    assert parse("/docs/ @d\n").owners_for("/docs/a.md") == ["@d"]


@pytest.mark.parametrize(
    ("files", "expected_file", "expected_owner"),
    [
        (
            {".github/CODEOWNERS": "* @gh", "CODEOWNERS": "* @root", "docs/CODEOWNERS": "* @docs"},
            ".github/CODEOWNERS",
            "@gh",
        ),
        ({"CODEOWNERS": "* @root", "docs/CODEOWNERS": "* @docs"}, "CODEOWNERS", "@root"),
        ({"docs/CODEOWNERS": "* @docs"}, "docs/CODEOWNERS", "@docs"),
        ({".github/CODEOWNERS": "", "CODEOWNERS": "* @root"}, ".github/CODEOWNERS", None),  # exists: wins
        ({"src/CODEOWNERS": "* @src", ".github/codeowners": "* @lower"}, "", None),  # not a location
    ],
)  # fmt: skip
def test_find_codeowners_lookup_order(
    files: dict[str, str], expected_file: str, expected_owner: str | None
) -> None:
    co = find_codeowners(DictTree(files))
    assert co.file == expected_file
    assert co.owners_for("any/file.py") == ([expected_owner] if expected_owner else [])


def test_find_codeowners_reports_problems_against_the_found_file() -> None:
    co = find_codeowners(DictTree({"docs/CODEOWNERS": b"\xef\xbb\xbf* @a\r\n!x @b\r\n"}))
    assert [(p.file, p.line) for p in co.problems] == [("docs/CODEOWNERS", 2)]
    assert co.owners_for("x") == ["@a"]


def test_find_codeowners_too_large_file_is_not_loaded() -> None:
    big = b"* @a\n" + b"#" * codeowners.MAX_BYTES
    co = find_codeowners(DictTree({".github/CODEOWNERS": big, "CODEOWNERS": "* @b"}))
    assert co.file == ".github/CODEOWNERS" and co.rules == ()
    assert [p.title for p in co.problems] == ["codeowners-too-large"]


def test_find_codeowners_invalid_utf8_warns_and_keeps_valid_lines() -> None:
    co = find_codeowners(DictTree({"CODEOWNERS": b"* @a\n/caf\xe9/ @b\n"}))
    assert [(p.line, p.title) for p in co.problems] == [(2, "codeowners-encoding")]
    assert co.owners_for("x") == ["@a"]


class _SymlinkTree(DictTree):
    def read(self, path: str) -> bytes | None:
        if path == ".github/CODEOWNERS":
            raise ProblemError(Problem(path, None, None, "symbolic links are not allowed here"))
        return super().read(path)


def test_find_codeowners_unreadable_file_gives_no_rules_and_a_warning() -> None:
    co = find_codeowners(_SymlinkTree({"CODEOWNERS": "* @root"}))
    assert co.file == ".github/CODEOWNERS" and co.rules == ()  # fail closed: no owners, not another file's
    assert [(p.severity, p.title) for p in co.problems] == [("warning", "codeowners-unreadable")]
    assert "symbolic links" in co.problems[0].message


def test_empty_codeowners() -> None:
    co = find_codeowners(DictTree({}))
    assert co == CodeOwners("") and co.owners_for("x") == [] and co.problems == ()


def test_codeowners_built_by_hand_matches_too() -> None:
    co = CodeOwners("CODEOWNERS", (OwnerRule("*", ("@a",), 1), OwnerRule("/x/", ("@b",), 2)))
    assert co.owners_for("x/y") == ["@b"] and co.owners_for("y") == ["@a"]


@pytest.mark.parametrize(
    ("owner", "login", "teams", "expected"),
    [
        ("@Octocat", "octocat", (), True),
        ("@octocat", "octocat2", (), False),
        ("@Octo-Org/Reviewers", "alice", ("octo-org/reviewers",), True),
        ("@octo-org/reviewers", "alice", ("@Octo-Org/Reviewers",), True),
        ("@octo-org/reviewers", "alice", ("octo-org/other",), False),
        ("@octo-org/reviewers", "octo-org", (), False),
        ("alice@example.com", "alice", (), False),  # emails need the GitHub adapter to resolve
    ],
)
def test_owner_matches(owner: str, login: str, teams: tuple[str, ...], expected: bool) -> None:
    assert owner_matches(owner, login, teams) is expected


_PATTERNS = ["*", "*.py", "/src/", "src/", "/src/*", "/src/**/x.py", "**/x.py", "/docs", "docs/", "/src/a/"]
_PATHS = ["src/x.py", "src/a/x.py", "src/a/b.md", "docs/x.py", "a/src/x.py", "docs", "x.py", "README"]


@given(st.lists(st.tuples(st.sampled_from(_PATTERNS), st.booleans()), max_size=12))
def test_indexed_lookup_equals_naive_last_match(spec: list[tuple[str, bool]]) -> None:
    text = "".join(f"{pattern} {'@o' + str(i) if owned else ''}\n" for i, (pattern, owned) in enumerate(spec))
    co = parse(text)
    for path in _PATHS:
        naive = next((r for r in reversed(co.rules) if r.matches(path)), None)
        assert co.rule_for(path) == naive
