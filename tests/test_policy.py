"""Policy: conditions (`match` / `when`), rule order, approver entries, globs."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_flags.changes import Change
from gitops_flags.model import Match, Policy
from gitops_flags.policy import (
    Principal,
    condition_holds,
    condition_may_hold,
    glob_match,
    parse_principal,
    possible_workflows,
    role_principals,
    rule_for,
    workflow_for,
)

FLAG = Change(
    kind="flag",
    key="new_checkout",
    path="flags/checkout/new_checkout.yaml",
    change_type="rollout",
    summary="rollout 25% → 50%",
    environment="production",
    tags=("q1", "frontend"),
    files=("flags/checkout/new_checkout.yaml",),
)
MOVED = Change(
    kind="flag",
    key="new_checkout",
    path="flags/web/new_checkout.yaml",
    old_path="flags/checkout/new_checkout.yaml",
    change_type="update",
    summary="moved",
    environment="staging",
)
SCHEMA = Change(
    kind="schema",
    key="checkout_config",
    path="flags/schemas/checkout_config.yaml",
    change_type="schema_update",
    summary="version 2 → 3",
    breaking=True,
)
GOVERNANCE = Change(
    kind="governance",
    key=".github/CODEOWNERS",
    path=".github/CODEOWNERS",
    change_type="governance",
    summary="edited",
)


def match(**fields: Any) -> Match:
    return Match.model_validate(fields)


CASES: list[tuple[str, dict[str, Any], Change, frozenset[str], bool]] = [
    ("empty match holds for everything", {}, FLAG, frozenset(), True),
    ("kind", {"kind": "flag"}, FLAG, frozenset(), True),
    ("kind list", {"kind": ["schema", "governance"]}, FLAG, frozenset(), False),
    ("environment", {"environment": "production"}, FLAG, frozenset(), True),
    ("environment other", {"environment": "staging"}, FLAG, frozenset(), False),
    ("environment never holds without one", {"environment": "production"}, SCHEMA, frozenset(), False),
    ("change_type", {"change_type": ["rollout", "toggle"]}, FLAG, frozenset(), True),
    ("change_type other", {"change_type": "create"}, FLAG, frozenset(), False),
    ("key glob", {"key": "new_*"}, FLAG, frozenset(), True),
    ("key glob miss", {"key": "old_*"}, FLAG, frozenset(), False),
    ("path glob **", {"path": "flags/checkout/**"}, FLAG, frozenset(), True),
    ("path * stays in a segment", {"path": "flags/*.yaml"}, FLAG, frozenset(), False),
    ("path **/ at any depth", {"path": "**/new_checkout.yaml"}, FLAG, frozenset(), True),
    ("path of a moved file: new path", {"path": "flags/web/**"}, MOVED, frozenset(), True),
    ("path of a moved file: old path", {"path": "flags/checkout/**"}, MOVED, frozenset(), True),
    ("tags: any of", {"tags": ["backend", "q1"]}, FLAG, frozenset(), True),
    ("tags: none of", {"tags": ["backend"]}, FLAG, frozenset(), False),
    ("breaking true", {"breaking": True}, SCHEMA, frozenset(), True),
    ("breaking false", {"breaking": False}, SCHEMA, frozenset(), False),
    ("label: any PR label", {"label": ["hotfix", "requires-additional-review"]}, FLAG,
     frozenset({"requires-additional-review"}), True),
    ("label: case-insensitive", {"label": "HotFix"}, FLAG, frozenset({"hotfix"}), True),
    ("label missing", {"label": "hotfix"}, FLAG, frozenset({"docs"}), False),
    ("fields AND", {"kind": "flag", "environment": "staging"}, FLAG, frozenset(), False),
    ("any", {"any": [{"breaking": True}, {"label": "x"}]}, SCHEMA, frozenset(), True),
    ("any: none holds", {"any": [{"breaking": False}, {"label": "x"}]}, SCHEMA, frozenset(), False),
    ("all", {"all": [{"kind": "schema"}, {"breaking": True}]}, SCHEMA, frozenset(), True),
    ("all: one fails", {"all": [{"kind": "schema"}, {"breaking": False}]}, SCHEMA, frozenset(), False),
    ("not", {"not": {"environment": "production"}}, FLAG, frozenset(), False),
    ("not of a miss", {"not": {"kind": "schema"}}, FLAG, frozenset(), True),
    ("governance by path", {"kind": "governance", "path": ".github/*"}, GOVERNANCE, frozenset(), True),
]


@pytest.mark.parametrize(("name", "fields", "change", "labels", "expected"), CASES, ids=[c[0] for c in CASES])
def test_condition_holds(
    name: str, fields: dict[str, Any], change: Change, labels: frozenset[str], expected: bool
) -> None:
    assert condition_holds(match(**fields), change, labels) is expected


def test_condition_may_hold_treats_labels_as_unknown() -> None:
    assert condition_may_hold(match(label="hotfix"), FLAG)
    assert condition_may_hold(match(not_={"label": "hotfix"}), FLAG)
    assert not condition_may_hold(match(kind="schema", label="hotfix"), FLAG)


POLICY = Policy.model_validate(
    {
        "environments": ["staging", "production"],
        "roles": {"qa": ["@acme/qa"]},
        "rules": [
            {"match": {"kind": "governance"}, "workflow": "governance"},
            {"match": {"kind": "flag", "label": "hotfix"}, "workflow": "fast"},
            {"match": {"kind": "flag", "environment": "production"}, "workflow": "flag_approval"},
            {"match": {"kind": "flag"}, "workflow": "light"},
            {"match": {"kind": "schema"}, "workflow": "missing"},
        ],
        "workflows": {
            name: {"steps": [{"id": "qa", "role": "qa"}]}
            for name in ("governance", "fast", "flag_approval", "light")
        },
    }
)


def routed(change: Change, labels: frozenset[str] = frozenset(), policy: Policy = POLICY) -> str | None:
    found = workflow_for(policy, change, labels)
    return found[0] if found else None


def test_first_matching_rule_wins() -> None:
    assert routed(FLAG) == "flag_approval"
    assert routed(FLAG, frozenset({"hotfix"})) == "fast"
    assert routed(MOVED) == "light"
    assert routed(GOVERNANCE, frozenset({"hotfix"})) == "governance"


def test_no_rule_or_unknown_workflow_gives_none() -> None:
    policy = POLICY.model_copy(update={"rules": POLICY.rules[:1]})
    assert routed(FLAG, policy=policy) is None
    assert rule_for(POLICY, SCHEMA, frozenset()) == (4, POLICY.rules[4])
    assert routed(SCHEMA) is None


def test_possible_workflows_covers_every_label_outcome() -> None:
    assert possible_workflows(POLICY, FLAG) == ["fast", "flag_approval"]
    assert possible_workflows(POLICY, GOVERNANCE) == ["governance"]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("alice", Principal("user", "alice", "alice")),
        ("@Alice", Principal("user", "alice", "Alice")),
        ("@Acme/QA", Principal("team", "acme/qa", "@Acme/QA")),
        ("acme/qa", Principal("team", "acme/qa", "@acme/qa")),
        ("dev@example.com", Principal("email", "dev@example.com", "dev@example.com")),
        ("  ", None),
    ],
)
def test_parse_principal(entry: str, expected: Principal | None) -> None:
    assert parse_principal(entry) == expected


def test_principal_request_name() -> None:
    assert Principal("team", "acme/qa", "@acme/qa").request == "acme/qa"
    assert Principal("user", "alice", "alice").request == "alice"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("flags/**", "flags/a/b/c.yaml", True),
        ("flags/**", "flags", False),
        ("flags/**/x.yaml", "flags/x.yaml", True),
        ("flags/**/x.yaml", "flags/a/b/x.yaml", True),
        ("flags/*/x.yaml", "flags/a/b/x.yaml", False),
        ("flags/?.yaml", "flags/a.yaml", True),
        ("flags/[ab].yaml", "flags/b.yaml", True),
        ("flags/[!ab].yaml", "flags/b.yaml", False),
        ("*.yaml", "flags/a.yaml", False),
        ("**/*.yaml", "a.yaml", True),
        ("a.b", "axb", False),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_role_entries_naming_one_principal_are_listed_once() -> None:
    entries = ["max", "@max", "MAX", "@Acme/QA", "acme/qa", "quinn"]
    policy = POLICY.model_copy(update={"roles": {"r": entries}})
    principals = role_principals(policy, "r")
    assert principals is not None
    assert [p.text for p in principals] == ["max", "@Acme/QA", "quinn"]
    assert role_principals(policy, "undefined") is None
