"""Same flag file, same answer on every engine (issue 18).

For every operator and value type, over generated contexts (present, missing, null, wrong type, edge
strings), three evaluators must name the same variant (or all fail with an error, which serves the
application's code default): OpenFeature's flagd provider on our flagd documents, litestar-flags' engine
on our litestar store, and `engine_cases.reference`, a plain reading of the flag file. The flags are
every example flag in flags/ (both environments; rollouts not started and completed) and a generated
flag per operator and value. The real CLI writes the stores in test_cli_path_stores_agree.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_cases import MISSING, FlagdEngine, LitestarEngine, documents, reference, table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar_flags.storage.database import DatabaseStorageBackend  # type: ignore[import-untyped]

from gitops_flags import cli
from gitops_flags.model import OPERATORS, Flag
from gitops_flags.store.litestar import open_litestar_store

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("staging", "production")

# Rule values per operator: every kind the operator takes, the values Python's `==` confuses (0, 1,
# True, False, 1.0), and the edges (empty text, a leading v, case).
VALUES: dict[str, list[Any]] = {
    "equals": ["x", "", "True", "1", 7, 1, 0, 1.0, 2.5, -3, True, False],
    "in": [["x", "y"], [1, 2], [0], [True], [False], [1, True], [0, "0", False], ["", 3.5], [1.0, "true"]],
    "greater_than": [0, 30, -1.5, 1, 1e9],
    "contains": ["", "a", "ß", "İ", "-"],
    "semver_equals": ["2.0", "v1.5.0", "0", "1.2.3", "10"],
}
VALUES["not_equals"] = VALUES["equals"]
VALUES["not_in"] = VALUES["in"]
for _op in ("greater_or_equal", "less_than", "less_or_equal"):
    VALUES[_op] = VALUES["greater_than"]
for _op in ("starts_with", "ends_with"):
    VALUES[_op] = VALUES["contains"]
for _op in ("semver_greater_than", "semver_less_than"):
    VALUES[_op] = VALUES["semver_equals"]
assert set(VALUES) == set(OPERATORS)


def _flag(key: str, rules: list[dict[str, Any]], enabled: bool = True) -> Flag:
    return Flag.model_validate({
        "key": key, "type": "string", "default_variant": "miss",
        "variants": {"miss": "miss", "hit": "hit", "next": "next"},
        "environments": {"production": {"enabled": enabled, "rules": rules}}})


def _cond(attribute: str, operator: str, value: Any) -> dict[str, Any]:
    return {"attribute": attribute, "operator": operator, "value": value}


def generated_flags() -> dict[str, Flag]:
    """A flag per operator and value, and combinations: `all`, `any` and a second rule behind each."""
    flags = {}
    for op, values in VALUES.items():
        for i, value in enumerate(values):
            key = f"{op}-{i}"
            flags[key] = _flag(key, [{"when": _cond("a", op, value), "variant": "hit"},
                                     {"when": _cond("b", "equals", "go"), "variant": "next"}])
    pairs = [("equals", False), ("greater_than", 0), ("starts_with", "x"), ("not_in", [0, "a"]),
             ("semver_less_than", "2"), ("in", [True, 1.5]), ("not_equals", 1)]
    for i, (op1, v1) in enumerate(pairs):
        op2, v2 = pairs[(i + 3) % len(pairs)]
        for mode in ("all", "any"):
            key = f"{mode}-{i}"
            flags[key] = _flag(key, [{"when": {mode: [_cond("a", op1, v1), _cond("b", op2, v2)]},
                                      "variant": "hit"},
                                     {"when": _cond("b", "not_equals", False), "variant": "next"}])
    flags["killed"] = _flag("killed", [{"when": _cond("a", "equals", "x"), "variant": "hit"}], enabled=False)
    return flags


def example_flags() -> dict[str, Flag]:
    out = {}
    for path in sorted((ROOT / "flags").rglob("*.yaml")):
        if "schemas" not in path.relative_to(ROOT / "flags").parts:
            flag = Flag.model_validate(yaml.safe_load(path.read_text()))
            out[flag.key] = flag
    return out


def attributes(flags: dict[str, Flag]) -> list[str]:
    names = set()
    for flag in flags.values():
        for env in flag.environments.values():
            for rule in env.rules:
                when = rule.when
                conds = getattr(when, "all", None) or getattr(when, "any", None) or [when]
                names |= {c.attribute for c in conds}  # type: ignore[union-attr]
    return sorted(names)


EDGE_TEXT = ["", "x", "a", "go", "True", "true", "1", "0", "1.0", "3.5", "7", "ß", "SS", "ss", "İ", "i̇", "I",
             "-", "ops-eu", "OPS-EU", "1.2.3", "v1.2.3", "V2", "2.0.0-beta", "2.0.0+build", "01.2.3",
             "1.2.3\n",
             "1.2.3.4", "1..2", " 1.2.3", "10", "2", "1٠.0.0", "١.2.3", "0.0.0", "search", "desktop", "free",
             "gold", "US", "DE", "en-GB", "EN-gb", "u-1042", "4.2.0", "4.1.9", "@acme.com", "x@acme.com"]
scalars = st.one_of(
    st.sampled_from(EDGE_TEXT), st.text(max_size=6), st.text(alphabet="0123456789.vV-+", max_size=8),
    st.booleans(), st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 2.5, 7, 30, 29.999, 100, 365, 1e9, -1.5]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False),
)
values = st.one_of(
    st.just(MISSING), st.none(), scalars, st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "x", "1"]), scalars, max_size=2),
)


class Engines:
    def __init__(self, flags: dict[str, Flag], directory: Path) -> None:
        self.flags = flags
        self.cases: list[tuple[str, int, FlagdEngine, LitestarEngine]] = []
        for environment in ENVIRONMENTS:
            chosen = {k: f for k, f in flags.items() if environment in f.environments}
            if not chosen:
                continue
            for percentage in (0, 100):
                document = documents(chosen, environment, percentage)
                self.cases.append((environment, percentage, FlagdEngine(document, directory),
                                   LitestarEngine({environment: document}, environment)))

    def disagreements(self, context: dict[str, Any]) -> list[str]:
        out = []
        for environment, percentage, flagd_engine, litestar_engine in self.cases:
            keys = sorted(flagd_engine.types)
            from_litestar = litestar_engine.serve_many([(key, context, "user-1") for key in keys])
            for key, lite in zip(keys, from_litestar, strict=True):
                want = reference(self.flags[key], environment, percentage, context)
                got = flagd_engine.serve(key, context)
                if not want == got == lite:
                    out.append(f"{key} in {environment} at {percentage}%: file {want}, flagd {got}, "
                               f"litestar-flags {lite}")
        return out

    def close(self) -> None:
        for *_, flagd_engine, _ in self.cases:
            flagd_engine.close()


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engines]:
    both = Engines({**example_flags(), **generated_flags()}, tmp_path_factory.mktemp("engines"))
    yield both
    both.close()


def test_the_operator_table_holds_on_every_engine(engines: Engines, tmp_path: Path) -> None:
    flags = {flag.key: flag for flag, _, _ in table()}
    document = documents(flags, "production", 0)
    flagd_engine = FlagdEngine(document, tmp_path)
    litestar_engine = LitestarEngine({"production": document}, "production")
    try:
        for flag, context, expected in table():
            got = (reference(flag, "production", 0, context), flagd_engine.serve(flag.key, context),
                   litestar_engine.serve(flag.key, context))
            assert got == (expected,) * 3, (flag.key, context)
    finally:
        flagd_engine.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_engine_serves_what_the_file_means(engines: Engines, data: st.DataObject) -> None:
    names = ["a", "b", *attributes(engines.flags)]
    context = {name: data.draw(values, label=name) for name in names}
    assert engines.disagreements(context) == []


def test_a_missing_attribute_never_matches_and_a_killed_flag_serves_off(engines: Engines) -> None:
    """The issue's two findings, at the example flags: nothing present, nothing matched; express_pay
    is killed in production with default_variant "on" and serves "off" on both engines."""
    assert engines.disagreements({}) == []
    for environment, percentage, flagd_engine, litestar_engine in engines.cases:
        if environment == "production":
            assert flagd_engine.serve("express_pay", {}) == "off"
            assert litestar_engine.serve("express_pay", {"anything": 1}) == "off"
            assert reference(engines.flags["express_pay"], environment, percentage, {}) == "off"


# --- the real CLI writes every store; they serve the same ------------------------------------------------

POLICY = """\
version: 1
environments: [staging, production]
rules:
  - {match: {kind: flag}, workflow: any}
