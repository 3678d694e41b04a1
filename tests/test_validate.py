"""validate: model errors → readable problems with lines, semantic checks of flags, schemas and the policy."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_flags import model
from gitops_flags.codeowners import find_codeowners
from gitops_flags.loader import load_bytes
from gitops_flags.model import Flag, HealthChecks, Policy, SchemaDoc
from gitops_flags.problems import Problem
from gitops_flags.tree import DictTree, DirTree
from gitops_flags.validate import (
    check_flag,
    check_policy,
    check_schema_doc,
    duplicate_keys,
    is_flag_path,
    is_schema_path,
    read_policy,
    read_schema,
    schema_validator,
    validate_tree,
)

REPO = Path(__file__).resolve().parents[1]

POLICY_TEXT = """\
version: 1
environments: [staging, production]
roles:
  manager: ["@acme/eng-managers"]
  qa: ["@acme/qa"]
rules:
  - {match: {kind: flag, environment: production}, workflow: flag_approval}
  - {match: {kind: [flag, schema, governance]}, workflow: owners}
workflows:
  flag_approval:
    steps:
      - {id: manager, role: manager}
      - {id: qa, role: qa, after: [manager]}
  owners:
    steps: [{id: owner, role: codeowner}]
"""
POLICY = Policy.model_validate(yaml.safe_load(POLICY_TEXT))

SCHEMA_TEXT = """\
name: checkout_config
version: 2
schema:
  type: object
  required: [provider]
  properties:
    provider: {enum: [stripe, adyen]}
    retries: {type: integer, minimum: 0}
"""

CFG = "key: cfg\ntype: object\nschema: checkout_config\nvariants: {a: {provider: x}}\ndefault_variant: a\n"

GOOD = """\
key: x
type: boolean
variants: {"on": true, "off": false}
default_variant: "off"
environments:
  production:
    enabled: true
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str, path: str = "flags/x.yaml", policy: Policy | None = POLICY,
                files: dict[str, str] | None = None) -> list[Problem]:
    tree = DictTree({path: dedent(text), **(files or {})})
    return list(validate_tree(tree, policy).problems)


def one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# --- the example repository ----------------------------------------------------------------------------


def test_example_repository_validates_clean() -> None:
    tree = DirTree(REPO)
    policy, problems = read_policy(tree)
    assert policy is not None and problems == []
    result = validate_tree(tree, policy)
    assert result.problems == ()
    assert len(result.flags) >= 12 and {"checkout_config", "rate_limits"} <= set(result.schemas)
    kinds = {entry.flag.type for entry in result.flags.values()}
    assert kinds == {"boolean", "string", "number", "object"}
    assert any(not env.enabled for e in result.flags.values() for env in e.flag.environments.values())
    rollout = result.flags["new_checkout_flow"].flag.environments["production"].rollout
    assert rollout is not None and rollout.stage_delay == "2h" and rollout.start_at is not None
    assert rollout.start_at.year == 2026
    owners = find_codeowners(tree)
    assert not owners.problems and owners.owners_for(".github/gitops-flags.yml") == ["@acme/platform-admins"]
    assert owners.owners_for("flags/checkout/express_pay.yaml") == ["@acme/checkout"]


def test_example_files_carry_a_working_modeline() -> None:
    for path in [*REPO.glob("flags/**/*.yaml"), REPO / ".github/gitops-flags.yml"]:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        kind = "schema" if path.parent.name == "schemas" else "policy" if path.suffix == ".yml" else "flag"
        assert target == REPO / "gitops_flags" / "jsonschema" / f"{kind}.json", path


# --- model errors ---------------------------------------------------------------------------------------


def test_unknown_field_gets_did_you_mean_at_its_line() -> None:
    p = one(problems_of("""
        key: x
        type: boolean
        descripton: typo
        variants: {"on": true}
        default_variant: "on"
    """))
    assert (p.line, p.col, p.title) == (3, 1, "unknown-field")
    assert p.message == "unknown field 'descripton'; did you mean 'description'?"


def test_a_misspelt_required_field_is_one_problem() -> None:
    p = one(problems_of(GOOD.replace("default_variant:", "defualt_variant:")))
    assert (p.line, p.col, p.title) == (4, 1, "unknown-field")
    assert p.message == "unknown field 'defualt_variant'; did you mean 'default_variant'?"
    rule = '    rules:\n      - {when: {atribute: a, operator: equals, value: 1}, variant: "on"}\n'
    p = one(problems_of(GOOD + rule))
    assert (p.line, p.col, p.title) == (9, 17, "unknown-field")
    assert p.message.endswith("unknown field 'atribute'; did you mean 'attribute'?")


