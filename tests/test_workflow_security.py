"""The workflows we ship and run: least privilege, pinned, never displaced, and zizmor-clean (issue 12,
part 5). Covers action.yml, .github/workflows/ and the workflows `gitops-flags init` writes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((ROOT / "gitops_flags" / "templates").glob("gitops-flags-*.yml"))
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EVERY = [ROOT / "action.yml", *WORKFLOWS, *TEMPLATES]
FULL_SHA = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+)*|#\s*vX\.Y\.Z")


def load(path: Path) -> Any:
    return yaml.safe_load(re.sub(r"^on:", '"on":', path.read_text(encoding="utf-8"), flags=re.M))


def uses_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if re.match(r"^\s*(-\s+)?uses:", line)]


@pytest.mark.parametrize("path", EVERY, ids=[str(p.relative_to(ROOT)) for p in EVERY])
def test_every_action_is_pinned_by_full_commit_sha_with_its_version(path: Path) -> None:
    for line in uses_lines(path):
        ref = line.split("uses:", 1)[1].split("#", 1)[0].strip()
        if ref == "./":
            continue  # this repository's own checkout (dogfooding the PR's version of the tool)
        assert FULL_SHA.match(ref), f"{path.name}: {line}"
        assert VERSION_COMMENT.search(line), f"{path.name}: the version belongs in a comment: {line}"


def test_the_templates_say_how_to_update_the_pin() -> None:
    check = (ROOT / "gitops_flags" / "templates" / "gitops-flags-check.yml").read_text(encoding="utf-8")
    assert "git ls-remote" in check and "Dependabot" in check
    assert "OWNER/gitops-flags@0000000000000000000000000000000000000000 # vX.Y.Z" in check


@pytest.mark.parametrize("path", [*WORKFLOWS, *TEMPLATES], ids=[p.name for p in [*WORKFLOWS, *TEMPLATES]])
def test_write_permissions_belong_to_jobs(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {}, "nothing at the workflow level"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"{path.name}: job {name} must say what it needs"
        text = path.read_text(encoding="utf-8")
        for permission, level in job["permissions"].items():
            if level == "write":  # each write permission says why, inline
                assert re.search(rf"{permission}: write\s+#", text), f"{path.name}: {permission}: write"


def test_only_the_store_writers_get_the_store_environment() -> None:
    for path in [*WORKFLOWS, *TEMPLATES]:
        workflow = load(path)
        for name, job in workflow["jobs"].items():
            writes_store = any(str(s.get("with", {}).get("command")) in ("apply", "advance")
                               for s in job.get("steps", []))
            assert (job.get("environment") == "flag-store") is writes_store, f"{path.name}: {name}"


@pytest.mark.parametrize("folder", ["workflows", "templates"])
def test_apply_and_rollout_have_groups_that_cannot_displace_each_other(folder: str) -> None:
    paths = WORKFLOWS if folder == "workflows" else TEMPLATES
    groups = {}
    for path in paths:
        if "apply" in path.name or "rollout" in path.name:
            groups[path.name] = load(path)["concurrency"]
            assert groups[path.name]["cancel-in-progress"] is False  # a running write is never cancelled
            assert "github.ref" in groups[path.name]["group"]
    assert len(groups) == 2 and len({g["group"] for g in groups.values()}) == 2
    for path in paths:
        assert "never cancelled" not in path.read_text(encoding="utf-8")


def test_the_check_names_the_status_it_posts() -> None:
    for path in (ROOT / "gitops_flags" / "templates" / "gitops-flags-check.yml",
                 ROOT / ".github" / "workflows" / "flags-check.yml"):
        text = path.read_text(encoding="utf-8")
        assert "`gitops-flags: <base branch>`" in text
        assert 'Make the "gitops-flags" status' not in text


ZIZMOR = shutil.which("zizmor")


@pytest.mark.skipif(ZIZMOR is None, reason="zizmor is in the dev extra (pip install -e '.[dev]')")
def test_zizmor_finds_nothing_at_medium_or_above_and_would_find_an_unpinned_action(tmp_path: Path) -> None:
    assert ZIZMOR is not None
    args = [ZIZMOR, "--offline", "--min-severity", "medium", "--no-progress"]
    ours = subprocess.run([*args, *map(str, EVERY)], capture_output=True, text=True, cwd=ROOT)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    bad = tmp_path / "bad.yml"
    template = (ROOT / "gitops_flags" / "templates" / "gitops-flags-check.yml").read_text(encoding="utf-8")
    bad.write_text(template.replace("@d23441a48e516b6c34aea4fa41551a30e30af803 # v6.1.0", "@v6")
                   .replace("permissions: {}", "permissions: write-all"), encoding="utf-8")
    theirs = subprocess.run([*args, str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert theirs.returncode != 0 and "unpinned-uses" in theirs.stdout + theirs.stderr


def test_merge_queue_groups_never_cancel_each_other() -> None:
    """cancel-in-progress is right per PR, but every merge_group run would share one empty PR number."""
    for path in (ROOT / "gitops_flags" / "templates" / "gitops-flags-check.yml",
                 ROOT / ".github" / "workflows" / "flags-check.yml"):
        workflow = load(path)
        if "merge_group" in workflow["on"]:
            assert "github.event.merge_group.head_ref" in workflow["concurrency"]["group"], path.name