workflows:
  any: {steps: [{id: one, role: ops}]}
roles: {ops: ["@octo"]}
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_cli_path_stores_agree(tmp_path: Path) -> None:
    """`gitops-flags apply` on a repository holding the example flags and the generated ones, into a
    file store and a litestar-flags store (SQLite): flagd over the file store's documents and
    litestar-flags over its own storage serve what the files mean, for the table's contexts."""
    repo = tmp_path / "repo"
    (repo / "flags").mkdir(parents=True)
    (repo / ".github").mkdir()
    (repo / ".github" / "gitops-flags.yml").write_text(POLICY)
    flags = {**example_flags(), **generated_flags()}
    for flag in flags.values():
        text = json.dumps(flag.model_dump(mode="json", by_alias=True, exclude_none=True))
        (repo / "flags" / f"{flag.key}.yaml").write_text(text)  # JSON is YAML
    for schema in (ROOT / "flags" / "schemas").glob("*.yaml"):
        (repo / "flags" / "schemas").mkdir(exist_ok=True)
        (repo / "flags" / "schemas" / schema.name).write_bytes(schema.read_bytes())
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "flags")
    file_store = tmp_path / "store"
    database = f"sqlite+aiosqlite:///{tmp_path}/{{environment}}.db"
    for url in (f"file:{file_store}", f"litestar-flags:{database}"):
        args = ["apply", "--init", "--repo", str(repo), "--store", url, "--no-verify-approvals",
                "--now", "2026-12-01T09:00:00Z"]
        assert cli.main(args) == 0, url

    litestar = open_litestar_store(database)
    names = attributes(flags)
    contexts = [{"b": "go", **{name: v for name in names}, "a": v}
                for v in (MISSING, None, 0, 1, True, False, "x", "", "1", 1.0, [1], {"a": 1}, "2.0", "US")]
    for environment in ENVIRONMENTS:
        document = json.loads((file_store / f"{environment}.flagd.json").read_text())
        flagd_engine = FlagdEngine(document, tmp_path)
        assert litestar.read().documents[environment] == document

        async def app_storage(environment: str = environment) -> Any:
            url = database.format(environment=environment)
            return await DatabaseStorageBackend.create(connection_string=url)

        litestar_engine = LitestarEngine(litestar.read().documents, environment, app_storage)
        try:
            keys = [key for key in sorted(document["flags"])
                    if document["flags"][key]["metadata"].get("gitopsRolloutPercentage", 0) in (0, 100)]
            requests = [(key, context, "user-1") for key in keys for context in contexts]
            from_litestar = iter(litestar_engine.serve_many(requests))
            for key, context, _ in requests:
                percentage = document["flags"][key]["metadata"].get("gitopsRolloutPercentage", 0)
                want = reference(flags[key], environment, percentage, context)
                got = (flagd_engine.serve(key, context), next(from_litestar))
                assert got == (want, want), (key, environment, context)
        finally:
            flagd_engine.close()