@pytest.mark.parametrize(("key", "shown"), [("True", "true"), ("1", "1"), ("~", "null")])
def test_a_key_that_is_not_text_is_named_at_its_line(key: str, shown: str) -> None:
    p = one(problems_of(GOOD.replace("type: boolean", f"type: boolean\n{key}: x")))
    assert (p.line, p.col, p.title) == (3, 1, "wrong-type")
    assert p.message == f"the key {shown} must be text; quote it"
    p = one(problems_of(GOOD.replace('"off": false', f'"off": false, {key}: true')))
    assert (p.line, p.col, p.title) == (3, 38, "wrong-type")
    assert p.message == f"variants: the key {shown} must be text; quote it"


@pytest.mark.parametrize(("text", "line", "message"), [
    # pydantic's lax mode would turn each of these into a value; the JSON Schema (and editors) refuse them.
    (GOOD.replace("enabled: true", "enabled: 'yes'"), 7,
     "environments.production.enabled: expected true or false, got 'yes'"),
    (GOOD.replace("enabled: true", "enabled: 1"), 7,
     "environments.production.enabled: expected true or false, got 1"),
    (GOOD + "    rollout: {variant: \"on\", paused: 0}\n", 8,
     "environments.production.rollout.paused: expected true or false, got 0"),
    (GOOD + "    rollout: {variant: \"on\", stages: [true, 100]}\n", 8,
     "environments.production.rollout.stages[0]: expected a percentage in (0, 100] or one of initial, early, "
     "half, majority, full, got true"),
    (GOOD + "    rollout: {variant: \"on\", stages: ['5', 100]}\n", 8,
     "environments.production.rollout.stages[0]: expected a percentage in (0, 100] or one of initial, early, "
     "half, majority, full, got '5'"),
    (GOOD + "    rollout:\n      variant: \"on\"\n      health_check: {type: http, url: 'https://x', "
     "expect_status: '200'}\n", 10,
     "environments.production.rollout.health_check.expect_status: expected a whole number, got '200'"),
    (GOOD + "    rollout:\n      variant: \"on\"\n      health_check: {type: prometheus, server: "
     "'https://x', query: q, threshold: true}\n", 10,
     "environments.production.rollout.health_check.threshold: expected a number, got true"),
    (GOOD + "    rollout:\n      variant: \"on\"\n      start_at: 1700000000\n", 10,
     "environments.production.rollout.start_at: start_at must be a date and time such as "
     "2026-12-01T09:00:00Z, not a number"),
])
def test_values_are_not_coerced(text: str, line: int, message: str) -> None:
    p = one(problems_of(text))
    assert (p.line, p.message) == (line, message)


def test_a_quoted_start_at_is_a_time() -> None:
    assert problems_of(GOOD + "    rollout: {variant: \"on\", start_at: '2026-12-01T09:00:00Z'}\n") == []


def test_unknown_field_without_close_match_lists_the_allowed_ones() -> None:
    p = one(problems_of(GOOD + "    rollout: {variant: \"on\", zzz: 1}\n"))
    assert (p.line, p.col) == (8, 30)
    assert p.message == ("environments.production.rollout: unknown field 'zzz' (allowed: variant, stages, "
                         "stage_delay, start_at, paused, health_check, on_failure)")


def test_unknown_field_inside_a_discriminated_union() -> None:
    p = one(problems_of(GOOD + """\
    rules:
      - when: {all: [{attribute: a, operator: equals, value: 1, valeu: 2}]}
        variant: "on"
"""))
    assert (p.line, p.col) == (9, 65)
    assert p.message == ("environments.production.rules[0].when.all[0]: unknown field 'valeu'; "
                         "did you mean 'value'?")


def test_unknown_operator_lists_the_known_ones() -> None:
    p = one(problems_of(GOOD + """\
    rules:
      - when: {attribute: email, operator: endswith, value: "@acme.com"}
        variant: "on"
"""))
    assert (p.line, p.col, p.title) == (9, 34, "unknown-operator")
    assert p.message.startswith("environments.production.rules[0].when.operator: unknown operator "
                                "'endswith'; did you mean 'ends_with'? (known operators: equals, "
                                "not_equals, in,")


def test_missing_field_points_at_its_parent() -> None:
    p = one(problems_of(GOOD + "    rules:\n      - when: {attribute: a, operator: equals, value: 1}\n"))
    assert (p.line, p.col, p.title) == (9, 9, "missing-field")
    assert p.message == "environments.production.rules[0]: missing required field 'variant'"


def test_wrong_type_names_what_was_expected() -> None:
    p = one(problems_of(GOOD.replace("enabled: true", "enabled: maybe")))
    assert (p.line, p.message) == (7, "environments.production.enabled: expected true or false, got 'maybe'")


