"""PR-supplied text made inert: in GitHub Markdown (`escape_md`, `code`), in an HTML block (`html_text`),
in a terminal or a status line (`plain`); the only @mentions (`mention`); links to files at the PR's head.

Text that comes from the PR (flag names, summaries, paths, review text, messages quoting YAML) is escaped
before it reaches Markdown, so a PR cannot mention people, inject HTML, links or images, or break a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_TEAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
# C0/C1 control characters (ESC included: no terminal escapes in plain text) and bidirectional overrides
# ("trojan source"): dropped from every PR-supplied string.
_INVISIBLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"[\r\n\t\u2028\u2029]+")
_ZWSP = "&#8203;"  # zero-width space: breaks @mentions, #refs and autolinks without changing the text
MD_ESCAPED = frozenset("\\`*_[]()!~$")  # inline constructs: code, emphasis, links, images, strike, math
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", '"': "&quot;"}
# what would open a heading, list, setext underline or thematic break at the start of a block
_BLOCK_START = re.compile(r"[#=+-]|\d{1,9}[.)]")


@dataclass(frozen=True)
class Links:
    """Where the report's links point: files at the PR's head commit, and the workflow run."""

    server_url: str = "https://github.com"
    repository: str = ""  # owner/name
    head_sha: str = ""
    run_url: str | None = None

    def blob_url(self, path: str, line: int | None = None) -> str:
        url = f"{self.server_url.rstrip('/')}/{self.repository}/blob/{self.head_sha}/{quote(path, safe='/')}"
        return f"{url}#L{line}" if line else url


def clean(text: object, limit: int | None = None) -> str:
    """One line of visible text: invisible characters dropped, line breaks and tabs become spaces."""
    s = _NEWLINES.sub(" ", _INVISIBLE.sub("", str(text)))
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def escape_md(text: object, limit: int | None = 500) -> str:
    """PR-supplied text made inert in GitHub Markdown, inside or outside a table cell.

    HTML is entity-escaped, link/image/emphasis/code/math punctuation is backslash-escaped, `|` cannot split
    a cell, and a zero-width space after `@`, before a digit after `#`, and inside `://` / `www.` keeps
    GitHub from creating mentions, issue references and autolinks. Leading blanks are dropped and a leading
    `#`, `-`, `+`, `=` or `1.` is escaped, so text that starts a line cannot open a heading, a list or a code
    block. Long text is cut at `limit`.
    """
    s = clean(text, limit).lstrip()
    lead = _BLOCK_START.match(s)
    block_mark = lead.end() - 1 if lead else -1
    out: list[str] = []
    n = len(s)
    for i, ch in enumerate(s):
        nxt = s[i + 1] if i + 1 < n else ""
        if i == block_mark:
            out.append("\\" + ch + (_ZWSP if ch == "#" and nxt.isdigit() else ""))
        elif ch in _HTML:
            out.append(_HTML[ch])
        elif ch in MD_ESCAPED:
            out.append("\\" + ch)
        elif ch == "@":
            out.append("@" + _ZWSP)
        elif ch == "#" and nxt.isdigit():
            out.append("#" + _ZWSP)
        elif ch == ":" and s.startswith("//", i + 1):
            out.append(":" + _ZWSP)
        elif ch == "." and s[max(i - 3, 0) : i].lower() == "www":
            out.append(_ZWSP + ".")
        else:
            out.append(ch)
    return "".join(out)


def code(text: object, limit: int = 200) -> str:
    """Text as an inline code span when that is safe (no backtick, no `|`), else escaped plain text.

    Inside a code span GitHub renders nothing (no HTML, mentions or links); only a backtick could end it
    and only a `|` could split a table cell, so those fall back to `escape_md`.
    """
    s = clean(text, limit)
    if not s.strip() or "`" in s or "|" in s:
        return escape_md(s, limit)
    return f"`{s}`"


def mention(who: str) -> str:
    """`@login` or `@org/team` for a well-formed name (from the base policy or CODEOWNERS); else inert."""
    name = who.strip().lstrip("@")
    if _LOGIN.fullmatch(name) or _TEAM.fullmatch(name):
        return "@" + name
    return escape_md(who, 100)


def plain(text: object, limit: int | None = None) -> str:
    """PR-supplied text for a terminal or a status line: one line, no control characters."""
    return clean(text, limit)


def html_text(text: object, limit: int = 200) -> str:
    """PR text inside an HTML block (a `<summary>`): HTML-escaped, mentions and references broken."""
    s = escape_md(text, limit)
    for ch in MD_ESCAPED:  # Markdown is not parsed in an HTML block: a backslash would show
        s = s.replace("\\" + ch, ch)
    return s.replace("`", "&#96;")


def link(text: str, url: str | None) -> str:
    label = escape_md(text)
    return f"[{label}]({url})" if url else label


def file_link(path: str, line: int | None, links: Links | None, label: str | None = None) -> str:
    url = links.blob_url(path, line) if links and links.head_sha and links.repository else None
    return link(label if label is not None else path, url)
