"""The JSON contracts of `validate` and `plan` on the bundled example, byte for byte (issue 16).

The outputs were recorded before the restructuring; a refactor that changes one byte of them fails here.
Set GITOPS_FLAGS_REGOLD=1 to record them again after a deliberate change to the contract.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
       "GIT_AUTHOR_DATE": "2026-12-01T08:00:00Z", "GIT_COMMITTER_DATE": "2026-12-01T08:00:00Z"}
ENV.pop("GITHUB_ACTIONS", None)

PULL = {
    "author": "alice", "labels": [],
    "reviews": [
        {"id": 1, "user": {"login": "alice", "type": "User"}, "state": "APPROVED", "commit_id": "HEAD"},
        {"id": 2, "user": {"login": "maria", "type": "User"}, "state": "APPROVED", "commit_id": "HEAD"},
        {"id": 3, "user": {"login": "quinn", "type": "User"}, "state": "CHANGES_REQUESTED",
         "commit_id": "HEAD"},
    ],
    "teams": {"acme/eng-managers": ["maria"], "acme/search": ["maria", "sam"], "acme/qa": ["quinn"],
              "acme/platform": ["sam"]},
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args], env=ENV,
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def cli(repo: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "gitops_flags", *args, "-C", str(repo)], env=ENV,
                          capture_output=True, text=True, cwd=repo)
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled example on main, and a branch that changes flags, a schema and adds broken files."""
    repo = tmp_path_factory.mktemp("golden") / "repo"
    repo.mkdir()
    shutil.copytree(ROOT / "flags", repo / "flags")
    (repo / ".github").mkdir()
    for name in ("gitops-flags.yml", "CODEOWNERS"):
        shutil.copy(ROOT / ".github" / name, repo / ".github" / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "switch", "-q", "-c", "change")
    flags = repo / "flags"
    edit(flags / "search/search_autocomplete.yaml", "  production:\n    enabled: true\n",
         "  production:\n    enabled: true\n    rollout:\n      variant: \"on\"\n"
         "      stages: [5, 25, 50, 75, 100]\n      stage_delay: 2h\n")
    edit(flags / "legacy_export.yaml", "  staging:\n    enabled: false", "  staging:\n    enabled: true")
    (flags / "onboarding_tour.yaml").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the change")
    return repo


def broken(repo: Path, tmp: Path) -> Path:
    """A copy of the example with problems of many kinds, for validate's problem objects."""
    copy = tmp / "broken"
    shutil.copytree(repo, copy)
    flags = copy / "flags"
    edit(flags / "dark_mode.yaml", "key: dark_mode", "key: dark_mode\nkey: dark_mode")
    (flags / "typo.yaml").write_text("key: typo\ntyp: boolean\nvariants: {on: true}\n")
    (flags / "bad.yaml").write_text("key: [unclosed\n")
    (flags / "search/search_spellcheck.yaml").write_text(
        (flags / "search/search_spellcheck.yaml").read_text() + "environments_extra: 1\n")
    return copy


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    json.loads(text)  # the contract is JSON
    if os.environ.get("GITOPS_FLAGS_REGOLD") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"{name} changed; if deliberate, regold (see this module's docstring)"


def test_validate_json_on_the_example_is_unchanged(repo: Path) -> None:
    check_golden("validate-example.json", cli(repo, "validate", "--format", "json", "--jobs", "1"))


def test_validate_json_with_problems_is_unchanged(repo: Path, tmp_path: Path) -> None:
    copy = broken(repo, tmp_path)
    out = cli(copy, "validate", "--format", "json", "--jobs", "1")
    assert len(json.loads(out)) >= 4
    check_golden("validate-problems.json", out)


def test_plan_json_is_unchanged(repo: Path) -> None:
    out = cli(repo, "plan", "--base", "main", "--head", "change", "--format", "json")
    check_golden("plan-change.json", out)


def test_plan_json_with_reviews_is_unchanged(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "change")
    pull = json.loads(json.dumps(PULL).replace('"HEAD"', json.dumps(head)))
    path = tmp_path / "pull.json"
    path.write_text(json.dumps(pull))
    out = cli(repo, "plan", "--base", "main", "--head", "change", "--pull", str(path), "--format", "json")
    check_golden("plan-reviews.json", out)
