"""changes.diff over in-memory trees (DictTree), plus one run over a real git repository."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_flags import git
from gitops_flags.changes import Change, Diff, Searchable, diff, is_governance_path
from gitops_flags.model import Policy
from gitops_flags.problems import Problem, ProblemError
from gitops_flags.tree import DictTree

POLICY = Policy.model_validate({
    "environments": ["staging", "production"],
    "rules": [{"match": {}, "workflow": "review"}],
    "workflows": {"review": {"steps": [{"id": "owner", "role": "codeowner"}]}},
})  # fmt: skip

OFF = {"staging": {"enabled": True}, "production": {"enabled": False}}


def flag(key: str = "checkout", envs: dict[str, Any] | None = None, **fields: Any) -> str:
    data: dict[str, Any] = {
        "key": key, "description": "New checkout", "tags": ["web"], "type": "boolean",
        "variants": {"on": True, "off": False}, "default_variant": "off",
        "environments": OFF if envs is None else envs,
    }  # fmt: skip
    data.update(fields)
    return yaml.safe_dump(data, sort_keys=False)


def schema(name: str = "limits", version: int = 1, **json_schema: Any) -> str:
    body = json_schema or {"type": "object", "properties": {"limit": {"type": "integer"}}}
    return yaml.safe_dump({"name": name, "version": version, "schema": body}, sort_keys=False)


def object_flag(key: str = "limits_flag", small: Any = None, schema_name: str = "limits") -> str:
    variants = {"small": {"limit": 10} if small is None else small, "large": {"limit": 1000}}
    return flag(key, type="object", schema=schema_name, variants=variants, default_variant="small", tags=[])


def run(base: dict[str, str], head: dict[str, str], changed: list[str] | None = None) -> Diff:
    return diff(DictTree(base), DictTree(head), POLICY, changed)


def summary(d: Diff) -> list[tuple[str, str, str | None, str, str]]:
    return [(c.kind, c.key, c.environment, c.change_type, c.summary) for c in d.changes]


def errors(d: Diff) -> list[Problem]:
    return [p for p in d.problems if p.severity == "error"]


F = "flags/checkout.yaml"

# --- change types per (flag, environment) -----------------------------------------------------------------

ON_ROLLOUT = {"variant": "on", "stages": [5, 25, 50, 75, 100], "stage_delay": "2h"}
SAME = "no change in meaning (comments, layout)"
BOTH = ("staging", "production")


def prod(**state: Any) -> str:
    """A flag whose production state is `state` (staging stays on)."""
    return flag(envs={"staging": {"enabled": True}, "production": {"enabled": True, **state}})


def case(name: str, before: str | None, after: str | None, *expected: tuple[str | None, str, str]) -> Any:
    return pytest.param(before, after, list(expected), id=name)


STAFF = {"when": {"attribute": "email", "operator": "ends_with", "value": "@a.com"}, "variant": "on"}
TABLE: list[Any] = [
    case("created", None, flag(), *[(e, "create", "created") for e in BOTH]),
    case("deleted", flag(), None, *[(e, "delete", "deleted") for e in BOTH]),
    case("toggle", flag(), prod(), ("production", "toggle", "enabled false → true")),
    case("rollout started", prod(), prod(rollout=ON_ROLLOUT),
         ("production", "rollout", "rollout started: on 5% → 100% over 5 stages every 2h")),
    case("rollout percentage", prod(rollout={"variant": "on", "stages": [25, 100]}),
         prod(rollout={"variant": "on", "stages": [50, 100]}),
         ("production", "rollout", "rollout stages 25/100% → 50/100%")),
    case("rollout paused", prod(rollout=ON_ROLLOUT), prod(rollout={**ON_ROLLOUT, "paused": True}),
         ("production", "rollout", "rollout paused")),
    case("rollout stages", prod(rollout=ON_ROLLOUT),
         prod(rollout={**ON_ROLLOUT, "stages": [10, 100], "stage_delay": "1d"}),
         ("production", "rollout", "rollout stages 5/25/50/75/100% → 10/100%; stage delay 2h → 1d")),
    case("rollout removed", prod(rollout=ON_ROLLOUT), prod(), ("production", "rollout", "rollout removed")),
    case("stage names = numbers", prod(rollout={"variant": "on", "stages": ["half", 100]}),
         prod(rollout={"variant": "on", "stages": [50, "full"]}), *[(e, "update", SAME) for e in BOTH]),
    case("env default variant", flag(),
         flag(envs={**OFF, "staging": {"enabled": True, "default_variant": "on"}}),
         ("staging", "update", "default_variant off (flag default) → on")),
    case("rules", prod(), prod(rules=[STAFF]), ("production", "update", "rules changed (0 → 1)")),
    case("toggle and more is an update", flag(),
         flag(envs={**OFF, "staging": {"enabled": False, "default_variant": "on"}}),
         ("staging", "update", "enabled true → false; default_variant off (flag default) → on")),
    case("edit outside environments", flag(), flag(description="Redesigned"),
         *[(e, "update", "description changed") for e in BOTH]),
    case("flag default variant", flag(), flag(default_variant="on"),
         *[(e, "update", "default_variant off → on") for e in BOTH]),
    case("variants", flag(), flag(variants={"on": True, "off": False, "beta": True}),
         *[(e, "update", "variants changed (added beta)") for e in BOTH]),
    case("true is not 1", flag(type="object", variants={"on": {"x": 1}, "off": {}}),
         flag(type="object", variants={"on": {"x": True}, "off": {}}),
         *[(e, "update", "variants changed (new value for on)") for e in BOTH]),
    case("environment added", flag(), flag(envs={**OFF, "qa": {"enabled": True}}),
         ("qa", "create", "environment added")),
    case("environment removed", flag(), flag(envs={"staging": {"enabled": True}}),
         ("production", "delete", "environment removed")),
    case("comment only", flag(), flag() + "# a comment\n", *[(e, "update", SAME) for e in BOTH]),
    case("flag without environments", flag(envs={}), flag(envs={}, description="x"),
         (None, "update", "description changed")),
]


@pytest.mark.parametrize(("before", "after", "expected"), TABLE)
def test_change_types(before: str | None, after: str | None, expected: list[tuple[Any, ...]]) -> None:
    base = {} if before is None else {F: before}
    head = {} if after is None else {F: after}
    d = run(base, head)
    assert [(c.environment, c.change_type, c.summary) for c in d.changes] == expected
    assert all(c.kind == "flag" and c.key == "checkout" and c.path == F for c in d.changes)
    if after is not None and "qa" not in after:
        assert errors(d) == []


def test_before_and_after_are_plain_environment_states() -> None:
    d = run({F: flag()}, {F: flag(envs={"staging": {"enabled": True}, "production": {"enabled": True}})})
    (change,) = d.changes
    assert change.before == {"enabled": False, "rules": []}
    assert change.after == {"enabled": True, "rules": []}
    created = run({}, {F: flag()}).changes[0]
    assert created.before is None and created.after == {"enabled": True, "rules": []}


def test_tags_are_the_union_of_base_and_head() -> None:
    d = run({F: flag(tags=["critical", "web"])}, {F: flag(tags=["web"], description="quiet edit")})
    assert {c.tags for c in d.changes} == {("web", "critical")}
    assert "tags changed (removed critical)" in d.changes[0].summary


def test_moved_without_edits_is_an_update_in_every_environment() -> None:
    old, new = "flags/team-a/checkout.yaml", "flags/team-b/checkout.yaml"
    d = run({old: flag()}, {new: flag()})
    assert summary(d) == [
        ("flag", "checkout", env, "update", f"moved from {old} to {new}") for env in ("staging", "production")
    ]
    assert all(c.path == new and c.old_path == old and c.files == (old, new) for c in d.changes)


def test_moved_with_edits_keeps_identity() -> None:
    old, new = "flags/team-a/checkout.yaml", "flags/team-b/checkout.yaml"
    d = run({old: flag()}, {new: flag(envs={"staging": {"enabled": True}, "production": {"enabled": True}})})
    assert summary(d) == [
        ("flag", "checkout", "production", "toggle", f"enabled false → true; moved from {old} to {new}")
    ]
    assert d.changes[0].old_path == old


def test_renamed_key_is_a_delete_and_a_create() -> None:
    d = run({F: flag()}, {"flags/checkout_v2.yaml": flag("checkout_v2")})
    assert {(c.key, c.change_type) for c in d.changes} == {("checkout", "delete"), ("checkout_v2", "create")}


def test_changed_list_limits_what_is_compared() -> None:
    base = {F: flag(), "flags/other.yaml": flag("other")}
    head = {F: flag(description="x"), "flags/other.yaml": flag("other", description="y")}
    assert {c.key for c in run(base, head, changed=[F]).changes} == {"checkout"}
    assert {c.key for c in run(base, head).changes} == {"checkout", "other"}
    assert run(base, base, changed=[F, "README.md"]).changes == ()  # listed but unchanged


def test_ordering_is_by_kind_key_and_policy_environment_order() -> None:
    base = {".github/CODEOWNERS": "* @a\n", "flags/schemas/limits.yaml": schema()}
    head = {
        ".github/CODEOWNERS": "* @b\n",
        "flags/schemas/limits.yaml": schema(version=2, type="object"),
        "flags/b.yaml": flag("b", envs={"qa": {"enabled": True}, "production": {"enabled": True},
                                        "staging": {"enabled": True}}),
        "flags/a.yaml": flag("a"),
    }  # fmt: skip
    d = run(base, head)
    assert [(c.kind, c.key, c.environment) for c in d.changes] == [
        ("flag", "a", "staging"), ("flag", "a", "production"),
        ("flag", "b", "staging"), ("flag", "b", "production"), ("flag", "b", "qa"),
        ("schema", "limits", None),
        ("governance", ".github/CODEOWNERS", None),
    ]  # fmt: skip
    assert run(base, head) == d  # deterministic


# --- governance -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "before", "after", "text"),
    [
        (".github/gitops-flags.yml", "a", "b", "policy changed"),
        (".github/CODEOWNERS", "a", "b", "CODEOWNERS changed"),
        ("CODEOWNERS", None, "a", "CODEOWNERS added"),
        ("docs/CODEOWNERS", "a", None, "CODEOWNERS deleted"),
        (".github/workflows/flags.yml", "a", "b", "workflow changed"),
        (".github/workflows/nested/x.yaml", None, "a", "workflow added"),
    ],
)
def test_governance_changes(path: str, before: str | None, after: str | None, text: str) -> None:
    base = {} if before is None else {path: before}
    head = {} if after is None else {path: after}
    d = run(base, head)
    assert d.changes == (
        Change(kind="governance", key=path, path=path, change_type="governance", summary=text, files=(path,)),
    )


@pytest.mark.parametrize("path", [".github/dependabot.yml", "src/CODEOWNERS", "README.md", "flags/README.md"])
def test_other_files_are_not_governed(path: str) -> None:
    assert not is_governance_path(path, POLICY)
    assert run({path: "a"}, {path: "b"}).changes == ()


# --- schemas ----------------------------------------------------------------------------------------------

S = "flags/schemas/limits.yaml"


def test_schema_create_is_not_breaking_and_delete_is() -> None:
    created = run({}, {S: schema()})
    assert summary(created) == [("schema", "limits", None, "schema_create", "created (version 1)")]
    assert created.changes[0].breaking is False
    deleted = run({S: schema()}, {})
    assert summary(deleted) == [("schema", "limits", None, "schema_delete", "deleted")]
    assert deleted.changes[0].breaking is True
    assert deleted.problems == ()


def test_schema_delete_while_flags_use_it() -> None:
    users = {"flags/a.yaml": object_flag("a"), "flags/b.yaml": object_flag("b"), "flags/c.yaml": flag("c")}
    d = run({S: schema(), **users}, users)
    assert Problem(S, None, None, "schema limits is deleted but flags still reference it: a, b",
                   title="schema-in-use") in d.problems


def test_schema_update_compatible_and_breaking() -> None:
    old = schema(type="object", properties={"limit": {"type": "integer"}})
    wider = schema(version=2, type="object", properties={"limit": {"type": "number"}})
    narrower = schema(version=2, type="object", required=["limit", "burst"],
                      properties={"limit": {"type": "integer"}, "burst": {"type": "integer"}})
    compatible = run({S: old}, {S: wider}).changes[0]
    assert (compatible.change_type, compatible.breaking) == ("schema_update", False)
    assert compatible.summary == "version 1 → 2; compatible: old values still pass"
    breaking = run({S: old}, {S: narrower}).changes[0]
    assert breaking.breaking is True
    assert breaking.summary.startswith("version 1 → 2; breaking: required properties added: burst, limit")
    assert breaking.before["version"] == 1 and breaking.after["version"] == 2


def test_schema_change_must_raise_version_at_the_version_line() -> None:
    text = "name: limits\ndescription: d\nversion: 3\nschema:\n  type: object\n"
    edited = text.replace("type: object", "type: object\n  required: [limit]")
    d = run({S: text}, {S: edited})
    message = "schema limits changed but version stayed 3; raise it to 4"
    assert Problem(S, 3, 1, message, title="schema-version") in d.problems
    lowered = run({S: text}, {S: edited.replace("version: 3", "version: 2")})
    assert any("went down from 3 to 2" in p.message and p.line == 3 for p in lowered.problems)


def test_a_new_description_needs_a_new_version_too() -> None:
    d = run({S: schema()}, {S: schema().replace("version: 1", "version: 1\ndescription: now documented")})
    assert summary(d) == [("schema", "limits", None, "schema_update", "description changed")]
    assert [(p.title, p.message) for p in d.problems] == [
        ("schema-version", "schema limits changed but version stayed 1; raise it to 2")]
    raised = schema().replace("version: 1", "version: 2\ndescription: now documented")
    assert run({S: schema()}, {S: raised}).problems == ()


def test_comments_and_formatting_are_not_a_change() -> None:
    d = run({S: schema()}, {S: "# reviewed\n" + schema()})
    assert d.problems == ()


def test_existing_flag_values_that_fail_a_changed_schema_are_problems() -> None:
    users = {"flags/team/a.yaml": object_flag("a", {"limit": 10}), "flags/b.yaml": object_flag("b", {})}
    limit = {"type": "integer", "minimum": 100}
    new = schema(version=2, type="object", required=["limit"], properties={"limit": limit})
    d = run({S: schema(), **users}, {S: new, **users}, changed=[S])
    flagged = {p.file for p in errors(d)}
    assert flagged == {"flags/team/a.yaml", "flags/b.yaml"}  # unchanged files, pointed at
    assert all(p.line is not None for p in errors(d))
    assert [c.kind for c in d.changes] == ["schema"]  # they are problems, not changes


def test_object_flag_change_covers_its_schema_file() -> None:
    edited = object_flag("a", {"limit": 5})
    d = run({S: schema(), "flags/a.yaml": object_flag("a")}, {S: schema(), "flags/a.yaml": edited})
    assert {c.files for c in d.changes} == {("flags/a.yaml", S)}


# --- validation of the head side, and loading only what changed ----------------------------------------


def test_invalid_head_flag_is_reported_and_still_shown() -> None:
    d = run({F: flag()}, {F: flag().replace("type: boolean", "type: booleen")})
    assert [(c.environment, c.change_type, c.summary) for c in d.changes] == [
        ("staging", "update", "does not validate (see problems)"),
        ("production", "update", "does not validate (see problems)"),
    ]
    (problem,) = errors(d)
    assert problem.file == F and problem.line is not None and "booleen" in problem.message


def test_head_checks_use_the_policy_environments() -> None:
    d = run({}, {F: flag(envs={"prod": {"enabled": True}})})
    assert any(p.file == F and "environment not declared" in p.message for p in errors(d))


def test_duplicate_key_in_another_folder() -> None:
    existing = {"flags/a/checkout.yaml": flag()}
    d = run(existing, {**existing, "flags/b/checkout.yaml": flag()}, changed=["flags/b/checkout.yaml"])
    assert any(p.file == "flags/b/checkout.yaml" and p.title == "duplicate-flag-key" for p in d.problems)


class CountingTree(DictTree):
    """Counts reads per path; optionally offers the byte search that git.GitTree has."""

    def __init__(self, files: dict[str, str]) -> None:
        super().__init__(files)
        self.reads: dict[str, int] = {}

    def read(self, path: str) -> bytes | None:
        self.reads[path] = self.reads.get(path, 0) + 1
        return super().read(path)


class SearchingTree(CountingTree):
    def paths_containing(self, needles: Sequence[str], prefix: str) -> set[str]:
        files = self._files.items()
        return {p for p, raw in files if p.startswith(prefix) and any(n.encode() in raw for n in needles)}


def many_flags(n: int) -> dict[str, str]:
    return {f"flags/team-{i % 7}/flag_{i:04d}.yaml": flag(f"flag_{i:04d}") for i in range(n)}


def test_only_changed_flags_are_read() -> None:
    files = many_flags(300)
    head = CountingTree({**files, "flags/team-1/flag_0001.yaml": flag("flag_0001", description="x")})
    d = diff(CountingTree(files), head, POLICY, ["flags/team-1/flag_0001.yaml"])
    assert len(d.changes) == 2
    assert set(head.reads) <= {"flags/team-1/flag_0001.yaml", ".github/gitops-flags.yml"}


@pytest.mark.parametrize("tree", [CountingTree, SearchingTree])
def test_a_schema_change_parses_only_the_flags_that_mention_it(tree: type[CountingTree]) -> None:
    files = {**many_flags(300), "flags/x/user_1.yaml": object_flag("user_1"), S: schema()}
    head = tree({**files, S: schema(version=2, type="object")})
    d = diff(DictTree(files), head, POLICY, [S])
    assert errors(d) == []
    parsed = {p for p, n in head.reads.items() if n > 1 or tree is SearchingTree}
    assert "flags/x/user_1.yaml" in parsed
    assert not any(p.startswith("flags/team-") for p in parsed)  # the 300 others never parsed
    assert isinstance(head, Searchable) is (tree is SearchingTree)


def test_an_unreadable_head_file_is_a_problem_not_a_crash() -> None:
    class Refusing(DictTree):
        def read(self, path: str) -> bytes | None:
            if path == F:
                raise ProblemError(Problem(path, None, None, "no symbolic links", title="symlink"))
            return super().read(path)

    d = diff(DictTree({F: flag()}), Refusing({F: "x"}), POLICY, None)
    assert [p.title for p in d.problems] == ["symlink"]
    assert [c.summary for c in d.changes] == ["does not validate (see problems)"] * 2


def test_changed_none_matches_an_explicit_list() -> None:
    base = {F: flag(), S: schema(), ".github/CODEOWNERS": "a", "flags/gone.yaml": flag("gone")}
    head = {F: flag(description="x"), S: schema(version=2, type="object"), ".github/CODEOWNERS": "b"}
    assert run(base, head) == run(base, head, changed=[F, S, ".github/CODEOWNERS", "flags/gone.yaml"])


# --- over a real git repository -----------------------------------------------------------------------------


def test_diff_of_two_commits_with_a_move(tmp_path: Path) -> None:
    def sh(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True)
        return done.stdout

    def put(files: dict[str, str | None]) -> str:
        for rel, text in files.items():
            if text is None:
                (tmp_path / rel).unlink()
            else:
                (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / rel).write_text(text)
        sh("add", "-A")
        sh("commit", "-q", "-m", "x")
        return sh("rev-parse", "HEAD").strip()

    sh("init", "-q", "-b", "main")
    moved = "moved from flags/team-a/checkout.yaml to flags/team-b/checkout.yaml"
    base = put({"flags/team-a/checkout.yaml": flag(), S: schema(), "flags/user.yaml": object_flag("user")})
    head = put({"flags/team-a/checkout.yaml": None, "flags/team-b/checkout.yaml": flag(),
                S: schema(version=2, type="object", required=["limit"])})  # fmt: skip
    changed = [p for c in git.changed_files(tmp_path, base, head) for p in (c.old_path, c.path) if p]
    with git.GitTree(tmp_path, base) as b, git.GitTree(tmp_path, head) as h:
        d = diff(b, h, POLICY, changed)
    assert summary(d) == [
        ("flag", "checkout", env, "update", moved)
        for env in BOTH
    ] + [
        ("schema", "limits", None, "schema_update", "version 1 → 2; breaking: required property added: limit")
    ]
    assert errors(d) == []
