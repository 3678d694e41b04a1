"""Safe YAML loading with positions and limits.

PyYAML alone is not enough for files that people edit in pull requests: it keeps the last of two duplicate
keys, reads `on:` as the key True and `0755` as 493, and its constructor walks alias graphs without limit.
So libyaml (through `CSafeLoader`) only *composes* the node graph here; `_Builder` turns nodes into plain
data itself, checking duplicates, depth, expanded size, tags and YAML 1.1 surprises in the same single
pass. That pass is cheaper than PyYAML's own constructor, which keeps loading at the speed of a bare
`yaml.load(text, Loader=CSafeLoader)` (benchmarks/loader_floor.py measures it).

The composed root node stays in the `Document`, so `position()` finds a line only when someone asks.
One module (~610 lines) on purpose: the builder's checks are inlined in one pass over the nodes, the hot
path of `validate`; splitting them into helpers costs a call per node.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    Event,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_flags.problems import Problem, ProblemError, Severity

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = _T + "str", _T + "int", _T + "float", _T + "bool", _T + "null"
_TIMESTAMP, _MAP, _SEQ, _MERGE, _VALUE = _T + "timestamp", _T + "map", _T + "seq", _T + "merge", _T + "value"
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_SURPRISING_BOOLS = frozenset({"yes", "no", "on", "off"})
_NUMBER_START = frozenset("0123456789+-.")
# What YAML 1.2 (and most other tools) read as numbers; a plain scalar PyYAML keeps as text but that
# matches one of these (1e3, 0o755, .5e1, ...) means something else to the next reader.
_YAML12_NUMBER = re.compile(
    r"0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(?:[0-9]+|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)"
)
# libyaml composes recursively in C and overflows the C stack on very deep input (a segfault, not an
# exception), so depth beyond this is refused from the event stream before composing.
_COMPOSER_SAFE_DEPTH = 1000
_BOM = b"\xef\xbb\xbf"
_BUSY = object()  # memo marker: this collection is being built (an alias to it is recursive)
_SC = SafeConstructor()  # PyYAML's own constructors for the rare forms (timestamps, 0x1F, 1:30, .inf)
# Tells plain text the resolver chose (1e3) from an explicit `!!str 12`.
_resolve: Callable[[type[Node], str, tuple[bool, bool]], str] = yaml.resolver.Resolver().resolve


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1024 * 1024  # file size limit (1 MiB)
    max_depth: int = 64  # nesting depth of mappings/sequences
    max_nodes: int = 100_000  # total nodes after alias expansion (billion-laughs guard)
    max_expanded: int = 4 * 1024 * 1024  # characters of text after alias expansion (a string used often)

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= _COMPOSER_SAFE_DEPTH:
            raise ValueError(f"max_depth must be between 1 and {_COMPOSER_SAFE_DEPTH}")


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Document:
    file: str  # path as shown to users (relative to the repository root)
    data: Any  # plain Python values; aliases share objects, so treat them as read-only
    warnings: tuple[Problem, ...] = ()  # YAML 1.1 surprises (severity "error" for `on:`-style keys)
    node: Node | None = field(default=None, repr=False, compare=False)  # composed root, for positions
    lines: _LineMap | None = field(default=None, repr=False, compare=False)  # see _line_map
    size: int = 0  # characters of text after alias expansion (the file's size when it has no alias)


    def position(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, col) of the value at `loc` (a pydantic-style path of keys and indexes).

        A mapping key gives the key's position. Elements that are not in the data (pydantic's union tags,
        a missing key) are skipped, so the answer is the deepest part of `loc` that exists. Root → (1, 1).
        """
        node = self.node
        found: Node | None = None
        for part in loc:
            if isinstance(node, MappingNode):
                pair = _lookup(node, part)
                if pair is not None:
                    found, node = pair
            elif (
                isinstance(node, SequenceNode)
                and isinstance(part, int)
                and not isinstance(part, bool)
                and 0 <= part < len(node.value)
            ):
                found = node = node.value[part]
        if found is None:
            return (1, 1)
        return _where(found.start_mark, self.lines)


