"""Parallel validation gives the serial run's output byte for byte, in every format, for whole runs and
for PATHS; small runs stay in one process."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_cli_validate import POLICY
from test_cli_validate import run as output

from gitops_flags.tree import DirTree
from gitops_flags.validate import parallel, read_policy, validate_tree

SCHEMA = """\
name: limits
version: 1
schema:
  type: object
  required: [limit]
  properties: {limit: {type: integer, minimum: 0}}
"""
BROKEN_SCHEMA = "name: broken\nversion: 1\nschema: {type: objekt}\n"


def flag(key: str, kind: int) -> str:
    """A flag file with one of several problems (or none), chosen by `kind`."""
    good = f'key: {key}\ntype: boolean\nvariants: {{"on": true, "off": false}}\ndefault_variant: "off"\n'
    return [
        good,
        good + "colour: red\n",  # unknown field
        good.replace('default_variant: "off"', "default_variant: of"),  # unknown variant
        good + "environments:\n  prod: {enabled: true}\n",  # undeclared environment
        f"key: {key}\ntype: object\nschema: limits\nvariants:\n  a: {{limit: -1}}\n  b: {{limit: x}}\n"
        "default_variant: a\n",  # schema violations
        f"key: {key}\ntype: object\nschema: limitz\nvariants: {{a: {{}}}}\ndefault_variant: a\n",  # no schema
        f"key: {key}\ntype: object\nschema: broken\nvariants: {{a: {{}}}}\ndefault_variant: a\n",
        "key: [unclosed\n",  # not YAML
        good.replace(f"key: {key}", "key: other_name"),  # key differs from the file name
        good + 'environments:\n  staging:\n    rollout: {variant: "on", stages: [50, 25]}\n',
        good.replace('"on": true', "on: true"),  # YAML 1.1 trap
        "\t" + good,  # a tab
    ][kind % 12]


def make_repo(root: Path, count: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    files = {".github/gitops-flags.yml": POLICY, "flags/schemas/limits.yaml": SCHEMA,
             "flags/schemas/broken.yaml": BROKEN_SCHEMA, "flags/schemas/nested/stray.yaml": SCHEMA}
    for i in range(count):
        team = f"team{i % 5}"
        files[f"flags/{team}/flag_{i:04d}.yaml"] = flag(f"flag_{i:04d}", rng.randrange(24))
    files["flags/other/flag_0003.yaml"] = flag("flag_0003", 0)  # a duplicate key in another folder
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
@pytest.mark.parametrize(
    "paths", [(), ("flags",), ("flags/team1", "flags/schemas/limits.yaml"), ("flags/team2",)]
)
def test_parallel_output_is_the_serial_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str, paths: tuple[str, ...]
) -> None:
    root = make_repo(tmp_path, 240)
    given = [str(root / p) for p in paths]
    serial = output(capsys, "--repo", str(root), "--format", fmt, "--jobs", "1", *given)
    assert serial[0] == 1 and serial[1].count("\n") > 30  # problems in many files
    for jobs in ("2", "3", "7"):
        assert output(capsys, "--repo", str(root), "--format", fmt, "--jobs", jobs, *given) == serial


def test_parallel_result_is_the_serial_result(tmp_path: Path) -> None:
    tree = DirTree(make_repo(tmp_path, 120))
    policy, _ = read_policy(tree)
    serial = validate_tree(tree, policy, keep_flags=False, jobs=1)
    pooled = validate_tree(tree, policy, keep_flags=False, jobs=2)
    assert pooled == serial
    assert serial.flags == {}  # no models kept
    assert len(serial.checked) == 121 + 2


def test_small_runs_stay_serial_unless_jobs_are_given() -> None:
    assert parallel.workers_for(parallel.SERIAL_BELOW - 1, None) == 1
    assert parallel.workers_for(5, 4) == 4
    assert parallel.workers_for(3, 4) == 3  # never more workers than files
    assert parallel.workers_for(10_000, 1) == 1
    if parallel.cores() > 1:
        assert parallel.workers_for(10_000, None) == parallel.cores()


def test_slices_cover_the_paths_in_order() -> None:
    paths = [f"p{i}" for i in range(10)]
    cut = parallel.slices(paths, 4)
    assert [len(s) for s in cut] == [3, 3, 2, 2]
    assert [p for s in cut for p in s] == paths
    assert parallel.slices(paths[:2], 4) == [["p0"], ["p1"]]


def test_partial_runs_name_the_schemas_their_flags_use(tmp_path: Path) -> None:
    """"no schema 'limitz'" lists the schemas that the requested files use, known only after all of them
    are read: the file is checked again then (flags are never held back for it)."""
    files = {".github/gitops-flags.yml": POLICY, "flags/schemas/limits.yaml": SCHEMA,
             "flags/schemas/other.yaml": SCHEMA.replace("name: limits", "name: other"),
             "flags/a.yaml": "key: a\ntype: object\nschema: limitz\nvariants: {x: {}}\ndefault_variant: x\n",
             "flags/b.yaml": "key: b\ntype: object\nschema: limits\nvariants: {x: {limit: 1}}\n"
                             "default_variant: x\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    tree = DirTree(tmp_path)
    policy, _ = read_policy(tree)

    def messages(only: list[str] | None) -> list[str]:
        return [p.message for p in validate_tree(tree, policy, only, keep_flags=False).problems]

    expected = "schema: no schema 'limitz': expected flags/schemas/limitz.yaml"
    assert messages(["flags/a.yaml"]) == [expected]
    hint = "; did you mean 'limits'?"
    assert messages(["flags/a.yaml", "flags/b.yaml"]) == [f"{expected}{hint} (schemas: limits)"]
    assert messages(None) == [f"{expected}{hint} (schemas: limits, other)"]