def test_stage_that_is_neither_a_percentage_nor_a_name_gives_one_problem() -> None:
    p = one(problems_of(GOOD + "    rollout: {variant: \"on\", stages: [5, halfway, 100]}\n"))
    assert (p.line, p.col) == (8, 42)
    assert p.message == ("environments.production.rollout.stages[1]: expected a percentage in (0, 100] or "
                         "one of initial, early, half, majority, full, got 'halfway'")


def test_alias_fields_and_patterns_are_reported_by_their_file_names() -> None:
    found = problems_of(GOOD.replace("key: x", "key: X!\nschema: [a]")
                        + "    rollout: {variant: \"on\", stage_delay: 2 hours}\n")
    assert [(p.line, p.message) for p in found] == [
        (1, "key: 'X!' is not valid: use 1 to 64 lower-case letters, digits, '_', '.' or '-', starting "
            "with a letter or digit"),
        (2, "schema: expected text, got [\"a\"]"),
        (9, "environments.production.rollout.stage_delay: '2 hours' is not valid: use a duration such as "
            "90m, 2h, 1d or 1h30m"),
    ]


def test_unknown_health_check_type() -> None:
    p = one(problems_of(GOOD + "    rollout: {variant: \"on\", health_check: {type: grpc}}\n"))
    assert p.line == 8
    assert p.message == ("environments.production.rollout.health_check: unknown type 'grpc' "
                         "(known: http, prometheus)")


def test_yaml11_key_is_reported_once_by_the_loader() -> None:
    found = problems_of(GOOD.replace('"on": true', "on: true"))
    p = one(found)
    assert (p.line, p.title, p.severity) == (3, "yaml11-bool-key", "error")


def test_loader_warnings_are_merged_into_the_problems() -> None:
    found = problems_of("""
        key: x
        type: number
        variants: {a: 0755, b: 1}
        default_variant: a
    """)
    p = one(found)
    assert (p.line, p.col, p.severity, p.title) == (3, 15, "warning", "yaml11-number")


def test_a_loader_warning_that_made_the_value_invalid_becomes_the_error() -> None:
    p = one(problems_of(GOOD + "tags: [0755]\n"))
    assert (p.line, p.col, p.severity, p.title) == (8, 8, "error", "yaml11-number")
    assert p.message.startswith("`0755` is read as the octal number 493 (YAML 1.1); quote it")


def test_a_file_that_cannot_be_loaded_gives_the_loader_problem() -> None:
    p = one(problems_of("key: x\nkey: y\n"))
    assert (p.file, p.line, p.title) == ("flags/x.yaml", 2, "duplicate-key")


def test_all_problems_are_collected() -> None:
    found = problems_of("""
        key: x
        type: boolean
        colour: red
        variants: {"on": true}
        default_variant: 3
        environments: {staging: {enabled: perhaps}}
    """)
    assert [p.line for p in found] == [3, 5, 6]


# --- semantic checks of a flag -------------------------------------------------------------------------


def test_key_must_equal_the_file_stem() -> None:
    p = one(problems_of(GOOD, path="flags/team/y.yaml"))
    assert (p.file, p.line, p.title) == ("flags/team/y.yaml", 1, "key-mismatch")
    assert "rename the file to x.yaml or set key: y" in p.message


def test_keys_are_unique_across_folders() -> None:
    found = problems_of(GOOD, path="flags/a/x.yaml", files={"flags/b/x.yaml": GOOD})
    assert [(p.file, p.line, p.title) for p in found] == [
        ("flags/a/x.yaml", 1, "duplicate-flag-key"), ("flags/b/x.yaml", 1, "duplicate-flag-key")]
    assert "also used by flags/b/x.yaml" in found[0].message


def test_duplicate_keys_from_names_alone() -> None:
    found = duplicate_keys(["flags/a/k.yaml", "flags/b/k.yml", "flags/c.yaml"])
    assert [(p.file, p.line) for p in found] == [("flags/a/k.yaml", None), ("flags/b/k.yml", None)]


@pytest.mark.parametrize(("flag_type", "value", "message"), [
    ("boolean", '"yes"', "variants.v: 'yes' is text, but the flag's type is boolean"),
    ("string", "12", "variants.v: 12 is a number, but the flag's type is string; quote it to make it text"),
    ("number", "true", "variants.v: true is a boolean, but the flag's type is number"),
    ("object", "[1, 2]", "variants.v: [1, 2] is a list, but the flag's type is object"),
])
def test_variant_values_have_the_flags_type(flag_type: str, value: str, message: str) -> None:
    p = one(problems_of(f"key: x\ntype: {flag_type}\nvariants:\n  v: {value}\ndefault_variant: v\n"))
    assert (p.line, p.col, p.title, p.message) == (4, 3, "variant-type", message)


