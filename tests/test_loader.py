from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_flags import loader
from gitops_flags.loader import DEFAULT_LIMITS, Document, Limits, load_bytes, load_path
from gitops_flags.problems import Problem, ProblemError

FLAG = b"""\
key: new_checkout_flow
name: New Checkout Flow
owner: "@acme/checkout"
tags: [q1, frontend]
variants: {"on": true, "off": false}
environments:
  staging:
    enabled: true
  production:
    enabled: true
    rules:
      - name: staff
        when: {attribute: email, operator: ends_with, value: "@acme.com"}
        variant: "on"
      - name: beta
        when:
          attribute: plan
          operator: in
          value: [beta, enterprise]
        variant: "on"
    rollout:
      stages: [5, 25, 50]
      start_at: 2026-12-01T09:00:00Z
"""


def failure(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Problem:
    with pytest.raises(ProblemError) as caught:
        load_bytes(raw, "flags/x.yaml", limits)
    problem = caught.value.problem
    assert problem.severity == "error"
    assert problem.file == "flags/x.yaml"
    return problem


def titles(doc: Document) -> list[tuple[int | None, str, str]]:
    return [(w.line, w.severity, w.title) for w in doc.warnings]


# --- the happy path -------------------------------------------------------------------------------


def test_loads_a_flag_as_plain_data_like_safe_load() -> None:
    doc = load_bytes(FLAG, "flags/new_checkout_flow.yaml")
    assert doc.data == yaml.safe_load(FLAG)
    rollout = doc.data["environments"]["production"]["rollout"]
    assert rollout["start_at"] == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert doc.warnings == ()
    assert doc.file == "flags/new_checkout_flow.yaml"


def test_scalars_resolve_as_yaml_does() -> None:
    raw = b"a: 1\nb: -2.5\nc: .inf\nd: ~\ne: null\nf: true\ng: False\nh: '12'\ni: !!str 12\nj: 2026-01-02\n"
    doc = load_bytes(raw, "x.yaml")
    assert doc.data == yaml.safe_load(raw)
    assert doc.warnings == ()  # an explicit !!str on 12 is deliberate, not a surprise


def test_non_string_keys_are_kept_for_the_validator() -> None:
    doc = load_bytes(b"2: two\ntrue: yes-ish\n~: nothing\n", "x.yaml")
    assert doc.data == {2: "two", True: "yes-ish", None: "nothing"}
    assert doc.warnings == ()


def test_aliases_and_merge_keys_work_and_share_objects() -> None:
    raw = b"base: &b {enabled: true, variant: 'on'}\nstaging: *b\nproduction:\n  <<: *b\n  enabled: false\n"
    doc = load_bytes(raw, "x.yaml")
    assert doc.data == yaml.safe_load(raw)
    assert doc.data["production"] == {"enabled": False, "variant": "on"}
    assert doc.data["staging"] is doc.data["base"]


# --- errors, each with its exact place ------------------------------------------------------------


def test_duplicate_key_reports_the_second_and_names_the_first() -> None:
    problem = failure(b"key: a\nenvironments:\n  staging:\n    enabled: true\n    x: 1\n    enabled: false\n")
    assert (problem.line, problem.col, problem.title) == (6, 5, "duplicate-key")
    assert "'enabled'" in problem.message and "line 4" in problem.message


def test_duplicate_key_in_flow_mapping_and_equal_keys_written_differently() -> None:
    assert failure(b"a: 1\nv: {x: 1, y: 2, x: 3}\n").line == 2
    problem = failure(b"1: a\nb: c\n0x1: d\n")  # both are the integer 1
    assert (problem.line, problem.title) == (3, "duplicate-key")
    assert "line 1" in problem.message


def test_file_over_the_size_limit() -> None:
    problem = failure(b"a: 1234567890\n", Limits(max_bytes=10))
    assert problem.title == "file-too-large"
    assert "14 bytes" in problem.message and "10 bytes" in problem.message


def test_load_path_checks_the_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(64 * 1024 * 1024)  # sparse: the size comes from stat, not from reading 64 MiB
    with pytest.raises(ProblemError) as caught:
        load_path(tmp_path, "big.yaml")
    assert caught.value.problem.title == "file-too-large"
    assert str(64 * 1024 * 1024) in caught.value.problem.message


def test_nesting_depth_reports_the_collection_that_is_too_deep() -> None:
    raw = b"a:\n  b:\n    c:\n      d: 1\n"
    problem = failure(raw, Limits(max_depth=3))
    assert (problem.line, problem.col, problem.title) == (4, 7, "too-deep")  # the 4th mapping: {d: 1}
    assert load_bytes(raw, "x.yaml", Limits(max_depth=4)).data == {"a": {"b": {"c": {"d": 1}}}}


def test_flow_nesting_over_the_default_depth() -> None:
    problem = failure(b"ok: 1\nx: " + b"[" * 65 + b"]" * 65 + b"\n")
    assert (problem.line, problem.col, problem.title) == (2, 67, "too-deep")


def test_very_deep_nesting_is_refused_before_libyaml_composes_it() -> None:
    # libyaml's composer recurses in C; 200,000 levels would crash the process instead of raising.
    # Newer libyaml builds (PyYAML 6.0.4) stop at their own nesting cap first: the answer is the same problem.
    for raw in (b"x: " + b"[" * 200_000, b"- " * 200_000 + b"1\n", b"x: " + b"{a: " * 5_000):
        problem = failure(raw)
        assert (problem.title, problem.message) == ("too-deep", "nesting deeper than 64 levels")
        assert problem.line is not None


def test_libyamls_own_nesting_cap_is_reported_as_too_deep() -> None:
    # Whichever layer notices (our event walk, libyaml's cap, or the pure-Python composer): one problem.
    cap = "exceeded maximum nesting depth"
    error = yaml.scanner.ScannerError("while increasing flow level", None, cap, None)
    assert loader._yaml_problem(error, b"x: [[\n", "f.yaml", None).title == "yaml-syntax"  # no mark: generic
    mark = yaml.Mark("f", 3, 1, 3, None, None)
    marked = yaml.scanner.ScannerError("while increasing flow level", None, cap, mark)
    problem = loader._yaml_problem(marked, b"x: [[\n", "f.yaml", None)
    assert (problem.title, problem.line, problem.col) == ("too-deep", 2, 4)


BILLION_LAUGHS = b"""\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_billion_laughs_fails_with_the_alias_error() -> None:
    problem = failure(BILLION_LAUGHS)
    assert problem.title == "alias-expansion"
    assert problem.line == 5  # e: 9**5 strings is where the expansion first passes 100,000 nodes


def test_alias_expansion_counts_every_use() -> None:
    raw = b"a: &a [1, 2, 3, 4]\nb: [*a, *a, *a]\n"  # 1 + 5 + 1 + 3*5 + the keys
    assert load_bytes(raw, "x.yaml", Limits(max_nodes=30)).data["b"] == [[1, 2, 3, 4]] * 3
    assert failure(raw, Limits(max_nodes=20)).title == "alias-expansion"


def test_too_many_nodes_without_aliases() -> None:
    problem = failure(b"a: [" + b"1, " * 50 + b"]\n", Limits(max_nodes=40))
    assert problem.title == "too-many-nodes"


def test_recursive_alias() -> None:
    problem = failure(b"a: 1\nb: &x [1, *x]\n")
    assert (problem.line, problem.title) == (2, "recursive-alias")


def test_invalid_utf8_reports_the_line_of_the_bad_byte() -> None:
    problem = failure("a: 1\nname: café\ndescription: é".encode() + b"\xff y\n")
    assert (problem.line, problem.col, problem.title) == (3, 15, "invalid-utf8")  # col counts characters


def test_a_value_too_long_to_show_is_cut_in_the_message() -> None:
    problem = failure(b"a: " + b"9" * 5000 + b"\n")  # Python refuses to convert ints of 4300+ digits
    assert (problem.line, problem.col, problem.title) == (1, 4, "bad-value")
    assert len(problem.message) < 100


def test_utf16_is_refused_as_not_utf8() -> None:
    problem = failure("a: 1\n".encode("utf-16"))
    assert (problem.line, problem.title) == (1, "invalid-utf8")


def test_a_utf8_bom_is_fine() -> None:
    assert load_bytes(b"\xef\xbb\xbfa: 1\n", "x.yaml").data == {"a": 1}


def test_control_characters_report_their_line() -> None:
    problem = failure(b"a: 1\nb: x\x07y\n")
    assert (problem.line, problem.col, problem.title) == (2, 5, "invalid-character")


@pytest.mark.parametrize(
    ("raw", "line", "col"),
    [
        (b"a:\n\tb: 1\n", 2, 1),
        (b"a:\n  b: 1\n \tc: 2\n", 3, 2),
        (b"a: |\n  text\n \tmore\n", 3, 2),
    ],
)
def test_tabs_used_for_indentation(raw: bytes, line: int, col: int) -> None:
    problem = failure(raw)
    assert (problem.line, problem.col, problem.title) == (line, col, "tab-indent")
    assert "indent with spaces" in problem.message


def test_tabs_elsewhere_are_fine() -> None:
    assert load_bytes(b"a:\tb\nc: [1,\n\t2]\n", "x.yaml").data == {"a": "b", "c": [1, 2]}
    quoted = load_bytes(b'a: "x\ty"\nb: \'p\tq\'\nc: |\n  r\ts\n', "x.yaml").data
    assert quoted == {"a": "x\ty", "b": "p\tq", "c": "r\ts\n"}


def test_a_tab_after_a_dash_is_named() -> None:
    problem = failure(b"a:\n  -\tx\n")
    assert (problem.line, problem.col, problem.title) == (2, 4, "tab-indent")
    assert "use spaces" in problem.message


def test_crlf_files_report_the_same_lines() -> None:
    problem = failure(b"a: 1\r\nb:\r\n  c: 2\r\n  c: 3\r\n")
    assert (problem.line, problem.col, problem.title) == (4, 3, "duplicate-key")
    doc = load_bytes(b"a: 1\r\nb:\r\n  c: 2\r\n", "x.yaml")
    assert (doc.data, doc.position(("b", "c"))) == ({"a": 1, "b": {"c": 2}}, (3, 3))


@pytest.mark.parametrize(
    ("raw", "col", "title"),
    [
        (b"\xef\xbb\xbfa: 1\x07\n", 5, "invalid-character"),
        (b"\xef\xbb\xbfa: \xff\n", 4, "invalid-utf8"),
        (b"\xef\xbb\xbf\ta: 1\n", 1, "tab-indent"),
    ],
)
def test_a_bom_is_not_a_column(raw: bytes, col: int, title: str) -> None:
    problem = failure(raw)
    assert (problem.line, problem.col, problem.title) == (1, col, title)


def test_lines_are_counted_as_editors_count_them() -> None:
    # YAML 1.1 (libyaml) breaks lines at U+2028, U+2029 and U+0085; editors and GitHub do not.
    raw = 'a: "x\u2028y"\nb: {c: "\u2029", d: yes}\nb: 2\n'.encode()
    problem = failure(raw)
    assert (problem.line, problem.col, problem.title) == (3, 1, "duplicate-key")
    assert "already on line 2" in problem.message
    doc = load_bytes('a: "x\u2028y"\nb: {c: "\u2029", d: yes}\n'.encode(), "x.yaml")
    assert doc.position(("b", "d")) == (2, 13)
    assert [(w.line, w.col) for w in doc.warnings] == [(2, 16)]
    problem = failure('a: 1\nb: [1, "\u2028"\nc: 2\n'.encode())
    assert (problem.line, problem.col, problem.title) == (3, 1, "yaml-syntax")
    assert "(while parsing a flow sequence on line 2)" in problem.message
    problem = failure("a: x\x85y\nb: 1\n".encode())  # unquoted, the break splits the value
    assert (problem.line, problem.title) == (2, "yaml-syntax")
    assert "U+0085, which YAML 1.1 reads as a line break" in problem.message


def test_more_than_one_document() -> None:
    problem = failure(b"a: 1\nb: 2\n---\nc: 3\n")
    assert (problem.line, problem.col, problem.title) == (3, 1, "multiple-documents")
    assert failure(b"a: 1\n...\nb: 2\n").title == "multiple-documents"


def test_an_explicit_document_start_is_fine() -> None:
    assert load_bytes(b"# flag\n---\na: 1\n...\n", "x.yaml").data == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "line", "what"),
    [
        (b"- a\n- b\n", 1, "a list"),
        (b"# comment\n\njust text\n", 3, "a single value"),
        (b"", 1, "empty"),
        (b"# only a comment\n---\n", 1, "empty"),
    ],
)
def test_root_must_be_a_mapping(raw: bytes, line: int, what: str) -> None:
    problem = failure(raw)
    assert (problem.line, problem.title) == (line, "root-not-mapping")
    assert what in problem.message


def test_syntax_error_position_is_one_based() -> None:
    problem = failure(b"key: a\nname: [x, y\nowner: b\n")
    assert (problem.line, problem.col, problem.title) == (3, 6, "yaml-syntax")
    assert "line 2" in problem.message  # where the unclosed list started
    problem = failure(b"key: a\nname: b: c\n")
    assert (problem.line, problem.col, problem.title) == (2, 8, "yaml-syntax")


def test_undefined_alias_is_a_syntax_error() -> None:
    assert (failure(b"a: 1\nb: *nope\n").line, failure(b"a: *nope\n").title) == (2, "yaml-syntax")


@pytest.mark.parametrize(
    "value",
    [b"!!python/object/apply:os.system [echo hi]", b"!!python/name:os.system", b"!!set {a, b}",
     b"!!binary aGk=", b"!!omap [a: 1]", b"!custom x"],
)
def test_only_plain_data_tags(value: bytes) -> None:
    problem = failure(b"a: 1\nb: " + value + b"\n")
    assert (problem.line, problem.col, problem.title) == (2, 4, "unsupported-tag")


def test_python_tags_are_refused_with_a_reason() -> None:
    assert "could run code" in failure(b"a: !!python/object:os.system x\n").message


def test_a_list_as_key_is_refused() -> None:
    problem = failure(b"a: 1\n[x, y]: 2\n")
    assert (problem.line, problem.title) == (2, "unhashable-key")


def test_explicit_tag_that_does_not_fit_the_text() -> None:
    problem = failure(b"a: 1\nb: !!int twelve\n")
    assert (problem.line, problem.title) == (2, "bad-value")


# --- YAML 1.1 surprises ---------------------------------------------------------------------------


def test_on_off_yes_no_as_keys_are_errors() -> None:
    doc = load_bytes(b"variants:\n  on: 1\n  off: 0\nNO: x\n'on': fine\n", "x.yaml")
    assert doc.data == {"variants": {True: 1, False: 0}, False: "x", "on": "fine"}
    assert titles(doc) == [(2, "error", "yaml11-bool-key"), (3, "error", "yaml11-bool-key"),
                           (4, "error", "yaml11-bool-key")]
    assert doc.warnings[0].col == 3
    assert '"on":' in doc.warnings[0].message


def test_on_off_yes_no_as_values_are_warnings() -> None:
    doc = load_bytes(b"a: on\nb: [Off, YES, no]\nc: 'on'\nd: \"off\"\ne: true\nf: y\n", "x.yaml")
    assert doc.data == {"a": True, "b": [False, True, False], "c": "on", "d": "off", "e": True, "f": "y"}
    assert titles(doc) == [(1, "warning", "yaml11-bool"), (2, "warning", "yaml11-bool"),
                           (2, "warning", "yaml11-bool"), (2, "warning", "yaml11-bool")]
    assert [w.col for w in doc.warnings] == [4, 5, 10, 15]
    assert 'quote it, "on"' in doc.warnings[0].message


@pytest.mark.parametrize(
    ("text", "value", "words"),
    [
        ("0755", 493, "octal number 493"),
        ("-010", -8, "octal number -8"),
        ("0x1F", 31, "number 31"),
        ("0b101", 5, "number 5"),
        ("1_000", 1000, "number 1000"),
        ("1:30", 90, "base-60 number 90"),
        ("1_000.5", 1000.5, "number 1000.5"),
    ],
)
def test_numbers_yaml11_reads_differently_warn_with_the_value(text: str, value: Any, words: str) -> None:
    doc = load_bytes(f"a: 1\nmode: {text}\nkept: '{text}'\n".encode(), "x.yaml")
    assert doc.data == {"a": 1, "mode": value, "kept": text}
    assert titles(doc) == [(2, "warning", "yaml11-number")]
    assert words in doc.warnings[0].message and f'"{text}"' in doc.warnings[0].message


@pytest.mark.parametrize(
    ("text", "number"), [("0o755", "493"), ("1e3", "1000.0"), ("1.5e3", "1500.0"), ("09", "9")]
)
def test_text_that_yaml12_reads_as_a_number_warns(text: str, number: str) -> None:
    doc = load_bytes(f"a: {text}\n".encode(), "x.yaml")
    assert doc.data == {"a": text}
    assert titles(doc) == [(1, "warning", "yaml11-text")]
    assert number in doc.warnings[0].message


def test_ordinary_numbers_do_not_warn() -> None:
    doc = load_bytes(b"a: [0, 10, -3, +4, 0.5, -0.0, 1.0e+3, .inf, 2h, 1.2.3]\n", "x.yaml")
    assert doc.warnings == ()


# --- load_path and the filesystem -----------------------------------------------------------------


def test_load_path_reads_a_file_under_root(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "a.yaml").write_bytes(b"key: a\n")
    doc = load_path(tmp_path, "flags/a.yaml")
    assert (doc.file, doc.data) == ("flags/a.yaml", {"key": "a"})


def test_load_path_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"a: 1\na: 2\n")
    with pytest.raises(ProblemError) as caught:
        load_path(tmp_path, "bad.yaml")
    assert str(caught.value).startswith("bad.yaml:2:1: duplicate key")


def test_symlink_to_a_file_outside_the_repository(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "secret.yaml"
    (repo / "flags").mkdir(parents=True)
    outside.write_bytes(b"token: x\n")
    (repo / "flags" / "a.yaml").symlink_to(outside)
    with pytest.raises(ProblemError) as caught:
        load_path(repo, "flags/a.yaml")
    assert caught.value.problem.title == "symlink-outside"
    assert "flags/a.yaml" in caught.value.problem.message


def test_symlinked_directory_leading_outside(tmp_path: Path) -> None:
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repo.mkdir()
    elsewhere.mkdir()
    (elsewhere / "a.yaml").write_bytes(b"key: a\n")
    (repo / "flags").symlink_to(elsewhere)
    with pytest.raises(ProblemError) as caught:
        load_path(repo, "flags/a.yaml")
    assert caught.value.problem.title == "symlink-outside"
    assert "flags is a symlink" in caught.value.problem.message


def test_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real.yaml").write_bytes(b"key: a\n")
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "a.yaml").symlink_to("../real.yaml")
    assert load_path(tmp_path, "flags/a.yaml").data == {"key": "a"}


def test_dot_dot_cannot_leave_the_repository(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "x.yaml").write_bytes(b"a: 1\n")
    with pytest.raises(ProblemError) as caught:
        load_path(tmp_path / "repo", "../x.yaml")
    assert caught.value.problem.title == "path-outside"


def test_missing_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    for rel, title in (("nope.yaml", "not-found"), ("dir.yaml", "not-a-file")):
        with pytest.raises(ProblemError) as caught:
            load_path(tmp_path, rel)
        assert caught.value.problem.title == title


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ProblemError) as caught:
        load_path(tmp_path, "pipe.yaml")
    assert caught.value.problem.title == "not-a-file"


# --- positions ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flag_doc() -> Document:
    return load_bytes(FLAG, "flags/new_checkout_flow.yaml")


@pytest.mark.parametrize(
    ("loc", "position"),
    [
        ((), (1, 1)),
        (("key",), (1, 1)),
        (("owner",), (3, 1)),
        (("tags", 1), (4, 12)),
        (("variants", "off"), (5, 24)),
        (("environments", "production"), (9, 3)),
        (("environments", "production", "rules", 1), (15, 9)),
        (("environments", "production", "rules", 0, "when", "value"), (13, 55)),
        (("environments", "production", "rules", 1, "when", "value", 1), (19, 25)),
        (("environments", "production", "rollout", "stages", 2), (22, 23)),
    ],
)
def test_positions_of_keys_and_items(
    flag_doc: Document, loc: tuple[str | int, ...], position: tuple[int, int]
) -> None:
    assert flag_doc.position(loc) == position


def test_position_skips_what_is_not_in_the_data(flag_doc: Document) -> None:
    # pydantic puts union tags in the loc; they are not keys of the file
    loc = ("environments", "production", "rules", 1, "when", "condition", "operator")
    assert flag_doc.position(loc) == (18, 11)
    # a missing key falls back to the deepest part that exists
    assert flag_doc.position(("environments", "staging", "default_variant")) == (7, 3)
    assert flag_doc.position(("environments", "production", "rules", 7, "name")) == (11, 5)
    assert flag_doc.position(("nope",)) == (1, 1)


def test_position_of_non_string_keys_and_merged_keys() -> None:
    doc = load_bytes(b"base: &b {x: 1}\nenvs:\n  1: one\n  prod:\n    <<: *b\n    y: 2\n", "x.yaml")
    assert doc.position(("envs", 1)) == (3, 3)
    assert doc.position(("envs", "1")) == (3, 3)
    assert doc.position(("envs", "prod", "y")) == (6, 5)
    assert doc.position(("envs", "prod", "x")) == (1, 11)  # where the merged key is written


def test_a_document_built_by_hand_has_no_positions() -> None:
    assert Document("x.yaml", {"a": 1}, ()).position(("a",)) == (1, 1)


# --- round trip -----------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_json_like = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), _json_like, max_size=6))
def test_safe_dump_round_trips(data: dict[str, Any]) -> None:
    doc = load_bytes(yaml.safe_dump(data).encode(), "x.yaml")
    assert doc.data == data
    # safe_dump quotes on/off, 0755, 1:30 ... but leaves text YAML 1.2 reads as a number (1e3) plain;
    # that, and only that, is worth a warning.
    assert all(w.title == "yaml11-text" and w.severity == "warning" for w in doc.warnings)


_safe_text = st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=12)


_plain_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _safe_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_safe_text, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), _plain_json_like, max_size=6))
def test_safe_dump_of_plain_keys_loads_without_warnings(data: dict[str, Any]) -> None:
    doc = load_bytes(yaml.safe_dump(data, allow_unicode=True).encode(), "x.yaml")
    assert doc.data == data
    assert doc.warnings == ()


def test_nan_loads_as_nan() -> None:
    assert math.isnan(load_bytes(b"a: .nan\n", "x.yaml").data["a"])


def test_the_pure_python_fallback_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_Loader", yaml.SafeLoader)  # as on a machine without libyaml
    assert load_bytes(FLAG, "x.yaml").data == yaml.safe_load(FLAG)
    assert failure(b"a: 1\nb: 2\na: 3\n").line == 3
    assert failure(BILLION_LAUGHS).title == "alias-expansion"
    assert failure(b"x: " + b"[" * 200_000).title == "too-deep"
    assert (failure(b"a: 1\nb: x\x07y\n").line, failure(b"a:\n\tb: 1\n").title) == (2, "tab-indent")
    assert titles(load_bytes(b"on: 1\nb: 0755\n", "x.yaml")) == [(1, "error", "yaml11-bool-key"),
                                                                  (2, "warning", "yaml11-number")]
