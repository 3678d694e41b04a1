"""GitHub CODEOWNERS: parsing, pattern matching and lookup, following GitHub's documented semantics.

Source: GitHub docs "About code owners" (docs.github.com/.../customizing-your-repository/about-code-owners).

Rules as implemented:
- Location: `.github/CODEOWNERS`, then `CODEOWNERS`, then `docs/CODEOWNERS`; the first that exists wins.
- Files of 3 MiB or more are not loaded by GitHub: we report a warning and use no rules.
- Each line is `pattern owner...`; blank lines and `#` comments are ignored. A `#` that starts a token
  begins an inline comment (the docs' own example has `*.js @js-owner #This is an inline comment.`),
  so comment words never become owners. A `#` inside a token is an ordinary character.
- Patterns are gitignore-style with GitHub's documented exceptions, each of which makes the line invalid:
  `!` negation, `[ ]` character ranges (GitHub: "both `[` and `]` must be escaped with a `\\`") and `\\#`
  to escape a leading `#`. Other backslash escapes (`\\ ` for a space, `\\*`, `\\[`) do work on GitHub and
  are supported here. `***` and the pattern `/` (which can never match) are invalid too.
- Matching is case-sensitive. A leading or middle `/` anchors the pattern to the root; otherwise it matches
  at any depth. `*` and `?` never cross `/`; `**` may be leading (`**/x`), trailing (`x/**`) or middle
  (`a/**/b`). A trailing `/` matches only what is beneath a directory. A pattern ending in `/*` matches
  files directly in that directory, not deeper (GitHub's deviation from gitignore, documented with
  `docs/*`). Any other pattern that matches a directory also matches everything beneath it.
- Owners are `@user`, `@org/team` or an email address. The docs say a line with invalid syntax is
  skipped (and the error shown in the UI), so a line with any malformed owner is skipped whole with a
  warning: it neither assigns owners nor un-owns anything.
- The last matching line wins. A matching line without owners leaves the path un-owned.
- CRLF line endings, a UTF-8 byte-order mark and trailing spaces are accepted. Lines are split on `\\n`
  only, so line numbers agree with GitHub's and with editors.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from gitops_flags.problems import Problem, ProblemError
from gitops_flags.tree import Tree

LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")
MAX_BYTES = 3 * 1024 * 1024  # GitHub: "CODEOWNERS files must be under 3 MB in size"

_WHITESPACE = frozenset(" \t\r\f\v")
_USER = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_TEAM = re.compile(r"@[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")

_Matcher = tuple[int, Callable[[str], object], "OwnerRule"]  # (-position in file, match, rule)
_Index = tuple[tuple[_Matcher, ...], dict[str, tuple[_Matcher, ...]]]


@dataclass(frozen=True)
class OwnerRule:
    pattern: str  # as written, escapes included
    owners: tuple[str, ...]  # as written; empty means "un-owned"
    line: int

    def matches(self, path: str) -> bool:
        return _compile(self.pattern)(_normal_path(path)) is not None


@dataclass(frozen=True)
class CodeOwners:
    file: str  # e.g. ".github/CODEOWNERS"; "" when the repository has none
    rules: tuple[OwnerRule, ...] = ()
    problems: tuple[Problem, ...] = ()
    # Compiled once per instance, last rule first, so a lookup stops at the first (= winning) match.
    # Rules anchored under a literal top-level name sit in a bucket for that name; a lookup tries only
    # its bucket and the rules that can match anywhere (large files are mostly such anchored rules).
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        anywhere: list[_Matcher] = []
        by_top: dict[str, list[_Matcher]] = {}
        for position in range(len(self.rules) - 1, -1, -1):
            rule = self.rules[position]
            top = _literal_top(rule.pattern)
            entry = (-position, _compile(rule.pattern), rule)
            (anywhere if top is None else by_top.setdefault(top, [])).append(entry)
        object.__setattr__(self, "_index", (tuple(anywhere), {k: tuple(v) for k, v in by_top.items()}))

    def rule_for(self, path: str) -> OwnerRule | None:
        """The last rule matching `path` (its owners may be empty: un-owned), or None when none matches."""
        path = _normal_path(path)
        anywhere, by_top = self._index
        bucket = by_top.get(path.split("/", 1)[0], ())
        candidates = heapq.merge(anywhere, bucket, key=_order) if bucket else anywhere
        for _, match, rule in candidates:
            if match(path) is not None:
                return rule
        return None

    def owners_for(self, path: str) -> list[str]:
        """Owners of the last matching rule, in the order written; [] when un-owned or unmatched."""
        rule = self.rule_for(path)
        return list(rule.owners) if rule else []


def parse(text: str, file: str = ".github/CODEOWNERS") -> CodeOwners:
    """Parse CODEOWNERS text. Invalid lines are skipped and reported as warnings with their line number."""
    if len(text.encode("utf-8", "surrogatepass")) >= MAX_BYTES:
        return CodeOwners(file, (), (_too_large(file),))
    text = text.removeprefix("\ufeff")
    rules: list[OwnerRule] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        tokens = _tokens(line)
        if not tokens:
            continue
        (col, pattern), owners = tokens[0], tokens[1:]
        error = _pattern_error(pattern)
        if error:
            message = f"invalid pattern {pattern!r}: {error}; GitHub skips this line"
            problems.append(_warning(file, number, col, message, "codeowners-invalid-pattern"))
            continue
        bad = next(((c, o) for c, o in owners if not is_valid_owner(o)), None)
        if bad:
            message = (
                f"invalid owner {bad[1]!r}: owners are @user, @org/team or an email address; "
                "GitHub skips this line"
            )
            problems.append(_warning(file, number, bad[0], message, "codeowners-invalid-owner"))
            continue
        rules.append(OwnerRule(pattern, tuple(o for _, o in owners), number))
    return CodeOwners(file, tuple(rules), tuple(problems))


def owners_for(codeowners_text: str, path: str) -> list[str]:
    """Owners of `path` under the CODEOWNERS text `codeowners_text` (parsed once per distinct text)."""
    return _parse_cached(codeowners_text).owners_for(path)


def find_codeowners(tree: Tree) -> CodeOwners:
    """The CODEOWNERS file GitHub would use at this revision; an empty CodeOwners(file="") when none."""
    for location in LOCATIONS:
        try:
            raw = tree.read(location)
        except ProblemError as exc:  # a symlink, say: no rules (code-owner steps stay pending), never a crash
            problem = exc.problem
            message = f"{problem.message}; no code owners are read from it"
            return CodeOwners(location, (), (_warning(location, problem.line, problem.col, message,
                                                      "codeowners-unreadable"),))
        if raw is None:
            continue
        if len(raw) >= MAX_BYTES:
            return CodeOwners(location, (), (_too_large(location),))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            found = parse(raw.decode("utf-8", "replace"), location)
            line = raw[: exc.start].count(b"\n") + 1
            problem = _warning(location, line, None, "not valid UTF-8", "codeowners-encoding")
            return CodeOwners(location, found.rules, (problem, *found.problems))
        return parse(text, location)
    return CodeOwners("")


def is_valid_owner(owner: str) -> bool:
    return any(rx.fullmatch(owner) for rx in (_USER, _TEAM, _EMAIL))


def owner_matches(owner: str, login: str, teams_of_login: Collection[str] = ()) -> bool:
    """Whether `login` is `owner` (@user, case-insensitive) or in it (@org/team, via `teams_of_login`,
    given as "org/slug" with or without "@"). Email owners never match here: only GitHub can map an
    address to an account, so the adapter must resolve them to logins first."""
    if not owner.startswith("@"):
        return False
    name = owner[1:].lower()
    if "/" in name:
        return name in {t.removeprefix("@").lower() for t in teams_of_login}
    return name == login.removeprefix("@").lower()


# --- internals -------------------------------------------------------------------------------------


def _tokens(line: str) -> list[tuple[int, str]]:
    """Whitespace-separated tokens with their 1-based columns, up to an inline comment.
    A backslash keeps the next character (escaped space included) in the token, backslash and all."""
    tokens: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    i = 0
    while i < len(line):
        ch = line[i]
        if ch in _WHITESPACE:
            if buf:
                tokens.append((start + 1, "".join(buf)))
                buf = []
            i += 1
            continue
        if ch == "#" and not buf:
            break
        if not buf:
            start = i
        step = 2 if ch == "\\" else 1
        buf.append(line[i : i + step])
        i += step
    if buf:
        tokens.append((start + 1, "".join(buf)))
    return tokens


def _pattern_error(pattern: str) -> str | None:
    """Why GitHub rejects `pattern`, or None when it is valid."""
    unescaped = re.sub(r"\\.", "", pattern)
    if pattern.startswith("!"):
        return "negation with '!' is not supported in CODEOWNERS"
    if pattern.startswith("\\#"):
        return "escaping a leading '#' with '\\' is not supported in CODEOWNERS"
    if "[" in unescaped or "]" in unescaped:
        return "character ranges '[ ]' are not supported in CODEOWNERS (escape '[' and ']' with '\\')"
    if unescaped.endswith("\\"):
        return "it ends with a lone backslash"
    if "***" in unescaped:
        return "it contains three consecutive asterisks"
    if not pattern.strip("/"):
        return "it can never match anything (did you mean '*'?)"
    return None


@functools.lru_cache(maxsize=8192)
def _compile(pattern: str) -> Callable[[str], object]:
    return re.compile(_regex(pattern), re.DOTALL).match


def _regex(pattern: str) -> str:
    """Translate a (valid) CODEOWNERS pattern into a regex that must match a whole file path."""
    anchored = _anchored(pattern)
    segments = pattern.strip("/").split("/")
    if pattern.endswith("/") and segments[-1] != "**":
        segments.append("**")  # a trailing "/" means "everything beneath"
    out = [r"\A"]
    if not anchored and segments[0] != "**":
        out.append("(?:.+/)?")  # no leading or middle slash: any depth
    need_slash = False
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            if last == 0:
                out.append(".+")
            elif i == 0:
                out.append("(?:.+/)?")
            elif i == last:
                out.append("/.+")
            else:
                out.append("(?:/.+)?")
            need_slash = 0 < i < last
            continue
        if need_slash:
            out.append("/")
        need_slash = True
        if seg == "*":
            out.append("[^/]+")
            continue  # a lone "*" names one level: "docs/*" does not reach "docs/a/b"
        out.append(_segment(seg))
        if i == last:
            out.append("(?:/.+)?")  # a matching directory owns everything beneath it
    out.append(r"\Z")
    return "".join(out)


def _segment(seg: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "\\" and i + 1 < len(seg):
            out.append(re.escape(seg[i + 1]))
            i += 2
            continue
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
        i += 1
    return "".join(out)


def _literal_top(pattern: str) -> str | None:
    """The literal first path segment every match of `pattern` starts with, if it is root-anchored."""
    top = pattern.strip("/").split("/", 1)[0]
    if not _anchored(pattern) or not top or any(c in top for c in "*?\\"):
        return None
    return top


def _anchored(pattern: str) -> bool:
    return "/" in pattern.rstrip("/")  # a leading or middle slash anchors to the root


def _order(matcher: _Matcher) -> int:
    return matcher[0]


def _normal_path(path: str) -> str:
    return path.removeprefix("./").lstrip("/")


@functools.lru_cache(maxsize=8)
def _parse_cached(text: str) -> CodeOwners:
    return parse(text)


def _warning(file: str, line: int | None, col: int | None, message: str, title: str) -> Problem:
    return Problem(file, line, col, message, "warning", title)


def _too_large(file: str) -> Problem:
    message = "CODEOWNERS must be under 3 MB; GitHub does not load larger files, so no rules apply"
    return _warning(file, None, None, message, "codeowners-too-large")