def test_referenced_variants_exist_everywhere() -> None:
    found = problems_of("""
        key: x
        type: boolean
        variants: {"on": true, "off": false}
        default_variant: "of"
        environments:
          staging:
            enabled: true
            default_variant: maybe
            rules:
              - {when: {attribute: a, operator: equals, value: 1}, variant: yes_please}
            rollout: {variant: "onn"}
    """)
    assert [(p.line, p.title) for p in found] == [(4, "unknown-variant"), (8, "unknown-variant"),
                                                 (10, "unknown-variant"), (11, "unknown-variant")]
    assert found[0].message == ("default_variant: variant 'of' is not defined; did you mean 'off'? "
                                "(variants: on, off)")
    assert found[3].message.startswith("environments.staging.rollout.variant: variant 'onn' is not defined; "
                                       "did you mean 'on'?")


def test_object_values_must_satisfy_their_schema_at_the_exact_line() -> None:
    found = problems_of("""
        key: cfg
        type: object
        schema: checkout_config
        variants:
          good: {provider: stripe}
          bad:
            provider: paypal
            retries: -1
        default_variant: good
    """, path="flags/cfg.yaml", files={"flags/schemas/checkout_config.yaml": SCHEMA_TEXT})
    assert [(p.line, p.col, p.title) for p in found] == [(7, 5, "schema-violation"),
                                                         (8, 5, "schema-violation")]
    assert found[0].message == ("variants.bad.provider: 'paypal' is not one of ['stripe', 'adyen'] "
                                "(schema checkout_config v2)")
    assert found[1].message == ("variants.bad.retries: -1 is less than the minimum of 0 "
                                "(schema checkout_config v2)")


def test_schema_only_for_object_flags_and_must_exist() -> None:
    wrong_type = one(problems_of(GOOD.replace("type: boolean", "type: boolean\nschema: checkout_config")))
    assert (wrong_type.line, wrong_type.title) == (3, "schema-not-object")
    missing = one(problems_of("""
        key: cfg
        type: object
        schema: checkout_confg
        variants: {a: {}}
        default_variant: a
    """, path="flags/cfg.yaml", files={"flags/schemas/checkout_config.yaml": SCHEMA_TEXT}))
    assert (missing.line, missing.title) == (3, "unknown-schema")
    assert missing.message == ("schema: no schema 'checkout_confg': expected "
                               "flags/schemas/checkout_confg.yaml; did you mean 'checkout_config'? "
                               "(schemas: checkout_config)")


def test_values_that_json_cannot_hold_are_reported() -> None:
    p = one(problems_of("key: x\ntype: object\nvariants:\n  a:\n    until: 2026-01-01\ndefault_variant: a\n"))
    assert (p.line, p.col, p.title) == (5, 5, "not-json")
    assert p.message.startswith("variants.a.until: 2026-01-01 is read as a date (YAML)")


def test_numbers_beyond_2_53_are_a_warning() -> None:
    text = ("key: x\ntype: number\nvariants:\n  big: 123456789012345678901\n  ok: 9007199254740992\n"
            "default_variant: ok\n")
    p = one(problems_of(text))
    assert (p.line, p.col, p.severity, p.title) == (4, 3, "warning", "unsafe-number")
    assert p.message.startswith("variants.big: 123456789012345678901 is beyond ±2^53")


@pytest.mark.parametrize("stages", ["[5, 5, 100]", "[50, 25, 100]", "[initial, 5, full]", "[early, 20, 100]"])
def test_stages_that_do_not_increase(stages: str) -> None:
    p = one(problems_of(GOOD + f"    rollout: {{variant: \"on\", stages: {stages}}}\n"))
    assert (p.line, p.title) == (8, "rollout-stages")
    assert p.message.startswith("environments.production.rollout.stages[1]: stages must strictly increase")


@pytest.mark.parametrize("stages", ["[0, 100]", "[101]", "[5.5, 100]", "[]"])
def test_stages_outside_the_range(stages: str) -> None:
    p = one(problems_of(GOOD + f"    rollout: {{variant: \"on\", stages: {stages}}}\n"))
    assert p.line == 8 and p.title in ("wrong-type", "invalid-value")


def test_rollout_stages_increase_and_end_at_100() -> None:
    found = problems_of(GOOD + "    rollout: {variant: \"on\", stages: [50, early, 75]}\n")
    assert [(p.line, p.col, p.message) for p in found] == [
        (8, 43, "environments.production.rollout.stages[1]: stages must strictly increase: 25% comes "
                "after 50%"),
        (8, 50, "environments.production.rollout.stages[2]: the last stage must be 100 (full); it is 75"),
    ]
    assert problems_of(GOOD + "    rollout: {variant: \"on\", stages: [initial, half, full]}\n") == []