def load_path(root: Path, rel: str, limits: Limits = DEFAULT_LIMITS) -> Document:
    """Load `rel` (POSIX, relative to `root`). Refuses paths and symlinks that lead outside `root`, and
    checks the size before reading."""
    norm = posixpath.normpath(rel)
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        _fail(rel, None, None, "the path leads outside the repository", "path-outside")
    _check_symlinks(str(root), norm, rel)
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is refused by the regular-file check below.
        fd = os.open(os.path.join(root, norm), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        _fail(rel, None, None, "no such file", "not-found")
    except OSError as e:
        _fail(rel, None, None, f"cannot open the file: {e.strerror}", "read-error")
    try:
        st = os.fstat(fd)  # stat of the opened file: nothing can swap it between the check and the read
        if not stat.S_ISREG(st.st_mode):
            _fail(rel, None, None, "not a regular file", "not-a-file")
        if st.st_size > limits.max_bytes:
            _too_large(rel, st.st_size, limits)
        chunks: list[bytes] = []
        size = 0
        while size <= limits.max_bytes:  # the file may grow after fstat: never read past the limit
            chunk = os.read(fd, limits.max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        _fail(rel, None, None, f"cannot read the file: {e.strerror}", "read-error")
    finally:
        os.close(fd)
    return load_bytes(chunks[0] if len(chunks) == 1 else b"".join(chunks), rel, limits)


def load_bytes(raw: bytes, file: str, limits: Limits = DEFAULT_LIMITS) -> Document:
    """Parse one YAML document whose root is a mapping into plain data. Raises `ProblemError`."""
    if len(raw) > limits.max_bytes:
        _too_large(file, len(raw), limits)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _byte_position(raw, e.start)
        message = f"invalid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        _fail(file, line, col, message, "invalid-utf8")
    lines = _line_map(raw)
    # Nesting needs one of these characters per level, so their count bounds the depth for free.
    bound = raw.count(b"[") + raw.count(b"{") + raw.count(b"-") + raw.count(b":") + raw.count(b"?")
    loader: yaml.SafeLoader | None = None
    try:
        loader = _Loader(raw)  # the pure-Python reader already checks characters here
        if bound > _COMPOSER_SAFE_DEPTH:
            _check_depth(loader, file, limits, lines)
            loader.dispose()
            loader = _Loader(raw)
        root = loader.get_single_node()
    except yaml.YAMLError as e:
        raise ProblemError(_yaml_problem(e, raw, file, lines, limits)) from None
    except RecursionError:  # only the pure-Python fallback composer recurses in Python
        _fail(file, None, None, "nesting too deep to parse", "too-deep")
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(root, MappingNode):
        expected = "a mapping of `key: value` lines is expected"
        if root is None or (root.tag == _NULL and root.value == ""):  # nothing, or a lone `---`
            _fail(file, 1, 1, f"the file is empty; {expected}", "root-not-mapping")
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        line, col = _where(root.start_mark, lines)
        _fail(file, line, col, f"the top level is {kind}; {expected}", "root-not-mapping")
    shared = b"*" in raw  # no '*': no aliases, no sharing
    builder = _Builder(file, limits, shared=shared, lines=lines)
    data = builder.build(root)
    size = builder.expanded(root, limits.max_expanded) if shared else len(raw)
    return Document(file, data, tuple(builder.warnings), root, lines, size)


# --- building plain data from nodes -----------------------------------------------------------------


class _Builder:
    def __init__(self, file: str, limits: Limits, shared: bool, lines: _LineMap | None = None) -> None:
        self.file = file
        self.lines = lines
        self.max_depth = limits.max_depth
        self.max_nodes = limits.max_nodes
        self.count = 0  # nodes so far, counting every use of an alias in full
        self.aliased = False
        self.warnings: list[Problem] = []
        # id(node) -> (value, expanded size): each aliased collection is built and sized once, so a
        # billion-laughs document costs its size on disk, never its expansion.
        self.memo: dict[int, Any] | None = {} if shared else None

    def build(self, node: Node, depth: int = 0) -> Any:
        if node.__class__ is ScalarNode:
            self.count += 1
            return self.scalar(node, False)
        memo = self.memo
        if memo is not None:
            hit = memo.get(id(node))
            if hit is _BUSY:
                message = "an alias refers to the collection that contains it (a recursive alias)"
                self.fail(node, message, "recursive-alias")
            if hit is not None:
                self.aliased = True
                self.count += hit[1]
                if self.count > self.max_nodes:
                    self.too_many(node)
                return hit[0]
            memo[id(node)] = _BUSY
        depth += 1
        if depth > self.max_depth:
            self.fail(node, f"nesting deeper than {self.max_depth} levels", "too-deep")
        start = self.count
        self.count += 1
        if node.__class__ is MappingNode:
            if node.tag != _MAP:
                self.bad_tag(node)
            value: Any = self.mapping(node, depth)
        elif node.__class__ is SequenceNode:
            if node.tag != _SEQ:
                self.bad_tag(node)
            build, scalar = self.build, self.scalar
            value = []
            for item in node.value:
                if item.__class__ is ScalarNode:
                    self.count += 1
                    if item.tag == _STR:
                        text = item.value
                        if not item.style and text and text[0] in _NUMBER_START:
                            self.check_text(item, text)
                        value.append(text)
                    else:
                        value.append(scalar(item, False))
                else:
                    value.append(build(item, depth))
        else:  # pragma: no cover - composers only make the three node kinds
            raise TypeError(node)
        if self.count > self.max_nodes:
            self.too_many(node)
        if memo is not None:
            memo[id(node)] = (value, self.count - start)
        return value

    def mapping(self, node: MappingNode, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        build, scalar = self.build, self.scalar
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.__class__ is ScalarNode:
                self.count += 1
                if key_node.tag == _STR:
                    key = key_node.value
                    if not key_node.style and key and key[0] in _NUMBER_START:
                        self.check_text(key_node, key)
                elif key_node.tag == _MERGE:
                    merges.append(key_node)
                    continue
                else:
                    key = scalar(key_node, True)
            else:
                key = build(key_node, depth)
            if value_node.__class__ is ScalarNode:
                self.count += 1
                if value_node.tag == _STR:
                    value = value_node.value
                    if not value_node.style and value and value[0] in _NUMBER_START:
                        self.check_text(value_node, value)
                else:
                    value = scalar(value_node, False)
            else:
                value = build(value_node, depth)
            try:
                result[key] = value
            except TypeError:
                self.fail(key_node, "a list or mapping cannot be a mapping key", "unhashable-key")
        if len(result) + len(merges) != len(node.value) or len(merges) > 1:
            self.report_duplicate(node)
        if merges:
            return self.merge(node, merges[0], depth, result)
        return result

    def merge(self, node: MappingNode, key_node: Node, depth: int, own: dict[Any, Any]) -> dict[Any, Any]:
        """`<<: *base` / `<<: [*a, *b]` (YAML 1.1 merge keys, as PyYAML reads them): keys written here
        win over merged ones, and earlier sources win over later ones."""
        source = next(v for k, v in node.value if k is key_node)
        sources = source.value if isinstance(source, SequenceNode) else [source]
        if not all(isinstance(s, MappingNode) for s in sources):
            self.fail(source, "`<<` (merge) takes a mapping or a list of mappings", "bad-merge")
        if isinstance(source, SequenceNode):
            self.count += 1  # the list itself; its mappings are counted by build()
        result: dict[Any, Any] = {}
        for sub in reversed(sources):
            result.update(self.build(sub, depth))
        result.update(own)
        return result

    def scalar(self, node: ScalarNode, is_key: bool) -> Any:
        """A non-trivial scalar: anything but quoted text (which the loops above take directly)."""
        tag, text = node.tag, node.value
        if tag == _STR:
            if not node.style and text and text[0] in _NUMBER_START:
                self.check_text(node, text)
            return text
        if tag == _BOOL:
            lower = text.lower()
            if lower in _SURPRISING_BOOLS and not node.style:
                self.bool_warning(node, text, _BOOLS[lower], is_key)
            try:
                return _BOOLS[lower]
            except KeyError:
                self.fail(node, f"{text!r} is not a boolean", "bad-value")
        if tag == _NULL:
            return None
        try:
            if tag == _INT:
                if text.isdigit() and (text[0] != "0" or len(text) == 1):
                    return int(text)
                value = _SC.construct_yaml_int(node)
                body = text.lstrip("+-")
                if not node.style and ((body[:1] == "0" and len(body) > 1) or "_" in body or ":" in body):
                    self.number_warning(node, text, value)
                return value
            if tag == _FLOAT:
                number: float = _SC.construct_yaml_float(node)
                if not node.style and ("_" in text or ":" in text):
                    self.number_warning(node, text, number)
                return number
            if tag == _TIMESTAMP:
                return _SC.construct_yaml_timestamp(node)
        except (ValueError, TypeError, AttributeError, IndexError):  # an explicit tag on text that won't fit
            shown = repr(text) if len(text) <= 60 else repr(text[:57]) + "…"
            self.fail(node, f"{shown} is not a valid {tag.rsplit(':', 1)[-1]}", "bad-value")
        if tag in (_MERGE, _VALUE):  # `<<` or `=` where no special meaning applies: just text
            return text
        self.bad_tag(node)

    def expanded(self, root: Node, limit: int) -> int:
        """Characters of text once every alias is expanded (the node limit alone lets one 64 KiB string,
        used 10,000 times, through). Each node is sized once; an anchor's size counts at every use."""
        sizes: dict[int, int] = {}
        over: list[Node] = []

        def size(node: Node) -> int:
            hit = sizes.get(id(node))
            if hit is not None:
                if hit > limit // 64 and not over:
                    over.append(node)  # the anchor that costs the most is the one to name
                return hit
            if node.__class__ is ScalarNode:
                n = len(node.value) + 1
            elif node.__class__ is MappingNode:
                n = 1 + sum(size(k) + size(v) for k, v in node.value)
            else:
                n = 1 + sum(size(item) for item in node.value)
            sizes[id(node)] = n
            return n

        total = size(root)
        if total > limit:
            culprit = over[0] if over else root
            line = _where(culprit.start_mark, self.lines)[0]
            message = (f"aliases expand to more than {limit} characters of text (the anchor on line {line} "
                       "is used many times)")
            self.fail(culprit, message, "alias-expansion")
        return total

    # --- YAML 1.1 surprises ---

    def bool_warning(self, node: Node, text: str, value: bool, is_key: bool) -> None:
        word = "true" if value else "false"
        if is_key:
            message = f'the key `{text}` is read as the boolean {word} (YAML 1.1); quote it: "{text}":'
            self.warn(node, message, "error", "yaml11-bool-key")
        else:
            message = f'`{text}` is read as the boolean {word} (YAML 1.1); quote it, "{text}", for the text'
            self.warn(node, f"{message}, or write {word}", "warning", "yaml11-bool")

    def number_warning(self, node: Node, text: str, value: float) -> None:
        body = text.lstrip("+-")
        if ":" in text:
            how = "the base-60 number"
        elif body[:1] == "0" and body[1:2].isdigit() and "." not in body:
            how = "the octal number"
        else:
            how = "the number"  # 0x / 0b, or underscores, which YAML 1.1 ignores
        message = f'`{text}` is read as {how} {value} (YAML 1.1); quote it, "{text}", for the text'
        self.warn(node, f"{message}, or write {value}", "warning", "yaml11-number")

    def check_text(self, node: Node, text: str) -> None:
        """Plain text that YAML 1.2 (and most other tools) would read as a number, e.g. 1e3 or 0o755."""
        if _YAML12_NUMBER.fullmatch(text) and _resolve(ScalarNode, text, (True, False)) == _STR:
            digits = text.lstrip("+-").isdigit()
            number = int(text, 0) if text[:2] in ("0o", "0x") else int(text) if digits else float(text)
            message = f'`{text}` is read as text (YAML 1.1), but YAML 1.2 reads it as the number {number}'
            self.warn(node, f'{message}; quote it, "{text}", or write {number}', "warning", "yaml11-text")

    # --- failures ---

    def warn(self, node: Node, message: str, severity: Severity, title: str) -> None:
        line, col = _where(node.start_mark, self.lines)
        self.warnings.append(Problem(self.file, line, col, message, severity, title))

    def fail(self, node: Node, message: str, title: str) -> NoReturn:
        _fail(self.file, *_where(node.start_mark, self.lines), message, title)

    def bad_tag(self, node: Node) -> NoReturn:
        tag = node.tag.replace(_T, "!!")
        why = " (Python object tags could run code)" if "python/" in tag else ""
        message = f"the tag {tag} is not allowed{why}; use plain strings, numbers, booleans, lists, mappings"
        self.fail(node, message, "unsupported-tag")

    def too_many(self, node: Node) -> NoReturn:
        if self.aliased:
            message = f"aliases expand to more than {self.max_nodes} nodes (a 'billion laughs' document?)"
            self.fail(node, message, "alias-expansion")
        self.fail(node, f"more than {self.max_nodes} nodes", "too-many-nodes")

    def report_duplicate(self, node: MappingNode) -> None:
        seen: dict[Any, Node] = {}
        quiet = _Builder(self.file, Limits(), shared=False)
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                continue
            if key_node.tag == _MERGE:
                key: Any = _MERGE
            else:
                key = key_node.value if key_node.tag == _STR else quiet.scalar(key_node, True)
            first = seen.setdefault(key, key_node)
            if first is not key_node:
                same = "" if first.value == key_node.value else f" (the same key as {first.value!r})"
                line = _where(first.start_mark, self.lines)[0]
                message = (
                    f"duplicate key {key_node.value!r}{same}: it is already on line {line}; "
                    "YAML would silently keep only the last one"
                )
                self.fail(key_node, message, "duplicate-key")
        raise AssertionError("no duplicate found")  # pragma: no cover - only called when sizes differ


def _lookup(node: MappingNode, part: str | int) -> tuple[Node, Node] | None:
    """The (key node, value node) whose key equals `part`: keys written in `node` first, then merged ones."""
    merged: list[Node] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, ScalarNode):
            continue
        if key_node.tag == _MERGE:
            merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
            continue
        if key_node.tag == _STR or key_node.style:
            key: Any = key_node.value
        else:
            try:
                key = _Builder("", Limits(), shared=False).scalar(key_node, True)
            except ProblemError:
                key = key_node.value
        if (key == part and isinstance(key, bool) == isinstance(part, bool)) or (
            isinstance(part, str) and str(key) == part
        ):
            return key_node, value_node
    for source in merged:
        if isinstance(source, MappingNode):
            found = _lookup(source, part)
            if found is not None:
                return found
    return None


# --- errors from the parser -------------------------------------------------------------------------


def _check_depth(loader: yaml.SafeLoader, file: str, limits: Limits, lines: _LineMap | None) -> None:
    """Walk the event stream (no nodes) to refuse deep nesting before libyaml's recursive composer sees it."""
    depth = 0
    get_event: Callable[[], Event] = loader.get_event
    while True:
        event = get_event()
        cls = event.__class__
        if cls is MappingStartEvent or cls is SequenceStartEvent:
            depth += 1
            if depth > limits.max_depth:
                line, col = _where(event.start_mark, lines)
                _fail(file, line, col, f"nesting deeper than {limits.max_depth} levels", "too-deep")
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            depth -= 1
        elif cls is StreamEndEvent:
            return


def _yaml_problem(
    error: yaml.YAMLError, raw: bytes, file: str, lines: _LineMap | None, limits: Limits = DEFAULT_LIMITS
) -> Problem:
    if isinstance(error, yaml.reader.ReaderError):  # a control character; libyaml gives a byte offset
        line, col = _byte_position(raw, error.position)
        code = error.character if isinstance(error.character, int) else ord(error.character)
        message = f"character #x{code:04x} is not allowed in YAML"
        return Problem(file, line, col, message, "error", "invalid-character")
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return Problem(file, None, None, f"YAML error: {error}", "error", "yaml-syntax")
    mark = error.problem_mark
    line, col = _where(mark, lines)
    problem = error.problem or "invalid YAML"
    if "maximum nesting depth" in problem:  # libyaml >= 0.2.5 as bundled by PyYAML 6.0.4 caps nesting itself
        return Problem(file, line, col, f"nesting deeper than {limits.max_depth} levels", "error", "too-deep")
    if "another document" in problem or "<document start>" in problem:  # `---`, or text after `...`
        message = "a second YAML document starts here; a file holds one (remove the `---` or `...` separator)"
        return Problem(file, line, col, message, "error", "multiple-documents")
    split = raw.split(b"\n")
    text_line = split[line - 1] if line <= len(split) else b""
    if line == 1:
        text_line = text_line.removeprefix(_BOM)  # libyaml's columns do not count a byte-order mark
    indent = text_line[: len(text_line) - len(text_line.lstrip(b" \t"))]
    if b"\t" in indent:
        message = "a tab is used for indentation; indent with spaces"
        return Problem(file, line, indent.index(b"\t") + 1, message, "error", "tab-indent")
    if text_line.decode("utf-8", "replace")[col - 1 : col] == "\t":  # `-\tx`, `? \tx`
        message = "a tab where YAML needs spaces (it takes tabs only inside values); use spaces"
        return Problem(file, line, col, message, "error", "tab-indent")
    message = f"YAML syntax error: {problem}"
    hint = _hint(problem, line, col)
    if hint:
        message += f"; {hint}"
    elif error.context:
        where = f" on line {_where(error.context_mark, lines)[0]}" if error.context_mark is not None else ""
        message += f" ({error.context}{where})"
    if lines is not None:
        message += "; the file holds U+2028, U+2029 or U+0085, which YAML 1.1 reads as a line break"
    return Problem(file, line, col, message, "error", "yaml-syntax")


def _hint(problem: str, line: int, col: int) -> str | None:
    """Plain words for the two syntax errors that misindentation causes."""
    if "mapping values are not allowed" in problem:  # libyaml: "in this context"; PyYAML: "here"
        return (f"the `:` at line {line}, column {col} starts a `key: value` where none can start: either "
                "this line is indented deeper than the line above, which already has a value (indent it "
                "like its siblings), or a value holds ': ' and needs quotes")
    if "did not find expected key" in problem:
        return (f"line {line} is indented to column {col}, which lines up with no mapping above it: give "
                "keys of one mapping the same indentation")
    return None


# libyaml line index -> (0-based line, columns before it on that line), for the rare file in which libyaml
# (reading YAML 1.1) breaks lines where editors and GitHub do not: at U+0085, U+2028 and U+2029.
_LineMap = tuple[tuple[int, int], ...]
_PHANTOM_BREAKS = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")
_BREAK = re.compile("(\r\n|\r|\n|\x85|\u2028|\u2029)")


def _line_map(raw: bytes) -> _LineMap | None:
    if not any(b in raw for b in _PHANTOM_BREAKS):
        return None
    parts = _BREAK.split(raw.decode("utf-8").removeprefix("\ufeff"))
    table: list[tuple[int, int]] = []
    line = offset = 0
    for i in range(0, len(parts), 2):
        table.append((line, offset))
        separator = parts[i + 1] if i + 1 < len(parts) else "\n"
        if separator in ("\x85", "\u2028", "\u2029"):
            offset += len(parts[i]) + 1
        else:
            line, offset = line + 1, 0
    return tuple(table)


def _where(mark: Any, lines: _LineMap | None) -> tuple[int, int]:
    """1-based (line, col) of a libyaml mark, as editors count them."""
    if lines is None or mark.line >= len(lines):
        return mark.line + 1, mark.column + 1
    line, offset = lines[mark.line]
    return line + 1, offset + mark.column + 1


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    start = raw.rfind(b"\n", 0, offset) + 1
    if start == 0 and raw.startswith(_BOM):
        start = len(_BOM)  # a byte-order mark is not a column
    return raw.count(b"\n", 0, offset) + 1, len(raw[start:offset].decode("utf-8", "replace")) + 1


def _check_symlinks(root: str, norm: str, rel: str) -> None:
    """Every symlink along `norm` (a linked directory as much as a linked file) must resolve inside `root`."""
    path = root
    real_root: str | None = None
    for part in norm.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            real_root = real_root or os.path.realpath(root)
            target = os.path.realpath(path)
            if target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep):
                shown = os.path.relpath(path, root).replace(os.sep, "/")
                message = f"{shown} is a symlink that leads outside the repository; refusing to follow it"
                _fail(rel, None, None, message, "symlink-outside")


def _too_large(file: str, size: int, limits: Limits) -> NoReturn:
    message = f"the file is {size} bytes; the limit is {limits.max_bytes} bytes"
    _fail(file, None, None, message, "file-too-large")


def _fail(file: str, line: int | None, col: int | None, message: str, title: str) -> NoReturn:
    raise ProblemError(Problem(file, line, col, message, "error", title))
