"""Values that must not pass validation (issue 13): each is a problem naming the file and line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gitops_flags.loader import load_bytes
from gitops_flags.problems import Problem, ProblemError
from gitops_flags.tree import DictTree
from gitops_flags.validate import read_policy, validate_tree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "flags").rglob("*.yaml")}
EXAMPLE[".github/gitops-flags.yml"] = (ROOT / ".github" / "gitops-flags.yml").read_text()
PAGE = "flags/search/search_results_page_size.yaml"
CONFIG = "flags/checkout/checkout_config.yaml"
ROLLOUT = "flags/checkout/new_checkout_flow.yaml"
BIG = "1" + "0" * 400


def problems(**edits: tuple[str, str]) -> list[Problem]:
    """Validate the bundled example with `old → new` replaced in the named files (path → (old, new))."""
    files = dict(EXAMPLE)
    for path, (old, new) in edits.items():
        path = path.replace("__", "/")
        assert old in files[path], old
        files[path] = files[path].replace(old, new, 1)
    tree = DictTree(files)
    policy, found = read_policy(tree)
    return found + list(validate_tree(tree, policy).problems)


def errors(**edits: tuple[str, str]) -> list[Problem]:
    return [p for p in problems(**edits) if p.severity == "error"]


def test_the_example_is_clean() -> None:
    assert errors() == []


def _only(found: list[Problem], title: str, file: str) -> Problem:
    assert [(p.title, p.file) for p in found] == [(title, file)], found
    assert found[0].line is not None
    return found[0]


@pytest.mark.parametrize("path,old,new", [
    (PAGE, "small: 20", f"small: {BIG}"),  # a number variant: was an OverflowError traceback
    (PAGE, "small: 20", f"small: -{BIG}"),
    (CONFIG, "retries: 3", f"retries: {BIG}"),  # inside an object variant: was written into flagd JSON
    (PAGE, "value: desktop", f"value: {BIG}"),  # a rule value
])
def test_numbers_a_double_cannot_hold(path: str, old: str, new: str) -> None:
    found = [p for p in errors(**{path.replace("/", "__"): (old, new)}) if p.title != "schema-violation"]
    p = _only(found, "number-too-large", path)
    assert "64-bit float" in p.message and len(p.message) < 300


def test_infinite_or_nan_thresholds() -> None:
    for value in (".inf", ".nan", "-.inf"):
        found = errors(**{ROLLOUT.replace("/", "__"): ("threshold: 0.02", f"threshold: {value}")})
        assert [p.title for p in found] == ["invalid-value"], found


def test_a_health_check_needs_json_field_and_threshold_together() -> None:
    found = errors(**{ROLLOUT.replace("/", "__"): ("        threshold: 0.02\n", "")})
    p = _only(found, "invalid-value", ROLLOUT)
    assert "json_field needs a threshold" in p.message
    found = errors(**{ROLLOUT.replace("/", "__"): ("        json_field: data.error_rate\n", "")})
    p = _only(found, "invalid-value", ROLLOUT)
    assert "threshold needs a json_field" in p.message


@pytest.mark.parametrize("delay", ["99999999999999999999d", "366d", "53w", "8761h"])
def test_durations_are_capped_at_a_year(delay: str) -> None:
    found = errors(**{ROLLOUT.replace("/", "__"): ("stage_delay: 2h", f"stage_delay: {delay}")})
    p = _only(found, "invalid-value", ROLLOUT)
    assert "longer than 365d" in p.message


def test_365_days_is_allowed() -> None:
    assert errors(**{ROLLOUT.replace("/", "__"): ("stage_delay: 2h", "stage_delay: 365d")}) == []


def test_no_stage_past_the_year_9999() -> None:
    edit = ("stage_delay: 2h\n      start_at: 2026-11-20T09:00:00Z",
            "stage_delay: 365d\n      start_at: 9998-06-01T00:00:00Z")
    p = _only(errors(**{ROLLOUT.replace("/", "__"): edit}), "invalid-value", ROLLOUT)
    assert "year 9999" in p.message
    edit = ("start_at: 2026-11-20T09:00:00Z", "start_at: 9999-12-31T23:00:00-05:00")
    _only(errors(**{ROLLOUT.replace("/", "__"): edit}), "invalid-value", ROLLOUT)


def test_alias_expansion_is_bounded_in_characters() -> None:
    big = "x" * 65536
    text = f"key: k\nnote: &s {big}\nlist:\n" + "".join("  - *s\n" for _ in range(10_000))
    start = time.perf_counter()
    with pytest.raises(ProblemError) as caught:
        load_bytes(text.encode(), "flags/k.yaml")
    assert time.perf_counter() - start < 30  # a hang guard: expanding it would take gigabytes
    p = caught.value.problem
    assert (p.title, p.line) == ("alias-expansion", 2) and "characters" in p.message


def test_ordinary_aliases_still_work() -> None:
    doc = load_bytes(b"a: &d {x: 1, y: [1, 2]}\nb: *d\nc: {<<: *d, x: 2}\n", "f.yaml")
    assert doc.data["c"] == {"x": 2, "y": [1, 2]} and doc.size > 0


def _with_file(path: str, text: str) -> list[Problem]:
    files = {**EXAMPLE, path: text}
    tree = DictTree(files)
    policy, found = read_policy(tree)
    return [p for p in found + list(validate_tree(tree, policy).problems) if p.severity == "error"]


@pytest.mark.parametrize("name", ["aux", "con", "nul", "prn", "com1", "lpt9", "AUX", "Con"])
def test_windows_reserved_names_with_any_extension(name: str) -> None:
    for path in (f"flags/{name}.yaml", f"flags/{name}.tar.yaml", f"flags/{name}/x.yaml", f"flags/{name}.md"):
        found = [p for p in _with_file(path, "key: x\n") if p.title == "unportable-path"]
        assert [p.file for p in found] == [path] and "reserved device name" in found[0].message


@pytest.mark.parametrize("path", ["flags/x./a.yaml", "flags/a.yaml.", "flags/team /a.yaml", "flags/a?.yaml"])
def test_names_windows_cannot_hold(path: str) -> None:
    found = [p for p in _with_file(path, "key: x\n") if p.title == "unportable-path"]
    assert [p.file for p in found] == [path]


def test_paths_differing_only_by_case() -> None:
    moved = "flags/Checkout/express_pay_copy.yaml"
    found = [p for p in _with_file(moved, "key: x\n") if p.title == "case-clash"]
    assert moved in {p.file for p in found} and "flags/checkout" in found[0].message
    assert all(p.file.lower().startswith("flags/checkout/") for p in found)


def test_ordinary_names_pass() -> None:
    assert [p for p in _with_file("flags/auxiliary/console.yaml", "key: x\n")
            if p.title in ("unportable-path", "case-clash")] == []


def test_a_flag_too_large_for_flagd_is_a_problem_at_validate_time() -> None:
    # 200 KiB of text used 8 times: within the alias limit, but 1.6 MB in every flagd document
    chunk = "y" * 200_000
    variants = "".join(f"  v{i}: {{blob: *b}}\n" for i in range(8))
    text = (f"key: big\ntype: object\ndescription: &b {chunk}\nvariants:\n{variants}default_variant: v0\n")
    found = _with_file("flags/big.yaml", text)
    assert "flag-too-large" in [p.title for p in found]


def test_flagd_documents_are_bounded_in_total() -> None:
    from gitops_flags.validate import MAX_DOCUMENT_JSON, document_size_problem

    sizes = {f"flags/f{i}.yaml": 900_000 for i in range(MAX_DOCUMENT_JSON // 900_000 + 1)}
    p = document_size_problem(sizes)
    assert p is not None and p.title == "document-too-large" and "64 MiB" in p.message
    assert document_size_problem({"flags/a.yaml": 1000}) is None


# --- one run shows every independent problem ----------------------------------------------------------

R = ROLLOUT.replace("/", "__")


def test_a_typo_in_stage_delay_does_not_hide_decreasing_stages() -> None:
    found = errors(**{R: ("stages: [5, 25, 50, 75, 100]\n      stage_delay: 2h",
                          "stages: [5, 50, 25, 100]\n      stage_delay: 2 hours")})
    assert sorted(p.title for p in found) == ["invalid-value", "rollout-stages"]
    stages = next(p for p in found if p.title == "rollout-stages")
    assert (stages.line, stages.message.split(":")[0]) == (24, "environments.production.rollout.stages[2]")


def test_a_bad_default_variant_does_not_hide_an_undeclared_environment() -> None:
    found = errors(**{R: ('default_variant: "off"\nenvironments:\n  staging:',
                          'default_variant: [off]\nenvironments:\n  stagin:')})
    assert sorted(p.title for p in found) == ["unknown-environment", "wrong-type"]
    env = next(p for p in found if p.title == "unknown-environment")
    assert env.line == 13 and "did you mean 'staging'" in env.message


def test_checks_of_a_repaired_file_skip_what_the_repair_touched() -> None:
    # the first rule's condition is broken, so the rule is dropped from the repaired copy: the second rule's
    # unknown variant is still reported at its own index and line; the dropped rule's is not guessed at
    broken = "      - {when: {attribute: a, operator: equal, value: 1}, variant: nope}\n"
    second = "      - {when: {attribute: a, operator: equals, value: 1}, variant: nope2}\n"
    found = errors(**{R: ("    rules:\n", "    rules:\n" + broken + second)})
    titles = sorted((p.title, p.line) for p in found)
    assert titles == [("unknown-operator", 19), ("unknown-variant", 20)], found
    assert "rules[1].variant" in next(p.message for p in found if p.title == "unknown-variant")


def test_stand_ins_for_missing_required_fields_hide_nothing_else() -> None:
    found = errors(**{R: ('default_variant: "off"\n', "")})
    assert [p.title for p in found] == ["missing-field"]
    found = errors(**{R: ('default_variant: "off"\nenvironments:\n  staging:', 'environments:\n  stagin:')})
    assert sorted(p.title for p in found) == ["missing-field", "unknown-environment"]


def test_rollout_indented_as_an_environment_gets_a_hint() -> None:
    found = errors(**{R: ("    rollout:\n      variant", "  rollout:\n      variant")})
    p = _only(found, "misplaced-field", ROLLOUT)
    assert p.message == ("environments.rollout: `rollout` is not an environment: indent it under one (it "
                         "is a field of each environment)")
    assert p.line == 22


def test_an_environment_field_at_the_top_gets_a_hint() -> None:
    found = errors(**{R: ("environments:\n", "enabled: true\nenvironments:\n")})
    p = _only(found, "misplaced-field", ROLLOUT)
    assert "`enabled` belongs to each entry of `environments`" in p.message


def test_mapping_values_not_allowed_gets_a_plain_words_hint() -> None:
    with pytest.raises(ProblemError) as caught:
        load_bytes(b"key: a\n  type: boolean\n", "flags/a.yaml")
    p = caught.value.problem
    assert (p.line, p.col) == (2, 7)
    assert "the `:` at line 2, column 7 starts a `key: value` where none can start" in p.message


def test_a_schema_file_with_a_bad_version_still_has_its_schema_checked() -> None:
    files = {**EXAMPLE, "flags/schemas/extra.yaml": "name: extra\nversion: two\nschema: {type: objekt}\n"}
    tree = DictTree(files)
    policy, _ = read_policy(tree)
    found = [p for p in validate_tree(tree, policy).problems if p.file.endswith("extra.yaml")]
    assert sorted(p.title for p in found) == ["invalid-schema", "wrong-type"]


def test_a_structural_error_in_the_policy_does_not_hide_its_other_problems() -> None:
    text = EXAMPLE[".github/gitops-flags.yml"].replace("version: 1", "version: 2", 1)
    text = text.replace("workflow: flag_approval", "workflow: flag_aproval", 1)
    policy, found = read_policy(DictTree({".github/gitops-flags.yml": text}))
    assert policy is None  # still a configuration error (exit 2)
    assert sorted(p.title for p in found) == ["invalid-value", "unknown-workflow"]
    assert "did you mean 'flag_approval'" in next(p.message for p in found if p.title == "unknown-workflow")