def test_environments_must_be_declared_in_the_policy() -> None:
    text = GOOD.replace("production:", "prod:")
    p = one(problems_of(text))
    assert (p.line, p.col, p.title) == (6, 3, "unknown-environment")
    assert p.message == ("environments.prod: environment not declared in the policy; did you mean "
                         "'production'? (declared in .github/gitops-flags.yml: staging, production)")
    assert problems_of(text, policy=None) == []


@pytest.mark.parametrize(("operator", "value", "message"), [
    ("in", "DE", "`in` takes a non-empty list of values, e.g. [a, b]; got 'DE'"),
    ("equals", "[1, 2]", "`equals` takes a single value; got [1, 2]"),
    ("greater_than", '"5"', "`greater_than` compares numbers; got '5'"),
    ("ends_with", "5", "`ends_with` compares text; got 5 (quote it)"),
    ("semver_greater_than", "4.10",
     "`semver_greater_than` needs a version in quotes, such as \"1.2.3\"; got 4.1"),
    ("semver_equals", "latest", "`semver_equals` needs a version in quotes, such as \"1.2.3\"; got 'latest'"),
])
def test_rule_values_suit_their_operator(operator: str, value: str, message: str) -> None:
    p = one(problems_of(GOOD + f"""\
    rules:
      - variant: "on"
        when:
          attribute: a
          operator: {operator}
          value: {value}
"""))
    assert (p.line, p.col, p.title) == (13, 11, "operator-value")
    assert p.message == f"environments.production.rules[0].when.value: {message}"


def test_check_flag_without_a_document_has_no_lines() -> None:
    flag = Flag.model_validate({"key": "x", "type": "string", "variants": {"a": 1}, "default_variant": "b"})
    found = check_flag(flag, "flags/y.yaml", None, {})
    assert [(p.line, p.title) for p in found] == [(None, "key-mismatch"), (None, "variant-type"),
                                                  (None, "unknown-variant")]


# --- schema files ---------------------------------------------------------------------------------------


def test_schema_file_checks() -> None:
    text = SCHEMA_TEXT.replace("name: checkout_config", "name: other").replace("minimum: 0", "minimum: zero")
    tree = DictTree({"flags/schemas/checkout_config.yaml": text})
    schema, found = read_schema(tree, "flags/schemas/checkout_config.yaml")
    assert schema is not None
    assert [(p.line, p.col, p.title) for p in found] == [(1, 1, "name-mismatch"), (8, 30, "invalid-schema")]
    assert found[1].message == ("schema.properties.retries.minimum: not a valid JSON Schema: 'zero' is "
                                "not of type 'number'")


def test_invalid_schema_is_reported_once_and_flag_values_are_not_checked_against_it() -> None:
    bad = SCHEMA_TEXT.replace("type: object", "type: objekt")
    found = problems_of(CFG.replace("provider: x", "x: 1"), path="flags/cfg.yaml",
                        files={"flags/schemas/checkout_config.yaml": bad})
    p = one(found)
    assert (p.file, p.line, p.title) == ("flags/schemas/checkout_config.yaml", 4, "invalid-schema")
    assert "'objekt' is not one of ['array', 'boolean'" in p.message


def test_an_invalid_regex_makes_the_schema_invalid_rather_than_unchecked() -> None:
    bad = SCHEMA_TEXT.replace("provider: {enum: [stripe, adyen]}", "provider: {pattern: '(['}")
    found = problems_of(CFG, path="flags/cfg.yaml", files={"flags/schemas/checkout_config.yaml": bad})
    p = one(found)
    assert (p.file, p.line, p.col, p.title) == ("flags/schemas/checkout_config.yaml", 7, 16, "invalid-schema")
    assert p.message.startswith("schema.properties.provider.pattern: not a valid JSON Schema: '([' is not a "
                                "pattern RE2 accepts (missing ]: [)")


def test_unknown_dialect_is_a_warning_and_checked_as_2020_12() -> None:
    doc = SchemaDoc.model_validate({"name": "s", "version": 1, "schema": {"$schema": "https://x.example/s"}})
    p = one(check_schema_doc(doc, "flags/schemas/s.yaml"))
    assert (p.severity, p.title) == ("warning", "unknown-dialect")
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    assert check_schema_doc(SchemaDoc.model_validate({"name": "s", "version": 1, "schema": draft7}),
                            "flags/schemas/s.yaml") == []


def test_one_validator_per_schema_document() -> None:
    doc = SchemaDoc.model_validate(yaml.safe_load(SCHEMA_TEXT))
    assert schema_validator(doc) is schema_validator(doc)
    invalid = SchemaDoc.model_validate({"name": "a", "version": 1, "schema": {"type": 3}})
    assert schema_validator(invalid) is None


