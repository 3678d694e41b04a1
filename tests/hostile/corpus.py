# ruff: noqa: E501  (a table of cases reads better unwrapped)
"""A corpus of hostile flag repositories (issue 13).

Each case is the bundled example (this project's own `flags/` and policy) with files added or replaced, and
the file that the problems must name. Cases are generated rather than committed: several hold megabytes.

    python tests/hostile/corpus.py DIR          write every case to DIR/<case>/

`tests/test_hostile_corpus.py` runs each through the CLI in-process; `benchmarks/hostile.py` runs each as a
whole process and checks 2 s and 200 MB.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "flags/schemas/checkout_config.yaml"
CONFIG = "flags/checkout/checkout_config.yaml"
ROLLOUT = "flags/checkout/new_checkout_flow.yaml"
PAGE = "flags/search/search_results_page_size.yaml"
EVIL = "^(a+)+$"
SLOW = "a" * 5000 + "!"
BIG_INT = "1" + "0" * 400


@dataclass(frozen=True)
class Case:
    file: str  # the file whose problem must be reported
    files: dict[str, bytes] = field(default_factory=dict)  # path → content (added or replacing)
    edit: tuple[str, str, str] | None = None  # (path, old, new) in an example file
    special: Callable[[Path], None] | None = None  # things bytes cannot say (symlinks, FIFOs)


def _flag(key: str, body: str) -> bytes:
    return f"key: {key}\n{body}".encode()


def _object_flag(key: str, value: str, schema: str = "evil") -> bytes:
    return _flag(key, f"type: object\nschema: {schema}\nvariants:\n  a: {value}\ndefault_variant: a\n")


def _schema(name: str, body: str) -> bytes:
    return f"name: {name}\nversion: 1\nschema:\n{body}".encode()


def _anyof_chain(depth: int) -> str:
    lines = ["  $defs:", f"    d{depth}: {{type: integer}}"]
    for i in range(depth - 1, -1, -1):
        lines.append(f"    d{i}: {{anyOf: [{{$ref: '#/$defs/d{i + 1}'}}, {{$ref: '#/$defs/d{i + 1}'}}]}}")
    lines.append("  properties: {v: {$ref: '#/$defs/d0'}}")
    return "\n".join(lines) + "\n"


def _laughs() -> bytes:
    lines = ["key: laughs", "type: object", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def _symlink(root: Path) -> None:
    (root / "flags" / "passwd.yaml").symlink_to("/etc/passwd")


def _fifo(root: Path) -> None:
    os.mkfifo(root / "flags" / "pipe.yaml")


CASES: dict[str, Case] = {
    # --- regular expressions and schema evaluation ---
    "regex-backtracking-value": Case("flags/evil_value.yaml", {
        "flags/schemas/evil.yaml": _schema("evil", f"  properties: {{s: {{pattern: '{EVIL}'}}}}\n"),
        "flags/evil_value.yaml": _object_flag("evil_value", f"{{s: '{SLOW}'}}")}),
    "regex-backtracking-pattern-properties": Case("flags/evil_keys.yaml", {
        "flags/schemas/evil.yaml": _schema(
            "evil", f"  patternProperties: {{'{EVIL}': {{}}}}\n  additionalProperties: false\n"),
        "flags/evil_keys.yaml": _flag("evil_keys", "type: object\nschema: evil\nvariants:\n  a:\n"
                                      f"    ? {SLOW}\n    : 1\ndefault_variant: a\n")}),
    "regex-backtracking-in-nested-dialect": Case("flags/evil_nested.yaml", {
        "flags/schemas/evil.yaml": _schema("evil", "  properties:\n    s:\n      $schema: "
                                           f"https://json-schema.org/draft/2020-12/schema\n      pattern: '{EVIL}'\n"),
        "flags/evil_nested.yaml": _object_flag("evil_nested", f"{{s: '{SLOW}'}}")}),
    "regex-lookahead": Case(SCHEMA, edit=(SCHEMA, 'pattern: "^[a-z]{2}$"', 'pattern: "^(?=[a-z])[a-z]{2}$"')),
    "regex-backreference": Case(SCHEMA, edit=(SCHEMA, 'pattern: "^[a-z]{2}$"', 'pattern: "^([a-z])\\\\1$"')),
    "ref-cycle": Case("flags/schemas/evil.yaml", {"flags/schemas/evil.yaml": _schema(
        "evil", "  $defs: {a: {$ref: '#/$defs/b'}, b: {allOf: [{$ref: '#/$defs/a'}]}}\n  $ref: '#/$defs/a'\n"),
        "flags/uses_cycle.yaml": _object_flag("uses_cycle", "{x: 1}")}),
    "ref-self": Case("flags/schemas/evil.yaml", {"flags/schemas/evil.yaml": _schema("evil", "  not: {$ref: '#'}\n"),
                                                  "flags/uses_self.yaml": _object_flag("uses_self", "{}")}),
    "ref-remote": Case("flags/schemas/evil.yaml", {"flags/schemas/evil.yaml": _schema(
        "evil", "  $ref: 'https://example.com/schema.json'\n")}),
    "anyof-explosion": Case("flags/explode.yaml", {
        "flags/schemas/evil.yaml": _schema("evil", _anyof_chain(40)),
        "flags/explode.yaml": _object_flag("explode", "{v: text}")}),
    "unique-items-quadratic": Case("flags/many_items.yaml", {
        "flags/schemas/evil.yaml": _schema("evil", "  properties: {l: {uniqueItems: true, maxItems: 3}}\n"),
        "flags/many_items.yaml": _object_flag(
            "many_items", "{l: [" + ", ".join(f"{{x: {i}}}" for i in range(30_000)) + "]}")}),
    "schema-too-large": Case("flags/schemas/evil.yaml", {"flags/schemas/evil.yaml": _schema(
        "evil", "  properties:\n" + "".join(f"    p{i}: {{type: string, minLength: 1}}\n" for i in range(8_000)))}),
    "unevaluated-with-pattern-properties": Case("flags/schemas/evil.yaml", {"flags/schemas/evil.yaml": _schema(
        "evil", f"  patternProperties: {{'{EVIL}': {{}}}}\n  unevaluatedProperties: false\n")}),
    # --- numbers ---
    "huge-int-number-variant": Case(PAGE, edit=(PAGE, "small: 20", f"small: {BIG_INT}")),
    "huge-int-object-variant": Case(CONFIG, edit=(CONFIG, "retries: 3", f"retries: {BIG_INT}")),
    "huge-int-rule-value": Case(PAGE, edit=(PAGE, "value: desktop", f"value: {BIG_INT}")),
    "int-with-5000-digits": Case(PAGE, edit=(PAGE, "small: 20", "small: " + "9" * 5000)),
    "infinite-float-in-object": Case(CONFIG, edit=(CONFIG, "retries: 3", "retries: .inf")),
    "nan-threshold": Case(ROLLOUT, edit=(ROLLOUT, "threshold: 0.02", "threshold: .nan")),
    # --- YAML bombs and limits ---
    "alias-bytes": Case("flags/bytes.yaml", {"flags/bytes.yaml": _flag(
        "bytes", "type: string\ndescription: &s " + "x" * 65536 + "\nvariants:\n"
        + "".join(f"  v{i}: *s\n" for i in range(10_000)) + "default_variant: v0\n")}),
    "billion-laughs": Case("flags/laughs.yaml", {"flags/laughs.yaml": _laughs()}),
    "recursive-alias": Case("flags/loop.yaml", {"flags/loop.yaml": b"key: loop\na: &a [*a]\n"}),
    "merge-key-fanout": Case("flags/merge.yaml", {"flags/merge.yaml": (
        b"key: merge\nb: &b {" + b", ".join(b"k%d: %d" % (i, i) for i in range(500)) + b"}\n"
        + b"".join(b"m%d: {<<: [*b, *b, *b, *b, *b]}\n" % i for i in range(200)))}),
    "deep-flow-nesting": Case("flags/deep.yaml", {"flags/deep.yaml": b"key: deep\nv: " + b"[" * 100_000}),
    "deep-block-nesting": Case("flags/deep.yaml", {"flags/deep.yaml": b"key: deep\n" + b"".join(
        b"  " * i + b"k:\n" for i in range(1000))}),
    "file-too-large": Case("flags/large.yaml", {"flags/large.yaml": b"key: large\ndescription: "
                                                 + b"x" * (2 * 1024 * 1024) + b"\n"}),
    "flag-too-large-for-flagd": Case("flags/big_object.yaml", {"flags/big_object.yaml": _flag(
        "big_object", "type: object\ndescription: &b " + "y" * 200_000 + "\nvariants:\n"
        + "".join(f"  v{i}: {{blob: *b}}\n" for i in range(8)) + "default_variant: v0\n")}),
    "long-single-line": Case("flags/line.yaml", {"flags/line.yaml": _flag(
        "line", "type: string\nvariants: {a: " + "z" * 900_000 + "}\ndefault_variant: b\n")}),
    # --- loading ---
    "python-tag": Case("flags/tag.yaml", {"flags/tag.yaml": b"key: tag\nx: !!python/object/apply:os.system [id]\n"}),
    "invalid-utf8": Case("flags/bytes_bad.yaml", {"flags/bytes_bad.yaml": b"key: bytes_bad\nname: \xff\xfe\n"}),
    "control-characters": Case("flags/ctrl.yaml", {"flags/ctrl.yaml": b"key: ctrl\nname: a\x00b\x1b[31m\n"}),
    "binary-garbage": Case("flags/garbage.yaml", {"flags/garbage.yaml": bytes(range(256)) * 40}),
    "two-documents": Case("flags/two.yaml", {"flags/two.yaml": b"key: two\n---\nkey: three\n"}),
    "duplicate-key": Case(ROLLOUT, edit=(ROLLOUT, "key: new_checkout_flow\n", "key: new_checkout_flow\nkey: x\n")),
    "tab-indentation": Case(ROLLOUT, edit=(ROLLOUT, "  staging:\n", "\tstaging:\n")),
    "yaml11-on-key": Case("flags/dark_mode.yaml", edit=("flags/dark_mode.yaml", '"on":', "on:")),
    "misindented-rollout": Case(ROLLOUT, edit=(ROLLOUT, "    rollout:\n      variant", "  rollout:\n      variant")),
    "mapping-values-not-allowed": Case(ROLLOUT, edit=(ROLLOUT, "type: boolean\n", "type: boolean\n  x: y\n")),
    "symlink-outside": Case("flags/passwd.yaml", special=_symlink),
    "fifo": Case("flags/pipe.yaml", special=_fifo),
    # --- rollouts ---
    "stage-delay-overflow": Case(ROLLOUT, edit=(ROLLOUT, "stage_delay: 2h", "stage_delay: 99999999999999999999d")),
    "stage-past-year-9999": Case(ROLLOUT, edit=(ROLLOUT, "start_at: 2026-11-20T09:00:00Z",
                                                "start_at: 9999-12-30T00:00:00Z")),
    "json-field-without-threshold": Case(ROLLOUT, edit=(ROLLOUT, "        threshold: 0.02\n", "")),
    "threshold-without-json-field": Case(ROLLOUT, edit=(ROLLOUT, "        json_field: data.error_rate\n", "")),
    # --- paths ---
    "windows-reserved-name": Case("flags/aux.yaml", {"flags/aux.yaml": _flag(
        "aux", 'type: boolean\nvariants: {"on": true}\ndefault_variant: "on"\n')}),
    "windows-reserved-folder": Case("flags/com1/x.yaml", {"flags/com1/x.yaml": _flag(
        "x", 'type: boolean\nvariants: {"on": true}\ndefault_variant: "on"\n')}),
    "trailing-dot-folder": Case("flags/team./y.yaml", {"flags/team./y.yaml": _flag(
        "y", 'type: boolean\nvariants: {"on": true}\ndefault_variant: "on"\n')}),
    "case-clash": Case("flags/Checkout/z.yaml", {"flags/Checkout/z.yaml": _flag(
        "z", 'type: boolean\nvariants: {"on": true}\ndefault_variant: "on"\n')}),
}


def example(root: Path) -> Path:
    """The untouched bundled example (flags and policy) under `root`, which must not exist."""
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "flags", root / "flags")
    (root / ".github").mkdir()
    shutil.copy(ROOT / ".github" / "gitops-flags.yml", root / ".github" / "gitops-flags.yml")
    return root


def materialize(name: str, root: Path) -> Path:
    """Write case `name` as a repository under `root` (which must not exist); returns `root`."""
    case = CASES[name]
    example(root)
    if case.edit is not None:
        path, old, new = case.edit
        text = (root / path).read_text()
        assert old in text, (name, old)
        (root / path).write_text(text.replace(old, new, 1))
    for path, content in case.files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    if case.special is not None:
        case.special(root)
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for case_name in CASES:
        materialize(case_name, out / case_name)
    print(f"{len(CASES)} cases in {out}")
