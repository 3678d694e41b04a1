"""Every hostile repository in tests/hostile/ is rejected cleanly: exit 1 and a JSON problem naming the file.

The same cases run as whole processes, with their time and memory checked, in benchmarks/hostile.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from corpus import CASES, materialize

from gitops_flags.cli import main


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_repository_is_rejected_cleanly(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = materialize(name, tmp_path / name)
    code = main(["validate", "--repo", str(root), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    problems = json.loads(out)
    named = [p for p in problems if p["file"] == CASES[name].file and p["severity"] == "error"]
    assert named, problems
    assert all(len(p["message"]) < 2000 for p in problems)  # no megabyte of PR text echoed back