def test_remote_refs_are_never_fetched() -> None:
    doc = SchemaDoc.model_validate({"name": "r", "version": 1, "schema": {"$ref": "https://example.com/s.json"}})
    flag = Flag.model_validate({"key": "x", "type": "object", "schema": "r", "variants": {"a": {}},
                                "default_variant": "a"})
    p = one(check_schema_doc(doc, "flags/schemas/r.yaml"))  # reported on the schema file, where the fix is
    assert p.title == "schema-ref" and "leads nowhere" in p.message and p.message.startswith("schema.$ref: ")
    assert check_flag(flag, "flags/x.yaml", None, {"r": doc}) == []  # its values are not checked


def test_paths() -> None:
    assert is_flag_path("flags/a/b.yaml", POLICY) and is_flag_path("flags/b.yml", None)
    assert not is_flag_path("flags/schemas/s.yaml", POLICY) and not is_flag_path("flags/README.md", POLICY)
    assert is_schema_path("flags/schemas/s.yaml", POLICY)
    assert not is_schema_path("flags/schemas/x/s.yaml", POLICY)


def test_misplaced_schema_is_a_warning() -> None:
    p = one(problems_of(GOOD, files={"flags/schemas/old/s.yaml": SCHEMA_TEXT}))
    assert (p.file, p.severity, p.title) == ("flags/schemas/old/s.yaml", "warning", "misplaced-schema")


def test_linked_folders_inside_are_read_and_those_leading_outside_are_refused(tmp_path: Path) -> None:
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "shared").mkdir(parents=True)
    (repo / "flags").mkdir()
    elsewhere.mkdir()
    (repo / "shared" / "x.yaml").write_text(GOOD)
    (elsewhere / "y.yaml").write_text(GOOD.replace("key: x", "key: y"))
    (repo / "flags" / "team").symlink_to("../shared")
    (repo / "flags" / "ext").symlink_to(elsewhere)
    (repo / "shared" / "loop").symlink_to("../flags")  # would walk forever if links were followed blindly
    tree = DirTree(repo)
    assert list(tree.paths("flags/")) == ["flags/team/x.yaml"]
    result = validate_tree(tree, POLICY)
    assert list(result.flags) == ["x"]
    # flags/team/loop leads back to flags/, so its `ext` is seen once more under that name; nothing loops.
    assert [(p.file, p.line, p.title) for p in result.problems] == [
        ("flags/ext", None, "symlink-outside"), ("flags/team/loop/ext", None, "symlink-outside")]


# --- only some files ------------------------------------------------------------------------------------


def test_only_checks_the_given_files_and_the_schemas_they_use() -> None:
    tree = DictTree({
        "flags/cfg.yaml": CFG,
        "flags/broken.yaml": "key: broken\n",
        "flags/schemas/checkout_config.yaml": SCHEMA_TEXT,
        "flags/schemas/unused.yaml": "name: nope\n",
    })
    result = validate_tree(tree, POLICY, only=["flags/cfg.yaml"])
    assert [(p.file, p.title) for p in result.problems] == [("flags/cfg.yaml", "schema-violation")]
    assert result.checked == ("flags/cfg.yaml", "flags/schemas/checkout_config.yaml")
    # A changed schema: the flags that use it are checked against it, the others are not reported.
    result = validate_tree(tree, POLICY, only=["flags/schemas/checkout_config.yaml"])
    assert [(p.file, p.title) for p in result.problems] == [("flags/cfg.yaml", "schema-violation")]
    missing = validate_tree(tree, POLICY, only=["flags/gone.yaml"])
    assert [(p.file, p.title) for p in missing.problems] == [("flags/gone.yaml", "not-found")]


def test_a_partial_run_reports_a_broken_schema_its_flags_use_with_its_line() -> None:
    # Schemas a partial run was not asked for are checked only once a requested flag names them (so that a
    # plan touching no object flag loads no jsonschema): the problem and its line must be the same.
    broken = SCHEMA_TEXT.replace("retries: {type: integer, minimum: 0}", "retries: {type: integr}")
    tree = DictTree({
        "flags/cfg.yaml": CFG,
        "flags/x.yaml": GOOD,
        "flags/schemas/checkout_config.yaml": broken,
        "flags/schemas/unused.yaml": broken.replace("checkout_config", "unused"),
    })
    full = validate_tree(tree, POLICY)
    partial = validate_tree(tree, POLICY, only=["flags/cfg.yaml"])
    path = "flags/schemas/checkout_config.yaml"
    assert [(p.file, p.line, p.title) for p in partial.problems] == [(path, 8, "invalid-schema")]
    assert [p for p in full.problems if p.file == path] == list(partial.problems)
    assert partial.checked == ("flags/cfg.yaml", "flags/schemas/checkout_config.yaml")
    # A boolean flag alone: the schemas are neither reported nor checked.
    assert validate_tree(tree, POLICY, only=["flags/x.yaml"]).problems == ()


# --- the policy -----------------------------------------------------------------------------------------


def policy_problems(text: str) -> list[Problem]:
    policy, found = read_policy(DictTree({model.POLICY_PATH: dedent(text)}))
    assert policy is not None, found
    return found


def test_policy_references() -> None:
    found = policy_problems("""
        environments: [staging, production]
        roles: {qa: ["@acme/qa"], nobody: []}
        rules:
          - {match: {kind: flagg}, workflow: aproval}
          - {match: {any: [{environment: prod}, {not: {change_type: toggled}}]}, workflow: approval}
        workflows:
          approval:
            steps:
              - {id: a, role: qa, after: [c]}
              - {id: b, role: manager, after: [b]}
              - {id: a, role: codeowner, after: [d]}
              - {id: c, role: qa, after: [a]}
    """)
    assert [(p.line, p.col, p.severity, p.title) for p in found] == [
        (2, 27, "warning", "empty-role"),
        (4, 14, "error", "unknown-value"),
        (4, 28, "error", "unknown-workflow"),
        (5, 21, "error", "unknown-value"),
        (5, 48, "error", "unknown-value"),
        (9, 27, "error", "step-cycle"),
        (10, 17, "error", "unknown-role"),
        (10, 40, "error", "step-cycle"),
        (11, 10, "error", "duplicate-step"),
        (11, 42, "error", "unknown-step"),
    ]
    messages = [p.message for p in found]
    assert messages[1] == ("rules[0].match.kind: unknown kind 'flagg'; did you mean 'flag'? "
                           "(known: flag, schema, governance)")
    assert messages[2].startswith("rules[0].workflow: no workflow 'aproval'; did you mean 'approval'?")
    assert messages[3].startswith("rules[1].match.any[0].environment: unknown environment 'prod'; did you "
                                  "mean 'production'?")
    assert messages[4].startswith("rules[1].match.any[1].not.change_type: unknown change_type 'toggled'; "
                                  "did you mean 'toggle'?")
    assert messages[5] == "workflows.approval.steps[0].after: steps wait for each other in a cycle: a → c → a"
    assert messages[6] == "workflows.approval.steps[1].role: no role 'manager' (roles: qa, nobody, codeowner)"
    assert messages[8] == "workflows.approval.steps[2].id: step id 'a' is already used by step 1"


def test_policy_steps_in_order_are_fine() -> None:
    assert policy_problems(POLICY_TEXT) == []


def test_policy_missing_or_invalid_gives_no_policy() -> None:
    policy, found = read_policy(DictTree({}))
    assert policy is None and [(p.file, p.title) for p in found] == [(model.POLICY_PATH, "policy-missing")]
    policy, found = read_policy(DictTree({model.POLICY_PATH: "environments: []\nrules: []\n"}))
    assert policy is None
    assert [(p.line, p.message) for p in found] == [
        (1, "environments: must not be empty"), (1, "missing required field 'workflows'"),
        (2, "rules: must not be empty")]


def test_policy_and_schema_numbers_and_switches_are_not_coerced() -> None:
    text = POLICY_TEXT.replace("role: manager}", "role: manager, approvals: true}")
    policy, found = read_policy(DictTree({model.POLICY_PATH: text + "options: {allow_author: 'no'}\n"}))
    assert policy is None
    assert [(p.line, p.message) for p in found] == [
        (12, "workflows.flag_approval.steps[0].approvals: expected a whole number, got true"),
        (16, "options.allow_author: expected true or false, got 'no'")]
    _, found = read_policy(DictTree({model.POLICY_PATH: POLICY_TEXT.replace("version: 1", "version: true")}))
    assert [(p.line, p.message) for p in found] == [(1, "version: expected the format version 1, got true")]
    _, found = read_schema(DictTree({"flags/schemas/s.yaml": "name: s\nversion: '2'\nschema: {}\n"}),
                           "flags/schemas/s.yaml")
    assert [(p.line, p.message) for p in found] == [(2, "version: expected a whole number, got '2'")]


def test_flags_dir_must_stay_inside_the_repository() -> None:
    policy = POLICY.model_copy(update={"flags_dir": "../elsewhere"})
    p = one(check_policy(policy))
    assert (p.line, p.title) == (None, "invalid-value")


# --- property: flags round-trip through YAML ------------------------------------------------------------

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-.0123456789 ", min_size=1, max_size=8)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _floats | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_values = {
    "boolean": st.booleans(),
    "string": st.text(max_size=20),
    "number": st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False),
    "object": st.dictionaries(st.text(max_size=6), _json, max_size=4),
}
_condition: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"attribute": st.text(min_size=1, max_size=10), "operator": st.sampled_from(model.OPERATORS),
     "value": _json})
_when: st.SearchStrategy[dict[str, Any]] = (
    _condition
    | st.fixed_dictionaries({"all": st.lists(_condition, min_size=1, max_size=2)})
    | st.fixed_dictionaries({"any": st.lists(_condition, min_size=1, max_size=2)})
)
_health: st.SearchStrategy[dict[str, Any] | None] = (
    st.none()
    | st.fixed_dictionaries({
        "type": st.just("http"), "url": st.from_regex(r"https?://[a-z]{1,8}\.example", fullmatch=True),
        "expect_status": st.integers(100, 599)},
        optional={"json_field": st.just("data.rate"), "threshold": st.floats(-1e6, 1e6)})
    .filter(lambda d: ("json_field" in d) == ("threshold" in d))  # one without the other is refused
    | st.fixed_dictionaries({
        "type": st.just("prometheus"), "server": st.just("https://prom.example"), "query": st.just("up"),
        "threshold": st.floats(-1e6, 1e6), "comparison": st.sampled_from(["<", "<=", ">", ">=", "=="])})
)
_delays = st.from_regex(model.DURATION_PATTERN, fullmatch=True).filter(
    lambda s: len(s) < 12 and model.duration_seconds(s) <= model.MAX_DELAY_SECONDS)


_zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30))])


@st.composite
def flags(draw: st.DrawFn) -> Flag:
    flag_type = draw(st.sampled_from(["boolean", "string", "number", "object"]))
    variants = draw(st.dictionaries(_names, _values[flag_type], min_size=1, max_size=4))
    names = st.sampled_from(sorted(variants))
    environments = {}
    for env in draw(st.lists(st.sampled_from(["staging", "production", "qa"]), unique=True, max_size=3)):
        state: dict[str, object] = {"enabled": draw(st.booleans())}
        if draw(st.booleans()):
            state["default_variant"] = draw(names)
        rule = st.fixed_dictionaries({"name": st.none() | _names, "when": _when, "variant": names})
        state["rules"] = draw(st.lists(rule, max_size=2))
        if draw(st.booleans()):
            stages = draw(st.lists(st.integers(1, 100) | st.sampled_from(list(model.STAGE_NAMES)), min_size=1,
                                   max_size=5))
            state["rollout"] = {
                "variant": draw(names), "stages": stages,
                "stage_delay": draw(_delays),
                "start_at": draw(st.none() | st.datetimes(max_value=datetime(9000, 1, 1), timezones=_zones)
                                 .map(lambda d: d.isoformat())),
                "paused": draw(st.booleans()), "health_check": draw(_health),
                "on_failure": draw(st.sampled_from(["rollback", "pause"])),
            }
        environments[env] = state
    return Flag.model_validate({
        "key": draw(st.from_regex(model.KEY_PATTERN, fullmatch=True)),
        "name": draw(st.none() | st.text(max_size=20)),
        "description": draw(st.text(max_size=40)),
        "tags": draw(st.lists(_names, max_size=3)),
        "type": flag_type,
        "schema": draw(st.none() | _names) if flag_type == "object" else None,
        "variants": variants,
        "default_variant": draw(names),
        "environments": environments,
    })


@settings(max_examples=150, deadline=None)
@given(flags())
def test_flags_round_trip_through_yaml(flag: Flag) -> None:
    # PyYAML's default escaping keeps the text ASCII: with allow_unicode=True it writes U+0085 (NEL) raw,
    # and YAML reads that back as a line break.
    text = yaml.safe_dump(flag.model_dump(by_alias=True, mode="json"), sort_keys=False)
    doc = load_bytes(text.encode(), "flags/x.yaml")
    assert Flag.model_validate(doc.data) == flag
    assert [w for w in doc.warnings if w.severity == "error"] == []


def test_credentials_in_the_repository_are_refused_without_echoing_them() -> None:
    text = GOOD + textwrap.indent(dedent("""
        rollout:
          variant: "on"
          health_check:
            type: prometheus
            server: https://admin:hunter2@prom.example.com
            query: up
            threshold: 1
            token_env: Bearer s3cr3t-token
    """), "    ")
    problems = problems_of(text)
    by_line = {p.line: p for p in problems}
    assert set(by_line) == {12, 15}, problems
    assert by_line[12].title == by_line[15].title == "inline-credential"
    assert "without a password" in by_line[12].message
    assert "environment variable" in by_line[15].message
    for p in problems:
        assert "hunter2" not in p.message and "s3cr3t" not in p.message


def test_environment_variable_names_and_plain_urls_are_fine() -> None:
    text = GOOD + textwrap.indent(dedent("""
        rollout:
          variant: "on"
          health_check:
            type: http
            url: https://status@status.example.com:8443/api?check=checkout
            headers_from_env: {Authorization: STATUS_TOKEN}
    """), "    ")
    allowed = POLICY.model_copy(update={"health_checks": HealthChecks(env=["STATUS_TOKEN"])})
    assert problems_of(text, policy=allowed) == []
